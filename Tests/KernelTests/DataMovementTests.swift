import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Data movement kernels")
struct DataMovementTests {
    @Test("transpose on awkward shapes")
    func transpose() throws {
        for kernels in try EW.libraries() {
            for (rows, cols) in EW.shapes + [(17, 33)] {
                let x = randomFloats(rows * cols, seed: UInt64(rows * 3 + cols))
                let y = try kernels.device.buffer(Float.self, count: rows * cols)
                try kernels.transpose(try kernels.device.buffer(x), rows: rows, cols: cols, into: y)
                let expected = (0..<cols).flatMap { c in (0..<rows).map { r in x[r * cols + c] } }
                #expect(try y.toArray() == expected, "\(EW.path(kernels)) transpose [\(rows), \(cols)]")
            }
        }
    }

    @Test("copy with offsets, and a strided block; nothing outside the target changes")
    func copy() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let source = randomFloats(3000, seed: 5)
            for (count, from, to) in [(1, 0, 0), (7, 3, 5), (1000, 17, 1), (2999, 1, 0), (31, 2969, 2969)] {
                let dst = try device.buffer([Float](repeating: -7, count: 3000))
                try kernels.copy(from: try device.buffer(source), sourceOffset: from, to: dst, destinationOffset: to, count: count)
                var expected = [Float](repeating: -7, count: 3000)
                expected[to..<to + count] = source[from..<from + count]
                #expect(try dst.toArray() == expected, "\(EW.path(kernels)) copy \(count) from \(from) to \(to)")
            }
            // A [13, 29] block from stride 40 at offset 3 into stride 31 at offset 2.
            let (rows, cols) = (13, 29)
            let dst = try device.buffer([Float](repeating: -7, count: 2 + 12 * 31 + 29 + 5))
            try kernels.copyBlock(from: try device.buffer(source), sourceOffset: 3, sourceStride: 40, to: dst,
                                  destinationOffset: 2, destinationStride: 31,
                                  rows: rows, cols: cols)
            var expected = [Float](repeating: -7, count: dst.count)
            for r in 0..<rows { for c in 0..<cols { expected[2 + r * 31 + c] = source[3 + r * 40 + c] } }
            #expect(try dst.toArray() == expected, "\(EW.path(kernels)) copy block")
        }
    }

    @Test("strided copies at any rank: permutes, a broadcast source, a strided destination; nothing else changes")
    func stridedCopy() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let source = randomFloats(2 * 3 * 5 * 7, seed: 6)
            let src = try device.buffer(source)
            // [2, 3, 5, 7] read as its permutation [7, 2, 5, 3] (order 3, 0, 2, 1) into a contiguous buffer.
            let shape = [7, 2, 5, 3], strides = [1, 105, 7, 35]
            let out = try device.buffer(Float.self, count: 210)
            try kernels.copy(shape: shape, from: StridedBuffer(src, strides: strides), to: StridedBuffer(out, contiguous: shape))
            let expected = (0..<210).map { i -> Float in
                let (a, b, c, d) = (i / 30, i / 15 % 2, i / 3 % 5, i % 3)
                return source[a * 1 + b * 105 + c * 7 + d * 35]
            }
            #expect(try out.toArray() == expected, "\(EW.path(kernels)) permute")
            // A [5] row broadcast to [4, 5] (stride 0) into the middle of a wider [4, 9] matrix.
            let wide = try device.buffer([Float](repeating: -1, count: 36))
            try kernels.copy(shape: [4, 5], from: StridedBuffer(src, offset: 3, strides: [0, 1]),
                             to: StridedBuffer(wide, offset: 2, strides: [9, 1]))
            var expectedWide = [Float](repeating: -1, count: 36)
            for r in 0..<4 { for c in 0..<5 { expectedWide[2 + r * 9 + c] = source[3 + c] } }
            #expect(try wide.toArray() == expectedWide, "\(EW.path(kernels)) broadcast into a block")
        }
        let kernels = try TestDevice.kernels()
        let b = try kernels.device.buffer(Float.self, count: 10)
        #expect(throws: ShapeError.self) {
            try kernels.copy(shape: [2, 5], from: StridedBuffer(b, strides: [5, 1]), to: StridedBuffer(b, strides: [0, 1]))
        }
        #expect(throws: ShapeError.self) {
            try kernels.copy(shape: [1, 5], from: StridedBuffer(b, strides: [5, 1]), to: StridedBuffer(b, offset: 3, strides: [5, 1]))
        }
    }

    @Test("gather rows by a shuffled index; out-of-range indices give zero rows")
    func gatherRows() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in [(1, 1), (1000, 13), (257, 64), (31, 129), (64, 1000)] {
                let source = randomFloats(rows * cols, seed: UInt64(rows + cols))
                var rng = SeededGenerator(seed: UInt64(rows))
                var indices = (0..<Int32(rows)).shuffled(using: &rng)
                if rows > 4 { indices += [-1, Int32(rows), Int32.max, Int32.min] }  // out of range
                let dst = try device.buffer(Float.self, count: indices.count * cols)
                try kernels.gatherRows(try device.buffer(source), rows: rows, cols: cols,
                                       indices: try device.buffer(indices), into: dst)
                let expected = indices.flatMap { i -> [Float] in
                    i >= 0 && Int(i) < rows ? Array(source[Int(i) * cols..<(Int(i) + 1) * cols]) : [Float](repeating: 0, count: cols)
                }
                #expect(try dst.toArray() == expected, "\(EW.path(kernels)) gather [\(rows), \(cols)]")

                // The labels of the same batch.
                let labels = EW.randomInts(rows, in: 0..<10, seed: 3)
                let picked = try device.buffer(Int32.self, count: indices.count)
                try kernels.gather(try device.buffer(labels), indices: try device.buffer(indices), into: picked)
                #expect(try picked.toArray() == indices.map { $0 >= 0 && Int($0) < rows ? labels[Int($0)] : -1 })
            }
        }
    }

    @Test("one-hot of Int32 labels; out-of-range labels give zero rows")
    func oneHot() throws {
        for kernels in try EW.libraries() {
            for classes in [1, 7, 10, 16, 33, 1000] {
                let labels = EW.randomInts(129, in: 0..<Int32(classes), seed: UInt64(classes)) + [-1, Int32(classes)]
                let out = try kernels.device.buffer(Float.self, count: labels.count * classes)
                try kernels.oneHot(try kernels.device.buffer(labels), classes: classes, into: out)
                let expected = labels.flatMap { l in (0..<classes).map { Float($0 == Int(l) ? 1 : 0) } }
                #expect(try out.toArray() == expected, "\(EW.path(kernels)) one-hot \(classes)")
            }
        }
    }

    @Test("launchers reject mismatched shapes and bad ranges")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let a = try device.buffer(Float.self, count: 12), b = try device.buffer(Float.self, count: 10)
        let idx = try device.buffer([Int32](repeating: 0, count: 5)), labels = try device.buffer(Int32.self, count: 3)
        #expect(throws: ShapeError.self) { try kernels.transpose(a, rows: 3, cols: 4, into: b) }
        #expect(throws: ShapeError.self) { try kernels.transpose(a, rows: 3, cols: 4, into: a) }
        #expect(throws: ShapeError.self) { try kernels.copy(from: a, sourceOffset: 5, to: b, count: 8) }
        #expect(throws: ShapeError.self) { try kernels.copy(from: a, to: b, destinationOffset: 3, count: 8) }
        #expect(throws: ShapeError.self) { try kernels.copy(from: a, sourceOffset: 2, to: a, destinationOffset: 4, count: 5) }
        #expect(throws: ShapeError.self) { try kernels.copy(from: a, sourceOffset: -1, to: b, count: 2) }
        #expect(throws: ShapeError.self) { try kernels.copyBlock(from: a, sourceStride: 3, to: b, destinationStride: 4, rows: 2, cols: 4) }
        #expect(throws: ShapeError.self) { try kernels.gatherRows(a, rows: 3, cols: 4, indices: idx, into: b) }
        #expect(throws: ShapeError.self) { try kernels.gatherRows(a, rows: 4, cols: 4, indices: idx, into: b) }
        #expect(throws: ShapeError.self) { try kernels.gather(labels, indices: idx, into: labels) }
        #expect(throws: ShapeError.self) { try kernels.oneHot(labels, classes: 4, into: b) }
        #expect(throws: ShapeError.self) { try kernels.oneHot(labels, classes: 0, into: b) }
    }
}
