import KilnDevice

/// What a reduction computes.
public enum ReductionOp: String, Sendable, CaseIterable {
    /// Σ x
    case sum
    /// Σ x / count
    case mean
    /// max x (NaN if any value is NaN, as `torch.max`)
    case max
}

/// Which values of a row-major [rows, cols] matrix a reduction combines.
public enum ReductionAxis: String, Sendable, CaseIterable {
    /// Each row into one value: result [rows].
    case eachRow
    /// Each column into one value: result [cols].
    case eachColumn
    /// Everything into one value: result [1].
    case all

    /// Elements of the result for a [rows, cols] input.
    public func resultCount(rows: Int, cols: Int) -> Int {
        switch self {
        case .eachRow: rows
        case .eachColumn: cols
        case .all: 1
        }
    }
}

extension KernelLibrary {
    /// Launches a deterministic reduction of `x` [rows, cols] into `out` (`axis.resultCount` floats):
    /// every output is combined in a fixed order (a serial vector loop on a CPU, a fixed tree on a
    /// GPU), so the same input always gives the same bits. `.all` takes two launches when the
    /// input is large (partials, then their reduction).
    ///
    /// ```swift
    /// // a bias gradient: the column sums of a [3, 2] gradient
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let grad = try device.buffer([1, 2, 3, 4, 5, 6] as [Float]), biasGrad = try device.buffer(Float.self, count: 2)
    /// try kernels.reduce(.sum, grad, rows: 3, cols: 2, axis: .eachColumn, into: biasGrad)   // [9, 12]
    /// ```
    public func reduce(_ op: ReductionOp, _ x: Buffer<Float>, rows: Int, cols: Int, axis: ReductionAxis,
                       into out: Buffer<Float>) throws {
        let what = "reduce \(op.rawValue) \(axis.rawValue)"
        try Check.matrix(what, rows: rows, cols: cols)
        try Check.count(what, "x", x, rows * cols, "[\(rows), \(cols)]")
        try Check.count(what, "out", out, axis.resultCount(rows: rows, cols: cols),
                          "[\(axis.resultCount(rows: rows, cols: cols))] (\(axis.rawValue) of [\(rows), \(cols)])")
        let combined: Int  // how many values each output combines (for the mean)
        switch axis {
        case .eachRow: combined = cols
        case .eachColumn: combined = rows
        case .all: combined = rows * cols
        }
        let scale: Float = op == .mean ? Float(1.0 / Double(combined)) : 1
        switch axis {
        case .eachRow:
            try launchRows(op == .max ? .reduceMaxRows : .reduceSumRows, rows: rows, cols: cols, Int32(rows), Int32(cols),
                           scale, x, out)
        case .eachColumn:
            try launchColumns(op == .max ? .reduceMaxCols : .reduceSumCols, cols: cols, outer: 1, Int32(rows), Int32(cols),
                              scale, x, out)
        case .all:
            try reduceAll(op == .max ? .reduceMaxAll : .reduceSumAll, x, count: rows * cols, scale: scale, into: out)
        }
    }

    /// Launches a reduction of the middle axis of `x` [outer, length, inner] into `out` [outer, inner]
    /// (`axis: .eachColumn` of each of `outer` matrices), deterministic as `reduce`. Any set of axes
    /// of an N-d array reduces as a sequence of these and `.eachRow` reductions.
    ///
    /// ```swift
    /// // [2, 3, 4] summed over its middle axis -> [2, 4]
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let x = try device.buffer([Float](repeating: 1, count: 24)), out = try device.buffer(Float.self, count: 8)
    /// try kernels.reduce(.sum, x, outer: 2, length: 3, inner: 4, into: out)   // every value 3
    /// ```
    public func reduce(_ op: ReductionOp, _ x: Buffer<Float>, outer: Int, length: Int, inner: Int,
                       into out: Buffer<Float>) throws {
        let what = "reduce \(op.rawValue) over the middle of [\(outer), \(length), \(inner)]"
        try Check.matrix(what, rows: outer, cols: length)
        try Check.matrix(what, rows: outer * length, cols: inner)
        try Check.count(what, "x", x, outer * length * inner, "[\(outer), \(length), \(inner)]")
        try Check.count(what, "out", out, outer * inner, "[\(outer), \(inner)]")
        let scale: Float = op == .mean ? Float(1.0 / Double(length)) : 1
        try launchColumns(op == .max ? .reduceMaxCols : .reduceSumCols, cols: inner, outer: outer, Int32(length),
                          Int32(inner), scale, x, out)
    }

