import Foundation
import KilnDevice
import KilnLayers
import KilnTensor

/// Saving and loading models and training state as safetensors files.
///
/// - A *model file* holds exactly the model's `state_dict` (PyTorch names and layouts; int32
///   buffers are stored as I64, as PyTorch keeps them), so PyTorch reads it with
///   `safetensors.torch.load_file` and `load_state_dict`. Its metadata may describe the architecture.
/// - A *checkpoint* adds the optimizer's state under `optimizer.` and, in the metadata, the epoch,
///   the step, the random state and anything else given, so training can resume exactly.
///
/// Files are written to a temporary name and renamed: a crash never leaves half a file.
public enum Checkpoint {
    /// Writes `model`'s state dict (and `metadata`) to `url`. Throws when the model holds no
    /// tensors (a file of nothing would load into anything).
    public static func saveModel(_ model: Module, to url: URL, metadata: [String: String] = [:]) throws {
        var file = SafeTensorsFile(metadata: metadata)
        for (name, tensor) in try nonEmptyStateDict(model) { file.tensors[name] = try safeTensor(tensor) }
        try file.write(to: url)
    }

    /// The model's state dict, or an error saying why it is empty.
    static func nonEmptyStateDict(_ model: Module) throws -> [String: Tensor] {
        let state = model.stateDict()
        guard !state.isEmpty else {
            throw TrainingError("\(model.typeName) has no parameters or buffers to save. A Module finds them in its stored properties (Tensors, sub-modules, and arrays of them); check that the layers are held in properties.")
        }
        return state
    }

    /// Writes `model`'s state dict to the file at `path` (`torch.save(model.state_dict(), path)`).
    public static func saveModel(_ model: Module, to path: String, metadata: [String: String] = [:]) throws {
        try saveModel(model, to: URL(fileURLWithPath: path), metadata: metadata)
    }

    /// Loads the model file at `path` into `model` (`model.load_state_dict(torch.load(path))`).
    public static func loadModel(_ model: Module, from path: String, device: Device? = nil) throws {
        try loadModel(model, from: URL(fileURLWithPath: path), device: device)
    }

    /// Loads a model file (Kiln's or PyTorch's `save_file` of a `state_dict`) into `model`.
    /// Throws naming missing, unexpected or mismatched keys, or what is wrong with the file.
    public static func loadModel(_ model: Module, from url: URL, device: Device? = nil) throws {
        try loadModel(model, from: SafeTensorsFile(contentsOf: url), name: url.path, device: device)
    }

    /// Loads a model file already read (`name` stands for it in errors): shapes checked first.
    public static func loadModel(_ model: Module, from file: SafeTensorsFile, name: String, device: Device? = nil) throws {
        let device = try device ?? model.parameters.first?.device ?? Tensor.defaultDevice()
        try checkShapes(file.tensors, of: model, file: name)
        try model.load(stateDict: tensors(file.tensors, on: device))
    }

    /// Writes model, optimizer state and `metadata` (epoch, step, random state, ...) to `url`.
    public static func save(model: Module, optimizer: Optimizer, metadata: [String: String], to url: URL) throws {
        var file = SafeTensorsFile(metadata: metadata)
        for (name, tensor) in try nonEmptyStateDict(model) { file.tensors[name] = try safeTensor(tensor) }
        for (name, tensor) in try optimizer.stateDict() { file.tensors["optimizer." + name] = try safeTensor(tensor) }
        try file.write(to: url)
    }

    /// Restores model and optimizer from a checkpoint written by `save`; returns its metadata.
    @discardableResult
    public static func load(model: Module, optimizer: Optimizer, from url: URL) throws -> [String: String] {
        let file = try SafeTensorsFile(contentsOf: url)
        try load(model: model, optimizer: optimizer, from: file, name: url.path)
        return file.metadata
    }

