import KilnKernels
import KilnSupport
import KilnTensor

/// A module that applies an `Activation` element-wise. `Sequential` runs one right after a
/// `Linear` inside the matrix product's epilogue when its derivative allows (the same numbers,
/// one kernel fewer).
public class ActivationLayer: Module {
    /// The function applied.
    public let activation: Activation

    init(_ activation: Activation) {
        self.activation = activation
        super.init(nonThrowing: ())
    }

    /// `activation(x)` element-wise.
    public override func forward(_ x: Tensor) throws -> Tensor { try x.applying(activation) }

    /// The layer of `activation`: `ReLU()`, `LeakyReLU(slope)`, `Sigmoid()`, `Tanh()` or `GELU()`.
    public static func make(_ activation: Activation) -> ActivationLayer {
        switch activation {
        case .relu: ReLU()
        case .leakyRelu(let slope): LeakyReLU(slope)
        case .sigmoid: Sigmoid()
        case .tanh: Tanh()
        case .gelu: GELU()
        }
    }
}

/// `max(x, 0)` (`nn.ReLU`).
public final class ReLU: ActivationLayer {
    /// Creates the layer (`nn.ReLU()`).
    public init() { super.init(.relu) }
}

/// `x` for `x > 0`, else `slope · x` (`nn.LeakyReLU`).
public final class LeakyReLU: ActivationLayer {
    /// The slope for negative inputs (PyTorch's `negative_slope`).
    public var slope: Float {
        if case .leakyRelu(let s) = activation { return s }
        return 0
    }
    /// `nn.LeakyReLU(negative_slope)`; the slope defaults to 0.01, as in PyTorch.
    public init(_ slope: Float = 0.01) { super.init(.leakyRelu(slope: slope)) }
    /// `negative_slope=0.01`
    public override var extraDescription: String { "negative_slope=\(slope)" }
}

/// `1 / (1 + e^-x)` (`nn.Sigmoid`).
public final class Sigmoid: ActivationLayer {
    /// Creates the layer (`nn.Sigmoid()`).
    public init() { super.init(.sigmoid) }
}

/// Hyperbolic tangent (`nn.Tanh`).
public final class Tanh: ActivationLayer {
    /// Creates the layer (`nn.Tanh()`).
    public init() { super.init(.tanh) }
}

/// GELU, the exact erf form (`nn.GELU()`, PyTorch's default).
public final class GELU: ActivationLayer {
    /// Creates the layer (`nn.GELU()`, exact form).
    public init() { super.init(.gelu) }
    /// `approximate='none'`
    public override var extraDescription: String { "approximate='none'" }
}

/// Softmax over the last axis (`nn.Softmax(dim=-1)`).
public final class Softmax: Module {
    /// Creates the layer.
    public override init() { super.init(nonThrowing: ()) }
    /// Softmax of `x` along its last axis.
    public override func forward(_ x: Tensor) throws -> Tensor { try x.softmax() }
    /// `dim=-1`
    public override var extraDescription: String { "dim=-1" }
}

/// Log-softmax over the last axis (`nn.LogSoftmax(dim=-1)`).
public final class LogSoftmax: Module {
    /// Creates the layer.
    public override init() { super.init(nonThrowing: ()) }
    /// Log-softmax of `x` along its last axis.
    public override func forward(_ x: Tensor) throws -> Tensor { try x.logSoftmax() }
    /// `dim=-1`
    public override var extraDescription: String { "dim=-1" }
}

/// Axes `startAxis...endAxis` folded into one, by default [N, ...] → [N, rest] (`nn.Flatten`; no copy).
public final class Flatten: Module {
    /// The first and last axes folded (PyTorch's `start_dim`, `end_dim`).
    public let startAxis: Int, endAxis: Int
    /// `nn.Flatten(start_dim=1, end_dim=-1)`.
    public init(startAxis: Int = 1, endAxis: Int = -1) {
        self.startAxis = startAxis
        self.endAxis = endAxis
        super.init(nonThrowing: ())
    }
    /// `x` with the axes folded, sharing its storage.
    public override func forward(_ x: Tensor) throws -> Tensor { try x.flattened(startAxis: startAxis, endAxis: endAxis) }
    /// `start_dim=1, end_dim=-1`
    public override var extraDescription: String { "start_dim=\(startAxis), end_dim=\(endAxis)" }
}

/// Axis `axis` unfolded into `shape` (`nn.Unflatten`): [N, 784] → [N, 1, 28, 28] feeds images
/// kept as rows to a convolutional network (no copy).
public final class Unflatten: Module {
    /// The axis split (PyTorch's `dim`) and the shape it becomes (`unflattened_size`).
    public let axis: Int, shape: [Int]
    /// `nn.Unflatten(dim, unflattened_size)`. Throws unless every extent is at least 1.
    public init(axis: Int, shape: [Int]) throws {
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 1 }) else {
            throw TensorError("Unflatten(\(axis), \(shape)): the new shape needs extents of at least 1.")
        }
        self.axis = axis
        self.shape = shape
        super.init(nonThrowing: ())
    }
    /// `x` with `axis` replaced by `shape` (whose product must be that axis's extent).
    public override func forward(_ x: Tensor) throws -> Tensor {
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0, a < x.rank, checkedProduct(shape) == x.shape[a] else {
            throw TensorError("Unflatten(\(axis), \(shape)): input \(x.shape) has no axis \(axis) of \(checkedProduct(shape).map(String.init) ?? "too many") elements.")
        }
        return try x.reshaped(Array(x.shape[..<a]) + shape + Array(x.shape[(a + 1)...]))
    }
    /// `dim=1, unflattened_size=(1, 28, 28)`
    public override var extraDescription: String {
        "dim=\(axis), unflattened_size=(\(shape.map(String.init).joined(separator: ", ")))"
    }
}

/// Returns its input (`nn.Identity`).
public final class Identity: Module {
    /// Creates the layer.
    public override init() { super.init(nonThrowing: ()) }
    /// `x` itself.
    public override func forward(_ x: Tensor) throws -> Tensor { x }
}
