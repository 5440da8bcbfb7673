import KilnDevice

/// Hyper-parameters of batch normalization, with PyTorch's `BatchNorm1d` defaults.
public struct BatchNormHyperparameters: Sendable, Equatable {
    /// Added to the variance before the square root.
    public var eps: Float
    /// Weight of the batch statistic in the running-statistics update:
    /// `running = (1 - momentum) * running + momentum * batch`.
    public var momentum: Float

    /// `BatchNormHyperparameters(eps: 1e-5, momentum: 0.1)` is PyTorch's default.
    public init(eps: Float = 1e-5, momentum: Float = 0.1) {
        self.eps = eps
        self.momentum = momentum
    }
}

extension KernelLibrary {
    /// Whether this library's kernels were built for the GPU code paths (`-DKILN_GPU`). The
    /// kernels of the norm/random/optimizer section choose their work split from the same define.
    var nroGPU: Bool { config.defines["KILN_GPU"] != nil }

    /// Rows of x per chunk of the batch-norm reductions: each chunk's statistics are computed
    /// while its rows are in cache, then chunks are merged in order (deterministic).
    static let batchNormChunkRows = 256

    /// Floats per work-item of the element-wise kernels in this section (`NRO_W` in kernels.cl).
    var nroElementWidth: Int { nroGPU ? 1 : 16 }

    /// Largest element count the section's kernels index with 32-bit ints.
    static let nroMaxElements = Int(Int32.max) - 4096

    /// Batch normalization forward in training mode over `x[rows, features]` (row-major),
    /// PyTorch `BatchNorm1d` semantics: per feature the batch mean and *biased* variance (a stable
    /// two-pass per chunk of rows, chunks merged with Chan's formula), `y = (x - mean) * invstd *
    /// gamma + beta`, `invstd = 1 / sqrt(var + eps)`. Saves `mean` and `invstd` for the backward
    /// pass and, when given, updates the running statistics with the *unbiased* variance
    /// `var * N / (N - 1)`.
    ///
    /// ```swift
    /// try kernels.batchNormForwardTraining(x: x, rows: 32, features: 10, gamma: g, beta: b,
    ///                                      runningMean: rm, runningVar: rv, y: y,
    ///                                      saveMean: mean, saveInvstd: invstd)
    /// ```
    /// - Parameters:
    ///   - gamma, beta: the affine weight and bias (`features` each), both or neither.
    ///   - runningMean, runningVar: running statistics (`features` each), both or neither.
    ///   - saveMean, saveInvstd: outputs, `features` each.
    /// - Throws: `ShapeError` on mismatched lengths, or `rows == 1` (the unbiased variance is
    ///   undefined; PyTorch raises too).
    public func batchNormForwardTraining(x: Buffer<Float>, rows: Int, features: Int,
                                         gamma: Buffer<Float>?, beta: Buffer<Float>?,
                                         runningMean: Buffer<Float>?, runningVar: Buffer<Float>?,
                                         hyper: BatchNormHyperparameters = .init(),
                                         y: Buffer<Float>, saveMean: Buffer<Float>, saveInvstd: Buffer<Float>) throws {
        let name = "batchNormForwardTraining"
        try checkBatchNorm(name, rows: rows, features: features, tensors: [("x", x), ("y", y)],
                           perFeature: [("saveMean", saveMean), ("saveInvstd", saveInvstd)],
                           gamma: gamma, beta: beta)
        guard rows > 1 else {
            throw ShapeError("\(name): training needs more than 1 value per feature (got rows = 1, features = \(features)).")
        }
        let running = try pair(name, "runningMean", runningMean, "runningVar", runningVar, features: features)
        let chunks = (rows + Self.batchNormChunkRows - 1) / Self.batchNormChunkRows
        // Scratch (the pool recycles it; the in-order queue runs its next user after these kernels).
        let partial = try device.buffer(Float.self, count: 2 * chunks * features)
        let coefficients = try device.buffer(Float.self, count: 3 * features)
        try launchBatchNormReduction("bn_partial_stats_f32", rows: rows, features: features, chunks: chunks,
                                     Int32(rows), Int32(features), Int32(Self.batchNormChunkRows), x, partial)
        // Buffers behind a disabled flag are never touched; any buffer fills their slots.
        try launch1D("bn_finalize_stats_f32", features, Int32(rows), Int32(features),
                     Int32(Self.batchNormChunkRows), partial, hyper.eps, hyper.momentum,
                     Int32(running == nil ? 0 : 1), saveMean, saveInvstd,
                     running?.0 ?? saveMean, running?.1 ?? saveInvstd,
                     Int32(gamma == nil ? 0 : 1), gamma ?? saveMean, beta ?? saveMean, coefficients)
        try launchBatchNormElementwise("bn_apply_f32", count: rows * features, Int32(rows * features), Int32(features),
                                       x, coefficients, y)
    }

