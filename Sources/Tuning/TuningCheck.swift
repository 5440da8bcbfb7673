import KilnDevice
import KilnKernels

/// The check every candidate passes before it is timed: its products against a float64 reference
/// computed on the host, in every transpose, on sizes that are no multiple of any tile (edges,
/// the small kernels, a K longer than the dot kernel's block and than every K block the tuner
/// tries, batches, row strides wider than the matrices, accumulation, the bias and activation
/// epilogue, and for tiles that pack, products large enough to pack).
public enum TuningCheck {
    /// One checked product: C [m, n] = op(A)·op(B) with the transposes, for each of `count`
    /// products, with bias and ReLU when `epilogue` is set, added to C's old values with
    /// `accumulate`; A's rows and C's rows `padA` and `padC` floats wider than the matrices.
    public struct Case: Sendable {
        public var m: Int, n: Int, k: Int, ta: Bool, tb: Bool
        public var count = 1, epilogue = false, accumulate = false, padA = 0, padC = 0
        /// Whether the case is run only for tiles that pack panels: a product large enough to pack
        /// (`KernelLibrary.largeProduct`), whose host reference costs a fraction of a second.
        public var packsOnly = false

        public init(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, count: Int = 1, epilogue: Bool = false,
                    accumulate: Bool = false, padA: Int = 0, padC: Int = 0) {
            (self.m, self.n, self.k, self.ta, self.tb, self.count, self.epilogue) = (m, n, k, ta, tb, count, epilogue)
            (self.accumulate, self.padA, self.padC) = (accumulate, padA, padC)
        }

        var variant: String { (ta ? "t" : "n") + (tb ? "t" : "n") }
        /// Row stride and size of one stored A, and of one C.
        var lda: Int { (ta ? m : k) + padA }
        var aSize: Int { (ta ? k : m) * lda }
        var ldc: Int { n + padC }
        var cSize: Int { m * ldc }
    }

    /// The cases, by variant.
    public static let cases: [Case] = {
        var cases: [Case] = []
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            cases.append(Case(m: 37, n: 53, k: 61, ta: ta, tb: tb, epilogue: !ta))
            cases.append(Case(m: 130, n: 150, k: 70, ta: ta, tb: tb))
            cases.append(Case(m: 5, n: 7, k: 9, ta: ta, tb: tb))
            cases.append(Case(m: 29, n: 67, k: 11, ta: ta, tb: tb, count: 3))
            cases.append(Case(m: 45, n: 66, k: 600, ta: ta, tb: tb))
            cases.append(Case(m: 23, n: 50, k: 31, ta: ta, tb: tb, epilogue: true, accumulate: true, padA: 5, padC: 3))
        }
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // 401 · 409 · 411 ≥ 2²⁶ multiply-adds: through packed panels, partial panels both ways.
            var large = Case(m: 401, n: 409, k: 411, ta: ta, tb: tb, epilogue: ta == tb, accumulate: ta != tb,
                             padA: ta ? 0 : 3, padC: tb ? 5 : 0)
            large.packsOnly = true
            cases.append(large)
        }
        cases.append(Case(m: 19, n: 21, k: 1100, ta: false, tb: true))
        cases.append(Case(m: 41, n: 70, k: 23, ta: false, tb: false, count: 2))
        return cases
    }()

    /// The first case of `variant` (`nn`, `nt`, `tn` or `tt`) where `tiles` disagree with the
    /// reference, described, or nil when all agree.
    /// A case agrees when every element is within 1e-4 of the sum of the |products| it adds up
    /// (float32 rounding over k terms stays far inside; a wrong tile edge does not).
    public static func products(_ library: KernelLibrary, tiles: MatmulConfig, variant: String) throws -> String? {
        let device = library.device
        for (index, c) in cases.enumerated() where c.variant == variant && (tiles.packsPanels || !c.packsOnly) {
            let a = TuningData.values(c.count * c.aSize, seed: UInt64(11 + index))
            let b = TuningData.values(c.count * c.k * c.n, seed: UInt64(101 + index))
            let bias = TuningData.values(c.n, seed: 7)
            let old = TuningData.values(c.count * c.cSize, seed: UInt64(211 + index))
            let (ab, bb, biasBuffer, cb) = (try device.buffer(a), try device.buffer(b), try device.buffer(bias), try device.buffer(old))
            let batch: MatmulBatch = c.count > 1 ? MatmulBatch(count: c.count, strideA: c.aSize, strideB: c.k * c.n, strideC: c.cSize) : .single
            try library.matmul(ab, bb, into: cb, m: c.m, n: c.n, k: c.k, transposeA: c.ta, transposeB: c.tb,
                               accumulate: c.accumulate, bias: c.epilogue ? biasBuffer : nil,
                               activation: c.epilogue ? .relu : nil, lda: c.lda, ldc: c.ldc, batch: batch, tiles: tiles)
            if let mismatch = verify(c, a: a, b: b, bias: bias, old: old, got: try cb.toArray()) { return mismatch }
        }
        return nil
    }

    /// Why `got` (C as stored, `old` before the product) is not `case`'s product of `a` and `b`
    /// (with `bias` when the case has the epilogue), or nil when every element is within tolerance
    /// (the padding of C's rows included: it must keep its old values).
    public static func verify(_ c: Case, a: [Float], b: [Float], bias: [Float], old: [Float], got: [Float]) -> String? {
        guard got.count == c.count * c.cSize, old.count == got.count else {
            return "\(got.count) results for \(c.count * c.cSize) stored outputs"
        }
        for p in 0..<c.count {
            for i in 0..<c.m {
                for j in 0..<c.ldc {
                    let at = p * c.cSize + i * c.ldc + j
                    var expected = Double(old[at]), magnitude = abs(expected)
                    if j < c.n {
                        var sum = 0.0
                        for q in 0..<c.k {
                            let x = Double(a[p * c.aSize + (c.ta ? q * c.lda + i : i * c.lda + q)])
                            let y = Double(b[p * c.k * c.n + (c.tb ? j * c.k + q : q * c.n + j)])
                            sum += x * y
                            magnitude += abs(x * y)
                        }
                        if c.epilogue { sum = max(sum + Double(bias[j]), 0); magnitude += abs(Double(bias[j])) }
                        expected = c.accumulate ? expected + sum : sum
                    }
                    let value = Double(got[at])
                    guard abs(value - expected) <= 1e-4 * magnitude + 1e-6 else {
                        return "\(c.variant) \(c.m)x\(c.k)x\(c.n)\(c.count > 1 ? " batch \(c.count)" : "")\(c.accumulate ? " accumulate" : ""): C[\(i), \(j)] is \(value), the reference \(expected)"
                    }
                }
            }
        }
        return nil
    }
}

