import KilnDevice
import KilnTensor

/// Something a module holds: a trainable parameter, a buffer (state saved with the model but not
/// trained, such as BatchNorm's running statistics) or a sub-module.
public enum ModuleMember {
    /// A tensor the optimizer updates (it was made with `requiresGrad: true`).
    case parameter(Tensor)
    /// A tensor saved in the state dict but not trained.
    case buffer(Tensor)
    /// A module inside this one.
    case module(Module)
}

/// A layer or a model, as PyTorch's `nn.Module`: subclass it, store layers and tensors in
/// properties, override `forward`. Parameters, buffers and sub-modules are found by reflection over
/// the stored properties (through optionals, arrays and dictionaries), named by property path as
/// PyTorch names them (`layer_1.weight`; Swift's camelCase becomes snake_case, so `runningMean` is
/// `running_mean`), so state dicts load into the same model written in PyTorch.
///
/// ```swift
/// final class CircleModel: Module {
///     let layer_1: Linear
///     let layer_2: Linear
///     override init() throws {
///         layer_1 = try Linear(2, 5)
///         layer_2 = try Linear(5, 1)
///     }
///     override func forward(_ x: Tensor) throws -> Tensor {
///         try layer_2(layer_1(x))
///     }
/// }
/// let model = try CircleModel()
/// print(model)                      // CircleModel( (layer_1): Linear(in_features=2, ...) ... )
/// ```
///
/// A stored `Tensor` is a *parameter* when it was made to require grad (`Tensor.randn(...,
/// requiresGrad: true)`; `freeze()` later keeps it a parameter), and a *buffer* otherwise.
open class Module: CustomStringConvertible {
    /// Training mode (batch statistics, dropout on) or evaluation mode; `train()` and `eval()` set
    /// it here and in every sub-module.
    public private(set) var training = true

    /// A module with nothing in it yet. Subclasses assign their layers and tensors first; Swift
    /// then calls this for them. It is marked `throws` only so that a subclass's initializer may
    /// throw too (`override init() throws`), as making layers on a device can; it never throws.
    public init() throws {}

    /// The initializer of Kiln's own layers that cannot fail (ReLU, Flatten, ...).
    init(nonThrowing: Void) {}

    /// The module's computation. Subclasses override it; call the module itself (`model(x)`).
    open func forward(_ x: Tensor) throws -> Tensor {
        throw TensorError("\(typeName) does not override forward(_:).")
    }

