import KilnDevice

extension KernelLibrary {
    /// Launches `y [cols, rows] = xᵀ` for `x` [rows, cols], or for each of `batch` such matrices
    /// stored one after another (`x` [batch, rows, cols] to `y` [batch, cols, rows]). `y` must not be `x`.
    public func transpose(_ x: Buffer<Float>, rows: Int, cols: Int, batch: Int = 1, into y: Buffer<Float>) throws {
        let what = "transpose [\(batch), \(rows), \(cols)]"
        let count = try Strided.count(what, [batch, rows, cols])
        try Check.count(what, "x", x, count)
        try Check.count(what, "y", y, count)
        guard x !== y else { throw ShapeError("\(what): x and y are the same buffer; it cannot run in place.") }
        let items = isGPU ? rows * cols : (rows + 15) / 16 * ((cols + 15) / 16)
        try launch(.transpose2D, global: [items, batch], local: [config.elementwiseGroup, 1],
                   Int32(rows), Int32(cols), x, y)
    }

    /// Launches a strided copy over every index `i` of `shape`:
    /// `destination[offset + Σ iₖ·strides[k]] = source[offset + Σ iₖ·strides[k]]`, each side with
    /// its own offset and strides. Permutes, slices along any axis, concatenations and broadcasts
    /// are all such copies. Strides are non-negative; the written elements must be distinct, and
    /// within one buffer the two spans must not overlap.
    ///
    /// ```swift
    /// // the transpose of [2, 3] by strides: y[j, i] = x[i, j]
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let x = try device.buffer([1, 2, 3, 4, 5, 6] as [Float]), y = try device.buffer(Float.self, count: 6)
    /// try kernels.copy(shape: [3, 2], from: StridedBuffer(x, strides: [1, 3]), to: StridedBuffer(y, strides: [2, 1]))
    /// ```
    public func copy(shape: [Int], from source: StridedBuffer, to destination: StridedBuffer) throws {
        let what = "copy \(shape)"
        _ = try Strided.count(what, shape)
        try Strided.check(what, "source", source.buffer, shape: shape, strides: source.strides, offset: source.offset)
        try Strided.check(what, "destination", destination.buffer, shape: shape, strides: destination.strides,
                          offset: destination.offset)
        guard zip(shape, destination.strides).allSatisfy({ $0.0 == 1 || $0.1 > 0 }) else {
            throw ShapeError("\(what): destination strides \(destination.strides) write an element more than once.")
        }
        if source.buffer === destination.buffer {
            let from = source.span(shape), to = destination.span(shape)
            guard !from.overlaps(to) else {
                throw ShapeError("\(what): source \(from) and destination \(to) overlap in the same buffer.")
            }
        }
        let layout = try Strided.collapse(what, shape: shape, strides: [source.strides, destination.strides])
        let inner = layout.shape.last ?? 1
        let chunks = chunks(inner)
        let outer = layout.shape.reduce(1, *) / inner
        try launch1D(.copyND, outer * chunks, Int32(layout.shape.count), Strided.axes(layout.shape),
                     Strided.axes(layout.strides[0]), Strided.axes(layout.strides[1]), Int32(source.offset),
                     Int32(destination.offset), Int32(chunks), source.buffer, destination.buffer)
    }

    /// Launches a copy of `count` floats from `source` at `sourceOffset` to `destination` at
    /// `destinationOffset`. Within one buffer, the two ranges must not overlap.
    public func copy(from source: Buffer<Float>, sourceOffset: Int = 0, to destination: Buffer<Float>,
                     destinationOffset: Int = 0, count: Int) throws {
        try copy(shape: [count], from: StridedBuffer(source, offset: sourceOffset, strides: [1]),
                 to: StridedBuffer(destination, offset: destinationOffset, strides: [1]))
    }

    /// Launches a copy of a [rows, cols] block between row-major matrices with row strides:
    /// `destination[destinationOffset + r·destinationStride + c] = source[sourceOffset + r·sourceStride + c]`.
    /// For slicing columns, or padding row strides. Within one buffer, the two blocks must not overlap.
    public func copyBlock(from source: Buffer<Float>, sourceOffset: Int = 0, sourceStride: Int,
                          to destination: Buffer<Float>, destinationOffset: Int = 0, destinationStride: Int,
                          rows: Int, cols: Int) throws {
        guard rows == 1 || (sourceStride >= cols && destinationStride >= cols) else {
            throw ShapeError("copy [\(rows), \(cols)]: row strides \(sourceStride) and \(destinationStride) must be at least \(cols) columns.")
        }
        try copy(shape: [rows, cols], from: StridedBuffer(source, offset: sourceOffset, strides: [sourceStride, 1]),
                 to: StridedBuffer(destination, offset: destinationOffset, strides: [destinationStride, 1]))
    }

