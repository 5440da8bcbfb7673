import KilnDevice

/// Hyper-parameters of batch normalization, with PyTorch's defaults.
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

/// The layout a batch normalization runs over: `samples` × `channels` × `spatial`, row-major, with
/// statistics per channel over the samples and the spatial positions. `BatchNorm1d` is
/// `[N, C]` (spatial 1); `BatchNorm2d` is NCHW, spatial `H·W`.
public struct BatchNormShape: Sendable, Equatable, CustomStringConvertible {
    /// N: the batch.
    public var samples: Int
    /// C: one statistic per channel.
    public var channels: Int
    /// The positions per channel and sample (H·W; 1 for `[N, C]`).
    public var spatial: Int

    /// `[samples, channels]` when `spatial` is 1, else `[samples, channels, spatial]`.
    public init(samples: Int, channels: Int, spatial: Int = 1) {
        self.samples = samples; self.channels = channels; self.spatial = spatial
    }

    /// Elements of x.
    public var count: Int { samples * channels * spatial }
    /// Values behind each channel's statistics.
    public var perChannel: Int { samples * spatial }
    /// `[N, C]` or `[N, C, S]`.
    public var description: String { spatial == 1 ? "[\(samples), \(channels)]" : "[\(samples), \(channels), \(spatial)]" }

    /// Samples per chunk of the reductions: each chunk's statistics are computed while its data is
    /// in cache, then chunks are merged in order (deterministic). About 4096 values a chunk.
    var chunkSamples: Int { spatial == 1 ? 256 : max(1, 4096 / spatial) }
    var chunks: Int { (samples + chunkSamples - 1) / chunkSamples }
}

extension KernelLibrary {
    /// Batch normalization forward in training mode over `x` (PyTorch's `BatchNorm1d`/`2d`): per
    /// channel the batch mean and *biased* variance (a stable two-pass per chunk, chunks merged with
    /// Chan's formula), `y = (x - mean) * invstd * gamma + beta`, `invstd = 1 / sqrt(var + eps)`.
    /// Saves `mean` and `invstd` for the backward pass and, when given, updates the running
    /// statistics with the *unbiased* variance `var * M / (M - 1)`, M = samples · spatial.
    /// `activation`, when given, is applied to `y` in the same pass.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let shape = BatchNormShape(samples: 4, channels: 2)
    /// let x = try device.buffer((0..<8).map(Float.init)), y = try device.buffer(Float.self, count: 8)
    /// let mean = try device.buffer(Float.self, count: 2), invstd = try device.buffer(Float.self, count: 2)
    /// try kernels.batchNormForwardTraining(x: x, shape: shape, gamma: nil, beta: nil, runningMean: nil,
    ///                                      runningVar: nil, y: y, saveMean: mean, saveInvstd: invstd)
    /// ```
    /// - Parameters:
    ///   - x: the input, `samples × channels × spatial` values.
    ///   - shape: the layout of `x`.
    ///   - gamma: the affine weight (`channels` values); with `beta`, or neither.
    ///   - beta: the affine bias (`channels` values).
    ///   - runningMean: the running mean (`channels` values), updated in place; with `runningVar`, or neither.
    ///   - runningVar: the running (unbiased) variance, updated in place.
    ///   - hyper: `eps` and `momentum`.
    ///   - activation: an activation applied to the output in the same pass.
    ///   - y: the output, as `x`.
    ///   - saveMean: output: the batch mean per channel.
    ///   - saveInvstd: output: `1 / sqrt(var + eps)` per channel, for the backward pass.
    /// - Throws: `ShapeError` on mismatched lengths, or one value per channel (the unbiased
    ///   variance is undefined; PyTorch raises too).
    public func batchNormForwardTraining(x: Buffer<Float>, shape: BatchNormShape, gamma: Buffer<Float>?,
                                         beta: Buffer<Float>?, runningMean: Buffer<Float>?, runningVar: Buffer<Float>?,
                                         hyper: BatchNormHyperparameters = .init(), activation: Activation? = nil,
                                         y: Buffer<Float>, saveMean: Buffer<Float>, saveInvstd: Buffer<Float>) throws {
        try checkBatchNorm("batchNormForwardTraining", shape, tensors: [("x", x), ("y", y)], perChannel: [],
                           gamma: gamma, beta: beta)
        let coefficients = try batchNormTrainingCoefficients(x: x, shape: shape, gamma: gamma, beta: beta,
                                                             runningMean: runningMean, runningVar: runningVar, hyper: hyper,
                                                             saveMean: saveMean, saveInvstd: saveInvstd)
        try batchNormApply(x: x, shape: shape, coefficients: coefficients, activation: activation, y: y)
    }

