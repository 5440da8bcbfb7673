import Foundation
import KilnSupport
import KilnLayers
import KilnTensor

/// Hooks into `Trainer.fit`. Every method has an empty default; implement the ones you need.
public protocol Callback: AnyObject {
    func fitStart(_ trainer: Trainer) throws
    func fitEnd(_ trainer: Trainer) throws
    func epochStart(_ trainer: Trainer, epoch: Int) throws
    func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws
    /// After each optimizer step; `loss` is still on the device (reading it waits for the device).
    func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws
    /// When a signal stopped epoch `epoch` after `batchesDone` of its batches (`Interrupts`).
    func interrupted(_ trainer: Trainer, epoch: Int, batchesDone: Int) throws
    /// What this callback must remember across a resume (its best value so far, ...), as strings;
    /// checkpoints store it in their metadata.
    func checkpointState() -> [String: String]
    /// Takes back what `checkpointState()` gave, when training resumes from a checkpoint.
    func restore(checkpointState: [String: String]) throws
}

extension Callback {
    /// Called once before the first epoch of `fit`; does nothing by default.
    public func fitStart(_ trainer: Trainer) throws {}
    /// Called once when `fit` ends (after the last epoch or an early stop); does nothing by default.
    public func fitEnd(_ trainer: Trainer) throws {}
    /// Called before epoch `epoch` (0-based) trains; does nothing by default.
    public func epochStart(_ trainer: Trainer, epoch: Int) throws {}
    /// Called after epoch `epoch` (0-based) with its metrics, validation included; does nothing by default.
    public func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {}
    /// Called after each optimizer step, `step` being `trainer.globalStep`; does nothing by default.
    public func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws {}
    /// Does nothing by default.
    public func interrupted(_ trainer: Trainer, epoch: Int, batchesDone: Int) throws {}
    /// Nothing to remember by default.
    public func checkpointState() -> [String: String] { [:] }
    /// Nothing to restore by default.
    public func restore(checkpointState: [String: String]) throws {}
}

/// A number a callback saved in a checkpoint, checked to be finite.
func restoredNumber(_ state: [String: String], _ key: String, _ owner: String) throws -> Double? {
    guard let text = state[key] else { return nil }
    guard let value = Double(text), value.isFinite else {
        throw TrainingError("The checkpoint's \(key) (\(owner)) is \"\(text)\", not a finite number; the file is damaged.")
    }
    return value
}

/// Stops training when `monitor` has not improved by more than `minDelta` for `patience` epochs.
public final class EarlyStopping: Callback {
    /// The metric watched (an `EpochRecord` name such as `val_loss`), the epochs without improvement
    /// allowed, whether smaller or larger is better, and the least change that counts as an improvement.
    public let monitor: String, patience: Int, mode: MetricMode, minDelta: Double
    private var best: Double?
    private var waited = 0

    /// Stops after `patience` epochs (default 3) in which `monitor` (default `val_loss`) has not improved
    /// by more than `minDelta` (default 0); `mode` defaults to the metric's natural direction
    /// (`MetricMode.natural(for:)`).
    public init(monitor: String = "val_loss", patience: Int = 3, mode: MetricMode? = nil, minDelta: Double = 0) {
        self.monitor = monitor
        self.patience = patience
        self.mode = mode ?? MetricMode.natural(for: monitor)
        self.minDelta = minDelta
    }

    /// The best value and the epochs waited, for a resume.
    public func checkpointState() -> [String: String] {
        var state = ["early_stopping_waited": String(waited)]
        if let best { state["early_stopping_best"] = String(best) }
        return state
    }

    /// Takes back the best value and the epochs waited.
    public func restore(checkpointState state: [String: String]) throws {
        best = try restoredNumber(state, "early_stopping_best", "EarlyStopping")
        if let w = try restoredNumber(state, "early_stopping_waited", "EarlyStopping") {
            guard w >= 0, w <= 1e9 else { throw TrainingError("The checkpoint's early_stopping_waited is \(w); it counts epochs.") }
            waited = Int(w)
        }
    }

