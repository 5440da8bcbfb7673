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
    /// With `hits` (at least `rows` counters), `hits[i] += 1` when row `i`'s first argmax is its
    /// target: a per-position running count that a training epoch sums once (its train accuracy).
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let logits = try device.buffer([2, 0, 0, 0, 3, 0] as [Float]), targets = try device.buffer([0, 1] as [Int32])
    /// let loss = try device.buffer(Float.self, count: 1), gradient = try device.buffer(Float.self, count: 6)
    /// try kernels.crossEntropy(logits: logits, targets: targets, rows: 2, classes: 3, meanLoss: loss, gradient: gradient)
    /// ```
    public func crossEntropy(logits: Buffer<Float>, targets: Buffer<Int32>, rows: Int, classes: Int,
                             labelSmoothing: Float = 0, gradScale: Float = 1, rowLosses: Buffer<Float>? = nil,
                             meanLoss: Buffer<Float>? = nil, gradient: Buffer<Float>? = nil,
                             hits: Buffer<Int32>? = nil) throws {
        let what = "cross-entropy"
        try Check.matrix(what, rows: rows, cols: classes)
        try Check.count(what, "logits", logits, rows * classes, "[\(rows), \(classes)]")
        try Check.count(what, "targets", targets, rows, "[\(rows)]")
        if let rowLosses { try Check.count(what, "rowLosses", rowLosses, rows, "[\(rows)]") }
        if let meanLoss { try Check.count(what, "meanLoss", meanLoss, 1, "[1]") }
        if let gradient { try Check.count(what, "gradient", gradient, rows * classes, "[\(rows), \(classes)]") }
        if let hits, hits.count < rows {
            throw ShapeError("\(what): hits has \(hits.count) counters but the batch has \(rows) rows.")
        }
        guard labelSmoothing >= 0, labelSmoothing <= 1 else {
            throw ShapeError("\(what): label smoothing \(labelSmoothing) is outside [0, 1].")
        }
        guard rowLosses != nil || meanLoss != nil || gradient != nil else {
            throw ShapeError("\(what): no output; pass rowLosses, meanLoss or gradient.")
        }
        let losses = try rowLosses ?? device.buffer(Float.self, count: rows)
        // Without a gradient or hits the kernel gets placeholders it never touches (want_* = 0).
        try launchRows(.xentFused, rows: rows, cols: classes, Int32(rows), Int32(classes), labelSmoothing,
                       gradScale / Float(rows), Int32(gradient == nil ? 0 : 1), Int32(hits == nil ? 0 : 1), logits,
                       targets, losses, gradient ?? losses, hits ?? targets)
        if let meanLoss {
            try reduceAll(.reduceSumAll, losses, count: rows, scale: Float(1.0 / Double(rows)), into: meanLoss)
        }
    }

    /// Launches a count of the rows of `logits` [rows, classes] whose first argmax equals the
    /// target [rows] (the accuracy's numerator) into `count` [1]. Deterministic (exact integer
    /// sums, no atomics); an out-of-range target never counts.
    public func countCorrect(logits: Buffer<Float>, targets: Buffer<Int32>, rows: Int, classes: Int,
                             into count: Buffer<Int32>) throws {
        let what = "count correct"
        try Check.matrix(what, rows: rows, cols: classes)
        try Check.count(what, "logits", logits, rows * classes, "[\(rows), \(classes)]")
        try Check.count(what, "targets", targets, rows, "[\(rows)]")
        try Check.count(what, "count", count, 1, "[1]")
        let predictions = try device.buffer(Int32.self, count: rows)
        try argmax(logits, rows: rows, cols: classes, axis: .eachRow, into: predictions)
        let (chunk, parts) = partials(rows)
        if parts == 1 {
            try launchChunks(.xentCountCorrect, parts: 1, tree: false, Int32(rows), Int32(rows), predictions, targets, count)
            return
        }
        let partials = try device.buffer(Int32.self, count: parts)
        try launchChunks(.xentCountCorrect, parts: parts, tree: false, Int32(rows), Int32(chunk), predictions, targets,
                         partials)
        try sumInts(partials, into: count)
    }

    /// Launches an exact sum of the Int32 values of `x` into `out` [1] (counts, hits).
    public func sumInts(_ x: Buffer<Int32>, into out: Buffer<Int32>) throws {
        try Check.elements("sum of Int32", x.count)
        try Check.count("sum of Int32", "out", out, 1)
        let (chunk, parts) = partials(x.count)
        if parts == 1 {
            try launchChunks(.reduceSumI32All, parts: 1, tree: false, Int32(x.count), Int32(x.count), x, out)
            return
        }
        let partial = try device.buffer(Int32.self, count: parts)
        try launchChunks(.reduceSumI32All, parts: parts, tree: false, Int32(x.count), Int32(chunk), x, partial)
        try launchChunks(.reduceSumI32All, parts: 1, tree: false, Int32(parts), Int32(parts), partial, out)
    }

    /// One training step's scalar `loss` into the running `sum` [1] (`sum = loss` when `first`),
    /// and `step` into `firstNonFinite` [1] when the loss is NaN or ±∞ and no earlier step's was
    /// (it holds 0 until then). One work-item; nothing is read back.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let loss = try device.buffer([Float.nan]), sum = try device.buffer([Float(0)])
    /// let bad = try device.buffer([Int32(0)])
    /// try kernels.accumulateLoss(loss, into: sum, first: true, step: 7, firstNonFinite: bad)   // bad = [7]
    /// ```
    public func accumulateLoss(_ loss: Buffer<Float>, into sum: Buffer<Float>, first: Bool, step: Int,
                               firstNonFinite: Buffer<Int32>) throws {
        try Check.count("accumulateLoss", "loss", loss, 1)
        try Check.count("accumulateLoss", "sum", sum, 1)
        try Check.count("accumulateLoss", "firstNonFinite", firstNonFinite, 1)
        guard step >= 1, step <= Int(Int32.max) else {
            throw DeviceError.invalidArgument("accumulateLoss: step \(step) is not in 1...\(Int32.max).")
        }
        try launch(.reduceLossStep, global: [1], local: [1], Int32(first ? 1 : 0), Int32(step), loss, sum, firstNonFinite)
    }
}
