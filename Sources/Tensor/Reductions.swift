import KilnDevice
import KilnKernels

extension Tensor {
    /// `axes` made non-negative, checked, sorted and without repeats (empty means every axis, as
    /// in PyTorch).
    func normalizedAxes(_ axes: [Int], _ op: String) throws -> [Int] {
        if axes.isEmpty { return Array(0..<rank) }
        var seen = Set<Int>()
        for axis in axes {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0, a < Swift.max(rank, 1) else {
                throw TensorError("\(op): axis \(axis) is out of range for shape \(shape).")
            }
            guard seen.insert(a).inserted else { throw TensorError("\(op): axis \(axis) is given twice.") }
        }
        return seen.sorted()
    }

    /// The shape after reducing `axes` (kept as size 1 with `keepDims`).
    func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
        keepDims ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                 : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// `op` over `axes` (sorted, valid), without recording: a sequence of [outer, length, inner]
    /// reductions, innermost block of reduced axes first, each one launch.
    func reduced(_ op: ReductionOp, axes: [Int], keepDims: Bool) throws -> Tensor {
        let outShape = reducedShape(axes, keepDims: keepDims)
        let what = op.rawValue
        // Blocks of neighbouring axes that are all reduced or all kept, as (extent, reduced).
        var blocks: [(extent: Int, reduced: Bool)] = []
        for (axis, extent) in shape.enumerated() where extent != 1 {
            let reduced = axes.contains(axis)
            if let last = blocks.last, last.reduced == reduced {
                blocks[blocks.count - 1].extent *= extent
            } else {
                blocks.append((extent, reduced))
            }
        }
        var current = try floats(what)
        if !blocks.contains(where: \.reduced) {
            // Nothing to combine (only size-1 axes reduced): a copy in the new shape.
            let out = try Tensor.empty(outShape, on: device)
            try out.floats(what).copy(from: current, count: count)
            return out
        }
        while let index = blocks.lastIndex(where: \.reduced) {
            let outer = blocks[..<index].reduce(1) { $0 * $1.extent }
            let length = blocks[index].extent
            let inner = blocks[(index + 1)...].reduce(1) { $0 * $1.extent }
            let last = blocks.filter(\.reduced).count == 1
            let next = last ? try Tensor.empty(outShape, on: device).floats(what)
                            : try device.buffer(Float.self, count: outer * inner)
            if outer == 1 && inner == 1 {
                try kernels.reduce(op, current, rows: 1, cols: length, axis: .all, into: next)
            } else if inner == 1 {
                try kernels.reduce(op, current, rows: outer, cols: length, axis: .eachRow, into: next)
            } else {
                try kernels.reduce(op, current, outer: outer, length: length, inner: inner, into: next)
            }
            current = next
            blocks.remove(at: index)
            // The kept blocks on either side now touch: merge them.
            if index > 0, index < blocks.count, !blocks[index - 1].reduced, !blocks[index].reduced {
                blocks[index - 1].extent *= blocks[index].extent
                blocks.remove(at: index)
            }
        }
        return Tensor(shape: outShape, floats: current)
    }

    /// `op` over `axes` with the gradient of a sum or mean (spread back over the reduced axes).
    func reduceRecorded(_ op: ReductionOp, axes given: [Int], keepDims: Bool, _ name: String) throws -> Tensor {
        let axes = try normalizedAxes(given, name)
        let x = self
        let out = try reduced(op, axes: axes, keepDims: keepDims)
        let n = Float(axes.reduce(1) { $0 * x.shape[$1] })
        let kept = reducedShape(axes, keepDims: true)
        return out.recorded([x]) { g in
            let spread = try g.reshaped(kept).expanded(to: x.shape)
            return [op == .mean ? try spread * (1 / n) : spread]
        }
    }

    /// The sum of all elements, or along `axis` (keeping it as size 1 when `keepDims`).
    ///
    /// ```swift
    /// let x = try Tensor([[1, 2, 3], [4, 5, 6]])
    /// let rows = try x.sum(axis: 1)                  // [6, 15]
    /// let all = try x.sum()                          // 21
    /// ```
    public func sum(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        try reduceRecorded(.sum, axes: axis.map { [$0] } ?? [], keepDims: keepDims, "sum")
    }

