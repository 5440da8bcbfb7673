import KilnTensor

/// A loss: `loss(prediction, target)` gives a scalar (or per-sample values with `.none`).
public protocol Loss {
    func callAsFunction(_ prediction: Tensor, _ target: Tensor) throws -> Tensor
}

/// Cross-entropy of logits [N, C] against int32 class indices [N] (PyTorch's CrossEntropyLoss).
public struct CrossEntropyLoss: Loss {
    public var labelSmoothing: Float
    public var reduction: Reduction
    public init(labelSmoothing: Float = 0, reduction: Reduction = .mean) {
        self.labelSmoothing = labelSmoothing
        self.reduction = reduction
    }
    public func callAsFunction(_ logits: Tensor, _ target: Tensor) throws -> Tensor {
        try crossEntropy(logits: logits, targets: target, labelSmoothing: labelSmoothing, reduction: reduction)
    }
}

/// Negative log-likelihood of log-probabilities [N, C] against class indices [N].
public struct NLLLoss: Loss {
    public var reduction: Reduction
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    public func callAsFunction(_ logProbabilities: Tensor, _ target: Tensor) throws -> Tensor {
        try nllLoss(logProbabilities: logProbabilities, targets: target, reduction: reduction)
    }
}

/// Mean squared error.
public struct MSELoss: Loss {
    public var reduction: Reduction
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    public func callAsFunction(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try mseLoss(prediction, target, reduction: reduction)
    }
}

/// Binary cross-entropy on logits, numerically stable.
public struct BCEWithLogitsLoss: Loss {
    public var reduction: Reduction
    public init(reduction: Reduction = .mean) { self.reduction = reduction }
    public func callAsFunction(_ logits: Tensor, _ target: Tensor) throws -> Tensor {
        try binaryCrossEntropyWithLogits(logits, target, reduction: reduction)
    }
}
