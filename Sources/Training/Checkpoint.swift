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
        let file = try SafeTensorsFile(contentsOf: url)
        let device = try device ?? model.parameters.first?.device ?? Tensor.defaultDevice()
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
        let device = try model.parameters.first?.device ?? Tensor.defaultDevice()
        let all = try tensors(file.tensors, on: device)
        try model.load(stateDict: all.filter { !$0.key.hasPrefix("optimizer.") })
        try optimizer.load(stateDict: Dictionary(uniqueKeysWithValues: all.compactMap { key, value in
            key.hasPrefix("optimizer.") ? (String(key.dropFirst("optimizer.".count)), value) : nil
        }))
        return file.metadata
    }

    /// A tensor as a safetensors entry: floats as F32, int32 as I64 (PyTorch's integer type).
    static func safeTensor(_ tensor: Tensor) throws -> SafeTensor {
        switch tensor.dtype {
        case .float32:
            return SafeTensor(floats: try tensor.toArray(), shape: tensor.shape)
        case .int32:
            let values = try tensor.toIntArray().map { Int64($0) }
            return SafeTensor(dtype: .I64, shape: tensor.shape, data: values.withUnsafeBytes { Data($0) })
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
