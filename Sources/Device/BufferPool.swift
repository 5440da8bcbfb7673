import COpenCL
import Foundation

/// A block of device memory handed out by the pool.
struct PoolBlock: @unchecked Sendable {
    let mem: cl_mem
    /// The size class the block belongs to (at least the bytes asked for).
    let bytes: Int
}

/// A caching allocator for device buffers. A released buffer goes back to a free list of its size
/// class and serves the next request of that class without calling OpenCL; the queue is in order,
/// so the next user's commands run after the previous user's. Safe to use from several threads.
///
/// Size classes: powers of two up to 4 KiB, then four classes per octave (at most 19% slack).
public final class BufferPool: @unchecked Sendable {
    /// What the pool holds and has done.
    public struct Statistics: Sendable, Codable, Equatable {
        /// Bytes in buffers handed out and not yet released (size-class bytes).
        public var bytesLive = 0
        /// Bytes in released buffers kept for reuse.
        public var bytesCached = 0
        /// Requests served from the cache.
        public var hits = 0
        /// Requests that called `clCreateBuffer`.
        public var misses = 0
        /// The largest `bytesLive` seen.
        public var peakBytesLive = 0
        /// Buffers handed back to OpenCL by `trim()` or the cache limit.
        public var released = 0

        /// hits ÷ (hits + misses).
        public var hitRate: Double { hits + misses == 0 ? 0 : Double(hits) / Double(hits + misses) }
    }

    private let context: cl_context
    private let info: DeviceInfo
    private let lock = NSLock()
    private var free: [Int: [cl_mem]] = [:]
    private var stats = Statistics()
    private var limit: Int

    init(context: cl_context, info: DeviceInfo) throws {
        clRetainContext(context)
        self.context = context
        self.info = info
        // Keep at most half the device's memory cached by default.
        limit = Int(clamping: info.globalMemory / 2)
    }

    deinit {
        trim()
        clReleaseContext(context)
    }

    /// The most bytes kept in released buffers; past it, released buffers go back to OpenCL.
    public var cacheLimit: Int {
        get { lock.lock(); defer { lock.unlock() }; return limit }
        set {
            lock.lock(); limit = max(0, newValue); lock.unlock()
            shrink(to: newValue)
        }
    }

    /// A snapshot of the pool's counters.
    public var statistics: Statistics {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    /// Zeroes the hit and miss counters (for measuring a steady state).
    public func resetCounters() {
        lock.lock(); defer { lock.unlock() }
        stats.hits = 0; stats.misses = 0; stats.released = 0
        stats.peakBytesLive = stats.bytesLive
    }

    /// Releases every cached buffer to OpenCL.
    public func trim() { shrink(to: 0) }

    /// The size class for a request of `bytes`.
    public static func sizeClass(_ bytes: Int) -> Int {
        if bytes <= 4096 {
            var size = 64
            while size < bytes { size <<= 1 }
            return size
        }
        let octave = 1 << (Int.bitWidth - 1 - (bytes - 1).leadingZeroBitCount)  // largest power ≤ bytes-1
        let step = octave / 4
        return (bytes + step - 1) / step * step
    }

    func allocate(bytes: Int) throws -> PoolBlock {
        guard bytes > 0 else {
            throw DeviceError.invalidArgument("Cannot allocate a buffer of \(bytes) bytes: a buffer needs at least one element.")
        }
        let maxAllocation = Int(clamping: info.maxAllocation)
        guard bytes <= maxAllocation else { throw outOfMemory(bytes, nil) }
        // A class never exceeds the device's single-allocation limit (still ≥ bytes).
        let size = min(Self.sizeClass(bytes), maxAllocation)
        lock.lock()
        if var list = free[size], let mem = list.popLast() {
            free[size] = list.isEmpty ? nil : list
            stats.hits += 1
            stats.bytesCached -= size
            noteLive(size)
            lock.unlock()
            return PoolBlock(mem: mem, bytes: size)
        }
        stats.misses += 1
        lock.unlock()

        var status: cl_int = 0
        var mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status)
        if mem == nil && CLStatus(status).isOutOfMemory {
            trim()  // give the cache back to the device and try once more
            mem = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status)
        }
        guard let mem else {
            let failure = CLStatus(status)
            if failure.isOutOfMemory || status == CL_INVALID_BUFFER_SIZE { throw outOfMemory(bytes, failure) }
            throw DeviceError.openCL(call: "clCreateBuffer(\(size) bytes)", status: failure)
        }
        lock.lock(); noteLive(size); lock.unlock()
        return PoolBlock(mem: mem, bytes: size)
    }

    /// The error for a request the device cannot hold, with its limits.
    func outOfMemory(_ bytes: Int, _ status: CLStatus?) -> DeviceError {
        .outOfMemory(requestedBytes: bytes, device: info.name, maxAllocation: info.maxAllocation,
                     globalMemory: info.globalMemory, liveBytes: statistics.bytesLive, status: status)
    }

    func release(_ block: PoolBlock) {
        lock.lock()
        stats.bytesLive -= block.bytes
        if stats.bytesCached + block.bytes <= limit {
            free[block.bytes, default: []].append(block.mem)
            stats.bytesCached += block.bytes
            lock.unlock()
        } else {
            stats.released += 1
            lock.unlock()
            clReleaseMemObject(block.mem)
        }
    }

    private func noteLive(_ size: Int) {
        stats.bytesLive += size
        stats.peakBytesLive = max(stats.peakBytesLive, stats.bytesLive)
    }

    private func shrink(to target: Int) {
        var victims: [cl_mem] = []
        lock.lock()
        // Largest classes first: they return the most memory for the fewest buffers.
        for size in free.keys.sorted(by: >) where stats.bytesCached > target {
            while stats.bytesCached > target, var list = free[size], let mem = list.popLast() {
                free[size] = list.isEmpty ? nil : list
                stats.bytesCached -= size
                stats.released += 1
                victims.append(mem)
            }
        }
        lock.unlock()
        for mem in victims { clReleaseMemObject(mem) }
    }
}
