import KilnDevice

/// Launchers for the benchmark suite's microkernels (the device's own ceilings).
extension KernelLibrary {
    /// Runs the FMA-throughput kernel: one work-item per element of `out`.
    public func benchFMA(iterations: Int, out: Buffer<Float>) throws {
        try launch("bench_fma", global: [out.count], local: [config.elementwiseGroup],
                   Int32(iterations), Float(0.999), Float(0.001), out)
    }

    /// Copies `x` into `y` in blocks of 16 floats (the copy-bandwidth kernel). `x.count` must be a multiple of 16.
    public func benchCopy(_ x: Buffer<Float>, into y: Buffer<Float>) throws {
        guard x.count == y.count, x.count % 16 == 0 else {
            throw ShapeError("benchCopy: needs equal lengths that are multiples of 16, got \(x.count) and \(y.count).")
        }
        try launch1D("bench_copy", x.count / 16, Int32(x.count / 16), x, y)
    }

    /// Launches the empty kernel once.
    public func benchEmpty(_ unused: Buffer<Float>) throws {
        try launch("bench_empty", global: [1], local: [1], unused)
    }
}
