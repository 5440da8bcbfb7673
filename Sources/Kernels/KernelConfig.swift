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
    /// Work-group sizes of the reduction, softmax and cross-entropy families on a CPU: rows (one
    /// work-item per row), columns (one per `KILN_VEC` columns) and chunks (one per chunk of a full
    /// reduction). GPUs use trees of fixed shape instead.
    public var rowsGroup: Int, columnsGroup: Int, chunksGroup: Int
    /// Chunks of samples per work-group of the batch-norm reductions on a CPU.
    public var batchNormGroup = 16
    /// Matrix-product tiles.
    public var matmul: MatmulConfig
    /// Tiles of the staged convolution products (`KILN_CONV_TM`, `KILN_CONV_TNV`: rows and vectors
    /// of `conv_forward_staged` and `conv_weight_grad_staged`); the rest of `matmul`'s otherwise.
    public var convolution: MatmulConfig
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
        if kind == .cpu, vectorWidth >= 16 {
            // AVX-512 (32 vector registers): `kiln tune` on a 2-core Xeon kept 6–12 rows × 2–4
            // vectors (24 accumulators) for most outer products, and nt products (a Linear
            // forward) 1.9–2.8× faster as a transpose and nn than as dot products. 6 × 2 (12
            // accumulators, for AVX2's 16 registers) is what the tuning on a 2-core EPYC found
            // (BENCHMARKS.md, 2026-12-02 tuning).
            (matmul.tileRows, matmul.vectors, matmul.ntTransposesB) = (8, 3, true)
        } else if kind == .cpu, vectorWidth == 8 {
            // AVX2 keeps 6 × 2, but an nt product (a Linear forward) runs as a transpose and nn:
            // `kiln tune` on a 2-core Zen 3 EPYC found it 1.62× faster for 128 × 256 × 128 and 1.32×
            // for 512³, as both AVX-512 tunings did (BENCHMARKS.md, 2026-12-02, Zen 3). Large
            // products pack their operands into panels: on a Zen 1 EPYC, 1024³ ran at 1.3–1.7× the
            // unpacked kernel, 0.92–1.43× OpenBLAS against 0.64–0.95× (BENCHMARKS.md, 2026-12-02, Zen 1).
            matmul.ntTransposesB = true
            matmul.packsPanels = true
        }
        convolution = matmul
        if kind == .cpu, vectorWidth >= 16 {
            // The staged convolutions: 8 × 2 is what `kiln tune` kept against 8 × 3 on both AVX-512
            // CPUs measured, a Xeon (40.3 → 32.3 ms for the CNN's layers) and a Zen 5 EPYC
            // (16.6 → 15.4 ms) (BENCHMARKS.md, 2026-12-02).
            (convolution.tileRows, convolution.vectors) = (8, 2)
        }
        (rowsGroup, columnsGroup, chunksGroup) = (elementwiseGroup, elementwiseGroup, elementwiseGroup)
    }

    /// Why the launch parameters (not the tiles) cannot be used on a device allowing groups of
    /// `maxGroup` work-items, or nil. Checked before a tuned configuration read from disk is used.
    public func launchProblem(maxGroup: Int) -> String? {
        for (name, value) in [("elementwiseGroup", elementwiseGroup), ("rowsGroup", rowsGroup),
                              ("columnsGroup", columnsGroup), ("chunksGroup", chunksGroup),
                              ("batchNormGroup", batchNormGroup)]
            where !(1...min(maxGroup, 1024)).contains(value) || value & (value - 1) != 0 {
            return "\(name) \(value) is not a power of two within 1...\(min(maxGroup, 1024))"
        }
        return nil
    }

    /// Whether kernels use local-memory trees (GPU) rather than serial loops per row (CPU).
    public var isGPU: Bool { kind == .gpu }

    /// The `-D` definitions, by name.
    public var defines: [String: Int] {
        var all = matmul.defines
        (all["KILN_CONV_TM"], all["KILN_CONV_TNV"]) = (convolution.tileRows, convolution.vectors)
        if all["KILN_VEC"] == nil { all["KILN_VEC"] = vectorWidth }
        if isGPU { all["KILN_GPU"] = 1 }
        return all
    }

    /// The options passed to `clBuildProgram`.
    public var buildOptions: String { buildOptions(productsOnly: false) }

    /// The options of the library's program, or of a products-only one (`KILN_ONLY_MATMUL`: the
    /// matrix products alone, with the tiles' own `KILN_VEC` when they name one).
    public func buildOptions(productsOnly: Bool) -> String {
        var all = defines
        if productsOnly {
            all["KILN_ONLY_MATMUL"] = 1
        } else {
            all["KILN_VEC"] = vectorWidth
        }
        // -w: PoCL's compiler prints its warnings to stderr, which is the user's terminal.
        return (["-cl-std=CL1.2", "-w"] + all.keys.sorted().map { "-D\($0)=\(all[$0] ?? 0)" }).joined(separator: " ")
    }
}