    /// Compares `monitor` in `record` with the best so far and sets `trainer.shouldStop` once it has
    /// not improved for `patience` epochs. Throws when the metric is missing (no validation data).
    public func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {
        guard let value = record.value(of: monitor) else {
            throw TrainingError("EarlyStopping: the metric \"\(monitor)\" is not available (is there validation data?).")
        }
        let improved = best.map { mode == .min ? value < $0 - minDelta : value > $0 + minDelta } ?? true
        if improved {
            best = value
            waited = 0
        } else {
            waited += 1
            if waited >= patience {
                trainer.shouldStop = true
                trainer.log("Early stopping: \(monitor) has not improved for \(patience) epoch(s) (best \(best ?? value)).")
            }
        }
    }
}

/// Saves `last.safetensors` (a checkpoint: model, optimizer, epoch, step, random state) after every
/// epoch and `best.safetensors` (the model) whenever `monitor` improves.
///
/// Put it after the callbacks that change the training state at the end of an epoch
/// (`ReduceLROnPlateau`, `EarlyStopping`), so the checkpoint holds what they changed.
public final class ModelCheckpoint: Callback {
    /// The folder the files go to, the metric that picks `best.safetensors`, and whether smaller or
    /// larger is better.
    public let folder: URL, monitor: String, mode: MetricMode
    /// Extra metadata written into every file (the architecture, for example).
    public var metadata: [String: String]
    private var best: Double?

    /// Writes into `folder` (created when needed); `monitor` defaults to `val_loss` and `mode` to the
    /// metric's natural direction (`MetricMode.natural(for:)`).
    public init(folder: URL, monitor: String = "val_loss", mode: MetricMode? = nil, metadata: [String: String] = [:]) {
        self.folder = folder
        self.monitor = monitor
        self.mode = mode ?? MetricMode.natural(for: monitor)
        self.metadata = metadata
    }

    /// The best value of `monitor` so far, for a resume.
    public func checkpointState() -> [String: String] {
        best.map { ["model_checkpoint_best": String($0), "model_checkpoint_monitor": monitor] } ?? [:]
    }

    /// Takes back the best value, so the first resumed epoch replaces `best.safetensors` only if
    /// it beats every epoch before the resume.
    public func restore(checkpointState state: [String: String]) throws {
        guard state["model_checkpoint_monitor"] == monitor else { return }
        best = try restoredNumber(state, "model_checkpoint_best", "ModelCheckpoint")
    }

    /// Writes `last.safetensors`, and `best.safetensors` when `monitor` improved; both carry
    /// `metadata` plus the epochs done, the step, the random state, the learning rate and every
    /// callback's `checkpointState()`.
    public func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {
        guard let model = trainer.model, let optimizer = trainer.optimizer else { return }
        let improved = record.value(of: monitor).map { value in best.map { mode == .min ? value < $0 : value > $0 } ?? true } ?? false
        if improved { best = record.value(of: monitor) }
        let meta = try writeLast(trainer, model: model, optimizer: optimizer, epochs: epoch + 1, batchesDone: 0)
        if improved {
            try Checkpoint.saveModel(model, to: folder.appendingPathComponent("best.safetensors"), metadata: meta)
        }
    }

    /// Writes `last.safetensors` at the step a signal stopped training, inside epoch `epoch`, so
    /// `--resume` continues from that very batch.
    public func interrupted(_ trainer: Trainer, epoch: Int, batchesDone: Int) throws {
        guard let model = trainer.model, let optimizer = trainer.optimizer else { return }
        try writeLast(trainer, model: model, optimizer: optimizer, epochs: epoch, batchesDone: batchesDone)
    }

    /// `last.safetensors` with `epochs` complete and `batchesDone` batches into the next; returns its metadata.
    @discardableResult
    func writeLast(_ trainer: Trainer, model: Module, optimizer: Optimizer, epochs: Int, batchesDone: Int) throws -> [String: String] {
        try createFolder(folder, purpose: "run folder")
        let random = RandomState.state
        var meta = metadata
        for callback in trainer.callbacks { meta.merge(callback.checkpointState()) { _, new in new } }
        var state = try CheckpointState(metadata: ["epoch": String(epochs), "step": String(trainer.globalStep),
                                                   "epoch_batches": String(batchesDone)], file: folder.path)
        state.random = (random.seed, random.offset)
        state.learningRate = optimizer.learningRate
        state.optimizer = meta["optimizer"] ?? String(describing: type(of: optimizer)).lowercased()
        meta.merge(state.metadata) { _, new in new }
        try Checkpoint.save(model: model, optimizer: optimizer, metadata: meta, to: folder.appendingPathComponent("last.safetensors"))
        return meta
    }
}