    /// The statistics pass of `batchNormForwardTraining` (the batch statistics, saved, and the
    /// running statistics updated) without the element-wise pass: returns the per-channel
    /// coefficients `[mean | scale | shift]` (3 · channels) that `batchNormApply`, or a fused
    /// `maxPool`, applies as `(x - mean) * scale + shift`.
    public func batchNormTrainingCoefficients(x: Buffer<Float>, shape: BatchNormShape, gamma: Buffer<Float>?,
                                              beta: Buffer<Float>?, runningMean: Buffer<Float>?,
                                              runningVar: Buffer<Float>?, hyper: BatchNormHyperparameters = .init(),
                                              saveMean: Buffer<Float>, saveInvstd: Buffer<Float>) throws -> Buffer<Float> {
        let name = "batchNormForwardTraining"
        try checkBatchNorm(name, shape, tensors: [("x", x)],
                           perChannel: [("saveMean", saveMean), ("saveInvstd", saveInvstd)], gamma: gamma, beta: beta)
        guard shape.perChannel > 1 else {
            throw ShapeError("\(name): training needs more than 1 value per channel (got \(shape)).")
        }
        let running = try pair(name, "runningMean", runningMean, "runningVar", runningVar, channels: shape.channels)
        let c = shape.channels
        // Scratch (the pool recycles it; the in-order queue runs its next user after these kernels).
        let partial = try device.buffer(Float.self, count: 2 * shape.chunks * c)
        let coefficients = try device.buffer(Float.self, count: 3 * c)
        try launchBatchNormReduction(.bnPartialStats, shape, Int32(shape.samples), Int32(c), Int32(shape.spatial),
                                     Int32(shape.chunkSamples), x, partial)
        // Buffers behind a disabled flag are never touched; any buffer fills their slots.
        try launch1D(.bnFinalizeStats, c, Int32(shape.samples), Int32(c), Int32(shape.spatial), Int32(shape.chunkSamples),
                     partial, hyper.eps, hyper.momentum, Int32(running == nil ? 0 : 1), saveMean, saveInvstd,
                     running?.0 ?? saveMean, running?.1 ?? saveInvstd, Int32(gamma == nil ? 0 : 1),
                     gamma ?? saveMean, beta ?? saveMean, coefficients)
        return coefficients
    }

    /// The coefficients `[mean | scale | shift]` of evaluation mode, from the running statistics.
    public func batchNormEvalCoefficients(shape: BatchNormShape, gamma: Buffer<Float>?, beta: Buffer<Float>?,
                                          runningMean: Buffer<Float>, runningVar: Buffer<Float>,
                                          eps: Float = 1e-5) throws -> Buffer<Float> {
        try checkBatchNorm("batchNormForwardInference", shape, tensors: [],
                           perChannel: [("runningMean", runningMean), ("runningVar", runningVar)], gamma: gamma, beta: beta)
        let c = shape.channels
        let coefficients = try device.buffer(Float.self, count: 3 * c)
        try launch1D(.bnEvalCoefficients, c, Int32(c), runningMean, runningVar, eps, Int32(gamma == nil ? 0 : 1),
                     gamma ?? runningMean, beta ?? runningMean, coefficients)
        return coefficients
    }

    /// `y = activation((x - mean) * scale + shift)` per channel, from `coefficients`
    /// `[mean | scale | shift]` (3 · channels).
    public func batchNormApply(x: Buffer<Float>, shape: BatchNormShape, coefficients: Buffer<Float>,
                               activation: Activation? = nil, y: Buffer<Float>) throws {
        try checkBatchNorm("batchNormApply", shape, tensors: [("x", x), ("y", y)], perChannel: [], gamma: nil, beta: nil)
        try Check.count("batchNormApply", "coefficients", coefficients, 3 * shape.channels)
        try launchFlat(.bnApply, count: shape.count,
                       arguments: [Int32(shape.count), Int32(shape.channels), Int32(shape.spatial), x, coefficients, y,
                                   activation?.code ?? 0, activation?.parameter ?? 0])
    }

    /// Batch normalization forward in evaluation mode: `y = (x - runningMean) /
    /// sqrt(runningVar + eps) * gamma + beta` per channel, then `activation` when given; nothing
    /// is updated.
    /// - Throws: `ShapeError` on mismatched lengths, or when only one of `gamma`/`beta` is given.
    public func batchNormForwardInference(x: Buffer<Float>, shape: BatchNormShape, gamma: Buffer<Float>?,
                                          beta: Buffer<Float>?, runningMean: Buffer<Float>, runningVar: Buffer<Float>,
                                          eps: Float = 1e-5, activation: Activation? = nil, y: Buffer<Float>) throws {
        let coefficients = try batchNormEvalCoefficients(shape: shape, gamma: gamma, beta: beta, runningMean: runningMean,
                                                         runningVar: runningVar, eps: eps)
        try batchNormApply(x: x, shape: shape, coefficients: coefficients, activation: activation, y: y)
    }

