import KilnDevice

/// An operator of the element-wise binary kernels (`ew_binary*`). Comparisons give 1 or 0;
/// `maximum` and `minimum` propagate NaN as `torch.maximum` does.
public enum BinaryOp: String, Sendable, CaseIterable {
    case add, sub, mul, div, maximum, minimum
    /// `a == b`, `a != b`, `a < b`, `a <= b`, `a > b`, `a >= b` as 1.0 or 0.0.
    case eq, ne, lt, le, gt, ge
    /// `a ^ b` (OpenCL `pow`).
    case pow

    /// The code kernels.cl knows it by (`KILN_OP_*`).
    var code: Int32 {
        switch self {
        case .add: 0
        case .sub: 1
        case .mul: 2
        case .div: 3
        case .maximum: 4
        case .minimum: 5
        case .eq: 6
        case .ne: 7
        case .lt: 8
        case .le: 9
        case .gt: 10
        case .ge: 11
        case .pow: 12
        }
    }
}

/// How the second operand `b` of a binary op lines up with the first, `a`, of shape [rows, cols]:
/// the broadcasts the plain `ew_binary` kernel serves without index arithmetic.
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

/// A one-input element-wise op (`ew_unary`).
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
    /// `min(max(x, min), max)`; NaN stays NaN.
    case clamp(min: Float, max: Float)
    /// `|x|`
    case abs
    /// -1, 0 or 1 by the sign of `x`; NaN stays NaN.
    case sign

    /// The code and parameters kernels.cl takes (`KILN_UN_*`).
    var arguments: (code: Int32, p0: Float, p1: Float) {
        switch self {
        case .neg: (0, 0, 0)
        case .exp: (1, 0, 0)
        case .log: (2, 0, 0)
        case .sqrt: (3, 0, 0)
        case .pow(let p): (4, p, 0)
        case .clamp(let low, let high): (5, low, high)
        case .abs: (6, 0, 0)
        case .sign: (7, 0, 0)
        }
    }
}

extension KernelLibrary {
    /// `y += alpha * x` on the device. Throws when the lengths differ.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let x = try device.buffer([1, 2] as [Float]), y = try device.buffer([10, 20] as [Float])
    /// try kernels.axpy(alpha: 2, x: x, y: y)   // y = [12, 24]
    /// ```
    public func axpy(alpha: Float, x: Buffer<Float>, y: Buffer<Float>) throws {
        try Check.elements("axpy", x.count)
        try Check.count("axpy", "y", y, x.count, "[\(x.count)] like x")
        try launchFlat(.ewAxpy, count: x.count, arguments: [Int32(x.count), alpha, x, y])
    }

    /// Launches `op` element-wise: `out[r, c] = a[r, c] op b[…]`, with `b` broadcast as `broadcast`
    /// says. `a` and `out` hold rows × cols floats; `out` may be `a` (in place).
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let h = try device.buffer([1, 2, 3, 4] as [Float]), bias = try device.buffer([10, 20] as [Float])
    /// try kernels.binary(.add, h, bias, rows: 2, cols: 2, broadcast: .row, into: h)   // [11, 22, 13, 24]
    /// ```
    public func binary(_ op: BinaryOp, _ a: Buffer<Float>, _ b: Buffer<Float>, rows: Int, cols: Int,
                       broadcast: Broadcast = .none, into out: Buffer<Float>) throws {
        let what = "\(op.rawValue) (broadcast \(broadcast.rawValue))"
        try Check.matrix(what, rows: rows, cols: cols)
        try Check.count(what, "a", a, rows * cols, "[\(rows), \(cols)]")
        try Check.count(what, "out", out, rows * cols, "[\(rows), \(cols)]")
        let n = rows * cols
        // (rows, cols) as launched, and b's strides per row and per column.
        let shape: (rows: Int, cols: Int, bsr: Int, bsc: Int)
        switch broadcast {
        case .none:
            try Check.count(what, "b", b, n, "[\(rows), \(cols)] like a")
            shape = (1, n, 0, 1)
        case .row:
            try Check.count(what, "b", b, cols, "[\(cols)] (a row vector over [\(rows), \(cols)])")
            shape = (rows, cols, 0, 1)
        case .column:
            try Check.count(what, "b", b, rows, "[\(rows)] (a column vector over [\(rows), \(cols)])")
            shape = (rows, cols, 1, 0)
        case .scalar:
            try Check.count(what, "b", b, 1, "[1] (a scalar)")
            shape = (1, n, 0, 0)
        }
        let chunks = chunks(shape.cols)
        try launch1D(.ewBinary, shape.rows * chunks, op.code, Int32(shape.rows), Int32(shape.cols), Int32(chunks),
                     Int32(shape.bsr), Int32(shape.bsc), a, b, out)
    }

