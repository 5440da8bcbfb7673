import Foundation
import KilnSupport
import KilnDevice
import KilnKernels
import KilnLayers
import KilnTensor

/// Where a `Trainer` takes its batches from: a `DataLoader`, or anything that can hand out
/// (input, target) tensor pairs for an epoch.
public protocol BatchSource {
    /// Samples in one epoch.
    var sampleCount: Int { get }
    /// Batches in one epoch.
    var batchCount: Int { get }
    /// Calls `body` with each batch of epoch `epoch` (0-based), in order.
    func forEachBatch(epoch: Int, _ body: (_ input: Tensor, _ target: Tensor) throws -> Void) throws
    /// The same, leaving out the first `skipping` batches (a run resumed inside an epoch).
    func forEachBatch(epoch: Int, skipping: Int, _ body: (_ input: Tensor, _ target: Tensor) throws -> Void) throws
}

extension BatchSource {
    /// Loads every batch and hands `body` those after the first `skipping`. A source that can skip
    /// without loading (as `DataLoader` does) should say so by implementing this itself.
    public func forEachBatch(epoch: Int, skipping: Int, _ body: (_ input: Tensor, _ target: Tensor) throws -> Void) throws {
        var index = 0
        try forEachBatch(epoch: epoch) { input, target in
            defer { index += 1 }
            if index >= skipping { try body(input, target) }
        }
    }
}

/// How `Trainer` clips gradients before each optimizer step, with PyTorch's semantics.
public enum GradientClipping: Sendable, Equatable {
    /// Scales all gradients together so that their total norm is at most `maxNorm`
    /// (`clip_grad_norm_`; `normType` 2 by default, `.infinity` for the largest magnitude).
    case norm(Float, normType: Float = 2)
    /// Clamps every gradient element to `[-value, value]` (`clip_grad_value_`).
    case value(Float)
}

/// What stops training early: a non-finite loss.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public let description: String
    /// An error with the given message.
    public init(_ description: String) { self.description = description }
}

/// Trains a model with a loss and an optimizer over a `BatchSource`, in the spirit of PyTorch
/// Lightning's `Trainer.fit`: per-epoch metrics, a progress bar on a terminal (one line per epoch
/// otherwise), callbacks, and `history.json`/`history.csv` plus plots in `outputFolder`.
///
/// The loss is read back every `logEvery` steps (and at the end of each epoch), never every step:
/// the device runs ahead of the host.
///
/// ```swift
/// let model = Sequential(try Linear(784, 128), ReLU(), try Linear(128, 10))
/// let trainLoader = try DataLoader(MNISTDataset(split: .train), batchSize: 128, shuffle: true, seed: 0)
/// let testLoader = try DataLoader(MNISTDataset(split: .test), batchSize: 1000)
/// let trainer = Trainer(maxEpochs: 10, callbacks: [EarlyStopping(monitor: "val_loss", patience: 3)])
/// let history = try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try Adam(model.parameters),
///                               train: trainLoader, validation: testLoader)
/// ```
public final class Trainer {
    /// The epoch count `fit` trains up to, counting epochs before a resume's `startEpoch`.
    public var maxEpochs: Int
    /// Hooks called, in order, at each point of `fit`.
    public var callbacks: [any Callback]
    /// Steps between loss read-backs (progress and NaN checks).
    public var logEvery: Int
    /// Where history and plots go (nil: nowhere).
    public var outputFolder: URL?
    /// Prints progress, flushed line by line (a log redirected to a file is current after every
    /// epoch, and nothing is lost to a buffer when the process is stopped); replace to silence or redirect.
    public var log: (String) -> Void = { print($0); fflush(nil) }
    /// Whether to draw a progress bar (default: when stdout is a terminal).
    public var progressBar: Bool = isatty(STDOUT_FILENO) != 0