    /// Batch normalization forward in evaluation mode: `y = (x - runningMean) /
    /// sqrt(runningVar + eps) * gamma + beta` over `x[rows, features]`; nothing is updated.
    ///
    /// ```swift
    /// try kernels.batchNormForwardInference(x: x, rows: 32, features: 10, gamma: g, beta: b,
    ///                                       runningMean: rm, runningVar: rv, y: y)
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths, or when only one of `gamma`/`beta` is given.
    public func batchNormForwardInference(x: Buffer<Float>, rows: Int, features: Int,
                                          gamma: Buffer<Float>?, beta: Buffer<Float>?,
                                          runningMean: Buffer<Float>, runningVar: Buffer<Float>,
                                          eps: Float = 1e-5, y: Buffer<Float>) throws {
        try checkBatchNorm("batchNormForwardInference", rows: rows, features: features, tensors: [("x", x), ("y", y)],
                           perFeature: [("runningMean", runningMean), ("runningVar", runningVar)],
                           gamma: gamma, beta: beta)
        let coefficients = try device.buffer(Float.self, count: 3 * features)
        try launch1D("bn_eval_coefficients_f32", features, Int32(features), runningMean, runningVar, eps,
                     Int32(gamma == nil ? 0 : 1), gamma ?? runningMean, beta ?? runningMean, coefficients)
        try launchBatchNormElementwise("bn_apply_f32", count: rows * features, Int32(rows * features), Int32(features),
                                       x, coefficients, y)
    }

    /// Batch normalization backward (training mode) over `x[rows, features]`: one reduction pass
    /// (per feature `Σdy` and `Σdy·x̂`, `x̂ = (x - mean) * invstd`) and one element-wise pass,
    /// `dx = gamma * invstd / N * (N * dy - Σdy - x̂ * Σdy·x̂)`, `dgamma = Σdy·x̂`, `dbeta = Σdy`.
    ///
    /// ```swift
    /// try kernels.batchNormBackward(x: x, dy: dy, rows: 32, features: 10, gamma: g,
    ///                               saveMean: mean, saveInvstd: invstd, dx: dx, dgamma: dg, dbeta: db)
    /// ```
    /// - Parameters:
    ///   - saveMean, saveInvstd: from `batchNormForwardTraining`.
    ///   - gamma, dgamma, dbeta: all three (affine) or none.
    /// - Throws: `ShapeError` on mismatched lengths.
    public func batchNormBackward(x: Buffer<Float>, dy: Buffer<Float>, rows: Int, features: Int,
                                  gamma: Buffer<Float>?, saveMean: Buffer<Float>, saveInvstd: Buffer<Float>,
                                  dx: Buffer<Float>, dgamma: Buffer<Float>?, dbeta: Buffer<Float>?) throws {
        let name = "batchNormBackward"
        try checkBatchNorm(name, rows: rows, features: features, tensors: [("x", x), ("dy", dy), ("dx", dx)],
                           perFeature: [("saveMean", saveMean), ("saveInvstd", saveInvstd)],
                           gamma: gamma, beta: nil, requirePair: false)
        let grads = try pair(name, "dgamma", dgamma, "dbeta", dbeta, features: features)
        guard (gamma == nil) == (grads == nil) else {
            throw ShapeError("\(name): gamma, dgamma and dbeta must be given together (affine) or all left out.")
        }
        let chunks = (rows + Self.batchNormChunkRows - 1) / Self.batchNormChunkRows
        let partial = try device.buffer(Float.self, count: 2 * chunks * features)
        let coefficients = try device.buffer(Float.self, count: 4 * features)
        try launchBatchNormReduction("bn_backward_partial_f32", rows: rows, features: features, chunks: chunks,
                                     Int32(rows), Int32(features), Int32(Self.batchNormChunkRows), x, dy, saveMean,
                                     partial)
        try launch1D("bn_backward_finalize_f32", features, Int32(rows), Int32(features),
                     Int32(Self.batchNormChunkRows), partial, saveMean, saveInvstd, Int32(gamma == nil ? 0 : 1),
                     gamma ?? saveInvstd, grads?.0 ?? coefficients, grads?.1 ?? coefficients, coefficients)
        try launchBatchNormElementwise("bn_backward_dx_f32", count: rows * features, Int32(rows * features),
                                       Int32(features), x, dy, coefficients, dx)
    }

