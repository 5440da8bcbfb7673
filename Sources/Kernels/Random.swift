import KilnDevice

/// Kiln's counter-based generator: Philox-4x32-10 (Salmon et al., SC'11), stateless, so a fill
/// depends only on `(seed, offset)` and the element index, identically on every device.
///
/// Stream layout: key = (seed low 32 bits, seed high 32 bits); the counter of block `b` is
/// (b low, b high, offset low, offset high); element `i` of a fill is word `i % 4` of block
/// `i / 4`. A word `w` maps to the float `u = Float(w >> 8) * 0x1p-24`, exactly, in `[0, 1)`.
/// Take a fresh `offset` (for example a step counter) for each call that needs fresh numbers.
public enum Philox {
    /// The two 32-bit halves (low, high) of a 64-bit value, as the kernels take them.
    public static func halves(_ value: UInt64) -> (UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32))
    }

    /// The uniform float in `[0, 1)` the kernels derive from word `w`: its top 24 bits times 2^-24.
    public static func unit(_ w: UInt32) -> Float { Float(w >> 8) * 0x1p-24 }
}

extension KernelLibrary {
    /// Elements per work-item of the random and dropout kernels (`KILN_RAND_RE` in kernels.cl):
    /// `KILN_VEC` Philox blocks of 4 words.
    var randomWidth: Int { 4 * vec }

    func checkRandomCount(_ name: String, _ count: Int) throws {
        guard count <= Check.maxElements else {
            throw ShapeError("\(name): \(count) elements exceed the kernels' 32-bit indexing.")
        }
    }

    /// Fills `out` with the raw Philox-4x32-10 words of stream `(seed, offset)`, starting at block
    /// `firstBlock` (element `i` is word `i % 4` of block `firstBlock + i / 4`, wrapping at 2^64).
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let words = try device.buffer(UInt32.self, count: 8)
    /// try kernels.philoxBits(words, seed: 42, offset: 0)
    /// ```
    public func philoxBits(_ out: Buffer<UInt32>, seed: UInt64, offset: UInt64 = 0, firstBlock: UInt64 = 0) throws {
        try checkRandomCount("philoxBits", out.count)
        let (s0, s1) = Philox.halves(seed), (o0, o1) = Philox.halves(offset), (b0, b1) = Philox.halves(firstBlock)
        try launch1D(.philoxBits, (out.count + randomWidth - 1) / randomWidth,
                     Int32(out.count), s0, s1, o0, o1, b0, b1, out)
    }

    /// Fills `out` with uniform floats in `[low, high)` from stream `(seed, offset)`:
    /// `out[i] = fma(high - low, u_i, low)` (one rounding, reproducible on the host), clamped to
    /// the float below `high`, with `u_i = Philox.unit(word i)`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let weights = try device.buffer(Float.self, count: 256)
    /// try kernels.randomUniform(weights, low: -0.1, high: 0.1, seed: 7, offset: 0)
    /// ```
    /// - Throws: `ShapeError` unless `low < high`, both finite.
    public func randomUniform(_ out: Buffer<Float>, low: Float = 0, high: Float = 1, seed: UInt64,
                              offset: UInt64 = 0) throws {
        try checkRandomCount("randomUniform", out.count)
        guard low.isFinite, high.isFinite, low < high else {
            throw ShapeError("randomUniform: needs finite low < high, got [\(low), \(high)).")
        }
        let (s0, s1) = Philox.halves(seed), (o0, o1) = Philox.halves(offset)
        try launch1D(.randUniform, (out.count + randomWidth - 1) / randomWidth,
                     Int32(out.count), s0, s1, o0, o1, low, high, out)
    }

    /// Fills `out` with normal floats `mean + std * z` from stream `(seed, offset)`, with `z` by
    /// Box–Muller on word pairs `(2j, 2j + 1)`: `u1 = (Float(w >> 8) + 1) * 2^-24` in `(0, 1]`,
    /// `u2 = Philox.unit(w)`, `z_2j = sqrt(-2 ln u1) cos(2π u2)`, `z_2j+1 = sqrt(-2 ln u1) sin(2π u2)`.
    /// Equal across devices up to the few-ulp differences of their `log`, `cospi` and `sinpi`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let weights = try device.buffer(Float.self, count: 256)
    /// try kernels.randomNormal(weights, mean: 0, std: 0.02, seed: 7, offset: 1)
    /// ```
    /// - Throws: `ShapeError` unless `std >= 0` and both are finite.
    public func randomNormal(_ out: Buffer<Float>, mean: Float = 0, std: Float = 1, seed: UInt64,
                             offset: UInt64 = 0) throws {
        try checkRandomCount("randomNormal", out.count)
        guard mean.isFinite, std.isFinite, std >= 0 else {
            throw ShapeError("randomNormal: needs finite mean and std >= 0, got mean \(mean), std \(std).")
        }
        let (s0, s1) = Philox.halves(seed), (o0, o1) = Philox.halves(offset)
        try launch1D(.randNormal, (out.count + randomWidth - 1) / randomWidth,
                     Int32(out.count), s0, s1, o0, o1, mean, std, out)
    }
}
