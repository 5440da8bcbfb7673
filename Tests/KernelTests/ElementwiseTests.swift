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
        }
    }

    @Test("binary ops with every broadcast, on awkward shapes", arguments: BinaryOp.allCases)
    func binaryBroadcast(op: BinaryOp) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            // The largest shape for one operator only: the Double reference dominates the time.
            for (rows, cols) in EW.shapes where op == .add || rows * cols < 100_000 {
                let a = randomFloats(rows * cols, seed: UInt64(rows * 31 + cols))
                for broadcast in Broadcast.allCases {
                    let bCount = [Broadcast.none: rows * cols, .row: cols, .column: rows, .scalar: 1][broadcast]!
                    // Divisors kept away from zero: 0.5...2 with either sign.
                    let b = randomFloats(bCount, in: 0.5...2, seed: UInt64(bCount + 7)).enumerated()
                        .map { $0.offset % 3 == 0 ? -$0.element : $0.element }
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
                    expectClose(try out.toArray(), expected, rtol: 1e-6, atol: 1e-7,
                                "\(EW.path(kernels)) \(op) \(broadcast) [\(rows), \(cols)]")
                }
            }
        }
    }

    @Test("binary ops with a scalar argument, and in place")
    func binaryScalar() throws {
        for kernels in try EW.libraries() {
            for n in awkwardSizes + [4099] {
                let a = randomFloats(n, seed: UInt64(n))
                for op in BinaryOp.allCases {
                    let buffer = try kernels.device.buffer(a)
                    try kernels.binary(op, buffer, scalar: -1.5, into: buffer)  // in place
                    expectClose(try buffer.toArray(), a.map { Self.apply(op, Double($0), -1.5) }, rtol: 1e-6,
                                atol: 1e-7, "\(EW.path(kernels)) \(op) scalar n=\(n)")
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
        // The message names the op and the shapes.
        do {
            try kernels.binary(.add, a, b3, rows: 3, cols: 4, broadcast: .row, into: out)
        } catch let error as ShapeError {
            #expect(error.description.contains("add") && error.description.contains("[3, 4]"))
        }
    }
}