    /// Launches `out[i] = a[i] op scalar` (or `scalar op a[i]` when `reversed`) over all of `a`;
    /// `out` has `a`'s length and may be `a`.
    public func binary(_ op: BinaryOp, _ a: Buffer<Float>, scalar: Float, reversed: Bool = false,
                       into out: Buffer<Float>) throws {
        let what = "\(op.rawValue) (scalar)"
        try Check.elements(what, a.count)
        try Check.count(what, "out", out, a.count, "[\(a.count)] like a")
        try launchFlat(.ewBinaryScalar, count: a.count,
                       arguments: [op.code, Int32(reversed ? 1 : 0), Int32(a.count), scalar, a, out])
    }

    /// Launches `op` with NumPy broadcasting at any rank: `out` (contiguous, `shape`) `= a op b`, where
    /// `a` and `b` are read through element strides over `shape` (0 along an axis an operand is
    /// broadcast over). Adjacent axes that stay contiguous are merged first; at most 8 may remain.
    ///
    /// ```swift
    /// // [4, 1] + [1, 3] -> [4, 3]
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let a = try device.buffer([1, 2, 3, 4] as [Float]), b = try device.buffer([10, 20, 30] as [Float])
    /// let out = try device.buffer(Float.self, count: 12)
    /// try kernels.binary(.add, a, strides: [1, 0], b, strides: [0, 1], shape: [4, 3], into: out)
    /// ```
    public func binary(_ op: BinaryOp, _ a: Buffer<Float>, strides aStrides: [Int], _ b: Buffer<Float>,
                       strides bStrides: [Int], shape: [Int], into out: Buffer<Float>) throws {
        let what = "\(op.rawValue) (broadcast over \(shape))"
        let n = try Strided.count(what, shape)
        try Check.count(what, "out", out, n, "\(shape)")
        try Strided.check(what, "a", a, shape: shape, strides: aStrides, offset: 0)
        try Strided.check(what, "b", b, shape: shape, strides: bStrides, offset: 0)
        let layout = try Strided.collapse(what, shape: shape, strides: [aStrides, bStrides, Strided.contiguous(shape)])
        let chunks = chunks(layout.shape.last ?? 1)
        let outer = n / (layout.shape.last ?? 1)
        try launch1D(.ewBinaryND, outer * chunks, op.code, Int32(layout.shape.count), Strided.axes(layout.shape),
                     Strided.axes(layout.strides[0]), Strided.axes(layout.strides[1]), Int32(chunks), a, b, out)
    }

    /// Launches `y[i] = op(x[i])` over all of `x`; `y` has `x`'s length and may be `x`.
    public func unary(_ op: UnaryOp, _ x: Buffer<Float>, into y: Buffer<Float>) throws {
        try Check.elements("unary \(op)", x.count)
        try Check.count("unary \(op)", "y", y, x.count, "[\(x.count)] like x")
        let (code, p0, p1) = op.arguments
        try launchFlat(.ewUnary, count: x.count, arguments: [code, Int32(x.count), p0, p1, x, y])
    }

