import KilnDevice
import KilnKernels
import KilnTensor

/// `y = x · weightᵀ + bias`, with `weight` shaped [out, in] as in PyTorch (`nn.Linear`).
///
/// Initialized as PyTorch does: weights Kaiming-uniform with a = √5 (uniform in ±1/√in), bias
/// uniform in ±1/√in, from Kiln's seeded generator (`RandomState.manualSeed`) or a given `seed`.
public final class Linear: Module {
    /// The weight [out, in], a trainable parameter.
    public let weight: Tensor
    /// The bias [out], a trainable parameter, or nil when made with `bias: false`.
    public let bias: Tensor?

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
        let (product, overflow) = inFeatures.multipliedReportingOverflow(by: outFeatures)
        guard !overflow, product <= Int(Int32.max) - 4096 else {
            throw TensorError("Linear(\(inFeatures), \(outFeatures)): the weight has more elements than a device buffer can hold.")
        }
        let bound = 1 / Float(inFeatures).squareRoot()
        let w = seed.map { ($0, UInt64(0)) } ?? RandomState.next(count: product)
        weight = try Tensor.rand([outFeatures, inFeatures], low: -bound, high: bound, seed: w.0, offset: w.1,
                                 on: device, requiresGrad: true)
        if bias {
            let b = seed.map { ($0, UInt64(product + 15) / 16 * 16) } ?? RandomState.next(count: outFeatures)
            self.bias = try Tensor.rand([outFeatures], low: -bound, high: bound, seed: b.0, offset: b.1,
                                        on: device, requiresGrad: true)
        } else {
            self.bias = nil
        }
        super.init(nonThrowing: ())
    }

    /// `x · weightᵀ + bias` for `x` [..., in] (leading axes kept, as in PyTorch).
    public override func forward(_ x: Tensor) throws -> Tensor { try callAsFunction(x, activation: nil) }

    /// The layer followed by `activation`, fused into the product's epilogue when its derivative
    /// allows (the same numbers as applying it after).
    public func callAsFunction(_ x: Tensor, activation: Activation?) throws -> Tensor {
        guard x.shape.last == inFeatures else {
            throw TensorError("Linear(\(inFeatures), \(outFeatures)): input \(x.shape) should end in \(inFeatures) features.")
        }
        if x.rank == 2 { return try Tensor.linear(x, weight, bias: bias, activation: activation, transposeB: true) }
        let rows = try x.reshaped([-1, inFeatures])
        let y = try Tensor.linear(rows, weight, bias: bias, activation: activation, transposeB: true)
        return try y.reshaped(Array(x.shape.dropLast()) + [outFeatures])
    }

    /// `in_features=784, out_features=256, bias=True`
    public override var extraDescription: String {
        "in_features=\(inFeatures), out_features=\(outFeatures), bias=\(bias == nil ? "False" : "True")"
    }
}
