import KilnDevice
import KilnKernels

/// The candidate tiles, in the order the tuner tries them: the most promising first, so that a
/// small budget still covers them.
public enum TuningSpace {
    /// First-round candidates for a device whose rule table is `config`: variations of its matrix
    /// products' tiles, or of `tiles` when given (the staged convolutions').
    ///
    /// CPU: the outer-product tile (rows × vectors) at the native vector width and at the other of
    /// 8 and 16, keeping at least 8 independent accumulators and everything (accumulators, one row
    /// of vectors, the broadcast) within the vector registers (32 with AVX-512, else 16); ordered
    /// by how close the accumulators come to two thirds of the registers (the tuner also times nt
    /// products of each through a transpose and the nn kernel, `ntTransposesB`). GPU: the local-memory
    /// tile's group shape, outputs per work-item and K slice that fit the device.
    public static func tiles(for config: KernelConfig, device info: DeviceInfo, around tiles: MatmulConfig? = nil) -> [MatmulConfig] {
        let base = tiles ?? config.matmul
        let maxGroup = max(1, info.maxWorkGroupSize), local = Int(min(info.localMemory, UInt64(Int32.max)))
        if config.isGPU {
            var candidates: [MatmulConfig] = []
            for group in [[16, 8], [16, 16], [8, 8], [32, 8], [8, 16]] {
                for work in [4, 2, 8] {
                    for k in [16, 8, 32] {
                        var c = base
                        (c.gpuGroup, c.gpuWork, c.gpuK) = (group, work, k)
                        if c != base, c.problem(for: .gpu, localMemory: local, maxGroup: maxGroup) == nil { candidates.append(c) }
                    }
                }
            }
            return candidates
        }
        let native = config.vectorWidth
        let registers = native >= 16 ? 32 : 16
        var scored: [(Double, MatmulConfig)] = []
        for width in [native, native >= 16 ? 8 : 16] where [4, 8, 16].contains(width) {
            let perVector = max(1, width / native)  // registers one vector of `width` takes
            for rows in [4, 6, 8, 12] {
                for vectors in 1...4 {
                    let accumulators = rows * vectors * perVector
                    guard rows * vectors >= 8, accumulators + vectors * perVector + 1 <= registers else { continue }
                    var c = base
                    (c.tileRows, c.vectors, c.vectorWidth) = (rows, vectors, width == native ? nil : width)
                    guard c != base else { continue }
                    let fit = abs(Double(accumulators) - Double(registers) * 2 / 3) + (width == native ? 0 : 4)
                    scored.append((fit, c))
                }
            }
        }
        return scored.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Second-round variations of a first-round winner for one `variant`: the group order and the
    /// work-group shape (every variant), K blocking (the outer products: nn, tn, tt) and the dot
    /// tiles (nt). CPU only; on a GPU, none.
    public static func refinements(of winner: MatmulConfig, kind: DeviceKind, variant: String) -> [MatmulConfig] {
        guard kind == .cpu else { return [] }
        var candidates: [MatmulConfig] = []
        func add(_ change: (inout MatmulConfig) -> Void) {
            var c = winner
            change(&c)
            if c != winner, !candidates.contains(c) { candidates.append(c) }
        }
        if variant == "nt" { add { $0.ntTransposesB = true } }
        if variant != "nt" { for block in [256, 512, 128] { add { $0.mainKBlock = block } } }
        add { $0.padsWideRows.toggle() }
        for group in [[2, 8], [8, 2], [1, 16], [2, 4]] { add { $0.group = group } }
        if variant == "nt" {
            for (width, rows, cols) in [(16, 3, 4), (16, 2, 4), (8, 4, 4), (16, 4, 2), (16, 2, 8), (8, 2, 4)] {
                add { ($0.dotWidth, $0.dotRows, $0.dotCols) = (width, rows, cols) }
            }
        }
        for swizzle in [1, 8] { add { $0.swizzle = swizzle } }
        return candidates
    }
}
