import KilnDevice

extension KernelLibrary {
    /// The scale of kept elements: `1 / (1 - p)`, and 0 for `p = 1` (everything dropped).
    static func dropoutScale(_ p: Float) -> Float { p < 1 ? Float(1 / (1 - Double(p))) : 0 }

    private func checkDropout(_ name: String, _ input: Buffer<Float>, _ output: Buffer<Float>, p: Float,
                              mask: Buffer<UInt8>? = nil) throws {
        guard input.count == output.count else {
            throw ShapeError("\(name): input has \(input.count) elements but output has \(output.count).")
        }
        if let mask, mask.count != input.count {
            throw ShapeError("\(name): mask has \(mask.count) elements, expected \(input.count).")
        }
        guard p >= 0, p <= 1 else { throw ShapeError("\(name): p must lie in [0, 1], got \(p).") }
        try checkRandomCount(name, input.count)
    }

    /// Dropout forward (training): `y[i] = x[i] / (1 - p)` where `u_i >= p`, else 0, with `u_i`
    /// the uniform of element `i` of Philox stream `(seed, offset)` (as `randomUniform` in
    /// `[0, 1)`). `p = 0` is the identity, `p = 1` gives zeros. Nothing is stored: the backward
    /// pass regenerates the mask from the same `(seed, offset)`.
    ///
    /// ```swift
    /// try kernels.dropoutForward(x: h, y: out, p: 0.5, seed: seed, offset: step)
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `p` outside `[0, 1]`.
    public func dropoutForward(x: Buffer<Float>, y: Buffer<Float>, p: Float, seed: UInt64, offset: UInt64) throws {
        try checkDropout("dropoutForward", x, y, p: p)
        try launchDropout("dropout_f32", count: x.count, p: p, seed: seed, offset: offset, x, y)
    }

    /// Dropout forward that also stores the mask (`1` kept, `0` dropped) for
    /// `dropoutBackward(dy:dx:p:mask:)`; `y` is exactly what `dropoutForward` gives.
    ///
    /// ```swift
    /// try kernels.dropoutForward(x: h, y: out, p: 0.1, seed: seed, offset: step, mask: mask)
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `p` outside `[0, 1]`.
    public func dropoutForward(x: Buffer<Float>, y: Buffer<Float>, p: Float, seed: UInt64, offset: UInt64,
                               mask: Buffer<UInt8>) throws {
        try checkDropout("dropoutForward", x, y, p: p, mask: mask)
        try launchDropout("dropout_save_mask_f32", count: x.count, p: p, seed: seed, offset: offset, x, y, mask)
    }

    /// Dropout backward: `dx = dy * mask / (1 - p)`, the mask regenerated from the `(seed, offset)`
    /// of the forward pass (the same map as the forward, applied to `dy`).
    ///
    /// ```swift
    /// try kernels.dropoutBackward(dy: g, dx: gh, p: 0.5, seed: seed, offset: step)
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `p` outside `[0, 1]`.
    public func dropoutBackward(dy: Buffer<Float>, dx: Buffer<Float>, p: Float, seed: UInt64, offset: UInt64) throws {
        try checkDropout("dropoutBackward", dy, dx, p: p)
        try launchDropout("dropout_f32", count: dy.count, p: p, seed: seed, offset: offset, dy, dx)
    }

    /// Dropout backward from a stored mask: `dx = mask ? dy / (1 - p) : 0`.
    ///
    /// ```swift
    /// try kernels.dropoutBackward(dy: g, dx: gh, p: 0.1, mask: mask)
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `p` outside `[0, 1]`.
    public func dropoutBackward(dy: Buffer<Float>, dx: Buffer<Float>, p: Float, mask: Buffer<UInt8>) throws {
        try checkDropout("dropoutBackward", dy, dx, p: p, mask: mask)
        try launch1D("dropout_masked_f32", dy.count, Int32(dy.count), Self.dropoutScale(p), mask, dy, dx)
    }

    private func launchDropout(_ name: String, count: Int, p: Float, seed: UInt64, offset: UInt64,
                               _ buffers: any KernelArgument...) throws {
        let (s0, s1) = Philox.halves(seed), (o0, o1) = Philox.halves(offset)
        let scalars: [any KernelArgument] = [Int32(count), p, Self.dropoutScale(p), s0, s1, o0, o1]
        try launch1D(name, (count + nroRandomWidth - 1) / nroRandomWidth, arguments: scalars + buffers)
    }
}
