import ArgumentParser
import Foundation
import Kiln
import KilnDistributed

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

            Each run writes history.json, history.csv, curves.svg, confusion.svg, samples.svg, \
            model.safetensors and last.safetensors (a checkpoint for --resume) into a new folder \
            runs/version_N, and points runs/latest at it (--out names the folder instead). The validation \
            split is held out of the training data (--val-fraction); the test set is evaluated once, at the end.

            --schedule takes one schedule or several separated by commas, which multiply \
            (warmup,cosine: a linear warm-up over the first epoch times a cosine decay).

            --json writes JSON Lines to stdout, one object per line, everything else going to stderr: \
            {"type": "epoch", "epoch", "epochs", "step", "train_loss", "train_accuracy", "val_loss", \
            "val_accuracy", "seconds", "samples_per_second", "learning_rate"} after each epoch, then \
            {"type": "result", "test_accuracy", "test_loss", "test_samples", "epoch_seconds", "device", "run_folder"} \
            (with "world_size", "allreduce_ms_per_step", "backward_wait_ms_per_step", "gradient_copy_ms_per_step" \
            and "communication_ms_per_step" under mpirun).

            mpirun -np N kiln train trains one model data-parallel on N processes (Open MPI): each takes its \
            shard of every epoch at --batch-size (the global batch is N times it), the gradients are averaged \
            every step, and rank 0 alone writes files and output.
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
    @Option(help: "Learning-rate schedule: none, step (×0.1 every 3 epochs), cosine, warmup (linear over the first epoch), onecycle (peaking at --lr after 30% of the steps), plateau (×0.1 when val_loss stalls for 2 epochs); several separated by commas multiply (warmup,cosine).")
    var schedule = "none"
    @Option(name: .customLong("clip-grad-norm"), parsing: .unconditional, help: ArgumentHelp("Scale the gradients so that their total norm is at most this (torch.nn.utils.clip_grad_norm_).", valueName: "max"))
    var clipGradNorm: Float?
    @Option(name: .customLong("clip-grad-value"), parsing: .unconditional, help: ArgumentHelp("Clamp every gradient to ±this (torch.nn.utils.clip_grad_value_).", valueName: "value"))
    var clipGradValue: Float?
    @Option(parsing: .unconditional, help: ArgumentHelp("Sum the gradients of N batches before each optimizer step (Lightning's accumulate_grad_batches).", valueName: "n"))
    var accumulate = 1
    @Option(parsing: .unconditional, help: "Seed for initialization, shuffling and dropout.", transform: wholeNumber("--seed"))
    var seed: UInt64 = 0
    @Option(name: .customLong("val-fraction"), parsing: .unconditional, help: "Fraction of the training set held out for validation after each epoch (0: no validation).")
    var valFraction: Double = 0.1
    @Option(parsing: .unconditional, help: "Use only the first N training samples.") var limit: Int?
    @Option(name: .customLong("test-limit"), parsing: .unconditional, help: "Use only the first N test samples.") var testLimit: Int?
    @Option(help: ArgumentHelp("Run folder (default: a new version_N in --runs; on --resume, the checkpoint's folder).", valueName: "dir"))
    var out: String?
    @Option(help: ArgumentHelp("Where new run folders go: DIR/version_N, with DIR/latest pointing at the newest.", valueName: "dir"))
    var runs = "runs"
    @Option(help: ArgumentHelp("Resume from a checkpoint written by an earlier run (last.safetensors).", valueName: "file"))
    var resume: String?
    @Option(name: .customLong("log-every"), parsing: .unconditional, help: "Steps between loss read-backs.") var logEvery = 100
    @Option(help: ArgumentHelp("Also write TensorBoard event files here: loss and learning rate every --log-every steps, the epoch metrics, and the confusion matrix and sample images at the end.", valueName: "dir"))
    var tensorboard: String?
    @Flag(help: "Write JSON Lines to stdout (one line per epoch, then the result; see the discussion) and everything else to stderr.")
    var json = false
    @Flag(name: .customLong("check-replicas"), help: "Under mpirun: after every step, check that every process holds bit-identical parameters (slow; for tests).")
    var checkReplicas = false
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
        if let out, out.isEmpty { throw ValidationError("--out needs a folder name; got an empty one.") }
        guard !runs.isEmpty else { throw ValidationError("--runs needs a folder name; got an empty one.") }
        if let clipGradNorm, !(clipGradNorm.isFinite && clipGradNorm > 0) {
            throw ValidationError("--clip-grad-norm must be a positive number; got \(clipGradNorm).")
        }
        if let clipGradValue, !(clipGradValue.isFinite && clipGradValue > 0) {
            throw ValidationError("--clip-grad-value must be a positive number; got \(clipGradValue).")
        }
        if clipGradNorm != nil, clipGradValue != nil {
            throw ValidationError("Give --clip-grad-norm or --clip-grad-value, not both.")
        }
        guard (1...1 << 20).contains(accumulate) else { throw ValidationError("--accumulate must be from 1 to \(1 << 20); got \(accumulate).") }
        if let resume, resume.isEmpty { throw ValidationError("--resume needs a checkpoint file; got an empty name.") }
        if let tensorboard, tensorboard.isEmpty { throw ValidationError("--tensorboard needs a folder name; got an empty one.") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number; got \(lr).") }
        guard (0..<1).contains(valFraction) else { throw ValidationError("--val-fraction must be in [0, 1); got \(valFraction).") }
        if let optimizer, !Self.optimizers.contains(optimizer.lowercased()) {
            throw ValidationError("--optimizer must be sgd, adam, adamw or rmsprop; got \"\(optimizer)\".")
        }
        let schedules = schedule.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard schedules.allSatisfy(Self.schedules.contains) else {
            throw ValidationError("--schedule takes \(Self.schedules.joined(separator: ", ")), or several separated by commas; got \"\(schedule)\".")
        }
        if schedules.contains("plateau") {
            guard schedules.count == 1 else { throw ValidationError("--schedule plateau follows the validation loss and cannot be combined; got \"\(schedule)\".") }
            guard valFraction > 0 else { throw ValidationError("--schedule plateau needs validation data: give --val-fraction above 0.") }
        }
        if let limit, limit < 2 { throw ValidationError("--limit must be ≥ 2; got \(limit).") }
        if let testLimit, testLimit < 1 { throw ValidationError("--test-limit must be ≥ 1; got \(testLimit).") }
        _ = try architecture.spec(inputs: 1, classes: 1)
        guard !model.isEmpty else { throw ValidationError("--model takes mlp, cnn or FILE.json; got an empty name.") }
    }

    static let schedules = ["none", "step", "cosine", "warmup", "onecycle", "plateau"]

    /// This process's rank in a data-parallel run started by `mpirun` (0 otherwise): only rank 0
    /// writes files and output.
    var rank: Int {
        let environment = ProcessInfo.processInfo.environment
        return (environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMIX_RANK"]).flatMap { Int($0) } ?? 0
    }

    /// What this process writes for people and scripts: everything on rank 0 (or alone), nothing
    /// on the other ranks of a data-parallel run.
    func console(for group: MPIProcessGroup?) -> Console { Console(json: json, silent: (group?.rank ?? 0) != 0) }

    func run() throws {
        Interrupts.install()
        let folder = RunFolderChoice()
        // `mpirun -np N kiln train`: N processes train one model data-parallel.
        var group: MPIProcessGroup?
        do {
            group = (MPIProcessGroup.launchedSize ?? 1) > 1 ? try MPIProcessGroup() : nil
        } catch { throw Failure(error) }
        if let alone = group, alone.size < 2 {
            // The environment said mpirun, but MPI found this process alone: train as one.
            alone.finalize()
            group = nil
        }
        if group != nil { shareCores() }
        do {
            try train(folder: folder, group: group)
            group?.finalize()
        } catch let stop as TrainingInterrupted {
            let last = (folder.url ?? URL(fileURLWithPath: out ?? runs)).appendingPathComponent("last.safetensors").path
            let console = console(for: group)
            console.say("\(stop) Saved \(last); continue with: kiln train --resume \(last) (and the same flags).")
            try? console.emit(["type": "interrupted", "signal": stop.signal, "step": stop.step, "checkpoint": last])
            fflush(nil)
            group?.finalize()
            throw ExitCode(stop.exitStatus)
        } catch let error as DistributedError {
            // Every process found the same mismatch: each says so and they end together.
            FileHandle.standardError.write(Data("Error (rank \(group?.rank ?? 0)): \(error)\n".utf8))
            group?.finalize()
            throw ExitCode.failure
        } catch {
            guard let group else {
                if let error = error as? ValidationError { throw error }
                throw Failure(error)
            }
            // One process failed: it says why and ends the job, so the others never wait for it.
            let message = (error as? ValidationError)?.message ?? Failure(error).description
            FileHandle.standardError.write(Data("Error (rank \(group.rank) of \(group.size)): \(message)\n".utf8))
            group.abort(code: 1)
        }
    }

    /// Limits PoCL to this process's share of the machine's cores (unless POCL_CPU_MAX_CU_NUM is
    /// set), so N processes on one machine do not each start a thread per core, and drops
    /// POCL_AFFINITY, which would pin them all to the same cores.
    func shareCores() {
        // PoCL's affinity pins every process's threads to the same first cores: measured here,
        // it made two processes on two cores 2.6 times slower.
        if ProcessInfo.processInfo.environment["POCL_AFFINITY"] != nil, (MPIProcessGroup.localSize ?? 1) > 1 {
            if rank == 0 { FileHandle.standardError.write(Data("kiln: warning: POCL_AFFINITY is ignored under mpirun (it would pin every process to the same cores).\n".utf8)) }
            unsetenv("POCL_AFFINITY")
        }
        guard ProcessInfo.processInfo.environment["POCL_CPU_MAX_CU_NUM"] == nil else { return }
        let share = max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, MPIProcessGroup.localSize ?? 1))
        setenv("POCL_CPU_MAX_CU_NUM", String(share), 1)
    }

    /// `--out`, else the folder of the checkpoint `--resume` continues, else a new `runs/version_N`.
    func runFolder() throws -> URL {
        if let out {
            let folder = URL(fileURLWithPath: out)
            try createFolder(folder, purpose: "run folder")
            return folder
        }
        if let resume { return URL(fileURLWithPath: resume).deletingLastPathComponent() }
        return try RunFolder.create(in: URL(fileURLWithPath: runs))
    }

    /// The run folder, made once the data, the model and the checkpoint have been checked (so a
    /// run refused for bad input leaves no empty version folder behind).
    final class RunFolderChoice { var url: URL? }

    func train(folder choice: RunFolderChoice, group: MPIProcessGroup?) throws {
        let console = console(for: group)
        let device = try deviceOptions.open(profiling: profile)
        console.say("Device: \(device)")
        RandomState.manualSeed(seed)

        let full = try MNISTDataset(folder: dataOptions.folder, split: .train, limit: limit)
        let test = try MNISTDataset(folder: dataOptions.folder, split: .test, limit: testLimit)
        let trainSet: MNISTDataset, validationSet: MNISTDataset?
        if valFraction > 0 {
            (trainSet, validationSet) = try full.split(validationFraction: valFraction, seed: seed)
        } else {
            (trainSet, validationSet) = (full, nil)
        }
        console.say("Data: \(trainSet.count) training, \(validationSet.map { "\($0.count) validation" } ?? "no validation") and \(test.count) test samples from \(dataOptions.data)")

        let spec = try architecture.architecture(self.model, features: full.features, featureShape: full.featureShape,
                                                 classes: full.classes)
        let model = try spec.makeModel(on: device)
        console.say("Model: \(self.model), \(try spec.parameterCount()) parameters, input \(spec.inputShape ?? [full.features])\(augment ? ", augmented" : "")")
        // On --resume the checkpoint's state is read (and checked) first: flags given on the command
        // line win over it; flags left out take the checkpoint's values.
        let checkpoint = try resume.map { try SafeTensorsFile(contentsOf: URL(fileURLWithPath: $0)) }
        let resumed = try resume.flatMap { path in try checkpoint.map { try CheckpointState(metadata: $0.metadata, file: path) } }
        let optimizerName = try chooseOptimizer(resumed)
        let lr = self.lr ?? resumed?.baseLearningRate ?? 1e-3
        let optimizer = try makeOptimizer(optimizerName, lr: lr, model.parameters)
        let trainLoader = try DataLoader(trainSet, batchSize: batchSize, shuffle: true, seed: seed, on: device)
        let parallel = group.map { DataParallel(group: $0) }
        if let group {
            // Each process takes its shard of every epoch (DistributedSampler); the settings that
            // must agree are checked across the processes before anything trains.
            trainLoader.shard = try DataLoader.Shard(rank: group.rank, count: group.size)
            let configuration = [try spec.json(), "\(batchSize) \(lr) \(optimizerName) \(seed) \(epochs) \(schedule) \(valFraction)",
                                 "\(limit ?? -1) \(accumulate) \(String(describing: clipGradNorm)) \(String(describing: clipGradValue))",
                                 "\(momentum) \(String(describing: weightDecay)) \(checkReplicas) \(testLimit ?? -1)",
                                 "\(augment) \(trainSet.count) \(test.count) \(resume ?? "")"].joined(separator: "|")
            try parallel?.checkConfiguration(configuration)
            if let resumed, resumed.worldSize != group.size {
                throw ValidationError("\(resume ?? "The checkpoint") was trained by \(resumed.worldSize) process(es); resume it with mpirun -np \(resumed.worldSize).")
            }
            console.say("Data parallel: \(group.size) processes, \(trainLoader.batchesPerEpoch) batches of \(batchSize) each per epoch (global batch \(batchSize * group.size))")
        } else if let resumed, resumed.worldSize != 1 {
            throw ValidationError("\(resume ?? "The checkpoint") was trained by \(resumed.worldSize) processes; resume it with mpirun -np \(resumed.worldSize).")
        }
        let validationLoader = try validationSet.map { try DataLoader($0, batchSize: 1000, on: device) }
        let testLoader = try DataLoader(test, batchSize: 1000, on: device)
        for loader in [trainLoader, validationLoader, testLoader].compactMap({ $0 }) { loader.inputShape = spec.inputShape }
        if augment {
            guard spec.inputShape?.count == 3 else {
                throw ValidationError("--augment needs an image model (its input [C, H, W]); \(self.model) takes \(spec.inputShape ?? [])).")
            }
            trainLoader.augmentation = Augmentation(cropPadding: 2)
        }

        // Only rank 0 writes files: the run folder, checkpoints, plots, TensorBoard.
        let writes = (group?.rank ?? 0) == 0
        let folder = writes ? try runFolder() : FileManager.default.temporaryDirectory
        if writes { choice.url = folder }
        console.say("Run folder: \(folder.path)")
        var metadata = [ModelSpec.metadataKey: try spec.json(), "seed": String(seed), "optimizer": optimizerName,
                        "base_learning_rate": String(lr)]
        if let group { metadata[CheckpointState.worldSizeKey] = String(group.size) }
        var callbacks: [any Callback] = []
        let stepsPerEpoch = (trainLoader.batchesPerEpoch + accumulate - 1) / accumulate
        var chain: [LRSchedule] = []
        for name in schedule.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            switch name {
            case "step": chain.append(.step(stepSize: 3, gamma: 0.1))
            case "cosine": chain.append(.cosine(period: epochs, minimum: 0))
            case "warmup": chain.append(.linearWarmup(steps: stepsPerEpoch, startFactor: 0.1))
            case "onecycle": chain.append(.oneCycle(totalSteps: max(1, epochs * stepsPerEpoch)))
            case "plateau": callbacks.append(try ReduceLROnPlateau(monitor: "val_loss", patience: 2))
            default: break
            }
        }
        if !chain.isEmpty { callbacks.append(LRScheduler(chain.count == 1 ? chain[0] : .chained(chain), base: Double(lr))) }
        let board = writes ? try tensorboard.map { try TensorBoardLogger(folder: URL(fileURLWithPath: $0)) } : nil
        if let board { callbacks.insert(board, at: 0) }   // before the scheduler: it logs the rate each step used
        if json { callbacks.append(EpochLines(console: console, epochs: epochs)) }
        // Last: the checkpoint records what the callbacks before it changed at the epoch's end
        // (ReduceLROnPlateau's rate and counters).
        if writes {
            callbacks.append(ModelCheckpoint(folder: folder, monitor: validationSet == nil ? "train_loss" : "val_accuracy",
                                             metadata: metadata))
        }
        let trainer = Trainer(maxEpochs: epochs, callbacks: callbacks, logEvery: logEvery, outputFolder: writes ? folder : nil)
        trainer.accumulateGradBatches = accumulate
        trainer.dataParallel = parallel
        parallel?.verifyReplicas = checkReplicas
        if !writes {
            trainer.log = { _ in }
            trainer.progressBar = false
        }
        if let clipGradNorm { trainer.gradientClipping = .norm(clipGradNorm) }
        if let clipGradValue { trainer.gradientClipping = .value(clipGradValue) }
        if json {
            trainer.log = { [console] line in console.say(line) }
            trainer.progressBar = false
        }
        var startEpoch = 0
        if let resume, let checkpoint {
            startEpoch = try trainer.restore(from: checkpoint, name: resume, model: model, optimizer: optimizer,
                                             historyFile: writes ? folder.appendingPathComponent("history.json") : nil)
            console.say("Resumed from \(resume) after epoch \(startEpoch) (step \(trainer.globalStep)).")
            if let given = self.lr, let recorded = resumed?.learningRate, given != recorded {
                optimizer.learningRate = given
                console.say("Learning rate: --lr \(given) replaces the checkpoint's \(recorded).")
            }
        }
        if let group, group.rank > 0 {
            // Dropout and augmentation draw numbers of their own on every process.
            let state = RandomState.state
            RandomState.state = (DataParallel.rankSeed(state.seed, rank: group.rank), state.offset)
        }
        let history = try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, train: trainLoader,
                                      validation: validationLoader, startEpoch: startEpoch)

        if profile {
            let steps = max(trainer.globalStep, 1)
            let stats = device.pool.statistics
            console.say("Profile: \(device.queue.launches) kernel launches, \(String(format: "%.1f", Double(device.queue.launches) / Double(steps))) per step (validation included); pool \(stats.hits) hits, \(stats.misses) misses, \(formatBytes(stats.peakBytesLive)) peak live")
            console.say(device.queue.profiler.table(top: 15))
        }
        let (testLoss, testAccuracy) = try trainer.evaluate(model: model, loss: CrossEntropyLoss(), data: testLoader)
        console.say(String(format: "Test accuracy: %.2f%%  (loss %.4f, %d images)", (testAccuracy ?? 0) * 100, testLoss, test.count))
        var result: [String: Any] = ["type": "result", "test_accuracy": testAccuracy ?? 0, "test_loss": testLoss, "test_samples": test.count,
                                     "epoch_seconds": history.records.map(\.seconds), "device": device.info.name,
                                     "run_folder": folder.path]
        if let parallel {
            func perStep(_ seconds: Double) -> Double { seconds / Double(max(parallel.steps, 1)) * 1e3 }
            console.say(String(format: "Data parallel: %d processes, %d steps; per step %.3f ms averaging gradients: %.3f ms waiting for the backward pass, %.3f ms copying, %.3f ms in allreduce",
                               parallel.group.size, parallel.steps, perStep(parallel.allReduceSeconds), perStep(parallel.waitSeconds),
                               perStep(parallel.copySeconds), perStep(parallel.communicationSeconds)))
            result["world_size"] = parallel.group.size
            result["allreduce_ms_per_step"] = perStep(parallel.allReduceSeconds)
            result["backward_wait_ms_per_step"] = perStep(parallel.waitSeconds)
            result["gradient_copy_ms_per_step"] = perStep(parallel.copySeconds)
            result["communication_ms_per_step"] = perStep(parallel.communicationSeconds)
        }
        guard writes else { return }
        try Checkpoint.saveModel(model, to: folder.appendingPathComponent("model.safetensors"), metadata: metadata)
        try writePlots(model: model, trainer: trainer, test: test, loader: testLoader, folder: folder, tensorboard: board)
        console.say("Wrote \(folder.path)/model.safetensors, history.json, history.csv and plots.")
        try console.emit(result)
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

/// `kiln train --json`: one JSON line per epoch.
final class EpochLines: Callback {
    let console: Console, epochs: Int
    init(console: Console, epochs: Int) { (self.console, self.epochs) = (console, epochs) }

    func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {
        var line: [String: Any] = ["type": "epoch", "epochs": epochs, "step": trainer.globalStep]
        for name in ["epoch"] + EpochRecord.metricNames { line[name] = record.value(of: name) ?? NSNull() }
        line["epoch"] = record.epoch
        try console.emit(line)
    }
}
