import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// C = act(op(A)·op(B) + bias) (+ C_old), in Double.
func referenceMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool, bias: [Float]?,
                     activation: MatmulActivation, previous: [Float]?) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                sum += Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j])
            }
            if let bias { sum += Double(bias[j]) }
            switch activation {
            case .none: break
            case .relu: sum = max(sum, 0)
            case .leakyRelu(let s): sum = sum > 0 ? sum : sum * Double(s)
            case .sigmoid: sum = 1 / (1 + exp(-sum))
            case .tanh: sum = tanh(sum)
            case .gelu: sum = 0.5 * sum * (1 + erf(sum / 2.0.squareRoot()))
            }
            c[i * n + j] = sum + (previous.map { Double($0[i * n + j]) } ?? 0)
        }
    }
    return c
}

@Suite("Matmul")
struct MatmulTests {
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 13, 31), (31, 7, 13), (64, 64, 64), (129, 257, 7),
                                            (13, 1, 257), (257, 129, 64), (1000, 31, 13), (6, 16, 5), (128, 10, 128)]

    @Test("all four transposes on awkward shapes, on both the CPU and GPU paths")
    func transposes() throws {
        for kernels in try EW.libraries() {
            for (m, n, k) in Self.shapes {
                let a = randomFloats(m * k, seed: UInt64(m * 31 + k)), b = randomFloats(k * n, seed: UInt64(n * 17 + k))
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let c: Buffer<Float> = try kernels.device.buffer(count: m * n)
                    try kernels.matmul(kernels.device.buffer(a), kernels.device.buffer(b), into: c, m: m, n: n, k: k,
                                       transposeA: ta, transposeB: tb)
                    expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: ta, tb: tb, bias: nil,
                                                                 activation: .none, previous: nil),
                                rtol: 1e-4, atol: 1e-5, "\(EW.path(kernels)) \(ta ? "t" : "n")\(tb ? "t" : "n") \(m)×\(n)×\(k)")
                }
            }
        }
    }

    @Test("accumulate and every fused epilogue")
    func epilogues() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (m, n, k) in [(7, 13, 31), (129, 64, 257), (128, 10, 128)] {
                let a = randomFloats(m * k, seed: 1), b = randomFloats(k * n, seed: 2), bias = randomFloats(n, seed: 3)
                let previous = randomFloats(m * n, seed: 4)
                for activation in [MatmulActivation.none, .relu, .leakyRelu(slope: 0.1), .sigmoid, .tanh, .gelu] {
                    for (ta, tb) in [(false, true), (true, false)] {
                        let c = try device.buffer(previous)
                        try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeA: ta,
                                           transposeB: tb, accumulate: true, bias: device.buffer(bias), activation: activation)
                        expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: ta, tb: tb, bias: bias,
                                                                     activation: activation, previous: previous),
                                    rtol: 1e-4, atol: 2e-5, "\(EW.path(kernels)) \(activation) \(m)×\(n)×\(k)")
                    }
                }
            }
        }
    }

    @Test("backward through the fused epilogue: activation derivative from the output, and the bias gradient")
    func epilogueBackward() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in [(1, 1), (7, 13), (128, 256), (257, 10)] {
                let g = randomFloats(rows * cols, seed: 5)
                for activation in [MatmulActivation.none, .relu, .leakyRelu(slope: 0.2), .sigmoid, .tanh] {
                    let pre = randomFloats(rows * cols, in: -3...3, seed: 6).map(Double.init)
                    let y: [Double] = pre.map {
                        switch activation {
                        case .relu: max($0, 0)
                        case .leakyRelu(let s): $0 > 0 ? $0 : $0 * Double(s)
                        case .sigmoid: 1 / (1 + exp(-$0))
                        case .tanh: tanh($0)
                        default: $0
                        }
                    }
                    let yFloat = y.map { Float($0) }
                    let expected: [Double] = zip(g, zip(pre, yFloat)).map { gi, pair in
                        let (x, v) = (pair.0, Double(pair.1))
                        switch activation {
                        case .relu: return x > 0 ? Double(gi) : 0
                        case .leakyRelu(let s): return x > 0 ? Double(gi) : Double(gi) * Double(s)
                        case .sigmoid: return Double(gi) * v * (1 - v)
                        case .tanh: return Double(gi) * (1 - v * v)
                        default: return Double(gi)
                        }
                    }
                    let gz: Buffer<Float> = try device.buffer(count: rows * cols)
                    let gbias: Buffer<Float> = try device.buffer(count: cols)
                    try kernels.linearActivationBackward(gradOutput: device.buffer(g), output: device.buffer(yFloat),
                                                         rows: rows, cols: cols, activation: activation, into: gz,
                                                         biasGradient: gbias)
                    expectClose(try gz.toArray(), expected, rtol: 1e-5, atol: 1e-6, "\(EW.path(kernels)) \(activation) gz")
                    let sums = (0..<cols).map { c in (0..<rows).reduce(0.0) { $0 + expected[$1 * cols + c] } }
                    expectClose(try gbias.toArray(), sums, rtol: 1e-5, atol: 1e-5, "\(EW.path(kernels)) \(activation) bias")
                }
            }
        }
        let kernels = try TestDevice.kernels()
        let b: Buffer<Float> = try kernels.device.buffer(count: 6)
        #expect(throws: ShapeError.self) {
            try kernels.linearActivationBackward(gradOutput: b, output: b, rows: 2, cols: 3, activation: .gelu, into: b,
                                                 biasGradient: nil)
        }
    }

    @Test("shape errors throw before enqueueing")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let a: Buffer<Float> = try device.buffer(count: 6), b: Buffer<Float> = try device.buffer(count: 6)
        let c: Buffer<Float> = try device.buffer(count: 4)
        #expect(throws: ShapeError.self) { try kernels.matmul(a, b, into: c, m: 2, n: 2, k: 4) }
        #expect(throws: ShapeError.self) { try kernels.matmul(a, b, into: c, m: 2, n: 2, k: 3, bias: c) }
        #expect(throws: ShapeError.self) { try kernels.matmul(a, b, into: a, m: 2, n: 3, k: 3) }
        #expect(throws: ShapeError.self) { try kernels.matmul(a, b, into: c, m: 0, n: 2, k: 3) }
    }
}