    /// Runs `forward` (and records the output shape while `summary` runs).
    public final func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard let recorder = SummaryRecorder.current else { return try forward(x) }
        return try recorder.record(self, input: x) { try forward(x) }
    }

    // MARK: What a module holds

    /// Parameters, buffers and sub-modules by name, in declaration order. The default reflects over
    /// the stored properties; override to name them otherwise (as `Sequential` does: `0`, `1`, ...).
    open func members() -> [(name: String, member: ModuleMember)] {
        var mirrors: [Mirror] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let m = mirror {
            mirrors.append(m)
            mirror = m.superclassMirror
        }
        var found: [(String, ModuleMember)] = []
        for m in mirrors.reversed() {
            for child in m.children {
                guard let label = child.label, !label.hasPrefix("$") else { continue }
                Module.collect(Module.stateName(label), child.value, into: &found)
            }
        }
        return found
    }

    /// The members inside `value` (a tensor, a module, or optionals, arrays and dictionaries of them).
    private static func collect(_ name: String, _ value: Any, into found: inout [(String, ModuleMember)]) {
        if let tensor = value as? Tensor {
            found.append((name, tensor.isParameter ? .parameter(tensor) : .buffer(tensor)))
        } else if let module = value as? Module {
            found.append((name, .module(module)))
        } else {
            let mirror = Mirror(reflecting: value)
            switch mirror.displayStyle {
            case .optional:
                if let wrapped = mirror.children.first { collect(name, wrapped.value, into: &found) }
            case .collection:
                for (index, element) in mirror.children.enumerated() { collect("\(name).\(index)", element.value, into: &found) }
            case .dictionary:
                let pairs = mirror.children.compactMap { pair -> (String, Any)? in
                    let parts = Array(Mirror(reflecting: pair.value).children)
                    guard parts.count == 2, let key = parts[0].value as? String else { return nil }
                    return (key, parts[1].value)
                }
                for (key, element) in pairs.sorted(by: { $0.0 < $1.0 }) { collect("\(name).\(key)", element, into: &found) }
            default:
                break
            }
        }
    }

    /// A Swift property name as PyTorch would spell it: `runningMean` → `running_mean`; a leading
    /// underscore (a property wrapper's storage or a private copy) is dropped.
    static func stateName(_ label: String) -> String {
        var out = ""
        var previous: Character?
        for character in label.drop(while: { $0 == "_" }) {
            if character.isUppercase, let p = previous, p.isLowercase || p.isNumber {
                out.append("_")
            }
            out += character.lowercased()
            previous = character
        }
        return out
    }

    /// The sub-modules, by name.
    public var children: [(name: String, module: Module)] {
        members().compactMap { if case .module(let m) = $0.member { return ($0.name, m) } else { return nil } }
    }

    /// Every parameter with its full dotted name, depth first, as `named_parameters()`.
    public func namedParameters(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        members().flatMap { name, member -> [(name: String, tensor: Tensor)] in
            switch member {
            case .parameter(let t): [(prefix + name, t)]
            case .buffer: []
            case .module(let m): m.namedParameters(prefix: prefix + name + ".")
            }
        }
    }

    /// Every buffer with its full dotted name, as `named_buffers()`.
    public func namedBuffers(prefix: String = "") -> [(name: String, tensor: Tensor)] {
        members().flatMap { name, member -> [(name: String, tensor: Tensor)] in
            switch member {
            case .buffer(let t): [(prefix + name, t)]
            case .parameter: []
            case .module(let m): m.namedBuffers(prefix: prefix + name + ".")
            }
        }
    }

    /// Every parameter, for an optimizer (frozen ones included; optimizers skip them).
    public var parameters: [Tensor] { namedParameters().map(\.tensor) }

    /// The parameters that require grad (what a fine-tuning optimizer is given).
    public var trainableParameters: [Tensor] { parameters.filter(\.requiresGrad) }

    // MARK: Modes

    /// Sets training mode here and in every sub-module (`model.train()`).
    public func train(_ on: Bool = true) {
        training = on
        for (_, child) in children { child.train(on) }
    }

    /// Sets evaluation mode here and in every sub-module (`model.eval()`).
    public func eval() { train(false) }

    /// Stops gradients to every parameter here and below (`requires_grad_(False)`): optimizers then
    /// leave them bit for bit as they are. Fine-tuning freezes the body and trains a new head.
    public func freeze() { for p in parameters { p.requiresGrad = false } }

    /// Makes every parameter here and below trainable again.
    public func unfreeze() { for p in parameters { p.requiresGrad = true } }

    // MARK: State dicts

    /// Parameters and buffers by their PyTorch `state_dict` names.
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedParameters() + namedBuffers(), uniquingKeysWith: { first, _ in first })
    }

    /// Copies every entry of `stateDict` into this module's parameters and buffers (on the device,
    /// keeping the tensors an optimizer holds). Throws, naming the keys, when a key is missing or
    /// unexpected or a shape differs; nothing is copied then. A missing `num_batches_tracked` is
    /// accepted, as PyTorch does.
    public func load(stateDict: [String: Tensor]) throws {
        let dtypes = Dictionary(uniqueKeysWithValues: (namedParameters() + namedBuffers()).map { ($0.name, $0.tensor.dtype) })
        let wrongType = stateDict.keys.sorted().compactMap { name -> String? in
            guard let tensor = stateDict[name], let own = dtypes[name], own != tensor.dtype else { return nil }
            return "\(name): expected \(own.rawValue), got \(tensor.dtype.rawValue)"
        }
        if let problems = stateDictProblems(shapes: stateDict.mapValues(\.shape), extra: wrongType) {
            throw TensorError("load(stateDict:): " + problems + ".")
        }
        try assignState(stateDict, prefix: "")
    }

    /// What stops a state dict of these shapes from loading (missing, unexpected and mismatched
    /// keys, plus `extra` problems), or nil when it fits. Callers check a file's shapes with it
    /// before uploading anything.
    public func stateDictProblems(shapes: [String: [Int]], extra: [String] = []) -> String? {
        let own = namedParameters() + namedBuffers()
        return Module.stateDictProblems(expected: own.map { ($0.name, $0.tensor.shape) }, given: shapes, extra: extra)
    }

    /// The same for a state dict of `given` shapes against the `expected` names and shapes, in
    /// order (an architecture's, before any model is built). `num_batches_tracked` may be missing
    /// or hold its one count as [] or [1], as PyTorch accepts.
    public static func stateDictProblems(expected: [(name: String, shape: [Int])], given: [String: [Int]],
                                         extra: [String] = []) -> String? {
        let names = Set(expected.map(\.name))
        let count = { (name: String) in name.hasSuffix("num_batches_tracked") }
        let missing = expected.map(\.name).filter { given[$0] == nil && !count($0) }
        let unexpected = given.keys.filter { !names.contains($0) }.sorted()
        let mismatched = expected.compactMap { name, shape -> String? in
            guard let found = given[name], found != shape, !(count(name) && found.reduce(1, *) == 1) else { return nil }
            return "\(name): expected \(shape), got \(found)"
        } + extra
        guard missing.isEmpty, unexpected.isEmpty, mismatched.isEmpty else {
            var problems: [String] = []
            if !missing.isEmpty { problems.append("missing keys: \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { problems.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
            if !mismatched.isEmpty { problems.append("shape mismatch: \(mismatched.joined(separator: "; "))") }
            return problems.joined(separator: "; ")
        }
        return nil
    }

    /// Copies the entries of `stateDict` under `prefix` into this module and its children.
    private func assignState(_ stateDict: [String: Tensor], prefix: String) throws {
        for (name, member) in members() {
            switch member {
            case .parameter(let tensor), .buffer(let tensor):
                guard let source = stateDict[prefix + name] else { continue }
                if try !restoreHostBuffer(name, from: source) { try tensor.assign(source) }
            case .module(let child):
                try child.assignState(stateDict, prefix: prefix + name + ".")
            }
        }
    }

    /// Takes the value of a buffer the module keeps on the host (BatchNorm's `num_batches_tracked`)
    /// when a state dict is loaded; returns false for buffers on the device.
    open func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool { false }

    // MARK: Printing

    /// The type's name, as the module tree shows it.
    public var typeName: String { String(describing: type(of: self)) }

    /// What goes between the parentheses of this module's line (PyTorch's `extra_repr`):
    /// `in_features=784, out_features=256, bias=True` for a Linear. Empty by default.
    open var extraDescription: String { "" }

    /// The module tree as PyTorch prints it:
    /// ```text
    /// Sequential(
    ///   (0): Linear(in_features=784, out_features=256, bias=True)
    ///   (1): ReLU()
    /// )
    /// ```
    public var description: String {
        let kids = children
        guard !kids.isEmpty else { return "\(typeName)(\(extraDescription))" }
        var lines = ["\(typeName)(" + (extraDescription.isEmpty ? "" : extraDescription)]
        for (name, child) in kids {
            let text = child.description.split(separator: "\n", omittingEmptySubsequences: false)
            lines.append("  (\(name)): " + text[0])
            lines += text.dropFirst().map { "  " + $0 }
        }
        lines.append(")")
        return lines.joined(separator: "\n")
    }
}