    /// Batch normalization backward (training mode): one reduction pass (per channel `Σdy` and
    /// `Σdy·x̂`, `x̂ = (x - mean) * invstd`) and one element-wise pass,
    /// `dx = gamma * invstd / M * (M * dy - Σdy - x̂ * Σdy·x̂)`, `dgamma = Σdy·x̂`, `dbeta = Σdy`.
    /// - Parameters:
    ///   - x: the forward input.
    ///   - dy: the gradient of the output.
    ///   - shape: the layout of `x`.
    ///   - gamma: the affine weight; with `dgamma` and `dbeta`, or none of the three.
    ///   - saveMean: from `batchNormForwardTraining`.
    ///   - saveInvstd: from `batchNormForwardTraining`.
    ///   - dx: output: the gradient of `x`.
    ///   - dgamma: output: the gradient of `gamma`.
    ///   - dbeta: output: the gradient of `beta`.
    /// - Throws: `ShapeError` on mismatched lengths.
    public func batchNormBackward(x: Buffer<Float>, dy: Buffer<Float>, shape: BatchNormShape, gamma: Buffer<Float>?,
                                  saveMean: Buffer<Float>, saveInvstd: Buffer<Float>, dx: Buffer<Float>,
                                  dgamma: Buffer<Float>?, dbeta: Buffer<Float>?) throws {
        let name = "batchNormBackward"
        try checkBatchNorm(name, shape, tensors: [("x", x), ("dy", dy), ("dx", dx)],
                           perChannel: [("saveMean", saveMean), ("saveInvstd", saveInvstd)], gamma: gamma, beta: nil,
                           requirePair: false)
        let grads = try pair(name, "dgamma", dgamma, "dbeta", dbeta, channels: shape.channels)
        guard (gamma == nil) == (grads == nil) else {
            throw ShapeError("\(name): gamma, dgamma and dbeta must be given together (affine) or all left out.")
        }
        let c = shape.channels
        let partial = try device.buffer(Float.self, count: 2 * shape.chunks * c)
        let coefficients = try device.buffer(Float.self, count: 4 * c)
        try launchBatchNormReduction(.bnBackwardPartial, shape, Int32(shape.samples), Int32(c), Int32(shape.spatial),
                                     Int32(shape.chunkSamples), x, dy, saveMean, partial)
        try launch1D(.bnBackwardFinalize, c, Int32(shape.samples), Int32(c), Int32(shape.spatial),
                     Int32(shape.chunkSamples), partial, saveMean, saveInvstd, Int32(gamma == nil ? 0 : 1),
                     gamma ?? saveInvstd, grads?.0 ?? coefficients, grads?.1 ?? coefficients, coefficients)
        try launchFlat(.bnBackwardDx, count: shape.count,
                       arguments: [Int32(shape.count), Int32(c), Int32(shape.spatial), x, dy, coefficients, dx])
    }

    /// Backward through a fused batch norm → `activation` → 2 × 2 max pooling (`maxPool` with
    /// `normalize` from `batchNormTrainingCoefficients`), from the gradient `dy` of the pooled
    /// `output` [N, C, OH, OW] and its `indices`: `dx` [N, C, H, W], `dgamma` and `dbeta` as
    /// `batchNormBackward` gives them for the unpooled gradient, which is never written (both
    /// passes rebuild it from the pooled tensors).
    public func batchNormMaxPoolBackward(x: Buffer<Float>, gradOutput dy: Buffer<Float>, indices: Buffer<Int32>,
                                         output y: Buffer<Float>, _ window: WindowGeometry, activation: Activation?,
                                         gamma: Buffer<Float>?, saveMean: Buffer<Float>, saveInvstd: Buffer<Float>,
                                         dx: Buffer<Float>, dgamma: Buffer<Float>?, dbeta: Buffer<Float>?) throws {
        let name = "batchNormMaxPoolBackward \(window)"
        guard window.isTwoByTwo else { throw ShapeError("\(name): the fused backward takes 2 × 2 windows of stride 2.") }
        if let activation, !activation.derivativeFromOutput {
            throw ShapeError("\(name): \(activation) cannot fuse into max pooling (its derivative needs the input).")
        }
        let shape = BatchNormShape(samples: window.samples, channels: window.channels, spatial: window.height * window.width)
        try checkBatchNorm(name, shape, tensors: [("x", x), ("dx", dx)],
                           perChannel: [("saveMean", saveMean), ("saveInvstd", saveInvstd)], gamma: gamma, beta: nil,
                           requirePair: false)
        for (label, buffer) in [("dy", dy), ("output", y)] { try Check.count(name, label, buffer, window.outputCount) }
        guard dx !== x, dx !== dy, dx !== y else {
            throw ShapeError("\(name): dx must be a buffer of its own, not x, dy or the output (it is written while they are read).")
        }
        try Check.count(name, "indices", indices, window.outputCount)
        let grads = try pair(name, "dgamma", dgamma, "dbeta", dbeta, channels: shape.channels)
        guard (gamma == nil) == (grads == nil) else {
            throw ShapeError("\(name): gamma, dgamma and dbeta must be given together (affine) or all left out.")
        }
        let c = shape.channels
        let geometry = SIMD8<Int32>(Int32(window.samples * c), Int32(window.height), Int32(window.width),
                                    Int32(window.outputHeight), Int32(window.outputWidth), Int32(c),
                                    activation?.code ?? 0, 0)
        let slope = activation?.parameter ?? 0
        let partial = try device.buffer(Float.self, count: 2 * shape.chunks * c)
        let coefficients = try device.buffer(Float.self, count: 4 * c)
        try launchBatchNormReduction(.poolMax2BnBackwardPartial, shape, Int32(shape.samples), Int32(c),
                                     Int32(shape.chunkSamples), geometry, slope, x, dy, indices, y, saveMean, partial)
        try launch1D(.bnBackwardFinalize, c, Int32(shape.samples), Int32(c), Int32(shape.spatial),
                     Int32(shape.chunkSamples), partial, saveMean, saveInvstd, Int32(gamma == nil ? 0 : 1),
                     gamma ?? saveInvstd, grads?.0 ?? coefficients, grads?.1 ?? coefficients, coefficients)
        let pairs = window.outputHeight + window.height % 2, rows = rowsPerItem(pairs, planes: window.samples * c)
        try launch1D(.poolMax2BnBackwardDx, window.samples * c * ((pairs + rows - 1) / rows), geometry, slope, x, dy,
                     indices, y, coefficients, dx, Int32(rows))
    }

