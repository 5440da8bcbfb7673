import Foundation
import Kiln
import KilnTestSupport
import Testing

/// A fixed list of batches for the trainer: `batches` batches of 8 samples of 4 features, 3 classes.
private struct Batches: BatchSource {
    let inputs: [Tensor], targets: [Tensor]
    var sampleCount: Int { 8 * inputs.count }
    var batchCount: Int { inputs.count }
    func forEachBatch(epoch: Int, _ body: (Tensor, Tensor) throws -> Void) throws {
        for (x, y) in zip(inputs, targets) { try body(x, y) }
    }

    init(count: Int, nanAt: Int? = nil, on device: Device) throws {
        var inputs: [Tensor] = [], targets: [Tensor] = []
        for b in 0..<count {
            var values = randomFloats(32, seed: UInt64(b + 1))
            if b == nanAt { values[5] = .nan }
            inputs.append(try Tensor(values, shape: [8, 4], on: device))
            targets.append(try Tensor(labels: (0..<8).map { ($0 + b) % 3 }, on: device))
        }
        self.inputs = inputs
        self.targets = targets
    }
}

/// A quiet trainer.
private func quietTrainer(_ epochs: Int, _ callbacks: [any Callback] = [], logEvery: Int = 1000, folder: URL? = nil) -> Trainer {
    let trainer = Trainer(maxEpochs: epochs, callbacks: callbacks, logEvery: logEvery, outputFolder: folder)
    trainer.log = { _ in }
    trainer.progressBar = false
    return trainer
}

/// Stops training (as SIGINT would) right after step `step`.
private final class InterruptAt: Callback {
    let step: Int
    init(step: Int) { self.step = step }
    func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws {
        if step == self.step { Interrupts.request(SIGINT) }
    }
}

