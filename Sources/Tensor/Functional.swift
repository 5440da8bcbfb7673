import KilnDevice
import KilnKernels

/// How a loss combines the per-sample losses (PyTorch's `reduction`).
public enum Reduction: String, Sendable, CaseIterable {
    /// The mean over the batch (the default).
    case mean
    /// The sum over the batch.
    case sum
    /// One loss per sample.
    case none
}

extension Tensor {
    /// Softmax along the last axis (rows of the [rows, cols] view).
    public func softmax() throws -> Tensor {
        let (rows, cols) = matrix
        let out = try Tensor.empty(shape, on: device)
        try kernels.softmax(floats("softmax"), rows: rows, cols: cols, into: out.floats("softmax"))
        return out.recorded([self]) { g in
            let dx = try Tensor.empty(out.shape, on: out.device)
            try out.kernels.softmaxBackward(gradOutput: g.floats("softmax"), output: out.floats("softmax"),
                                            rows: rows, cols: cols, into: dx.floats("softmax"))
            return [dx]
        }
    }

    /// Log-softmax along the last axis, computed directly (never `log(softmax)`).
    public func logSoftmax() throws -> Tensor {
        let (rows, cols) = matrix
        let out = try Tensor.empty(shape, on: device)
        try kernels.logSoftmax(floats("logSoftmax"), rows: rows, cols: cols, into: out.floats("logSoftmax"))
        return out.recorded([self]) { g in
            let dx = try Tensor.empty(out.shape, on: out.device)
            try out.kernels.logSoftmaxBackward(gradOutput: g.floats("logSoftmax"), output: out.floats("logSoftmax"),
                                               rows: rows, cols: cols, into: dx.floats("logSoftmax"))
            return [dx]
        }
    }

    /// Inverted dropout: zeroes each element with probability `p` and scales the rest by 1/(1-p),
    /// from Philox(seed, offset) so a run is reproducible on every device. With `group` > 1, runs
    /// of `group` consecutive elements are kept or dropped together (Dropout2d drops channels).
    public func dropout(p: Float, seed: UInt64, offset: UInt64, group: Int = 1) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.dropout(floats("dropout"), into: out.floats("dropout"), p: p, seed: seed, offset: offset, group: group)
        return out.recorded([self]) { g in
            let dx = try Tensor.empty(g.shape, on: g.device)
            try g.kernels.dropout(g.floats("dropout"), into: dx.floats("dropout"), p: p, seed: seed, offset: offset,
                                  group: group)
            return [dx]
        }
    }
}

/// Cross-entropy of `logits` [N, C] against int32 class `targets` [N], with optional label
/// smoothing (PyTorch's definition). One fused kernel gives the loss and, when needed, the gradient.
/// With `hits` (an int32 tensor of at least N counters), `hits[i] += 1` where row `i`'s first
/// argmax is its target, at no extra launch: training sums them once an epoch for its accuracy.
public func crossEntropy(logits: Tensor, targets: Tensor, labelSmoothing: Float = 0,
                         reduction: Reduction = .mean, hits: Tensor? = nil) throws -> Tensor {
    guard logits.rank == 2, targets.rank == 1, targets.count == logits.shape[0] else {
        throw TensorError("crossEntropy: logits must be [N, C] and targets [N]; got \(logits.shape) and \(targets.shape).")
    }
    try Tensor.checkSameDevice("crossEntropy", [logits, targets, hits])
    let (n, c) = (logits.shape[0], logits.shape[1])
    let kernels = try logits.kernels
    let needsGrad = GradMode.enabled && logits.requiresGrad
    let gradient = needsGrad ? try Tensor.empty(logits.shape, on: logits.device) : nil
    let out: Tensor
    switch reduction {
    case .mean, .sum:
        out = try Tensor.empty([], on: logits.device)
        // The kernel scales the gradient by gradScale / N; sum wants no 1/N.
        try kernels.crossEntropy(logits: logits.floats("crossEntropy"), targets: targets.ints("crossEntropy"), rows: n,
                                 classes: c, labelSmoothing: labelSmoothing, gradScale: reduction == .sum ? Float(n) : 1,
                                 meanLoss: out.floats("crossEntropy"), gradient: gradient?.floats("crossEntropy"),
                                 hits: hits?.ints("crossEntropy"))
        if reduction == .sum {
            try kernels.binary(.mul, out.floats("crossEntropy"), scalar: Float(n), into: out.floats("crossEntropy"))
        }
    case .none:
        out = try Tensor.empty([n], on: logits.device)
        try kernels.crossEntropy(logits: logits.floats("crossEntropy"), targets: targets.ints("crossEntropy"), rows: n,
                                 classes: c, labelSmoothing: labelSmoothing, gradScale: Float(n),
                                 rowLosses: out.floats("crossEntropy"), gradient: gradient?.floats("crossEntropy"),
                                 hits: hits?.ints("crossEntropy"))
    }
    guard let gradient else { return out }
    return out.recorded([logits]) { g in
        // The upstream gradient is a scalar (mean, sum) or one value per row (none); when it is
        // backward()'s own seed of ones, the fused kernel's gradient is already the answer.
        if g.isUnitSeed { return [gradient] }
        return [try reduction == .none ? gradient * g.reshaped([n, 1]) : gradient * g.reshaped([1])]
    }
}

