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
/// device's type and vendor (`KernelConfig`). Launchers check shapes, then enqueue without waiting.
///
/// ```swift
/// let kernels = try KernelLibrary.shared(for: device)
/// try kernels.axpy(alpha: 2, x: x, y: y)
/// ```
public final class KernelLibrary: @unchecked Sendable {
    /// The device the kernels run on.
    public let device: Device
    /// Tile sizes and strategies for this device.
    public let config: KernelConfig
    /// The built program.
    public let program: Program

    /// Builds (or fetches from the program caches) the kernel library for `device`.
    public init(device: Device, config: KernelConfig? = nil) throws {
        self.device = device
        self.config = config ?? KernelConfig(for: device.info)
        program = try device.program(source: kernelSource, options: self.config.buildOptions)
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var libraries: [ObjectIdentifier: KernelLibrary] = [:]

    /// The library of `device`, built on first use and kept for the device's lifetime.
    public static func shared(for device: Device) throws -> KernelLibrary {
        try lock.withLock {
            let key = ObjectIdentifier(device)
            if let library = libraries[key], library.device === device { return library }
            let library = try KernelLibrary(device: device)
            libraries[key] = library
            return library
        }
    }

    /// Enqueues kernel `name` over `global` items (rounded up to a multiple of `local`).
    func launch(_ name: String, global: [Int], local: [Int], _ arguments: any KernelArgument...) throws {
        try launch(name, global: global, local: local, arguments: arguments)
    }

    func launch(_ name: String, global: [Int], local: [Int], arguments: [any KernelArgument]) throws {
        let kernel = try program.kernel(name)
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
    func launch1D(_ name: String, _ n: Int, _ arguments: any KernelArgument...) throws {
        try launch1D(name, n, arguments: arguments)
    }

    func launch1D(_ name: String, _ n: Int, arguments: [any KernelArgument]) throws {
        try launch(name, global: [n], local: [config.elementwiseGroup], arguments: arguments)
    }
}

/// Per-device choices: tile sizes (as `-D` build options) and work-group sizes.
public struct KernelConfig: Sendable, Equatable {
    /// Work-group size of 1-D element-wise kernels.
    public var elementwiseGroup: Int
    /// Whether reductions use one work-item per row (CPU) or a local-memory tree (GPU).
    public var treeReductions: Bool
    /// Floats per vector in hot loops (`KILN_VEC`): the device's native width (8 on AVX2, 16 on
    /// AVX-512 PoCL, 1 on GPUs, which vectorize across work-items instead).
    public var vectorWidth: Int
    /// Matmul tiles and launch rule.
    public var matmul: MatmulConfig
    /// Extra `-D` definitions.
    public var defines: [String: Int]

    /// The rule table: CPUs (PoCL) want few large groups and wide vectors; GPUs want trees.
    public init(for info: DeviceInfo) {
        switch info.type {
        case .gpu, .accelerator:
            elementwiseGroup = 256
            treeReductions = true
            defines = ["KILN_GPU": 1]
        case .cpu, .other:
            elementwiseGroup = 64
            treeReductions = false
            defines = ["KILN_CPU": 1]
        }
        vectorWidth = [16, 8, 4, 2, 1].first { $0 <= max(info.nativeFloatVectorWidth, 1) } ?? 1
        if info.type == .cpu { vectorWidth = max(vectorWidth, 4) }
        defines["KILN_VEC"] = vectorWidth
        matmul = MatmulConfig(gpu: info.type == .gpu || info.type == .accelerator, vectorWidth: vectorWidth)
    }

    /// The options passed to `clBuildProgram`.
    public var buildOptions: String {
        // -w: PoCL's compiler prints its warnings to stderr, which is the user's terminal.
        let all = defines.merging(matmul.defines) { own, _ in own }
        return (["-cl-std=CL1.2", "-w"] + all.keys.sorted().map { "-D\($0)=\(all[$0] ?? 0)" })
            .joined(separator: " ")
    }
}
