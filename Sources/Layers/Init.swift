import Foundation
import KilnTensor

/// PyTorch's `torch.nn.init`: fills a tensor in place from Kiln's seeded generator
/// (`RandomState`), with PyTorch's formulas for the bounds and standard deviations.
///
/// ```swift
/// let layer = try Linear(784, 256)
/// try Init.kaimingNormal(layer.weight, mode: .fanOut, nonlinearity: .relu)   // nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
/// if let bias = layer.bias { try Init.zeros(bias) }
/// try Init.xavierUniform(layer.weight, gain: Init.gain(.tanh))
/// ```
///
/// The numbers are drawn on the device; they follow PyTorch's distributions, not its generator,
/// so the same seed gives other values than PyTorch's.
public enum Init {
    /// Which fan the Kaiming initializers scale by (`mode="fan_in"` or `"fan_out"`).
    public enum FanMode: String, Sendable { case fanIn = "fan_in", fanOut = "fan_out" }

    /// The nonlinearities `gain(_:)` knows, as `torch.nn.init.calculate_gain` names them.
    public enum Nonlinearity: Sendable, Equatable {
        /// Gain 1: `linear`, `conv1d/2d/3d`, `sigmoid`.
        case linear, sigmoid
        /// Gain 5/3.
        case tanh
        /// Gain √2.
        case relu
        /// Gain √(2 / (1 + slope²)).
        case leakyRelu(slope: Float)
        /// Gain 3/4.
        case selu
    }

    /// The recommended gain for a nonlinearity (`torch.nn.init.calculate_gain`).
    public static func gain(_ nonlinearity: Nonlinearity) -> Float {
        switch nonlinearity {
        case .linear, .sigmoid: return 1
        case .tanh: return 5.0 / 3
        case .relu: return Float(2).squareRoot()
        case .leakyRelu(let slope): return (2 / (1 + slope * slope)).squareRoot()
        case .selu: return 0.75
        }
    }

    /// `(fan_in, fan_out)` of a weight of at least two axes: `shape[1]` and `shape[0]` times the
    /// product of the remaining axes (a convolution's receptive field), as PyTorch computes them.
    /// - Throws: `TensorError` for fewer than two axes.
    public static func fans(_ shape: [Int]) throws -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else {
            throw TensorError("Init: fan in and fan out need a tensor of at least 2 axes; got shape \(shape).")
        }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Uniform in `[low, high)` (`nn.init.uniform_`).
    public static func uniform(_ tensor: Tensor, low: Float = 0, high: Float = 1) throws {
        guard low.isFinite, high.isFinite, low <= high else {
            throw TensorError("Init.uniform: the bounds must be finite with low ≤ high; got \(low) and \(high).")
        }
        try tensor.assign(Tensor.rand(tensor.shape, low: low, high: high, on: tensor.device))
    }

    /// Normal with `mean` and `std` (`nn.init.normal_`).
    public static func normal(_ tensor: Tensor, mean: Float = 0, std: Float = 1) throws {
        guard mean.isFinite, std.isFinite, std >= 0 else {
            throw TensorError("Init.normal: mean and std must be finite with std ≥ 0; got \(mean) and \(std).")
        }
        try tensor.assign(Tensor.randn(tensor.shape, mean: mean, std: std, on: tensor.device))
    }

    /// Every element `value` (`nn.init.constant_`).
    public static func constant(_ tensor: Tensor, _ value: Float) throws {
        try tensor.assign(Tensor.full(tensor.shape, value, on: tensor.device))
    }

    /// Every element 0 (`nn.init.zeros_`).
    public static func zeros(_ tensor: Tensor) throws { try constant(tensor, 0) }

    /// Every element 1 (`nn.init.ones_`).
    public static func ones(_ tensor: Tensor) throws { try constant(tensor, 1) }

    /// Uniform in ±`gain`·√(6 / (fan_in + fan_out)) (`nn.init.xavier_uniform_`, Glorot).
    public static func xavierUniform(_ tensor: Tensor, gain: Float = 1) throws {
        let (fanIn, fanOut) = try fans(tensor.shape)
        let bound = Float(3).squareRoot() * gain * (2 / Float(fanIn + fanOut)).squareRoot()
        try uniform(tensor, low: -bound, high: bound)
    }

    /// Normal with std `gain`·√(2 / (fan_in + fan_out)) (`nn.init.xavier_normal_`).
    public static func xavierNormal(_ tensor: Tensor, gain: Float = 1) throws {
        let (fanIn, fanOut) = try fans(tensor.shape)
        try normal(tensor, std: gain * (2 / Float(fanIn + fanOut)).squareRoot())
    }

    /// Uniform in ±√3·gain/√fan (`nn.init.kaiming_uniform_`, He); PyTorch's defaults: `a` = 0,
    /// fan in, leaky ReLU (so gain √2). `Linear` and `Conv2d` start as `kaimingUniform(w, a: √5)`.
    public static func kaimingUniform(_ tensor: Tensor, a: Float = 0, mode: FanMode = .fanIn,
                                      nonlinearity: Nonlinearity? = nil) throws {
        let std = try kaimingStd(tensor.shape, a: a, mode: mode, nonlinearity: nonlinearity)
        let bound = Float(3).squareRoot() * std
        try uniform(tensor, low: -bound, high: bound)
    }

    /// Normal with std gain/√fan (`nn.init.kaiming_normal_`); the defaults as `kaimingUniform`.
    public static func kaimingNormal(_ tensor: Tensor, a: Float = 0, mode: FanMode = .fanIn,
                                     nonlinearity: Nonlinearity? = nil) throws {
        try normal(tensor, std: kaimingStd(tensor.shape, a: a, mode: mode, nonlinearity: nonlinearity))
    }

    static func kaimingStd(_ shape: [Int], a: Float, mode: FanMode, nonlinearity: Nonlinearity?) throws -> Float {
        let (fanIn, fanOut) = try fans(shape)
        let fan = mode == .fanIn ? fanIn : fanOut
        guard fan > 0 else { throw TensorError("Init: a tensor of shape \(shape) has a fan of 0.") }
        return gain(nonlinearity ?? .leakyRelu(slope: a)) / Float(fan).squareRoot()
    }
}
