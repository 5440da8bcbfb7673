import KilnDevice

extension KernelLibrary {
    /// Launches a softmax over each row of `x` [rows, cols] into `y` (same shape; may be `x`):
    /// `y = exp(x - max) / Σ exp(x - max)`. Finite for any finite logits (±1e4, equal rows).
    public func softmax(_ x: Buffer<Float>, rows: Int, cols: Int, into y: Buffer<Float>) throws {
        try ewRowwise("softmax_rows", x, "x", y, "y", rows: rows, cols: cols)
        try ewLaunchRows("softmax_rows", rows: rows, cols: cols, Int32(rows), Int32(cols), x, y)
    }

    /// Launches a log-softmax over each row of `x` [rows, cols] into `y` (same shape; may be `x`),
    /// computed directly as `(x - max) - log Σ exp(x - max)`, never as the log of a softmax, so it
    /// stays finite (and accurate) where the softmax underflows to 0.
    public func logSoftmax(_ x: Buffer<Float>, rows: Int, cols: Int, into y: Buffer<Float>) throws {
        try ewRowwise("log_softmax_rows", x, "x", y, "y", rows: rows, cols: cols)
        try ewLaunchRows("log_softmax_rows", rows: rows, cols: cols, Int32(rows), Int32(cols), x, y)
    }

    /// Launches the softmax backward pass per row: `dx = y · (dy - Σ dy · y)` (or `dx += …` when
    /// `accumulate`), from the upstream gradient `dy` and the softmax output `y`, all [rows, cols].
    public func softmaxBackward(gradOutput dy: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                into dx: Buffer<Float>, accumulate: Bool = false) throws {
        try ewRowwise("softmax_backward_rows", dy, "dy", dx, "dx", rows: rows, cols: cols)
        try EWCheck.count("softmax_backward_rows", "y", y, rows * cols, "[\(rows), \(cols)]")
        try ewLaunchRows("softmax_backward_rows", rows: rows, cols: cols, Int32(rows), Int32(cols),
                         Int32(accumulate ? 1 : 0), dy, y, dx)
    }

    /// Launches the log-softmax backward pass per row: `dx = dy - exp(y) · Σ dy` (or `dx += …` when
    /// `accumulate`), from the upstream gradient `dy` and the log-softmax output `y`, all [rows, cols].
    public func logSoftmaxBackward(gradOutput dy: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                   into dx: Buffer<Float>, accumulate: Bool = false) throws {
        try ewRowwise("log_softmax_backward_rows", dy, "dy", dx, "dx", rows: rows, cols: cols)
        try EWCheck.count("log_softmax_backward_rows", "y", y, rows * cols, "[\(rows), \(cols)]")
        try ewLaunchRows("log_softmax_backward_rows", rows: rows, cols: cols, Int32(rows), Int32(cols),
                         Int32(accumulate ? 1 : 0), dy, y, dx)
    }

    /// Checks an input and an output of a row-wise op on [rows, cols].
    func ewRowwise(_ op: String, _ input: Buffer<Float>, _ inputName: String, _ output: Buffer<Float>,
                   _ outputName: String, rows: Int, cols: Int) throws {
        try EWCheck.matrix(op, rows: rows, cols: cols)
        try EWCheck.count(op, inputName, input, rows * cols, "[\(rows), \(cols)]")
        try EWCheck.count(op, outputName, output, rows * cols, "[\(rows), \(cols)]")
    }
}