    /// Batches whose gradients are summed before each optimizer step (Lightning's
    /// `accumulate_grad_batches`; default 1). Each batch's loss is divided by it, and the last
    /// batches of an epoch step even when fewer remain.
    public var accumulateGradBatches: Int = 1
    /// Clips the gradients before every optimizer step (Lightning's `gradient_clip_val` and
    /// `gradient_clip_algorithm`); nil: no clipping.
    public var gradientClipping: GradientClipping?
    /// Data-parallel training over several processes (nil: this process alone). When set, `fit`
    /// starts from rank 0's weights, every step averages the gradients over the processes, and
    /// the training metrics are averaged; give each process its shard of the data
    /// (`DataLoader.shard`).
    public var dataParallel: DataParallel?

    /// Set by a callback (early stopping) to end `fit` after the current epoch.
    public var shouldStop = false
    /// Batches of the epoch `fit` starts with that were trained before a resume (set by `restore`).
    public var resumeBatches = 0
    /// Optimizer steps taken so far (continues across a resume).
    public var globalStep = 0
    /// The epoch being trained (0-based).
    public internal(set) var currentEpoch = 0
    /// Optimizer steps in one epoch of the current `fit`'s training data (schedules use it).
    public internal(set) var stepsPerEpoch = 0
    /// Per-epoch metrics so far.
    public var history = History()
    /// The optimizer of the current `fit` (schedulers adjust its learning rate).
    public internal(set) var optimizer: Optimizer?
    /// The model of the current `fit` (checkpoint callbacks save it).
    public internal(set) var model: (Module)?

    /// A trainer for up to `maxEpochs` epochs that reads the loss back every `logEvery` steps
    /// (default 50, at least 1) and writes reports to `outputFolder` when one is given.
    public init(maxEpochs: Int, callbacks: [any Callback] = [], logEvery: Int = 50, outputFolder: URL? = nil) {
        self.maxEpochs = maxEpochs
        self.callbacks = callbacks
        self.logEvery = max(1, logEvery)
        self.outputFolder = outputFolder
    }