/// Negative log-likelihood of log-probabilities [N, C] against int32 class targets [N].
public func nllLoss(logProbabilities: Tensor, targets: Tensor, reduction: Reduction = .mean) throws -> Tensor {
    guard logProbabilities.rank == 2, targets.rank == 1, targets.count == logProbabilities.shape[0] else {
        throw TensorError("nllLoss: inputs must be [N, C] and targets [N]; got \(logProbabilities.shape) and \(targets.shape).")
    }
    let picked = try (logProbabilities * targets.oneHot(classes: logProbabilities.shape[1])).sum(axis: 1).neg()
    return try reduce(picked, reduction)
}

/// Mean squared error between `prediction` and `target` of the same shape.
public func mseLoss(_ prediction: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
    guard prediction.shape == target.shape else {
        throw TensorError("mseLoss: shapes \(prediction.shape) and \(target.shape) differ.")
    }
    let difference = try prediction - target
    let squared = try difference * difference
    switch reduction {
    case .mean: return try squared.mean()
    case .sum: return try squared.sum()
    case .none: return squared
    }
}

/// Binary cross-entropy on logits, in the stable form max(x, 0) − x·y + log(1 + e^−|x|).
public func binaryCrossEntropyWithLogits(_ logits: Tensor, _ target: Tensor, reduction: Reduction = .mean) throws -> Tensor {
    guard logits.shape == target.shape else {
        throw TensorError("binaryCrossEntropyWithLogits: shapes \(logits.shape) and \(target.shape) differ.")
    }
    let absolute = try logits.relu() + logits.neg().relu()
    let losses = try logits.relu() - logits * target + (absolute.neg().exp() + 1).log()
    switch reduction {
    case .mean: return try losses.mean()
    case .sum: return try losses.sum()
    case .none: return losses
    }
}

private func reduce(_ perSample: Tensor, _ reduction: Reduction) throws -> Tensor {
    switch reduction {
    case .mean: return try perSample.mean()
    case .sum: return try perSample.sum()
    case .none: return perSample
    }
}

extension Tensor {
    /// Batch normalization over [N, C] or [N, C, ...] (PyTorch's BatchNorm1d and BatchNorm2d):
    /// statistics per channel (axis 1) over the batch and every position after it. In training it
    /// normalizes by the batch mean and *biased* variance and updates `runningMean`/`runningVar`
    /// (the *unbiased* variance) in place with `momentum`; in eval it uses the running statistics.
    /// `activation`, when given, follows in the same pass (its gradient from the output, so relu,
    /// leaky relu of positive slope, sigmoid and tanh fuse; GELU runs as its own op).
    public func batchNorm(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                          training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                          activation: Activation? = nil) throws -> Tensor {
        try normalized(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar, training: training,
                       momentum: momentum, eps: eps, activation: activation, pooled: false)
    }

    /// `batchNorm(…, activation:)` then `maxPool2d(kernel: 2)` of this [N, C, H, W] tensor, the
    /// pooling's kernel normalizing and activating as it reads (a conv block's BatchNorm2d → ReLU →
    /// MaxPool2d(2) in one pass over the input besides the statistics); the same numbers and
    /// gradients as the three ops apart. An activation whose derivative needs its input (GELU) runs apart.
    public func batchNormMaxPool2d(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?,
                                   training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                                   activation: Activation? = nil) throws -> Tensor {
        guard rank == 4 else { throw TensorError("batchNormMaxPool2d needs [N, C, H, W] input, got \(shape).") }
        return try normalized(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                              training: training, momentum: momentum, eps: eps, activation: activation, pooled: true)
    }

