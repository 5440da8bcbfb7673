import KilnDevice

// Launchers of the element-wise kernels (section `elementwise-reductions-softmax` of kernels.cl),
// and the shape checks and launch shapes that the section's other launchers share.

/// An arithmetic operator of the element-wise binary kernels (`ew_add`, `ew_sub`, `ew_mul`, `ew_div`).
public enum BinaryOp: String, Sendable, CaseIterable {
    /// `a + b`
    case add
    /// `a - b`
    case sub
    /// `a * b`
    case mul
    /// `a / b`
    case div
}

/// How the second operand `b` of a binary op lines up with the first, `a`, of shape [rows, cols].
public enum Broadcast: String, Sendable, CaseIterable {
    /// `b` has the shape of `a`: rows × cols elements.
    case none
    /// `b` is a row vector of `cols` elements, repeated for every row (a bias).
    case row
    /// `b` is a column vector of `rows` elements ([rows] or [rows, 1]), repeated across the columns.
    case column
    /// `b` holds one element, applied to every element of `a`.
    case scalar
}

/// A one-input element-wise op (`ew_neg`, `ew_exp`, `ew_log`, `ew_sqrt`, `ew_pow`, `ew_clamp`).
public enum UnaryOp: Sendable, Equatable {
    /// `-x`
    case neg
    /// `e^x`
    case exp
    /// natural logarithm (NaN below 0, -inf at 0)
    case log
    /// square root (NaN below 0)
    case sqrt
    /// `x^p` for a scalar exponent (OpenCL `pow`: a negative base works with an integral `p`).
    case pow(Float)
    /// `min(max(x, min), max)`; NaN becomes `min`.
    case clamp(min: Float, max: Float)
}

extension KernelLibrary {
    /// Launches `op` element-wise: `out[r, c] = a[r, c] op b[…]`, with `b` broadcast as `broadcast`
    /// says. `a` and `out` hold rows × cols floats; `out` may be `a` (in place).
    ///
    /// ```swift
    /// try kernels.binary(.add, h, bias, rows: batch, cols: features, broadcast: .row, into: h)
    /// ```
    public func binary(_ op: BinaryOp, _ a: Buffer<Float>, _ b: Buffer<Float>, rows: Int, cols: Int,
                       broadcast: Broadcast = .none, into out: Buffer<Float>) throws {
        let what = "\(op.rawValue) (broadcast \(broadcast.rawValue))"
        try EWCheck.matrix(what, rows: rows, cols: cols)
        try EWCheck.count(what, "a", a, rows * cols, "[\(rows), \(cols)]")
        try EWCheck.count(what, "out", out, rows * cols, "[\(rows), \(cols)]")
        let n = rows * cols
        // (rows, cols) as launched, and b's strides per row and per column.
        let shape: (rows: Int, cols: Int, bsr: Int, bsc: Int)
        switch broadcast {
        case .none:
            try EWCheck.count(what, "b", b, n, "[\(rows), \(cols)] like a")
            shape = (1, n, 0, 1)
        case .row:
            try EWCheck.count(what, "b", b, cols, "[\(cols)] (a row vector over [\(rows), \(cols)])")
            shape = (rows, cols, 0, 1)
        case .column:
            try EWCheck.count(what, "b", b, rows, "[\(rows)] (a column vector over [\(rows), \(cols)])")
            shape = (rows, cols, 1, 0)
        case .scalar:
            try EWCheck.count(what, "b", b, 1, "[1] (a scalar)")
            shape = (1, n, 0, 0)
        }
        let chunks = ewChunks(shape.cols)
        try launch1D("ew_\(op.rawValue)", shape.rows * chunks, Int32(shape.rows), Int32(shape.cols), Int32(chunks),
                     Int32(shape.bsr), Int32(shape.bsc), a, b, out)
    }

    /// Launches `out[i] = a[i] op scalar` over all of `a`; `out` has `a`'s length and may be `a`.
    public func binary(_ op: BinaryOp, _ a: Buffer<Float>, scalar: Float, into out: Buffer<Float>) throws {
        let what = "\(op.rawValue) (scalar)"
        try EWCheck.elements(what, a.count)
        try EWCheck.count(what, "out", out, a.count, "[\(a.count)] like a")
        try launch1D("ew_\(op.rawValue)_scalar", ewChunks(a.count), Int32(a.count), scalar, a, out)
    }

    /// Launches `y[i] = op(x[i])` over all of `x`; `y` has `x`'s length and may be `x`.
    public func unary(_ op: UnaryOp, _ x: Buffer<Float>, into y: Buffer<Float>) throws {
        let (name, p0, p1): (String, Float, Float)
        switch op {
        case .neg: (name, p0, p1) = ("ew_neg", 0, 0)
        case .exp: (name, p0, p1) = ("ew_exp", 0, 0)
        case .log: (name, p0, p1) = ("ew_log", 0, 0)
        case .sqrt: (name, p0, p1) = ("ew_sqrt", 0, 0)
        case .pow(let p): (name, p0, p1) = ("ew_pow", p, 0)
        case .clamp(let lo, let hi): (name, p0, p1) = ("ew_clamp", lo, hi)
        }
        try ewUnary(name, x, p0, p1, into: y)
    }

