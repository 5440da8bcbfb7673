import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// Logit rows that break naive implementations: ±1e4, equal values, one huge logit, ±1e30.
enum ExtremeLogits {
    static func rows(cols: Int) -> [[Float]] {
        [
            (0..<cols).map { $0 % 2 == 0 ? 1e4 : -1e4 },
            [Float](repeating: 1e4, count: cols),
            [Float](repeating: -1e4, count: cols),
            [Float](repeating: 0.5, count: cols),
            (0..<cols).map { $0 == cols / 2 ? 1e4 : Float($0 % 5) * 0.1 },
            (0..<cols).map { $0 == cols - 1 ? 1e30 : -1e30 },
        ]
    }
}

@Suite("Softmax kernels")
struct SoftmaxTests {
    @Test("softmax and log-softmax on awkward shapes")
    func forward() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in EW.shapes {
                let x = randomFloats(rows * cols, in: -8...8, seed: UInt64(rows * 7 + cols))
                let y = try device.buffer(Float.self, count: rows * cols)
                try kernels.softmax(try device.buffer(x), rows: rows, cols: cols, into: y)
                expectClose(try y.toArray(), EWRef.softmax(x, rows: rows, cols: cols), rtol: 1e-5, atol: 1e-7,
                            "\(EW.path(kernels)) softmax [\(rows), \(cols)]")
                let inPlace = try device.buffer(x)
                try kernels.logSoftmax(inPlace, rows: rows, cols: cols, into: inPlace)
                expectClose(try inPlace.toArray(), EWRef.logSoftmax(x, rows: rows, cols: cols), rtol: 1e-5, atol: 2e-6,
                            "\(EW.path(kernels)) log-softmax in place [\(rows), \(cols)]")
            }
        }
    }

    @Test("extreme logits stay finite and correct", arguments: [1, 2, 10, 17, 64, 1000])
    func extremes(cols: Int) throws {
        let rows = ExtremeLogits.rows(cols: cols)
        let x = rows.flatMap { $0 }
        for kernels in try EW.libraries() {
            let device = kernels.device
            let y = try device.buffer(Float.self, count: x.count), l = try device.buffer(Float.self, count: x.count)
            try kernels.softmax(try device.buffer(x), rows: rows.count, cols: cols, into: y)
            try kernels.logSoftmax(try device.buffer(x), rows: rows.count, cols: cols, into: l)
            let (ys, ls) = (try y.toArray(), try l.toArray())
            #expect(ys.allSatisfy(\.isFinite) && ls.allSatisfy(\.isFinite), "\(EW.path(kernels)) cols \(cols)")
            expectClose(ys, EWRef.softmax(x, rows: rows.count, cols: cols), rtol: 1e-5, atol: 1e-7,
                        "\(EW.path(kernels)) softmax extremes, cols \(cols)")
            // log-softmax values reach -6e38: compare relative, plus a small absolute floor.
            expectClose(ls, EWRef.logSoftmax(x, rows: rows.count, cols: cols), rtol: 1e-6, atol: 1e-5,
                        "\(EW.path(kernels)) log-softmax extremes, cols \(cols)")
        }
    }

    @Test("softmax and log-softmax backward, with and without accumulate")
    func backward() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in EW.fewShapes + [(129, 257)] {
                let n = rows * cols
                let x = randomFloats(n, in: -4...4, seed: UInt64(n + 1))
                let dy = randomFloats(n, seed: UInt64(n + 2)), prior = randomFloats(n, seed: UInt64(n + 3))
                let s = EWRef.softmax(x, rows: rows, cols: cols)
                let yb = try device.buffer(Float.self, count: n), lb = try device.buffer(Float.self, count: n)
                try kernels.softmax(try device.buffer(x), rows: rows, cols: cols, into: yb)
                try kernels.logSoftmax(try device.buffer(x), rows: rows, cols: cols, into: lb)
                var softmaxGrad = [Double](repeating: 0, count: n), logGrad = softmaxGrad
                for r in 0..<rows {
                    let range = r * cols..<(r + 1) * cols
                    let dot = range.reduce(0.0) { $0 + Double(dy[$1]) * s[$1] }
                    let sum = range.reduce(0.0) { $0 + Double(dy[$1]) }
                    for i in range {
                        softmaxGrad[i] = s[i] * (Double(dy[i]) - dot)
                        logGrad[i] = Double(dy[i]) - s[i] * sum
                    }
                }
                for accumulate in [false, true] {
                    let add = { (g: [Double]) in g.indices.map { g[$0] + (accumulate ? Double(prior[$0]) : 0) } }
                    let dx = try device.buffer(prior)
                    try kernels.softmaxBackward(gradOutput: try device.buffer(dy), output: yb, rows: rows, cols: cols,
                                                into: dx, accumulate: accumulate)
                    expectClose(try dx.toArray(), add(softmaxGrad), rtol: 1e-4, atol: 1e-6,
                                "\(EW.path(kernels)) softmax backward [\(rows), \(cols)] accumulate \(accumulate)")
                    let dl = try device.buffer(prior)
                    try kernels.logSoftmaxBackward(gradOutput: try device.buffer(dy), output: lb, rows: rows, cols: cols,
                                                   into: dl, accumulate: accumulate)
                    expectClose(try dl.toArray(), add(logGrad), rtol: 1e-4, atol: 1e-5,
                                "\(EW.path(kernels)) log-softmax backward [\(rows), \(cols)] accumulate \(accumulate)")
                }
            }
        }
    }

    @Test("launchers reject mismatched shapes")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let a = try kernels.device.buffer(Float.self, count: 12), b = try kernels.device.buffer(Float.self, count: 10)
        #expect(throws: ShapeError.self) { try kernels.softmax(a, rows: 3, cols: 4, into: b) }
        #expect(throws: ShapeError.self) { try kernels.logSoftmax(a, rows: 4, cols: 4, into: a) }
        #expect(throws: ShapeError.self) { try kernels.softmaxBackward(gradOutput: a, output: b, rows: 3, cols: 4, into: a) }
        #expect(throws: ShapeError.self) { try kernels.logSoftmaxBackward(gradOutput: a, output: a, rows: 3, cols: 4, into: b) }
    }
}

