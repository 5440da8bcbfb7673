import Foundation
import KilnDevice
import KilnKernels
import KilnSupport
import Testing

/// The device every test shares: `KILN_DEVICE` or the default. On CI a missing device fails the
/// run loudly instead of skipping.
public enum TestDevice {
    public static let shared: Device? = {
        do { return try Device.makeDefault() } catch {
            print("No OpenCL device: \(error)")
            return nil
        }
    }()

    /// The device, or a recorded failure when there is none.
    public static func get(sourceLocation: SourceLocation = #_sourceLocation) throws -> Device {
        try #require(shared, "No OpenCL device: install pocl-opencl-icd (see README)", sourceLocation: sourceLocation)
    }

    public static func kernels(sourceLocation: SourceLocation = #_sourceLocation) throws -> KernelLibrary {
        try KernelLibrary.shared(for: get(sourceLocation: sourceLocation))
    }
}

/// A fixed-seed generator so random test data is the same on every run: Kiln's own SplitMix64.
public typealias SeededGenerator = SplitMix64

/// `count` uniform floats in `range`, from a seeded generator.
public func randomFloats(_ count: Int, in range: ClosedRange<Float> = -1...1, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &rng) }
}

/// Records an issue for each element where `|actual - expected| > atol + rtol * |expected|`
/// (PyTorch's `allclose`), naming the first few offenders. NaN never matches; equal infinities do.
@discardableResult
public func expectClose(_ actual: [Float], _ expected: [Double], rtol: Double = 1e-5, atol: Double = 1e-6,
                        _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return false
    }
    var bad: [String] = []
    var badCount = 0
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let a = Double(a)
        let ok = a == e || (abs(a - e) <= atol + rtol * abs(e))
        if !ok {
            badCount += 1
            if bad.count < 5 { bad.append("[\(i)] \(a) vs \(e)") }
        }
    }
    if badCount > 0 {
        Issue.record("\(what()): \(badCount) of \(actual.count) values differ (rtol \(rtol), atol \(atol)): \(bad.joined(separator: ", "))",
                     sourceLocation: sourceLocation)
    }
    return badCount == 0
}

/// `expectClose` against a Float reference.
@discardableResult
public func expectClose(_ actual: [Float], _ expected: [Float], rtol: Double = 1e-5, atol: Double = 1e-6,
                        _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    expectClose(actual, expected.map(Double.init), rtol: rtol, atol: atol, what(), sourceLocation: sourceLocation)
}

/// Sizes that are not multiples of any tile: 1, primes, and a large one.
public let awkwardSizes = [1, 7, 13, 31, 64, 129, 257, 1000]

/// Tests/Fixtures: PyTorch parity fixtures, interop files and their tools.
public let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// Whether `python3 -c code` runs and exits 0 here (to find out which Python packages there are).
public func pythonRuns(_ code: String) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", code]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

/// Whether `python3` can import torch and safetensors here (tests then also check against PyTorch).
public let pythonHasTorch = pythonRuns("import torch, safetensors")
