import KilnDevice

extension KernelLibrary {
    /// Launches `y [cols, rows] = xᵀ` for `x` [rows, cols]. `y` must not be `x`.
    public func transpose(_ x: Buffer<Float>, rows: Int, cols: Int, into y: Buffer<Float>) throws {
        try ewRowwise("transpose", x, "x", y, "y", rows: rows, cols: cols)
        guard x !== y else { throw ShapeError("transpose: x and y are the same buffer; it cannot run in place.") }
        if ewGPU {
            try launch1D("transpose_2d", rows * cols, Int32(rows), Int32(cols), x, y)
        } else {
            try launch1D("transpose_2d", (rows + 15) / 16 * ((cols + 15) / 16), Int32(rows), Int32(cols), x, y)
        }
    }

    /// Launches a copy of `count` floats from `source` at `sourceOffset` to `destination` at
    /// `destinationOffset`. Within one buffer, the two ranges must not overlap.
    public func copy(from source: Buffer<Float>, sourceOffset: Int = 0, to destination: Buffer<Float>,
                     destinationOffset: Int = 0, count: Int) throws {
        try copyBlock(from: source, sourceOffset: sourceOffset, sourceStride: count, to: destination,
                      destinationOffset: destinationOffset, destinationStride: count, rows: 1, cols: count)
    }

    /// Launches a copy of a [rows, cols] block between row-major matrices with row strides:
    /// `destination[destinationOffset + r·destinationStride + c] = source[sourceOffset + r·sourceStride + c]`.
    /// For slicing columns, or padding row strides. Within one buffer, the two blocks must not overlap.
    public func copyBlock(from source: Buffer<Float>, sourceOffset: Int = 0, sourceStride: Int,
                          to destination: Buffer<Float>, destinationOffset: Int = 0, destinationStride: Int,
                          rows: Int, cols: Int) throws {
        let what = "copy [\(rows), \(cols)]"
        try EWCheck.matrix(what, rows: rows, cols: cols)
        func span(_ name: String, _ buffer: Buffer<Float>, _ offset: Int, _ stride: Int) throws -> Range<Int> {
            guard offset >= 0, stride >= cols || rows == 1 else {
                throw ShapeError("\(what): \(name) offset \(offset) is negative or its stride \(stride) is below \(cols) columns.")
            }
            let end = offset + (rows - 1) * stride + cols
            guard end <= buffer.count, end <= EWCheck.maxElements else {
                throw ShapeError("\(what): \(name) block at offset \(offset), stride \(stride) ends at \(end), past its \(buffer.count) elements.")
            }
            return offset..<end
        }
        let from = try span("source", source, sourceOffset, sourceStride)
        let to = try span("destination", destination, destinationOffset, destinationStride)
        guard source !== destination || !from.overlaps(to) else {
            throw ShapeError("\(what): source \(from) and destination \(to) overlap in the same buffer.")
        }
        let chunks = ewChunks(cols)
        try launch1D("copy_2d", rows * chunks, Int32(rows), Int32(cols), Int32(chunks), Int32(sourceOffset),
                     Int32(sourceStride), Int32(destinationOffset), Int32(destinationStride), source, destination)
    }

    /// Launches `destination[i, :] = source[indices[i], :]`: rows of `source` [rows, cols] picked by
    /// Int32 `indices` [n] into `destination` [n, cols] (a shuffled batch, on the device). An index
    /// outside `[0, rows)` is never read through; it gives a row of zeros.
    public func gatherRows(_ source: Buffer<Float>, rows: Int, cols: Int, indices: Buffer<Int32>,
                           into destination: Buffer<Float>) throws {
        let n = indices.count
        let what = "gather rows of [\(rows), \(cols)] by \(n) indices"
        try EWCheck.matrix(what, rows: rows, cols: cols)
        try EWCheck.matrix(what, rows: n, cols: cols)
        try EWCheck.count(what, "source", source, rows * cols, "[\(rows), \(cols)]")
        try EWCheck.count(what, "destination", destination, n * cols, "[\(n), \(cols)]")
        let chunks = ewChunks(cols)
        try launch1D("gather_rows", n * chunks, Int32(n), Int32(cols), Int32(chunks), Int32(rows), indices, source,
                     destination)
    }

    /// Launches `destination[i] = source[indices[i]]` for Int32 values (the labels of a shuffled
    /// batch); `destination` has `indices.count` elements. An index outside `source` gives -1 (which
    /// `crossEntropy` then reports as NaN).
    public func gather(_ source: Buffer<Int32>, indices: Buffer<Int32>, into destination: Buffer<Int32>) throws {
        let what = "gather Int32 by \(indices.count) indices"
        try EWCheck.elements(what, source.count)
        try EWCheck.elements(what, indices.count)
        try EWCheck.count(what, "destination", destination, indices.count, "[\(indices.count)] like indices")
        try launch1D("gather_i32", indices.count, Int32(indices.count), Int32(source.count), indices, source,
                     destination)
    }

    /// Launches a one-hot encoding of Int32 `labels` [n] into `out` [n, classes] (1 at the label, 0
    /// elsewhere). A label outside `[0, classes)` gives a row of zeros.
    public func oneHot(_ labels: Buffer<Int32>, classes: Int, into out: Buffer<Float>) throws {
        let n = labels.count
        let what = "one-hot of \(n) labels into \(classes) classes"
        try EWCheck.matrix(what, rows: n, cols: classes)
        try EWCheck.count(what, "out", out, n * classes, "[\(n), \(classes)]")
        let chunks = ewChunks(classes)
        try launch1D("one_hot", n * chunks, Int32(n), Int32(classes), Int32(chunks), labels, out)
    }
}
