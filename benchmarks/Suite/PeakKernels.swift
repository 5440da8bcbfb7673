import Kiln

/// The benchmark suite's own microkernels (the end of kernels.cl, built with `KILN_BENCH`): a
/// separate, small program, so the library's programs never contain them.
public struct PeakKernels {
    /// The kernels' names in kernels.cl.
    public enum Name: String, CaseIterable { case empty = "bench_empty", fma = "bench_fma", copy = "bench_copy" }

    /// The device the program is built for.
    public let device: Device
    /// The library's configuration (the vector width `bench_fma` and `bench_copy` use).
    public let config: KernelConfig
    /// The built program.
    public let program: Program

    /// Builds the microkernels for `device` with the options of its kernel library.
    public init(device: Device, config: KernelConfig) throws {
        self.device = device
        self.config = config
        program = try device.program(source: kernelSource, options: config.buildOptions + " -DKILN_BENCH=1")
    }

    /// Runs the FMA-throughput kernel over `items` work-items; `out` holds `vectorWidth` floats per item.
    public func fma(iterations: Int, items: Int, out: Buffer<Float>) throws {
        guard out.count >= items * config.vectorWidth, items % config.elementwiseGroup == 0 else {
            throw ShapeError("bench_fma: needs \(items * config.vectorWidth) output floats and items a multiple of \(config.elementwiseGroup).")
        }
        try program.kernel(Name.fma.rawValue).launch(on: device.queue, global: [items], local: [config.elementwiseGroup],
                                                     Int32(iterations), Float(0.999), Float(0.001), out)
    }

    /// Copies `x` into `y` in blocks of `vectorWidth` floats (the copy-bandwidth kernel).
    /// `x.count` must be a multiple of 16.
    public func copy(_ x: Buffer<Float>, into y: Buffer<Float>) throws {
        guard x.count == y.count, x.count % 16 == 0 else {
            throw ShapeError("bench_copy: needs equal lengths that are multiples of 16, got \(x.count) and \(y.count).")
        }
        let blocks = x.count / config.vectorWidth
        let group = config.elementwiseGroup
        try program.kernel(Name.copy.rawValue).launch(on: device.queue, global: [(blocks + group - 1) / group * group],
                                                      local: [group], Int32(blocks), x, y)
    }

    /// Launches the empty kernel once.
    public func empty(_ unused: Buffer<Float>) throws {
        try program.kernel(Name.empty.rawValue).launch(on: device.queue, global: [1], local: [1], unused)
    }
}
