import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// A window case: N, C, H, W, kernel, stride, padding, dilation (rows, columns).
struct WindowCase: CustomStringConvertible, Sendable {
    let n: Int, c: Int, h: Int, w: Int, k: (Int, Int), s: (Int, Int), p: (Int, Int), d: (Int, Int)
    var description: String { "[\(n), \(c), \(h), \(w)] k\(k) s\(s) p\(p) d\(d)" }
    func geometry() throws -> WindowGeometry {
        try WindowGeometry(samples: n, channels: c, height: h, width: w, kernel: k, stride: s, padding: p, dilation: d)
    }
}

/// Kernel sizes 1, 3, 5 and a rectangle; strides 1, 2, 3; paddings 0, 1, 2; dilations 1, 2; odd
/// images; one channel and several.
let convolutionCases: [WindowCase] = [
    WindowCase(n: 1, c: 1, h: 5, w: 5, k: (1, 1), s: (1, 1), p: (0, 0), d: (1, 1)),
    WindowCase(n: 2, c: 3, h: 7, w: 9, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1)),
    WindowCase(n: 2, c: 3, h: 11, w: 10, k: (5, 5), s: (2, 2), p: (2, 2), d: (1, 1)),
    WindowCase(n: 1, c: 2, h: 9, w: 13, k: (3, 3), s: (3, 3), p: (0, 0), d: (1, 1)),
    WindowCase(n: 2, c: 4, h: 13, w: 7, k: (3, 3), s: (2, 2), p: (1, 1), d: (2, 2)),
    WindowCase(n: 3, c: 1, h: 8, w: 8, k: (5, 5), s: (1, 1), p: (2, 2), d: (2, 2)),
    WindowCase(n: 2, c: 2, h: 9, w: 10, k: (3, 5), s: (2, 1), p: (1, 2), d: (1, 1)),
    WindowCase(n: 4, c: 32, h: 14, w: 14, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1)),
]

/// Input element (n, c, ih, iw), 0 outside the image (the zero padding).
func padded(_ x: [Float], _ t: WindowCase, _ n: Int, _ c: Int, _ ih: Int, _ iw: Int) -> Double {
    guard ih >= 0, ih < t.h, iw >= 0, iw < t.w else { return 0 }
    return Double(x[((n * t.c + c) * t.h + ih) * t.w + iw])
}

