import Foundation

/// Chooses a device from one string, the same for the API (`Device.select`), the environment
/// (`KILN_DEVICE`) and every CLI command (`--device`):
///
/// | selector | picks |
/// |---|---|
/// | `gpu`, `cpu`, `accelerator` | the first device of that type on any platform |
/// | `gpu:1`, `cpu:0` | the N-th device of that type, counted across platforms |
/// | `0:1` | platform 0, device 1, as `clinfo -l` numbers them |
/// | `pocl`, `nvidia`, `h100` | the first device whose name, platform name, platform version or vendor contains it (any case) |
public enum DeviceSelector {
    /// The environment variable that names the default device.
    public static let environmentVariable = "KILN_DEVICE"

    /// Returns the index in `devices` that `selector` picks, or throws the listing error.
    public static func resolve(_ selector: String, in devices: [DeviceInfo]) throws -> Int {
        let text = selector.trimmingCharacters(in: .whitespaces)
        func fail(_ reason: String) -> DeviceError {
            .noMatchingDevice(selector: selector, reason: reason, available: devices)
        }
        if text.isEmpty { throw fail("the selector is empty") }
        if devices.isEmpty { throw fail("there are no devices") }
        let lower = text.lowercased()
        let parts = lower.split(separator: ":", omittingEmptySubsequences: false).map(String.init)

        // `type` or `type:N`
        if let type = DeviceType(rawValue: parts[0]), type != .other {
            let ofType = devices.indices.filter { devices[$0].type == type }
            guard parts.count <= 2 else { throw fail("expected \(type.rawValue) or \(type.rawValue):N") }
            var n = 0
            if parts.count == 2 {
                guard let value = Int(parts[1]), value >= 0 else {
                    throw fail("\"\(parts[1])\" is not a device number (0, 1, ...)")
                }
                n = value
            }
            guard n < ofType.count else {
                throw fail(ofType.isEmpty ? "there is no \(type.rawValue) device"
                           : "there are only \(ofType.count) \(type.rawValue) device(s), numbered from 0")
            }
            return ofType[n]
        }

        // Anything that starts like a number is an index form: `P:D` (or a bare device number).
        if let first = lower.first, first.isNumber || first == "-" || first == "+" {
            guard parts.count <= 2, let p = Int(parts[0]), p >= 0 else {
                throw fail("expected platform:device indices such as 0:0")
            }
            if parts.count == 1 {
                guard p < devices.count else { throw fail("there are only \(devices.count) device(s)") }
                return p
            }
            guard let d = Int(parts[1]), d >= 0 else {
                throw fail("\"\(parts[1])\" is not a device index (0, 1, ...)")
            }
            guard let index = devices.firstIndex(where: { $0.platformIndex == p && $0.deviceIndex == d }) else {
                throw fail("there is no device \(d) on platform \(p)")
            }
            return index
        }

        // A substring of the device name, then of the platform name.
        if let index = devices.firstIndex(where: { $0.name.lowercased().contains(lower) }) { return index }
        if let index = devices.firstIndex(where: { $0.platformName.lowercased().contains(lower) }) { return index }
        // PoCL says "PoCL" only in its platform version ("OpenCL 3.0 PoCL 3.1 ...").
        if let index = devices.firstIndex(where: {
            $0.platformVersion.lowercased().contains(lower) || $0.vendor.lowercased().contains(lower)
        }) { return index }
        throw fail("no device or platform name contains \"\(text)\"")
    }

    /// The default device: `KILN_DEVICE` when set, else the first GPU, else the first device.
    public static func defaultIndex(in devices: [DeviceInfo],
                                    environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        if let selector = environment[environmentVariable], !selector.isEmpty {
            return try resolve(selector, in: devices)
        }
        if devices.isEmpty {
            throw DeviceError.noMatchingDevice(selector: "(default)", reason: "there are no devices", available: [])
        }
        return devices.firstIndex { $0.type == .gpu } ?? 0
    }
}
