import KilnDevice

/// The two strategies kernels.cl is written for. Decided once per device, in `KernelConfig`; every
/// launcher and the build options (`KILN_GPU`) follow it.
public enum DeviceKind: String, Sendable, Equatable, CaseIterable {
    /// One work-item per row or chunk with explicit vectors and serial loops (PoCL and other CPUs).
    case cpu
    /// Local-memory tiles and tree reductions, one element per work-item (GPUs and accelerators).
    case gpu

    /// The kind a device of `type` is built for.
    public init(_ type: DeviceType) {
        self = (type == .gpu || type == .accelerator) ? .gpu : .cpu
    }
}

/// Per-device choices: the strategy, the vector width and the tile sizes, passed to kernels.cl as
/// `-D` build options, and the work-group sizes the launchers use.
///
/// ```swift
/// let device = try Device.shared()
/// let config = KernelConfig(for: device.info)              // the rule table
/// let gpuPath = KernelConfig(for: device.info, kind: .gpu)  // the other path, for tests
/// ```
public struct KernelConfig: Sendable, Equatable {
    /// The strategy (`KILN_GPU` when `.gpu`).
    public var kind: DeviceKind
    /// Floats per vector in hot loops (`KILN_VEC`): the device's SIMD width on a CPU (at least 4;
    /// 8 on AVX2, 16 on AVX-512), 1 on a GPU, which vectorizes across work-items instead.
    public var vectorWidth: Int
    /// Work-group size of 1-D element-wise kernels.
    public var elementwiseGroup: Int
    /// Matrix-product tiles.
    public var matmul: MatmulConfig
    /// Whether convolutions may stage each sample's columns in local memory (CPU devices; see
    /// `KernelLibrary.convolutionStagesColumns`). Off, they always go through global im2col columns.
    public var stagesConvolutionColumns = true

    /// The rule table: CPUs (PoCL) want few large groups and their native vector width; GPUs want
    /// trees and one element per work-item. `kind` overrides the strategy (to test the other path).
    public init(for info: DeviceInfo, kind: DeviceKind? = nil) {
        let kind = kind ?? DeviceKind(info.type)
        self.kind = kind
        switch kind {
        case .gpu:
            vectorWidth = 1
            elementwiseGroup = 256
        case .cpu:
            vectorWidth = [16, 8, 4].first { $0 <= max(info.nativeFloatVectorWidth, 4) } ?? 4
            elementwiseGroup = 64
        }
        matmul = MatmulConfig()
    }

    /// Whether kernels use local-memory trees (GPU) rather than serial loops per row (CPU).
    public var isGPU: Bool { kind == .gpu }

    /// The `-D` definitions, by name.
    public var defines: [String: Int] {
        var all = matmul.defines
        all["KILN_VEC"] = vectorWidth
        if isGPU { all["KILN_GPU"] = 1 }
        return all
    }

    /// The options passed to `clBuildProgram`.
    public var buildOptions: String {
        // -w: PoCL's compiler prints its warnings to stderr, which is the user's terminal.
        (["-cl-std=CL1.2", "-w"] + defines.keys.sorted().map { "-D\($0)=\(defines[$0] ?? 0)" }).joined(separator: " ")
    }
}

/// Tile sizes of the matrix products (the `KILN_MM_*` build options). The CPU tile's vector is
/// `KILN_VEC` wide; GPUs use local-memory tiles of 16 × 16 work-items, each computing 4 × 4 outputs.
public struct MatmulConfig: Sendable, Equatable {
    /// Rows of C per work-item (`KILN_MM_TM`).
    public var tileRows = 6
    /// Vectors per tile row (`KILN_MM_TNV`): a work-item holds tileRows × vectors accumulators.
    public var vectors = 2
    /// K-slice each work-group finishes before the next, so it stays in cache (`KILN_MM_KB`).
    public var kBlock = 256
    /// Rows of the small kernel's tile (`KILN_MM_STM`) and its vector width (`KILN_MM_SVW`).
    public var smallRows = 2, smallWidth = 8

    /// The default tiles.
    public init() {}

    /// The `-D` options of these tiles.
    public var defines: [String: Int] {
        ["KILN_MM_TM": tileRows, "KILN_MM_TNV": vectors, "KILN_MM_KB": kBlock, "KILN_MM_SVW": smallWidth,
         "KILN_MM_STM": smallRows]
    }
}
