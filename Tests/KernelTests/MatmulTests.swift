import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// C = act(op(A)·op(B) + bias) (+ C_old), in Double.
func referenceMatmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool, bias: [Float]?,
                     biasPerRow: Bool = false, activation: Activation?, previous: [Float]?) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                sum += Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j])
            }
            if let bias { sum += Double(bias[biasPerRow ? i : j]) }
            c[i * n + j] = (activation.map { referenceActivation($0, sum) } ?? sum) + (previous.map { Double($0[i * n + j]) } ?? 0)
        }
    }
    return c
}

/// An activation in Double (GELU from erfc, accurate in both tails).
func referenceActivation(_ f: Activation, _ x: Double) -> Double {
    switch f {
    case .relu: return max(x, 0)
    case .leakyRelu(let s): return x > 0 ? x : x * Double(s)
    case .sigmoid: return 1 / (1 + exp(-x))
    case .tanh: return tanh(x)
    case .gelu: return 0.5 * x * erfc(-x / 2.0.squareRoot())
    }
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
                                                                 activation: nil, previous: nil),
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
                for activation in [Activation?.none, .relu, .leakyRelu(slope: 0.1), .sigmoid, .tanh, .gelu] {
                    for (ta, tb) in [(false, true), (true, false)] {
                        let c = try device.buffer(previous)
                        try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeA: ta,
                                           transposeB: tb, accumulate: true, bias: device.buffer(bias), activation: activation)
                        expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: ta, tb: tb, bias: bias,
                                                                     activation: activation, previous: previous),
                                    rtol: 1e-4, atol: 2e-5, "\(EW.path(kernels)) \(String(describing: activation)) \(m)×\(n)×\(k)")
                    }
                    // The bias per row of C (a convolution's channels), every variant.
                    let rowBias = randomFloats(m, seed: 8)
                    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                        let c = try device.buffer(Float.self, count: m * n)
                        try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeA: ta,
                                           transposeB: tb, bias: device.buffer(rowBias), biasPerRow: true, activation: activation)
                        expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: ta, tb: tb, bias: rowBias,
                                                                     biasPerRow: true, activation: activation, previous: nil),
                                    rtol: 1e-4, atol: 2e-5, "\(EW.path(kernels)) row bias \(String(describing: activation)) \(ta)\(tb)")
                    }
                }
            }
        }
    }

    @Test("a batch of products: shared (stride 0) and strided operands, row strides, all transposes")
    func batches() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (batch, m, n, k) in [(3, 7, 13, 5), (2, 64, 31, 9), (5, 1, 3, 257), (4, 32, 196, 288)] {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    for shareA in [false, true] {
                        let a = randomFloats((shareA ? 1 : batch) * m * k, seed: UInt64(m + k)), b = randomFloats(batch * k * n, seed: 3)
                        let c = try device.buffer(Float.self, count: batch * m * n)
                        try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeA: ta,
                                           transposeB: tb, batch: MatmulBatch(count: batch, strideA: shareA ? 0 : m * k,
                                                                              strideB: k * n, strideC: m * n))
                        var expected: [Double] = []
                        for i in 0..<batch {
                            expected += referenceMatmul(Array(a[(shareA ? 0 : i * m * k)...].prefix(m * k)),
                                                        Array(b[(i * k * n)...].prefix(k * n)), m: m, n: n, k: k, ta: ta,
                                                        tb: tb, bias: nil, activation: nil, previous: nil)
                        }
                        expectClose(try c.toArray(), expected, rtol: 1e-4, atol: 1e-5,
                                    "\(EW.path(kernels)) batch \(batch) \(ta)\(tb) shared A \(shareA) \(m)×\(n)×\(k)")
                    }
                }
            }
            // B read as a column block of a wider matrix (ldb > n): columns 2..<7 of [k, 11].
            let (m, n, k, wide) = (9, 5, 6, 11)
            let a = randomFloats(m * k, seed: 1), bWide = randomFloats(k * wide, seed: 2)
            let c = try device.buffer(Float.self, count: m * n)
            let block = (0..<k).flatMap { r in bWide[(r * wide + 2)..<(r * wide + 2 + n)] }
            try kernels.matmul(device.buffer(a), device.buffer(Array(bWide.dropFirst(2))), into: c, m: m, n: n, k: k, ldb: wide)
            expectClose(try c.toArray(), referenceMatmul(a, Array(block), m: m, n: n, k: k, ta: false, tb: false, bias: nil,
                                                         activation: nil, previous: nil),
                        rtol: 1e-4, atol: 1e-5, "\(EW.path(kernels)) ldb \(wide)")
        }
    }

    @Test("a summed batch adds its products into one C, in all transposes, with the epilogue applied once to the sum")
    func summedBatches() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            // Awkward shapes, a K above the K block (257 · 3), one product, and a convolution's weight gradient.
            for (count, m, n, k) in [(3, 7, 13, 5), (5, 40, 37, 257), (1, 33, 70, 9), (16, 64, 288, 196)] {
                for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                    let a = randomFloats(count * m * k, seed: UInt64(m)), b = randomFloats(count * k * n, seed: UInt64(n))
                    let bias = randomFloats(n, seed: 9)
                    let c = try device.buffer([Float](repeating: .nan, count: m * n))   // overwritten, never read
                    try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeA: ta, transposeB: tb,
                                       bias: device.buffer(bias), activation: .relu,
                                       batch: .sum(count: count, strideA: m * k, strideB: k * n))
                    var sum = [Double](repeating: 0, count: m * n)
                    for i in 0..<count {
                        let product = referenceMatmul(Array(a[(i * m * k)...].prefix(m * k)), Array(b[(i * k * n)...].prefix(k * n)),
                                                      m: m, n: n, k: k, ta: ta, tb: tb, bias: nil, activation: nil, previous: nil)
                        for j in sum.indices { sum[j] += product[j] }
                    }
                    let expected = sum.enumerated().map { max(0, $0.element + Double(bias[$0.offset % n])) }
                    expectClose(try c.toArray(), expected, rtol: 1e-4, atol: 1e-4,
                                "\(EW.path(kernels)) summed \(count) \(ta)\(tb) \(m)×\(n)×\(k)")
                }
            }
            let c = try device.buffer(Float.self, count: 4)
            #expect(throws: ShapeError.self) {
                try kernels.matmul(device.buffer([Float](repeating: 1, count: 12)), device.buffer([Float](repeating: 1, count: 12)),
                                   into: c, m: 2, n: 2, k: 3, accumulate: true, batch: .sum(count: 2, strideA: 6, strideB: 6))
            }
        }
    }

    @Test("a long K (above the nt kernel's K block) runs in blocks with the same result, epilogue and accumulate included")
    func longK() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (m, n, k) in [(13, 29, 2500), (64, 40, 4099), (3, 5, 1031)] {
                let a = randomFloats(m * k, seed: 1), b = randomFloats(n * k, seed: 2), bias = randomFloats(n, seed: 3)
                let previous = randomFloats(m * n, seed: 4)
                for (activation, accumulate) in [(Activation?.none, false), (.relu, false), (.tanh, false), (nil, true)] {
                    let c = try device.buffer(previous)
                    try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeB: true,
                                       accumulate: accumulate, bias: accumulate ? nil : device.buffer(bias), activation: activation)
                    expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: false, tb: true,
                                                                 bias: accumulate ? nil : bias, activation: activation,
                                                                 previous: accumulate ? previous : nil),
                                rtol: 1e-4, atol: 1e-4, "\(EW.path(kernels)) nt \(m)×\(n)×\(k) \(String(describing: activation)) accumulate \(accumulate)")
                }
            }
        }
    }

    @Test("GELU has one accurate form: element-wise and in the epilogue, against Double from -10 to 10")
    func geluAccuracy() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let xs = (0...2000).map { Float(-10 + Double($0) / 100) }
            let expected = xs.map { referenceActivation(.gelu, Double($0)) }
            let y = try device.buffer(Float.self, count: xs.count)
            try kernels.activation(.gelu, device.buffer(xs), into: y)
            // Relative to the value: the negative tail (GELU(-10) ≈ -7.6e-23) keeps 5 digits, where
            // 1 + erf(x/√2) in float keeps none (it is exactly 0 below x ≈ -5.9). The error there is
            // exp(-x²/2)'s: x² rounded to float moves the exponent by up to 3e-6.
            expectClose(try y.toArray(), expected, rtol: 1e-5, atol: 1e-37, "\(EW.path(kernels)) element-wise GELU")
            // The same through the matmul epilogue: x · 1 with a 1×1 identity.
            let c = try device.buffer(Float.self, count: xs.count)
            try kernels.matmul(device.buffer(xs), device.buffer([Float(1)]), into: c, m: xs.count, n: 1, k: 1, activation: .gelu)
            expectClose(try c.toArray(), expected, rtol: 1e-5, atol: 1e-37, "\(EW.path(kernels)) epilogue GELU")
        }
    }

    @Test("backward through the fused epilogue: activation derivative from the output, and the bias gradient")
    func epilogueBackward() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            for (rows, cols) in [(1, 1), (7, 13), (128, 256), (257, 10)] {
                let g = randomFloats(rows * cols, seed: 5)
                for activation in [Activation.relu, .leakyRelu(slope: 0.2), .sigmoid, .tanh] {
                    let pre = randomFloats(rows * cols, in: -3...3, seed: 6).map(Double.init)
                    let y: [Double] = pre.map { referenceActivation(activation, $0) }
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
        for activation in [Activation.gelu, .leakyRelu(slope: -0.5)] {
            #expect(throws: ShapeError.self) {
                try kernels.linearActivationBackward(gradOutput: b, output: b, rows: 2, cols: 3, activation: activation,
                                                     into: b, biasGradient: nil)
            }
        }
    }

    @Test("a large product with rows 512 floats apart, copied to wider rows first, gives the same result as without")
    func paddedRows() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let (m, n, k) = (512, 256, 512)   // 2^26 multiply-adds, A's rows 512 floats apart
        let a = randomFloats(m * k, seed: 41), b = randomFloats(k * n, seed: 42)
        let bias = randomFloats(n, seed: 43)
        var tiles = kernels.tiles(for: MatmulShape(transposeA: false, transposeB: false, m: m, n: n, k: k))
        var results: [[Float]] = []
        for pads in [true, false] {
            tiles.padsWideRows = pads
            let c = try device.buffer(Float.self, count: m * n)
            try kernels.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, bias: device.buffer(bias),
                               activation: .relu, tiles: tiles)
            results.append(try c.toArray())
        }
        // The copy changes no arithmetic: the same bits, and the reference.
        #expect(results[0] == results[1])
        let reference = referenceMatmul(a, b, m: m, n: n, k: k, ta: false, tb: false, bias: bias, activation: .relu, previous: nil)
        expectClose(results[0], reference, rtol: 1e-4, atol: 1e-4)
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
        // A batch whose operands run past their buffers, or whose outputs overlap.
        #expect(throws: ShapeError.self) {
            try kernels.matmul(a, b, into: c, m: 2, n: 2, k: 3, batch: MatmulBatch(count: 2, strideA: 6, strideB: 0, strideC: 4))
        }
        #expect(throws: ShapeError.self) {
            try kernels.matmul(a, b, into: c, m: 1, n: 2, k: 3, batch: MatmulBatch(count: 2, strideA: 0, strideB: 0, strideC: 1))
        }
    }
}

