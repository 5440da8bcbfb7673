import Dispatch
import Foundation
import KilnDevice
import KilnKernels
import KilnSupport

/// Searches the kernels' parameters on the device in hand and keeps the fastest per shape:
/// matrix-product tiles (all four transposes, at the MLP's, the CNN's and square shapes), then the
/// convolution's use of local memory, then the work-group sizes of the reduction, softmax and
/// batch-norm families. Every candidate's products are first checked against a float64 reference
/// on shapes that are not multiples of any tile; one that disagrees is dropped, never timed.
/// Figures are medians of device-side times (profiling events).
///
/// ```swift
/// let device = try Device.open("cpu", profiling: true)
/// let tuner = try Tuner(device: device, budget: 120)
/// let tuned = try tuner.run { print($0.fraction, $0.message) }
/// try TuningCache.fromEnvironment()?.store(tuned, for: device.info)
/// ```
public final class Tuner {
    /// What a search covers.
    public enum Part: String, CaseIterable, Sendable {
        case matmul, conv, groups
    }

    /// One step of the search, for a progress display.
    public struct Progress: Sendable {
        /// Budget used so far, 0...1.
        public var fraction: Double
        public var message: String
    }

    public let device: Device
    /// Seconds the search may take; candidates stop when it is spent (the rule table's figures
    /// are always measured first).
    public let budget: Double
    /// Timed runs per figure (median) and untimed runs before them.
    public var repeats = 5, warmup = 2
    /// The shapes whose tiles are searched.
    public var shapes: [TuningShape]
    /// Parts to search.
    public var parts: Set<Part> = Set(Part.allCases)
    /// The most tile candidates to try (nil: as many as the budget allows).
    public var candidateLimit: Int?
    /// The rule table's library for this device.
    public let rules: KernelLibrary
    /// The check a candidate passes before it is timed: nil, or why its products are wrong
    /// (`TuningCheck.products` by default).
    public var check: (KernelLibrary, MatmulConfig, String) throws -> String? = TuningCheck.products

    private let start = DispatchTime.now().uptimeNanoseconds
    private var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// A tuner for `device` (opened with profiling) spending at most `budget` seconds.
    public init(device: Device, budget: Double, shapes: [TuningShape] = TuningShape.standard) throws {
        guard device.queue.profiling else {
            throw ShapeError("The tuner needs a device opened with profiling (Device.open(_:profiling: true)).")
        }
        guard budget.isFinite, budget > 0 else { throw ShapeError("The tuning budget must be a positive number of seconds.") }
        self.device = device
        self.budget = budget
        self.shapes = shapes
        rules = try KernelLibrary(device: device, config: KernelConfig(for: device.info))
    }

    /// Runs the search and returns what it kept (not yet stored).
    public func run(progress: (Progress) -> Void = { _ in }) throws -> TunedConfiguration {
        var tuned = TunedConfiguration(for: device.info, kind: rules.config.kind)
        rows = []; rejected = []; candidates = 0
        let report = { (message: String) in progress(Progress(fraction: min(1, self.elapsed / self.budget), message: message)) }
        if parts.contains(.matmul) { tuned.products = try searchTiles(report) }
        if parts.contains(.conv), !rules.config.isGPU { try searchStaging(&tuned, report) }
        if parts.contains(.groups), !rules.config.isGPU { try searchGroups(&tuned, report) }
        tuned.seconds = elapsed
        progress(Progress(fraction: 1, message: String(format: "done in %.0f s", elapsed)))
        return tuned
    }

    // MARK: Matrix-product tiles

    /// The second of the budget by which a part must stop: the products' tiles take 60% when the
    /// convolutions follow (85% when only the group sizes do), the convolutions until 85%, the
    /// group sizes (quick: no builds) the rest.
    private func deadline(_ part: Part) -> Double {
        let conv = parts.contains(.conv) && !rules.config.isGPU, groups = parts.contains(.groups) && !rules.config.isGPU
        switch part {
        case .matmul: return budget * (conv ? 0.6 : groups ? 0.85 : 1)
        case .conv: return budget * (groups ? 0.85 : 1)
        case .groups: return budget
        }
    }