/// A learning rate as a function of the epoch (0-based) and the optimizer steps taken, with
/// PyTorch's formulas. Schedules chain: `.chained` multiplies their effects (`ChainedScheduler`),
/// `.sequential` hands over from one to the next at given epochs (`SequentialLR`).
///
/// ```swift
/// // Linear warm-up over the first 100 steps, multiplied by a cosine decay over 10 epochs.
/// let schedule = LRSchedule.chained([.linearWarmup(steps: 100, startFactor: 0.1), .cosine(period: 10, minimum: 0)])
/// print(schedule.rate(base: 1e-3, epoch: 0, step: 50))        // 5.5e-4
/// // One cycle over 4690 steps (10 epochs of 469), peaking at 0.01 after 30% of them.
/// let cycle = LRSchedule.oneCycle(maxLR: 0.01, totalSteps: 4690)
/// print(cycle.rate(base: 1e-3, epoch: 0, step: 0))            // 4e-4: maxLR / 25
/// ```
public indirect enum LRSchedule: Sendable {
    /// `base · gamma^⌊epoch / stepSize⌋` (PyTorch's StepLR).
    case step(stepSize: Int, gamma: Double)
    /// `minimum + (base − minimum)·(1 + cos(π·epoch/period))/2` (PyTorch's CosineAnnealingLR).
    case cosine(period: Int, minimum: Double)
    /// From `startFactor · base` up to `base` linearly over `steps` optimizer steps (PyTorch's LinearLR per step).
    case linearWarmup(steps: Int, startFactor: Double)
    /// PyTorch's OneCycleLR per step (cosine annealing, two phases): from `maxLR / divFactor` up to
    /// `maxLR` over the first `pctStart` of `totalSteps`, then down to
    /// `maxLR / (divFactor · finalDivFactor)`. `maxLR` nil: the base rate. Momentum is not cycled.
    case oneCycle(maxLR: Double? = nil, totalSteps: Int, pctStart: Double = 0.3, divFactor: Double = 25,
                  finalDivFactor: Double = 1e4)
    /// Each schedule applied to the rate the one before it gave (PyTorch's ChainedScheduler: the
    /// factors multiply).
    case chained([LRSchedule])
    /// `schedules[i]` from epoch `milestones[i - 1]` on (PyTorch's SequentialLR), each starting
    /// afresh at its milestone; `milestones` has one entry fewer than `schedules`.
    case sequential([LRSchedule], milestones: [Int])

    /// The learning rate for `epoch` and `step` (optimizer steps taken so far; `stepsPerEpoch`
    /// places a `.sequential` milestone in steps).
    public func rate(base: Double, epoch: Int, step: Int, stepsPerEpoch: Int = 0) -> Double {
        switch self {
        case .step(let size, let gamma):
            return base * pow(gamma, Double(epoch / max(size, 1)))
        case .cosine(let period, let minimum):
            // Past `period` the cosine goes on (rising again), as PyTorch's closed form does.
            return minimum + (base - minimum) * (1 + cos(Double.pi * Double(epoch) / Double(max(period, 1)))) / 2
        case .linearWarmup(let steps, let start):
            guard steps > 0, step < steps else { return base }
            return base * (start + (1 - start) * Double(step) / Double(steps))
        case .oneCycle(let maxLR, let total, let pctStart, let divFactor, let finalDivFactor):
            let peak = maxLR ?? base
            let initial = peak / divFactor, final = initial / finalDivFactor
            let warmEnd = pctStart * Double(total) - 1, end = Double(total) - 1
            let s = Double(min(max(step, 0), max(total - 1, 0)))
            func anneal(_ from: Double, _ to: Double, _ pct: Double) -> Double { to + (from - to) / 2 * (cos(Double.pi * pct) + 1) }
            if s <= warmEnd { return anneal(initial, peak, warmEnd > 0 ? s / warmEnd : 1) }
            return anneal(peak, final, end > warmEnd ? (s - warmEnd) / (end - warmEnd) : 1)
        case .chained(let schedules):
            return schedules.reduce(base) { $1.rate(base: $0, epoch: epoch, step: step, stepsPerEpoch: stepsPerEpoch) }
        case .sequential(let schedules, let milestones):
            let index = min(milestones.filter { $0 <= epoch }.count, schedules.count - 1)
            guard index >= 0 else { return base }
            let from = index == 0 ? 0 : milestones[index - 1]
            return schedules[index].rate(base: base, epoch: epoch - from, step: max(0, step - from * stepsPerEpoch),
                                         stepsPerEpoch: stepsPerEpoch)
        }
    }

    /// Whether the schedule is well formed: positive periods and step counts, finite factors,
    /// one milestone fewer than schedules, in increasing order.
    public func validate() throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            guard ok else { throw TrainingError("LRSchedule: \(message())") }
        }
        switch self {
        case .step(let size, let gamma): try check(size >= 1 && gamma.isFinite && gamma >= 0, "step needs stepSize ≥ 1 and a finite gamma ≥ 0; got \(size) and \(gamma).")
        case .cosine(let period, let minimum): try check(period >= 1 && minimum.isFinite && minimum >= 0, "cosine needs period ≥ 1 and a finite minimum ≥ 0; got \(period) and \(minimum).")
        case .linearWarmup(let steps, let start): try check(steps >= 0 && (0...1).contains(start), "linearWarmup needs steps ≥ 0 and startFactor in 0...1; got \(steps) and \(start).")
        case .oneCycle(let maxLR, let total, let pct, let div, let finalDiv):
            let factorsOK = div.isFinite && div > 0 && finalDiv.isFinite && finalDiv > 0
            let peakOK = maxLR.map { $0.isFinite && $0 > 0 } ?? true
            let peak = maxLR.map { String($0) } ?? "nil"
            try check(total >= 1 && (0...1).contains(pct) && factorsOK && peakOK,
                      "oneCycle needs totalSteps ≥ 1, pctStart in 0...1, positive finite factors and maxLR; got \(total), \(pct), \(div), \(finalDiv), \(peak).")
        case .chained(let schedules): try check(!schedules.isEmpty, "chained needs at least one schedule."); try schedules.forEach { try $0.validate() }
        case .sequential(let schedules, let milestones):
            try check(!schedules.isEmpty && milestones.count == schedules.count - 1, "sequential needs one milestone fewer than schedules; got \(schedules.count) and \(milestones.count).")
            try check(zip(milestones, milestones.dropFirst()).allSatisfy { $0 < $1 } && (milestones.first ?? 1) >= 1, "sequential milestones must be increasing epochs ≥ 1; got \(milestones).")
            try schedules.forEach { try $0.validate() }
        }
    }
}

