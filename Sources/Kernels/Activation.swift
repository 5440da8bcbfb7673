import KilnDevice

/// An activation function: one type for the element-wise kernels, the matmul epilogue, the layers
/// and the model files. Its math is written once in kernels.cl (`kiln_act`, `kiln_act_grad`).
///
/// Adding one: a case here (with its `code`, `name` and derivative rule) and a case in kernels.cl's
/// `KILN_ACT_FNS`; the layer and model-file vocabularies take it from `name`.
public enum Activation: Sendable, Hashable, CaseIterable, CustomStringConvertible, Codable {
    /// `max(x, 0)` (NaN stays NaN).
    case relu
    /// `x` for x ≥ 0, `slope · x` below.
    case leakyRelu(slope: Float)
    /// `1 / (1 + e^-x)`.
    case sigmoid
    /// `tanh x`.
    case tanh
    /// The exact GELU `x · Φ(x)` with Φ the normal CDF (PyTorch's default, not the tanh approximation).
    case gelu

    /// One of each, leaky ReLU with PyTorch's default slope 0.01.
    public static let allCases: [Activation] = [.relu, .leakyRelu(slope: 0.01), .sigmoid, .tanh, .gelu]

    /// The code kernels.cl knows it by (`KILN_ACT_*`; 0 is no activation).
    var code: Int32 {
        switch self {
        case .relu: 1
        case .leakyRelu: 2
        case .sigmoid: 3
        case .tanh: 4
        case .gelu: 5
        }
    }

    /// The slope of leaky ReLU, 0 for the others.
    var parameter: Float {
        if case .leakyRelu(let slope) = self { return slope }
        return 0
    }

    /// The name in model files and on the command line: `relu`, `leaky_relu`, `sigmoid`, `tanh`, `gelu`.
    public var name: String {
        switch self {
        case .relu: "relu"
        case .leakyRelu: "leaky_relu"
        case .sigmoid: "sigmoid"
        case .tanh: "tanh"
        case .gelu: "gelu"
        }
    }

    /// The activation called `name` (case-insensitive; `leaky_relu` takes `slope`), or nil.
    public init?(name: String, slope: Float = 0.01) {
        switch name.lowercased() {
        case "relu": self = .relu
        case "leaky_relu", "leakyrelu": self = .leakyRelu(slope: slope)
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "gelu": self = .gelu
        default: return nil
        }
    }

    /// `relu`, `leaky_relu(0.2)`, ...
    public var description: String {
        if case .leakyRelu(let slope) = self { return "leaky_relu(\(slope))" }
        return name
    }

    /// Whether the backward kernel takes the forward output `y` (sigmoid, tanh: their derivative is
    /// cheaper from `y`) rather than the forward input `x` (relu, leaky relu, gelu).
    public var backwardTakesOutput: Bool {
        switch self {
        case .sigmoid, .tanh: true
        case .relu, .leakyRelu, .gelu: false
        }
    }

    /// Whether the derivative follows from the output alone, so a Linear can apply the activation in
    /// its epilogue and still be differentiated: relu, sigmoid, tanh, and leaky relu with a positive
    /// slope (where the output's sign is the input's). Not gelu.
    public var derivativeFromOutput: Bool {
        switch self {
        case .relu, .sigmoid, .tanh: true
        case .leakyRelu(let slope): slope > 0
        case .gelu: false
        }
    }

    /// Encodes as its name, with the slope of a leaky ReLU: `"relu"`, `"leaky_relu:0.2"`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if case .leakyRelu(let slope) = self { try container.encode("leaky_relu:\(slope)") } else { try container.encode(name) }
    }

    /// Decodes what `encode(to:)` writes.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let slope = parts.count == 2 ? Float(parts[1]) : 0.01
        guard let slope, slope.isFinite, let activation = Activation(name: parts.first ?? "", slope: slope) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "unknown activation \"\(text)\" (relu, leaky_relu, sigmoid, tanh, gelu)"))
        }
        self = activation
    }
}

extension KernelLibrary {
    /// Launches `y[i] = f(x[i])` over all of `x`; `y` has `x`'s length and may be `x`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let x = try device.buffer([-1, 0, 2] as [Float]), y = try device.buffer(Float.self, count: 3)
    /// try kernels.activation(.gelu, x, into: y)
    /// ```
    public func activation(_ f: Activation, _ x: Buffer<Float>, into y: Buffer<Float>) throws {
        try Check.elements("activation \(f)", x.count)
        try Check.count("activation \(f)", "y", y, x.count, "[\(x.count)] like x")
        try launchFlat(.actForward, count: x.count, arguments: [f.code, Int32(x.count), f.parameter, x, y])
    }

    /// Launches the backward pass of `f`: `dx[i] = dy[i] · f'(…)`, or `dx[i] += …` when `accumulate`.
    ///
    /// `saved` is what the forward pass saw or made: the forward **output** `y` for `.sigmoid` and
    /// `.tanh` (`f.backwardTakesOutput`), the forward **input** `x` for `.relu`, `.leakyRelu` and
    /// `.gelu`. All three buffers have the same length; `dx` may be `dy`.
    public func activationBackward(_ f: Activation, gradOutput dy: Buffer<Float>, saved: Buffer<Float>,
                                   into dx: Buffer<Float>, accumulate: Bool = false) throws {
        let what = "activation backward \(f)"
        try Check.elements(what, dy.count)
        try Check.count(what, "saved", saved, dy.count, "[\(dy.count)] like dy")
        try Check.count(what, "dx", dx, dy.count, "[\(dy.count)] like dy")
        try launchFlat(.actBackward, count: dy.count,
                       arguments: [f.code, Int32(dy.count), f.parameter, Int32(accumulate ? 1 : 0), dy, saved, dx])
    }
}
