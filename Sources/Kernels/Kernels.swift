import KilnDevice

/// The compiled `kernels.cl` for one device: built once per device (and per build options), with
/// the options chosen for that device's type and vendor.
public struct KernelLibrary: @unchecked Sendable {
    /// The device the kernels run on.
    public let device: Device
    /// The built program.
    public let program: Program

    /// The `-D` options used for `device`.
    public static func buildOptions(for device: Device) -> String {
        "-cl-std=CL1.2 -cl-mad-enable"
    }

    /// Builds (or fetches from the caches) the kernel library for `device`.
    public init(device: Device) throws {
        self.device = device
        program = try device.program(source: kernelSource, options: Self.buildOptions(for: device))
    }

    /// A work-group size for a 1-D kernel over `n` items, within the kernel's limit.
    func groupSize(_ kernel: Kernel, preferred: Int) -> Int {
        var size = min(preferred, kernel.maxWorkGroupSize)
        while size > 1 && size > kernel.maxWorkGroupSize { size /= 2 }
        return max(size, 1)
    }

    /// Global size rounded up to a multiple of `local`.
    static func roundUp(_ n: Int, _ local: Int) -> Int { (n + local - 1) / local * local }
}

extension KernelLibrary {
    /// `x[i] = value` on the device.
    public func fill(_ x: Buffer<Float>, value: Float) throws {
        let kernel = try program.kernel("fill_f32")
        let local = groupSize(kernel, preferred: 64)
        try kernel.launch(on: device.queue, global: [Self.roundUp(x.count, local)], local: [local],
                          Int32(x.count), value, x)
    }

    /// `y += alpha * x` on the device. Throws when the lengths differ.
    public func axpy(alpha: Float, x: Buffer<Float>, y: Buffer<Float>) throws {
        guard x.count == y.count else {
            throw DeviceError.invalidArgument("axpy: x has \(x.count) elements but y has \(y.count).")
        }
        let kernel = try program.kernel("axpy_f32")
        let local = groupSize(kernel, preferred: 64)
        try kernel.launch(on: device.queue, global: [Self.roundUp(x.count, local)], local: [local],
                          Int32(x.count), alpha, x, y)
    }
}