@Suite("reliability: checkpoints, NaN, signals, files", .serialized)
struct ReliabilityTests {
    @Test("checkpoint metadata is validated before anything loads: epochs, steps, random state, learning rate")
    func checkpointState() throws {
        let good = ["epoch": "2", "step": "30", "rng_seed": "7", "rng_offset": "1024", "learning_rate": "0.001",
                    "optimizer": "adam", "epoch_batches": "3"]
        let state = try CheckpointState(metadata: good, file: "last.safetensors")
        #expect(state.epoch == 2 && state.step == 30 && state.batchesDone == 3 && state.random?.offset == 1024)
        #expect(try CheckpointState(metadata: state.metadata, file: "again") == state)

        let bad: [(String, String, String)] = [
            ("epoch", "-1", "epoch \"-1\""), ("epoch", "999999999", "from 0 to 1000000"), ("epoch", "1.5", "epoch \"1.5\""),
            ("step", "nan", "step \"nan\""), ("step", "9223372036854775807", "from 0 to 2147483647"), ("step", "-3", "step \"-3\""),
            ("step", "2", "every epoch takes at least a step"), ("epoch_batches", "-2", "epoch_batches"), ("world_size", "0", "world_size"),
            ("rng_seed", "-1", "random state"), ("learning_rate", "-1", "learning_rate \"-1\""),
            ("learning_rate", "nan", "learning_rate \"nan\""), ("learning_rate", "inf", "learning_rate \"inf\""),
        ]
        for (key, value, text) in bad {
            var meta = good
            meta[key] = value
            let error = #expect(throws: TrainingError.self, "\(key)=\(value)") { try CheckpointState(metadata: meta, file: "x.safetensors") }
            #expect(error?.description.contains(text) == true && error?.description.hasPrefix("x.safetensors: ") == true,
                    "\(key)=\(value): \(String(describing: error))")
        }
        var half = good
        half["rng_offset"] = nil
        #expect(throws: TrainingError.self) { try CheckpointState(metadata: half, file: "x") }
        #expect(throws: TrainingError.self) { try CheckpointState(metadata: ["epoch": "1"], file: "model file") }
    }

    @Test("a forged checkpoint resumed into a folder with a history fails cleanly; missing or partial optimizer state is refused")
    func forgedCheckpoints() throws {
        let device = try TestDevice.get()
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let data = try Batches(count: 3, on: device)
        func fresh() throws -> (Sequential, Adam) {
            let model = try Sequential(Linear(4, 5, seed: 1, on: device), ReLU(), Linear(5, 3, seed: 2, on: device))
            return (model, try Adam(model.parameters, lr: 0.01))
        }
        let (model, optimizer) = try fresh()
        let checkpoint = ModelCheckpoint(folder: folder.url, monitor: "train_loss")
        try quietTrainer(2, [checkpoint], folder: folder.url).fit(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, train: data)
        let last = folder.url.appendingPathComponent("last.safetensors")
        let original = try SafeTensorsFile(contentsOf: last)
        #expect(FileManager.default.fileExists(atPath: folder.url.appendingPathComponent("history.json").path))

        func forged(_ change: (inout SafeTensorsFile) -> Void) throws -> URL {
            var file = original
            change(&file)
            let url = folder.url.appendingPathComponent("forged.safetensors")
            try file.write(to: url)
            return url
        }
        func expectRefused(_ url: URL, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let (model, optimizer) = try fresh()
            let before = try model.parameters[0].toArray()
            let error = #expect(throws: (any Error).self, sourceLocation: sourceLocation) {
                _ = try quietTrainer(4).restore(from: url, model: model, optimizer: optimizer,
                                                historyFile: folder.url.appendingPathComponent("history.json"))
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains(text), "\(String(describing: error))", sourceLocation: sourceLocation)
            #expect(try model.parameters[0].toArray() == before, "a refused checkpoint changed the model", sourceLocation: sourceLocation)
        }
        try expectRefused(try forged { $0.metadata["epoch"] = "-1" }, "epoch \"-1\"")
        try expectRefused(try forged { $0.metadata["step"] = "9223372036854775807" }, "step")
        try expectRefused(try forged { $0.metadata["learning_rate"] = "-1" }, "learning_rate")
        try expectRefused(try forged { file in file.tensors = file.tensors.filter { !$0.key.hasPrefix("optimizer.") } }, "no optimizer state")
        try expectRefused(try forged { $0.tensors["optimizer.state.1.exp_avg_sq"] = nil }, "lacks [\"exp_avg_sq\"]")
        try expectRefused(try forged { file in file.tensors = file.tensors.filter { !$0.key.hasPrefix("optimizer.state.2.") } }, "parameter 2")
        try expectRefused(try forged { $0.tensors["optimizer.state.0.step"] = try? SafeTensor(floats: [1e9], shape: []) }, "steps in a run of")
        try expectRefused(try forged { $0.tensors["0.weight"] = try? SafeTensor(floats: Array(repeating: 0, count: 12), shape: [3, 4]) },
                          "shape mismatch")
        try expectRefused(try forged { $0.metadata["epoch"] = "4"; $0.metadata["step"] = "12" }, "already trained 4 epochs")
        // A position inside the epoch past the data's batches is refused when training would start.
        let (model2, optimizer2) = try fresh()
        let trainer = quietTrainer(4)
        let start = try trainer.restore(from: try forged { $0.metadata["epoch"] = "1"; $0.metadata["epoch_batches"] = "3" },
                                        model: model2, optimizer: optimizer2)
        let past = #expect(throws: TrainingError.self) {
            try trainer.fit(model: model2, loss: CrossEntropyLoss(), optimizer: optimizer2, train: data, startEpoch: start)
        }
        #expect(past?.description.contains("3 batches into epoch 2, but an epoch of this data has 3") == true, "\(String(describing: past))")
    }

    @Test("the NaN guard names the first step whose loss was not finite, read once at the end of the epoch")
    func nanGuardNamesTheStep() throws {
        let device = try TestDevice.get()
        let model = try Sequential(Linear(4, 5, seed: 1, on: device), ReLU(), Linear(5, 3, seed: 2, on: device))
        let trainer = quietTrainer(1)
        let launchesBefore = device.queue.launches
        let error = #expect(throws: TrainingError.self) {
            try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: SGD(model.parameters, lr: 0.1),
                            train: Batches(count: 9, nanAt: 3, on: device))
        }
        #expect(error?.description.contains("NaN at step 4 (epoch 1, batch 4)") == true, "\(String(describing: error))")
        #expect(device.queue.launches > launchesBefore)
        // NaN weights give a NaN loss (ReLU and max propagate NaN as PyTorch's do), so the guard fires.
        let poisoned = try Sequential(Linear(4, 3, seed: 1, on: device), ReLU())
        try poisoned.parameters[0].assign(Tensor(Array(repeating: Float.nan, count: 12), shape: [3, 4], on: device))
        let (loss, _) = try trainer.evaluate(model: poisoned, loss: CrossEntropyLoss(), data: Batches(count: 1, on: device))
        #expect(loss.isNaN)
    }

    @Test("a signal stops training after the current step with a resumable checkpoint; resuming equals not stopping")
    func interruptAndResume() throws {
        let device = try TestDevice.get()
        let data = try Batches(count: 5, on: device)
        func run(_ epochs: Int, callbacks: [any Callback], folder: URL, resume: URL? = nil) throws -> (Sequential, Trainer) {
            RandomState.manualSeed(3)
            let model = try Sequential(Linear(4, 6, seed: 1, on: device), ReLU(), Dropout(0.3), Linear(6, 3, seed: 2, on: device))
            let optimizer = try Adam(model.parameters, lr: 0.01)
            let trainer = quietTrainer(epochs, callbacks, folder: folder)
            let start = try resume.map { try trainer.restore(from: $0, model: model, optimizer: optimizer) } ?? 0
            try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, train: data, startEpoch: start)
            return (model, trainer)
        }
        let straight = try TempFolder(), stopped = try TempFolder()
        defer { straight.cleanUp(); stopped.cleanUp() }
        let (reference, _) = try run(3, callbacks: [ModelCheckpoint(folder: straight.url, monitor: "train_loss")], folder: straight.url)

        // Stop after step 7: epoch 2, batch 2.
        let error = #expect(throws: TrainingInterrupted.self) {
            _ = try run(3, callbacks: [ModelCheckpoint(folder: stopped.url, monitor: "train_loss"), InterruptAt(step: 7)], folder: stopped.url)
        }
        #expect(error?.step == 7 && error?.epoch == 1 && error?.batchesDone == 2 && error?.exitStatus == 130)
        #expect(Interrupts.received == nil)
        let last = stopped.url.appendingPathComponent("last.safetensors")
        let state = try CheckpointState(metadata: SafeTensorsFile(contentsOf: last).metadata, file: last.path)
        #expect(state.epoch == 1 && state.batchesDone == 2 && state.step == 7)

        let (resumed, trainer) = try run(3, callbacks: [ModelCheckpoint(folder: stopped.url, monitor: "train_loss")], folder: stopped.url,
                                         resume: last)
        #expect(trainer.globalStep == 15)
        for (a, b) in zip(reference.parameters, resumed.parameters) { #expect(try a.toArray() == b.toArray()) }
    }

    @Test("atomic writes leave no temporary file, remove those of writers that died, and fail with the path and reason")
    func atomicWrites() throws {
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let target = folder.url.appendingPathComponent("last.safetensors")
        // A writer that died (no such process) and one that is alive (this process's parent).
        let dead = folder.url.appendingPathComponent(".last.safetensors.2147483646.12345.tmp")
        let alive = folder.url.appendingPathComponent(".last.safetensors.\(getppid()).777.tmp")
        try Data([1]).write(to: dead)
        try Data([2]).write(to: alive)
        try writeAtomically(Data([1, 2, 3]), to: target)
        #expect(try Data(contentsOf: target) == Data([1, 2, 3]))
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.url.path).sorted()
        #expect(left == [alive.lastPathComponent, "last.safetensors"].sorted(), "\(left)")

        let error = #expect(throws: FileError.self) {
            try writeAtomically(Data([1]), to: target.appendingPathComponent("inside-a-file"))
        }
        #expect(error?.description.hasPrefix("Cannot write \(target.path)/inside-a-file: Not a directory") == true, "\(String(describing: error))")
        let inTheWay = #expect(throws: FileError.self) { try createFolder(target, purpose: "run folder") }
        #expect(inTheWay?.description.contains("it is a file, not a folder") == true)
        #expect(try Data(contentsOf: target) == Data([1, 2, 3]), "a failed write damaged the previous file")
    }
}
