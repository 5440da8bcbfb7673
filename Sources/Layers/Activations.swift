import KilnKernels
import KilnTensor

/// `max(x, 0)`.
public final class ReLU: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.relu() }
}

/// `x` for `x > 0`, else `slope · x`.
public final class LeakyReLU: Module {
    public var training = true
    public let slope: Float
    public init(_ slope: Float = 0.01) { self.slope = slope }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.leakyRelu(slope: slope) }
}

/// `1 / (1 + e^-x)`.
public final class Sigmoid: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.sigmoid() }
}

/// Hyperbolic tangent.
public final class Tanh: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.tanh() }
}

/// GELU, the exact erf form (PyTorch's default).
public final class GELU: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.gelu() }
}

/// Softmax over the last axis.
public final class Softmax: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.softmax() }
}

/// Log-softmax over the last axis.
public final class LogSoftmax: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.logSoftmax() }
}

/// [N, ...] → [N, rest] (no copy).
public final class Flatten: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try x.flattened() }
}

/// Returns its input.
public final class Identity: Module {
    public var training = true
    public init() {}
    public func callAsFunction(_ x: Tensor) throws -> Tensor { x }
}

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the rest by
/// 1/(1−p); the identity in eval. Masks come from Kiln's seeded generator.
public final class Dropout: Module {
    public var training = true
    public let p: Float
    public init(_ p: Float = 0.5) throws {
        guard p >= 0, p <= 1 else { throw TensorError("Dropout(\(p)): p must be in [0, 1].") }
        self.p = p
    }
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
    public var training = true
    public let weight: Tensor?
    public let bias: Tensor?
    public let runningMean: Tensor
    public let runningVar: Tensor
    public let eps: Float
    public let momentum: Float
    /// Training batches seen (PyTorch's `num_batches_tracked`), kept on the host: with a fixed
    /// momentum it does not change the numbers, but state dicts carry it.
    public private(set) var numBatchesTracked = 0

    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) throws {
        guard features >= 1 else { throw TensorError("BatchNorm1d(\(features)): features must be ≥ 1.") }
        weight = affine ? try Tensor.ones([features], requiresGrad: true) : nil
        bias = affine ? try Tensor.zeros([features], requiresGrad: true) : nil
        runningMean = try Tensor.zeros([features])
        runningVar = try Tensor.ones([features])
        self.eps = eps
        self.momentum = momentum
    }

    public var ownParameters: [(name: String, tensor: Tensor)] {
        [weight.map { ("weight", $0) }, bias.map { ("bias", $0) }].compactMap { $0 }
    }
    public var ownBuffers: [(name: String, tensor: Tensor)] {
        var buffers = [("running_mean", runningMean), ("running_var", runningVar)]
        if let count = try? Tensor(labels: [numBatchesTracked], shape: [], on: runningMean.device) {
            buffers.append(("num_batches_tracked", count))
        }
        return buffers
    }

    public func restoreHostBuffer(_ name: String, from tensor: Tensor) throws -> Bool {
        guard name == "num_batches_tracked" else { return false }
        numBatchesTracked = try tensor.toIntArray().first ?? 0
        return true
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if training { numBatchesTracked += 1 }
        return try x.batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                        training: training, momentum: momentum, eps: eps)
    }
}
