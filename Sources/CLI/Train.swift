import ArgumentParser
import Foundation
import Kiln

/// `--data DIR`: any MNIST-format folder.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("An MNIST-format folder (train-images-idx3-ubyte.gz, ...).", valueName: "dir"))
    var data = MNISTDataset.defaultFolder.path

    var folder: URL { URL(fileURLWithPath: data) }
}

/// `kiln train`: trains a model on an MNIST-format data set.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model (the MLP by default, --model cnn, or your own architecture) on an MNIST-format data set (Fashion-MNIST by default) and report test accuracy.",
        discussion: """
            --model FILE.json takes a JSON array of layers (or an object with "layers"), for example \
            [{"type": "Conv2d", "in": 1, "out": 12, "kernel": 5, "stride": 2, "padding": 2}, {"type": "ReLU"}, \
            {"type": "Flatten"}, {"type": "Linear", "in": 2352, "out": 10}].

            Writes history.json, history.csv, curves.svg, confusion.svg, samples.svg, model.safetensors \
            and last.safetensors (a checkpoint for --resume) into --out.
            """)

    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var dataOptions: DataOptions
    @Option(help: ArgumentHelp("The architecture: mlp (with --hidden, --activation, --batchnorm, --dropout), cnn, or FILE.json (a list of layers).", valueName: "name"))
    var model = "mlp"
    @OptionGroup var architecture: ArchitectureOptions
    @Flag(help: "Augment the training images on the device: a random crop from a 2-pixel zero padding and a random horizontal flip (image models).")
    var augment = false

    @Option(parsing: .unconditional, help: "Epochs to train.") var epochs = 10
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Samples per batch.") var batchSize = 128
    @Option(help: "Optimizer: sgd, adam, adamw or rmsprop (default adam; on --resume, the checkpoint's).") var optimizer: String?
    @Option(parsing: .unconditional, help: "Learning rate (default 0.001; on --resume, the checkpoint's unless given).") var lr: Float?
    @Option(parsing: .unconditional, help: "Momentum (sgd, rmsprop).") var momentum: Float = 0
    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: "Weight decay (adamw default 0.01).") var weightDecay: Float?
    @Option(help: "Learning-rate schedule: none, step (×0.1 every 3 epochs), cosine, or warmup (linear over the first epoch).")
    var schedule = "none"
    @Option(parsing: .unconditional, help: "Seed for initialization, shuffling and dropout.", transform: wholeNumber("--seed"))
    var seed: UInt64 = 0
    @Option(name: .customLong("val-fraction"), parsing: .unconditional, help: "Fraction of the training set held out for validation (0: validate on the test set).")
    var valFraction: Double = 0
    @Option(parsing: .unconditional, help: "Use only the first N training samples.") var limit: Int?
    @Option(name: .customLong("test-limit"), parsing: .unconditional, help: "Use only the first N test samples.") var testLimit: Int?
    @Option(help: ArgumentHelp("Run folder.", valueName: "dir")) var out = "runs/latest"
    @Option(help: ArgumentHelp("Resume from a checkpoint written by an earlier run (last.safetensors).", valueName: "file"))
    var resume: String?
    @Option(name: .customLong("log-every"), parsing: .unconditional, help: "Steps between loss read-backs.") var logEvery = 100
    @Option(help: ArgumentHelp("Also write TensorBoard event files here: loss and learning rate every --log-every steps, the epoch metrics, and the confusion matrix and sample images at the end.", valueName: "dir"))
    var tensorboard: String?
    @Flag(help: "End with one JSON line: test accuracy, epoch seconds, device.") var json = false
    @Flag(help: "Record each kernel's device time (OpenCL profiling events) and print the top kernels, launches per step and pool statistics at the end.")
    var profile = false

    func validate() throws {
        guard (1...CheckpointState.maxEpochs).contains(epochs) else {
            throw ValidationError("--epochs must be from 1 to \(CheckpointState.maxEpochs); got \(epochs).")
        }
        guard (1...1 << 24).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to \(1 << 24); got \(batchSize).") }
        guard momentum.isFinite, momentum >= 0 else { throw ValidationError("--momentum must be a finite number ≥ 0; got \(momentum).") }
        if let weightDecay, !(weightDecay.isFinite && weightDecay >= 0) {
            throw ValidationError("--weight-decay must be a finite number ≥ 0; got \(weightDecay).")
        }
        guard logEvery >= 1 else { throw ValidationError("--log-every must be ≥ 1; got \(logEvery).") }
        guard !out.isEmpty else { throw ValidationError("--out needs a folder name; got an empty one.") }
        if let resume, resume.isEmpty { throw ValidationError("--resume needs a checkpoint file; got an empty name.") }
        if let tensorboard, tensorboard.isEmpty { throw ValidationError("--tensorboard needs a folder name; got an empty one.") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number; got \(lr).") }
        guard (0..<1).contains(valFraction) else { throw ValidationError("--val-fraction must be in [0, 1); got \(valFraction).") }
        if let optimizer, !Self.optimizers.contains(optimizer.lowercased()) {
            throw ValidationError("--optimizer must be sgd, adam, adamw or rmsprop; got \"\(optimizer)\".")
        }
        guard ["none", "step", "cosine", "warmup"].contains(schedule) else {
            throw ValidationError("--schedule must be none, step, cosine or warmup; got \"\(schedule)\".")
        }
        if let limit, limit < 2 { throw ValidationError("--limit must be ≥ 2; got \(limit).") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be ≥ 1; got \(testLimit).") }
        _ = try architecture.spec(inputs: 1, classes: 1)
        guard !model.isEmpty else { throw ValidationError("--model takes mlp, cnn or FILE.json; got an empty name.") }
    }

    func run() throws {
        Interrupts.install()
        do { try train() } catch let stop as TrainingInterrupted {
            let last = URL(fileURLWithPath: out).appendingPathComponent("last.safetensors").path
            print("\(stop) Saved \(last); continue with: kiln train --resume \(last) --out \(out) (and the same flags).")
            fflush(nil)
            throw ExitCode(stop.exitStatus)
        } catch let error as ValidationError { throw error } catch { throw Failure(error) }
    }

    func train() throws {
        let device = try deviceOptions.open(profiling: profile)
        print("Device: \(device)")
        RandomState.manualSeed(seed)
        let folder = URL(fileURLWithPath: out)
        try createFolder(folder, purpose: "run folder")

        let full = try MNISTDataset(folder: dataOptions.folder, split: .train, limit: limit)
        let test = try MNISTDataset(folder: dataOptions.folder, split: .test, limit: testLimit)
        let (trainSet, validationSet): (MNISTDataset, MNISTDataset)
        if valFraction > 0 {
            (trainSet, validationSet) = try full.split(validationFraction: valFraction, seed: seed)
        } else {
            (trainSet, validationSet) = (full, test)
        }
        print("Data: \(trainSet.count) training, \(validationSet.count) \(valFraction > 0 ? "validation" : "test (validation)") samples from \(dataOptions.data)")

        let spec = try architecture.architecture(self.model, features: full.features, featureShape: full.featureShape,
                                                 classes: full.classes)
        let model = try spec.makeModel(on: device)
        print("Model: \(self.model), \(try spec.parameterCount()) parameters, input \(spec.inputShape ?? [full.features])\(augment ? ", augmented" : "")")
        // On --resume the checkpoint's state is read (and checked) first: flags given on the command
        // line win over it; flags left out take the checkpoint's values.
        let checkpoint = try resume.map { try SafeTensorsFile(contentsOf: URL(fileURLWithPath: $0)) }
        let resumed = try resume.flatMap { path in try checkpoint.map { try CheckpointState(metadata: $0.metadata, file: path) } }
        let optimizerName = try chooseOptimizer(resumed)
        let lr = self.lr ?? resumed?.baseLearningRate ?? 1e-3
        let optimizer = try makeOptimizer(optimizerName, lr: lr, model.parameters)
        let trainLoader = try DataLoader(trainSet, batchSize: batchSize, shuffle: true, seed: seed, on: device)
        let validationLoader = try DataLoader(validationSet, batchSize: 1000, on: device)
        let testLoader = try DataLoader(test, batchSize: 1000, on: device)
        for loader in [trainLoader, validationLoader, testLoader] { loader.inputShape = spec.inputShape }
        if augment {
            guard spec.inputShape?.count == 3 else {
                throw ValidationError("--augment needs an image model (its input [C, H, W]); \(self.model) takes \(spec.inputShape ?? [])).")
            }
            trainLoader.augmentation = Augmentation(cropPadding: 2)
        }

        let metadata = [ModelSpec.metadataKey: try spec.json(), "seed": String(seed), "optimizer": optimizerName,
                        "base_learning_rate": String(lr)]
        var callbacks: [any Callback] = [ModelCheckpoint(folder: folder, monitor: "val_accuracy", metadata: metadata)]
        switch schedule {
        case "step": callbacks.append(LRScheduler(.step(stepSize: 3, gamma: 0.1), base: Double(lr)))
        case "cosine": callbacks.append(LRScheduler(.cosine(period: epochs, minimum: 0), base: Double(lr)))
        case "warmup": callbacks.append(LRScheduler(.linearWarmup(steps: trainLoader.batchesPerEpoch, startFactor: 0.1), base: Double(lr)))
        default: break
        }
        let board = try tensorboard.map { try TensorBoardLogger(folder: URL(fileURLWithPath: $0)) }
        if let board { callbacks.insert(board, at: 0) }   // before the scheduler: it logs the rate each step used
        let trainer = Trainer(maxEpochs: epochs, callbacks: callbacks, logEvery: logEvery, outputFolder: folder)
        var startEpoch = 0
        if let resume, let checkpoint {
            startEpoch = try trainer.restore(from: checkpoint, name: resume, model: model, optimizer: optimizer,
                                             historyFile: folder.appendingPathComponent("history.json"))
            print("Resumed from \(resume) after epoch \(startEpoch) (step \(trainer.globalStep)).")
            if let given = self.lr, let recorded = resumed?.learningRate, given != recorded {
                optimizer.learningRate = given
                print("Learning rate: --lr \(given) replaces the checkpoint's \(recorded).")
            }
        }
        let history = try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, train: trainLoader,
                                      validation: validationLoader, startEpoch: startEpoch)

        if profile {
            let steps = max(trainer.globalStep, 1)
            let stats = device.pool.statistics
            print("Profile: \(device.queue.launches) kernel launches, \(String(format: "%.1f", Double(device.queue.launches) / Double(steps))) per step (validation included); pool \(stats.hits) hits, \(stats.misses) misses, \(formatBytes(stats.peakBytesLive)) peak live")
            print(device.queue.profiler.table(top: 15))
        }
        let (testLoss, testAccuracy) = try trainer.evaluate(model: model, loss: CrossEntropyLoss(), data: testLoader)
        print(String(format: "Test accuracy: %.2f%%  (loss %.4f, %d images)", (testAccuracy ?? 0) * 100, testLoss, test.count))
        try Checkpoint.saveModel(model, to: folder.appendingPathComponent("model.safetensors"), metadata: metadata)
        try writePlots(model: model, trainer: trainer, test: test, loader: testLoader, folder: folder, tensorboard: board)
        print("Wrote \(folder.path)/model.safetensors, history.json, history.csv and plots.")
        if json {
            let line: [String: Any] = ["test_accuracy": testAccuracy ?? 0, "test_loss": testLoss,
                                       "epoch_seconds": history.records.map(\.seconds), "device": device.info.name]
            print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    static let optimizers = ["sgd", "adam", "adamw", "rmsprop"]

    /// `--optimizer`, or the resumed checkpoint's, or adam. A checkpoint's optimizer state belongs
    /// to its optimizer: asking for another one on --resume is an error.
    func chooseOptimizer(_ resumed: CheckpointState?) throws -> String {
        let recorded = resumed?.optimizer.map { $0.lowercased() }
        if let recorded, !Self.optimizers.contains(recorded) {
            throw Failure(message: "The checkpoint records optimizer \"\(recorded)\", which kiln train does not know; the file is damaged.")
        }
        if let given = optimizer?.lowercased(), let recorded, given != recorded {
            throw ValidationError("--optimizer \(given) cannot continue a checkpoint trained with \(recorded) (its optimizer state is \(recorded)'s); leave --optimizer out or give \(recorded).")
        }
        return optimizer?.lowercased() ?? recorded ?? "adam"
    }

    func makeOptimizer(_ name: String, lr: Float, _ parameters: [Tensor]) throws -> Optimizer {
        switch name {
        case "sgd": return try SGD(parameters, lr: lr, momentum: momentum, weightDecay: weightDecay ?? 0)
        case "adamw": return try AdamW(parameters, lr: lr, weightDecay: weightDecay ?? 0.01)
        case "rmsprop": return try RMSprop(parameters, lr: lr, weightDecay: weightDecay ?? 0, momentum: momentum)
        default: return try Adam(parameters, lr: lr, weightDecay: weightDecay ?? 0)
        }
    }
}

/// The confusion matrix and the sample grid of a trained model on the test set.
func writePlots(model: Module, trainer: Trainer, test: MNISTDataset, loader: DataLoader, folder: URL,
                tensorboard: TensorBoardLogger? = nil) throws {
    let (predicted, _) = try trainer.predict(model: model, data: loader)
    var matrix = Array(repeating: Array(repeating: 0, count: test.classes), count: test.classes)
    for (p, t) in zip(predicted, test.labels) where p < test.classes && t < test.classes { matrix[t][p] += 1 }
    try SVGPlot.write(SVGPlot.confusionMatrix(matrix, classNames: test.classNames),
                      to: folder.appendingPathComponent("confusion.svg"))
    let shown = min(32, test.count)
    let images = (0..<shown).map { Array(test.images[$0 * test.features..<($0 + 1) * test.features]) }
    try SVGPlot.write(SVGPlot.imageGrid(images: images, predicted: Array(predicted.prefix(shown)),
                                        truth: Array(test.labels.prefix(shown)), classNames: test.classNames),
                      to: folder.appendingPathComponent("samples.svg"))
    try tensorboard?.logConfusionMatrix(matrix, step: trainer.globalStep)
    try tensorboard?.logSamples(images: images, predicted: Array(predicted.prefix(shown)), truth: Array(test.labels.prefix(shown)),
                                step: trainer.globalStep)
    try tensorboard?.close()
}
