import Foundation
import KilnDevice

/// A shape or size a launcher cannot accept; thrown before anything is enqueued.
public struct ShapeError: Error, Sendable, CustomStringConvertible {
    /// What was wrong, naming the kernel and the shapes.
    public let description: String
    /// An error with the given message.
    public init(_ description: String) { self.description = description }
}

/// The compiled `kernels.cl` for one device, and one typed launcher per kernel (in the files of
/// this module, one family each). Built once per device, with `-D` options chosen for the
/// device (`KernelConfig`). Launchers check shapes, then enqueue without waiting.
///
/// ```swift
/// let device = try Device.shared()
/// let kernels = try KernelLibrary.shared(for: device)
/// let x = try device.buffer([1, 2, 3] as [Float]), y = try device.buffer([1, 1, 1] as [Float])
/// try kernels.axpy(alpha: 2, x: x, y: y)   // y = [3, 5, 7]
/// ```
public final class KernelLibrary: @unchecked Sendable {
    /// The device the kernels run on.
    public let device: Device
    /// Strategy, vector width and tile sizes for this device: the rule table's, with the launch
    /// parameters of `tuned` when there is one.
    public let config: KernelConfig
    /// The built program.
    public let program: Program
    /// What `kiln tune` found for this device (nil: the rule table everywhere). Its per-shape tiles
    /// run as products-only programs, built at their first use (from Kiln's disk cache after the
    /// tuner built them once).
    public let tuned: TunedConfiguration?
    /// Why a tuning file for this device was not used, when one was found and ignored.
    public private(set) var tuningIgnored: String?

    /// Builds (or fetches from the program caches) the kernel library for `device`, with the rule
    /// table's `config` (or the one given) and, optionally, a tuned configuration.
    public init(device: Device, config: KernelConfig? = nil, tuned: TunedConfiguration? = nil) throws {
        self.device = device
        let base = config ?? KernelConfig(for: device.info)
        self.config = tuned?.applied(to: base) ?? base
        self.tuned = tuned
        program = try device.program(source: kernelSource, options: base.buildOptions)
    }

    /// The library `shared(for:)` makes: the rule table with whatever `tuningCache` holds for the
    /// device (`TuningCache.fromEnvironment()` there). A file that must not be used leaves the rule
    /// table in place and its reason in `tuningIgnored`.
    public convenience init(device: Device, tuningCache: TuningCache?) throws {
        let base = KernelConfig(for: device.info)
        switch tuningCache?.entry(for: device.info, base: base) ?? .none {
        case .tuned(let tuned): try self.init(device: device, config: base, tuned: tuned)
        case .none: try self.init(device: device, config: base)
        case .ignored(let reason):
            try self.init(device: device, config: base)
            tuningIgnored = reason
        }
    }

    private let productsLock = NSLock()
    private var validTiles: Set<MatmulConfig> = []
    private var tunedLookups: [MatmulShape: MatmulConfig?] = [:]

    /// Throws when `tiles` cannot run on this device (checked once per tiles).
    func validate(_ tiles: MatmulConfig) throws {
        if productsLock.withLock({ validTiles.contains(tiles) }) { return }
        if let problem = tiles.problem(for: config.kind, localMemory: Int(min(device.info.localMemory, UInt64(Int32.max))),
                                       maxGroup: max(1, device.info.maxWorkGroupSize)) {
            throw ShapeError("matmul: the tiles asked for cannot run here: \(problem).")
        }
        productsLock.withLock { _ = validTiles.insert(tiles) }
    }

    /// The tiles of the staged convolution kernels: the tuned ones, else the rule table's.
    public var convolutionTiles: MatmulConfig { tuned?.convolutionTiles ?? config.convolution }

    /// The program holding the staged convolutions for `convolutionTiles`: the library's own when
    /// they build like the rule table's, else a products program (`conv`); a tuned one that does
    /// not build here falls back to the library's (then `convolutionTiles` is not used).
    func convolutionProgram() -> (Program, MatmulConfig) {
        let tiles = convolutionTiles
        guard !tiles.buildsLike(config.convolution), let program = try? productsProgram(for: tiles, variant: "conv") else {
            return (self.program, config.convolution)
        }
        return (program, tiles)
    }

    /// The tuned tiles for `shape` (nil: the rule table's), looked up once per shape.
    func tunedTiles(for shape: MatmulShape) -> MatmulConfig? {
        guard let tuned else { return nil }
        return productsLock.withLock {
            if let known = tunedLookups[shape] { return known }
            let found = tuned.tiles(for: shape)
            if tunedLookups.count < 4096 { tunedLookups[shape] = found }
            return found
        }
    }