/// The check of a convolution candidate: the forward pass, the weight gradient and the input
/// gradient of a small batch at the shape of the CNN's second layer, against the same computed
/// through im2col columns and the rule table's products (whose kernels the matmul tests check
/// against float64).
struct ConvolutionCheck {
    let window: WindowGeometry
    let o = 64
    let x: Buffer<Float>, w: Buffer<Float>, bias: Buffer<Float>, dy: Buffer<Float>

    init(device: Device) throws {
        window = try WindowGeometry(samples: 3, channels: 32, height: 14, width: 14, kernel: (3, 3), padding: (1, 1))
        x = try device.buffer(TuningData.values(window.inputCount, seed: 31))
        w = try device.buffer(TuningData.values(o * window.patchSize, seed: 32))
        bias = try device.buffer(TuningData.values(o, seed: 33))
        dy = try device.buffer(TuningData.values(window.samples * o * window.outputPlane, seed: 34))
    }

    /// The three results of `library` (staged when it stages this window).
    private func results(_ library: KernelLibrary, staged: Bool) throws -> [[Float]] {
        let device = library.device
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        let y = try device.buffer(Float.self, count: n * o * p), dw = try device.buffer(Float.self, count: o * ckk)
        let dx = try device.buffer(Float.self, count: window.inputCount)
        let columns = staged ? nil : try device.buffer(Float.self, count: n * ckk * p)
        try library.convolutionForward(x, weight: w, bias: bias, window, outChannels: o, activation: .relu, columns: columns, into: y)
        try library.convolutionWeightGradient(gradOutput: dy, input: x, columns: columns, window, outChannels: o, into: dw)
        try library.convolutionInputGradient(gradOutput: dy, weight: w, window, outChannels: o, into: dx)
        return [try y.toArray(), try dw.toArray(), try dx.toArray()]
    }

    /// Why `library`'s convolutions disagree with `reference`'s im2col path, or nil.
    func mismatch(_ library: KernelLibrary, reference: KernelLibrary) throws -> String? {
        var unstaged = reference.config
        unstaged.stagesConvolutionColumns = false
        let expected = try results(try KernelLibrary(device: reference.device, config: unstaged), staged: false)
        let got = try results(library, staged: library.convolutionStagesColumns(window, outChannels: o))
        for (name, (a, b)) in zip(["forward", "weight gradient", "input gradient"], zip(got, expected)) {
            guard a.count == b.count else { return "\(name): \(a.count) values for \(b.count)" }
            for i in a.indices where !(abs(a[i] - b[i]) <= 1e-3 + 1e-4 * abs(b[i])) {
                return "\(name)[\(i)] is \(a[i]), the im2col path gives \(b[i])"
            }
        }
        return nil
    }
}
