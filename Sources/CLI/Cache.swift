import ArgumentParser
import Foundation
import Kiln

/// `kiln cache`: the on-disk cache of compiled kernels.
struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List or clear the on-disk cache of compiled kernels (Kiln's program binaries and PoCL's own cache).",
        discussion: """
            Kiln keeps each device's compiled kernels.cl in $XDG_CACHE_HOME/kiln (else ~/.cache/kiln), \
            keyed by the source, the build options, the device, the driver and Kiln's version, so a second \
            start skips the compiler; PoCL's own cache is kept in its pocl/ folder. KILN_CACHE=0 turns both off.
            """,
        subcommands: [CacheList.self, CacheClear.self],
        defaultSubcommand: CacheList.self)
}

/// The cache `kiln cache` works on, or a clear error when caching is off.
func binaryCache() throws -> BinaryCache {
    guard let cache = BinaryCache.fromEnvironment() else {
        throw Failure(message: "The kernel cache is off (KILN_CACHE=0, or its folder is not usable); there is nothing to list or clear.")
    }
    return cache
}

/// PoCL's cache folder when the user chose it with POCL_CACHE_DIR (Kiln then leaves it alone).
var userDriverCache: URL? {
    ProcessInfo.processInfo.environment["POCL_CACHE_DIR"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
}

/// `kiln cache list`.
struct CacheList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the cached program binaries: device, driver, size and age.",
        discussion: """
            --json writes one line per entry, {"type": "entry", "key", "device", "platform", "driver", "kiln", \
            "bytes", "modified", "age_seconds"} (the description fields are null for entries of Kiln versions \
            that did not record them), then {"type": "total", "folder", "entries", "bytes", "driver_cache_folder", \
            "driver_cache_bytes"}.
            """)

    @Flag(help: "Write JSON Lines to stdout (see the discussion).") var json = false

    func run() throws {
        let cache = try binaryCache()
        let console = Console(json: json)
        let entries = cache.entries()
        let now = Date()
        for entry in entries {
            let age = max(0, now.timeIntervalSince(entry.modified))
            let d = entry.description
            try console.emit(["type": "entry", "key": entry.key, "device": d?.device ?? NSNull(), "platform": d?.platform ?? NSNull(),
                              "driver": d?.driver ?? NSNull(), "kiln": d?.kiln ?? NSNull(), "bytes": entry.bytes,
                              "modified": ISO8601DateFormatter().string(from: entry.modified), "age_seconds": age.rounded()])
            if !json {
                let what = d.map { "\($0.device) (\($0.platform), driver \($0.driver), Kiln \($0.kiln))" } ?? "written by an earlier Kiln (no description)"
                print("\(entry.key)  \(formatBytes(entry.bytes).leftPadded(10))  \(Self.age(age).leftPadded(9))  \(what)")
            }
        }
        let binaries = entries.reduce(0) { $0 + $1.bytes }
        let driverFolder = userDriverCache ?? cache.driverCacheFolder
        let driverBytes = BinaryCache.bytes(under: driverFolder)
        try console.emit(["type": "total", "folder": cache.directory.path, "entries": entries.count, "bytes": binaries,
                          "driver_cache_folder": driverFolder.path, "driver_cache_bytes": driverBytes])
        if !json {
            print("\(entries.count) program binaries, \(formatBytes(binaries)), in \(cache.directory.path)")
            print("PoCL's cache: \(formatBytes(driverBytes)) in \(driverFolder.path)\(userDriverCache == nil ? "" : " (POCL_CACHE_DIR: yours, not cleared by kiln cache clear)")")
        }
    }

    /// "42 s", "5 min", "3 h", "12 days".
    static func age(_ seconds: Double) -> String {
        switch seconds {
        case ..<120: return "\(Int(seconds)) s"
        case ..<7200: return "\(Int(seconds / 60)) min"
        case ..<172_800: return "\(Int(seconds / 3600)) h"
        default: return "\(Int(seconds / 86400)) days"
        }
    }
}

/// `kiln cache clear`.
struct CacheClear: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clear",
        abstract: "Remove every cached program binary and PoCL's cache; the next start compiles kernels.cl again.")

    @Flag(name: .customLong("keep-driver-cache"), help: "Leave PoCL's own cache alone.") var keepDriverCache = false
    @Flag(help: "Write one JSON line, {\"type\": \"cleared\", \"folder\", \"bytes\"}, to stdout.") var json = false

    func run() throws {
        let cache = try binaryCache()
        do {
            let freed = try cache.clear(driverCache: !keepDriverCache && userDriverCache == nil)
            let console = Console(json: json)
            try console.emit(["type": "cleared", "folder": cache.directory.path, "bytes": freed])
            if !json { print("Removed \(formatBytes(freed)) from \(cache.directory.path)\(keepDriverCache ? " (PoCL's cache kept)" : "").") }
        } catch {
            throw Failure(error)
        }
    }
}
