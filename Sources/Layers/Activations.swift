import KilnKernels
import KilnTensor

/// `max(x, 0)`.
public final class ReLU: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.ReLU()`).
    public init() {}
    /// `max(x, 0)` element-wise.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.relu() }
}

/// `x` for `x > 0`, else `slope · x`.
public final class LeakyReLU: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// The slope for negative inputs (PyTorch's `negative_slope`).
    public let slope: Float
    /// `nn.LeakyReLU(negative_slope)`; the slope defaults to 0.01, as in PyTorch.
    public init(_ slope: Float = 0.01) { self.slope = slope }
    /// `x` where `x > 0`, else `slope · x`, element-wise.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.leakyRelu(slope: slope) }
}

/// `1 / (1 + e^-x)`.
public final class Sigmoid: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.Sigmoid()`).
    public init() {}
    /// `1 / (1 + e^-x)` element-wise.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.sigmoid() }
}

/// Hyperbolic tangent.
public final class Tanh: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.Tanh()`).
    public init() {}
    /// `tanh(x)` element-wise.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.tanh() }
}

/// GELU, the exact erf form (PyTorch's default).
public final class GELU: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.GELU()`, exact form).
    public init() {}
    /// GELU element-wise: `x · Φ(x)`, with Φ the standard normal CDF.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.gelu() }
}

/// Softmax over the last axis.
public final class Softmax: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.Softmax(dim=-1)`).
    public init() {}
    /// Softmax of `x` along its last axis.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.softmax() }
}

/// Log-softmax over the last axis.
public final class LogSoftmax: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.LogSoftmax(dim=-1)`).
    public init() {}
    /// Log-softmax of `x` along its last axis.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.logSoftmax() }
}

/// [N, ...] → [N, rest] (no copy).
public final class Flatten: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.Flatten()`: everything after the first axis).
    public init() {}
    /// `x` reshaped from [N, ...] to [N, rest], sharing its storage.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.flattened() }
}

/// Returns its input.
public final class Identity: Module {
    /// Training mode (see `Module.train()`); no effect on this layer.
    public var training = true
    /// Creates the layer (`nn.Identity()`).
    public init() {}
    /// `x` itself.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { x }
}

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the rest by
/// 1/(1−p); the identity in eval. Masks come from Kiln's seeded generator.
public final class Dropout: Module {
    /// Training mode (see `Module.train()`): elements are dropped only in training.
    public var training = true
    /// The probability of zeroing each element.
    public let p: Float
    /// `nn.Dropout(p)`; `p` defaults to 0.5. Throws unless 0 ≤ `p` ≤ 1.
    public init(_ p: Float = 0.5) throws {
        guard p >= 0, p <= 1 else { throw TensorError("Dropout(\(p)): p must be in [0, 1].") }
        self.p = p
    }
    /// In training with `p > 0`, `x` with each element zeroed with probability `p` and the rest
    /// scaled by 1/(1−p); otherwise `x` itself.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard training, p > 0 else { return x }
        let (seed, offset) = RandomState.next(count: x.count)
        return try x.dropout(p: p, seed: seed, offset: offset)
    }
}

/// Batch normalization over [N, C] with PyTorch's BatchNorm1d semantics: training normalizes by
/// the biased batch variance and keeps the unbiased one in `running_var`; eval uses the running
/// statistics.
public final class BatchNorm1d: Module {
    /// Training mode (see `Module.train()`): batch statistics and running-statistics updates in
    /// training, the running statistics in eval.
    public var training = true
    /// The per-feature scale γ [C], starting at ones (nil when `affine` is false).
    public let weight: Tensor?
    /// The per-feature shift β [C], starting at zeros (nil when `affine` is false).
    public let bias: Tensor?
    /// The running mean per feature [C] (`running_mean`), starting at zeros.
    public let runningMean: Tensor
    /// The running unbiased variance per feature [C] (`running_var`), starting at ones.
    public let runningVar: Tensor
    /// Added to the variance before the square root, for stability (default 1e-5).
    public let eps: Float
    /// The weight of each batch in the running statistics:
    /// `running = (1 − momentum) · running + momentum · batch` (default 0.1).
    public let momentum: Float
    /// Training batches seen (PyTorch's `num_batches_tracked`), kept on the host: with a fixed
    /// momentum it does not change the numbers, but state dicts carry it.
    public private(set) var numBatchesTracked = 0

    /// `nn.BatchNorm1d(features, eps, momentum, affine)` for `features` channels; with `affine`
    /// (the default) it has a learnable `weight` and `bias`. Throws when `features < 1`.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) throws {
        guard features >= 1 else { throw TensorError("BatchNorm1d(\(features)): features must be ≥ 1.") }
        weight = affine ? try Tensor.ones([features], requiresGrad: true) : nil
        bias = affine ? try Tensor.zeros([features], requiresGrad: true) : nil
        runningMean = try Tensor.zeros([features])
        runningVar = try Tensor.ones([features])
        self.eps = eps
        self.momentum = momentum
    }

    /// `weight` and `bias`, when `affine`.
    public var ownParameters: [(name: String, tensor: Tensor)] {
        [weight.map { ("weight", $0) }, bias.map { ("bias", $0) }].compactMap { $0 }
    }
    /// `running_mean`, `running_var` and `num_batches_tracked` (a 0-d int32 tensor of the host count).
    public var ownBuffers: [(name: String, tensor: Tensor)] {
        var buffers = [("running_mean", runningMean), ("running_var", runningVar)]
        if let count = try? Tensor(labels: [numBatchesTracked], shape: [], on: runningMean.device) {
            buffers.append(("num_batches_tracked", count))
        }
        return buffers
    }

    /// Takes `num_batches_tracked` from a loaded state dict; returns false for every other buffer.
    public func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool {
        guard name == "num_batches_tracked" else { return false }
        numBatchesTracked = try tensor.toIntArray().first ?? 0
        return true
    }

    /// Normalizes `x` [N, C] per feature (then scales and shifts it when affine); in training also counts the
    /// batch and updates the running statistics.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if training { numBatchesTracked += 1 }
        return try x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                        training: training, momentum: momentum, eps: eps)
    }
}
