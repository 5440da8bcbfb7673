import COpenCL
import Foundation

/// A built OpenCL program. Kernels are created once and cached by name.
public final class Program: @unchecked Sendable {
    let handle: cl_program
    private let deviceID: cl_device_id
    private let lock = NSLock()
    private var kernels: [String: Kernel] = [:]

    /// Seconds spent creating and building the program.
    public let buildSeconds: Double
    /// Whether it was built from Kiln's on-disk binary cache rather than from source.
    public let fromBinaryCache: Bool

    init(handle: cl_program, deviceID: cl_device_id, buildSeconds: Double, fromBinaryCache: Bool) {
        self.handle = handle
        self.deviceID = deviceID
        self.buildSeconds = buildSeconds
        self.fromBinaryCache = fromBinaryCache
    }

    deinit {
        kernels.removeAll()
        clReleaseProgram(handle)
    }

    /// The names of every kernel in the program (`CL_PROGRAM_KERNEL_NAMES`), sorted.
    public func kernelNames() throws -> [String] {
        var size = 0
        var status = clGetProgramInfo(handle, cl_program_info(CL_PROGRAM_KERNEL_NAMES), 0, nil, &size)
        guard status == CL_SUCCESS, size > 0 else {
            throw DeviceError.openCL(call: "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)", status: CLStatus(status))
        }
        var text = [CChar](repeating: 0, count: size)
        status = clGetProgramInfo(handle, cl_program_info(CL_PROGRAM_KERNEL_NAMES), size, &text, nil)
        guard status == CL_SUCCESS else {
            throw DeviceError.openCL(call: "clGetProgramInfo(CL_PROGRAM_KERNEL_NAMES)", status: CLStatus(status))
        }
        let names = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return names.split(separator: ";").map(String.init).sorted()
    }

    /// The kernel called `name`, created on first use.
    public func kernel(_ name: String) throws -> Kernel {
        lock.lock(); defer { lock.unlock() }
        if let kernel = kernels[name] { return kernel }
        var status: cl_int = 0
        guard let handle = clCreateKernel(handle, name, &status) else {
            throw DeviceError.openCL(call: "clCreateKernel(\"\(name)\")", status: CLStatus(status))
        }
        let kernel = try Kernel(handle: handle, name: name, device: deviceID)
        kernels[name] = kernel
        return kernel
    }

    /// Builds `source` for `device`, from the on-disk binary cache when it holds a valid entry.
    static func build(source: String, options: String, device: Device) throws -> Program {
        let start = DispatchTime.now().uptimeNanoseconds
        func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let cache = device.binaryCache
        let key = BinaryCache.key(source: source, options: options, device: device.info)

        if let cache, let binary = cache.load(key: key),
           let program = try? fromBinary(binary, options: options, device: device) {
            return Program(handle: program, deviceID: device.id, buildSeconds: seconds(), fromBinaryCache: true)
        }

        var status: cl_int = 0
        let program: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            var length = strlen(text)
            return clCreateProgramWithSource(device.context, 1, &pointer, &length, &status)
        }
        guard let program else {
            throw DeviceError.openCL(call: "clCreateProgramWithSource", status: CLStatus(status))
        }
        var id: cl_device_id? = device.id
        status = clBuildProgram(program, 1, &id, options, nil, nil)
        if status != CL_SUCCESS {
            let log = buildLog(program, device.id)
            clReleaseProgram(program)
            throw DeviceError.buildFailed(device: device.info.name, status: CLStatus(status), options: options, log: log)
        }
        if let cache, let binary = binary(of: program) { cache.store(binary, key: key, for: device.info) }
        return Program(handle: program, deviceID: device.id, buildSeconds: seconds(), fromBinaryCache: false)
    }

    private static func fromBinary(_ binary: [UInt8], options: String, device: Device) throws -> cl_program? {
        var status: cl_int = 0, binaryStatus: cl_int = 0
        var id: cl_device_id? = device.id
        var length = binary.count
        let program: cl_program? = binary.withUnsafeBufferPointer { bytes in
            var pointer: UnsafePointer<UInt8>? = bytes.baseAddress
            return clCreateProgramWithBinary(device.context, 1, &id, &length, &pointer, &binaryStatus, &status)
        }
        guard let program, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            if let program { clReleaseProgram(program) }
            return nil
        }
        guard clBuildProgram(program, 1, &id, options, nil, nil) == CL_SUCCESS else {
            clReleaseProgram(program)
            return nil
        }
        return program
    }

    private static func binary(of program: cl_program) -> [UInt8]? {
        var size = 0
        guard clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil)
                == CL_SUCCESS, size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let status = bytes.withUnsafeMutableBufferPointer { buffer in
            var pointer: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return clGetProgramInfo(program, cl_program_info(CL_PROGRAM_BINARIES),
                                    MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &pointer, nil)
        }
        return status == CL_SUCCESS ? bytes : nil
    }

    private static func buildLog(_ program: cl_program, _ device: cl_device_id) -> String {
        var size = 0
        guard clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
                == CL_SUCCESS, size > 0 else { return "" }
        var bytes = [CChar](repeating: 0, count: size)
        _ = clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        return Enumerator.cleanString(bytes)
    }
}

/// A kernel argument: a buffer, a scalar, or a size of local memory.
public protocol KernelArgument {
    /// Sets this value as argument `index` of `kernel`.
    func setArgument(_ kernel: cl_kernel, _ index: cl_uint) -> cl_int
}

