import KilnDevice

extension KernelLibrary {
    /// Launches a softmax over each row of `x` [rows, cols] into `y` (same shape; may be `x`):
    /// `y = exp(x - max) / Σ exp(x - max)`. Finite for any finite logits (±1e4, equal rows).
    public func softmax(_ x: Buffer<Float>, rows: Int, cols: Int, into y: Buffer<Float>) throws {
        try rowwise("softmax", x, "x", y, "y", rows: rows, cols: cols)
        try launchRows(.softmaxRows, rows: rows, cols: cols, Int32(rows), Int32(cols), x, y)
    }

    /// Launches a log-softmax over each row of `x` [rows, cols] into `y` (same shape; may be `x`),
    /// computed directly as `(x - max) - log Σ exp(x - max)`, never as the log of a softmax, so it
    /// stays finite (and accurate) where the softmax underflows to 0.
    public func logSoftmax(_ x: Buffer<Float>, rows: Int, cols: Int, into y: Buffer<Float>) throws {
        try rowwise("log-softmax", x, "x", y, "y", rows: rows, cols: cols)
        try launchRows(.logSoftmaxRows, rows: rows, cols: cols, Int32(rows), Int32(cols), x, y)
    }

    /// Launches the softmax backward pass per row: `dx = y · (dy - Σ dy · y)` (or `dx += …` when
    /// `accumulate`), from the upstream gradient `dy` and the softmax output `y`, all [rows, cols].
    public func softmaxBackward(gradOutput dy: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                into dx: Buffer<Float>, accumulate: Bool = false) throws {
        try rowwise("softmax backward", dy, "dy", dx, "dx", rows: rows, cols: cols)
        try Check.count("softmax backward", "y", y, rows * cols, "[\(rows), \(cols)]")
        try launchRows(.softmaxBackwardRows, rows: rows, cols: cols, Int32(rows), Int32(cols),
                         Int32(accumulate ? 1 : 0), dy, y, dx)
    }

    /// Launches the log-softmax backward pass per row: `dx = dy - exp(y) · Σ dy` (or `dx += …` when
    /// `accumulate`), from the upstream gradient `dy` and the log-softmax output `y`, all [rows, cols].
    public func logSoftmaxBackward(gradOutput dy: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                   into dx: Buffer<Float>, accumulate: Bool = false) throws {
        try rowwise("log-softmax backward", dy, "dy", dx, "dx", rows: rows, cols: cols)
        try Check.count("log-softmax backward", "y", y, rows * cols, "[\(rows), \(cols)]")
        try launchRows(.logSoftmaxBackwardRows, rows: rows, cols: cols, Int32(rows), Int32(cols),
                         Int32(accumulate ? 1 : 0), dy, y, dx)
    }

    /// Checks an input and an output of a row-wise op on [rows, cols].
    func rowwise(_ op: String, _ input: Buffer<Float>, _ inputName: String, _ output: Buffer<Float>,
                   _ outputName: String, rows: Int, cols: Int) throws {
        try Check.matrix(op, rows: rows, cols: cols)
        try Check.count(op, inputName, input, rows * cols, "[\(rows), \(cols)]")
        try Check.count(op, outputName, output, rows * cols, "[\(rows), \(cols)]")
    }
}
