import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Reduction kernels")
struct ReductionTests {
    /// Reference reduction in Double, and the summed magnitudes (for the tolerance of sums).
    static func reference(_ op: ReductionOp, _ x: [Float], rows: Int, cols: Int, axis: ReductionAxis)
        -> (values: [Double], magnitude: [Double]) {
        let groups: [[Int]]
        switch axis {
        case .eachRow: groups = (0..<rows).map { r in (0..<cols).map { r * cols + $0 } }
        case .eachColumn: groups = (0..<cols).map { c in (0..<rows).map { $0 * cols + c } }
        case .all: groups = [Array(0..<(rows * cols))]
        }
        let values = groups.map { g -> Double in
            switch op {
            case .sum: g.reduce(0) { $0 + Double(x[$1]) }
            case .mean: g.reduce(0) { $0 + Double(x[$1]) } / Double(g.count)
            case .max: g.reduce(-Double.infinity) { Swift.max($0, Double(x[$1])) }
            }
        }
        let magnitude = groups.map { g in g.reduce(0) { $0 + abs(Double(x[$1])) } / (op == .mean ? Double(g.count) : 1) }
        return (values, magnitude)
    }

    @Test("sum, mean and max over rows, columns and everything", arguments: ReductionOp.allCases)
    func reductions(op: ReductionOp) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in EW.shapes + [(4099, 3)] {
                let x = randomFloats(rows * cols, in: -2...3, seed: UInt64(rows * 1000 + cols))
                let xb = try device.buffer(x)
                for axis in ReductionAxis.allCases {
                    let out = try device.buffer(Float.self, count: axis.resultCount(rows: rows, cols: cols))
                    try kernels.reduce(op, xb, rows: rows, cols: cols, axis: axis, into: out)
                    let actual = try out.toArray()
                    let (expected, magnitude) = Self.reference(op, x, rows: rows, cols: cols, axis: axis)
                    let what = "\(EW.path(kernels)) \(op) \(axis) [\(rows), \(cols)]"
                    if op == .max {
                        #expect(actual.map(Double.init) == expected, "\(what)")  // max is exact
                    } else {
                        // Float32 accumulation: error bounded by a few ulps of the summed magnitude.
                        for i in expected.indices where abs(Double(actual[i]) - expected[i]) > 2e-6 * magnitude[i] + 1e-6 {
                            Issue.record("\(what)[\(i)]: \(actual[i]) vs \(expected[i])")
                            break
                        }
                    }
                }
            }
        }
    }

    @Test("argmax over rows, columns and everything: the first index wins ties")
    func argmax() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in EW.shapes + [(4099, 3)] {
                // Values on a coarse grid, so every row and column has ties.
                let x = EW.floatsWithTies(rows * cols, seed: UInt64(rows + 17 * cols))
                let xb = try device.buffer(x)
                for axis in ReductionAxis.allCases {
                    let out = try device.buffer(Int32.self, count: axis.resultCount(rows: rows, cols: cols))
                    try kernels.argmax(xb, rows: rows, cols: cols, axis: axis, into: out)
                    let expected: [Int32]
                    switch axis {
                    case .eachRow: expected = (0..<rows).map { r in EWRef.argmax(Array(x[r * cols..<(r + 1) * cols])) }
                    case .eachColumn: expected = (0..<cols).map { c in EWRef.argmax((0..<rows).map { x[$0 * cols + c] }) }
                    case .all: expected = [EWRef.argmax(x)]
                    }
                    #expect(try out.toArray() == expected, "\(EW.path(kernels)) argmax \(axis) [\(rows), \(cols)]")
                }
            }
        }
    }

    @Test("argmax of all-equal and -inf values is index 0; ties far apart pick the first")
    func argmaxTies() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in [(3, 1000), (1000, 3), (1, 70_000)] {
                let n = rows * cols
                for fill in [Float(2), -.infinity] {
                    var x = [Float](repeating: fill, count: n)
                    for axis in ReductionAxis.allCases {
                        let out = try device.buffer(Int32.self, count: axis.resultCount(rows: rows, cols: cols))
                        try kernels.argmax(try device.buffer(x), rows: rows, cols: cols, axis: axis, into: out)
                        #expect(try out.toArray().allSatisfy { $0 == 0 }, "\(EW.path(kernels)) \(fill) \(axis) [\(rows), \(cols)]")
                    }
                    // Two equal maxima: near the end of one partial chunk and in a later one.
                    x[n - 1] = 9; x[n / 2 + 1] = 9
                    let out = try device.buffer(Int32.self, count: 1)
                    try kernels.argmax(try device.buffer(x), rows: rows, cols: cols, axis: .all, into: out)
                    #expect(try out.toArray() == [Int32(n / 2 + 1)], "\(EW.path(kernels)) two maxima [\(rows), \(cols)]")
                }
            }
        }
    }

    @Test("sum, mean, max and argmax over the middle axis of [outer, length, inner]",
          arguments: [(1, 7, 13), (3, 1, 5), (5, 129, 1), (7, 13, 257), (2, 1000, 31), (64, 3, 16)])
    func middle(outer: Int, length: Int, inner: Int) throws {
        for kernels in try EW.libraries() {
            let x = EW.floatsWithTies(outer * length * inner, seed: UInt64(outer + length + inner))
            let xb = try kernels.device.buffer(x), out = try kernels.device.buffer(Float.self, count: outer * inner)
            for op in ReductionOp.allCases {
                try kernels.reduce(op, xb, outer: outer, length: length, inner: inner, into: out)
                let expected = (0..<outer * inner).map { j -> Double in
                    let (o, i) = (j / inner, j % inner)
                    let column = (0..<length).map { Double(x[(o * length + $0) * inner + i]) }
                    switch op {
                    case .sum: return column.reduce(0, +)
                    case .mean: return column.reduce(0, +) / Double(length)
                    case .max: return column.max() ?? -.infinity
                    }
                }
                expectClose(try out.toArray(), expected, rtol: 1e-5, atol: 1e-5, "\(EW.path(kernels)) \(op) [\(outer), \(length), \(inner)]")
            }
            let indices = try kernels.device.buffer(Int32.self, count: outer * inner)
            try kernels.argmax(xb, outer: outer, length: length, inner: inner, into: indices)
            let expected = (0..<outer * inner).map { j -> Int32 in
                let (o, i) = (j / inner, j % inner)
                return EWRef.argmax((0..<length).map { x[(o * length + $0) * inner + i] })
            }
            #expect(try indices.toArray() == expected, "\(EW.path(kernels)) argmax [\(outer), \(length), \(inner)]")
        }
    }

    @Test("results are bitwise identical run after run")
    func deterministic() throws {
        for kernels in try EW.libraries() {
            let (rows, cols) = (1000, 257)
            let x = try kernels.device.buffer(randomFloats(rows * cols, seed: 99))
            for axis in ReductionAxis.allCases {
                var runs: [[Float]] = []
                for _ in 0..<3 {
                    let out = try kernels.device.buffer(Float.self, count: axis.resultCount(rows: rows, cols: cols))
                    try kernels.reduce(.sum, x, rows: rows, cols: cols, axis: axis, into: out)
                    runs.append(try out.toArray())
                }
                #expect(runs.allSatisfy { $0.map(\.bitPattern) == runs[0].map(\.bitPattern) }, "\(EW.path(kernels)) \(axis)")
            }
        }
    }

    @Test("launchers reject mismatched shapes")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let x = try device.buffer(Float.self, count: 12)
        let r3 = try device.buffer(Float.self, count: 3), r4 = try device.buffer(Float.self, count: 4)
        let i3 = try device.buffer(Int32.self, count: 3), i1 = try device.buffer(Int32.self, count: 1)
        #expect(throws: ShapeError.self) { try kernels.reduce(.sum, x, rows: 3, cols: 4, axis: .eachRow, into: r4) }
        #expect(throws: ShapeError.self) { try kernels.reduce(.mean, x, rows: 3, cols: 4, axis: .eachColumn, into: r3) }
        #expect(throws: ShapeError.self) { try kernels.reduce(.max, x, rows: 3, cols: 4, axis: .all, into: r3) }
        #expect(throws: ShapeError.self) { try kernels.reduce(.max, x, rows: 2, cols: 4, axis: .eachRow, into: r3) }
        #expect(throws: ShapeError.self) { try kernels.argmax(x, rows: 3, cols: 4, axis: .eachColumn, into: i3) }
        #expect(throws: ShapeError.self) { try kernels.argmax(x, rows: 3, cols: 4, axis: .all, into: i3) }
        #expect(throws: ShapeError.self) { try kernels.argmax(x, rows: -3, cols: -4, axis: .all, into: i1) }
    }

    @Test("the training loop's running loss: sums step by step and notes the first step whose loss was not finite")
    func runningLoss() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let losses: [Float] = [0.5, 1.25, .nan, 2, .infinity, 3]
            let sum = try device.buffer(Float.self, count: 1), bad = try device.buffer([Int32(0)])
            var expected = 0.0
            for (i, value) in losses.enumerated() {
                try kernels.accumulateLoss(try device.buffer([value]), into: sum, first: i == 0, step: 10 + i, firstNonFinite: bad)
                expected = i == 0 ? Double(value) : expected + Double(value)
                let got = try sum.toArray()[0]
                #expect(got.isNaN == expected.isNaN && (expected.isNaN || Double(got) == expected), "step \(i): \(got) vs \(expected)")
                #expect(try bad.toArray()[0] == (i < 2 ? 0 : 12), "first non-finite step after step \(i)")
            }
            try kernels.accumulateLoss(try device.buffer([Float(4)]), into: sum, first: true, step: 1, firstNonFinite: bad)
            #expect(try sum.toArray() == [4])
            #expect(throws: DeviceError.self) { try kernels.accumulateLoss(sum, into: sum, first: true, step: 0, firstNonFinite: bad) }
            #expect(throws: ShapeError.self) { try kernels.accumulateLoss(try device.buffer([Float(1), 2]), into: sum, first: true, step: 1, firstNonFinite: bad) }
        }
    }

    @Test("NaN propagates through sums, means and max as in PyTorch, and argmax points at the first NaN")
    func nanReductions() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let (rows, cols) = (37, 53)
            var x = randomFloats(rows * cols, seed: 11)
            let poisoned = [3 * cols + 7, 3 * cols + 40, 20 * cols + 52]   // rows 3 and 20; columns 7, 40, 52
            for i in poisoned { x[i] = .nan }
            let xb = try device.buffer(x)
            for op in ReductionOp.allCases {
                let out = try device.buffer(Float.self, count: rows)
                try kernels.reduce(op, xb, rows: rows, cols: cols, axis: .eachRow, into: out)
                let got = try out.toArray()
                for r in 0..<rows { #expect(got[r].isNaN == [3, 20].contains(r), "\(op) of row \(r): \(got[r])") }
                let columns = try device.buffer(Float.self, count: cols)
                try kernels.reduce(op, xb, rows: rows, cols: cols, axis: .eachColumn, into: columns)
                let byColumn = try columns.toArray()
                for c in 0..<cols { #expect(byColumn[c].isNaN == [7, 40, 52].contains(c), "\(op) of column \(c): \(byColumn[c])") }
                let all = try device.buffer(Float.self, count: 1)
                try kernels.reduce(op, xb, rows: rows, cols: cols, axis: .all, into: all)
                #expect(try all.toArray()[0].isNaN)
            }
            let index = try device.buffer(Int32.self, count: rows)
            try kernels.argmax(xb, rows: rows, cols: cols, axis: .eachRow, into: index)
            let picked = try index.toArray()
            #expect(picked[3] == 7 && picked[20] == 52, "argmax of the rows with NaN: \(picked[3]), \(picked[20])")
        }
    }
}
