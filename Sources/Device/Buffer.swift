import COpenCL
import Foundation

/// An element type a device buffer can hold.
public protocol DeviceScalar: Sendable, Equatable, BitwiseCopyable {
    static var zero: Self { get }
}
extension Float: DeviceScalar {}
extension Int32: DeviceScalar {}
extension UInt32: DeviceScalar {}
extension Int64: DeviceScalar {}
extension UInt8: DeviceScalar {}

/// A typed buffer in device memory, taken from the device's pool and given back to it when the
/// last reference goes away.
///
/// ```swift
/// let device = try Device.shared()
/// let b: Buffer<Float> = try device.buffer(count: 1024)
/// try b.fill(1)
/// let host = try b.toArray()      // waits for the device
/// ```
public final class Buffer<Element: DeviceScalar>: @unchecked Sendable {
    /// The device the buffer lives on.
    public let device: Device
    /// Number of elements.
    public let count: Int
    let block: PoolBlock

    /// The OpenCL memory object, for kernel arguments.
    public var mem: cl_mem { block.mem }
    /// Size in bytes of the elements (the pool block may be larger).
    public var byteCount: Int { count * MemoryLayout<Element>.stride }

    init(device: Device, count: Int) throws {
        guard count > 0 else {
            throw DeviceError.invalidArgument("Cannot make a device buffer of \(count) elements: a buffer needs at least one element.")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Element>.stride)
        guard !overflow else { throw device.pool.outOfMemory(Int.max, nil) }
        self.device = device
        self.count = count
        block = try device.pool.allocate(bytes: bytes)
    }

    deinit { device.pool.release(block) }

    private func checkRange(_ offset: Int, _ n: Int, _ what: String) throws {
        guard offset >= 0, n >= 0, offset + n <= count else {
            throw DeviceError.invalidArgument(
                "\(what) of \(n) elements at offset \(offset) does not fit a buffer of \(count) elements.")
        }
    }

    /// Copies `values` into the buffer starting at element `offset`.
    /// A non-blocking write returns at once; it keeps its own copy of `values` until the queue has
    /// consumed it, so the caller may change or drop the array straight away.
    public func write(_ values: [Element], offset: Int = 0, blocking: Bool = true) throws {
        try checkRange(offset, values.count, "A write")
        guard !values.isEmpty else { return }
        let queue = device.queue.handle
        let bytes = values.count * MemoryLayout<Element>.stride
        let origin = offset * MemoryLayout<Element>.stride
        if blocking {
            try values.withUnsafeBytes { raw in
                try clCheck(clEnqueueWriteBuffer(queue, mem, cl_bool(CL_TRUE), origin, bytes, raw.baseAddress, 0, nil, nil),
                            "clEnqueueWriteBuffer")
            }
            return
        }
        let staging = HostStaging(copying: values)
        var event: cl_event?
        try clCheck(clEnqueueWriteBuffer(queue, mem, cl_bool(CL_FALSE), origin, bytes, staging.pointer, 0, nil, &event),
                    "clEnqueueWriteBuffer")
        guard let event else { device.queue.finish(); return }
        // The staging copy lives until the write has completed.
        try Event(event).onComplete { withExtendedLifetime(staging) {} }
    }

    /// Reads `n` elements from `offset` (all by default), waiting for the device.
    public func toArray(offset: Int = 0, count n: Int? = nil) throws -> [Element] {
        let n = n ?? count - offset
        try checkRange(offset, n, "A read")
        guard n > 0 else { return [] }
        var result = [Element](repeating: .zero, count: n)
        let queue = device.queue.handle
        try result.withUnsafeMutableBytes { raw in
            try clCheck(clEnqueueReadBuffer(queue, mem, cl_bool(CL_TRUE), offset * MemoryLayout<Element>.stride,
                                            raw.count, raw.baseAddress, 0, nil, nil), "clEnqueueReadBuffer")
        }
        return result
    }

