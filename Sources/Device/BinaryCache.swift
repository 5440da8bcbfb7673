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

    /// Stores `binary` under `key`, with a description of what it was built for (`key.json`, for
    /// `kiln cache`); failures are ignored (the cache is only an optimisation).
    public func store(_ binary: [UInt8], key: String, for device: DeviceInfo) {
        store(binary, key: key)
        let description = EntryDescription(device: device.name, platform: "\(device.platformName) \(device.platformVersion)",
                                           driver: device.driverVersion, kiln: kilnVersion)
        if let data = try? JSONEncoder().encode(description) {
            try? writeAtomically(data, to: directory.appendingPathComponent("\(key).json"))
        }
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

    /// What an entry was built for, kept beside it as `KEY.json`.
    public struct EntryDescription: Codable, Sendable, Equatable {
        /// The device name, the platform with its version, the driver version and Kiln's version.
        public var device: String, platform: String, driver: String, kiln: String
    }

    /// One cached program binary, as `kiln cache` lists it.
    public struct Entry: Sendable, Equatable {
        /// The cache key (the file name without `.bin`).
        public var key: String
        /// Bytes on disk, the binary and its description together.
        public var bytes: Int
        /// When it was written.
        public var modified: Date
        /// What it was built for; nil for entries of Kiln versions that did not record it, or a
        /// description that cannot be read.
        public var description: EntryDescription?
    }

    /// The entries of the cache, newest first (none when the folder does not exist). Files that
    /// are not entries are left out.
    public func entries() -> [Entry] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".bin") && !$0.hasPrefix(".") }.compactMap { name -> Entry? in
            let key = String(name.dropLast(4))
            let binary = directory.appendingPathComponent(name), side = directory.appendingPathComponent("\(key).json")
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: binary.path),
                  attributes[.type] as? FileAttributeType == .typeRegular else { return nil }
            let sideBytes = (try? FileManager.default.attributesOfItem(atPath: side.path))?[.size] as? Int ?? 0
            let description = (try? readRegularFile(side, what: "cache entry description", limit: 1 << 16))
                .flatMap { try? JSONDecoder().decode(EntryDescription.self, from: $0) }
            return Entry(key: key, bytes: (attributes[.size] as? Int ?? 0) + sideBytes,
                         modified: attributes[.modificationDate] as? Date ?? .distantPast, description: description)
        }.sorted { $0.modified > $1.modified }
    }

    /// The folder Kiln keeps PoCL's own kernel cache in (see `DriverCache`; when the user sets
    /// `POCL_CACHE_DIR`, PoCL's cache is there instead, and not Kiln's to list or clear).
    public var driverCacheFolder: URL { directory.appendingPathComponent("pocl") }

    /// Whether `name` is a file of this cache: an entry (`KEY.bin`, `KEY.json`, KEY being 32 hex
    /// digits) or a temporary file a writer of one left (`.KEY.bin.….tmp`).
    static func isCacheFile(_ name: String) -> Bool {
        let base = name.hasPrefix(".") && name.hasSuffix(".tmp") ? String(name.dropFirst()) : name
        let parts = base.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, ["bin", "json"].contains(parts[1]), parts[0].count == 32 else { return false }
        return parts[0].allSatisfy { $0.isHexDigit } && (base == name ? parts.count == 2 : true)
    }

    /// Bytes under `folder`, counted file by file (0 when it does not exist).
    public static func bytes(under folder: URL) -> Int {
        guard let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total = 0
        for case let url as URL in walker {
            let values = try? url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            if values?.isRegularFile == true { total += values?.fileSize ?? 0 }
        }
        return total
    }

    /// Removes every entry (binaries, descriptions, temporary files) and, with `driverCache`, the
    /// contents of PoCL's cache folder. Returns the bytes freed.
    /// - Throws: `FileError` naming a file that could not be removed.
    @discardableResult
    public func clear(driverCache: Bool = true) throws -> Int {
        var freed = 0
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where Self.isCacheFile(name) {
            let url = directory.appendingPathComponent(name)
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? Int ?? 0
            guard unlink(url.path) == 0 || errno == ENOENT else { throw FileError("remove the cache entry", url.path, errno: errno) }
            freed += size
        }
        if driverCache {
            let pocl = driverCacheFolder
            freed += Self.bytes(under: pocl)
            for name in (try? FileManager.default.contentsOfDirectory(atPath: pocl.path)) ?? [] {
                let url = pocl.appendingPathComponent(name)
                do { try FileManager.default.removeItem(at: url) } catch {
                    throw FileError(path: url.path, message: "Cannot remove \(url.path) from PoCL's cache: \(error.localizedDescription). Remove it by hand.")
                }
            }
        }
        return freed
    }
}
