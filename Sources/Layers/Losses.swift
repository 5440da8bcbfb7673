import KilnTensor

/// A loss: `loss(prediction, target)` gives a scalar (or per-sample values with `.none`).
public protocol Loss {
    /// The loss of `prediction` against `target`.
    func callAsFunction(_ prediction: Tensor, _ target: Tensor) throws -> Tensor
}

/// Cross-entropy of logits [N, C] against int32 class indices [N] (PyTorch's CrossEntropyLoss).
public struct CrossEntropyLoss: Loss {
    /// Label smoothing ε in [0, 1] (PyTorch's `label_smoothing`; 0, the default, is none).
    public var labelSmoothing: Float
    /// How per-sample losses combine: `.mean` (the default), `.sum` or `.none`.
    public var reduction: Reduction
    /// `nn.CrossEntropyLoss(label_smoothing:reduction:)`; defaults: no smoothing, mean.
    public init(labelSmoothing: Float = 0, reduction: Reduction = .mean) {
        self.labelSmoothing = labelSmoothing
        self.reduction = reduction
    }
    /// The loss of `logits` [N, C] against int32 class indices `target` [N].
    public func callAsFunction(_ logits: Tensor, _ target: Tensor) throws -> Tensor {
        try crossEntropy(logits: logits, targets: target, labelSmoothing: labelSmoothing, reduction: reduction)
    }

    /// The loss, also adding 1 to `hits[i]` where row `i` is classified correctly (in the same
    /// kernel): how training counts its accuracy without an extra launch per step.
    public func callAsFunction(_ logits: Tensor, _ target: Tensor, countingHitsInto hits: Tensor) throws -> Tensor {
        try crossEntropy(logits: logits, targets: target, labelSmoothing: labelSmoothing, reduction: reduction, hits: hits)
    }
}

/// Negative log-likelihood of log-probabilities [N, C] against class indices [N].
public struct NLLLoss: Loss {
    /// How per-sample losses combine: `.mean` (the default), `.sum` or `.none`.
    public var reduction: Reduction
    /// `nn.NLLLoss(reduction:)`; the mean by default.
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    /// The loss of `logProbabilities` [N, C] (from `LogSoftmax`) against int32 class indices `target` [N].
    public func callAsFunction(_ logProbabilities: Tensor, _ target: Tensor) throws -> Tensor {
        try nllLoss(logProbabilities: logProbabilities, targets: target, reduction: reduction)
    }
}

/// Mean squared error.
public struct MSELoss: Loss {
    /// How per-sample losses combine: `.mean` (the default), `.sum` or `.none`.
    public var reduction: Reduction
    /// `nn.MSELoss(reduction:)`; the mean by default.
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    /// The squared differences of `prediction` and `target` (same shape), reduced.
    public func callAsFunction(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try mseLoss(prediction, target, reduction: reduction)
    }
}

/// Binary cross-entropy on logits, numerically stable.
public struct BCEWithLogitsLoss: Loss {
    /// How per-sample losses combine: `.mean` (the default), `.sum` or `.none`.
    public var reduction: Reduction
    /// `nn.BCEWithLogitsLoss(reduction:)`; the mean by default.
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    /// The loss of `logits` against 0/1 `target` of the same shape, reduced.
    public func callAsFunction(_ logits: Tensor, _ target: Tensor) throws -> Tensor {
        try binaryCrossEntropyWithLogits(logits, target, reduction: reduction)
    }
}