/// Tile sizes of the matrix products (the `KILN_MM_*` build options) and the work-group shape their
/// launcher uses. The CPU tile's vector is `KILN_VEC` wide; GPUs use local-memory tiles of
/// `gpuGroup` work-items, each computing `gpuWork` × `gpuWork` outputs.
///
/// The rule table (`KernelConfig(for:)`) picks one per device; `kiln tune` searches them on the
/// device and keeps the fastest per shape class (`TunedConfiguration`).
public struct MatmulConfig: Sendable, Hashable, Codable {
    /// Rows of C per work-item (`KILN_MM_TM`).
    public var tileRows = 6
    /// Vectors per tile row (`KILN_MM_TNV`): a work-item holds tileRows × vectors accumulators.
    public var vectors = 2
    /// K-slice each work-group of a summed batch finishes before the next, so it stays in cache
    /// (`KILN_MM_KB`).
    public var kBlock = 256
    /// The same for the other outer-product kernels (`KILN_MM_MKB`); 0 builds them without the barrier.
    public var mainKBlock = 0
    /// Rows of group ids walked together (`KILN_MM_SWZ`; 1: row-major order).
    public var swizzle = 4
    /// The nt kernel's dot products: vector width along K (`KILN_MM_DVW`), outputs per sub-tile
    /// (`KILN_MM_DTM` × `KILN_MM_DTN`) and K block (`KILN_MM_DKB`).
    public var dotWidth = 8, dotRows = 3, dotCols = 4, dotKBlock = 1024
    /// Rows of the small kernel's tile (`KILN_MM_STM`) and its vector width (`KILN_MM_SVW`).
    public var smallRows = 2, smallWidth = 8
    /// Whether an nt product (`A · Bᵀ`, a Linear layer's forward) first transposes B into a
    /// scratch buffer and runs the nn kernel, rather than the dot-product kernel (when B is
    /// contiguous and one matrix or one per product).
    public var ntTransposesB = false
    /// Whether a large product (≥ 2²⁶ multiply-adds) whose operand rows lie a multiple of 512
    /// floats apart first copies that operand to rows 16 floats wider (CPU): rows 2 or 4 KiB
    /// apart fall into the same cache sets (measured on PoCL: 1024³ at 100 → 190 GFLOP/s).
    public var padsWideRows = true
    /// Whether a large product (≥ 2²⁶ multiply-adds, one product, at least a tile each way) first
    /// copies op(A) and op(B) into panels of a tile's rows and columns (`matmul_pack`), so that
    /// each work-item reads two sequential streams (`matmul_packed`; CPU). Packing replaces the
    /// wide-row padding and the nt transpose for those products.
    public var packsPanels = false
    /// Work-group shape of the large CPU kernels (tile columns, tile rows).
    public var group = [4, 4]
    /// GPU path: work-items per group along n and m (`KILN_MM_GLX`, `KILN_MM_GLY`), outputs per
    /// work-item along each (`KILN_MM_GW`) and the K slice staged in local memory (`KILN_MM_GK`).
    public var gpuGroup = [16, 8], gpuWork = 4, gpuK = 16
    /// `KILN_VEC` of a products-only program built for these tiles (the tuner's candidates); nil
    /// inside the library's program, whose `KILN_VEC` is `KernelConfig.vectorWidth`.
    public var vectorWidth: Int?

    /// The default tiles.
    public init() {}

    private enum CodingKeys: String, CodingKey {
        case tileRows, vectors, kBlock, mainKBlock, swizzle, dotWidth, dotRows, dotCols, dotKBlock, smallRows, smallWidth
        case ntTransposesB, padsWideRows, packsPanels, group, gpuGroup, gpuWork, gpuK, vectorWidth
    }