    /// Restores model and optimizer from a parsed checkpoint; `name` stands for it in errors.
    /// Everything is checked before anything changes: the model's shapes, the optimizer state's
    /// completeness and, given `runSteps` (the checkpoint's step count), that every trainable
    /// parameter was stepped at least once and at most that often. The optimizer (which validates
    /// as a whole) is loaded before the model, so a refused file leaves the model as it was.
    static func load(model: Module, optimizer: Optimizer, from file: SafeTensorsFile, name: String, runSteps: Int? = nil) throws {
        let device = try model.parameters.first?.device ?? Tensor.defaultDevice()
        let modelEntries = file.tensors.filter { !$0.key.hasPrefix("optimizer.") }
        try checkShapes(modelEntries, of: model, file: name)
        let optimizerEntries = file.tensors.filter { $0.key.hasPrefix("optimizer.") }
        guard !optimizerEntries.isEmpty || file.metadata["step"] == "0" else {
            throw TrainingError("\(name) holds no optimizer state (optimizer.*); it is a model file, not a checkpoint. Resume from last.safetensors.")
        }
        if let runSteps {
            for (i, parameter) in optimizer.parameters.enumerated() where parameter.requiresGrad {
                let steps = optimizerEntries["optimizer.state.\(i).step"].flatMap { $0.count == 1 ? $0.floats().first : nil } ?? 0
                guard steps <= Float(runSteps), runSteps == 0 || steps >= 1 else {
                    throw TrainingError("\(name): the optimizer state of parameter \(i) records \(steps) steps in a run of \(runSteps); the optimizer state is missing or damaged.")
                }
            }
        }
        try optimizer.load(stateDict: tensors(optimizerEntries, on: device).reduce(into: [:]) { result, entry in
            result[String(entry.key.dropFirst("optimizer.".count))] = entry.value
        })
        try model.load(stateDict: tensors(modelEntries, on: device))
    }

    /// Throws naming the keys that are missing, unexpected or of the wrong shape, so nothing is
    /// uploaded from a file that cannot load.
    static func checkShapes(_ entries: [String: SafeTensor], of model: Module, file: String) throws {
        if let problems = model.stateDictProblems(shapes: entries.mapValues(\.shape)) {
            throw TrainingError("\(file) does not fit the model (\(problems)); it was saved from another architecture.")
        }
    }

    /// A tensor as a safetensors entry: floats as F32, int32 as I64 (PyTorch's integer type).
    static func safeTensor(_ tensor: Tensor) throws -> SafeTensor {
        switch tensor.dtype {
        case .float32:
            return try SafeTensor(floats: try tensor.toArray(), shape: tensor.shape)
        case .int32:
            let values = try tensor.toIntArray().map { Int64($0) }
            return try SafeTensor(dtype: .I64, shape: tensor.shape, data: values.withUnsafeBytes { Data($0) })
        }
    }

    /// Safetensors entries as tensors on `device`: integer types become int32, the rest float32.
    static func tensors(_ entries: [String: SafeTensor], on device: Device) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (name, entry) in entries {
            let shape = entry.shape.isEmpty ? [] : entry.shape
            guard entry.count >= 1 else { throw TensorError("\(name): an empty tensor (shape \(entry.shape)) cannot be loaded.") }
            switch entry.dtype {
            case .I64, .I32, .I16, .I8, .U8, .BOOL:
                let values = entry.integers()
                guard values.allSatisfy({ Int32(exactly: $0) != nil }) else {
                    throw TensorError("\(name): an integer does not fit in Int32.")
                }
                result[name] = try Tensor(labels: values.map { Int($0) }, shape: shape, on: device)
            default:
                result[name] = try Tensor(entry.floats(), shape: shape, on: device)
            }
        }
        return result
    }
}

/// The training state a checkpoint's metadata records, validated: `epoch` and `step` whole numbers
/// in range (at least one step per epoch done), the random state as two UInt64s or absent, the
/// learning rate finite and ≥ 0. `ModelCheckpoint` writes it; `Trainer.restore` reads it.
public struct CheckpointState: Sendable, Equatable {
    /// The most epochs a checkpoint may record.
    public static let maxEpochs = 1_000_000
    /// Epochs done, optimizer steps taken, and batches done in the epoch after them (non-zero
    /// when a signal stopped training inside an epoch).
    public var epoch: Int, step: Int, batchesDone = 0
    /// The global random state (`RandomState.state`) after `epoch`, when recorded.
    public var random: (seed: UInt64, offset: UInt64)?
    /// The learning rate the optimizer had reached (after any schedule), when recorded.
    public var learningRate: Float?
    /// The optimizer's name (`adam`, `sgd`, ...) and the run's base learning rate (`--lr`), when recorded.
    public var optimizer: String?, baseLearningRate: Float?
    /// The number of processes of the data-parallel run that wrote it (1 when not recorded).
    public var worldSize = 1
    /// The metadata key of `worldSize`.
    public static let worldSizeKey = "world_size"