@Suite("Packed products")
struct PackedMatmulTests {
    /// 401 · 409 · 411 ≥ 2²⁶ multiply-adds, so the product packs; no size is a multiple of a tile.
    static let (m, n, k) = (401, 409, 411)

    /// A profiling device and its CPU kernels (packing is a CPU path; a GPU stages local tiles)
    /// with tiles that pack, on any device.
    static func packingLibrary() throws -> (Device, KernelLibrary) {
        let device = try Device.open(nil, profiling: true)
        var config = KernelConfig(for: device.info, kind: .cpu)
        config.matmul.packsPanels = true
        return (device, try KernelLibrary(device: device, config: config))
    }

    /// C's rows `rows` (all columns) in Double: the host reference at the rows that matter (the
    /// first and last panels, and a stride through the rest), at a fraction of the full cost.
    static func referenceRows(_ rows: [Int], _ a: [Float], _ b: [Float], ta: Bool, tb: Bool, bias: [Float]?,
                              biasPerRow: Bool, activation: Activation?, previous: [Float]?) -> [Double] {
        var c: [Double] = []
        for i in rows {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j]) }
                if let bias { sum += Double(bias[biasPerRow ? i : j]) }
                c.append((activation.map { referenceActivation($0, sum) } ?? sum) + (previous.map { Double($0[i * n + j]) } ?? 0))
            }
        }
        return c
    }

    @Test("a large product through packed panels, in every transpose and epilogue, agrees with the float64 reference")
    func packedProducts() throws {
        let (device, kernels) = try Self.packingLibrary()
        let (m, n, k) = (Self.m, Self.n, Self.k)
        let a = randomFloats(m * k, seed: 51), b = randomFloats(k * n, seed: 52)
        let old = randomFloats(m * n, seed: 53), columnBias = randomFloats(n, seed: 54), rowBias = randomFloats(m, seed: 55)
        let rows = Array(0..<8) + Array(stride(from: 8, to: m - 8, by: 37)) + Array((m - 8)..<m)
        let cases: [(Bool, Bool, [Float]?, Bool, Activation?, Bool)] = [
            (false, false, columnBias, false, .relu, false), (false, true, rowBias, true, .tanh, false),
            (true, false, rowBias, true, nil, true), (true, true, columnBias, false, .leakyRelu(slope: 0.1), true),
        ]
        /// A row-major matrix stored with rows `pad` floats wider (the padding NaN: never read).
        func widened(_ x: [Float], rows: Int, cols: Int, pad: Int) -> [Float] {
            (0..<rows).flatMap { r in x[(r * cols)..<(r * cols + cols)] + [Float](repeating: .nan, count: pad) }
        }
        for (index, (ta, tb, bias, perRow, activation, accumulate)) in cases.enumerated() {
            device.queue.profiler.reset()
            let c = try device.buffer(old)
            // Every other case reads A and B from rows wider than the matrices.
            let (padA, padB) = index % 2 == 1 ? (3, 5) : (0, 0)
            let (aRows, aCols) = ta ? (k, m) : (m, k), (bRows, bCols) = tb ? (n, k) : (k, n)
            try kernels.matmul(device.buffer(widened(a, rows: aRows, cols: aCols, pad: padA)),
                               device.buffer(widened(b, rows: bRows, cols: bCols, pad: padB)), into: c, m: m, n: n, k: k,
                               transposeA: ta, transposeB: tb, accumulate: accumulate,
                               bias: try bias.map { try device.buffer($0) }, biasPerRow: perRow, activation: activation,
                               lda: aCols + padA, ldb: bCols + padB)
            let launched = Set(device.queue.profiler.summary().map(\.name))
            #expect(launched == ["matmul_pack", "matmul_packed"], "\(ta ? "t" : "n")\(tb ? "t" : "n") ran \(launched)")
            let got = try c.toArray()
            let sampled = rows.flatMap { i in got[(i * n)..<(i * n + n)] }
            expectClose(sampled, Self.referenceRows(rows, a, b, ta: ta, tb: tb, bias: bias, biasPerRow: perRow,
                                                    activation: activation, previous: accumulate ? old : nil),
                        rtol: 1e-4, atol: 1e-4, "\(ta ? "t" : "n")\(tb ? "t" : "n") packed")
        }
    }

    @Test("packing is for large products with a tile each way: smaller ones and summed batches run unpacked")
    func packingThreshold() throws {
        let (device, kernels) = try Self.packingLibrary()
        // Just below 2²⁶ multiply-adds; small; above it but narrower than a tile; a summed batch
        // of products that would each pack.
        for (m, n, k, batch) in [(127, 1056, 500, MatmulBatch.single), (64, 64, 64, .single), (2, 4096, 8193, .single),
                                 (512, 256, 512, .sum(count: 2, strideA: 512 * 512, strideB: 512 * 256))] {
            device.queue.profiler.reset()
            let count = batch.sums ? batch.count : 1
            let a = try device.buffer(randomFloats(count * m * k, seed: 61)), b = try device.buffer(randomFloats(count * k * n, seed: 62))
            try kernels.matmul(a, b, into: try device.buffer(Float.self, count: m * n), m: m, n: n, k: k, batch: batch)
            let launched = device.queue.profiler.summary().map(\.name)
            #expect(!launched.contains("matmul_packed"), "\(m)×\(n)×\(k) packed")
        }
    }

    @Test("the rule table packs large products on AVX2, where it was measured, and not elsewhere untuned")
    func packingRule() {
        func cpu(_ width: Int) -> KernelConfig { KernelConfig(for: ConvolutionKernelTests.cpu(width: width, localMemory: 1 << 20)) }
        #expect(cpu(8).matmul.packsPanels)
        #expect(!cpu(16).matmul.packsPanels && !cpu(4).matmul.packsPanels)
        #expect(cpu(8).matmul.summary(kind: .cpu).hasSuffix(" packed"))
    }
}
