import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// Philox-4x32-10 on the host, written from the published algorithm, with Kiln's stream layout
/// (see `Philox`): the reference the device kernels must match bit for bit.
enum PhiloxReference {
    /// One Philox-4x32-10 block.
    static func block(_ counter: [UInt32], key: [UInt32]) -> [UInt32] {
        var (c0, c1, c2, c3) = (counter[0], counter[1], counter[2], counter[3])
        var (k0, k1) = (key[0], key[1])
        for round in 0..<10 {
            if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
            let p0 = UInt64(0xD251_1F53) * UInt64(c0), p1 = UInt64(0xCD9E_8D57) * UInt64(c2)
            (c0, c1, c2, c3) = (UInt32(p1 >> 32) ^ c1 ^ k0, UInt32(truncatingIfNeeded: p1),
                                UInt32(p0 >> 32) ^ c3 ^ k1, UInt32(truncatingIfNeeded: p0))
        }
        return [c0, c1, c2, c3]
    }

    /// Words `0 ..< count` of stream `(seed, offset)` from block `firstBlock`.
    static func words(_ count: Int, seed: UInt64, offset: UInt64, firstBlock: UInt64 = 0) -> [UInt32] {
        let key = [UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)]
        var out: [UInt32] = []
        out.reserveCapacity(count + 3)
        var b: UInt64 = 0
        while out.count < count {
            let block = firstBlock &+ b
            out += Self.block([UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                               UInt32(truncatingIfNeeded: offset), UInt32(truncatingIfNeeded: offset >> 32)], key: key)
            b += 1
        }
        return Array(out.prefix(count))
    }

    /// `rand_uniform_f32`: one fused multiply-add, clamped below `high`.
    static func uniform(_ count: Int, low: Float, high: Float, seed: UInt64, offset: UInt64) -> [Float] {
        words(count, seed: seed, offset: offset).map { w in
            let v = low.addingProduct(high - low, Philox.unit(w))
            return v >= high ? high.nextDown : v
        }
    }

    /// `rand_normal_f32` in double (Box–Muller on word pairs).
    static func normal(_ count: Int, mean: Float, std: Float, seed: UInt64, offset: UInt64) -> [Double] {
        let w = words(count + 1, seed: seed, offset: offset)
        return (0..<count).map { i in
            let j = i & ~1
            let u1 = (Double(w[j] >> 8) + 1) * 0x1p-24, u2 = Double(w[j + 1] >> 8) * 0x1p-24
            let r = (-2 * log(u1)).squareRoot()
            let z = i % 2 == 0 ? r * cos(2 * .pi * u2) : r * sin(2 * .pi * u2)
            return Double(mean) + Double(std) * z
        }
    }
}

func meanAndStd(_ values: [Float]) -> (Double, Double) {
    let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
    let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)
    return (mean, variance.squareRoot())
}

