import Foundation
import KilnSupport

/// Program binaries kept on disk so a second start skips the OpenCL compiler.
///
/// Location: `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`. `KILN_CACHE=0` turns it off.
/// The key hashes the source, the build options, the platform, the device, the driver version and
/// Kiln's version. An entry is written to a temporary file and renamed; a corrupt, truncated or
/// unreadable entry is ignored (and overwritten by the next build), never fatal.
public struct BinaryCache: Sendable {
    /// The folder holding the entries.
    public let directory: URL

    private static let magic = Array("KILNBIN1".utf8)

    public init(directory: URL) { self.directory = directory }

    /// The cache the environment asks for, or nil when `KILN_CACHE=0` or the location is not a
    /// usable folder (`DriverCache` found out and said so).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> BinaryCache? {
        guard !disabled, let folder = location(environment) else { return nil }
        return BinaryCache(directory: folder)
    }

    /// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`; nil when `KILN_CACHE` turns caching off.
    static func location(_ environment: [String: String]) -> URL? {
        if let flag = environment["KILN_CACHE"], ["0", "false", "no", "off"].contains(flag.lowercased()) { return nil }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("kiln")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/kiln")
    }

    /// Set when the cache location turned out not to be a usable folder.
    nonisolated(unsafe) static var disabled = false

    /// The cache key of a program.
    public static func key(source: String, options: String, device: DeviceInfo) -> String {
        stableHash([source, options, device.platformName, device.platformVersion, device.name,
                    device.driverVersion, kilnVersion].joined(separator: "\u{1}"))
    }

    /// The file of an entry.
    public func url(key: String) -> URL { directory.appendingPathComponent("\(key).bin") }

    /// The binary stored under `key`, or nil when absent or damaged.
    /// Layout: magic (8 bytes), payload length (8, little-endian), FNV hash of the payload (32 hex digits), payload.
    public func load(key: String) -> [UInt8]? {
        guard let data = try? Data(contentsOf: url(key: key)), data.count > 48 else { return nil }
        let bytes = [UInt8](data)
        guard Array(bytes[0..<8]) == Self.magic else { return nil }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[8 + i]) << (8 * UInt64(i)) }
        guard length == UInt64(bytes.count - 48) else { return nil }
        let payload = Array(bytes[48...])
        guard String(decoding: bytes[16..<48], as: UTF8.self) == Self.checksum(payload) else { return nil }
        return payload
    }

    /// Stores `binary` under `key`; failures are ignored (the cache is only an optimisation).
    public func store(_ binary: [UInt8], key: String) {
        var bytes = Self.magic
        var length = UInt64(binary.count)
        for _ in 0..<8 { bytes.append(UInt8(length & 0xff)); length >>= 8 }
        bytes += Array(Self.checksum(binary).utf8)
        bytes += binary
        do {
            try createFolder(directory, purpose: "cache folder")
            try writeAtomically(Data(bytes), to: url(key: key))
        } catch {
            // A read-only or full disk only costs the next start a rebuild.
        }
    }

    private static func checksum(_ payload: [UInt8]) -> String {
        stableHash(bytes: payload)
    }
}
