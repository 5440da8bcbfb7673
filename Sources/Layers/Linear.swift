import KilnDevice
import KilnKernels
import KilnTensor

/// `y = x · weightᵀ + bias`, with `weight` shaped [out, in] as in PyTorch.
///
/// Initialized as PyTorch does: weights Kaiming-uniform with a = √5 (uniform in ±1/√in), bias
/// uniform in ±1/√in, from Kiln's seeded generator (`RandomState.manualSeed`) or a given `seed`.
public final class Linear: Module {
    /// The weight [out, in], a trainable parameter.
    public let weight: Tensor
    /// The bias [out], a trainable parameter, or nil when made with `bias: false`.
    public let bias: Tensor?
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true

    /// Input features (`weight.shape[1]`).
    public var inFeatures: Int { weight.shape[1] }
    /// Output features (`weight.shape[0]`).
    public var outFeatures: Int { weight.shape[0] }

    /// `nn.Linear(in, out, bias:)`, initialized as PyTorch does. A `seed` makes the initialization
    /// reproducible without advancing Kiln's generator; `device` defaults to `Tensor.defaultDevice()`.
    /// Throws when a feature count is below 1.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, seed: UInt64? = nil,
                on device: Device? = nil) throws {
        guard inFeatures >= 1, outFeatures >= 1 else {
            throw TensorError("Linear(\(inFeatures), \(outFeatures)): feature counts must be ≥ 1.")
        }
        let bound = 1 / Float(inFeatures).squareRoot()
        let w = seed.map { ($0, UInt64(0)) } ?? RandomState.next(count: inFeatures * outFeatures)
        weight = try Tensor.rand([outFeatures, inFeatures], low: -bound, high: bound, seed: w.0, offset: w.1,
                                 on: device, requiresGrad: true)
        if bias {
            let b = seed.map { ($0, UInt64(inFeatures * outFeatures + 15) / 16 * 16) } ?? RandomState.next(count: outFeatures)
            self.bias = try Tensor.rand([outFeatures], low: -bound, high: bound, seed: b.0, offset: b.1,
                                        on: device, requiresGrad: true)
        } else {
            self.bias = nil
        }
    }

    /// `weight`, then `bias` if there is one.
    public var ownParameters: [(name: String, tensor: Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// `x · weightᵀ + bias` for `x` [N, in] (another rank is reshaped to [-1, in]).
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try callAsFunction(x, activation: .none) }

    /// The layer followed by `activation`, in one kernel.
    public func callAsFunction(_ x: Tensor, activation: MatmulActivation) throws -> Tensor {
        let input = x.rank == 2 ? x : try x.reshaped([-1, inFeatures])
        return try Tensor.linear(input, weight, bias: bias, activation: activation, transposeB: true)
    }
}