@Suite("Convolution and pooling kernels")
struct ConvolutionKernelTests {
    @Test("im2col and col2im against the Double reference, on both paths", arguments: convolutionCases)
    func im2colAndCol2im(t: WindowCase) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let g = try t.geometry()
            let (oh, ow) = (g.outputHeight, g.outputWidth)
            let x = randomFloats(t.n * t.c * t.h * t.w, seed: 3)
            let columns = t.n * oh * ow
            let cols = try device.buffer(Float.self, count: g.patchSize * columns)
            try kernels.im2col(device.buffer(x), g, into: cols)
            var expected = [Double](repeating: 0, count: g.patchSize * columns)
            for c in 0..<t.c { for i in 0..<t.k.0 { for j in 0..<t.k.1 {
                let row = (c * t.k.0 + i) * t.k.1 + j
                for n in 0..<t.n { for a in 0..<oh { for b in 0..<ow {
                    expected[(n * g.patchSize + row) * (oh * ow) + a * ow + b] =
                        padded(x, t, n, c, a * t.s.0 - t.p.0 + i * t.d.0, b * t.s.1 - t.p.1 + j * t.d.1)
                } } }
            } } }
            #expect(try cols.toArray().map(Double.init) == expected, "\(EW.path(kernels)) im2col \(t)")
            // col2im is im2col's adjoint: <im2col(x), y> = <x, col2im(y)> for any y.
            let y = randomFloats(g.patchSize * columns, seed: 4)
            let dx = try device.buffer(Float.self, count: x.count)
            try kernels.col2im(device.buffer(y), g, into: dx)
            let lhs = zip(expected, y).reduce(0.0) { $0 + $1.0 * Double($1.1) }
            let rhs = zip(x, try dx.toArray()).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(abs(lhs - rhs) <= 1e-4 * max(1, abs(lhs)), "\(EW.path(kernels)) col2im adjoint \(t): \(lhs) vs \(rhs)")
        }
    }

    /// The native library, the other path's, and (on a CPU) the native one with convolution staging
    /// off; where the rule table stages with the products' tiles (not AVX-512), also one whose
    /// staged tiles differ from them, as on AVX-512.
    static func convolutionLibraries() throws -> [KernelLibrary] {
        let device = try TestDevice.get()
        let native = KernelConfig(for: device.info)
        guard !native.isGPU else { return try EW.libraries() }
        var unstaged = native, distinct = native
        unstaged.stagesConvolutionColumns = false
        var extra = [try KernelLibrary(device: device, config: unstaged)]
        if native.convolution == native.matmul {
            distinct.convolution.tileRows = native.matmul.tileRows == 4 ? 6 : 4
            extra.append(try KernelLibrary(device: device, config: distinct))
        }
        return try EW.libraries() + extra
    }

    @Test("the three convolution products against the Double reference, staged and through global columns")
    func products() throws {
        var stagings: Set<Bool> = [], outerProducts: Set<Bool> = [], inputGradients: Set<Bool> = []
        for kernels in try Self.convolutionLibraries() {
            let device = kernels.device
            // (N, C, O, H, W, kernel, stride, padding, dilation): narrow and wide outputs, a stride,
            // a dilation, odd sizes, one channel.
            // (2, 32, 40, …) is wide enough both ways for the staged input gradient (a forward
            // convolution of dy into 32 outputs) on a CPU; (2, 16, 32, …) stages a dilated forward.
            for (n, c, o, h, w, k, st, pd, dl) in [(3, 2, 5, 7, 9, 3, 1, 1, 1), (3, 16, 64, 9, 10, 3, 1, 1, 1),
                                                  (2, 1, 32, 11, 6, 3, 1, 1, 1), (2, 3, 7, 9, 8, 5, 2, 2, 1),
                                                  (9, 4, 6, 8, 7, 3, 1, 2, 2), (2, 32, 40, 9, 11, 3, 1, 1, 1),
                                                  (2, 16, 32, 10, 9, 3, 1, 2, 2)] {
                let t = WindowCase(n: n, c: c, h: h, w: w, k: (k, k), s: (st, st), p: (pd, pd), d: (dl, dl))
                let g = try t.geometry()
                let (p, ckk) = (g.outputPlane, g.patchSize)
                let staged = kernels.convolutionStagesColumns(g, outChannels: o)
                stagings.insert(staged)
                if st == 1, dl == 1, pd <= k - 1 {
                    // The stride-1 input gradient: the forward convolution of dy, padded K − 1 − P.
                    inputGradients.insert(kernels.convolutionInputGradientPlan(g, outChannels: o) != nil)
                }
                if !staged && !kernels.config.isGPU {
                    outerProducts.insert(kernels.weightGradientRunsAsOuterProducts(outChannels: o, patchSize: ckk))
                }
                let x = randomFloats(n * c * h * w, seed: 1), weight = randomFloats(o * ckk, seed: 2)
                let bias = randomFloats(o, seed: 3), dy = randomFloats(n * o * p, seed: 4)
                let y = try device.buffer(Float.self, count: n * o * p), dw = try device.buffer(Float.self, count: o * ckk)
                let dx = try device.buffer(Float.self, count: x.count)
                let columns = staged ? nil : try device.buffer(Float.self, count: n * ckk * p)
                let xb = try device.buffer(x), wb = try device.buffer(weight), dyb = try device.buffer(dy)
                try kernels.convolutionForward(xb, weight: wb, bias: device.buffer(bias), g, outChannels: o, activation: .relu,
                                               columns: columns, into: y)
                try kernels.convolutionWeightGradient(gradOutput: dyb, input: xb, columns: columns, g, outChannels: o, into: dw)
                try kernels.convolutionInputGradient(gradOutput: dyb, weight: wb, g, outChannels: o, into: dx)
                var yRef = [Double](repeating: 0, count: n * o * p), dwRef = [Double](repeating: 0, count: o * ckk)
                var dxRef = [Double](repeating: 0, count: x.count)
                for s in 0..<n { for q in 0..<o { for a in 0..<g.outputHeight { for b in 0..<g.outputWidth {
                    let out = (s * o + q) * p + a * g.outputWidth + b
                    var sum = Double(bias[q])
                    for ch in 0..<c { for i in 0..<k { for j in 0..<k {
                        let (ih, iw) = (a * st - pd + i * dl, b * st - pd + j * dl)
                        let wi = ((q * c + ch) * k + i) * k + j
                        let v = padded(x, t, s, ch, ih, iw)
                        sum += Double(weight[wi]) * v
                        dwRef[wi] += Double(dy[out]) * v
                        if ih >= 0, ih < h, iw >= 0, iw < w { dxRef[((s * c + ch) * h + ih) * w + iw] += Double(dy[out]) * Double(weight[wi]) }
                    } } }
                    yRef[out] = max(0, sum)
                } } } }
                let what = "\(EW.path(kernels)) \(staged ? "staged" : "global columns") conv \(t) → \(o)"
                expectClose(try y.toArray(), yRef, rtol: 1e-4, atol: 1e-4, "\(what) forward")
                expectClose(try dw.toArray(), dwRef, rtol: 1e-4, atol: 1e-4, "\(what) weight gradient")
                expectClose(try dx.toArray(), dxRef, rtol: 1e-4, atol: 1e-4, "\(what) input gradient")
            }
        }
        // On a CPU these shapes run staged, through global columns, and the weight gradient of the
        // latter both as dot products and as outer products.
        let cpu = try !TestDevice.kernels().config.isGPU
        #expect(stagings == [false, true] || !cpu, "stagings \(stagings)")
        #expect(outerProducts == [false, true] || !cpu, "weight-gradient forms \(outerProducts)")
        // Input gradients run both staged (dy's channels at once or in chunks) and through col2im
        // (narrow ones keep the weight-gradient tile rule; the unstaged library never stages).
        #expect(inputGradients == [false, true] || !cpu, "input gradients staged \(inputGradients)")
    }

    @Test("a stride-1 input gradient too large to stage at once is staged in chunks of dy's channels")
    func chunkedInputGradient() throws {
        let device = try TestDevice.get()
        // The rule table's library (a tuning file may turn staging off).
        let kernels = try KernelLibrary(device: device, config: KernelConfig(for: device.info))
        guard !kernels.config.isGPU else { return }
        // dy's channels doubled until one sample's padded planes and columns no longer fit the
        // device's local memory (32 input channels of 7 × 6, 3 × 3, padding 1, 2 samples): two
        // equal chunks; then one channel more, for a short last chunk.
        let t = WindowCase(n: 2, c: 32, h: 7, w: 6, k: (3, 3), s: (1, 1), p: (1, 1), d: (1, 1))
        let g = try t.geometry()
        var doubled = 32
        while let plan = kernels.convolutionInputGradientPlan(g, outChannels: doubled), plan.channels == doubled,
              doubled < 1 << 16 { doubled *= 2 }
        for o in [doubled, doubled + 1] {
            let plan = try #require(kernels.convolutionInputGradientPlan(g, outChannels: o), "\(o) channels of dy")
            #expect(plan.channels < o, "one chunk of \(plan.channels) for \(o) channels")
            #expect((o % plan.channels == 0) == (o == doubled), "\(o) channels in chunks of \(plan.channels)")
            let (p, ckk, (k, _)) = (g.outputPlane, g.patchSize, t.k)
            let weight = randomFloats(o * ckk, seed: 5), dy = randomFloats(t.n * o * p, seed: 6)
            let dx = try device.buffer(Float.self, count: t.n * t.c * t.h * t.w)
            try kernels.convolutionInputGradient(gradOutput: device.buffer(dy), weight: device.buffer(weight), g, outChannels: o,
                                                 into: dx)
            var dxRef = [Double](repeating: 0, count: dx.count)
            for s in 0..<t.n { for q in 0..<o { for a in 0..<g.outputHeight { for b in 0..<g.outputWidth {
                let out = (s * o + q) * p + a * g.outputWidth + b
                for ch in 0..<t.c { for i in 0..<k { for j in 0..<k {
                    let (ih, iw) = (a - 1 + i, b - 1 + j)
                    if ih >= 0, ih < t.h, iw >= 0, iw < t.w {
                        let wi = ((q * t.c + ch) * k + i) * k + j
                        dxRef[((s * t.c + ch) * t.h + ih) * t.w + iw] += Double(dy[out]) * Double(weight[wi])
                    }
                } } }
            } } } }
            expectClose(try dx.toArray(), dxRef, rtol: 1e-4, atol: 1e-4,
                        "input gradient of \(t) → \(o), \(plan.channels) channels at a time")
        }
    }

    /// A CPU device as PoCL describes it: `width` floats per native vector, `localMemory` bytes.
    static func cpu(width: Int, localMemory: UInt64) -> DeviceInfo {
        DeviceInfo(platformIndex: 0, deviceIndex: 0, typeIndex: 0, name: "cpu", vendor: "test", platformName: "test",
                   platformVersion: "OpenCL 1.2", driverVersion: "1", type: .cpu, computeUnits: 2, maxClockMHz: 2000,
                   globalMemory: 1 << 32, maxAllocation: 1 << 30, localMemory: localMemory, localMemoryType: "Global",
                   maxWorkGroupSize: 4096, nativeFloatVectorWidth: width, openCLCVersion: "OpenCL C 1.2", fp16: false,
                   fp64: true, profiling: true, extensions: [])
    }

    @Test("the rule table stages convolutions with 8 × 2 tiles on AVX-512 and the products' tiles elsewhere")
    func convolutionRuleTiles() {
        let avx512 = KernelConfig(for: Self.cpu(width: 16, localMemory: 1 << 20))
        #expect((avx512.convolution.tileRows, avx512.convolution.vectors) == (8, 2))
        #expect((avx512.matmul.tileRows, avx512.matmul.vectors) == (8, 3))
        #expect(avx512.buildOptions.contains("-DKILN_CONV_TM=8") && avx512.buildOptions.contains("-DKILN_CONV_TNV=2"))
        let avx2 = KernelConfig(for: Self.cpu(width: 8, localMemory: 1 << 20))
        #expect(avx2.convolution == avx2.matmul)
        // nt products as a transpose and nn on AVX-512 and AVX2 (what kiln tune found); narrower
        // CPUs, never measured, keep the dot products.
        #expect(avx512.matmul.ntTransposesB && avx2.matmul.ntTransposesB)
        #expect(!KernelConfig(for: Self.cpu(width: 4, localMemory: 1 << 20)).matmul.ntTransposesB)
        #expect(avx2.buildOptions.contains("-DKILN_CONV_TM=\(avx2.matmul.tileRows)"))
    }

    @Test("the CNN's second convolution stages all three products in 1 MiB of local memory, and not in 256 KiB")
    func stagingBudget() throws {
        // conv2 of the CNN at batch 128: 32 → 64 channels, 14 × 14, 3 × 3, padding 1. Its stride-1
        // input gradient runs as the forward convolution of dy (64 channels) into 32 outputs.
        let conv2 = try WindowGeometry(samples: 128, channels: 32, height: 14, width: 14, kernel: (3, 3), padding: (1, 1))
        let inputGradient = try WindowGeometry(samples: 128, channels: 64, height: 14, width: 14, kernel: (3, 3), padding: (1, 1))
        let tiles = KernelConfig(for: Self.cpu(width: 16, localMemory: 1 << 20)).convolution
        func plan(_ window: WindowGeometry, _ o: Int, _ bytes: UInt64) -> StagingPlan? {
            StagingPlan(window, outChannels: o, tiles: tiles, vectorWidth: 16, localMemory: bytes, maxGroup: 4096, computeUnits: 2)
        }
        // Tile grids of 8 × 32 outputs (rows × two vectors of 16), the weight gradient's group of at
        // least 64 work-items, 8 groups of 16 samples (4 per core), and the samples staged at a time.
        let forward = try #require(plan(conv2, 64, 1 << 20), "conv2 with 1 MiB")
        #expect(forward.forward == [7, 8] && forward.weight == [2, 36])
        #expect(forward.groups == 8 && forward.perGroup == 16 && forward.chunk == 2)
        let backward = try #require(plan(inputGradient, 32, 1 << 20), "conv2's input gradient with 1 MiB")
        #expect(backward.forward == [7, 4] && backward.weight == [1, 72] && backward.chunk == 1)
        // Its padded planes and columns take more than half the local memory: the rule before
        // (half for the block alone) sent it through col2im.
        #expect(backward.forwardLocal.reduce(0, +) > (1 << 20) / 2)
        for (window, o) in [(conv2, 64), (inputGradient, 32)] {
            #expect(plan(window, o, 1 << 18) == nil, "\(window) → \(o) with 256 KiB")
        }
        // With AVX2's tiles in 512 KiB neither the layer nor its input gradient stages whole; the
        // input gradient alone (no weight gradient) stages dy in two chunks of 32 channels, and in
        // four of 16 in 256 KiB. Not one channel fits in 8 KiB.
        let avx2 = KernelConfig(for: Self.cpu(width: 8, localMemory: 1 << 19)).convolution
        func forwardPlan(_ bytes: UInt64) -> StagedForwardPlan? {
            StagedForwardPlan(inputGradient, outChannels: 32, tiles: avx2, vectorWidth: 8, localMemory: bytes, maxGroup: 4096)
        }
        #expect(StagingPlan(inputGradient, outChannels: 32, tiles: avx2, vectorWidth: 8, localMemory: 1 << 19, maxGroup: 4096,
                            computeUnits: 2) == nil)
        #expect(forwardPlan(1 << 19)?.channels == 32 && forwardPlan(1 << 18)?.channels == 16 && forwardPlan(1 << 13) == nil)
        #expect(forwardPlan(1 << 19)?.local == [4 * (32 * 16 * 16 + 10 * 16 + 8), 4 * 32 * 9 * 200])
        #expect(StagedForwardPlan(inputGradient, outChannels: 32, tiles: tiles, vectorWidth: 16, localMemory: 1 << 20,
                                  maxGroup: 4096)?.channels == 64)
        // A product smaller than one tile (2 outputs, fewer than the tile's rows) is not staged.
        #expect(StagedForwardPlan(inputGradient, outChannels: 2, tiles: avx2, vectorWidth: 8, localMemory: 1 << 30,
                                  maxGroup: 4096) == nil)
        // Too few output tiles for the weight gradient's outer products: one output channel, and the
        // CNN's first layer (32 outputs of 3 × 3 from one channel: staged it was slower).
        #expect(plan(try WindowGeometry(samples: 128, channels: 1, height: 28, width: 28, kernel: (3, 3), padding: (1, 1)),
                     32, 1 << 30) == nil)
        #expect(plan(conv2, 1, 1 << 30) == nil)
        // Sizes no device buffer can hold, and a forged geometry, are refused rather than trapped.
        #expect(plan(conv2, Int.max / 2, 1 << 30) == nil)
        var forged = conv2
        forged.samples = 0
        #expect(plan(forged, 64, 1 << 20) == nil)
        // Fields whose derived sizes overflow (dilation × kernel past Int): refused before they are computed.
        var huge = inputGradient
        (huge.kernel, huge.dilation) = ((4_000_000_000, 3), (4_000_000_000, 1))
        #expect(plan(huge, 32, 1 << 30) == nil)
        #expect(StagedForwardPlan(huge, outChannels: 32, tiles: avx2, vectorWidth: 8, localMemory: 1 << 30, maxGroup: 4096) == nil)
    }

    static let poolCases: [WindowCase] = [
        WindowCase(n: 2, c: 3, h: 8, w: 8, k: (2, 2), s: (2, 2), p: (0, 0), d: (1, 1)),
        WindowCase(n: 2, c: 3, h: 11, w: 13, k: (2, 2), s: (2, 2), p: (0, 0), d: (1, 1)),
        WindowCase(n: 1, c: 2, h: 7, w: 9, k: (3, 3), s: (2, 2), p: (1, 1), d: (1, 1)),
        WindowCase(n: 2, c: 1, h: 11, w: 6, k: (3, 2), s: (1, 2), p: (1, 0), d: (1, 1)),
        WindowCase(n: 1, c: 4, h: 13, w: 13, k: (5, 5), s: (3, 3), p: (2, 2), d: (1, 1)),
        // 64 planes of 7 rows of 7 windows: several rows per work-item, the last four windows overlapping.
        WindowCase(n: 8, c: 8, h: 14, w: 15, k: (2, 2), s: (2, 2), p: (0, 0), d: (1, 1)),
        // 3 planes of 25 rows on a 2-core device: 2 rows per work-item, the last block short.
        WindowCase(n: 1, c: 3, h: 51, w: 8, k: (2, 2), s: (2, 2), p: (0, 0), d: (1, 1)),
    ]

    @Test("max and average pooling, forward and backward, against the Double reference", arguments: poolCases)
    func pooling(t: WindowCase) throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            let g = try t.geometry()
            let (oh, ow) = (g.outputHeight, g.outputWidth)
            let x = EW.floatsWithTies(t.n * t.c * t.h * t.w, seed: 5)
            let dyValues = randomFloats(g.outputCount, seed: 6)
            var maxRef = [Double](), indexRef = [Int32](), avgRef = [Double]()
            var dxMax = [Double](repeating: 0, count: x.count), dxAvg = [Double](repeating: 0, count: x.count)
            for plane in 0..<(t.n * t.c) { for a in 0..<oh { for b in 0..<ow {
                var best = -Double.infinity, at = -1, sum = 0.0
                for i in 0..<t.k.0 { for j in 0..<t.k.1 {
                    let ih = a * t.s.0 - t.p.0 + i, iw = b * t.s.1 - t.p.1 + j
                    guard ih >= 0, ih < t.h, iw >= 0, iw < t.w else { continue }
                    let v = Double(x[plane * t.h * t.w + ih * t.w + iw])
                    sum += v
                    if at < 0 || v > best { best = v; at = ih * t.w + iw }
                } }
                let o = (plane * oh + a) * ow + b
                maxRef.append(best)
                indexRef.append(Int32(at))
                avgRef.append(sum / Double(t.k.0 * t.k.1))
                dxMax[plane * t.h * t.w + at] += Double(dyValues[o])
                for i in 0..<t.k.0 { for j in 0..<t.k.1 {
                    let ih = a * t.s.0 - t.p.0 + i, iw = b * t.s.1 - t.p.1 + j
                    if ih >= 0, ih < t.h, iw >= 0, iw < t.w {
                        dxAvg[plane * t.h * t.w + ih * t.w + iw] += Double(dyValues[o]) / Double(t.k.0 * t.k.1)
                    }
                } }
            } } }
            let xb = try device.buffer(x), y = try device.buffer(Float.self, count: g.outputCount)
            let indices = try device.buffer(Int32.self, count: g.outputCount)
            try kernels.maxPool(xb, g, into: y, indices: indices)
            #expect(try y.toArray().map(Double.init) == maxRef, "\(EW.path(kernels)) max pool \(t)")
            #expect(try indices.toArray() == indexRef, "\(EW.path(kernels)) max pool indices \(t)")
            let dy = try device.buffer(dyValues), dx = try device.buffer(Float.self, count: x.count)
            try kernels.maxPoolBackward(dy, indices: indices, g, into: dx)
            expectClose(try dx.toArray(), dxMax, rtol: 1e-6, atol: 1e-6, "\(EW.path(kernels)) max pool backward \(t)")
            try kernels.avgPool(xb, g, into: y)
            expectClose(try y.toArray(), avgRef, rtol: 1e-6, atol: 1e-6, "\(EW.path(kernels)) avg pool \(t)")
            try kernels.avgPoolBackward(dy, g, into: dx)
            expectClose(try dx.toArray(), dxAvg, rtol: 1e-6, atol: 1e-6, "\(EW.path(kernels)) avg pool backward \(t)")
        }
    }

    @Test("max pooling propagates NaN and the crop-and-flip augmentation moves pixels as documented")
    func nanAndAugment() throws {
        let kernels = try TestDevice.kernels(), device = kernels.device
        var x = randomFloats(16, seed: 1)
        x[5] = .nan
        let g = try WindowGeometry(samples: 1, channels: 1, height: 4, width: 4, kernel: (2, 2), stride: (2, 2))
        let y = try device.buffer(Float.self, count: 4), indices = try device.buffer(Int32.self, count: 4)
        try kernels.maxPool(device.buffer(x), g, into: y, indices: indices)
        #expect(try y.toArray()[0].isNaN && indices.toArray()[0] == 5)

        let (n, h, w, pad) = (6, 5, 7, 2)
        let images = (0..<(n * h * w)).map { Float($0 + 1) }
        let out = try device.buffer(Float.self, count: images.count)
        try kernels.augmentCropFlip(device.buffer(images), samples: n, channels: 1, height: h, width: w, pad: pad,
                                    seed: 11, offset: 3, into: out)
        let words = try device.buffer(UInt32.self, count: 4 * n)
        try kernels.philoxBits(words, seed: 11, offset: 3)
        let r = try words.toArray(), got = try out.toArray()
        for i in 0..<n {
            let dy = Int(r[4 * i] % UInt32(2 * pad + 1)) - pad, dx = Int(r[4 * i + 1] % UInt32(2 * pad + 1)) - pad
            let flip = r[4 * i + 2] >> 31 == 1
            for a in 0..<h { for b in 0..<w {
                let (ih, iw) = (a + dy, (flip ? w - 1 - b : b) + dx)
                let want: Float = ih >= 0 && ih < h && iw >= 0 && iw < w ? images[(i * h + ih) * w + iw] : 0
                #expect(got[(i * h + a) * w + b] == want, "image \(i) pixel (\(a), \(b))")
            } }
        }
    }

    @Test("window launchers reject impossible geometries and mismatched buffers")
    func errors() throws {
        #expect(throws: ShapeError.self) { try WindowGeometry(samples: 1, channels: 1, height: 2, width: 2, kernel: (3, 3)) }
        #expect(throws: ShapeError.self) { try WindowGeometry(samples: 1, channels: 1, height: 5, width: 5, kernel: (3, 3), stride: (0, 1)) }
        #expect(throws: ShapeError.self) { try WindowGeometry(samples: 1, channels: 1, height: 5, width: 5, kernel: (3, 3), padding: (-1, 0)) }
        let kernels = try TestDevice.kernels()
        let g = try WindowGeometry(samples: 1, channels: 2, height: 5, width: 5, kernel: (3, 3))
        let small = try kernels.device.buffer(Float.self, count: 10)
        #expect(throws: ShapeError.self) { try kernels.im2col(small, g, into: small) }
        #expect(throws: ShapeError.self) { try kernels.avgPool(small, g, into: small) }
    }
}