    private func searchTiles(_ report: (String) -> Void) throws -> [TunedProduct] {
        let budget = deadline(.matmul)
        let base = rules.config.matmul
        let operands = try shapes.map { try TuningOperands($0, device: device) }
        report("measuring the rule table's tiles (\(base.summary(kind: rules.config.kind)))")
        var ruleFigures = try time(base, operands, in: rules)
        var best: [(ms: Double, config: MatmulConfig)] = ruleFigures.map { ($0, base) }
        struct Tried: Hashable { var config: MatmulConfig, variant: String }
        // Whether shape i runs packed with `tiles` (a single product only).
        func packs(_ i: Int, _ tiles: MatmulConfig) -> Bool { shapes[i].count == 1 && rules.packs(shapes[i].shape, tiles: tiles) }
        var tried: Set<Tried> = Set(["nn", "nt", "tn", "tt"].map { Tried(config: base, variant: $0) })
        var number = 0

        // One candidate: for each variant it may change, build that variant's products program,
        // check it against the reference, then time the variant's shapes.
        func attempt(_ candidate: MatmulConfig, variants: Set<String>) throws {
            let measured = Set(shapes.map(\.shape.variant))
            let variants = variants.filter { measured.contains($0) && tried.insert(Tried(config: candidate, variant: $0)).inserted }
            guard elapsed < budget, !variants.isEmpty, number < (candidateLimit ?? .max) else { return }
            number += 1
            report("candidate \(number): \(candidate.summary(kind: rules.config.kind))")
            for variant in ["nn", "nt", "tn", "tt"] where variants.contains(variant) {
                let indices = shapes.indices.filter { shapes[$0].shape.variant == variant }
                do {
                    _ = try rules.productsProgram(for: candidate, variant: variant)
                    if let mismatch = try check(rules, candidate, variant) {
                        report("candidate \(number) rejected: \(mismatch)")
                        rejected.append("\(candidate.summary(kind: rules.config.kind)): \(mismatch)")
                        return
                    }
                } catch {
                    report("candidate \(number) does not build here: \(error)")
                    rejected.append("\(candidate.summary(kind: rules.config.kind)): \(error)")
                    return
                }
                for i in indices {
                    let ms = try milliseconds { try operands[i].run(rules, tiles: candidate) }
                    if ms < best[i].ms { best[i] = (ms, candidate) }
                }
                // The same tiles with the other choice of packed panels, at the shapes large
                // enough to pack (no extra build: every products program has the packed kernels).
                try attemptPacking(candidate, variant: variant, indices: indices)
                // nt as dot products and through a transpose and the nn kernel of the same tiles:
                // check and time the other form too, at no extra build (nt's program is built, and
                // nn's was built just before).
                var other = candidate
                other.ntTransposesB.toggle()
                if variant == "nt", !rules.config.isGPU, !other.ntTransposesB || variants.contains("nn"),
                   tried.insert(Tried(config: other, variant: "nt")).inserted {
                    if let mismatch = try check(rules, other, "nt") {
                        rejected.append("\(other.summary(kind: rules.config.kind)): \(mismatch)")
                        continue
                    }
                    // (where both pack, both run the same packed kernel: nothing to compare)
                    for i in indices where !(packs(i, candidate) && packs(i, other)) {
                        let ms = try milliseconds { try operands[i].run(rules, tiles: other) }
                        if ms < best[i].ms { best[i] = (ms, other) }
                    }
                }
            }
        }
        // Packing or not at the large shapes, for a candidate already built and timed: a candidate
        // of its own (counted, within the limit), at no extra build.
        func attemptPacking(_ candidate: MatmulConfig, variant: String, indices: [Int]) throws {
            var other = candidate
            other.packsPanels.toggle()
            let large = indices.filter { packs($0, other.packsPanels ? other : candidate) }
            guard !rules.config.isGPU, !large.isEmpty, elapsed < budget, number < (candidateLimit ?? .max),
                  tried.insert(Tried(config: other, variant: variant)).inserted else { return }
            number += 1
            if let mismatch = try check(rules, other, variant) {
                rejected.append("\(other.summary(kind: rules.config.kind)): \(mismatch)")
                return
            }
            for i in large {
                let ms = try milliseconds { try operands[i].run(rules, tiles: other) }
                if ms < best[i].ms { best[i] = (ms, other) }
            }
        }
        let all: Set<String> = ["nn", "nt", "tn", "tt"]
        // The rule table's tiles with the other packing, in the library's own program (no build).
        for variant in ["nn", "nt", "tn", "tt"] {
            try attemptPacking(base, variant: variant, indices: shapes.indices.filter { shapes[$0].shape.variant == variant })
        }
        // The rule table's tiles with nt in its other form first (no build: the library's program);
        // then the first round, which may take 60% of the budget; the refinements the rest.
        var toggled = base
        toggled.ntTransposesB.toggle()
        if !rules.config.isGPU { try attempt(toggled, variants: ["nt"]) }
        for candidate in TuningSpace.tiles(for: rules.config, device: device.info) where elapsed < 0.6 * budget {
            try attempt(candidate, variants: all)
        }
        // Refine each variant's winners (group order and shape, K blocking of the outer products,
        // nt's dot tiles or transpose), taking the variants in turn so that each gets its share.
        var queues: [[MatmulConfig]] = ["nt", "nn", "tn", "tt"].map { variant in
            var winners: [MatmulConfig] = []
            let order = shapes.indices.filter { shapes[$0].shape.variant == variant }
                .sorted { shapes[$0].name.hasPrefix("mlp") && !shapes[$1].name.hasPrefix("mlp") }
            for i in order where !winners.contains(best[i].config) { winners.append(best[i].config) }
            return winners.flatMap { TuningSpace.refinements(of: $0, kind: rules.config.kind, variant: variant) }
        }
        let variants = ["nt", "nn", "tn", "tt"]
        while elapsed < budget, number < (candidateLimit ?? .max), queues.contains(where: { !$0.isEmpty }) {
            for v in queues.indices where !queues[v].isEmpty {
                try attempt(queues[v].removeFirst(), variants: [variants[v]])
            }
        }
        // Confirm each kept shape against the rule table, alternating the two so that a machine
        // whose speed drifts (a shared one) cannot fake a gain.
        for i in shapes.indices where best[i].config != base {
            let rule = ruleFigures[i]
            var ruleTimes = [rule], tunedTimes = [best[i].ms]
            for _ in 0..<2 {
                ruleTimes.append(try milliseconds { try operands[i].run(rules, tiles: base) })
                tunedTimes.append(try milliseconds { try operands[i].run(rules, tiles: best[i].config) })
            }
            ruleFigures[i] = ruleTimes.sorted()[1]
            best[i].ms = tunedTimes.sorted()[1]
        }
        // Keep a shape's tiles where they beat the rule table by more than the noise (3%); record the
        // rule table's where it won, so that a nearby shape is not given another shape's tiles.
        var kept: [TunedProduct] = []
        candidates = number
        for (i, shape) in shapes.enumerated() {
            let rule = ruleFigures[i]
            let keep = best[i].config != base && best[i].ms < 0.97 * rule
            let tunedMs = keep ? best[i].ms : rule
            rows.append(Row(name: shape.name, shape: shape.shape, ruleGFLOPS: shape.flops / (rule * 1e6),
                            tunedGFLOPS: shape.flops / (tunedMs * 1e6),
                            tiles: keep ? rules.summary(of: best[i].config, at: shape.shape, single: shape.count == 1)
                                        : "rule table"))
            kept.append(TunedProduct(shape: shape.shape, config: keep ? best[i].config : base,
                                     ruleGFLOPS: shape.flops / (rule * 1e6), tunedGFLOPS: shape.flops / (tunedMs * 1e6)))
        }
        return kept
    }

