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

/// A learning rate as a function of the epoch (0-based) and the step within training.
public enum LRSchedule: Sendable {
    /// `base · gamma^⌊epoch / stepSize⌋` (PyTorch's StepLR).
    case step(stepSize: Int, gamma: Double)
    /// `minimum + (base − minimum)·(1 + cos(π·epoch/period))/2` (PyTorch's CosineAnnealingLR).
    case cosine(period: Int, minimum: Double)
    /// From `startFactor · base` up to `base` linearly over `steps` optimizer steps (PyTorch's LinearLR per step).
    case linearWarmup(steps: Int, startFactor: Double)

    /// The learning rate for `epoch` and `step` (optimizer steps taken so far).
    public func rate(base: Double, epoch: Int, step: Int) -> Double {
        switch self {
        case .step(let size, let gamma):
            return base * pow(gamma, Double(epoch / max(size, 1)))
        case .cosine(let period, let minimum):
            let e = Double(min(epoch, max(period, 1)))
            return minimum + (base - minimum) * (1 + cos(Double.pi * e / Double(max(period, 1)))) / 2
        case .linearWarmup(let steps, let start):
            guard steps > 0, step < steps else { return base }
            return base * (start + (1 - start) * Double(step) / Double(steps))
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
        optimizer.learningRate = Float(schedule.rate(base: base, epoch: trainer.currentEpoch, step: trainer.globalStep))
    }

    /// Sets the learning rate for the epoch that starts.
    public func epochStart(_ trainer: Trainer, epoch: Int) throws { apply(trainer) }
    /// Sets the learning rate for the next step.
    public func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws { apply(trainer) }
}