    /// Launches `out[i] = condition[i] != 0 ? a[i] : b[i]` (`torch.where` on equal shapes).
    public func select(_ condition: Buffer<Float>, _ a: Buffer<Float>, _ b: Buffer<Float>, into out: Buffer<Float>) throws {
        let n = condition.count
        try Check.elements("where", n)
        for (name, buffer) in [("a", a), ("b", b), ("out", out)] { try Check.count("where", name, buffer, n, "[\(n)] like condition") }
        try launchFlat(.ewWhere, count: n, arguments: [Int32(n), condition, a, b, out])
    }
}

/// Strided N-d layouts of the `_nd` kernels: element counts, bounds, merging axes, packing them
/// into the kernels' `int8` arguments.
public enum Strided {
    /// The most axes a strided kernel takes after merging.
    public static let maxAxes = 8

    /// The row-major strides of a contiguous array of `shape`.
    public static func contiguous(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in shape.indices.reversed() {
            strides[axis] = step
            step = step.multipliedReportingOverflow(by: max(shape[axis], 1)).partialValue
        }
        return strides
    }

    /// The element count of `shape`, checked to be at least 1 and `int`-indexable.
    static func count(_ what: String, _ shape: [Int]) throws -> Int {
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 1 }) else {
            throw ShapeError("\(what): every axis needs at least one element, got shape \(shape).")
        }
        var n = 1
        for d in shape {
            let (product, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, product <= Check.maxElements else {
                throw ShapeError("\(what): shape \(shape) has more than \(Check.maxElements) elements.")
            }
            n = product
        }
        return n
    }

    /// That `buffer`, read at `offset` through non-negative `strides` over `shape`, stays inside it.
    static func check<T>(_ what: String, _ name: String, _ buffer: Buffer<T>, shape: [Int], strides: [Int],
                         offset: Int) throws {
        guard strides.count == shape.count, strides.allSatisfy({ $0 >= 0 }), offset >= 0 else {
            throw ShapeError("\(what): \(name) needs \(shape.count) non-negative strides and offset, got \(strides) at \(offset).")
        }
        var last = offset
        for (d, s) in zip(shape, strides) {
            let (span, overflow) = (d - 1).multipliedReportingOverflow(by: s)
            guard !overflow else { throw ShapeError("\(what): \(name)'s strides \(strides) overflow.") }
            last += span
        }
        guard last < buffer.count, last <= Check.maxElements else {
            throw ShapeError("\(what): \(name) with strides \(strides) at offset \(offset) reaches element \(last), past its \(buffer.count).")
        }
    }

    /// `shape` with axes of size 1 dropped and neighbours merged wherever every operand stays
    /// contiguous across them (stride[i] == stride[i+1] · shape[i+1]); throws beyond `maxAxes`.
    static func collapse(_ what: String, shape: [Int], strides: [[Int]]) throws -> (shape: [Int], strides: [[Int]]) {
        var outShape: [Int] = []
        var outStrides: [[Int]] = Array(repeating: [], count: strides.count)
        for axis in shape.indices where shape[axis] != 1 {
            if let last = outShape.last,
               strides.indices.allSatisfy({ outStrides[$0].last == strides[$0][axis] * shape[axis] }) {
                outShape[outShape.count - 1] = last * shape[axis]
                for k in strides.indices { outStrides[k][outStrides[k].count - 1] = strides[k][axis] }
            } else {
                outShape.append(shape[axis])
                for k in strides.indices { outStrides[k].append(strides[k][axis]) }
            }
        }
        if outShape.isEmpty { return ([1], strides.map { _ in [0] }) }
        guard outShape.count <= maxAxes else {
            throw ShapeError("\(what): the layout needs \(outShape.count) axes after merging; strided kernels take at most \(maxAxes).")
        }
        return (outShape, outStrides)
    }

    /// Up to 8 values as an `int8` kernel argument (unused lanes 0).
    static func axes(_ values: [Int]) -> SIMD8<Int32> {
        var v = SIMD8<Int32>(repeating: 0)
        for (i, x) in values.prefix(8).enumerated() { v[i] = Int32(clamping: x) }
        return v
    }
}
