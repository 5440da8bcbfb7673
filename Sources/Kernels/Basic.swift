import KilnDevice

extension KernelLibrary {
    /// `x[i] = value` on the device.
    public func fill(_ x: Buffer<Float>, value: Float) throws {
        try launch1D("fill_f32", x.count, Int32(x.count), value, x)
    }

    /// `y += alpha * x` on the device. Throws when the lengths differ.
    public func axpy(alpha: Float, x: Buffer<Float>, y: Buffer<Float>) throws {
        guard x.count == y.count else {
            throw ShapeError("axpy: x has \(x.count) elements but y has \(y.count).")
        }
        try launch1D("axpy_f32", x.count, Int32(x.count), alpha, x, y)
    }
}