    /// Launches an argmax of `x` [rows, cols] into `out` (`axis.resultCount` Int32): the index of
    /// the first maximum (PyTorch's tie rule) within each row (a column index), each column (a row
    /// index), or the whole matrix (a flat index `r * cols + c`). NaN counts as the largest value
    /// (PyTorch's argmax returns the first NaN).
    public func argmax(_ x: Buffer<Float>, rows: Int, cols: Int, axis: ReductionAxis, into out: Buffer<Int32>) throws {
        let what = "argmax \(axis.rawValue)"
        try Check.matrix(what, rows: rows, cols: cols)
        try Check.count(what, "x", x, rows * cols, "[\(rows), \(cols)]")
        try Check.count(what, "out", out, axis.resultCount(rows: rows, cols: cols),
                          "[\(axis.resultCount(rows: rows, cols: cols))] (\(axis.rawValue) of [\(rows), \(cols)])")
        switch axis {
        case .eachRow:
            try launchRows(.reduceArgmaxRows, rows: rows, cols: cols, Int32(rows), Int32(cols), x, out)
        case .eachColumn:
            try launchColumns(.reduceArgmaxCols, cols: cols, outer: 1, Int32(rows), Int32(cols), x, out)
        case .all:
            let n = rows * cols
            let (chunk, parts) = partials(n)
            let value = try device.buffer(Float.self, count: 1)
            if parts == 1 {
                try launchChunks(.reduceArgmaxAll, parts: 1, tree: true, Int32(n), Int32(n), Int32(0), x, out, value, out)
            } else {
                // Partials keep (maximum, flat index of its first occurrence), in index order, so
                // the first maximal partial holds the first maximum overall.
                let values = try device.buffer(Float.self, count: parts)
                let indices = try device.buffer(Int32.self, count: parts)
                try launchChunks(.reduceArgmaxAll, parts: parts, tree: true, Int32(n), Int32(chunk), Int32(0), x,
                                   indices, values, indices)
                try launchChunks(.reduceArgmaxAll, parts: 1, tree: true, Int32(parts), Int32(parts), Int32(1),
                                   values, indices, value, out)
            }
        }
    }

    /// Launches an argmax over the middle axis of `x` [outer, length, inner] into `out` [outer, inner]
    /// (Int32 indices into the middle axis; the first maximum wins, NaN counts as the largest).
    public func argmax(_ x: Buffer<Float>, outer: Int, length: Int, inner: Int, into out: Buffer<Int32>) throws {
        let what = "argmax over the middle of [\(outer), \(length), \(inner)]"
        try Check.matrix(what, rows: outer, cols: length)
        try Check.matrix(what, rows: outer * length, cols: inner)
        try Check.count(what, "x", x, outer * length * inner, "[\(outer), \(length), \(inner)]")
        try Check.count(what, "out", out, outer * inner, "[\(outer), \(inner)]")
        try launchColumns(.reduceArgmaxCols, cols: inner, outer: outer, Int32(length), Int32(inner), x, out)
    }

    /// Reduces `count` floats of `x` with the chunked kernel `name(n, chunk, scale, x, out)` into
    /// `out[0]`: one launch for small inputs, else partials into a pool buffer and a second launch
    /// over them. `scale` applies once, at the end.
    func reduceAll(_ kernel: KernelName, _ x: Buffer<Float>, count n: Int, scale: Float, into out: Buffer<Float>) throws {
        let (chunk, parts) = partials(n)
        if parts == 1 {
            try launchChunks(kernel, parts: 1, tree: true, Int32(n), Int32(n), scale, x, out)
            return
        }
        // The pool hands this buffer to later commands only; the in-order queue runs ours first.
        let partials = try device.buffer(Float.self, count: parts)
        try launchChunks(kernel, parts: parts, tree: true, Int32(n), Int32(chunk), Float(1), x, partials)
        try launchChunks(kernel, parts: 1, tree: true, Int32(parts), Int32(parts), scale, partials, out)
    }
}
