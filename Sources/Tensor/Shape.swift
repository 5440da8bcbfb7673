import KilnDevice
import KilnKernels

extension Tensor {
    /// The same data in another shape of the same element count (no copy). One axis may be -1.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.filter { $0 != -1 }.reduce(1, *)
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                throw TensorError("reshape: cannot reshape \(shape) to \(newShape).")
            }
            resolved[unknown] = count / known
        }
        guard resolved.allSatisfy({ $0 >= 1 }), resolved.reduce(1, *) == count else {
            throw TensorError("reshape: shape \(newShape) holds \(resolved.reduce(1, *)) elements, but the tensor \(shape) has \(count).")
        }
        if let intStorage { return Tensor(shape: resolved, ints: intStorage) }
        let x = self
        return Tensor(shape: resolved, floats: try floats("reshape")).recorded([x]) { g in [try g.reshaped(x.shape)] }
    }

    /// All axes after the first folded into one: [N, ...] → [N, rest] (no copy).
    public func flattened() throws -> Tensor {
        try reshaped(rank <= 1 ? [count] : [shape[0], count / shape[0]])
    }

    /// The transpose of a 2-D tensor (a copy).
    public func transposed() throws -> Tensor {
        guard rank == 2 else { throw TensorError("transposed() needs a 2-D tensor, got shape \(shape).") }
        let out = try Tensor.empty([shape[1], shape[0]], on: device)
        try kernels.transpose(floats("transpose"), rows: shape[0], cols: shape[1], into: out.floats("transpose"))
        return out.recorded([self]) { g in [try g.transposed()] }
    }

    /// Rows `range` of a tensor (along the first axis; a copy).
    public func rows(_ range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0], !range.isEmpty else {
            throw TensorError("rows(\(range)): out of range for shape \(shape).")
        }
        let rowSize = count / shape[0]
        let outShape = [range.count] + shape.dropFirst()
        let n = range.count * rowSize
        if let intStorage {
            let out = Tensor(shape: outShape, ints: try device.buffer(Int32.self, count: n))
            try out.ints("rows").copy(from: intStorage, sourceOffset: range.lowerBound * rowSize, count: n)
            return out
        }
        let out = try Tensor.empty(outShape, on: device)
        try out.floats("rows").copy(from: floats("rows"), sourceOffset: range.lowerBound * rowSize, count: n)
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.zeros(x.shape, on: x.device)
            try dx.floats("rows").copy(from: g.floats("rows"), offset: range.lowerBound * rowSize, count: n)
            return [dx]
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
        guard let first = tensors.first else { throw TensorError("concatenated: no tensors given.") }
        let tail = Array(first.shape.dropFirst())
        guard tensors.allSatisfy({ Array($0.shape.dropFirst()) == tail && $0.dtype == first.dtype && $0.device === first.device }) else {
            throw TensorError("concatenated: shapes \(tensors.map(\.shape)) differ after the first axis (or dtypes/devices differ).")
        }
        let outShape = [tensors.reduce(0) { $0 + ($1.shape.first ?? 1) }] + tail
        var offset = 0
        if first.dtype == .int32 {
            let out = Tensor(shape: outShape, ints: try first.device.buffer(Int32.self, count: outShape.reduce(1, *)))
            for t in tensors {
                try out.ints("concat").copy(from: t.ints("concat"), offset: offset, count: t.count)
                offset += t.count
            }
            return out
        }
        let out = try Tensor.empty(outShape, on: first.device)
        for t in tensors {
            try out.floats("concat").copy(from: t.floats("concat"), offset: offset, count: t.count)
            offset += t.count
        }
        return out.recorded(tensors) { g in
            var start = 0
            return try tensors.map { t in
                defer { start += t.shape.first ?? 1 }
                return try g.rows(start..<start + (t.shape.first ?? 1))
            }
        }
    }

    /// One-hot floats [N, classes] from int32 labels [N].
    public func oneHot(classes: Int) throws -> Tensor {
        guard classes >= 1 else { throw TensorError("oneHot: classes must be ≥ 1, got \(classes).") }
        let out = try Tensor.empty([count, classes], on: device)
        try kernels.oneHot(ints("oneHot"), classes: classes, into: out.floats("oneHot"))
        return out
    }
}