@Suite("Cross-entropy kernels")
struct CrossEntropyTests {
    /// Runs the fused kernel and checks row losses, the mean and the gradient against the reference.
    static func check(_ kernels: KernelLibrary, _ x: [Float], _ targets: [Int32], rows: Int, cols: Int,
                      smoothing: Float, scale: Float, what: String) throws {
        let device = kernels.device
        let losses = try device.buffer(Float.self, count: rows), mean = try device.buffer(Float.self, count: 1)
        let gradient = try device.buffer(Float.self, count: rows * cols)
        try kernels.crossEntropy(logits: try device.buffer(x), targets: try device.buffer(targets), rows: rows,
                                 classes: cols, labelSmoothing: smoothing, gradScale: scale, rowLosses: losses,
                                 meanLoss: mean, gradient: gradient)
        let expected = EWRef.crossEntropy(x, targets, rows: rows, cols: cols, smoothing: Double(smoothing),
                                          scale: Double(scale))
        let (l, m, g) = (try losses.toArray(), try mean.toArray(), try gradient.toArray())
        #expect(l.allSatisfy(\.isFinite) && m[0].isFinite && g.allSatisfy(\.isFinite), "\(what): not finite")
        expectClose(l, expected.losses, rtol: 1e-5, atol: 2e-5, "\(what) losses")
        expectClose(m, [expected.losses.reduce(0, +) / Double(rows)], rtol: 1e-5, atol: 2e-5, "\(what) mean")
        expectClose(g, expected.gradient, rtol: 1e-4, atol: 1e-7 * Double(abs(scale)), "\(what) gradient")
    }

    @Test("fused loss, mean and gradient, with and without label smoothing", arguments: [Float(0), 0.1, 1])
    func fused(smoothing: Float) throws {
        for kernels in try EW.libraries() {
            for (rows, cols) in [(1, 1), (128, 10), (7, 1000), (1000, 7), (13, 257), (257, 2), (4099, 3)] {
                let x = randomFloats(rows * cols, in: -6...6, seed: UInt64(rows * 13 + cols))
                let targets = EW.randomInts(rows, in: 0..<Int32(cols), seed: UInt64(rows))
                try Self.check(kernels, x, targets, rows: rows, cols: cols, smoothing: smoothing, scale: 2.5,
                               what: "\(EW.path(kernels)) [\(rows), \(cols)] ε \(smoothing)")
            }
        }
    }

    @Test("extreme logits: ±1e4, equal rows, one huge logit", arguments: [2, 10, 17, 1000])
    func extremes(cols: Int) throws {
        let rows = ExtremeLogits.rows(cols: cols)
        let x = rows.flatMap { $0 }
        // Targets on the largest logit, the smallest and in between.
        let targets = (0..<rows.count).map { Int32([0, 1, cols - 1, cols / 2][$0 % 4]) }
        for kernels in try EW.libraries() {
            for smoothing: Float in [0, 0.1] {
                try Self.check(kernels, x, targets, rows: rows.count, cols: cols, smoothing: smoothing, scale: 1,
                               what: "\(EW.path(kernels)) extremes cols \(cols) ε \(smoothing)")
            }
        }
    }

