import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// Helpers of the element-wise / reduction / softmax / data-movement tests.
enum EW {
    /// The test device's kernel library (its own path, the CPU one on PoCL) and a second library
    /// built with the other path (`KILN_GPU` on PoCL: the local-memory trees and one element per
    /// work-item), so both paths are checked on any machine.
    static func libraries(sourceLocation: SourceLocation = #_sourceLocation) throws -> [KernelLibrary] {
        let native = try TestDevice.kernels(sourceLocation: sourceLocation)
        return [native, try otherPath.get()]
    }

    /// The library built with the path the device does not pick by default.
    private static let otherPath: Result<KernelLibrary, any Error> = Result {
        let device = try TestDevice.get()
        let other: DeviceKind = DeviceKind(device.info.type) == .gpu ? .cpu : .gpu
        return try KernelLibrary(device: device, config: KernelConfig(for: device.info, kind: other))
    }

    /// `cpu` or `gpu` and the vector width, for messages.
    static func path(_ kernels: KernelLibrary) -> String {
        "\(kernels.config.kind.rawValue) path (KILN_VEC \(kernels.config.vectorWidth))"
    }

    /// (rows, cols) pairs drawn from `awkwardSizes`: 1×N, N×1, squares, primes, 1000×257.
    static let shapes: [(Int, Int)] = [(1, 1), (1, 7), (7, 1), (1, 1000), (1000, 1), (13, 31), (31, 13), (64, 64),
                                       (7, 129), (129, 257), (257, 7), (1000, 257)]

    /// A smaller set for the slower (many-launch) tests.
    static let fewShapes: [(Int, Int)] = [(1, 1), (1, 257), (257, 1), (13, 31), (64, 129), (1000, 13)]

    /// Seeded random Int32 values in `range`.
    static func randomInts(_ count: Int, in range: Range<Int32>, seed: UInt64) -> [Int32] {
        var rng = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Int32.random(in: range, using: &rng) }
    }

    /// Seeded random floats with a fixed fraction of exact repeats (to exercise ties).
    static func floatsWithTies(_ count: Int, seed: UInt64) -> [Float] {
        randomFloats(count, in: -4...4, seed: seed).map { ($0 * 4).rounded() / 4 }
    }
}

/// Double-precision references, row-major [rows, cols].
enum EWRef {
    static func softmax(_ x: [Float], rows: Int, cols: Int) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = (0..<cols).map { Double(x[r * cols + $0]) }
            let m = row.max()!
            let s = row.reduce(0) { $0 + Foundation.exp($1 - m) }
            for c in 0..<cols { y[r * cols + c] = Foundation.exp(row[c] - m) / s }
        }
        return y
    }

    static func logSoftmax(_ x: [Float], rows: Int, cols: Int) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = (0..<cols).map { Double(x[r * cols + $0]) }
            let m = row.max()!
            let ls = Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
            for c in 0..<cols { y[r * cols + c] = (row[c] - m) - ls }
        }
        return y
    }

    /// Per-row losses and the gradient of `scale · mean loss` (PyTorch's label smoothing).
    static func crossEntropy(_ x: [Float], _ targets: [Int32], rows: Int, cols: Int, smoothing eps: Double,
                             scale: Double) -> (losses: [Double], gradient: [Double]) {
        let logp = logSoftmax(x, rows: rows, cols: cols)
        var losses = [Double](repeating: 0, count: rows)
        var gradient = [Double](repeating: 0, count: x.count)
        for r in 0..<rows {
            let t = Int(targets[r])
            for c in 0..<cols {
                let q = (c == t ? 1 - eps : 0) + eps / Double(cols)
                losses[r] -= q * logp[r * cols + c]
                gradient[r * cols + c] = scale * (Foundation.exp(logp[r * cols + c]) - q) / Double(rows)
            }
        }
        return (losses, gradient)
    }

    /// The first index of the maximum of `values`.
    static func argmax(_ values: [Float]) -> Int32 {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return Int32(best)
    }
}