@Suite("Philox random numbers and dropout")
struct RandomTests {
    @Test("the host Philox-4x32-10 matches the Random123 known answers")
    func hostKnownAnswers() {
        #expect(PhiloxReference.block([0, 0, 0, 0], key: [0, 0]) == [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        #expect(PhiloxReference.block([.max, .max, .max, .max], key: [.max, .max])
                == [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        #expect(PhiloxReference.block([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], key: [0xa409_3822, 0x299f_31d0])
                == [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    @Test("the device generator gives the Random123 known answers", arguments: [
        // (seed, offset, block) <- key (k0, k1), counter (c0, c1, c2, c3)
        (UInt64(0), UInt64(0), UInt64(0), [UInt32(0x6627_e8d5), 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
        (UInt64.max, UInt64.max, UInt64.max, [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]),
        (0x299f_31d0_a409_3822, 0x0370_7344_1319_8a2e, 0x85a3_08d3_243f_6a88, [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]),
    ])
    func deviceKnownAnswers(seed: UInt64, offset: UInt64, block: UInt64, expected: [UInt32]) throws {
        let kernels = try TestDevice.kernels()
        let out = try kernels.device.buffer(UInt32.self, count: 8)
        try kernels.philoxBits(out, seed: seed, offset: offset, firstBlock: block)
        let words = try out.toArray()
        #expect(Array(words.prefix(4)) == expected)
        // The next block follows, wrapping at 2^64.
        #expect(Array(words.suffix(4)) == Array(PhiloxReference.words(8, seed: seed, offset: offset, firstBlock: block).suffix(4)))
    }

    @Test("raw words match the host reference, across the 2^32 block carry", arguments: awkwardSizes)
    func bitsMatchReference(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let out = try kernels.device.buffer(UInt32.self, count: count)
        let first: UInt64 = 0xFFFF_FFF0
        try kernels.philoxBits(out, seed: 0x1234_5678_9ABC_DEF0, offset: 77, firstBlock: first)
        #expect(try out.toArray() == PhiloxReference.words(count, seed: 0x1234_5678_9ABC_DEF0, offset: 77, firstBlock: first))
    }

    @Test("uniform fills match the host bit for bit and stay in [low, high)", arguments: awkwardSizes)
    func uniformMatchesReference(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let out = try kernels.device.buffer(Float.self, count: count)
        for (low, high, seed, offset) in [(Float(0), Float(1), UInt64(1), UInt64(0)), (-2, 3, 99, 5), (1e4, 1e4 + 1, 7, 1)] {
            try kernels.randomUniform(out, low: low, high: high, seed: seed, offset: offset)
            let values = try out.toArray()
            let expected = PhiloxReference.uniform(count, low: low, high: high, seed: seed, offset: offset)
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "[\(low), \(high)) seed \(seed)")
            #expect(values.allSatisfy { $0 >= low && $0 < high })
        }
    }

    @Test("uniform and normal fills have the right mean and spread")
    func moments() throws {
        let kernels = try TestDevice.kernels()
        let n = 1 << 17
        let out = try kernels.device.buffer(Float.self, count: n)
        try kernels.randomUniform(out, low: -1, high: 3, seed: 2024, offset: 3)
        let (um, us) = meanAndStd(try out.toArray())
        // Mean of U(-1, 3) is 1, std 4 / sqrt(12); the mean's own std is std / sqrt(n).
        #expect(abs(um - 1) < 5 * (4 / 12.0.squareRoot()) / Double(n).squareRoot())
        #expect(abs(us - 4 / 12.0.squareRoot()) < 0.01)
        try kernels.randomNormal(out, mean: 2, std: 0.5, seed: 2024, offset: 4)
        let (nm, ns) = meanAndStd(try out.toArray())
        #expect(abs(nm - 2) < 5 * 0.5 / Double(n).squareRoot())
        #expect(abs(ns - 0.5) < 0.005)
    }

    @Test("normal fills match the host Box–Muller", arguments: awkwardSizes)
    func normalMatchesReference(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let out = try kernels.device.buffer(Float.self, count: count)
        try kernels.randomNormal(out, mean: -1, std: 3, seed: 31337, offset: 9)
        expectClose(try out.toArray(), PhiloxReference.normal(count, mean: -1, std: 3, seed: 31337, offset: 9),
                    rtol: 1e-5, atol: 3e-5, "normal n=\(count)")
    }

    @Test("streams are reproducible for a (seed, offset) and differ for another")
    func reproducible() throws {
        let kernels = try TestDevice.kernels()
        let a = try kernels.device.buffer(Float.self, count: 257), b = try kernels.device.buffer(Float.self, count: 257)
        try kernels.randomUniform(a, seed: 5, offset: 0)
        try kernels.randomUniform(b, seed: 5, offset: 0)
        let first = try a.toArray()
        #expect(first == (try b.toArray()))
        try kernels.randomUniform(b, seed: 6, offset: 0)
        #expect(zip(first, try b.toArray()).filter { $0 == $1 }.count < 3)
        try kernels.randomUniform(b, seed: 5, offset: 1)
        #expect(zip(first, try b.toArray()).filter { $0 == $1 }.count < 3)
    }

    @Test("random launchers reject bad arguments before enqueuing")
    func randomErrors() throws {
        let kernels = try TestDevice.kernels()
        let out = try kernels.device.buffer(Float.self, count: 4)
        #expect(throws: ShapeError.self) { try kernels.randomUniform(out, low: 1, high: 1, seed: 0) }
        #expect(throws: ShapeError.self) { try kernels.randomUniform(out, low: 0, high: .infinity, seed: 0) }
        #expect(throws: ShapeError.self) { try kernels.randomNormal(out, std: -1, seed: 0) }
    }

    // MARK: Dropout

    @Test("dropout keeps exactly the elements whose uniform is >= p, scaled by 1/(1-p)", arguments: awkwardSizes)
    func dropoutMatchesReference(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let xs = randomFloats(count, seed: UInt64(count))
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: count)
        let y2 = try kernels.device.buffer(Float.self, count: count)
        let p: Float = 0.3, scale = Float(1 / (1 - 0.3 as Double))
        try kernels.dropout(x, into: y, p: p, seed: 11, offset: 2)
        let keep = PhiloxReference.words(count, seed: 11, offset: 2).map { Philox.unit($0) >= p }
        let expected = zip(xs, keep).map { $1 ? $0 * scale : 0 }
        let ys = try y.toArray()
        #expect(ys == expected)
        // Grouped dropout with groups of one is the same map; in place too.
        try kernels.dropout(x, into: y2, p: p, seed: 11, offset: 2, group: 1)
        #expect(try y2.toArray() == ys)
        try y2.copy(from: x)
        try kernels.dropout(y2, into: y2, p: p, seed: 11, offset: 2)
        #expect(try y2.toArray() == ys)
    }

    @Test("grouped dropout (Dropout2d) keeps or drops whole runs of `group` elements, from element group·j's draw",
          arguments: [(3, 7), (10, 49), (4, 1)])
    func groupedDropout(groups: Int, group: Int) throws {
        let kernels = try TestDevice.kernels()
        let count = groups * group
        let xs = randomFloats(count, in: 0.5...1.5, seed: 5)
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: count)
        let p: Float = 0.5, scale = Float(2)
        try kernels.dropout(x, into: y, p: p, seed: 21, offset: 6, group: group)
        let keep = PhiloxReference.words(groups, seed: 21, offset: 6).map { Philox.unit($0) >= p }
        let expected = (0..<count).map { keep[$0 / group] ? xs[$0] * scale : 0 }
        #expect(try y.toArray() == expected)
    }

    @Test("dropout is reproducible, seed-dependent, and keeps about 1 - p of the elements")
    func dropoutStatistics() throws {
        let kernels = try TestDevice.kernels()
        let n = 100_000
        let x = try kernels.device.buffer([Float](repeating: 1, count: n))
        let a = try kernels.device.buffer(Float.self, count: n), b = try kernels.device.buffer(Float.self, count: n)
        for p in [Float(0.1), 0.5, 0.9] {
            try kernels.dropout(x, into: a, p: p, seed: 42, offset: 0)
            try kernels.dropout(x, into: b, p: p, seed: 42, offset: 0)
            let first = try a.toArray()
            #expect(first == (try b.toArray()), "same seed, p \(p)")
            let kept = Double(first.filter { $0 != 0 }.count) / Double(n)
            let sigma = (Double(p) * Double(1 - p) / Double(n)).squareRoot()
            #expect(abs(kept - Double(1 - p)) < 5 * sigma, "kept \(kept) at p \(p)")
            try kernels.dropout(x, into: b, p: p, seed: 43, offset: 0)
            let other = try b.toArray()
            let agree = Double(zip(first, other).filter { ($0 != 0) == ($1 != 0) }.count) / Double(n)
            // Independent masks agree on p^2 + (1-p)^2 of the elements, never on all.
            let expectedAgree = Double(p * p + (1 - p) * (1 - p))
            #expect(abs(agree - expectedAgree) < 0.01, "other seed, p \(p)")
        }
    }

    @Test("dropout backward applies the forward mask and scale to dy", arguments: [7, 1000])
    func dropoutBackward(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let xs = randomFloats(count, in: 0.5...1.5, seed: 3), dys = randomFloats(count, seed: 4)
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: count)
        let dy = try kernels.device.buffer(dys), dx = try kernels.device.buffer(Float.self, count: count)
        let p: Float = 0.25, scale = Float(1 / (1 - 0.25 as Double))
        try kernels.dropout(x, into: y, p: p, seed: 8, offset: 8)
        try kernels.dropout(dy, into: dx, p: p, seed: 8, offset: 8)
        let ys = try y.toArray(), dxs = try dx.toArray()
        // y = x * d(y)/dx for every element: dx / dy equals y / x, the mask times the scale.
        for i in 0..<count {
            #expect(dxs[i] == (ys[i] != 0 ? dys[i] * scale : 0), "element \(i)")
        }
    }

    @Test("dropout with p = 0 is the identity and with p = 1 gives zeros")
    func dropoutEdges() throws {
        let kernels = try TestDevice.kernels()
        let xs = randomFloats(129, seed: 9)
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: 129)
        try kernels.dropout(x, into: y, p: 0, seed: 1, offset: 0)
        #expect(try y.toArray() == xs)
        try kernels.dropout(x, into: y, p: 1, seed: 1, offset: 0)
        #expect(try y.toArray() == [Float](repeating: 0, count: 129))
        #expect(throws: ShapeError.self) { try kernels.dropout(x, into: y, p: 1.5, seed: 1, offset: 0) }
        let short = try kernels.device.buffer(Float.self, count: 128)
        #expect(throws: ShapeError.self) { try kernels.dropout(x, into: short, p: 0.5, seed: 1, offset: 0) }
    }
}
