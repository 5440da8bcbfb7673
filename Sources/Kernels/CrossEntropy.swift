import KilnDevice

extension KernelLibrary {
    /// Launches the fused cross-entropy of `logits` [rows, classes] against Int32 class `targets`
    /// [rows]: one kernel computes each row's loss and, when `gradient` is given, the gradient with
    /// respect to the logits; `meanLoss` gets the mean over the rows (a deterministic second step).
    ///
    /// With label smoothing ε (PyTorch's definition), the target distribution is
    /// `q = (1 - ε) · onehot(target) + ε / classes`, row `i`'s loss is `-Σ_c q_c · log_softmax(x_i)_c`,
    /// and the gradient is `gradScale · (softmax(x_i) - q) / rows` — the gradient of the mean loss
    /// times `gradScale` (pass the upstream gradient of the loss, 1 for a plain loss).
    ///
    /// A target outside `[0, classes)` is never used as an index: that row's loss is NaN (so the
    /// mean is NaN, loudly) and its gradient row is zero. `gradient` may be `logits` (in place).
    ///
    /// ```swift
    /// try kernels.crossEntropy(logits: z, targets: y, rows: 128, classes: 10, meanLoss: loss, gradient: dz)
    /// ```
    public func crossEntropy(logits: Buffer<Float>, targets: Buffer<Int32>, rows: Int, classes: Int,
                             labelSmoothing: Float = 0, gradScale: Float = 1, rowLosses: Buffer<Float>? = nil,
                             meanLoss: Buffer<Float>? = nil, gradient: Buffer<Float>? = nil) throws {
        let what = "cross-entropy"
        try EWCheck.matrix(what, rows: rows, cols: classes)
        try EWCheck.count(what, "logits", logits, rows * classes, "[\(rows), \(classes)]")
        try EWCheck.count(what, "targets", targets, rows, "[\(rows)]")
        if let rowLosses { try EWCheck.count(what, "rowLosses", rowLosses, rows, "[\(rows)]") }
        if let meanLoss { try EWCheck.count(what, "meanLoss", meanLoss, 1, "[1]") }
        if let gradient { try EWCheck.count(what, "gradient", gradient, rows * classes, "[\(rows), \(classes)]") }
        guard labelSmoothing >= 0, labelSmoothing <= 1 else {
            throw ShapeError("\(what): label smoothing \(labelSmoothing) is outside [0, 1].")
        }
        guard rowLosses != nil || meanLoss != nil || gradient != nil else {
            throw ShapeError("\(what): no output; pass rowLosses, meanLoss or gradient.")
        }
        let losses = try rowLosses ?? device.buffer(Float.self, count: rows)
        // Without a gradient the kernel gets a placeholder it never writes (want_grad = 0).
        try ewLaunchRows("xent_fused", rows: rows, cols: classes, Int32(rows), Int32(classes), labelSmoothing,
                         gradScale / Float(rows), Int32(gradient == nil ? 0 : 1), logits, targets, losses,
                         gradient ?? losses)
        if let meanLoss {
            try ewReduceAll("reduce_sum_all", losses, count: rows, scale: Float(1.0 / Double(rows)), into: meanLoss)
        }
    }

    /// Launches a count of the rows of `logits` [rows, classes] whose first argmax equals the
    /// target [rows] (the accuracy's numerator) into `count` [1]. Deterministic (exact integer
    /// sums, no atomics); an out-of-range target never counts.
    public func countCorrect(logits: Buffer<Float>, targets: Buffer<Int32>, rows: Int, classes: Int,
                             into count: Buffer<Int32>) throws {
        let what = "count correct"
        try EWCheck.matrix(what, rows: rows, cols: classes)
        try EWCheck.count(what, "logits", logits, rows * classes, "[\(rows), \(classes)]")
        try EWCheck.count(what, "targets", targets, rows, "[\(rows)]")
        try EWCheck.count(what, "count", count, 1, "[1]")
        let predictions = try device.buffer(Int32.self, count: rows)
        try argmax(logits, rows: rows, cols: classes, axis: .eachRow, into: predictions)
        let (chunk, parts) = ewPartials(rows)
        if parts == 1 {
            try ewLaunchChunks("xent_count_correct", parts: 1, tree: false, Int32(rows), Int32(rows), predictions,
                               targets, count)
            return
        }
        let partials = try device.buffer(Int32.self, count: parts)
        try ewLaunchChunks("xent_count_correct", parts: parts, tree: false, Int32(rows), Int32(chunk), predictions,
                           targets, partials)
        try ewLaunchChunks("reduce_sum_i32_all", parts: 1, tree: false, Int32(parts), Int32(parts), partials, count)
    }
}
