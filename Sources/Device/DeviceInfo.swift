import Foundation
import COpenCL

/// The kind of an OpenCL device.
public enum DeviceType: String, Sendable, Codable, CaseIterable {
    case gpu, cpu, accelerator, other
}

/// What OpenCL reports about one device, and where it sits in the listing.
///
/// ```swift
/// for info in try Device.list() { print(info.name, info.selectors) }
/// ```
public struct DeviceInfo: Sendable, Codable, Equatable {
    /// Index of the platform in `clGetPlatformIDs` order, as `clinfo -l` numbers it.
    public var platformIndex: Int
    /// Index of the device on its platform.
    public var deviceIndex: Int
    /// Index among all devices of the same type across platforms (`gpu:1` is the second GPU).
    public var typeIndex: Int
    /// `CL_DEVICE_NAME` (e.g. `NVIDIA H100 80GB HBM3`).
    public var name: String
    /// `CL_DEVICE_VENDOR`.
    public var vendor: String
    /// `CL_PLATFORM_NAME` of the device's platform (e.g. `NVIDIA CUDA`, `Portable Computing Language`).
    public var platformName: String
    /// `CL_PLATFORM_VERSION` of the device's platform (e.g. `OpenCL 3.0 CUDA 12.4.0`).
    public var platformVersion: String
    /// `CL_DRIVER_VERSION`.
    public var driverVersion: String
    /// GPU, CPU, accelerator or other (`CL_DEVICE_TYPE`).
    public var type: DeviceType
    /// `CL_DEVICE_MAX_COMPUTE_UNITS`: SMs on an NVIDIA GPU, CUs on AMD, hardware threads on PoCL.
    public var computeUnits: Int
    /// `CL_DEVICE_MAX_CLOCK_FREQUENCY`, in MHz.
    public var maxClockMHz: Int
    /// `CL_DEVICE_GLOBAL_MEM_SIZE`: the device's memory, in bytes.
    public var globalMemory: UInt64
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE`: the largest single buffer, in bytes.
    public var maxAllocation: UInt64
    /// `CL_DEVICE_LOCAL_MEM_SIZE`: `__local` memory per work-group, in bytes.
    public var localMemory: UInt64
    /// `local` (dedicated on-chip memory) or `global` (ordinary RAM, as on PoCL).
    public var localMemoryType: String
    /// `CL_DEVICE_MAX_WORK_GROUP_SIZE`: the most work-items in one work-group.
    public var maxWorkGroupSize: Int
    /// `CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT`: floats per native SIMD register (8 on AVX2, 16 on AVX-512).
    public var nativeFloatVectorWidth: Int
    /// `CL_DEVICE_OPENCL_C_VERSION` (e.g. `OpenCL C 1.2`).
    public var openCLCVersion: String
    /// Whether the device has `cl_khr_fp16` (half-precision arithmetic).
    public var fp16: Bool
    /// Whether the device has double precision (`CL_DEVICE_DOUBLE_FP_CONFIG` or `cl_khr_fp64`).
    public var fp64: Bool
    /// Whether its queues can record timings (`CL_QUEUE_PROFILING_ENABLE`), which `Profiler` needs.
    public var profiling: Bool
    /// `CL_DEVICE_EXTENSIONS`, one name per element.
    public var extensions: [String]

    /// Describes a device; `Device.list()` makes these from OpenCL, tests may make their own.
    public init(platformIndex: Int, deviceIndex: Int, typeIndex: Int, name: String, vendor: String, platformName: String, platformVersion: String, driverVersion: String, type: DeviceType, computeUnits: Int, maxClockMHz: Int, globalMemory: UInt64, maxAllocation: UInt64, localMemory: UInt64, localMemoryType: String, maxWorkGroupSize: Int, nativeFloatVectorWidth: Int = 1, openCLCVersion: String, fp16: Bool, fp64: Bool, profiling: Bool, extensions: [String]) {
        self.platformIndex = platformIndex
        self.deviceIndex = deviceIndex
        self.typeIndex = typeIndex
        self.name = name
        self.vendor = vendor
        self.platformName = platformName
        self.platformVersion = platformVersion
        self.driverVersion = driverVersion
        self.type = type
        self.computeUnits = computeUnits
        self.maxClockMHz = maxClockMHz
        self.globalMemory = globalMemory
        self.maxAllocation = maxAllocation
        self.localMemory = localMemory
        self.localMemoryType = localMemoryType
        self.maxWorkGroupSize = maxWorkGroupSize
        self.nativeFloatVectorWidth = nativeFloatVectorWidth
        self.openCLCVersion = openCLCVersion
        self.fp16 = fp16
        self.fp64 = fp64
        self.profiling = profiling
        self.extensions = extensions
    }

    /// The selectors that pick this device, most specific last: `gpu`, `gpu:0`, `0:0`.
    public var selectors: [String] {
        var result: [String] = []
        if typeIndex == 0 && type != .other { result.append(type.rawValue) }
        if type != .other { result.append("\(type.rawValue):\(typeIndex)") }
        result.append("\(platformIndex):\(deviceIndex)")
        return result
    }

    /// `platform:device`, as `clinfo -l` numbers them.
    public var location: String { "\(platformIndex):\(deviceIndex)" }
}

// MARK: - Enumeration

/// Raw handles of every device, in listing order.
struct DeviceHandle: @unchecked Sendable {
    let platform: cl_platform_id
    let device: cl_device_id
    let info: DeviceInfo
}

enum Enumerator {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: [DeviceHandle]?

    /// Every device on every platform, enumerated once per process (under a lock: ICD loaders and
    /// drivers are not all safe to enumerate from several threads at once).
    /// Throws `DeviceError.noPlatform` when no ICD is installed.
    static func handles() throws -> [DeviceHandle] {
        lock.lock(); defer { lock.unlock() }
        if let cached { return cached }
        let result = try enumerate()
        cached = result
        return result
    }

    private static func enumerate() throws -> [DeviceHandle] {
        DriverCache.prepared  // before the driver reads its environment
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || count == 0 {
            throw DeviceError.noPlatform(status: status == CL_SUCCESS ? nil : CLStatus(status))
        }
        try clCheck(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try clCheck(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")

        var result: [DeviceHandle] = []
        var typeCounts: [DeviceType: Int] = [:]
        for (p, platform) in platforms.enumerated() {
            guard let platform else { continue }
            var n: cl_uint = 0
            let s = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if s == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try clCheck(s, "clGetDeviceIDs")
            var devices = [cl_device_id?](repeating: nil, count: Int(n))
            try clCheck(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), n, &devices, nil), "clGetDeviceIDs")
            for (d, device) in devices.enumerated() {
                guard let device else { continue }
                var info = try describe(platform: platform, device: device, platformIndex: p, deviceIndex: d)
                info.typeIndex = typeCounts[info.type, default: 0]
                typeCounts[info.type, default: 0] += 1
                result.append(DeviceHandle(platform: platform, device: device, info: info))
            }
        }
        return result
    }

    static func describe(platform: cl_platform_id, device: cl_device_id,
                         platformIndex: Int, deviceIndex: Int) throws -> DeviceInfo {
        let rawType: cl_device_type = try deviceValue(device, CL_DEVICE_TYPE)
        let type: DeviceType =
            rawType & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu
            : rawType & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu
            : rawType & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
        let extensions = try deviceString(device, CL_DEVICE_EXTENSIONS)
            .split(separator: " ").map(String.init)
        let localType: cl_device_local_mem_type = try deviceValue(device, CL_DEVICE_LOCAL_MEM_TYPE)
        let doubleConfig: cl_device_fp_config = try deviceValue(device, CL_DEVICE_DOUBLE_FP_CONFIG)
        let queueProps: cl_command_queue_properties = try deviceValue(device, CL_DEVICE_QUEUE_PROPERTIES)
        let name = try deviceString(device, CL_DEVICE_NAME)
        let vendor = try deviceString(device, CL_DEVICE_VENDOR)
        let platformName = try platformString(platform, CL_PLATFORM_NAME)
        let platformVersion = try platformString(platform, CL_PLATFORM_VERSION)
        let driverVersion = try deviceString(device, CL_DRIVER_VERSION)
        let computeUnits: cl_uint = try deviceValue(device, CL_DEVICE_MAX_COMPUTE_UNITS)
        let clock: cl_uint = try deviceValue(device, CL_DEVICE_MAX_CLOCK_FREQUENCY)
        let globalMemory: cl_ulong = try deviceValue(device, CL_DEVICE_GLOBAL_MEM_SIZE)
        let maxAllocation: cl_ulong = try deviceValue(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE)
        let localMemory: cl_ulong = try deviceValue(device, CL_DEVICE_LOCAL_MEM_SIZE)
        let maxWorkGroup: Int = try deviceValue(device, CL_DEVICE_MAX_WORK_GROUP_SIZE)
        let vectorWidth: cl_uint = try deviceValue(device, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT)
        let cVersion = try deviceString(device, CL_DEVICE_OPENCL_C_VERSION)
        return DeviceInfo(
            platformIndex: platformIndex, deviceIndex: deviceIndex, typeIndex: 0,
            name: name, vendor: vendor, platformName: platformName, platformVersion: platformVersion,
            driverVersion: driverVersion, type: type, computeUnits: Int(computeUnits), maxClockMHz: Int(clock),
            globalMemory: globalMemory, maxAllocation: maxAllocation, localMemory: localMemory,
            localMemoryType: localType == CL_LOCAL ? "local" : localType == CL_GLOBAL ? "global" : "none",
            maxWorkGroupSize: maxWorkGroup, nativeFloatVectorWidth: Int(vectorWidth), openCLCVersion: cVersion,
            fp16: extensions.contains("cl_khr_fp16"),
            fp64: doubleConfig != 0 || extensions.contains("cl_khr_fp64"),
            profiling: queueProps & cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE) != 0,
            extensions: extensions)
    }

    static func deviceString(_ device: cl_device_id, _ param: Int32) throws -> String {
        var size = 0
        try clCheck(clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try clCheck(clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
        return cleanString(bytes)
    }

    static func platformString(_ platform: cl_platform_id, _ param: Int32) throws -> String {
        var size = 0
        try clCheck(clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size), "clGetPlatformInfo")
        var bytes = [CChar](repeating: 0, count: max(size, 1))
        try clCheck(clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil), "clGetPlatformInfo")
        return cleanString(bytes)
    }

    static func deviceValue<T: FixedWidthInteger>(_ device: cl_device_id, _ param: Int32) throws -> T {
        var value: T = 0
        try clCheck(clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil),
                    "clGetDeviceInfo")
        return value
    }

    static func cleanString(_ bytes: [CChar]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.trimmingCharacters(in: .whitespaces)
    }
}
