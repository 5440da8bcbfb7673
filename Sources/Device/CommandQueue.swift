import COpenCL
import Foundation
import KilnSupport

/// The in-order command queue of a device. Commands run in the order they were enqueued, which is
/// what lets the pool hand a freed buffer to the next command without waiting.
public final class CommandQueue: @unchecked Sendable {
    let handle: cl_command_queue
    /// Whether commands record start/end times (`CL_QUEUE_PROFILING_ENABLE`).
    public let profiling: Bool
    /// Records each kernel launch's event when `profiling` is on.
    public let profiler: Profiler

    private let counterLock = NSLock()
    private var launchCount = 0

    init(context: cl_context, device: cl_device_id, profiling: Bool) throws {
        var status: cl_int = 0
        let properties = profiling ? cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) : 0
        guard let queue = clCreateCommandQueue(context, device, properties, &status) else {
            throw DeviceError.openCL(call: "clCreateCommandQueue", status: CLStatus(status))
        }
        handle = queue
        self.profiling = profiling
        profiler = Profiler()
    }

    deinit {
        clFinish(handle)
        clReleaseCommandQueue(handle)
    }

    /// Sends queued commands to the device without waiting.
    public func flush() { clFlush(handle) }

    /// Waits until every queued command has finished. Only read-backs and benchmarks call this.
    public func finish() { clFinish(handle) }

    /// Kernel launches enqueued on this queue so far.
    public var launches: Int {
        counterLock.lock(); defer { counterLock.unlock() }
        return launchCount
    }

    func countLaunch() {
        counterLock.lock(); launchCount += 1; counterLock.unlock()
    }
}

/// An OpenCL event: a command's completion and, on a profiling queue, its device-side times.
public final class Event: @unchecked Sendable {
    let handle: cl_event

    init(_ handle: cl_event) { self.handle = handle }
    deinit { clReleaseEvent(handle) }

    /// Blocks until the command has finished.
    public func wait() throws {
        var event: cl_event? = handle
        try clCheck(clWaitForEvents(1, &event), "clWaitForEvents")
    }

    /// Device time from start to end of the command, in nanoseconds (profiling queues only).
    public func durationNanoseconds() throws -> UInt64 {
        try wait()
        var start: cl_ulong = 0, end: cl_ulong = 0
        try clCheck(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_START),
                                            MemoryLayout<cl_ulong>.size, &start, nil), "clGetEventProfilingInfo")
        try clCheck(clGetEventProfilingInfo(handle, cl_profiling_info(CL_PROFILING_COMMAND_END),
                                            MemoryLayout<cl_ulong>.size, &end, nil), "clGetEventProfilingInfo")
        return end >= start ? end - start : 0
    }

    /// Runs `body` once the command completes, on a driver thread.
    func onComplete(_ body: @escaping @Sendable () -> Void) throws {
        let box = Unmanaged.passRetained(CallbackBox(body))
        let status = clSetEventCallback(handle, CL_COMPLETE, { _, _, userData in
            guard let userData else { return }
            let box = Unmanaged<CallbackBox>.fromOpaque(userData).takeRetainedValue()
            box.body()
        }, box.toOpaque())
        if status != CL_SUCCESS {
            box.release()
            throw DeviceError.openCL(call: "clSetEventCallback", status: CLStatus(status))
        }
    }
}

private final class CallbackBox {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Per-kernel device time, gathered from the events of a profiling queue.
public final class Profiler: @unchecked Sendable {
    /// Total device time and launch count of one kernel.
    public struct Entry: Sendable, Codable {
        /// The kernel's function name.
        public var name: String
        /// Launches recorded.
        public var launches: Int
        /// Total device time of those launches, in nanoseconds.
        public var nanoseconds: UInt64
    }

    private let lock = NSLock()
    private var pending: [(String, Event)] = []
    private var totals: [String: Entry] = [:]
    private var isEnabled = true

    /// Set to false to stop recording (events cost a little host time each).
    public var enabled: Bool {
        get { lock.lock(); defer { lock.unlock() }; return isEnabled }
        set { lock.lock(); isEnabled = newValue; lock.unlock() }
    }

    func record(_ name: String, _ event: Event) {
        lock.lock(); defer { lock.unlock() }
        guard isEnabled else { return }
        pending.append((name, event))
        if pending.count >= 4096 { drainLocked() }
    }

    private func drainLocked() {
        for (name, event) in pending {
            let ns = (try? event.durationNanoseconds()) ?? 0
            totals[name, default: Entry(name: name, launches: 0, nanoseconds: 0)].launches += 1
            totals[name, default: Entry(name: name, launches: 0, nanoseconds: 0)].nanoseconds += ns
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Totals per kernel so far, largest device time first. Waits for recorded commands.
    public func summary() -> [Entry] {
        lock.lock(); defer { lock.unlock() }
        drainLocked()
        return totals.values.sorted { $0.nanoseconds > $1.nanoseconds }
    }

    /// The `top` kernels by device time as a table: name, launches, total ms, share of the total.
    public func table(top: Int = 12) -> String {
        let entries = summary()
        let total = max(entries.reduce(0) { $0 + $1.nanoseconds }, 1)
        var lines = ["kernel                         launches    total ms   share"]
        for entry in entries.prefix(top) {
            let name = entry.name.padding(toLength: 30, withPad: " ", startingAt: 0)
            let launches = String(entry.launches).leftPadded(9, with: " ")
            let ms = String(format: "%.2f", Double(entry.nanoseconds) / 1e6).leftPadded(11, with: " ")
            let share = String(format: "%.1f%%", 100 * Double(entry.nanoseconds) / Double(total)).leftPadded(7, with: " ")
            lines.append("\(name) \(launches) \(ms) \(share)")
        }
        lines.append("all kernels: \(String(format: "%.2f", Double(total) / 1e6)) ms device time")
        return lines.joined(separator: "\n")
    }

    /// Forgets everything recorded.
    public func reset() {
        lock.lock(); defer { lock.unlock() }
        pending.removeAll()
        totals.removeAll()
    }
}