    /// Trains `model` for the remaining epochs (from `startEpoch`, for a resumed run) and returns the history.
    @discardableResult
    public func fit(model: Module, loss: any Loss, optimizer: Optimizer, train: any BatchSource,
                    validation: (any BatchSource)? = nil, startEpoch: Int = 0) throws -> History {
        guard accumulateGradBatches >= 1 else {
            throw TrainingError("accumulateGradBatches must be ≥ 1; got \(accumulateGradBatches).")
        }
        self.model = model
        self.optimizer = optimizer
        stepsPerEpoch = (train.batchCount + accumulateGradBatches - 1) / accumulateGradBatches
        shouldStop = false
        try dataParallel?.broadcastState(of: model)
        for callback in callbacks { try callback.fitStart(self) }
        var epoch = startEpoch
        while epoch < maxEpochs && !shouldStop {
            // Between epochs: the checkpoint of the epoch just ended is the resumable state. With
            // several processes, they agree first (a signal may reach them at different times).
            // Only the agreed answer counts: a signal arriving after the agreement waits for the next.
            let stop = try dataParallel.map { try $0.mean([Interrupts.received == nil ? 0 : 1])[0] > 0 ? (Interrupts.received ?? SIGTERM) : nil }
                ?? Interrupts.received
            if let signal = stop {
                Interrupts.reset()
                throw TrainingInterrupted(signal: signal, step: globalStep, epoch: epoch, batchesDone: 0)
            }
            currentEpoch = epoch
            for callback in callbacks { try callback.epochStart(self, epoch: epoch) }
            let start = DispatchTime.now().uptimeNanoseconds
            let skip = epoch == startEpoch ? resumeBatches : 0
            resumeBatches = 0
            guard skip < train.batchCount else {
                throw TrainingError("The checkpoint stopped \(skip) batches into epoch \(epoch + 1), but an epoch of this data has \(train.batchCount); resume with the run's data and --batch-size.")
            }
            var trainLoss: Double, trainAccuracy: Double?
            do {
                (trainLoss, trainAccuracy) = try trainEpoch(model: model, loss: loss, optimizer: optimizer, data: train,
                                                            epoch: epoch, skipping: skip)
                if let dataParallel {
                    // Every process trained on as many samples: the means of the means are the run's.
                    let means = try dataParallel.mean([trainLoss, trainAccuracy ?? 0])
                    trainLoss = means[0]
                    trainAccuracy = trainAccuracy.map { _ in means[1] }
                }
            } catch let stop as TrainingInterrupted {
                for callback in callbacks { try callback.interrupted(self, epoch: epoch, batchesDone: stop.batchesDone) }
                if let outputFolder { try writeReports(to: outputFolder) }
                throw stop
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            var record = EpochRecord(epoch: epoch + 1, trainLoss: trainLoss, trainAccuracy: trainAccuracy, validationLoss: nil,
                                     validationAccuracy: nil, seconds: seconds,
                                     samplesPerSecond: Double(train.sampleCount) / max(seconds, 1e-9),
                                     learningRate: optimizer.learningRate.decimalDouble)
            if let validation {
                // Every process evaluates with rank 0's buffers (BatchNorm's running statistics), and
                // the metrics are averaged, so every process takes the same decisions on them.
                try dataParallel?.broadcastBuffers(of: model)
                var metrics = try evaluate(model: model, loss: loss, data: validation)
                if let dataParallel {
                    let means = try dataParallel.mean([metrics.loss, metrics.accuracy ?? 0])
                    metrics = (means[0], metrics.accuracy.map { _ in means[1] })
                }
                record.validationLoss = metrics.loss
                record.validationAccuracy = metrics.accuracy
            }
            history.append(record)
            log(Self.describe(record, of: maxEpochs))
            for callback in callbacks { try callback.epochEnd(self, epoch: epoch, record: record) }
            if let dataParallel {
                // Early stopping on one process stops them all.
                shouldStop = try dataParallel.mean([shouldStop ? 1 : 0])[0] > 0
            }
            if let outputFolder { try writeReports(to: outputFolder) }
            epoch += 1
        }
        for callback in callbacks { try callback.fitEnd(self) }
        return history
    }

    /// Restores a checkpoint written by `ModelCheckpoint` (`last.safetensors`) into `model` and
    /// `optimizer`, with the step count, learning rate and random state, and keeps the history of
    /// the epochs before it when `historyFile` holds one. Returns the epoch to continue from, for
    /// `fit(startEpoch:)`; the run then continues exactly as if it had not stopped.
    public func restore(from checkpoint: URL, model: Module, optimizer: Optimizer, historyFile: URL? = nil) throws -> Int {
        try restore(from: SafeTensorsFile(contentsOf: checkpoint), name: checkpoint.path, model: model, optimizer: optimizer,
                    historyFile: historyFile)
    }

    /// The same for a checkpoint already read; `name` stands for it in errors.
    public func restore(from file: SafeTensorsFile, name: String, model: Module, optimizer: Optimizer,
                        historyFile: URL? = nil) throws -> Int {
        // The metadata is checked before any tensor reaches the device.
        let state = try CheckpointState(metadata: file.metadata, file: name)
        guard state.epoch < maxEpochs else {
            throw TrainingError("\(name) has already trained \(state.epoch) epochs; ask for more than \(state.epoch) (--epochs) to continue.")
        }
        try Checkpoint.load(model: model, optimizer: optimizer, from: file, name: name, runSteps: state.step)
        for callback in callbacks { try callback.restore(checkpointState: file.metadata) }
        globalStep = state.step
        resumeBatches = state.batchesDone
        if let random = state.random { RandomState.state = random }
        if let rate = state.learningRate { optimizer.learningRate = rate }
        if let historyFile, let earlier = try? History(contentsOf: historyFile) {
            history = History(records: Array(earlier.records.prefix(state.epoch)))
        }
        return state.epoch
    }

    /// One epoch of training (no validation, no callbacks' epoch events); returns the mean batch
    /// loss and, for class targets (and binary targets of `BCEWithLogitsLoss`), the fraction of
    /// training samples the model classified correctly as it trained (counted on the device, inside
    /// the cross-entropy kernel for classes, and read once at the end). `fit` calls it; benchmarks
    /// call it to time an epoch alone.
    @discardableResult
    public func trainEpoch(model: Module, loss lossFunction: any Loss, optimizer: Optimizer, data: any BatchSource,
                           epoch: Int, skipping: Int = 0) throws -> (loss: Double, accuracy: Double?) {
        model.train()
        let accumulate = max(1, accumulateGradBatches)
        var lossSum: Tensor?, firstNonFinite: Tensor?   // on the device; [1] each
        var batches = 0, samples = 0
        let firstStep = globalStep + 1
        var hits: [Tensor] = []   // per-position counters; a new one when a batch outgrows the last
        var binaryHits: Tensor?   // [1]: correct binary predictions so far
        let start = DispatchTime.now().uptimeNanoseconds
        optimizer.zeroGrad()
        try data.forEachBatch(epoch: epoch, skipping: skipping) { input, target in
            let output = try model(input)
            let counting = target.dtype == .int32 && output.rank == 2 && output.shape[0] == target.count
            if counting, (hits.last?.count ?? 0) < target.count {
                hits.append(try Tensor(labels: Array(repeating: 0, count: target.count), on: output.device, blocking: false))
            }
            let loss: Tensor
            if counting, let counter = hits.last {
                samples += target.count
                if let classification = lossFunction as? CrossEntropyLoss {
                    loss = try classification(output, target, countingHitsInto: counter)
                } else {
                    loss = try lossFunction(output, target)
                    _ = try withNoGrad { try crossEntropy(logits: output, targets: target, reduction: .none, hits: counter) }
                }
            } else {
                loss = try lossFunction(output, target)
                if lossFunction is BCEWithLogitsLoss, let correct = try Self.binaryHits(logits: output, targets: target) {
                    samples += target.count
                    binaryHits = try binaryHits.map { try $0 + correct } ?? correct
                }
            }
            try (accumulate == 1 ? loss : loss / Float(accumulate)).backward()
            batches += 1
            let position = skipping + batches   // batches of this epoch done, counted from 1
            // The epoch's loss is summed on the device, which also notes the first batch whose loss
            // was not finite; nothing waits here.
            if lossSum == nil {
                lossSum = try Tensor.empty([1], on: loss.device)
                firstNonFinite = try Tensor(labels: [0], on: loss.device, blocking: false)
            }
            if let sum = lossSum, let bad = firstNonFinite {
                try loss.kernels.accumulateLoss(loss.buffer, into: sum.buffer, first: batches == 1, step: position,
                                                firstNonFinite: bad.intBuffer)
            }
            // An optimizer step every `accumulate` batches, and after the epoch's last batch.
            guard position % accumulate == 0 || position == data.batchCount else { return }
            // With several processes the gradients are averaged first, and all agree on stopping.
            let stopAgreed = try dataParallel?.averageGradients(optimizer.parameters,
                                                                stopRequested: Interrupts.received != nil)
            switch gradientClipping {
            case .norm(let maxNorm, let normType)?: try clipGradNorm(optimizer.parameters, maxNorm: maxNorm, normType: normType)
            case .value(let value)?: try clipGradValue(optimizer.parameters, value)
            case nil: break
            }
            try optimizer.step()
            optimizer.zeroGrad()
            globalStep += 1
            if let dataParallel, dataParallel.verifyReplicas { try dataParallel.verifyParameters(optimizer.parameters) }
            for callback in callbacks { try callback.batchEnd(self, step: globalStep, loss: loss) }
            // A signal stops the epoch after this step, unless it was the last (the epoch then
            // ends normally and `fit` stops before the next one).
            let signal = dataParallel == nil ? Interrupts.received : (stopAgreed == true ? Interrupts.received ?? SIGTERM : nil)
            if let signal, position < data.batchCount {
                Interrupts.reset()
                throw TrainingInterrupted(signal: signal, step: globalStep, epoch: epoch, batchesDone: position)
            }
            if (globalStep - firstStep + 1) % logEvery == 0, let sum = lossSum {
                let mean = try checkedMean(sum, batches, firstNonFinite: firstNonFinite, firstStep: firstStep, skipped: skipping)
                if progressBar {
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    drawProgress(epoch: epoch, batch: batches, of: data.batchCount, loss: mean, elapsed: elapsed)
                }
            }
        }
        if progressBar { print("\r\u{1B}[2K", terminator: "") }
        guard let sum = lossSum else { throw TrainingError("The training data has no batches.") }
        let mean = try checkedMean(sum, batches, firstNonFinite: firstNonFinite, firstStep: firstStep, skipped: skipping)
        guard samples > 0 else { return (mean, nil) }
        var correct = 0
        for counter in hits {
            let total = try Tensor(labels: [0], on: counter.device)
            try counter.kernels.sumInts(counter.intBuffer, into: total.intBuffer)
            correct += try total.toIntArray()[0]
        }
        if let binaryHits { correct += Int(try binaryHits.item()) }
        return (mean, Double(correct) / Double(samples))
    }

    /// The number of binary predictions (logit > 0) that match targets (> 0.5), as a one-element
    /// tensor on the device; nil unless logits and targets are float tensors of one shape (or
    /// logits `[N, 1]` against targets `[N]`).
    static func binaryHits(logits: Tensor, targets: Tensor) throws -> Tensor? {
        guard targets.dtype == .float32, logits.dtype == .float32 else { return nil }
        let logits = logits.shape == targets.shape + [1] ? try logits.reshaped(targets.shape) : logits
        guard logits.shape == targets.shape, targets.count > 0 else { return nil }
        return try withNoGrad { try (logits.gt(0) .== targets.gt(0.5)).sum() }
    }

    /// Reads the summed loss and stops training with a clear message when it is not finite, naming
    /// the first step whose loss was not (the device noted it in `firstNonFinite`).
    func checkedMean(_ sum: Tensor, _ batches: Int, firstNonFinite: Tensor?, firstStep: Int, skipped: Int) throws -> Double {
        let value = Double(try sum.item()) / Double(batches)
        guard value.isFinite else {
            let bad = try firstNonFinite.map { try $0.toIntArray()[0] } ?? 0
            let batch = bad > 0 ? bad : skipped + batches
            let step = firstStep + (batch - skipped - 1) / max(1, accumulateGradBatches)
            let loss = value.isNaN ? "NaN" : "infinite"
            throw TrainingError("The loss became \(loss) at step \(step) (epoch \(currentEpoch + 1), batch \(batch)); try a lower learning rate, or check the data and the weights for NaN.")
        }
        return value
    }

    /// Mean loss and accuracy of `model` over `data`, in eval mode and without recording gradients.
    /// Accuracy counts argmax hits for class targets, and for `BCEWithLogitsLoss` the logits on the
    /// right side of 0 (probability 0.5) for targets 0 and 1; nil for other targets.
    public func evaluate(model: Module, loss lossFunction: any Loss, data: any BatchSource) throws
        -> (loss: Double, accuracy: Double?) {
        model.eval()
        defer { model.train() }
        var lossSum: Tensor?
        var correct: [Tensor] = []
        var binaryCorrect: Tensor?, binarySamples = 0
        var samples = 0
        try withNoGrad {
            try data.forEachBatch(epoch: 0) { input, target in
                let logits = try model(input)
                let batchLoss = try lossFunction(logits, target) * Float(input.shape[0])
                lossSum = try lossSum.map { try $0 + batchLoss } ?? batchLoss
                samples += input.shape[0]
                if target.dtype == .int32, logits.rank == 2 {
                    let count = try Tensor(labels: [0], on: logits.device)
                    try logits.kernels.countCorrect(logits: logits.buffer, targets: target.intBuffer,
                                                    rows: logits.shape[0], classes: logits.shape[1],
                                                    into: count.intBuffer)
                    correct.append(count)
                } else if lossFunction is BCEWithLogitsLoss, let count = try Self.binaryHits(logits: logits, targets: target) {
                    binaryCorrect = try binaryCorrect.map { try $0 + count } ?? count
                    binarySamples += target.count
                }
            }
        }
        guard let lossSum, samples > 0 else { throw TrainingError("The evaluation data has no batches.") }
        let loss = Double(try lossSum.item()) / Double(samples)
        if let binaryCorrect, binarySamples > 0 { return (loss, Double(try binaryCorrect.item()) / Double(binarySamples)) }
        let hits = try correct.reduce(0) { $0 + (try $1.toIntArray()[0]) }
        return (loss, correct.isEmpty ? nil : Double(hits) / Double(samples))
    }

    /// Class predictions and probabilities (softmax of the model's output) for every sample of `data`.
    public func predict(model: Module, data: any BatchSource) throws -> (classes: [Int], probabilities: [[Float]]) {
        model.eval()
        defer { model.train() }
        var classes: [Int] = [], probabilities: [[Float]] = []
        try withNoGrad {
            try data.forEachBatch(epoch: 0) { input, _ in
                let p = try model(input).softmax()
                let columns = p.shape[1]
                let values = try p.toArray()
                for row in 0..<p.shape[0] {
                    let slice = Array(values[row * columns..<(row + 1) * columns])
                    probabilities.append(slice)
                    classes.append(slice.indices.max { slice[$0] < slice[$1] } ?? 0)
                }
            }
        }
        return (classes, probabilities)
    }

    func writeReports(to folder: URL) throws {
        try createFolder(folder, purpose: "run folder")
        try history.writeJSON(to: folder.appendingPathComponent("history.json"))
        try history.writeCSV(to: folder.appendingPathComponent("history.csv"))
        try writeAtomically(Data(SVGPlot.lossAndAccuracy(history: history).utf8),
                            to: folder.appendingPathComponent("curves.svg"))
    }

    static func describe(_ r: EpochRecord, of total: Int) -> String {
        var line = "epoch \(r.epoch)/\(total)  train_loss \(String(format: "%.4f", r.trainLoss))"
        if let a = r.trainAccuracy { line += "  train_acc \(String(format: "%.2f%%", a * 100))" }
        if let v = r.validationLoss { line += "  val_loss \(String(format: "%.4f", v))" }
        if let a = r.validationAccuracy { line += "  val_acc \(String(format: "%.2f%%", a * 100))" }
        line += "  \(String(format: "%.2f", r.seconds)) s  \(Int(r.samplesPerSecond)) samples/s"
        return line
    }

    func drawProgress(epoch: Int, batch: Int, of total: Int, loss: Double, elapsed: Double) {
        let width = 30
        let done = total > 0 ? min(width, width * batch / total) : 0
        let rate = Double(batch) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - batch) / rate : 0
        let bar = String(repeating: "=", count: done) + String(repeating: " ", count: width - done)
        print("\r\u{1B}[2Kepoch \(epoch + 1)/\(maxEpochs) [\(bar)] \(batch)/\(total)  loss \(String(format: "%.4f", loss))  \(String(format: "%.1f", rate)) it/s  ETA \(Int(eta)) s",
              terminator: "")
        fflush(nil)  // flushes every output stream, stdout included
    }
}