    /// Reads and checks the state in `metadata`; `file` names the checkpoint in errors.
    public init(metadata: [String: String], file: String) throws {
        func fail(_ problem: String) -> TrainingError { TrainingError("\(file): \(problem)") }
        guard let epochText = metadata["epoch"], let stepText = metadata["step"] else {
            throw fail("a model file, not a training checkpoint (no epoch and step); resume from last.safetensors.")
        }
        guard let epoch = Int(epochText), (0...Self.maxEpochs).contains(epoch) else {
            throw fail("records epoch \"\(epochText)\"; an epoch count is a whole number from 0 to \(Self.maxEpochs). The file is damaged.")
        }
        guard let step = Int(stepText), (0...Int(Int32.max)).contains(step) else {
            throw fail("records step \"\(stepText)\"; a step count is a whole number from 0 to \(Int32.max). The file is damaged.")
        }
        if let text = metadata["epoch_batches"] {
            guard let batches = Int(text), (0...Int(Int32.max)).contains(batches) else {
                throw fail("records epoch_batches \"\(text)\"; it counts batches, a whole number from 0 to \(Int32.max). The file is damaged.")
            }
            batchesDone = batches
        }
        // With gradient accumulation a step takes several batches, but every epoch (and a part of
        // one) takes at least one.
        guard step >= epoch + (batchesDone > 0 ? 1 : 0) else {
            throw fail("records \(epoch) epochs and \(batchesDone) batches in \(step) steps; every epoch takes at least a step. The file is damaged.")
        }
        self.epoch = epoch
        self.step = step
        switch (metadata["rng_seed"], metadata["rng_offset"]) {
        case (nil, nil): random = nil
        case let (seed?, offset?):
            guard let s = UInt64(seed), let o = UInt64(offset) else {
                throw fail("records the random state (\(seed), \(offset)); both are whole numbers from 0 to \(UInt64.max). The file is damaged.")
            }
            random = (s, o)
        default: throw fail("records only half of the random state (rng_seed and rng_offset go together). The file is damaged.")
        }
        func rate(_ key: String) throws -> Float? {
            guard let text = metadata[key] else { return nil }
            guard let value = Float(text), value.isFinite, value >= 0 else {
                throw fail("records \(key) \"\(text)\"; a learning rate is a finite number ≥ 0. The file is damaged.")
            }
            return value
        }
        learningRate = try rate("learning_rate")
        baseLearningRate = try rate("base_learning_rate")
        optimizer = metadata["optimizer"]
        if let text = metadata[Self.worldSizeKey] {
            guard let size = Int(text), (1...1 << 20).contains(size) else {
                throw fail("records world_size \"\(text)\"; it counts processes, a whole number from 1 to \(1 << 20). The file is damaged.")
            }
            worldSize = size
        }
    }

    /// The state as checkpoint metadata.
    public var metadata: [String: String] {
        var meta = ["epoch": String(epoch), "step": String(step)]
        if batchesDone > 0 { meta["epoch_batches"] = String(batchesDone) }
        if let random { meta["rng_seed"] = String(random.seed); meta["rng_offset"] = String(random.offset) }
        if let learningRate { meta["learning_rate"] = String(learningRate) }
        if let baseLearningRate { meta["base_learning_rate"] = String(baseLearningRate) }
        if let optimizer { meta["optimizer"] = optimizer }
        if worldSize != 1 { meta[Self.worldSizeKey] = String(worldSize) }
        return meta
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.epoch == b.epoch && a.step == b.step && a.batchesDone == b.batchesDone && a.random?.seed == b.random?.seed && a.random?.offset == b.random?.offset
            && a.learningRate == b.learningRate && a.optimizer == b.optimizer && a.baseLearningRate == b.baseLearningRate
            && a.worldSize == b.worldSize
    }
}
