import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Enumeration and selection")
struct SelectionTests {
    /// Two platforms: a GPU platform with two GPUs and a CPU platform with one CPU.
    static let fake: [DeviceInfo] = {
        func info(_ p: Int, _ d: Int, _ t: Int, _ name: String, _ platform: String, _ type: DeviceType) -> DeviceInfo {
            DeviceInfo(platformIndex: p, deviceIndex: d, typeIndex: t, name: name, vendor: "v",
                       platformName: platform, platformVersion: platform.hasPrefix("Portable") ? "OpenCL 3.0 PoCL 3.1" : "OpenCL 3.0 CUDA", driverVersion: "1",
                       type: type, computeUnits: 1, maxClockMHz: 1, globalMemory: 1 << 30, maxAllocation: 1 << 28,
                       localMemory: 1 << 15, localMemoryType: "local", maxWorkGroupSize: 256,
                       openCLCVersion: "OpenCL C 1.2", fp16: false, fp64: true, profiling: true, extensions: [])
        }
        return [info(0, 0, 0, "pthread-skylake", "Portable Computing Language", .cpu),
                info(1, 0, 0, "NVIDIA H100 80GB HBM3", "NVIDIA CUDA", .gpu),
                info(1, 1, 1, "NVIDIA A100", "NVIDIA CUDA", .gpu)]
    }()

    @Test("enumeration finds the PoCL CPU device with its properties")
    func enumeration() throws {
        let devices = try Device.list()
        let pocl = try #require(devices.first { $0.platformName.contains("Portable Computing Language") },
                                "PoCL is not among \(devices.map(\.name))")
        #expect(pocl.type == .cpu)
        #expect(pocl.computeUnits >= 1)
        #expect(pocl.globalMemory >= pocl.maxAllocation && pocl.maxAllocation > 0)
        #expect(pocl.maxWorkGroupSize >= 1)
        #expect(pocl.openCLCVersion.hasPrefix("OpenCL C"))
        #expect(pocl.selectors.contains("\(pocl.platformIndex):\(pocl.deviceIndex)"))
        #expect(!pocl.extensions.isEmpty)
    }

    @Test("each selector form picks what it should", arguments: [
        ("gpu", 1), ("GPU", 1), ("gpu:0", 1), ("gpu:1", 2), ("cpu", 0), ("cpu:0", 0),
        ("0:0", 0), ("1:0", 1), ("1:1", 2), ("2", 2), ("pocl", 0), ("nvidia", 1), ("h100", 1), ("a100", 2),
        ("Portable", 0), ("cuda", 1),
    ])
    func selectorForms(selector: String, expected: Int) throws {
        #expect(try DeviceSelector.resolve(selector, in: Self.fake) == expected)
    }

    @Test("a bad selector throws an error listing every device", arguments: ["", "gpu:99", "zzz", "1:x", "-1", "cpu:-1", "5:0", "9"])
    func badSelectors(selector: String) {
        do {
            _ = try DeviceSelector.resolve(selector, in: Self.fake)
            Issue.record("\"\(selector)\" should not match")
        } catch let error as DeviceError {
            guard case .noMatchingDevice(let s, _, let available) = error else {
                Issue.record("unexpected error \(error)"); return
            }
            #expect(s == selector)
            #expect(available.count == 3)
            for device in Self.fake {
                #expect(error.description.contains(device.name))
                #expect(error.description.contains(device.selectors.joined(separator: ", ")))
            }
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test("bad selectors on this machine throw the listing error")
    func badSelectorsOnRealDevices() throws {
        let devices = try Device.list()
        for selector in ["", "gpu:99", "zzz", "1:x", "-1"] {
            #expect(throws: DeviceError.self) { try Device.select(selector) }
            do { _ = try Device.select(selector) } catch {
                #expect(String(describing: error).contains(devices[0].name))
            }
        }
    }

    @Test("the default is KILN_DEVICE, else the first GPU, else the first device")
    func defaultDevice() throws {
        #expect(try DeviceSelector.defaultIndex(in: Self.fake, environment: [:]) == 1)
        #expect(try DeviceSelector.defaultIndex(in: [Self.fake[0]], environment: [:]) == 0)
        #expect(try DeviceSelector.defaultIndex(in: Self.fake, environment: ["KILN_DEVICE": "a100"]) == 2)
        #expect(throws: DeviceError.self) {
            try DeviceSelector.defaultIndex(in: Self.fake, environment: ["KILN_DEVICE": "nope"])
        }
    }

    @Test("real selectors open the PoCL device")
    func realSelectors() throws {
        let devices = try Device.list()
        guard let cpu = devices.first(where: { $0.type == .cpu }) else {
            Issue.record("no CPU device among \(devices.map(\.name))"); return
        }
        for selector in cpu.selectors + [String(cpu.name.prefix(7))] {
            #expect(try Device.select(selector).info.name == cpu.name)
        }
        if cpu.platformVersion.contains("PoCL") {
            #expect(try Device.select("pocl").info.name == cpu.name)
        }
    }

    @Test("OpenCL status codes print by name")
    func statusNames() {
        #expect(CLStatus(-54).description == "CL_INVALID_WORK_GROUP_SIZE (-54)")
        #expect(CLStatus(-4).description == "CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)")
        #expect(CLStatus(-11).name == "CL_BUILD_PROGRAM_FAILURE")
        #expect(CLStatus(-9999).description == "CL_UNKNOWN_ERROR (-9999)")
        #expect(DeviceError.openCL(call: "clFoo", status: CLStatus(-5)).description.contains("CL_OUT_OF_RESOURCES (-5)"))
    }
}

