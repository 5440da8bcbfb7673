import KilnDevice

/// Launchers for the benchmark suite's microkernels (the device's own ceilings).
extension KernelLibrary {
    /// Runs the FMA-throughput kernel over `items` work-items; `out` holds `vectorWidth` floats per item.
    public func benchFMA(iterations: Int, items: Int, out: Buffer<Float>) throws {
        guard out.count >= items * config.vectorWidth, items % config.elementwiseGroup == 0 else {
            throw ShapeError("benchFMA: needs \(items * config.vectorWidth) output floats and items a multiple of \(config.elementwiseGroup).")
        }
        try launch("bench_fma", global: [items], local: [config.elementwiseGroup],
                   Int32(iterations), Float(0.999), Float(0.001), out)
    }

    /// Copies `x` into `y` in blocks of `vectorWidth` floats (the copy-bandwidth kernel).
    /// `x.count` must be a multiple of 16.
    public func benchCopy(_ x: Buffer<Float>, into y: Buffer<Float>) throws {
        guard x.count == y.count, x.count % 16 == 0 else {
            throw ShapeError("benchCopy: needs equal lengths that are multiples of 16, got \(x.count) and \(y.count).")
        }
        let blocks = x.count / config.vectorWidth
        try launch1D("bench_copy", blocks, Int32(blocks), x, y)
    }

    /// Launches the empty kernel once.
    public func benchEmpty(_ unused: Buffer<Float>) throws {
        try launch("bench_empty", global: [1], local: [1], unused)
    }
}
