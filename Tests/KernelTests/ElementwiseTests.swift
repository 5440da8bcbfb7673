import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Element-wise kernels")
struct ElementwiseTests {
    static func apply(_ op: BinaryOp, _ a: Double, _ b: Double) -> Double {
        switch op {
        case .add: a + b
        case .sub: a - b
        case .mul: a * b
        case .div: a / b
        case .maximum: a.isNaN || b.isNaN ? .nan : Swift.max(a, b)
        case .minimum: a.isNaN || b.isNaN ? .nan : Swift.min(a, b)
        case .eq: a == b ? 1 : 0
        case .ne: a != b ? 1 : 0
        case .lt: a < b ? 1 : 0
        case .le: a <= b ? 1 : 0
        case .gt: a > b ? 1 : 0
        case .ge: a >= b ? 1 : 0
        case .pow: Foundation.pow(a, b)
        }
    }

    /// Operands for `op`: divisors and pow bases kept away from zero, ties for the comparisons.
    static func operands(_ op: BinaryOp, _ count: Int, seed: UInt64) -> [Float] {
        switch op {
        case .pow: return randomFloats(count, in: 0.5...2, seed: seed)
        case .eq, .ne, .lt, .le, .gt, .ge, .maximum, .minimum: return EW.floatsWithTies(count, seed: seed)
        default:
            return randomFloats(count, in: 0.5...2, seed: seed).enumerated().map { $0.offset % 3 == 0 ? -$0.element : $0.element }
        }
    }

