import COpenCL
import Foundation
import KilnSupport

/// An opened OpenCL device: its context, one in-order command queue, a buffer pool and the
/// programs built for it. Everything is released when the last reference goes away.
///
/// ```swift
/// let device = try Device.select("cpu")          // or Device.default(), or KILN_DEVICE=gpu
/// let x = try device.buffer([1, 2, 3] as [Float])
/// print(try x.toArray())
/// ```
public final class Device: @unchecked Sendable, CustomStringConvertible {
    /// What OpenCL reports about this device.
    public let info: DeviceInfo
    /// The in-order queue every command of this device goes to.
    public let queue: CommandQueue
    /// The caching allocator every buffer of this device comes from.
    public let pool: BufferPool

    let id: cl_device_id
    let context: cl_context
    private let programs = ProgramCache()
    private let cacheLock = NSLock()
    nonisolated(unsafe) private var diskCache: BinaryCache? = { DriverCache.prepared; return BinaryCache.fromEnvironment() }()

    /// Where built program binaries are kept between runs; nil turns the disk cache off.
    /// Starts as `BinaryCache.fromEnvironment()` (`KILN_CACHE`, `XDG_CACHE_HOME`).
    public var binaryCache: BinaryCache? {
        get { cacheLock.lock(); defer { cacheLock.unlock() }; return diskCache }
        set { cacheLock.lock(); diskCache = newValue; cacheLock.unlock() }
    }

    /// Opens `handle`: creates a context and an in-order queue (with profiling when asked).
    init(_ handle: DeviceHandle, profiling: Bool) throws {
        info = handle.info
        id = handle.device
        var status: cl_int = 0
        var deviceID: cl_device_id? = handle.device
        var properties: [cl_context_properties] = [
            cl_context_properties(CL_CONTEXT_PLATFORM),
            cl_context_properties(Int(bitPattern: UnsafeRawPointer(handle.platform))), 0,
        ]
        guard let context = clCreateContext(&properties, 1, &deviceID, nil, nil, &status) else {
            throw DeviceError.openCL(call: "clCreateContext", status: CLStatus(status))
        }
        self.context = context
        do {
            queue = try CommandQueue(context: context, device: handle.device, profiling: profiling)
            pool = try BufferPool(context: context, info: handle.info)
        } catch {
            clReleaseContext(context)
            throw error
        }
    }

    deinit {
        // Let queued work finish before its buffers and programs are released.
        queue.finish()
        programs.removeAll()
        pool.trim()
        clReleaseContext(context)
    }

    /// The device's name, platform and most specific selector: `NVIDIA H100 [NVIDIA CUDA, 0:0]`.
    public var description: String { "\(info.name) [\(info.platformName), \(info.selectors.last ?? "")]" }

    // MARK: Listing and selection

    /// Every OpenCL device on every platform, in `clinfo -l` order.
    /// Throws `DeviceError.noPlatform` when no OpenCL platform is installed.
    public static func list() throws -> [DeviceInfo] {
        try Enumerator.handles().map(\.info)
    }

    /// Opens the device `selector` picks (`gpu`, `cpu:0`, `0:1`, `nvidia`, ...).
    /// Throws an error listing every device and its selectors when nothing matches.
    public static func select(_ selector: String, profiling: Bool = false) throws -> Device {
        let handles = try Enumerator.handles()
        let index = try DeviceSelector.resolve(selector, in: handles.map(\.info))
        return try Device(handles[index], profiling: profiling)
    }

    /// Opens the default device: `KILN_DEVICE` when set, else the first GPU, else the first device.
    public static func makeDefault(profiling: Bool = false) throws -> Device {
        let handles = try Enumerator.handles()
        let index = try DeviceSelector.defaultIndex(in: handles.map(\.info))
        return try Device(handles[index], profiling: profiling)
    }

    /// Opens `selector` when given, else the default device.
    public static func open(_ selector: String?, profiling: Bool = false) throws -> Device {
        if let selector { return try select(selector, profiling: profiling) }
        return try makeDefault(profiling: profiling)
    }

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedDevice: Device?

    /// One default device per process, opened on first use and kept open.
    public static func shared() throws -> Device {
        sharedLock.lock(); defer { sharedLock.unlock() }
        if let device = sharedDevice { return device }
        let device = try makeDefault()
        sharedDevice = device
        return device
    }

    // MARK: Buffers

    /// A buffer of `count` elements from the pool; its contents are undefined until written.
    public func buffer<Element: DeviceScalar>(_ type: Element.Type = Element.self, count: Int) throws -> Buffer<Element> {
        try Buffer(device: self, count: count)
    }

    /// A buffer holding `values` (a blocking upload).
    public func buffer<Element: DeviceScalar>(_ values: [Element]) throws -> Buffer<Element> {
        let buffer = try Buffer<Element>(device: self, count: values.count)
        try buffer.write(values)
        return buffer
    }

    // MARK: Programs

    /// The program built from `source` with `options`, built once per device and cached; also kept
    /// in the on-disk binary cache (see `BinaryCache`).
    public func program(source: String, options: String = "") throws -> Program {
        try programs.program(source: source, options: options) {
            try Program.build(source: source, options: options, device: self)
        }
    }
}

/// Programs of one context, keyed by source and options.
final class ProgramCache: @unchecked Sendable {
    private let lock = NSLock()
    private var programs: [String: Program] = [:]

    func program(source: String, options: String, build: () throws -> Program) throws -> Program {
        let key = stableHash(source) + "|" + options
        lock.lock(); defer { lock.unlock() }
        if let program = programs[key] { return program }
        let program = try build()
        programs[key] = program
        return program
    }

    func removeAll() {
        lock.lock(); defer { lock.unlock() }
        programs.removeAll()
    }
}