    private struct ProductsKey: Hashable { var tiles: MatmulConfig, variant: String }
    private var productsPrograms: [ProductsKey: Program] = [:]
    private var productsFailures: [ProductsKey: String] = [:]

    /// The products-only program (`KILN_ONLY_MATMUL`) of one transpose `variant` (`nn`, `nt`, `tn`
    /// or `tt`) built for `tiles`: the library's options with the tiles' `-D` values (and their
    /// `KILN_VEC`). It holds that variant's large and small kernels, not the summed-batch ones.
    /// `conv` builds the convolution kernels instead (`KILN_WITH_CONV`: im2col, col2im and the
    /// staged products).
    /// Built once per device and options (tiles that differ only in their launch shape share it).
    public func productsProgram(for tiles: MatmulConfig, variant: String) throws -> Program {
        guard let code = ["nn": 1, "nt": 2, "tn": 3, "tt": 4, "conv": 9][variant] else {
            throw ShapeError("matmul: no variant \"\(variant)\"; the variants are nn, nt, tn, tt and conv.")
        }
        let key = ProductsKey(tiles: tiles, variant: variant)
        return try productsLock.withLock {
            if let program = productsPrograms[key] { return program }
            // A build that failed once is not tried again in this process.
            if let failure = productsFailures[key] { throw ShapeError(failure) }
            var options = config
            (options.matmul, options.convolution) = (tiles, tiles)
            let text = options.buildOptions(productsOnly: true) + " -DKILN_MM_VARIANT=\(code)"
                + (code == 9 ? " -DKILN_WITH_CONV=1" : "")
            do {
                let program = try device.program(source: kernelSource, options: text)
                productsPrograms[key] = program
                return program
            } catch {
                productsFailures[key] = "matmul: the \(variant) products for \(tiles.summary(kind: config.kind)) do not build here: \(error)"
                throw error
            }
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var libraries: [ObjectIdentifier: KernelLibrary] = [:]

    /// The library of `device`, built on first use and kept for the device's lifetime.
    public static func shared(for device: Device) throws -> KernelLibrary {
        try lock.withLock {
            let key = ObjectIdentifier(device)
            if let library = libraries[key], library.device === device { return library }
            let library = try KernelLibrary(device: device, tuningCache: TuningCache.fromEnvironment())
            libraries[key] = library
            return library
        }
    }

    /// Whether the GPU paths were built (`KILN_GPU`).
    var isGPU: Bool { config.isGPU }
    /// `KILN_VEC`: floats per work-item of the element-wise kernels.
    var vec: Int { config.vectorWidth }

    /// Enqueues `kernel` over `global` items (rounded up to a multiple of `local`).
    func launch(_ kernel: KernelName, global: [Int], local: [Int], _ arguments: any KernelArgument...) throws {
        try launch(kernel, global: global, local: local, arguments: arguments)
    }

    func launch(_ name: KernelName, global: [Int], local: [Int], arguments: [any KernelArgument],
                in program: Program? = nil, exact: Bool = false) throws {
        let kernel = try (program ?? self.program).kernel(name.rawValue)
        // A kernel compiled for its group shape (reqd_work_group_size) cannot take a smaller one.
        if exact, local.reduce(1, *) > kernel.maxWorkGroupSize {
            throw ShapeError("\(name.rawValue): a work-group of \(local) is above this device's \(kernel.maxWorkGroupSize) for it; choose smaller GPU tiles (kiln tune --reset).")
        }
        // Shrink the group until it fits this kernel's limit on this device.
        var local = local
        while local.reduce(1, *) > kernel.maxWorkGroupSize, let i = local.indices.max(by: { local[$0] < local[$1] }),
              local[i] > 1 {
            local[i] /= 2
        }
        let rounded = zip(global, local).map { ($0 + $1 - 1) / $1 * $1 }
        try kernel.launch(on: device.queue, global: rounded, local: local, arguments: arguments)
    }

    /// A 1-D launch over `n` items with the device's element-wise group size.
    func launch1D(_ kernel: KernelName, _ n: Int, _ arguments: any KernelArgument...) throws {
        try launch1D(kernel, n, arguments: arguments)
    }

    func launch1D(_ kernel: KernelName, _ n: Int, arguments: [any KernelArgument]) throws {
        try launch(kernel, global: [n], local: [config.elementwiseGroup], arguments: arguments)
    }

    // MARK: Launch shapes shared by the families

    /// Work-items covering `n` floats at `KILN_VEC` per item.
    func chunks(_ n: Int) -> Int { (n + vec - 1) / vec }

    /// A flat launch over `n` floats, `KILN_VEC` per work-item.
    func launchFlat(_ kernel: KernelName, count n: Int, arguments: [any KernelArgument]) throws {
        try launch1D(kernel, chunks(n), arguments: arguments)
    }

    /// Group size of a GPU tree over `n` values: a power of two from 32 to `KILN_TREE` (256).
    func treeGroup(_ n: Int) -> Int {
        var size = 32
        while size < n && size < 256 { size *= 2 }
        return size
    }

    /// Launches a per-row kernel: one work-item per row on a CPU, one tree group per row on a GPU.
    func launchRows(_ kernel: KernelName, rows: Int, cols: Int, _ arguments: any KernelArgument...) throws {
        if isGPU {
            let group = treeGroup(cols)
            try launch(kernel, global: [rows * group], local: [group], arguments: arguments)
        } else {
            try launch(kernel, global: [rows], local: [config.rowsGroup], arguments: arguments)
        }
    }

    /// Launches a per-column kernel over `outer` matrices: one work-item per `KILN_VEC` columns on a
    /// CPU, one group per 32 columns (its items splitting the rows) on a GPU.
    func launchColumns(_ kernel: KernelName, cols: Int, outer: Int, _ arguments: any KernelArgument...) throws {
        if isGPU {
            try launch(kernel, global: [(cols + 31) / 32 * 256, outer], local: [256, 1], arguments: arguments)
        } else {
            try launch(kernel, global: [chunks(cols), outer], local: [config.columnsGroup, 1], arguments: arguments)
        }
    }

    /// The chunk length and number of partials of a two-pass full reduction of `n` values: on a CPU
    /// up to 256 work-items of at least 4096 values; on a GPU up to 1024 groups of 256 items.
    func partials(_ n: Int) -> (chunk: Int, count: Int) {
        let maxParts = isGPU ? 1024 : 256
        var chunk = max(4096, (n + maxParts - 1) / maxParts)
        chunk = (chunk + 63) / 64 * 64
        return (chunk, (n + chunk - 1) / chunk)
    }

    /// Launches a chunked kernel over `parts` chunks: one work-item per chunk on a CPU, one group
    /// of 256 per chunk on a GPU (`tree` kernels only; serial kernels always get one item per chunk).
    func launchChunks(_ kernel: KernelName, parts: Int, tree: Bool, _ arguments: any KernelArgument...) throws {
        if isGPU && tree {
            try launch(kernel, global: [parts * 256], local: [256], arguments: arguments)
        } else {
            try launch(kernel, global: [parts], local: [config.chunksGroup], arguments: arguments)
        }
    }
}

/// Shape checks of the launchers; each throws a `ShapeError` naming the op and shapes.
enum Check {
    /// The most elements a kernel indexes with its `int` arithmetic.
    static let maxElements = Int(Int32.max) - 4096

    /// A matrix of rows × cols with both at least 1 and an `int`-indexable size.
    static func matrix(_ op: String, rows: Int, cols: Int) throws {
        guard rows >= 1, cols >= 1 else {
            throw ShapeError("\(op): shape [\(rows), \(cols)] is empty or negative; rows and cols must be at least 1.")
        }
        guard rows <= maxElements / cols else {
            throw ShapeError("\(op): shape [\(rows), \(cols)] has more than \(maxElements) elements.")
        }
    }

    /// A vector of `n` elements, 1 ≤ n ≤ maxElements.
    static func elements(_ op: String, _ n: Int) throws {
        guard n >= 1, n <= maxElements else {
            throw ShapeError("\(op): \(n) elements; need 1 to \(maxElements).")
        }
    }

    /// `buffer` (called `name`) holds exactly `expected` elements (described as `shape`).
    static func count<T>(_ op: String, _ name: String, _ buffer: Buffer<T>, _ expected: Int, _ shape: String) throws {
        guard buffer.count == expected else {
            throw ShapeError("\(op): \(name) has \(buffer.count) elements but shape \(shape) needs \(expected).")
        }
    }

    /// `buffer` holds exactly `expected` elements (described as "[expected]").
    static func count<T>(_ op: String, _ name: String, _ buffer: Buffer<T>, _ expected: Int) throws {
        try count(op, name, buffer, expected, "[\(expected)]")
    }
}