    /// Decodes tiles, taking the defaults for keys a file does not have (one written before the
    /// key existed).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        tileRows = try value(.tileRows, tileRows); vectors = try value(.vectors, vectors)
        kBlock = try value(.kBlock, kBlock); mainKBlock = try value(.mainKBlock, mainKBlock)
        swizzle = try value(.swizzle, swizzle); dotWidth = try value(.dotWidth, dotWidth)
        dotRows = try value(.dotRows, dotRows); dotCols = try value(.dotCols, dotCols)
        dotKBlock = try value(.dotKBlock, dotKBlock); smallRows = try value(.smallRows, smallRows)
        smallWidth = try value(.smallWidth, smallWidth); ntTransposesB = try value(.ntTransposesB, ntTransposesB)
        padsWideRows = try value(.padsWideRows, padsWideRows); packsPanels = try value(.packsPanels, packsPanels)
        group = try value(.group, group)
        gpuGroup = try value(.gpuGroup, gpuGroup); gpuWork = try value(.gpuWork, gpuWork); gpuK = try value(.gpuK, gpuK)
        vectorWidth = try c.decodeIfPresent(Int.self, forKey: .vectorWidth)
    }

    /// The `-D` options of these tiles.
    public var defines: [String: Int] {
        var all = ["KILN_MM_TM": tileRows, "KILN_MM_TNV": vectors, "KILN_MM_KB": kBlock, "KILN_MM_SVW": smallWidth,
                   "KILN_MM_STM": smallRows, "KILN_MM_MKB": mainKBlock, "KILN_MM_SWZ": swizzle, "KILN_MM_DVW": dotWidth,
                   "KILN_MM_DTM": dotRows, "KILN_MM_DTN": dotCols, "KILN_MM_DKB": dotKBlock,
                   "KILN_MM_GLX": gpuGroup.first ?? 16, "KILN_MM_GLY": gpuGroup.last ?? 8, "KILN_MM_GW": gpuWork,
                   "KILN_MM_GK": gpuK]
        if let vectorWidth { all["KILN_VEC"] = vectorWidth }
        return all
    }

    /// Whether these tiles compile to the same program as `other` (they may differ in launch
    /// shape, in how nt products run, in padding and in packing, which are not `-D` values).
    public func buildsLike(_ other: MatmulConfig) -> Bool {
        var a = self, b = other
        (a.group, a.ntTransposesB, a.padsWideRows, a.packsPanels) = ([], false, false, false)
        (b.group, b.ntTransposesB, b.padsWideRows, b.packsPanels) = ([], false, false, false)
        return a == b
    }

    /// Why these tiles cannot be built or launched on a device of `kind` with `localMemory` bytes
    /// of local memory and groups of at most `maxGroup` work-items, or nil when they can. Values
    /// read from a file pass through this before anything is compiled.
    public func problem(for kind: DeviceKind, localMemory: Int, maxGroup: Int) -> String? {
        func within(_ name: String, _ value: Int, _ range: ClosedRange<Int>) -> String? {
            range.contains(value) ? nil : "\(name) \(value) is outside \(range.lowerBound)...\(range.upperBound)"
        }
        // The vector types kernels.cl defines its activations for (float4, float8, float16).
        let widths: Set<Int> = [4, 8, 16]
        let checks: [String?] = [
            within("tileRows", tileRows, 1...16), within("vectors", vectors, 1...4),
            within("kBlock", kBlock, 0...4096), within("mainKBlock", mainKBlock, 0...4096),
            within("swizzle", swizzle, 1...64), within("dotRows", dotRows, 1...8), within("dotCols", dotCols, 1...8),
            within("dotKBlock", dotKBlock, 0...4096), within("smallRows", smallRows, 1...16),
            within("gpuWork", gpuWork, 1...8), within("gpuK", gpuK, 1...64),
            widths.contains(dotWidth) ? nil : "dotWidth \(dotWidth) is not 4, 8 or 16",
            widths.contains(smallWidth) ? nil : "smallWidth \(smallWidth) is not 4, 8 or 16",
            vectorWidth.map { [4, 8, 16].contains($0) || (kind == .gpu && $0 == 1) } == false
                ? "vectorWidth \(vectorWidth ?? 0) is not 4, 8 or 16" : nil,
            group.count == 2 && group.allSatisfy({ (1...64).contains($0) }) && group[0] * group[1] <= maxGroup
                ? nil : "group \(group) is not two sizes of 1...64 within \(maxGroup) work-items",
            gpuGroup.count == 2 && gpuGroup.allSatisfy({ (1...64).contains($0) }) && gpuGroup[0] * gpuGroup[1] <= maxGroup
                ? nil : "gpuGroup \(gpuGroup) is not two sizes of 1...64 within \(maxGroup) work-items",
        ]
        if let problem = checks.compactMap({ $0 }).first { return problem }
        if kind == .gpu {
            // Both staged tiles (+1 column each) must fit the device's local memory.
            let (tm, tn) = (gpuGroup[1] * gpuWork, gpuGroup[0] * gpuWork)
            let bytes = 4 * gpuK * (tm + 1 + tn + 1)
            if bytes > localMemory { return "GPU tiles need \(bytes) bytes of local memory; the device has \(localMemory)" }
        }
        return nil
    }

    /// A short description for tables: `6x2v16 swz4 g4x4` (CPU) or `gpu 16x8x4 k16` (GPU).
    public func summary(kind: DeviceKind) -> String {
        switch kind {
        case .gpu: return "gpu \(gpuGroup[0])x\(gpuGroup[1])x\(gpuWork) k\(gpuK)"
        case .cpu:
            var text = "\(tileRows)x\(vectors)" + (vectorWidth.map { "v\($0)" } ?? "")
                + " swz\(swizzle) g\(group[0])x\(group[1]) dot\(dotRows)x\(dotCols)v\(dotWidth)"
            if mainKBlock > 0 { text += " kb\(mainKBlock)" }
            if ntTransposesB { text += " nt=T+nn" }
            if !padsWideRows { text += " nopad" }
            if packsPanels { text += " packed" }
            return text
        }
    }
}
