import KilnDevice

extension KernelLibrary {
    /// The scale of kept elements: `1 / (1 - p)`, and 0 for `p = 1` (everything dropped).
    static func dropoutScale(_ p: Float) -> Float { p < 1 ? Float(1 / (1 - Double(p))) : 0 }

    private func checkDropout(_ name: String, _ input: Buffer<Float>, _ output: Buffer<Float>, p: Float) throws {
        guard input.count == output.count else {
            throw ShapeError("\(name): input has \(input.count) elements but output has \(output.count).")
        }
        guard p >= 0, p <= 1 else { throw ShapeError("\(name): p must lie in [0, 1], got \(p).") }
        try Check.elements(name, input.count)
    }

    /// Dropout (training): `y[i] = x[i] / (1 - p)` where `u_j >= p`, else 0, with `u_j` the uniform
    /// of element `j = i / group` of Philox stream `(seed, offset)` (as `randomUniform` in `[0, 1)`).
    /// `group` 1 is element-wise dropout; `group = H·W` over NCHW drops whole channels (Dropout2d).
    /// `p = 0` is the identity, `p = 1` gives zeros. Nothing is stored: the backward pass applies
    /// the same map to the gradient, regenerated from the same `(seed, offset)`. `y` may be `x`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let h = try device.buffer([Float](repeating: 1, count: 100)), out = try device.buffer(Float.self, count: 100)
    /// try kernels.dropout(h, into: out, p: 0.5, seed: 7, offset: 0)   // each element 0 or 2
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths, `p` outside `[0, 1]` or `group < 1`.
    public func dropout(_ x: Buffer<Float>, into y: Buffer<Float>, p: Float, seed: UInt64, offset: UInt64,
                        group: Int = 1) throws {
        try checkDropout("dropout(_:into:)", x, y, p: p)
        guard group >= 1 else { throw ShapeError("dropout: group must be at least 1, got \(group).") }
        let (s0, s1) = Philox.halves(seed), (o0, o1) = Philox.halves(offset)
        let scale = Self.dropoutScale(p)
        if group == 1 {
            try launch1D(.dropout, (x.count + randomWidth - 1) / randomWidth, Int32(x.count), p, scale, s0, s1, o0, o1, x, y)
        } else {
            try launch1D(.dropoutGrouped, x.count, Int32(x.count), Int32(group), p, scale, s0, s1, o0, o1, x, y)
        }
    }
}
