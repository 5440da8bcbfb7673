import KilnDevice
import KilnKernels

extension Tensor {
    /// Which axis of the [rows, cols] view `axis` (of this tensor's shape) reduces, and the
    /// result's shape with and without the kept axis.
    func reductionPlan(_ axis: Int?, keepDims: Bool, _ op: String) throws -> (ReductionAxis, [Int]) {
        guard let axis else { return (.all, keepDims ? shape.map { _ in 1 } : []) }
        let a = axis < 0 ? axis + rank : axis
        guard rank >= 1, a >= 0, a < rank else { throw TensorError("\(op): axis \(axis) is out of range for shape \(shape).") }
        guard rank <= 2 else {
            throw TensorError("\(op) along an axis supports 1-D and 2-D tensors; reshape \(shape) first.")
        }
        var kept = shape
        kept[a] = 1
        let dropped = shape.enumerated().filter { $0.offset != a }.map(\.element)
        let kind: ReductionAxis = (a == rank - 1) ? .eachRow : .eachColumn
        return (kind, keepDims ? kept : dropped)
    }

    func reduce(_ op: ReductionOp, axis: Int?, keepDims: Bool) throws -> Tensor {
        let (kind, outShape) = try reductionPlan(axis, keepDims: keepDims, op.rawValue)
        let (rows, cols) = rank == 1 ? (1, shape[0]) : matrix
        let out = Tensor(shape: outShape, floats: try device.buffer(Float.self, count: outShape.reduce(1, *)))
        try kernels.reduce(op, floats(op.rawValue), rows: rows, cols: cols, axis: kind, into: out.floats(op.rawValue))
        return out
    }

    /// The sum of all elements, or along `axis` (keeping it as size 1 when `keepDims`).
    public func sum(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let x = self
        return try reduce(.sum, axis: axis, keepDims: keepDims).recorded([x]) { g in [try g.expand(as: x, axis: axis)] }
    }

    /// The mean of all elements, or along `axis`.
    public func mean(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let x = self
        let n = Float(axis.map { x.shape[$0 < 0 ? $0 + x.rank : $0] } ?? x.count)
        return try reduce(.mean, axis: axis, keepDims: keepDims).recorded([x]) { g in
            [try g.expand(as: x, axis: axis).binary(.div, scalar: n)]
        }
    }

    /// The largest element, or the largest along `axis`; the gradient goes to the first maximum.
    public func max(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let x = self
        return try reduce(.max, axis: axis, keepDims: keepDims).recorded([x]) { g in
            let hot = try withNoGrad { try x.argmaxMask(axis: axis) }
            return [try hot * g.expand(as: x, axis: axis)]
        }
    }

    /// Indices (int32) of the largest element, or of the largest along `axis`; ties go to the first.
    public func argmax(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let (kind, outShape) = try reductionPlan(axis, keepDims: keepDims, "argmax")
        let (rows, cols) = rank == 1 ? (1, shape[0]) : matrix
        let out = Tensor(shape: outShape, ints: try device.buffer(Int32.self, count: outShape.reduce(1, *)))
        try kernels.argmax(floats("argmax"), rows: rows, cols: cols, axis: kind, into: out.ints("argmax"))
        return out
    }

    /// 1 at the first maximum (overall or along `axis`), 0 elsewhere, in this tensor's shape.
    func argmaxMask(axis: Int?) throws -> Tensor {
        let index = try argmax(axis: axis)
        guard let axis else { return try index.oneHot(classes: count).reshaped(shape) }
        let a = axis < 0 ? axis + rank : axis
        if a == rank - 1 { return try index.oneHot(classes: shape[a]).reshaped(shape) }
        return try index.oneHot(classes: shape[a]).transposed().reshaped(shape)
    }

    /// Spreads a reduced gradient back over `x`'s shape (the backward of sum along `axis`).
    func expand(as x: Tensor, axis: Int?) throws -> Tensor {
        let out = try Tensor.zeros(x.shape, on: x.device)
        let (rows, cols) = x.rank == 1 ? (1, x.shape[0]) : x.matrix
        let kind: Broadcast
        if let axis { kind = (axis < 0 ? axis + x.rank : axis) == x.rank - 1 ? .column : .row } else { kind = .scalar }
        try kernels.binary(.add, out.floats("expand"), floats("expand"), rows: rows, cols: cols, broadcast: kind,
                           into: out.floats("expand"))
        return out
    }
}
