import KilnDevice
import KilnTensor

/// A layer or a model: callable on a tensor, with named parameters and buffers that follow
/// PyTorch's `state_dict` names (`0.weight`, `1.running_mean`).
///
/// ```swift
/// let model = Sequential(Linear(784, 256), ReLU(), Linear(256, 10))
/// let logits = try model(x)
/// for (name, p) in model.namedParameters() { print(name, p.shape) }
/// ```
public protocol Module: AnyObject {
    /// Applies the module to `x`.
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// This module's own parameters by local name (`weight`, `bias`), in PyTorch's order.
    var ownParameters: [(name: String, tensor: Tensor)] { get }
    /// This module's own buffers (`running_mean`, `running_var`).
    var ownBuffers: [(name: String, tensor: Tensor)] { get }
    /// Sub-modules by name (`0`, `1`, ... in a `Sequential`).
    var children: [(name: String, module: any Module)] { get }
    /// Training mode (batch statistics, dropout on) or evaluation mode.
    var training: Bool { get set }
    /// Takes the value of an own buffer that the module keeps on the host (such as BatchNorm's
    /// `num_batches_tracked`) when a state dict is loaded; returns false for buffers on the device.
    func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool
}

extension Module {
    /// Default: no parameters of its own.
    public var ownParameters: [(name: String, tensor: Tensor)] { [] }
    /// Default: no buffers of its own.
    public var ownBuffers: [(name: String, tensor: Tensor)] { [] }
    /// Default: no sub-modules.
    public var children: [(name: String, module: any Module)] { [] }
    /// Default: no buffers on the host, so false.
    public func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool { false }

    /// Every parameter with its full dotted name, depth first.
    public func namedParameters(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        ownParameters.map { (prefix + $0.name, $0.tensor) }
            + children.flatMap { $0.module.namedParameters(prefix: prefix + $0.name + ".") }
    }

    /// Every buffer with its full dotted name.
    public func namedBuffers(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        ownBuffers.map { (prefix + $0.name, $0.tensor) }
            + children.flatMap { $0.module.namedBuffers(prefix: prefix + $0.name + ".") }
    }

    /// Every parameter, for an optimizer.
    public var parameters: [Tensor] { namedParameters().map(\.tensor) }

    /// Sets training mode here and in every sub-module.
    public func train(_ on: Bool = true) {
        training = on
        for child in children { child.module.train(on) }
    }

    /// Sets evaluation mode here and in every sub-module.
    public func eval() { train(false) }

    /// Parameters and buffers by their PyTorch `state_dict` names.
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedParameters() + namedBuffers(), uniquingKeysWith: { first, _ in first })
    }

    /// Copies every entry of `stateDict` into this module's parameters and buffers (on the device,
    /// keeping the tensors an optimizer holds). Throws, naming the keys, when a key is missing or
    /// unexpected or a shape differs; nothing is copied then. A missing `num_batches_tracked` is
    /// accepted, as PyTorch does.
    public func load(stateDict: [String: Tensor]) throws {
        let own = namedParameters() + namedBuffers()
        let ownNames = Set(own.map(\.name))
        // PyTorch also accepts a state dict without BatchNorm's num_batches_tracked (older files).
        let missing = own.map(\.name).filter { stateDict[$0] == nil && !$0.hasSuffix("num_batches_tracked") }
        let unexpected = stateDict.keys.filter { !ownNames.contains($0) }.sorted()
        let mismatched = own.compactMap { name, tensor -> String? in
            guard let given = stateDict[name], given.shape != tensor.shape else { return nil }
            return "\(name): expected \(tensor.shape), got \(given.shape)"
        }
        guard missing.isEmpty, unexpected.isEmpty, mismatched.isEmpty else {
            var problems: [String] = []
            if !missing.isEmpty { problems.append("missing keys: \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { problems.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
            if !mismatched.isEmpty { problems.append("shape mismatch: \(mismatched.joined(separator: "; "))") }
            throw TensorError("load(stateDict:): " + problems.joined(separator: "; ") + ".")
        }
        try assignState(stateDict, prefix: "")
    }

    /// Copies the entries of `stateDict` under `prefix` into this module and its children.
    private func assignState(_ stateDict: [String: Tensor], prefix: String) throws {
        for (name, tensor) in ownParameters + ownBuffers {
            guard let source = stateDict[prefix + name] else { continue }
            if try !restoreHostBuffer(name, from: source) { try tensor.assign(source) }
        }
        for (name, child) in children { try child.assignState(stateDict, prefix: prefix + name + ".") }
    }
}
