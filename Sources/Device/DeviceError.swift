import Foundation

/// Everything the device layer can throw. Each message says what happened and what to do.
public enum DeviceError: Error, Sendable, CustomStringConvertible, LocalizedError {
    /// No OpenCL platform is installed (no ICD loaded).
    case noPlatform(status: CLStatus?)
    /// A device selector matched nothing; carries every device there is.
    case noMatchingDevice(selector: String, reason: String, available: [DeviceInfo])
    /// An OpenCL call failed.
    case openCL(call: String, status: CLStatus)
    /// `clBuildProgram` failed; carries the compiler's log.
    case buildFailed(device: String, status: CLStatus, options: String, log: String)
    /// A buffer could not be allocated, even after the pool released its cache.
    case outOfMemory(requestedBytes: Int, device: String, maxAllocation: UInt64, globalMemory: UInt64,
                     liveBytes: Int, status: CLStatus?)
    /// A request the device layer cannot honour (a zero-size buffer, a length mismatch, ...).
    case invalidArgument(String)

    /// The message: what happened and what to do about it.
    public var description: String {
        switch self {
        case .noPlatform(let status):
            let detail = status.map { " (clGetPlatformIDs returned \($0))" } ?? ""
            return """
                No OpenCL platform is installed\(detail). Kiln needs an OpenCL ICD loader and a driver: \
                on Debian or Ubuntu run `apt-get install ocl-icd-libopencl1 pocl-opencl-icd` for the CPU \
                (PoCL), or install your GPU vendor's OpenCL driver (e.g. nvidia-opencl-icd); `clinfo -l` \
                should then list a device.
                """
        case .noMatchingDevice(let selector, let reason, let available):
            // One line, the devices listed in it: what a user can pick, with the selectors that pick it.
            let devices = available.isEmpty ? "No devices were found."
                : "Devices on this machine: " + available.map { "\($0.selectors.joined(separator: ", ")) -> \($0.name) [\($0.platformName)]" }
                    .joined(separator: "; ") + "."
            return "No OpenCL device matches the selector \"\(selector)\": \(reason). \(devices) Selectors: gpu, cpu, gpu:N, cpu:N, P:D (platform:device), or part of a device or platform name."
        case .openCL(let call, let status):
            let hint = status.isOutOfMemory
                ? " The device ran out of memory or resources: use smaller batches or tensors, or another device."
                : ""
            return "OpenCL call \(call) failed with \(status).\(hint)"
        case .buildFailed(let device, let status, let options, let log):
            let trimmed = log.trimmingCharacters(in: .whitespacesAndNewlines)
            return "Building OpenCL program for \(device) failed with \(status) (options: \"\(options)\"). Build log:\n"
                + (trimmed.isEmpty ? "(empty)" : trimmed)
        case .outOfMemory(let requested, let device, let maxAlloc, _, let live, let status):
            // Only what the request decides is quoted: a CPU driver's memory figures follow the
            // machine's free memory and change from run to run.
            let cause = status.map { " (\($0))" } ?? ""
            let what = requested == Int.max ? "more than can be addressed"
                : UInt64(requested) > maxAlloc ? "\(formatBytes(requested)) in one buffer, more than the device allows in one"
                : formatBytes(requested)
            return """
                Out of device memory on \(device)\(cause): asked for \(what), with \(formatBytes(live)) already \
                held by Kiln. Use smaller batches or tensors, free tensors you no longer need, or pick a device \
                with more memory (--device / KILN_DEVICE).
                """
        case .invalidArgument(let message):
            return message
        }
    }

    /// `description`, so `localizedDescription` gives the full message.
    public var errorDescription: String? { description }
}

/// `1.5 MiB`-style byte counts for messages.
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : "\(String(format: "%.1f", value)) \(units[unit])"
}