    /// One line of the before/after table: a measured shape, the rule table's and the kept tiles'
    /// GFLOP/s (the same when the rule table's were kept).
    public struct Row: Sendable, Codable {
        public var name: String
        public var shape: MatmulShape
        public var ruleGFLOPS: Double, tunedGFLOPS: Double
        public var tiles: String

        public init(name: String, shape: MatmulShape, ruleGFLOPS: Double, tunedGFLOPS: Double, tiles: String) {
            self.name = name; self.shape = shape; self.ruleGFLOPS = ruleGFLOPS; self.tunedGFLOPS = tunedGFLOPS; self.tiles = tiles
        }
    }

    /// The before/after table of the last search's products.
    public private(set) var rows: [Row] = []
    /// Tile candidates built and checked in the last search (the rule table's not counted).
    public private(set) var candidates = 0
    /// Candidates dropped because they did not build or disagreed with the reference.
    public private(set) var rejected: [String] = []

    /// Medians of each shape's device time with `tiles`.
    private func time(_ tiles: MatmulConfig, _ operands: [TuningOperands], in library: KernelLibrary) throws -> [Double] {
        try operands.map { op in try milliseconds { try op.run(library, tiles: tiles) } }
    }

    /// The median device time of `body`, in milliseconds, after `warmup` untimed runs.
    public func milliseconds(_ body: () throws -> Void) throws -> Double {
        for _ in 0..<warmup { try body() }
        device.queue.finish()
        var times: [Double] = []
        for _ in 0..<repeats {
            device.queue.profiler.reset()
            try body()
            device.queue.finish()
            times.append(Double(device.queue.profiler.summary().reduce(0) { $0 + $1.nanoseconds }) / 1e6)
        }
        times.sort()
        return times[times.count / 2]
    }

