/// Gradient clipping with PyTorch's semantics (`torch.nn.utils.clip_grad_norm_` and
/// `clip_grad_value_`). Both work on the device: nothing is read back, so training does not wait.
///
/// ```swift
/// let w = try Tensor([[3, 4]], requiresGrad: true)
/// try (w * w).sum().backward()                       // grad = [6, 8], norm 10
/// let norm = try clipGradNorm([w], maxNorm: 5)       // grad = [3, 4] (scaled by 5 / (10 + 1e-6))
/// print(try norm.item())                             // 10.0: the norm before clipping
/// try clipGradValue([w], 3.5)                        // grad = [3, 3.5]
/// ```
///
/// Parameters without a gradient are skipped, as PyTorch does.
/// - Parameters:
///   - parameters: the tensors whose `grad` is scaled in place.
///   - maxNorm: the largest norm the gradients may have together (finite, ≥ 0).
///   - normType: 2 for the Euclidean norm (default), `.infinity` for the largest magnitude, or any
///     p ≥ 1.
/// - Returns: the total norm of the gradients before clipping, a one-element tensor on the device
///   (NaN when a gradient holds NaN; the gradients then become NaN too, as in PyTorch).
/// - Throws: `TensorError` for a negative or non-finite `maxNorm` or a `normType` below 1 (PyTorch
///   also takes p below 1, which is no norm).
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float, normType: Float = 2) throws -> Tensor {
    guard maxNorm.isFinite, maxNorm >= 0 else {
        throw TensorError("clipGradNorm: maxNorm must be a finite number ≥ 0; got \(maxNorm).")
    }
    guard normType >= 1 else { throw TensorError("clipGradNorm: normType must be ≥ 1 (or .infinity); got \(normType).") }
    let grads = parameters.compactMap(\.grad)
    // No gradient at all: the norm is 0 and nothing changes, as in PyTorch.
    guard let first = grads.first else { return try Tensor.zeros([1], on: parameters.first?.device) }
    return try withNoGrad {
        // The norm of the per-tensor norms, as PyTorch computes it.
        var total: Tensor
        if normType == .infinity {
            total = try first.abs().max()
            for g in grads.dropFirst() { total = try total.maximum(g.abs().max()) }
        } else {
            func powered(_ g: Tensor) throws -> Tensor {
                normType == 2 ? try (g * g).sum() : try g.abs().pow(normType).sum()
            }
            total = try powered(first)
            for g in grads.dropFirst() { total = try total + powered(g) }
            total = normType == 2 ? try total.sqrt() : try total.pow(1 / normType)
        }
        // clip_coef = maxNorm / (norm + 1e-6), clamped to at most 1; grads are multiplied by it.
        let coefficient = try (maxNorm / (total + 1e-6)).clamp(min: -.infinity, max: 1)
        for parameter in parameters {
            guard let g = parameter.grad else { continue }
            try g.assign(g * coefficient)
        }
        return total
    }
}

/// Clamps every gradient of `parameters` to `[-clipValue, clipValue]` in place
/// (`torch.nn.utils.clip_grad_value_`); NaN stays NaN. Parameters without a gradient are skipped.
/// - Throws: `TensorError` for a negative or non-finite `clipValue`.
public func clipGradValue(_ parameters: [Tensor], _ clipValue: Float) throws {
    guard clipValue.isFinite, clipValue >= 0 else {
        throw TensorError("clipGradValue: clipValue must be a finite number ≥ 0; got \(clipValue).")
    }
    try withNoGrad {
        for parameter in parameters {
            guard let g = parameter.grad else { continue }
            try g.assign(g.clamp(min: -clipValue, max: clipValue))
        }
    }
}
