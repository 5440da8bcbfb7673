import KilnDevice

/// What a reduction computes.
public enum ReductionOp: String, Sendable, CaseIterable {
    /// Σ x
    case sum
    /// Σ x / count
    case mean
    /// max x (NaN values are skipped)
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
    /// try kernels.reduce(.sum, grad, rows: batch, cols: features, axis: .eachColumn, into: biasGrad)
    /// ```
    public func reduce(_ op: ReductionOp, _ x: Buffer<Float>, rows: Int, cols: Int, axis: ReductionAxis,
                       into out: Buffer<Float>) throws {
        let what = "reduce \(op.rawValue) \(axis.rawValue)"
        try EWCheck.matrix(what, rows: rows, cols: cols)
        try EWCheck.count(what, "x", x, rows * cols, "[\(rows), \(cols)]")
        try EWCheck.count(what, "out", out, axis.resultCount(rows: rows, cols: cols),
                          "[\(axis.resultCount(rows: rows, cols: cols))] (\(axis.rawValue) of [\(rows), \(cols)])")
        let family = op == .max ? "max" : "sum"
        let combined: Int  // how many values each output combines (for the mean)
        switch axis {
        case .eachRow: combined = cols
        case .eachColumn: combined = rows
        case .all: combined = rows * cols
        }
        let scale: Float = op == .mean ? Float(1.0 / Double(combined)) : 1
        switch axis {
        case .eachRow:
            try ewLaunchRows("reduce_\(family)_rows", rows: rows, cols: cols, Int32(rows), Int32(cols), scale, x, out)
        case .eachColumn:
            try ewLaunchColumns("reduce_\(family)_cols", cols: cols, Int32(rows), Int32(cols), scale, x, out)
        case .all:
            try ewReduceAll("reduce_\(family)_all", x, count: rows * cols, scale: scale, into: out)
        }
    }

    /// Launches an argmax of `x` [rows, cols] into `out` (`axis.resultCount` Int32): the index of
    /// the first maximum (PyTorch's tie rule) within each row (a column index), each column (a row
    /// index), or the whole matrix (a flat index `r * cols + c`). NaN values are skipped.
    public func argmax(_ x: Buffer<Float>, rows: Int, cols: Int, axis: ReductionAxis, into out: Buffer<Int32>) throws {
        let what = "argmax \(axis.rawValue)"
        try EWCheck.matrix(what, rows: rows, cols: cols)
        try EWCheck.count(what, "x", x, rows * cols, "[\(rows), \(cols)]")
        try EWCheck.count(what, "out", out, axis.resultCount(rows: rows, cols: cols),
                          "[\(axis.resultCount(rows: rows, cols: cols))] (\(axis.rawValue) of [\(rows), \(cols)])")
        switch axis {
        case .eachRow:
            try ewLaunchRows("reduce_argmax_rows", rows: rows, cols: cols, Int32(rows), Int32(cols), x, out)
        case .eachColumn:
            try ewLaunchColumns("reduce_argmax_cols", cols: cols, Int32(rows), Int32(cols), x, out)
        case .all:
            let n = rows * cols
            let (chunk, parts) = ewPartials(n)
            let value = try device.buffer(Float.self, count: 1)
            if parts == 1 {
                try ewLaunchChunks("reduce_argmax_all", parts: 1, tree: true, Int32(n), Int32(n), Int32(0), x, out,
                                   value, out)
            } else {
                // Partials keep (maximum, flat index of its first occurrence), in index order, so
                // the first maximal partial holds the first maximum overall.
                let values = try device.buffer(Float.self, count: parts)
                let indices = try device.buffer(Int32.self, count: parts)
                try ewLaunchChunks("reduce_argmax_all", parts: parts, tree: true, Int32(n), Int32(chunk), Int32(0), x,
                                   indices, values, indices)
                try ewLaunchChunks("reduce_argmax_all", parts: 1, tree: true, Int32(parts), Int32(parts), Int32(1),
                                   values, indices, value, out)
            }
        }
    }

    /// Launches a per-column kernel: one work-item per 16 columns on a CPU, one group per 32
    /// columns (its items splitting the rows) on a GPU.
    func ewLaunchColumns(_ name: String, cols: Int, _ arguments: any KernelArgument...) throws {
        if ewGPU {
            try launch(name, global: [(cols + 31) / 32 * 256], local: [256], arguments: arguments)
        } else {
            try launch(name, global: [(cols + 15) / 16], local: [config.elementwiseGroup], arguments: arguments)
        }
    }

    /// Reduces `count` floats of `x` with the chunked kernel `name(n, chunk, scale, x, out)` into
    /// `out[0]`: one launch for small inputs, else partials into a pool buffer and a second launch
    /// over them. `scale` applies once, at the end.
    func ewReduceAll(_ name: String, _ x: Buffer<Float>, count n: Int, scale: Float, into out: Buffer<Float>) throws {
        let (chunk, parts) = ewPartials(n)
        if parts == 1 {
            try ewLaunchChunks(name, parts: 1, tree: true, Int32(n), Int32(n), scale, x, out)
            return
        }
        // The pool hands this buffer to later commands only; the in-order queue runs ours first.
        let partials = try device.buffer(Float.self, count: parts)
        try ewLaunchChunks(name, parts: parts, tree: true, Int32(n), Int32(chunk), Float(1), x, partials)
        try ewLaunchChunks(name, parts: 1, tree: true, Int32(parts), Int32(parts), scale, partials, out)
    }
}