    // MARK: Checks and work splits

    private func checkBatchNorm(_ name: String, _ shape: BatchNormShape, tensors: [(String, Buffer<Float>)],
                                perChannel: [(String, Buffer<Float>)], gamma: Buffer<Float>?, beta: Buffer<Float>?,
                                requirePair: Bool = true) throws {
        guard shape.samples >= 1, shape.channels >= 1, shape.spatial >= 1 else {
            throw ShapeError("\(name): shape \(shape) needs at least one sample, channel and position.")
        }
        let count = try Strided.count(name, [shape.samples, shape.channels, shape.spatial])
        for (label, buffer) in tensors where buffer.count != count {
            throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected \(shape) = \(count).")
        }
        for (label, buffer) in perChannel where buffer.count != shape.channels {
            throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected channels = \(shape.channels).")
        }
        if requirePair { _ = try pair(name, "gamma", gamma, "beta", beta, channels: shape.channels) }
        if let gamma, gamma.count != shape.channels {
            throw ShapeError("\(name): gamma has \(gamma.count) elements, expected channels = \(shape.channels).")
        }
    }

    /// Both buffers (checked to hold `channels` elements) or neither.
    private func pair(_ name: String, _ a: String, _ first: Buffer<Float>?, _ b: String, _ second: Buffer<Float>?,
                      channels: Int) throws -> (Buffer<Float>, Buffer<Float>)? {
        switch (first, second) {
        case (nil, nil): return nil
        case let (first?, second?):
            for (label, buffer) in [(a, first), (b, second)] where buffer.count != channels {
                throw ShapeError("\(name): \(label) has \(buffer.count) elements, expected channels = \(channels).")
            }
            return (first, second)
        default:
            throw ShapeError("\(name): \(a) and \(b) must be given together or both left out.")
        }
    }

    /// Chunked reductions. CPU: item (block of KILN_VEC channels when spatial is 1, else one channel;
    /// chunk of samples), `batchNormGroup` consecutive chunks per group (16 by the rule table: measured fastest on
    /// PoCL among 1, 4 and 16; `kiln tune` measures it on the device). GPU: a group of 16 channels x 16 lanes (spatial 1) or 1 channel x 256 lanes per chunk,
    /// reduced by a local-memory tree.
    private func launchBatchNormReduction(_ kernel: KernelName, _ shape: BatchNormShape,
                                          _ arguments: any KernelArgument...) throws {
        let c = shape.channels, chunks = shape.chunks
        switch (isGPU, shape.spatial == 1) {
        case (true, true):
            try launch(kernel, global: [(c + 15) / 16 * 16, chunks * 16], local: [16, 16], arguments: arguments)
        case (true, false):
            try launch(kernel, global: [c, chunks * 256], local: [1, 256], arguments: arguments)
        case (false, true):
            try launch(kernel, global: [self.chunks(c), chunks], local: [1, config.batchNormGroup], arguments: arguments)
        case (false, false):
            try launch(kernel, global: [c, chunks], local: [1, config.batchNormGroup], arguments: arguments)
        }
    }
}
