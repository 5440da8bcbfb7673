import KilnKernels
import KilnTensor

/// Batch normalization with PyTorch's semantics, per channel (axis 1): training normalizes by the
/// biased batch variance and keeps the unbiased one in `running_var`; eval uses the running
/// statistics. `BatchNorm1d` takes [N, C] (or [N, C, L]), `BatchNorm2d` takes [N, C, H, W].
public class BatchNorm: Module {
    /// The per-channel scale γ [C], starting at ones (nil when `affine` is false).
    public let weight: Tensor?
    /// The per-channel shift β [C], starting at zeros (nil when `affine` is false).
    public let bias: Tensor?
    /// The running mean per channel [C] (`running_mean`), starting at zeros.
    public let runningMean: Tensor
    /// The running unbiased variance per channel [C] (`running_var`), starting at ones.
    public let runningVar: Tensor
    /// Added to the variance before the square root, for stability (default 1e-5).
    public let eps: Float
    /// The weight of each batch in the running statistics:
    /// `running = (1 − momentum) · running + momentum · batch` (default 0.1).
    public let momentum: Float
    /// Training batches seen (PyTorch's `num_batches_tracked`), kept on the host: with a fixed
    /// momentum it does not change the numbers, but state dicts carry it.
    public private(set) var numBatchesTracked = 0
    /// The input ranks this layer takes.
    let ranks: ClosedRange<Int>

    init(_ features: Int, eps: Float, momentum: Float, affine: Bool, ranks: ClosedRange<Int>) throws {
        let name = String(describing: Self.self)
        guard features >= 1 else { throw TensorError("\(name)(\(features)): features must be ≥ 1.") }
        guard eps.isFinite, eps >= 0, momentum.isFinite, (0...1).contains(momentum) else {
            throw TensorError("\(name)(\(features), eps: \(eps), momentum: \(momentum)): eps must be ≥ 0 and momentum in [0, 1].")
        }
        weight = affine ? try Tensor.ones([features], requiresGrad: true) : nil
        bias = affine ? try Tensor.zeros([features], requiresGrad: true) : nil
        runningMean = try Tensor.zeros([features])
        runningVar = try Tensor.ones([features])
        self.eps = eps
        self.momentum = momentum
        self.ranks = ranks
        super.init(nonThrowing: ())
    }

    /// Channels (`num_features`).
    public var features: Int { runningMean.count }

    /// `weight`, `bias`, `running_mean`, `running_var`, and `num_batches_tracked` (a 0-d int32
    /// tensor of the host count).
    public override func members() -> [(name: String, member: ModuleMember)] {
        var found = super.members()
        if let count = try? Tensor(labels: [numBatchesTracked], shape: [], on: runningMean.device) {
            found.append(("num_batches_tracked", .buffer(count)))
        }
        return found
    }

    /// Takes `num_batches_tracked` from a loaded state dict; returns false for every other buffer.
    public override func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool {
        guard name == "num_batches_tracked" else { return false }
        numBatchesTracked = try tensor.toIntArray().first ?? 0
        return true
    }

    /// Normalizes `x` per channel (then scales and shifts it when affine); in training also counts
    /// the batch and updates the running statistics.
    public override func forward(_ x: Tensor) throws -> Tensor { try callAsFunction(x, activation: nil) }

    /// The normalization followed by `activation`, in the same pass when its derivative allows.
    public func callAsFunction(_ x: Tensor, activation: Activation?) throws -> Tensor {
        try check(x)
        if training { numBatchesTracked += 1 }
        return try x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                               training: training, momentum: momentum, eps: eps, activation: activation)
    }

    /// The normalization, `activation` and a 2 × 2 max pooling of stride 2 of `x` [N, C, H, W] in
    /// one pass (`Sequential` runs BatchNorm2d → activation → MaxPool2d(2) this way).
    public func normalizedMaxPool(_ x: Tensor, activation: Activation?) throws -> Tensor {
        try check(x)
        if training { numBatchesTracked += 1 }
        return try x.batchNormMaxPool2d(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                                        training: training, momentum: momentum, eps: eps, activation: activation)
    }

    private func check(_ x: Tensor) throws {
        guard ranks.contains(x.rank), x.shape[1] == features else {
            throw TensorError("\(typeName)(\(features)): input \(x.shape) should have rank \(ranks.lowerBound == ranks.upperBound ? "\(ranks.lowerBound)" : "\(ranks.lowerBound) or \(ranks.upperBound)") and \(features) channels on axis 1.")
        }
    }

    /// `256, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True`
    public override var extraDescription: String {
        "\(features), eps=\(pythonNumber(eps)), momentum=\(pythonNumber(momentum)), affine=\(weight == nil ? "False" : "True"), track_running_stats=True"
    }
}

/// Batch normalization of [N, C] or [N, C, L] (`nn.BatchNorm1d`).
public final class BatchNorm1d: BatchNorm {
    /// `nn.BatchNorm1d(features, eps, momentum, affine)`; with `affine` (the default) it has a
    /// learnable `weight` and `bias`. Throws when `features < 1` or eps/momentum are out of range.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) throws {
        try super.init(features, eps: eps, momentum: momentum, affine: affine, ranks: 2...3)
    }
}

/// Batch normalization of [N, C, H, W] over N, H and W per channel (`nn.BatchNorm2d`).
public final class BatchNorm2d: BatchNorm {
    /// `nn.BatchNorm2d(features, eps, momentum, affine)`.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) throws {
        try super.init(features, eps: eps, momentum: momentum, affine: affine, ranks: 4...4)
    }
}

/// A float as Python prints it: `1e-05`, `0.1` (Swift's shortest description is Python's).
func pythonNumber(_ v: Float) -> String { String(v) }
