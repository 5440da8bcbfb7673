import KilnDevice
import KilnKernels

/// The check every candidate passes before it is timed: its products against a float64 reference
/// computed on the host, in every transpose, on sizes that are no multiple of any tile (edges,
/// the small kernels, a K longer than the dot kernel's block, batches, the bias and activation
/// epilogue).
public enum TuningCheck {
    /// One checked product: C [m, n] = op(A)·op(B) with the transposes, for each of `count`
    /// products, with bias and ReLU when `epilogue` is set.
    public struct Case: Sendable {
        public var m: Int, n: Int, k: Int, ta: Bool, tb: Bool
        public var count = 1, epilogue = false

        public init(m: Int, n: Int, k: Int, ta: Bool, tb: Bool, count: Int = 1, epilogue: Bool = false) {
            (self.m, self.n, self.k, self.ta, self.tb, self.count, self.epilogue) = (m, n, k, ta, tb, count, epilogue)
        }
    }

    /// The cases, by variant.
    public static let cases: [Case] = {
        var cases: [Case] = []
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            cases.append(Case(m: 37, n: 53, k: 61, ta: ta, tb: tb, epilogue: !ta))
            cases.append(Case(m: 130, n: 150, k: 70, ta: ta, tb: tb))
            cases.append(Case(m: 5, n: 7, k: 9, ta: ta, tb: tb))
            cases.append(Case(m: 29, n: 67, k: 11, ta: ta, tb: tb, count: 3))
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
        for (index, c) in cases.enumerated() where (c.ta ? "t" : "n") + (c.tb ? "t" : "n") == variant {
            let a = TuningData.values(c.count * c.m * c.k, seed: UInt64(11 + index))
            let b = TuningData.values(c.count * c.k * c.n, seed: UInt64(101 + index))
            let bias = TuningData.values(c.n, seed: 7)
            let (ab, bb, biasBuffer) = (try device.buffer(a), try device.buffer(b), try device.buffer(bias))
            let cb = try device.buffer(Float.self, count: c.count * c.m * c.n)
            let batch: MatmulBatch = c.count > 1 ? MatmulBatch(count: c.count, strideA: c.m * c.k, strideB: c.k * c.n, strideC: c.m * c.n) : .single
            try library.matmul(ab, bb, into: cb, m: c.m, n: c.n, k: c.k, transposeA: c.ta, transposeB: c.tb,
                               bias: c.epilogue ? biasBuffer : nil, activation: c.epilogue ? .relu : nil,
                               batch: batch, tiles: tiles)
            if let mismatch = verify(c, a: a, b: b, bias: bias, got: try cb.toArray()) { return mismatch }
        }
        return nil
    }

    /// Why `got` is not `case`'s product of `a` and `b` (with `bias` when the case has the
    /// epilogue), or nil when every element is within tolerance.
    public static func verify(_ c: Case, a: [Float], b: [Float], bias: [Float], got: [Float]) -> String? {
        let outputs = c.count
        guard got.count == outputs * c.m * c.n else { return "\(got.count) results for \(outputs * c.m * c.n) outputs" }
        for output in 0..<outputs {
            for i in 0..<c.m {
                for j in 0..<c.n {
                    var sum = 0.0, magnitude = 0.0
                    let p = output
                    for q in 0..<c.k {
                        let x = Double(a[p * c.m * c.k + (c.ta ? q * c.m + i : i * c.k + q)])
                        let y = Double(b[p * c.k * c.n + (c.tb ? j * c.k + q : q * c.n + j)])
                        sum += x * y
                        magnitude += abs(x * y)
                    }
                    if c.epilogue { sum = max(sum + Double(bias[j]), 0); magnitude += abs(Double(bias[j])) }
                    let value = Double(got[output * c.m * c.n + i * c.n + j])
                    guard abs(value - sum) <= 1e-4 * magnitude + 1e-6 else {
                        let what = (c.ta ? "t" : "n") + (c.tb ? "t" : "n")
                        return "\(what) \(c.m)x\(c.k)x\(c.n)\(c.count > 1 ? " batch \(c.count)" : ""): C[\(i), \(j)] is \(value), the reference \(sum)"
                    }
                }
            }
        }
        return nil
    }
}
