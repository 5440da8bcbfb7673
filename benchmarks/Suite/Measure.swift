import Dispatch
import Foundation
import Kiln

/// One measured operation.
public struct BenchResult: Codable, Sendable {
    public var name: String
    public var shape: [Int]
    /// Median device time of one run (sum of its kernels' profiling-event times), milliseconds.
    public var median_ms: Double
    /// Median wall time of one run, enqueue to finish, milliseconds.
    public var wall_ms: Double
    public var gflops: Double?
    public var gbps: Double?
    /// The figure as a percentage of the measured peak (FLOP/s or bandwidth).
    public var percent_of_peak: Double?
    public var runs: Int
    /// Kernel launches in one run.
    public var launches: Int
    /// The configuration the figure used: `tuned` or `rules`, then the tiles or group sizes.
    public var config: String?
}

/// The device's own ceilings, from the suite's microkernels (`PeakKernels`).
public struct Peak: Codable, Sendable {
    public var gflops: Double
    public var gbps: Double
    public var launch_us: Double
}

/// Times operations on a profiling queue: warm-up runs, then the median of `repeats` timed runs.
public final class BenchRunner {
    public let device: Device
    public let kernels: KernelLibrary
    public let peakKernels: PeakKernels
    public let warmup: Int
    public let repeats: Int
    public var peak: Peak?

    public init(device: Device, warmup: Int = 3, repeats: Int = 10) throws {
        guard device.queue.profiling else {
            throw ShapeError("The benchmark suite needs a device opened with profiling (Device.open(_:profiling: true)).")
        }
        self.device = device
        self.kernels = try KernelLibrary.shared(for: device)
        self.peakKernels = try PeakKernels(device: device, config: kernels.config)
        self.warmup = warmup
        self.repeats = max(repeats, 1)
    }

    /// Runs `body` `warmup` times, then `repeats` times with timing; `flops` and `bytes` give the
    /// rates. Device time is the sum of the kernels' event times within one run.
    public func measure(_ name: String, shape: [Int], flops: Double? = nil, bytes: Double? = nil,
                        _ body: () throws -> Void) throws -> BenchResult {
        for _ in 0..<warmup { try body() }
        device.queue.finish()
        var deviceMs: [Double] = [], wallMs: [Double] = []
        var launches = 0
        for _ in 0..<repeats {
            device.queue.profiler.reset()
            let before = device.queue.launches
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            device.queue.finish()
            wallMs.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            launches = device.queue.launches - before
            deviceMs.append(Double(device.queue.profiler.summary().reduce(0) { $0 + $1.nanoseconds }) / 1e6)
        }
        let ms = median(deviceMs)
        var result = BenchResult(name: name, shape: shape, median_ms: ms, wall_ms: median(wallMs),
                                 runs: repeats, launches: launches)
        if let flops, ms > 0 {
            result.gflops = flops / (ms * 1e6)
            if let peak { result.percent_of_peak = 100 * (result.gflops ?? 0) / peak.gflops }
        }
        if let bytes, ms > 0 {
            result.gbps = bytes / (ms * 1e6)
            if let peak, flops == nil { result.percent_of_peak = 100 * (result.gbps ?? 0) / peak.gbps }
        }
        return result
    }

    /// Measures FMA throughput, copy bandwidth and queued launch latency.
    public func measurePeak() throws -> Peak {
        let items = max(4096, device.info.computeUnits * 2048)
        let iterations = 256
        let width = kernels.config.vectorWidth
        let out: Buffer<Float> = try device.buffer(count: items * width)
        let fmaFlops = Double(items) * Double(iterations) * 4 * 8 * Double(width) * 2
        let fma = try measure("peak_fma", shape: [items, iterations], flops: fmaFlops) {
            try peakKernels.fma(iterations: iterations, items: items, out: out)
        }

        let n = 16 << 20  // 64 MiB of floats
        let x: Buffer<Float> = try device.buffer(count: n)
        let y: Buffer<Float> = try device.buffer(count: n)
        try x.fill(1)
        let copy = try measure("peak_copy", shape: [n], bytes: Double(2 * n * 4)) {
            try peakKernels.copy(x, into: y)
        }

        // Launch latency: back-to-back empty kernels on the queue, wall time (no events recorded).
        let count = 2000
        device.queue.profiler.enabled = false
        defer { device.queue.profiler.enabled = true }
        for _ in 0..<50 { try peakKernels.empty(out) }
        device.queue.finish()
        var perLaunch: [Double] = []
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<count { try peakKernels.empty(out) }
            device.queue.finish()
            perLaunch.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3 / Double(count))
        }
        let result = Peak(gflops: fma.gflops ?? 0, gbps: copy.gbps ?? 0, launch_us: median(perLaunch))
        peak = result
        return result
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
