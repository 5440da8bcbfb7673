import Foundation
import KilnDevice
import KilnSupport

/// A matrix-product shape: the transposes, the sizes and whether a batch is summed into one C.
/// The tuner measures representative shapes; a launch uses the tiles of the nearest one.
public struct MatmulShape: Codable, Sendable, Hashable, CustomStringConvertible {
    /// `nn`, `nt`, `tn` or `tt`: whether A and B are stored transposed.
    public var variant: String
    /// C is m × n, the inner size k.
    public var m: Int, n: Int, k: Int
    /// Products summed into C (a weight gradient over a batch; 1 for a plain product).
    public var summed: Int

    public init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, summed: Int = 1) {
        variant = (transposeA ? "t" : "n") + (transposeB ? "t" : "n")
        self.m = m; self.n = n; self.k = k; self.summed = summed
    }

    /// m·n·k, as a Double (no overflow).
    public var multiplyAdds: Double { Double(m) * Double(n) * Double(k) }
    public var transposeA: Bool { variant.first == "t" }
    public var transposeB: Bool { variant.last == "t" }

    public var description: String {
        "\(variant) \(m)x\(k)x\(n)" + (summed > 1 ? " sum\(summed)" : "")
    }

    /// How far apart two shapes of the same kind are: the sum of |log₂| ratios of m, n and k·summed
    /// (infinite for another variant, or a summed batch against a plain product).
    func distance(to other: MatmulShape) -> Double {
        guard variant == other.variant, (summed > 1) == (other.summed > 1) else { return .infinity }
        func d(_ a: Int, _ b: Int) -> Double { abs(log2(Double(max(a, 1))) - log2(Double(max(b, 1)))) }
        return d(m, other.m) + d(n, other.n) + d(k * summed, other.k * other.summed)
    }
}

/// The tiles the tuner kept for one shape, with what it measured there in the same sitting.
public struct TunedProduct: Codable, Sendable, Equatable {
    public var shape: MatmulShape
    public var config: MatmulConfig
    /// GFLOP/s of the rule table's tiles and of `config` (device-side medians; equal where the
    /// rule table's tiles were kept).
    public var ruleGFLOPS: Double, tunedGFLOPS: Double

    /// Whether the rule table's tiles were kept for this shape.
    public var keepsRuleTable: Bool { ruleGFLOPS == tunedGFLOPS }

    public init(shape: MatmulShape, config: MatmulConfig, ruleGFLOPS: Double, tunedGFLOPS: Double) {
        self.shape = shape; self.config = config; self.ruleGFLOPS = ruleGFLOPS; self.tunedGFLOPS = tunedGFLOPS
    }
}

/// One launch choice the tuner made other than tiles (a group size, the convolution staging), with
/// the time of the rule table's choice and of the kept one.
public struct TunedChoice: Codable, Sendable, Equatable {
    public var name: String
    public var rule: String, chosen: String
    public var ruleMilliseconds: Double, tunedMilliseconds: Double

    public init(name: String, rule: String, chosen: String, ruleMilliseconds: Double, tunedMilliseconds: Double) {
        self.name = name; self.rule = rule; self.chosen = chosen
        self.ruleMilliseconds = ruleMilliseconds; self.tunedMilliseconds = tunedMilliseconds
    }
}

/// What `kiln tune` found for one device: per-shape tiles of the matrix products (each shape's
/// tiles built as a products-only program) and launch parameters of the library's own program.
/// Stored by `TuningCache`, keyed by the device and driver and tied to the kernels' source:
/// a file for another source (stale) or one that does not parse or holds implausible values
/// (corrupt or forged) is ignored, and the rule table is used until `kiln tune` writes it anew.
public struct TunedConfiguration: Codable, Sendable, Equatable {
    /// The layout of this file; other values are ignored.
    public static let currentFormat = 1
    public var format = TunedConfiguration.currentFormat
    /// What it was measured on and for.
    public var platform: String, device: String, driver: String, kilnVersion: String
    /// `stableHash(kernelSource)` of the kernels it was measured with.
    public var sourceHash: String
    /// `cpu` or `gpu`: the kernel path it tuned.
    public var kind: String
    public var date: String
    /// Seconds the search took.
    public var seconds: Double
    /// The tiles kept for each measured shape: new ones where they beat the rule table, the rule
    /// table's own where it won (so that the nearest measured shape decides).
    public var products: [TunedProduct]
    /// Launch parameters of the library's program (nil: the rule table's).
    public var rowsGroup: Int?, columnsGroup: Int?, chunksGroup: Int?, batchNormGroup: Int?
    public var stagesConvolutionColumns: Bool?
    /// Tiles of the staged convolution kernels (nil: the rule table's).
    public var convolutionTiles: MatmulConfig?
    /// The non-tile choices, for the before/after table.
    public var choices: [TunedChoice]

