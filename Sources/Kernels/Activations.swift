import KilnDevice

/// An activation function with a forward kernel (`act_<name>`) and a backward kernel
/// (`act_<name>_backward`).
public enum Activation: Sendable, Equatable {
    /// `max(x, 0)` (NaN stays NaN).
    case relu
    /// `x` for x ≥ 0, `slope · x` below.
    case leakyRelu(slope: Float)
    /// `1 / (1 + e^-x)`.
    case sigmoid
    /// `tanh x`.
    case tanh
    /// The exact GELU `0.5 · x · (1 + erf(x / √2))` (PyTorch's default, not the tanh approximation).
    case gelu

    /// Whether the backward kernel takes the forward output `y` (sigmoid, tanh: its derivative is
    /// cheaper from `y`) rather than the forward input `x` (relu, leaky relu, gelu).
    public var backwardTakesOutput: Bool {
        switch self {
        case .sigmoid, .tanh: true
        case .relu, .leakyRelu, .gelu: false
        }
    }

    var kernel: String {
        switch self {
        case .relu: "act_relu"
        case .leakyRelu: "act_leaky_relu"
        case .sigmoid: "act_sigmoid"
        case .tanh: "act_tanh"
        case .gelu: "act_gelu"
        }
    }

    var parameter: Float {
        if case .leakyRelu(let slope) = self { return slope }
        return 0
    }
}

extension KernelLibrary {
    /// Launches `y[i] = f(x[i])` over all of `x`; `y` has `x`'s length and may be `x`.
    ///
    /// ```swift
    /// try kernels.activation(.gelu, h, into: a)
    /// ```
    public func activation(_ f: Activation, _ x: Buffer<Float>, into y: Buffer<Float>) throws {
        try ewUnary(f.kernel, x, f.parameter, 0, into: y)
    }

    /// Launches the backward pass of `f`: `dx[i] = dy[i] · f'(…)`, or `dx[i] += …` when `accumulate`.
    ///
    /// `saved` is what the forward pass saw or made: the forward **output** `y` for `.sigmoid` and
    /// `.tanh` (`f.backwardTakesOutput`), the forward **input** `x` for `.relu`, `.leakyRelu` and
    /// `.gelu`. All three buffers have the same length; `dx` may be `dy`.
    public func activationBackward(_ f: Activation, gradOutput dy: Buffer<Float>, saved: Buffer<Float>,
                                   into dx: Buffer<Float>, accumulate: Bool = false) throws {
        let name = f.kernel + "_backward"
        try EWCheck.elements(name, dy.count)
        try EWCheck.count(name, "saved", saved, dy.count, "[\(dy.count)] like dy")
        try EWCheck.count(name, "dx", dx, dy.count, "[\(dy.count)] like dy")
        try launch1D(name, ewChunks(dy.count), Int32(dy.count), f.parameter, Int32(accumulate ? 1 : 0), dy, saved, dx)
    }
}
