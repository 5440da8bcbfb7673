import KilnDevice
import KilnKernels

extension Tensor {
    /// The same data in another shape of the same element count (no copy). One axis may be -1.
    ///
    /// ```swift
    /// let x = try Tensor.arange(0, 6).reshaped([2, 3])
    /// let column = try x.reshaped([-1, 1])          // [6, 1]
    /// ```
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.filter { $0 != -1 }.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                throw TensorError("reshape: cannot reshape \(shape) to \(newShape).")
            }
            resolved[unknown] = count / known
        }
        guard resolved.allSatisfy({ $0 >= 1 }), Tensor.elementCount(resolved) == count else {
            throw TensorError("reshape: shape \(newShape) does not hold the \(count) elements of \(shape).")
        }
        if let intStorage { return Tensor(shape: resolved, ints: intStorage) }
        let x = self
        return Tensor(shape: resolved, floats: try floats("reshape")).recorded([x]) { g in [try g.reshaped(x.shape)] }
    }

    /// Axes `start...end` folded into one (`torch.flatten`): by default [N, ...] → [N, rest] (no copy).
    public func flattened(startAxis: Int = 1, endAxis: Int = -1) throws -> Tensor {
        if rank <= 1 { return try reshaped([count]) }
        let start = startAxis < 0 ? startAxis + rank : startAxis, end = endAxis < 0 ? endAxis + rank : endAxis
        guard start >= 0, end < rank, start <= end else {
            throw TensorError("flatten: axes \(startAxis)...\(endAxis) are out of range for shape \(shape).")
        }
        return try reshaped(Array(shape[..<start]) + [shape[start...end].reduce(1, *)] + Array(shape[(end + 1)...]))
    }

    /// The tensor without the size-1 axis `axis` (no copy), or without every size-1 axis.
    public func squeezed(axis: Int? = nil) throws -> Tensor {
        guard let axis else { return try reshaped(shape.filter { $0 != 1 }) }
        let a = try normalizedAxes([axis], "squeeze")[0]
        guard shape[a] == 1 else { return self }   // PyTorch leaves an axis of another size alone
        var newShape = shape
        newShape.remove(at: a)
        return try reshaped(newShape)
    }

    /// The tensor with a new size-1 axis at `axis` (no copy); -1 appends it.
    public func unsqueezed(axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + rank + 1 : axis
        guard a >= 0, a <= rank else { throw TensorError("unsqueeze: axis \(axis) is out of range for shape \(shape).") }
        var newShape = shape
        newShape.insert(1, at: a)
        return try reshaped(newShape)
    }

    /// The transpose of a 2-D tensor (a copy).
    public func transposed() throws -> Tensor {
        guard rank == 2 else { throw TensorError("transposed() needs a 2-D tensor, got shape \(shape); use transposed(a, b) or permuted.") }
        let out = try Tensor.empty([shape[1], shape[0]], on: device)
        try kernels.transpose(floats("transpose"), rows: shape[0], cols: shape[1], into: out.floats("transpose"))
        return out.recorded([self]) { g in [try g.transposed()] }
    }

    /// Axes `a` and `b` swapped (`torch.transpose(x, a, b)`; a copy).
    public func transposed(_ a: Int, _ b: Int) throws -> Tensor {
        let axes = try [a, b].map { try normalizedAxes([$0], "transpose")[0] }
        var order = Array(0..<rank)
        order.swapAt(axes[0], axes[1])
        return try permuted(order)
    }

    /// The axes in the order `axes` (`torch.permute`): output axis i is input axis `axes[i]` (a copy).
    ///
    /// ```swift
    /// let nhwc = try Tensor.zeros([2, 4, 4, 3])
    /// let nchw = try nhwc.permuted([0, 3, 1, 2])    // [2, 3, 4, 4]
    /// ```
    public func permuted(_ axes: [Int]) throws -> Tensor {
        let order = axes.map { $0 < 0 ? $0 + rank : $0 }
        guard order.count == rank, Set(order) == Set(0..<rank) else {
            throw TensorError("permute: \(axes) is not an order of the \(rank) axes of \(shape).")
        }
        if order == Array(0..<rank) { return self }
        let strides = Strided.contiguous(shape)
        let outShape = order.map { shape[$0] }
        let out = try Tensor.empty(outShape, on: device)
        try kernels.copy(shape: outShape, from: StridedBuffer(floats("permute"), strides: order.map { strides[$0] }),
                         to: StridedBuffer(out.floats("permute"), contiguous: outShape))
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in order.enumerated() { inverse[a] = i }
        return out.recorded([self]) { g in [try g.permuted(inverse)] }
    }

    /// The axes in the order given (`x.permuted(0, 2, 1)`).
    public func permuted(_ axes: Int...) throws -> Tensor { try permuted(axes) }

    /// This tensor repeated along its size-1 (or missing leading) axes to `target` (`torch.expand`,
    /// made real: a copy). The gradient sums back over the repeats.
    public func expanded(to target: [Int]) throws -> Tensor {
        if target == shape { return self }
        guard Tensor.broadcastShape(shape, target) == target else {
            throw TensorError("expand: shape \(shape) does not broadcast to \(target).")
        }
        let out = try Tensor.empty(target, on: device)
        try kernels.copy(shape: target, from: StridedBuffer(floats("expand"), strides: broadcastStrides(to: target)),
                         to: StridedBuffer(out.floats("expand"), contiguous: target))
        let x = self
        return out.recorded([x]) { g in [try g.sum(to: x.shape)] }
    }

    /// Elements `range` along `axis` (`x.narrow(axis, start, length)` / `x[:, a:b]`; a copy).
    public func sliced(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let a = try normalizedAxes([axis], "slice")[0]
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[a], !range.isEmpty else {
            throw TensorError("slice: \(range) along axis \(axis) is out of range for shape \(shape).")
        }
        if a == 0 { return try rows(range) }
        var outShape = shape
        outShape[a] = range.count
        let strides = Strided.contiguous(shape)
        let out = try Tensor.empty(outShape, on: device)
        try kernels.copy(shape: outShape, from: StridedBuffer(floats("slice"), offset: range.lowerBound * strides[a], strides: strides),
                         to: StridedBuffer(out.floats("slice"), contiguous: outShape))
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.zeros(x.shape, on: x.device)
            try x.kernels.copy(shape: outShape, from: StridedBuffer(g.floats("slice"), contiguous: outShape),
                               to: StridedBuffer(dx.floats("slice"), offset: range.lowerBound * strides[a], strides: strides))
            return [dx]
        }
    }

    /// Rows `range` of a tensor (along the first axis; a copy).
    public func rows(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0], !range.isEmpty else {
            throw TensorError("rows(\(range)): out of range for shape \(shape).")
        }
        return try leading(offset: range.lowerBound * (count / shape[0]), shape: [range.count] + shape.dropFirst())
    }

    /// The contiguous block of `shape` that starts at element `offset` (leading-axis indexing).
    func leading(offset: Int, shape outShape: [Int]) throws -> Tensor {
        let n = Tensor.elementCount(outShape)
        if let intStorage {
            let out = Tensor(shape: outShape, ints: try device.buffer(Int32.self, count: n))
            try out.ints("index").copy(from: intStorage, sourceOffset: offset, count: n)
            return out
        }
        let out = try Tensor.empty(outShape, on: device)
        try out.floats("index").copy(from: floats("index"), sourceOffset: offset, count: n)
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.zeros(x.shape, on: x.device)
            try dx.floats("index").copy(from: g.floats("index"), offset: offset, count: n)
            return [dx]
        }
    }

    /// The sub-tensor at `indices` of the leading axes (`x[i]`, `x[i, j]`; negative indices count
    /// from the end, as in Python). A copy, with its gradient.
    ///
    /// ```swift
    /// let batch = try Tensor.zeros([8, 1, 28, 28])
    /// let first = try batch[0]                      // [1, 28, 28]
    /// let pixel = try batch[0, 0, 27, 27]           // []
    /// ```
    public subscript(_ indices: Int...) -> Tensor {
        get throws {
            guard indices.count <= rank, !indices.isEmpty else {
                throw TensorError("index \(indices): a tensor of shape \(shape) takes 1 to \(rank) indices.")
            }
            let strides = Strided.contiguous(shape)
            var offset = 0
            for (axis, index) in indices.enumerated() {
                let i = index < 0 ? index + shape[axis] : index
                guard i >= 0, i < shape[axis] else {
                    throw TensorError("index \(index) is out of range for axis \(axis) of size \(shape[axis]) (shape \(shape)).")
                }
                offset += i * strides[axis]
            }
            return try leading(offset: offset, shape: Array(shape.dropFirst(indices.count)))
        }
    }

    /// The rows `range` of the first axis (`x[2..<5]`, `x[..<3]`, `x[1...]`); a copy.
    public subscript<R: RangeExpression>(_ range: R) -> Tensor where R.Bound == Int {
        get throws {
            guard rank >= 1 else { throw TensorError("a range index needs at least one axis; the tensor is a scalar.") }
            return try rows(range.relative(to: 0..<shape[0]))
        }
    }

    /// The rows of a 2-D tensor (or elements of a 1-D int32 tensor) picked by `indices` (int32).
    public func gathered(rows indices: Tensor) throws -> Tensor {
        let index = try indices.ints("gather")
        if let intStorage {
            let out = Tensor(shape: [indices.count], ints: try device.buffer(Int32.self, count: indices.count))
            try kernels.gather(intStorage, indices: index, into: out.ints("gather"))
            return out
        }
        let (rows, cols) = rank == 1 ? (shape[0], 1) : matrix
        let outShape = rank == 1 ? [indices.count] : [indices.count] + shape.dropFirst()
        let out = try Tensor.empty(outShape, on: device)
        try kernels.gatherRows(floats("gather"), rows: rows, cols: cols, indices: index, into: out.floats("gather"))
        let x = self
        return out.recorded([x]) { g in
            // Scatter-add as a product: one-hot(indices)ᵀ · g sums repeated indices deterministically.
            let hot = try indices.oneHot(classes: rows)
            return [try hot.matmul(g.reshaped([indices.count, cols]), transposeA: true).reshaped(x.shape)]
        }
    }

    /// Tensors joined along the first axis (all other axes equal).
    public static func concatenated(_ tensors: [Tensor]) throws -> Tensor {
        try concatenated(tensors, along: 0)
    }

    /// Tensors joined along `axis` (`torch.cat`; all other axes equal).
    ///
    /// ```swift
    /// let a = try Tensor.ones([2, 3]), b = try Tensor.zeros([2, 1])
    /// let joined = try Tensor.concatenated([a, b], along: 1)   // [2, 4]
    /// ```
    public static func concatenated(_ tensors: [Tensor], along axis: Int) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("concatenated: no tensors given.") }
        guard first.rank >= 1 else { throw TensorError("concatenated: scalars have no axis to join; stack them instead.") }
        let a = try first.normalizedAxes([axis], "concatenated")[0]
        func rest(_ t: Tensor) -> [Int] { t.shape.enumerated().filter { $0.offset != a }.map(\.element) }
        guard tensors.allSatisfy({ $0.rank == first.rank && rest($0) == rest(first) && $0.dtype == first.dtype
                                   && $0.device === first.device }) else {
            throw TensorError("concatenated: shapes \(tensors.map(\.shape)) differ outside axis \(axis) (or dtypes/devices differ).")
        }
        var outShape = first.shape
        outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
        if first.dtype == .int32 {
            guard a == 0 else { throw TensorError("concatenated: int32 tensors join along axis 0 only.") }
            let out = Tensor(shape: outShape, ints: try first.device.buffer(Int32.self, count: elementCount(outShape)))
            var offset = 0
            for t in tensors {
                try out.ints("concat").copy(from: t.ints("concat"), offset: offset, count: t.count)
                offset += t.count
            }
            return out
        }
        let out = try Tensor.empty(outShape, on: first.device)
        let strides = Strided.contiguous(outShape)
        var start = 0
        for t in tensors {
            try first.kernels.copy(shape: t.shape, from: StridedBuffer(t.floats("concat"), contiguous: t.shape),
                                   to: StridedBuffer(out.floats("concat"), offset: start * strides[a], strides: strides))
            start += t.shape[a]
        }
        return out.recorded(tensors) { g in
            var begin = 0
            return try tensors.map { t in
                defer { begin += t.shape[a] }
                return try g.sliced(axis: a, begin..<begin + t.shape[a])
            }
        }
    }

    /// Tensors of one shape stacked along a new axis `axis` (`torch.stack`).
    public static func stack(_ tensors: [Tensor], along axis: Int = 0) throws -> Tensor {
        guard let first = tensors.first else { throw TensorError("stack: no tensors given.") }
        guard tensors.allSatisfy({ $0.shape == first.shape }) else {
            throw TensorError("stack: shapes \(tensors.map(\.shape)) differ; stack needs one shape.")
        }
        return try concatenated(tensors.map { try $0.unsqueezed(axis: axis) }, along: axis < 0 ? axis + first.rank + 1 : axis)
    }

    /// One-hot floats [N, classes] from int32 labels [N].
    public func oneHot(classes: Int) throws -> Tensor {
        guard classes >= 1 else { throw TensorError("oneHot: classes must be ≥ 1, got \(classes).") }
        let out = try Tensor.empty([count, classes], on: device)
        try kernels.oneHot(ints("oneHot"), classes: classes, into: out.floats("oneHot"))
        return out
    }
}