/// Lowers the learning rate by `factor` when `monitor` has stopped improving for `patience`
/// epochs, with PyTorch's ReduceLROnPlateau rules (relative or absolute threshold, cooldown,
/// minimum rate). Its counters survive a resume.
///
/// ```swift
/// let trainer = Trainer(maxEpochs: 30, callbacks: [try ReduceLROnPlateau(monitor: "val_loss", factor: 0.5, patience: 2)])
/// ```
public final class ReduceLROnPlateau: Callback {
    /// Whether an improvement is measured relative to the best value or in the metric's units.
    public enum ThresholdMode: String, Sendable { case relative = "rel", absolute = "abs" }

    /// The metric watched, whether smaller or larger is better, and PyTorch's settings.
    public let monitor: String, mode: MetricMode, factor: Double, patience: Int, threshold: Double,
               thresholdMode: ThresholdMode, cooldown: Int, minLR: Double, eps: Double
    private var best: Double?
    private var badEpochs = 0, cooldownLeft = 0

    /// PyTorch's defaults: `factor` 0.1, `patience` 10, `threshold` 1e-4 relative, no cooldown,
    /// `minLR` 0, `eps` 1e-8; `mode` defaults to the metric's natural direction.
    /// - Throws: `TrainingError` for a factor outside `0..<1` or negative counts.
    public init(monitor: String = "val_loss", mode: MetricMode? = nil, factor: Double = 0.1, patience: Int = 10,
                threshold: Double = 1e-4, thresholdMode: ThresholdMode = .relative, cooldown: Int = 0,
                minLR: Double = 0, eps: Double = 1e-8) throws {
        guard factor >= 0, factor < 1 else { throw TrainingError("ReduceLROnPlateau: factor must be in [0, 1); got \(factor).") }
        guard patience >= 0, cooldown >= 0, threshold.isFinite, threshold >= 0, minLR.isFinite, minLR >= 0, eps >= 0 else {
            throw TrainingError("ReduceLROnPlateau: patience, cooldown, threshold, minLR and eps must be finite and ≥ 0.")
        }
        self.monitor = monitor
        self.mode = mode ?? MetricMode.natural(for: monitor)
        (self.factor, self.patience, self.threshold, self.thresholdMode) = (factor, patience, threshold, thresholdMode)
        (self.cooldown, self.minLR, self.eps) = (cooldown, minLR, eps)
    }