    /// An empty configuration for `info` (the rule table everywhere), to be filled by a tuner.
    public init(for info: DeviceInfo, kind: DeviceKind, date: String = ISO8601DateFormatter().string(from: Date())) {
        platform = info.platformName; device = info.name; driver = info.driverVersion; kilnVersion = KilnSupport.kilnVersion
        sourceHash = TunedConfiguration.sourceHash
        self.kind = kind.rawValue; self.date = date; seconds = 0; products = []; choices = []
    }

    /// The hash of the kernels this build of Kiln carries.
    public static let sourceHash = stableHash(kernelSource)

    /// The tiles for `shape`: those of the nearest measured shape of the same variant (within a
    /// factor of 16 over the three sizes together), or nil for the rule table's.
    public func tiles(for shape: MatmulShape) -> MatmulConfig? {
        var best: (Double, MatmulConfig)?
        for product in products {
            let d = shape.distance(to: product.shape)
            if d <= 4, d < (best?.0 ?? .infinity) { best = (d, product.config) }
        }
        return best?.1
    }

    /// This configuration with `earlier`'s results for the parts not in `searched` (`matmul`: the
    /// products; `conv`: the staging; `groups`: the group sizes), and the choices of both.
    public func merging(_ earlier: TunedConfiguration, searched: Set<String>) -> TunedConfiguration {
        var merged = self
        if !searched.contains("matmul") { merged.products = earlier.products }
        if !searched.contains("conv") {
            (merged.stagesConvolutionColumns, merged.convolutionTiles) = (earlier.stagesConvolutionColumns, earlier.convolutionTiles)
        }
        if !searched.contains("groups") {
            (merged.rowsGroup, merged.columnsGroup) = (earlier.rowsGroup, earlier.columnsGroup)
            (merged.chunksGroup, merged.batchNormGroup) = (earlier.chunksGroup, earlier.batchNormGroup)
        }
        let names = Set(choices.map(\.name))
        merged.choices = earlier.choices.filter { choice in
            !names.contains(choice.name) && !searched.contains { choice.name.hasPrefix($0 == "groups" ? "group" : $0) }
        } + choices
        return merged
    }

    /// `base` (the rule table) with this configuration's launch parameters.
    public func applied(to base: KernelConfig) -> KernelConfig {
        var config = base
        config.rowsGroup = rowsGroup ?? base.rowsGroup
        config.columnsGroup = columnsGroup ?? base.columnsGroup
        config.chunksGroup = chunksGroup ?? base.chunksGroup
        config.batchNormGroup = batchNormGroup ?? base.batchNormGroup
        config.stagesConvolutionColumns = stagesConvolutionColumns ?? base.stagesConvolutionColumns
        return config
    }

    /// Why this configuration must not be used on `info` with the rule table `base`, or nil: a
    /// format, device, driver, version or source it was not made for, or values no tuner writes.
    public func problem(for info: DeviceInfo, base: KernelConfig) -> String? {
        guard format == Self.currentFormat else { return "format \(format), not \(Self.currentFormat)" }
        guard platform == info.platformName, device == info.name, driver == info.driverVersion else {
            return "it was measured on \(device) (\(driver)), not this device"
        }
        guard kilnVersion == KilnSupport.kilnVersion, sourceHash == Self.sourceHash else {
            return "it was measured with other kernels (Kiln \(kilnVersion)); run `kiln tune` again"
        }
        guard kind == base.kind.rawValue else { return "it tuned the \(kind) path, but this device runs \(base.kind.rawValue)" }
        guard products.count <= 256, choices.count <= 256 else { return "it lists more entries than a tuner writes" }
        guard seconds.isFinite, (0...1e6).contains(seconds) else { return "it took an impossible \(seconds) s" }
        for choice in choices where ![choice.ruleMilliseconds, choice.tunedMilliseconds].allSatisfy({ $0.isFinite && $0 >= 0 }) {
            return "choice \(choice.name) has impossible times"
        }
        let local = Int(min(info.localMemory, UInt64(Int32.max))), group = max(1, info.maxWorkGroupSize)
        for product in products {
            let s = product.shape
            guard ["nn", "nt", "tn", "tt"].contains(s.variant), [s.m, s.n, s.k, s.summed].allSatisfy({ (1...(1 << 24)).contains($0) })
            else { return "it holds an impossible shape \(s)" }
            if let problem = product.config.problem(for: base.kind, localMemory: local, maxGroup: group) {
                return "tiles for \(s): \(problem)"
            }
            guard product.ruleGFLOPS.isFinite, product.tunedGFLOPS.isFinite, product.ruleGFLOPS >= 0, product.tunedGFLOPS >= 0 else {
                return "impossible figures for \(s)"
            }
        }
        if let tiles = convolutionTiles {
            guard base.kind == .cpu else { return "convolution tiles for a GPU, whose convolutions are not staged" }
            if let problem = tiles.problem(for: .cpu, localMemory: local, maxGroup: group) { return "convolution tiles: \(problem)" }
        }
        return applied(to: base).launchProblem(maxGroup: group).map { "launch parameters: \($0)" }
    }
}