    /// Reads `destination.count` elements from `offset` into `destination`, waiting for the device
    /// (no intermediate array: for copying many buffers into one host array).
    public func read(into destination: UnsafeMutableBufferPointer<Element>, offset: Int = 0) throws {
        try checkRange(offset, destination.count, "A read")
        guard let base = destination.baseAddress, !destination.isEmpty else { return }
        try clCheck(clEnqueueReadBuffer(device.queue.handle, mem, cl_bool(CL_TRUE), offset * MemoryLayout<Element>.stride,
                                        destination.count * MemoryLayout<Element>.stride, base, 0, nil, nil), "clEnqueueReadBuffer")
    }

    /// Writes `source` at `offset`, returning once the device has the data (so `source` need only
    /// live for the call).
    public func write(from source: UnsafeBufferPointer<Element>, offset: Int = 0) throws {
        try checkRange(offset, source.count, "A write")
        guard let base = source.baseAddress, !source.isEmpty else { return }
        try clCheck(clEnqueueWriteBuffer(device.queue.handle, mem, cl_bool(CL_TRUE), offset * MemoryLayout<Element>.stride,
                                         source.count * MemoryLayout<Element>.stride, base, 0, nil, nil), "clEnqueueWriteBuffer")
    }

    /// Starts a read of `n` elements from `offset` without waiting; `PendingRead.wait()` gives them.
    public func readAsync(offset: Int = 0, count n: Int? = nil) throws -> PendingRead<Element> {
        let n = n ?? count - offset
        try checkRange(offset, n, "A read")
        let staging = HostStaging<Element>(count: max(n, 1))
        var event: cl_event?
        try clCheck(clEnqueueReadBuffer(device.queue.handle, mem, cl_bool(CL_FALSE), offset * MemoryLayout<Element>.stride,
                                        n * MemoryLayout<Element>.stride, staging.pointer, 0, nil, &event),
                    "clEnqueueReadBuffer")
        device.queue.flush()
        return PendingRead(staging: staging, count: n, event: event.map(Event.init), source: self)
    }

    /// Sets every element (or `n` from `offset`) to `value`, on the device.
    public func fill(_ value: Element, offset: Int = 0, count n: Int? = nil) throws {
        let n = n ?? count - offset
        try checkRange(offset, n, "A fill")
        guard n > 0 else { return }
        var pattern = value
        let stride = MemoryLayout<Element>.stride
        try clCheck(clEnqueueFillBuffer(device.queue.handle, mem, &pattern, stride, offset * stride, n * stride, 0, nil, nil),
                    "clEnqueueFillBuffer")
    }

    /// Copies `n` elements from `source` (at `sourceOffset`) into this buffer (at `offset`), on the device.
    public func copy(from source: Buffer<Element>, sourceOffset: Int = 0, offset: Int = 0, count n: Int? = nil) throws {
        let n = n ?? min(source.count - sourceOffset, count - offset)
        try source.checkRange(sourceOffset, n, "A copy source")
        try checkRange(offset, n, "A copy")
        guard n > 0 else { return }
        let stride = MemoryLayout<Element>.stride
        try clCheck(clEnqueueCopyBuffer(device.queue.handle, source.mem, mem, sourceOffset * stride, offset * stride,
                                        n * stride, 0, nil, nil), "clEnqueueCopyBuffer")
    }
}

/// A read started by `Buffer.readAsync`; `wait()` returns its elements.
public final class PendingRead<Element: DeviceScalar>: @unchecked Sendable {
    private let staging: HostStaging<Element>
    private let count: Int
    private let event: Event?
    private let source: AnyObject  // the buffer must outlive the read

    init(staging: HostStaging<Element>, count: Int, event: Event?, source: AnyObject) {
        self.staging = staging; self.count = count; self.event = event; self.source = source
    }

    /// Waits for the read and returns the elements.
    public func wait() throws -> [Element] {
        if let event { try event.wait() }
        return Array(UnsafeBufferPointer(start: staging.pointer, count: count))
    }

    deinit { try? event?.wait() }  // never free the staging memory under a running read
}

/// Host memory that an asynchronous transfer reads from or writes to.
final class HostStaging<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int

    init(count: Int) {
        self.count = count
        pointer = .allocate(capacity: count)
    }

    convenience init(copying values: [Element]) {
        self.init(count: values.count)
        _ = UnsafeMutableBufferPointer(start: pointer, count: count).initialize(from: values)
    }

    deinit { pointer.deallocate() }
}