@Suite("Buffers and the pool")
struct BufferTests {
    @Test("float buffers round-trip, blocking and not", arguments: [1, 3, 4097, 1_000_000])
    func roundTrip(count: Int) throws {
        let device = try TestDevice.get()
        var rng = SeededGenerator(seed: UInt64(count))
        let values = (0..<count).map { _ in Float.random(in: -1e3...1e3, using: &rng) }
        let a = try device.buffer(values)
        #expect(try a.toArray() == values)

        let b: Buffer<Float> = try device.buffer(count: count)
        var scratch = values.map { $0 * 2 }
        try b.write(scratch, blocking: false)
        scratch.removeAll()  // the upload keeps its own copy
        #expect(try b.readAsync().wait() == values.map { $0 * 2 })
    }

    @Test("Int32 and UInt8 buffers round-trip; fill and copy work")
    func otherTypes() throws {
        let device = try TestDevice.get()
        let ints: [Int32] = (0..<4097).map { Int32($0) * -3 }
        #expect(try device.buffer(ints).toArray() == ints)
        let bytes: [UInt8] = (0..<13).map { UInt8($0 * 19 % 256) }
        #expect(try device.buffer(bytes).toArray() == bytes)

        let x: Buffer<Int32> = try device.buffer(count: 10)
        try x.fill(7)
        try x.fill(-1, offset: 8, count: 2)
        #expect(try x.toArray() == [7, 7, 7, 7, 7, 7, 7, 7, -1, -1])
        let y: Buffer<Int32> = try device.buffer(count: 10)
        try y.fill(0)
        try y.copy(from: x, sourceOffset: 6, offset: 1, count: 4)
        #expect(try y.toArray() == [0, 7, 7, -1, -1, 0, 0, 0, 0, 0])
        #expect(throws: DeviceError.self) { try y.copy(from: x, sourceOffset: 8, count: 4) }
        #expect(throws: DeviceError.self) { try y.write([1, 2, 3], offset: 8) }
    }

    @Test("a zero-size or over-limit request throws a clear error")
    func badSizes() throws {
        let device = try TestDevice.get()
        #expect(throws: DeviceError.self) { let _: Buffer<Float> = try device.buffer(count: 0) }
        let tooMany = Int(device.info.maxAllocation / 4) + 1
        do {
            let _: Buffer<Float> = try device.buffer(count: tooMany)
            Issue.record("an allocation above the device's limit succeeded")
        } catch let error as DeviceError {
            guard case .outOfMemory(let requested, _, let maxAllocation, _, _, _) = error else {
                Issue.record("unexpected error \(error)"); return
            }
            #expect(requested == tooMany * 4)
            #expect(maxAllocation == device.info.maxAllocation)
            #expect(error.description.contains("Out of device memory"))
        }
    }

    @Test("size classes cover the request with little slack")
    func sizeClasses() {
        for bytes in [1, 63, 64, 65, 4096, 4097, 5000, 1 << 20, (1 << 20) + 1, 3_136_000, 1_000_000_007] {
            let size = BufferPool.sizeClass(bytes)
            #expect(size >= bytes)
            #expect(bytes <= 4096 || Double(size) <= Double(bytes) * 1.25)
            #expect(BufferPool.sizeClass(size) == size)
        }
    }

    @Test("the pool reuses released buffers and returns live bytes to zero")
    func poolReuse() throws {
        let device = try Device.makeDefault()  // a private device: counters of its own
        let pool = device.pool
        do {
            let a: Buffer<Float> = try device.buffer(count: 1000)
            let b: Buffer<Float> = try device.buffer(count: 1000)
            #expect(pool.statistics.bytesLive == 2 * BufferPool.sizeClass(4000))
            _ = (a, b)
        }
        #expect(pool.statistics.bytesLive == 0)
        #expect(pool.statistics.bytesCached == 2 * BufferPool.sizeClass(4000))
        let hitsBefore = pool.statistics.hits
        for _ in 0..<10 {
            let c: Buffer<Float> = try device.buffer(count: 990)  // same size class
            try c.fill(1)
        }
        #expect(pool.statistics.hits == hitsBefore + 10)
        #expect(pool.statistics.misses == 2)
        #expect(pool.statistics.peakBytesLive == 2 * BufferPool.sizeClass(4000))
        pool.trim()
        #expect(pool.statistics.bytesCached == 0)
        pool.cacheLimit = 0
        do { let _: Buffer<Float> = try device.buffer(count: 10) }
        #expect(pool.statistics.bytesCached == 0)
    }