extension KernelArgument where Self: BitwiseCopyable {
    /// Passes the value's bytes as a scalar argument (`clSetKernelArg`).
    public func setArgument(_ kernel: cl_kernel, _ index: cl_uint) -> cl_int {
        var value = self
        return clSetKernelArg(kernel, index, MemoryLayout<Self>.size, &value)
    }
}
extension Int32: KernelArgument {}
extension UInt32: KernelArgument {}
extension Int64: KernelArgument {}
extension UInt64: KernelArgument {}
extension Float: KernelArgument {}
/// Eight ints as one OpenCL `int8` argument (the axes of a strided N-d kernel).
extension SIMD8: KernelArgument where Scalar == Int32 {}

extension Buffer: KernelArgument {
    /// Passes the buffer's `cl_mem` handle (`clSetKernelArg`).
    public func setArgument(_ kernel: cl_kernel, _ index: cl_uint) -> cl_int {
        var handle: cl_mem? = mem
        return clSetKernelArg(kernel, index, MemoryLayout<cl_mem>.size, &handle)
    }
}

/// `__local` memory of a given size, as a kernel argument.
public struct LocalMemory: KernelArgument {
    /// The size of the `__local` allocation, in bytes.
    public let bytes: Int
    /// `__local` memory of `bytes` bytes.
    public init(bytes: Int) { self.bytes = bytes }
    /// Reserves `bytes` of `__local` memory for argument `index` (`clSetKernelArg` with no value).
    public func setArgument(_ kernel: cl_kernel, _ index: cl_uint) -> cl_int {
        clSetKernelArg(kernel, index, bytes, nil)
    }
}

/// A kernel of a built program. Setting arguments and enqueueing happen under one lock, so a
/// kernel may be launched from several threads.
public final class Kernel: @unchecked Sendable {
    let handle: cl_kernel
    /// The kernel's function name.
    public let name: String
    /// `CL_KERNEL_WORK_GROUP_SIZE`: the largest work-group this kernel may run with on the device.
    public let maxWorkGroupSize: Int
    /// `CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE` (the warp or wavefront width on a GPU).
    public let preferredMultiple: Int
    private let lock = NSLock()

    init(handle: cl_kernel, name: String, device: cl_device_id) throws {
        self.handle = handle
        self.name = name
        var size = 0, multiple = 0
        try clCheck(clGetKernelWorkGroupInfo(handle, device, cl_kernel_work_group_info(CL_KERNEL_WORK_GROUP_SIZE),
                                             MemoryLayout<Int>.size, &size, nil), "clGetKernelWorkGroupInfo")
        try clCheck(clGetKernelWorkGroupInfo(handle, device,
                                             cl_kernel_work_group_info(CL_KERNEL_PREFERRED_WORK_GROUP_SIZE_MULTIPLE),
                                             MemoryLayout<Int>.size, &multiple, nil), "clGetKernelWorkGroupInfo")
        maxWorkGroupSize = max(size, 1)
        preferredMultiple = max(multiple, 1)
    }

    deinit { clReleaseKernel(handle) }

    /// Enqueues the kernel on `queue` over `global` work-items in groups of `local` (each global
    /// size a multiple of its local size). Returns at once; nothing waits for the device.
    public func launch(on queue: CommandQueue, global: [Int], local: [Int]?, _ arguments: any KernelArgument...) throws {
        try launch(on: queue, global: global, local: local, arguments: arguments)
    }

    /// `launch` with the arguments as an array.
    public func launch(on queue: CommandQueue, global: [Int], local: [Int]?, arguments: [any KernelArgument]) throws {
        guard (1...3).contains(global.count), local == nil || local?.count == global.count else {
            throw DeviceError.invalidArgument("Kernel \(name): work sizes need 1 to 3 dimensions, got global \(global) local \(local ?? []).")
        }
        if let local {
            guard zip(global, local).allSatisfy({ $1 > 0 && $0 % $1 == 0 }) else {
                throw DeviceError.invalidArgument("Kernel \(name): global size \(global) is not a multiple of local size \(local).")
            }
            guard local.reduce(1, *) <= maxWorkGroupSize else {
                throw DeviceError.invalidArgument("Kernel \(name): work-group \(local) exceeds this kernel's limit of \(maxWorkGroupSize) work-items.")
            }
        }
        guard global.allSatisfy({ $0 > 0 }) else { return }  // nothing to do

        lock.lock(); defer { lock.unlock() }
        for (index, argument) in arguments.enumerated() {
            try clCheck(argument.setArgument(handle, cl_uint(index)), "clSetKernelArg(\(name), \(index))")
        }
        var event: cl_event?
        let status: cl_int = withUnsafeMutablePointer(to: &event) { eventPointer in
            let wanted = queue.profiling && queue.profiler.enabled ? eventPointer : nil
            return global.withUnsafeBufferPointer { g in
                guard let local else {
                    return clEnqueueNDRangeKernel(queue.handle, handle, cl_uint(global.count), nil, g.baseAddress, nil,
                                                  0, nil, wanted)
                }
                return local.withUnsafeBufferPointer { l in
                    clEnqueueNDRangeKernel(queue.handle, handle, cl_uint(global.count), nil, g.baseAddress, l.baseAddress,
                                           0, nil, wanted)
                }
            }
        }
        try clCheck(status, "clEnqueueNDRangeKernel(\(name))")
        queue.countLaunch()
        if let event { queue.profiler.record(name, Event(event)) }
    }
}