    /// A loop-free kernel `name(n, p0, p1, x, y)` over all of `x`, EW_W elements per item.
    func ewUnary(_ name: String, _ x: Buffer<Float>, _ p0: Float, _ p1: Float, into y: Buffer<Float>) throws {
        try EWCheck.elements(name, x.count)
        try EWCheck.count(name, "y", y, x.count, "[\(x.count)] like x")
        try launch1D(name, ewChunks(x.count), Int32(x.count), p0, p1, x, y)
    }

    // MARK: Launch shapes shared by the section

    /// Whether kernels.cl was built with its GPU paths (`KILN_GPU`): local-memory trees, float4.
    var ewGPU: Bool { config.defines["KILN_GPU"] != nil }

    /// Floats per work-item of the element-wise kernels: `EW_W` in kernels.cl (16 on CPUs, 4 on GPUs).
    var ewWidth: Int { ewGPU ? 4 : (config.vectorWidth >= 16 ? 16 : 8) }

    /// Work-items covering `n` floats at `ewWidth` per item.
    func ewChunks(_ n: Int) -> Int { (n + ewWidth - 1) / ewWidth }

    /// Group size of a GPU tree over `n` values: a power of two from 32 to `KILN_TREE` (256).
    func ewTreeGroup(_ n: Int) -> Int {
        var size = 32
        while size < n && size < 256 { size *= 2 }
        return size
    }

    /// Launches a per-row kernel: one work-item per row on a CPU, one tree group per row on a GPU.
    func ewLaunchRows(_ name: String, rows: Int, cols: Int, _ arguments: any KernelArgument...) throws {
        if ewGPU {
            let group = ewTreeGroup(cols)
            try launch(name, global: [rows * group], local: [group], arguments: arguments)
        } else {
            try launch(name, global: [rows], local: [config.elementwiseGroup], arguments: arguments)
        }
    }

    /// The chunk length and number of partials of a two-pass full reduction of `n` values: on a CPU
    /// up to 256 work-items of at least 4096 values; on a GPU up to 1024 groups of 256 items.
    func ewPartials(_ n: Int) -> (chunk: Int, count: Int) {
        let (minChunk, maxParts) = ewGPU ? (4096, 1024) : (4096, 256)
        var chunk = max(minChunk, (n + maxParts - 1) / maxParts)
        chunk = (chunk + 63) / 64 * 64
        return (chunk, (n + chunk - 1) / chunk)
    }

    /// Launches a chunked kernel over `parts` chunks: one work-item per chunk on a CPU, one group
    /// of 256 per chunk on a GPU (`tree` kernels only; serial kernels always get one item per chunk).
    func ewLaunchChunks(_ name: String, parts: Int, tree: Bool, _ arguments: any KernelArgument...) throws {
        if ewGPU && tree {
            try launch(name, global: [parts * 256], local: [256], arguments: arguments)
        } else {
            try launch(name, global: [parts], local: [config.elementwiseGroup], arguments: arguments)
        }
    }
}

/// Shape checks of the section's launchers; each throws a `ShapeError` naming the op and shapes.
enum EWCheck {
    /// The most elements a kernel of this section indexes with its `int` arithmetic.
    static let maxElements = Int(Int32.max) - 4096

    /// A matrix of rows × cols with both at least 1 and an `int`-indexable size.
    static func matrix(_ op: String, rows: Int, cols: Int) throws {
        guard rows >= 1, cols >= 1 else {
            throw ShapeError("\(op): shape [\(rows), \(cols)] is empty or negative; rows and cols must be at least 1.")
        }
        guard rows <= maxElements / cols else {
            throw ShapeError("\(op): shape [\(rows), \(cols)] has more than \(maxElements) elements.")
        }
    }

    /// A vector of `n` elements, 1 ≤ n ≤ maxElements.
    static func elements(_ op: String, _ n: Int) throws {
        guard n >= 1, n <= maxElements else {
            throw ShapeError("\(op): \(n) elements; need 1 to \(maxElements).")
        }
    }

    /// `buffer` (called `name`) holds exactly `expected` elements (described as `shape`).
    static func count<T>(_ op: String, _ name: String, _ buffer: Buffer<T>, _ expected: Int, _ shape: String) throws {
        guard buffer.count == expected else {
            throw ShapeError("\(op): \(name) has \(buffer.count) elements but shape \(shape) needs \(expected).")
        }
    }
}