    @Test("targets out of range: NaN loss, zero gradient row, no out-of-bounds read")
    func badTargets() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let (rows, cols) = (5, 10)
            let x = randomFloats(rows * cols, seed: 8)
            let targets: [Int32] = [3, -1, 10, Int32.max, 0]
            let losses = try device.buffer(Float.self, count: rows), mean = try device.buffer(Float.self, count: 1)
            let gradient = try device.buffer(x)  // in place over the logits
            try kernels.crossEntropy(logits: gradient, targets: try device.buffer(targets), rows: rows, classes: cols,
                                     rowLosses: losses, meanLoss: mean, gradient: gradient)
            let (l, g, m) = (try losses.toArray(), try gradient.toArray(), try mean.toArray())
            let expected = EWRef.crossEntropy(x, targets, rows: rows, cols: cols, smoothing: 0, scale: 1)
            #expect(l[1].isNaN && l[2].isNaN && l[3].isNaN && m[0].isNaN)
            expectClose([l[0], l[4]], [expected.losses[0], expected.losses[4]], rtol: 1e-5, atol: 1e-6, "valid rows")
            #expect(g[10..<40].allSatisfy { $0 == 0 }, "\(EW.path(kernels)) gradient rows of bad targets")
            expectClose(Array(g[0..<10] + g[40..<50]), Array(expected.gradient[0..<10] + expected.gradient[40..<50]),
                        rtol: 1e-4, atol: 1e-7, "\(EW.path(kernels)) in-place gradient of valid rows")
        }
    }

    @Test("counting correct predictions, ties to the first class")
    func countCorrect() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in [(1, 1), (128, 10), (1000, 7), (5000, 3), (3, 1000)] {
                let x = EW.floatsWithTies(rows * cols, seed: UInt64(rows + cols))
                var targets = EW.randomInts(rows, in: 0..<Int32(cols), seed: 4)
                // Make about half the predictions right, and one target out of range.
                for r in stride(from: 0, to: rows, by: 2) { targets[r] = EWRef.argmax(Array(x[r * cols..<(r + 1) * cols])) }
                if rows > 2 { targets[1] = -5 }
                let expected = (0..<rows).filter { targets[$0] == EWRef.argmax(Array(x[$0 * cols..<($0 + 1) * cols])) }.count
                let count = try device.buffer(Int32.self, count: 1)
                try kernels.countCorrect(logits: try device.buffer(x), targets: try device.buffer(targets), rows: rows,
                                         classes: cols, into: count)
                #expect(try count.toArray() == [Int32(expected)], "\(EW.path(kernels)) [\(rows), \(cols)]")
            }
        }
    }

    @Test("launchers reject mismatched shapes and bad options")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let logits = try device.buffer(Float.self, count: 12), t3 = try device.buffer(Int32.self, count: 3)
        let t4 = try device.buffer(Int32.self, count: 4), l3 = try device.buffer(Float.self, count: 3)
        let one = try device.buffer(Float.self, count: 1), count = try device.buffer(Int32.self, count: 1)
        #expect(throws: ShapeError.self) { try kernels.crossEntropy(logits: logits, targets: t4, rows: 3, classes: 4, rowLosses: l3) }
        #expect(throws: ShapeError.self) { try kernels.crossEntropy(logits: logits, targets: t3, rows: 3, classes: 4, rowLosses: one) }
        #expect(throws: ShapeError.self) { try kernels.crossEntropy(logits: logits, targets: t3, rows: 3, classes: 4, meanLoss: l3) }
        #expect(throws: ShapeError.self) { try kernels.crossEntropy(logits: logits, targets: t3, rows: 3, classes: 4, gradient: l3) }
        #expect(throws: ShapeError.self) { try kernels.crossEntropy(logits: logits, targets: t3, rows: 3, classes: 4) }
        #expect(throws: ShapeError.self) {
            try kernels.crossEntropy(logits: logits, targets: t3, rows: 3, classes: 4, labelSmoothing: 1.5, meanLoss: one)
        }
        #expect(throws: ShapeError.self) { try kernels.countCorrect(logits: logits, targets: t3, rows: 4, classes: 3, into: count) }
        #expect(throws: ShapeError.self) { try kernels.countCorrect(logits: logits, targets: t3, rows: 3, classes: 4, into: t3) }
    }
}