    /// Launches `destination[i, :] = source[indices[i], :]`: rows of `source` [rows, cols] picked by
    /// Int32 `indices` [n] into `destination` [n, cols] (a shuffled batch, on the device). An index
    /// outside `[0, rows)` is never read through; it gives a row of zeros.
    public func gatherRows(_ source: Buffer<Float>, rows: Int, cols: Int, indices: Buffer<Int32>,
                           into destination: Buffer<Float>) throws {
        let n = indices.count
        let what = "gather rows of [\(rows), \(cols)] by \(n) indices"
        try Check.matrix(what, rows: rows, cols: cols)
        try Check.matrix(what, rows: n, cols: cols)
        try Check.count(what, "source", source, rows * cols, "[\(rows), \(cols)]")
        try Check.count(what, "destination", destination, n * cols, "[\(n), \(cols)]")
        let chunks = chunks(cols)
        try launch1D(.gatherRows, n * chunks, Int32(n), Int32(cols), Int32(chunks), Int32(rows), indices, source,
                     destination)
    }

    /// Launches `destination[i] = source[indices[i]]` for Int32 values (the labels of a shuffled
    /// batch); `destination` has `indices.count` elements. An index outside `source` gives -1 (which
    /// `crossEntropy` then reports as NaN).
    public func gather(_ source: Buffer<Int32>, indices: Buffer<Int32>, into destination: Buffer<Int32>) throws {
        let what = "gather Int32 by \(indices.count) indices"
        try Check.elements(what, source.count)
        try Check.elements(what, indices.count)
        try Check.count(what, "destination", destination, indices.count, "[\(indices.count)] like indices")
        try launch1D(.gatherI32, indices.count, Int32(indices.count), Int32(source.count), indices, source, destination)
    }

    /// Launches a one-hot encoding of Int32 `labels` [n] into `out` [n, classes] (1 at the label, 0
    /// elsewhere). A label outside `[0, classes)` gives a row of zeros.
    public func oneHot(_ labels: Buffer<Int32>, classes: Int, into out: Buffer<Float>) throws {
        let n = labels.count
        let what = "one-hot of \(n) labels into \(classes) classes"
        try Check.matrix(what, rows: n, cols: classes)
        try Check.count(what, "out", out, n * classes, "[\(n), \(classes)]")
        let chunks = chunks(classes)
        try launch1D(.oneHot, n * chunks, Int32(n), Int32(classes), Int32(chunks), labels, out)
    }
}

/// A float buffer read or written through an element offset and one stride per axis.
public struct StridedBuffer {
    /// The buffer.
    public var buffer: Buffer<Float>
    /// The element of index (0, 0, ...).
    public var offset: Int
    /// Elements between neighbours along each axis.
    public var strides: [Int]

    /// `buffer` at `offset` with `strides`.
    public init(_ buffer: Buffer<Float>, offset: Int = 0, strides: [Int]) {
        self.buffer = buffer; self.offset = offset; self.strides = strides
    }

    /// `buffer` as a contiguous row-major array of `shape`, from `offset`.
    public init(_ buffer: Buffer<Float>, offset: Int = 0, contiguous shape: [Int]) {
        self.init(buffer, offset: offset, strides: Strided.contiguous(shape))
    }

    /// The elements it spans over `shape`, first to last.
    func span(_ shape: [Int]) -> ClosedRange<Int> {
        offset...(offset + zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 })
    }
}

extension KernelLibrary {
    /// Launches a random crop and horizontal flip of each image of `x` [N, C, H, W] into `y`: the
    /// H × W crop of the image zero-padded by `pad` at a random offset, flipped with probability ½,
    /// from Philox stream `(seed, offset)` (4 words per image), so a run is reproducible on every
    /// device. `y` must not be `x`.
    public func augmentCropFlip(_ x: Buffer<Float>, samples: Int, channels: Int, height: Int, width: Int, pad: Int,
                                seed: UInt64, offset: UInt64, into y: Buffer<Float>) throws {
        let what = "augment [\(samples), \(channels), \(height), \(width)] pad \(pad)"
        let count = try Strided.count(what, [samples, channels, height, width])
        try Check.count(what, "x", x, count)
        try Check.count(what, "y", y, count)
        guard pad >= 0, pad <= 1 << 16, x !== y else {
            throw ShapeError("\(what): the padding must be ≥ 0 and y a buffer other than x.")
        }
        let words = try device.buffer(UInt32.self, count: 4 * samples)
        try philoxBits(words, seed: seed, offset: offset)
        try launch1D(.augmentCropFlip, samples * channels * height, Int32(samples), Int32(channels), Int32(height),
                     Int32(width), Int32(pad), words, x, y)
    }
}