    @Test("two threads allocating and freeing concurrently lose nothing")
    func concurrentPool() async throws {
        let device = try Device.makeDefault()
        let pool = device.pool
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<2 {
                group.addTask {
                    for i in 0..<500 {
                        let n = 1 + (i * 37 + t * 11) % 3000
                        let b: Buffer<Float> = try device.buffer(count: n)
                        try b.fill(Float(i))
                    }
                }
            }
            try await group.waitForAll()
        }
        let stats = pool.statistics
        #expect(stats.bytesLive == 0)
        #expect(stats.hits + stats.misses == 1000)
        #expect(stats.misses < 1000)
        pool.trim()
        #expect(pool.statistics.bytesCached == 0)
    }
}

@Suite("Programs and kernels")
struct ProgramTests {
    @Test("embedded kernels.cl equals the file")
    func embeddedSource() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("kernels.cl"), encoding: .utf8)
        #expect(kernelSource == file)
    }

    @Test("a kernel with a syntax error throws with the build log and the CL error name")
    func buildFailure() throws {
        let device = try TestDevice.get()
        let source = "__kernel void broken(__global float* x) { x[0] = 1.0f +; }"
        do {
            _ = try device.program(source: source)
            Issue.record("a broken kernel built")
        } catch let error as DeviceError {
            guard case .buildFailed(let name, let status, _, let log) = error else {
                Issue.record("unexpected error \(error)"); return
            }
            #expect(name == device.info.name)
            #expect(status.name == "CL_BUILD_PROGRAM_FAILURE")
            #expect(log.contains("error"))
            #expect(error.description.contains("CL_BUILD_PROGRAM_FAILURE (-11)"))
        }
    }

    @Test("the disk cache hits on a second build in a fresh context")
    func diskCache() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cache-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = "__kernel void twice(__global float* x) { x[get_global_id(0)] *= 2.0f; } // \(UUID())"

        let first = try Device.makeDefault()
        first.binaryCache = BinaryCache(directory: directory)
        let built = try first.program(source: source)
        #expect(!built.fromBinaryCache)
        #expect(try first.program(source: source) === built)  // programs are cached per context

        let second = try Device.makeDefault()
        second.binaryCache = BinaryCache(directory: directory)
        let loaded = try second.program(source: source)
        #expect(loaded.fromBinaryCache)
        let x = try second.buffer([1, 2, 3] as [Float])
        try loaded.kernel("twice").launch(on: second.queue, global: [3], local: [1], x)
        #expect(try x.toArray() == [2, 4, 6])

        // A damaged entry is ignored and rebuilt, never fatal.
        // One entry: the binary and its description (what `kiln cache` lists).
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(Set(files.map(\.pathExtension)) == ["bin", "json"] && files.count == 2)
        #expect(BinaryCache(directory: directory).entries().first?.description?.device == second.info.name)
        for file in files { try Data("garbage".utf8).write(to: file) }
        let third = try Device.makeDefault()
        third.binaryCache = BinaryCache(directory: directory)
        #expect(try !third.program(source: source).fromBinaryCache)
    }

    @Test("buffer fill and the axpy kernel compute on the device", arguments: [1, 7, 64, 129, 100_003])
    func fillAndAxpy(count: Int) throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let x: Buffer<Float> = try device.buffer(count: count)
        let y = try device.buffer((0..<count).map { Float($0) })
        try x.fill(0.5)
        try kernels.axpy(alpha: 4, x: x, y: y)
        #expect(try y.toArray() == (0..<count).map { Float($0) + 2 })
        let short: Buffer<Float> = try device.buffer(count: count + 1)
        #expect(throws: ShapeError.self) { try kernels.axpy(alpha: 1, x: short, y: y) }
    }

    @Test("a launch with a bad work-group throws before enqueueing")
    func badLaunch() throws {
        let kernels = try TestDevice.kernels()
        let kernel = try kernels.program.kernel(KernelName.ewAxpy.rawValue)
        let x: Buffer<Float> = try kernels.device.buffer(count: 10)
        #expect(throws: DeviceError.self) {
            try kernel.launch(on: kernels.device.queue, global: [10], local: [3], Int32(10), Float(1), x, x)
        }
        #expect(throws: DeviceError.self) {
            try kernel.launch(on: kernels.device.queue, global: [kernel.maxWorkGroupSize * 2],
                              local: [kernel.maxWorkGroupSize * 2], Int32(10), Float(1), x, x)
        }
        #expect(throws: DeviceError.self) { _ = try kernels.program.kernel("no_such_kernel") }
    }

    @Test("a profiling queue records device time per kernel")
    func profiling() throws {
        let device = try Device.makeDefault(profiling: true)
        let kernels = try KernelLibrary(device: device)
        let x: Buffer<Float> = try device.buffer(count: 4096)
        for _ in 0..<3 { try kernels.axpy(alpha: 1, x: x, y: x) }
        let summary = device.queue.profiler.summary()
        let axpy = try #require(summary.first { $0.name == KernelName.ewAxpy.rawValue })
        #expect(axpy.launches == 3)
        #expect(axpy.nanoseconds > 0)
        #expect(device.queue.launches == 3)
    }
}