    // MARK: Convolution staging

    private func searchStaging(_ tuned: inout TunedConfiguration, _ report: (String) -> Void) throws {
        guard elapsed < deadline(.conv) else { return }
        report("convolutions: staged columns against im2col")
        let layers = try ConvolutionOperands.cnn.map { try ConvolutionOperands($0, device: device) }
        func time(_ library: KernelLibrary) throws -> Double {
            try layers.reduce(0) { total, layer in total + (try milliseconds { try layer.step(library) }) }
        }
        var times: [Bool: Double] = [:]
        for staged in [true, false] {
            var config = rules.config
            config.stagesConvolutionColumns = staged
            times[staged] = try time(try KernelLibrary(device: device, config: config, tuned: tuned))
        }
        let rule = rules.config.stagesConvolutionColumns
        guard let ruleMs = times[rule], let otherMs = times[!rule] else { return }
        let chosen = otherMs < 0.97 * ruleMs ? !rule : rule
        tuned.stagesConvolutionColumns = chosen == rule ? nil : chosen
        func name(_ staged: Bool) -> String { staged ? "staged" : "im2col" }
        tuned.choices.append(TunedChoice(name: "conv: CNN forward + gradients", rule: name(rule),
                                         chosen: name(chosen), ruleMilliseconds: ruleMs,
                                         tunedMilliseconds: times[chosen] ?? ruleMs))
        guard chosen else { return }

        // The staged kernels' tiles: each candidate checked against the im2col path of the rule
        // table, then timed on the CNN's layers.
        let base = rules.config.convolution
        let check = try ConvolutionCheck(device: device)
        var best = (ms: times[true] ?? .infinity, tiles: base)
        for candidate in TuningSpace.tiles(for: rules.config, device: device.info, around: base) where elapsed < deadline(.conv) {
            var trial = tuned
            trial.convolutionTiles = candidate
            let library = try KernelLibrary(device: device, config: rules.config, tuned: trial)
            report("convolution tiles: \(candidate.summary(kind: .cpu))")
            do {
                _ = try library.productsProgram(for: candidate, variant: "conv")
                if let mismatch = try check.mismatch(library, reference: rules) {
                    rejected.append("convolution \(candidate.summary(kind: .cpu)): \(mismatch)")
                    continue
                }
            } catch {
                rejected.append("convolution \(candidate.summary(kind: .cpu)): \(error)")
                continue
            }
            let ms = try time(library)
            if ms < best.ms { best = (ms, candidate) }
        }
        guard best.tiles != base, let stagedMs = times[true] else { return }
        // Confirm against the rule table's, alternating.
        var ruleTimes = [stagedMs], tunedTimes = [best.ms]
        var trial = tuned
        trial.convolutionTiles = best.tiles
        let tunedLibrary = try KernelLibrary(device: device, config: rules.config, tuned: trial)
        let ruleLibrary = try KernelLibrary(device: device, config: rules.config, tuned: tuned)
        for _ in 0..<2 {
            ruleTimes.append(try time(ruleLibrary))
            tunedTimes.append(try time(tunedLibrary))
        }
        let (ruleMedian, tunedMedian) = (ruleTimes.sorted()[1], tunedTimes.sorted()[1])
        let keep = tunedMedian < 0.97 * ruleMedian
        if keep { tuned.convolutionTiles = best.tiles }
        tuned.choices.append(TunedChoice(name: "conv: staged tiles", rule: base.summary(kind: .cpu),
                                         chosen: (keep ? best.tiles : base).summary(kind: .cpu),
                                         ruleMilliseconds: ruleMedian, tunedMilliseconds: keep ? tunedMedian : ruleMedian))
    }