    func isBetter(_ value: Double, than best: Double) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .relative): return value < best * (1 - threshold)
        case (.min, .absolute): return value < best - threshold
        case (.max, .relative): return value > best * (1 + threshold)
        case (.max, .absolute): return value > best + threshold
        }
    }

    /// Compares the metric with the best so far and lowers the rate after `patience` bad epochs.
    /// Throws when the metric is missing (no validation data).
    public func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {
        guard let value = record.value(of: monitor) else {
            throw TrainingError("ReduceLROnPlateau: the metric \"\(monitor)\" is not available (is there validation data?).")
        }
        if best.map({ isBetter(value, than: $0) }) ?? !value.isNaN {
            best = value
            badEpochs = 0
        } else {
            badEpochs += 1
        }
        if cooldownLeft > 0 {
            cooldownLeft -= 1
            badEpochs = 0
        }
        guard badEpochs > patience, let optimizer = trainer.optimizer else { return }
        let old = Double(optimizer.learningRate), new = max(old * factor, minLR)
        if old - new > eps {
            optimizer.learningRate = Float(new)
            trainer.log("ReduceLROnPlateau: \(monitor) has not improved for \(badEpochs) epochs; learning rate \(Float(old)) → \(Float(new)).")
        }
        cooldownLeft = cooldown
        badEpochs = 0
    }

    /// The best value and the counters, for a resume.
    public func checkpointState() -> [String: String] {
        var state = ["plateau_bad_epochs": String(badEpochs), "plateau_cooldown_left": String(cooldownLeft)]
        if let best { state["plateau_best"] = String(best) }
        return state
    }

    /// Takes back the best value and the counters.
    public func restore(checkpointState state: [String: String]) throws {
        best = try restoredNumber(state, "plateau_best", "ReduceLROnPlateau")
        for (key, keyPath) in [("plateau_bad_epochs", \ReduceLROnPlateau.badEpochs), ("plateau_cooldown_left", \.cooldownLeft)] {
            guard let count = try restoredNumber(state, key, "ReduceLROnPlateau") else { continue }
            guard count >= 0, count <= 1e9 else { throw TrainingError("The checkpoint's \(key) is \(count); it counts epochs.") }
            self[keyPath: keyPath] = Int(count)
        }
    }
}

/// Sets the optimizer's learning rate from `schedule` before every epoch and every step.
public final class LRScheduler: Callback {
    /// How the learning rate changes with epoch and step.
    public let schedule: LRSchedule
    private var base: Double?

    /// `base` is the learning rate the schedule scales (default: the optimizer's at the first step;
    /// give it when resuming, since the optimizer's rate then is already scheduled).
    public init(_ schedule: LRSchedule, base: Double? = nil) {
        self.schedule = schedule
        self.base = base
    }

    private func apply(_ trainer: Trainer) {
        guard let optimizer = trainer.optimizer else { return }
        let base = self.base ?? Double(optimizer.learningRate)
        self.base = base
        optimizer.learningRate = Float(schedule.rate(base: base, epoch: trainer.currentEpoch, step: trainer.globalStep,
                                                     stepsPerEpoch: trainer.stepsPerEpoch))
    }

    /// Sets the learning rate for the epoch that starts.
    public func epochStart(_ trainer: Trainer, epoch: Int) throws { apply(trainer) }
    /// Sets the learning rate for the next step.
    public func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws { apply(trainer) }
}