    /// The sum over every axis in `axes` (`torch.sum(x, dim=axes)`; empty: every axis).
    public func sum(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        try reduceRecorded(.sum, axes: axes, keepDims: keepDims, "sum")
    }

    /// The mean of all elements, or along `axis`.
    public func mean(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        try reduceRecorded(.mean, axes: axis.map { [$0] } ?? [], keepDims: keepDims, "mean")
    }

    /// The mean over every axis in `axes` (empty: every axis).
    public func mean(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        try reduceRecorded(.mean, axes: axes, keepDims: keepDims, "mean")
    }

    /// The largest element along `axis` (`torch.max(x, dim).values`: the gradient goes to the first
    /// maximum), or of all elements (`torch.max(x)`: the gradient is shared by every maximum).
    /// NaN propagates.
    public func max(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        guard let axis else { return try max(axes: [], keepDims: keepDims) }
        let axes = try normalizedAxes([axis], "max")
        let x = self
        let out = try reduced(.max, axes: axes, keepDims: keepDims)
        let kept = reducedShape(axes, keepDims: true)
        return out.recorded([x]) { g in
            [try g.reshaped(kept).expanded(to: x.shape) * x.argmaxMask(axis: axes[0])]
        }
    }

    /// The largest element over every axis in `axes` (`torch.amax`; empty: every axis); the
    /// gradient is shared evenly by the maxima, as in PyTorch.
    public func max(axes given: [Int], keepDims: Bool = false) throws -> Tensor {
        let axes = try normalizedAxes(given, "max")
        let x = self
        let out = try reduced(.max, axes: axes, keepDims: keepDims)
        let kept = reducedShape(axes, keepDims: true)
        return out.recorded([x]) { g in
            let hits = try x.eq(out.reshaped(kept).expanded(to: x.shape))
            let ties = try hits.sum(axes: axes, keepDims: true).expanded(to: x.shape)
            return [try g.reshaped(kept).expanded(to: x.shape) * hits / ties]
        }
    }

    /// Indices (int32) of the largest element along `axis`, or of the flattened tensor; ties go to
    /// the first, and NaN counts as the largest (PyTorch's rules).
    ///
    /// ```swift
    /// let logits = try Tensor([[0.1, 2, 0.3], [5, 1, 1]])
    /// let classes = try logits.argmax(axis: 1)       // [1, 0]
    /// ```
    public func argmax(axis: Int? = nil, keepDims: Bool = false) throws -> Tensor {
        let x = try floats("argmax")
        guard let axis else {
            let out = Tensor(shape: keepDims ? shape.map { _ in 1 } : [], ints: try device.buffer(Int32.self, count: 1))
            try kernels.argmax(x, rows: 1, cols: count, axis: .all, into: out.ints("argmax"))
            return out
        }
        let a = try normalizedAxes([axis], "argmax")[0]
        let outShape = reducedShape([a], keepDims: keepDims)
        let out = Tensor(shape: outShape, ints: try device.buffer(Int32.self, count: outShape.reduce(1, *)))
        guard !shape.isEmpty else {
            try kernels.argmax(x, rows: 1, cols: 1, axis: .all, into: out.ints("argmax"))
            return out
        }
        let outer = shape[..<a].reduce(1, *), length = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        if inner == 1 {
            try kernels.argmax(x, rows: outer, cols: length, axis: .eachRow, into: out.ints("argmax"))
        } else {
            try kernels.argmax(x, outer: outer, length: length, inner: inner, into: out.ints("argmax"))
        }
        return out
    }

    /// 1 at the first maximum along `axis` (PyTorch's `max(dim)` index), 0 elsewhere, in this shape.
    func argmaxMask(axis a: Int) throws -> Tensor {
        guard !shape.isEmpty else { return try Tensor.ones([], on: device) }
        let length = shape[a], inner = shape[(a + 1)...].reduce(1, *)
        let hot = try argmax(axis: a).reshaped([count / length]).oneHot(classes: length)   // [outer·inner, length]
        if inner == 1 { return try hot.reshaped(shape) }
        return try hot.reshaped([count / length / inner, inner, length]).permuted([0, 2, 1]).reshaped(shape)
    }
}