    // MARK: Work-group sizes

    private func searchGroups(_ tuned: inout TunedConfiguration, _ report: (String) -> Void) throws {
        let work = try GroupOperands(device: device)
        typealias Setter = (inout KernelConfig, Int) -> Void
        let families: [(String, KeyPath<KernelConfig, Int>, Setter, [Int], (KernelLibrary) throws -> Void)] = [
            ("rows: softmax, cross-entropy", \.rowsGroup, { $0.rowsGroup = $1 }, [8, 16, 32, 64, 128], work.rows),
            ("columns: column sums", \.columnsGroup, { $0.columnsGroup = $1 }, [8, 16, 32, 64, 128], work.columns),
            ("chunks: full reductions", \.chunksGroup, { $0.chunksGroup = $1 }, [8, 16, 32, 64, 128], work.chunks),
            ("batch norm: statistics", \.batchNormGroup, { $0.batchNormGroup = $1 }, [1, 4, 8, 16, 32], work.batchNorm),
        ]
        for (name, path, set, sizes, body) in families {
            guard elapsed < budget else { return }
            report("work-groups: \(name)")
            let rule = rules.config[keyPath: path]
            var figures: [Int: Double] = [:]
            for size in sizes where size <= device.info.maxWorkGroupSize {
                var config = rules.config
                set(&config, size)
                let library = try KernelLibrary(device: device, config: config)
                figures[size] = try milliseconds { try body(library) }
            }
            guard let ruleMs = figures[rule] ?? (try? milliseconds { try body(rules) }),
                  let (size, ms) = figures.min(by: { $0.value < $1.value }) else { continue }
            let chosen = ms < 0.97 * ruleMs ? size : rule
            switch path {
            case \KernelConfig.rowsGroup: tuned.rowsGroup = chosen == rule ? nil : chosen
            case \KernelConfig.columnsGroup: tuned.columnsGroup = chosen == rule ? nil : chosen
            case \KernelConfig.chunksGroup: tuned.chunksGroup = chosen == rule ? nil : chosen
            default: tuned.batchNormGroup = chosen == rule ? nil : chosen
            }
            tuned.choices.append(TunedChoice(name: "group: \(name)", rule: "\(rule)", chosen: "\(chosen)",
                                             ruleMilliseconds: ruleMs, tunedMilliseconds: figures[chosen] ?? ruleMs))
        }
    }
}
