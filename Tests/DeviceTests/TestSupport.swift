import Foundation
import KilnDevice
import KilnKernels
import Testing

/// The device every test shares: `KILN_DEVICE` or the default. On CI a missing device fails the
/// run loudly instead of skipping.
enum TestDevice {
    static let shared: Device? = {
        do { return try Device.makeDefault() } catch {
            print("No OpenCL device: \(error)")
            return nil
        }
    }()

    /// The device, or a recorded failure when there is none.
    static func get(sourceLocation: SourceLocation = #_sourceLocation) throws -> Device {
        try #require(shared, "No OpenCL device: install pocl-opencl-icd (see README)", sourceLocation: sourceLocation)
    }

    static func kernels(sourceLocation: SourceLocation = #_sourceLocation) throws -> KernelLibrary {
        try KernelLibrary(device: get(sourceLocation: sourceLocation))
    }
}

/// A fixed-seed generator (SplitMix64) so random test data is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