/// Where tuned configurations live: `$XDG_CACHE_HOME/kiln/tuning/<device hash>.json` (else
/// `~/.cache/kiln/tuning`), one file per platform, device, driver and Kiln version, written to a
/// temporary name and renamed. `KILN_TUNING=0` makes every device use the rule table;
/// `KILN_TUNING_DIR` names another folder.
public struct TuningCache: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// The cache the environment names, or nil when `KILN_TUNING=0` (or no folder can be named).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> TuningCache? {
        if let flag = environment["KILN_TUNING"], ["0", "false", "no", "off"].contains(flag.lowercased()) { return nil }
        if let dir = environment["KILN_TUNING_DIR"], !dir.isEmpty { return TuningCache(directory: URL(fileURLWithPath: dir)) }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return TuningCache(directory: URL(fileURLWithPath: xdg).appendingPathComponent("kiln/tuning"))
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return TuningCache(directory: URL(fileURLWithPath: home).appendingPathComponent(".cache/kiln/tuning"))
    }

    /// The file for `info`.
    public func url(for info: DeviceInfo) -> URL {
        let key = stableHash([info.platformName, info.platformVersion, info.name, info.driverVersion, kilnVersion]
            .joined(separator: "\u{1}"))
        return directory.appendingPathComponent("\(key).json")
    }

    /// What the cache holds for a device.
    public enum Entry: Sendable, Equatable {
        /// No file: the rule table.
        case none
        /// A file that may be used.
        case tuned(TunedConfiguration)
        /// A file that must not be used, and why (the rule table is used; `kiln tune` replaces it).
        case ignored(String)
    }

    /// The entry for `info`, checked against the rule table `base`. Never throws: a damaged file
    /// is reported, not fatal. Files above 4 MiB are not read.
    public func entry(for info: DeviceInfo, base: KernelConfig) -> Entry {
        let url = url(for: info)
        guard FileManager.default.fileExists(atPath: url.path) else { return .none }
        // A regular file (after links) of at most 4 MiB, read with that limit: not a device, a FIFO
        // or a link to one.
        let target = url.resolvingSymlinksInPath().path
        let attributes = try? FileManager.default.attributesOfItem(atPath: target)
        guard attributes?[.type] as? FileAttributeType == .typeRegular else {
            return .ignored("\(url.path) is not a regular file")
        }
        let limit = 4 << 20
        guard let handle = FileHandle(forReadingAtPath: target) else { return .ignored("\(url.path) cannot be read") }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: limit + 1) ?? Data() else { return .ignored("\(url.path) cannot be read") }
        guard data.count <= limit else { return .ignored("\(url.path) is larger than a tuner writes") }
        let tuned: TunedConfiguration
        do {
            tuned = try JSONDecoder().decode(TunedConfiguration.self, from: data)
        } catch {
            return .ignored("\(url.path) is not a tuning file (\(Self.reason(error)))")
        }
        if let problem = tuned.problem(for: info, base: base) { return .ignored("\(url.path): \(problem)") }
        return .tuned(tuned)
    }

    /// Writes `tuned` for `info` (atomically: a temporary file, then a rename).
    public func store(_ tuned: TunedConfiguration, for info: DeviceInfo) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(tuned), to: url(for: info))
    }

    /// Removes the file for `info`, if any.
    public func remove(for info: DeviceInfo) throws {
        let url = url(for: info)
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): return context.debugDescription
        case DecodingError.keyNotFound(let key, _): return "no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "bad \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "unreadable"
        }
    }
}