    // MARK: Checks and work splits

    private func checkBatchNorm(_ name: String, rows: Int, features: Int, tensors: [(String, Buffer<Float>)],
                                perFeature: [(String, Buffer<Float>)], gamma: Buffer<Float>?, beta: Buffer<Float>?,
                                requirePair: Bool = true) throws {
        guard rows >= 1, features >= 1 else {
            throw ShapeError("\(name): rows (\(rows)) and features (\(features)) must be at least 1.")
        }
        let (count, overflow) = rows.multipliedReportingOverflow(by: features)
        guard !overflow, count <= Self.nroMaxElements else {
            throw ShapeError("\(name): \(rows) x \(features) elements exceed the kernels' 32-bit indexing.")
        }
        for (label, buffer) in tensors where buffer.count != count {
            throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected rows x features = \(rows) x \(features) = \(count).")
        }
        for (label, buffer) in perFeature where buffer.count != features {
            throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected features = \(features).")
        }
        if requirePair { _ = try pair(name, "gamma", gamma, "beta", beta, features: features) }
        if let gamma, gamma.count != features {
            throw ShapeError("\(name): gamma has \(gamma.count) elements, expected features = \(features).")
        }
    }

    /// Both buffers (checked to hold `features` elements) or neither.
    private func pair(_ name: String, _ a: String, _ first: Buffer<Float>?, _ b: String, _ second: Buffer<Float>?,
                      features: Int) throws -> (Buffer<Float>, Buffer<Float>)? {
        switch (first, second) {
        case (nil, nil): return nil
        case let (first?, second?):
            for (label, buffer) in [(a, first), (b, second)] where buffer.count != features {
                throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected features = \(features).")
            }
            return (first, second)
        default:
            throw ShapeError("\(name): \(a) and \(b) must be given together or both left out.")
        }
    }

    /// Chunked reductions. CPU: item (block of 16 features, chunk of rows), 16 consecutive
    /// chunks per group (measured fastest on PoCL among 1, 4 and 16). GPU: a group of
    /// 16 features x 16 lanes per chunk, reduced by a local-memory tree.
    private func launchBatchNormReduction(_ name: String, rows: Int, features: Int, chunks: Int,
                                          _ arguments: any KernelArgument...) throws {
        if nroGPU {
            try launch(name, global: [(features + 15) / 16 * 16, chunks * 16], local: [16, 16], arguments: arguments)
        } else {
            try launch(name, global: [(features + 15) / 16, chunks], local: [1, 16], arguments: arguments)
        }
    }

    /// Element-wise passes: flat over the `count` elements, `NRO_W` per item.
    private func launchBatchNormElementwise(_ name: String, count: Int, _ arguments: any KernelArgument...) throws {
        try launch1D(name, (count + nroElementWidth - 1) / nroElementWidth, arguments: arguments)
    }
}