    @Test("binary ops with every broadcast, on awkward shapes", arguments: BinaryOp.allCases)
    func binaryBroadcast(op: BinaryOp) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            // The largest shape for one operator only: the Double reference dominates the time.
            for (rows, cols) in EW.shapes where op == .add || rows * cols < 100_000 {
                let a = op == .pow ? Self.operands(op, rows * cols, seed: 9) : EW.floatsWithTies(rows * cols, seed: UInt64(rows * 31 + cols))
                for broadcast in Broadcast.allCases {
                    let bCount = [Broadcast.none: rows * cols, .row: cols, .column: rows, .scalar: 1][broadcast]!
                    let b = Self.operands(op, bCount, seed: UInt64(bCount + 7))
                    let out = try device.buffer(Float.self, count: rows * cols)
                    try kernels.binary(op, try device.buffer(a), try device.buffer(b), rows: rows, cols: cols,
                                       broadcast: broadcast, into: out)
                    // b's strides per row and per column under this broadcast.
                    let (bsr, bsc) = [Broadcast.none: (cols, 1), .row: (0, 1), .column: (1, 0), .scalar: (0, 0)][broadcast]!
                    var expected = [Double](repeating: 0, count: rows * cols)
                    for r in 0..<rows {
                        for c in 0..<cols {
                            expected[r * cols + c] = Self.apply(op, Double(a[r * cols + c]), Double(b[r * bsr + c * bsc]))
                        }
                    }
                    expectClose(try out.toArray(), expected, rtol: op == .pow ? 4e-6 : 1e-6, atol: 1e-7,
                                "\(EW.path(kernels)) \(op) \(broadcast) [\(rows), \(cols)]")
                }
            }
        }
    }

    /// The strides of a contiguous array of `shape`, 0 where `operand` is broadcast (size 1).
    static func strides(_ operand: [Int], over shape: [Int]) -> [Int] {
        let padded = [Int](repeating: 1, count: shape.count - operand.count) + operand
        var strides = [Int](repeating: 0, count: shape.count), step = 1
        for i in shape.indices.reversed() {
            strides[i] = padded[i] == 1 ? 0 : step
            step *= padded[i]
        }
        return strides
    }

    @Test("NumPy broadcasting at any rank on the strided kernel: both operands broadcast, up to rank 6",
          arguments: BinaryOp.allCases)
    func broadcastND(op: BinaryOp) throws {
        let cases: [([Int], [Int])] = [([4, 1], [1, 3]), ([7, 1, 13], [5, 1]), ([2, 1, 3, 1, 5], [4, 1, 1, 5]),
                                       ([1, 129], [31, 1]), ([3, 1, 2, 1, 4, 1], [1, 5, 1, 3, 1, 17]), ([1], [2, 3])]
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (aShape, bShape) in cases {
                let rank = Swift.max(aShape.count, bShape.count)
                func padded(_ s: [Int]) -> [Int] { [Int](repeating: 1, count: rank - s.count) + s }
                let shape = zip(padded(aShape), padded(bShape)).map { Swift.max($0, $1) }
                let a = Self.operands(op, aShape.reduce(1, *), seed: 3), b = Self.operands(op, bShape.reduce(1, *), seed: 4)
                let (sa, sb) = (Self.strides(aShape, over: shape), Self.strides(bShape, over: shape))
                let out = try device.buffer(Float.self, count: shape.reduce(1, *))
                try kernels.binary(op, device.buffer(a), strides: sa, device.buffer(b), strides: sb, shape: shape, into: out)
                var expected: [Double] = []
                for flat in 0..<shape.reduce(1, *) {
                    var rest = flat, ia = 0, ib = 0
                    for axis in shape.indices.reversed() {
                        let index = rest % shape[axis]
                        rest /= shape[axis]
                        ia += index * sa[axis]
                        ib += index * sb[axis]
                    }
                    expected.append(Self.apply(op, Double(a[ia]), Double(b[ib])))
                }
                expectClose(try out.toArray(), expected, rtol: op == .pow ? 4e-6 : 1e-6, atol: 1e-7,
                            "\(EW.path(kernels)) \(op) \(aShape) with \(bShape)")
            }
        }
    }

    @Test("NaN propagates as in PyTorch: maximum, minimum, comparisons, clamp, relu, leaky relu, abs")
    func nanPropagation() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let n = 37
            var x = randomFloats(n, seed: 1)
            for i in stride(from: 0, to: n, by: 5) { x[i] = .nan }
            let other = try device.buffer([Float](repeating: 0.25, count: n)), xb = try device.buffer(x)
            let out = try device.buffer(Float.self, count: n)
            for op in [BinaryOp.maximum, .minimum, .eq, .ne, .lt, .gt, .add] {
                try kernels.binary(op, xb, other, rows: 1, cols: n, into: out)
                let got = try out.toArray()
                for i in 0..<n {
                    let want = Self.apply(op, Double(x[i]), 0.25)
                    #expect(got[i].isNaN == want.isNaN && (want.isNaN || Double(got[i]) == want), "\(op) at \(i): \(got[i]) vs \(want)")
                }
            }
            for (op, name) in [(UnaryOp.clamp(min: -0.5, max: 0.5), "clamp"), (.abs, "abs"), (.sign, "sign")] {
                try kernels.unary(op, xb, into: out)
                let got = try out.toArray()
                for i in stride(from: 0, to: n, by: 5) { #expect(got[i].isNaN, "\(name)(NaN) should be NaN") }
            }
            for f in [Activation.relu, .leakyRelu(slope: 0.1), .sigmoid, .tanh, .gelu] {
                try kernels.activation(f, xb, into: out)
                let got = try out.toArray()
                for i in stride(from: 0, to: n, by: 5) { #expect(got[i].isNaN, "\(f)(NaN) should be NaN") }
            }
        }
    }

    @Test("where picks a where the condition is non-zero, b elsewhere")
    func select() throws {
        for kernels in try EW.libraries() {
            for n in awkwardSizes {
                let cond = randomFloats(n, seed: 2).map { $0 > 0 ? Float(1) : 0 }
                let a = randomFloats(n, seed: 3), b = randomFloats(n, seed: 4)
                let out = try kernels.device.buffer(Float.self, count: n)
                try kernels.select(kernels.device.buffer(cond), kernels.device.buffer(a), kernels.device.buffer(b), into: out)
                #expect(try out.toArray() == (0..<n).map { cond[$0] != 0 ? a[$0] : b[$0] }, "\(EW.path(kernels)) n=\(n)")
            }
        }
    }

    @Test("binary ops with a scalar argument, and in place")
    func binaryScalar() throws {
        for kernels in try EW.libraries() {
            for n in awkwardSizes + [4099] {
                let a = randomFloats(n, seed: UInt64(n))
                for op in BinaryOp.allCases where op != .pow {
                    for reversed in [false, true] {
                        let buffer = try kernels.device.buffer(a)
                        try kernels.binary(op, buffer, scalar: -1.5, reversed: reversed, into: buffer)  // in place
                        let expected = a.map { reversed ? Self.apply(op, -1.5, Double($0)) : Self.apply(op, Double($0), -1.5) }
                        expectClose(try buffer.toArray(), expected, rtol: 1e-6, atol: 1e-7,
                                    "\(EW.path(kernels)) \(op) scalar reversed \(reversed) n=\(n)")
                    }
                }
            }
        }
    }

    @Test("unary ops against Double references")
    func unaryOps() throws {
        let cases: [(UnaryOp, ClosedRange<Float>, (Double) -> Double)] = [
            (.neg, -3...3, { -$0 }),
            (.exp, -80...80, { Foundation.exp($0) }),
            (.log, 1e-3...1e3, { Foundation.log($0) }),
            (.sqrt, 0...100, { $0.squareRoot() }),
            (.pow(3), -4...4, { Foundation.pow($0, 3) }),
            (.pow(0.5), 0...9, { Foundation.pow($0, 0.5) }),
            (.clamp(min: -0.5, max: 0.25), -2...2, { Swift.min(Swift.max($0, -0.5), 0.25) }),
            (.abs, -3...3, { Swift.abs($0) }),
            (.sign, -3...3, { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }),
        ]
        for kernels in try EW.libraries() {
            for n in awkwardSizes {
                for (op, range, f) in cases {
                    let x = randomFloats(n, in: range, seed: UInt64(n + 3))
                    let y = try kernels.device.buffer(Float.self, count: n)
                    try kernels.unary(op, try kernels.device.buffer(x), into: y)
                    expectClose(try y.toArray(), x.map { f(Double($0)) }, rtol: 4e-6, atol: 1e-7,
                                "\(EW.path(kernels)) \(op) n=\(n)")
                }
            }
        }
    }

    static func forward(_ f: Activation, _ x: Double) -> Double {
        switch f {
        case .relu: Swift.max(x, 0)
        case .leakyRelu(let slope): x >= 0 ? x : Double(slope) * x
        case .sigmoid: 1 / (1 + Foundation.exp(-x))
        case .tanh: Foundation.tanh(x)
        case .gelu: 0.5 * x * Foundation.erfc(-x / 2.0.squareRoot())  // erfc: accurate in the tail
        }
    }

    static func derivative(_ f: Activation, _ x: Double) -> Double {
        switch f {
        case .relu: x > 0 ? 1 : 0
        case .leakyRelu(let slope): x > 0 ? 1 : Double(slope)
        case .sigmoid: forward(f, x) * (1 - forward(f, x))
        case .tanh: 1 - Foundation.tanh(x) * Foundation.tanh(x)
        case .gelu:
            0.5 * Foundation.erfc(-x / 2.0.squareRoot()) + x * Foundation.exp(-x * x / 2) / (2 * Double.pi).squareRoot()
        }
    }

    static let activations: [Activation] = [.relu, .leakyRelu(slope: 0.01), .sigmoid, .tanh, .gelu]

    @Test("activations forward and backward (with and without accumulate)", arguments: activations)
    func activation(f: Activation) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for n in awkwardSizes + [4096 + 5] {
                // Mostly moderate values, with extremes and exact zeros mixed in.
                var x = randomFloats(n, in: -6...6, seed: UInt64(n * 5))
                let specials: [Float] = [0, -0.0, 1e-4, -1e-4, 30, -30, 100, -100, 1e4, -1e4]
                for (i, s) in specials.enumerated() where i * 3 < n { x[i * 3] = s }
                let dy = randomFloats(n, seed: UInt64(n * 7))
                let prior = randomFloats(n, seed: UInt64(n * 11))
                let xb = try device.buffer(x), y = try device.buffer(Float.self, count: n)
                try kernels.activation(f, xb, into: y)
                let expectedY = x.map { Self.forward(f, Double($0)) }
                expectClose(try y.toArray(), expectedY, rtol: 4e-6, atol: 2e-7, "\(EW.path(kernels)) \(f) forward n=\(n)")

                let saved = f.backwardTakesOutput ? y : xb
                let g = x.indices.map { Double(dy[$0]) * Self.derivative(f, Double(x[$0])) }
                for accumulate in [false, true] {
                    let dx = try device.buffer(prior)
                    try kernels.activationBackward(f, gradOutput: try device.buffer(dy), saved: saved, into: dx,
                                                   accumulate: accumulate)
                    let expected = g.indices.map { g[$0] + (accumulate ? Double(prior[$0]) : 0) }
                    expectClose(try dx.toArray(), expected, rtol: 1e-5, atol: 1e-6,
                                "\(EW.path(kernels)) \(f) backward accumulate=\(accumulate) n=\(n)")
                }
            }
        }
    }

    @Test("launchers reject mismatched shapes before enqueuing")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let a = try device.buffer(Float.self, count: 12), b3 = try device.buffer(Float.self, count: 3)
        let b4 = try device.buffer(Float.self, count: 4), out = try device.buffer(Float.self, count: 12)
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, b3, rows: 3, cols: 4, broadcast: .row, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, b4, rows: 3, cols: 4, broadcast: .column, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, b4, rows: 3, cols: 4, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, b4, rows: 3, cols: 4, broadcast: .scalar, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.mul, a, a, rows: 4, cols: 4, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.mul, a, a, rows: 0, cols: 12, into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.div, a, scalar: 2, into: b4) }
        #expect(throws: ShapeError.self) { try kernels.unary(.exp, a, into: b4) }
        #expect(throws: ShapeError.self) { try kernels.activation(.gelu, a, into: b3) }
        #expect(throws: ShapeError.self) { try kernels.activationBackward(.relu, gradOutput: a, saved: b4, into: out) }
        // Strided: operands read past their buffers, negative strides, more than 8 axes after merging.
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, strides: [4, 1], b4, strides: [0, 1], shape: [4, 4], into: out) }
        #expect(throws: ShapeError.self) { try kernels.binary(.add, a, strides: [-4, 1], b4, strides: [0, 1], shape: [3, 4], into: out) }
        let nine = [Int](repeating: 2, count: 9)
        let big = try device.buffer(Float.self, count: 512)
        #expect(throws: ShapeError.self) {
            try kernels.binary(.add, big, strides: (0..<9).map { $0 % 2 == 0 ? 1 << (8 - $0) : 0 }, big,
                               strides: (0..<9).map { $0 % 2 == 1 ? 1 << (8 - $0) : 0 }, shape: nine, into: big)
        }
        // The message names the op and the shapes.
        do {
            try kernels.binary(.add, a, b3, rows: 3, cols: 4, broadcast: .row, into: out)
        } catch let error as ShapeError {
            #expect(error.description.contains("add") && error.description.contains("[3, 4]"))
        }
    }
}