    private func normalized(weight: Tensor?, bias: Tensor?, runningMean: Tensor?, runningVar: Tensor?, training: Bool,
                            momentum: Float, eps: Float, activation: Activation?, pooled: Bool) throws -> Tensor {
        guard rank >= 2 else { throw TensorError("batchNorm needs [N, C] or [N, C, ...] input, got \(shape).") }
        if let activation, !activation.derivativeFromOutput {
            let y = try batchNorm(weight: weight, bias: bias, runningMean: runningMean, runningVar: runningVar,
                                  training: training, momentum: momentum, eps: eps).applying(activation)
            return pooled ? try y.maxPool2d(kernel: 2) : y
        }
        let layout = BatchNormShape(samples: shape[0], channels: shape[1], spatial: count / (shape[0] * shape[1]))
        let c = layout.channels
        for (name, t) in [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVar)] {
            if let t, t.count != c {
                throw TensorError("batchNorm: \(name) has \(t.count) elements but the input \(shape) has \(c) channels.")
            }
        }
        try Tensor.checkSameDevice("batchNorm", [self, weight, bias, runningMean, runningVar])
        let window = pooled ? try self.window("batchNormMaxPool2d", kernel: 2, stride: 2, padding: 0, dilation: 1) : nil
        let gamma = try weight?.floats("batchNorm"), beta = try bias?.floats("batchNorm")
        let coefficients: Buffer<Float>
        var saved: (mean: Buffer<Float>, invstd: Buffer<Float>)? = nil
        if training {
            guard layout.perChannel > 1 else {
                throw TensorError("batchNorm in training needs more than 1 value per channel, got input \(shape) (PyTorch raises too).")
            }
            let mean = try device.buffer(Float.self, count: c), invstd = try device.buffer(Float.self, count: c)
            coefficients = try kernels.batchNormTrainingCoefficients(
                x: floats("batchNorm"), shape: layout, gamma: gamma, beta: beta, runningMean: runningMean?.floats("batchNorm"),
                runningVar: runningVar?.floats("batchNorm"), hyper: BatchNormHyperparameters(eps: eps, momentum: momentum),
                saveMean: mean, saveInvstd: invstd)
            saved = (mean, invstd)
        } else {
            guard let runningMean, let runningVar else {
                throw TensorError("batchNorm in eval mode needs running statistics (track_running_stats).")
            }
            coefficients = try kernels.batchNormEvalCoefficients(shape: layout, gamma: gamma, beta: beta,
                                                                 runningMean: runningMean.floats("batchNorm"),
                                                                 runningVar: runningVar.floats("batchNorm"), eps: eps)
        }
        let out: Tensor, indices: Buffer<Int32>?
        if let window {
            out = try Tensor.empty([window.samples, window.channels, window.outputHeight, window.outputWidth], on: device)
            let found = try device.buffer(Int32.self, count: window.outputCount)
            try kernels.maxPool(floats("batchNorm"), window, normalize: coefficients, activation: activation,
                                into: out.floats("batchNorm"), indices: found)
            indices = found
        } else {
            out = try Tensor.empty(shape, on: device)
            try kernels.batchNormApply(x: floats("batchNorm"), shape: layout, coefficients: coefficients,
                                       activation: activation, y: out.floats("batchNorm"))
            indices = nil
        }
        let x = self
        let inputs = [x] + [weight, bias].compactMap { $0 }
        guard let saved else {
            return out.recorded(inputs) { _ in
                throw TensorError("backward through batchNorm in eval mode is not supported; call train() first.")
            }
        }
        return out.recorded(inputs) { g in
            let dx = try Tensor.empty(x.shape, on: x.device)
            let dgamma = try weight.map { _ in try Tensor.empty([c], on: x.device) }
            let dbeta = try bias.map { _ in try Tensor.empty([c], on: x.device) }
            let grads = [dx] + (weight == nil ? [] : [dgamma]) + (bias == nil ? [] : [dbeta])
            if let window, let indices {
                // Through the pooling, its activation and the normalization at once.
                try x.kernels.batchNormMaxPoolBackward(
                    x: x.floats("batchNorm"), gradOutput: g.floats("batchNorm"), indices: indices, output: out.floats("batchNorm"),
                    window, activation: activation, gamma: gamma, saveMean: saved.mean, saveInvstd: saved.invstd,
                    dx: dx.floats("batchNorm"), dgamma: dgamma?.floats("batchNorm"), dbeta: dbeta?.floats("batchNorm"))
                return grads
            }
            var gz = g
            if let activation {
                gz = try Tensor.empty(g.shape, on: g.device)
                try g.kernels.activationBackward(activation, gradOutput: g.floats("batchNorm"), saved: out.floats("batchNorm"),
                                                 into: gz.floats("batchNorm"))
            }
            try x.kernels.batchNormBackward(x: x.floats("batchNorm"), dy: gz.floats("batchNorm"), shape: layout,
                                            gamma: gamma, saveMean: saved.mean, saveInvstd: saved.invstd,
                                            dx: dx.floats("batchNorm"), dgamma: dgamma?.floats("batchNorm"),
                                            dbeta: dbeta?.floats("batchNorm"))
            return grads
        }
    }
}
