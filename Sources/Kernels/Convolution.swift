import KilnDevice

extension KernelLibrary {
    /// Launches im2col: `cols` [N, C·KH·KW, OH·OW] from `x` [N, C, H, W]: for sample n, row (c, i, j)
    /// and column (oh, ow) hold what kernel position (i, j) of window (oh, ow) sees (0 in the
    /// padding). A convolution is then one product per sample, `weight [O, C·KH·KW] · cols[n]`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let window = try WindowGeometry(samples: 1, channels: 1, height: 3, width: 3, kernel: (2, 2))
    /// let x = try device.buffer((1...9).map(Float.init)), cols = try device.buffer(Float.self, count: 4 * 4)
    /// try kernels.im2col(x, window, into: cols)   // rows: the four corners of each 2x2 window
    /// ```
    public func im2col(_ x: Buffer<Float>, _ window: WindowGeometry, into cols: Buffer<Float>) throws {
        let columns = window.samples * window.outputPlane
        try Check.count("im2col \(window)", "x", x, window.inputCount)
        try Check.matrix("im2col \(window)", rows: window.patchSize, cols: columns)
        try Check.count("im2col \(window)", "cols", cols, window.patchSize * columns)
        try launch1D(.convIm2col, window.samples * window.patchSize, arguments: window.arguments + [x, cols])
    }

    /// Launches col2im as a gather: `dx` [N, C, H, W] from `dcols` [N, C·KH·KW, OH·OW], each input
    /// element summing (in a fixed order) the entries of the windows that read it.
    public func col2im(_ dcols: Buffer<Float>, _ window: WindowGeometry, into dx: Buffer<Float>) throws {
        let columns = window.samples * window.outputPlane
        try Check.matrix("col2im \(window)", rows: window.patchSize, cols: columns)
        try Check.count("col2im \(window)", "dcols", dcols, window.patchSize * columns)
        try Check.count("col2im \(window)", "dx", dx, window.inputCount)
        try launch1D(.convCol2im, window.samples * window.channels * window.height, arguments: window.arguments + [dcols, dx])
    }

    // MARK: The convolution's three products

    /// Whether this device runs `window`'s convolution products with each sample's columns staged
    /// in local memory (`conv_*_staged`: a CPU device, where local memory is cached RAM, and a
    /// sample's columns and the products' tile grids fit it), rather than through im2col columns
    /// in global memory and batched matrix products. When false, `convolutionForward` needs a
    /// `columns` buffer [N, C·KH·KW, OH·OW] and `convolutionWeightGradient` reads it back.
    public func convolutionStagesColumns(_ window: WindowGeometry, outChannels o: Int) -> Bool {
        staging(window, outChannels: o) != nil
    }

    /// The staged launch shapes and the program and tiles they run with, or nil when the columns
    /// go through global memory.
    private func staging(_ window: WindowGeometry, outChannels o: Int) -> ConvolutionStaging? {
        guard !isGPU, config.stagesConvolutionColumns else { return nil }
        let (program, tiles) = convolutionProgram()
        guard let plan = StagingPlan(window, outChannels: o, tiles: tiles, vectorWidth: tiles.vectorWidth ?? vec,
                                     localMemory: device.info.localMemory, maxGroup: device.info.maxWorkGroupSize,
                                     computeUnits: device.info.computeUnits) else { return nil }
        return ConvolutionStaging(program: program, plan: plan)
    }

    /// Launches a convolution's forward products: for each sample, `y[n]` [O, OH·OW] =
    /// act(`weight` [O, C·KH·KW] · columns(`x[n]`) + `bias`); `bias` has O elements (one per output
    /// channel). Pass `columns` [N, C·KH·KW, OH·OW] when the device does not stage them
    /// (`convolutionStagesColumns`): it receives the im2col columns for the weight gradient. Without
    /// it, the products run staged.
    public func convolutionForward(_ x: Buffer<Float>, weight: Buffer<Float>, bias: Buffer<Float>?, _ window: WindowGeometry,
                                   outChannels o: Int, activation: Activation? = nil, columns: Buffer<Float>?,
                                   into y: Buffer<Float>) throws {
        let what = "convolutionForward \(window)"
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        try Check.count(what, "x", x, window.inputCount)
        try Check.count(what, "weight", weight, try Strided.count(what, [o, ckk]))
        try Check.count(what, "y", y, try Strided.count(what, [n, o, p]))
        if let bias { try Check.count(what, "bias", bias, o) }
        guard let staged = staging(window, outChannels: o), columns == nil else {
            guard let columns else { throw ShapeError("\(what): this device needs a columns buffer [N, C·KH·KW, OH·OW].") }
            try im2col(x, window, into: columns)
            try matmul(weight, columns, into: y, m: o, n: p, k: ckk, bias: bias, biasPerRow: true, activation: activation,
                       batch: MatmulBatch(count: n, strideA: 0, strideB: ckk * p, strideC: o * p))
            return
        }
        try launchStagedForward(x, weight: weight, bias: bias, window, outChannels: o, activation: activation,
                                plan: staged.plan.forwardPlan, program: staged.program, into: y)
    }

    /// `conv_forward_staged` with `plan` (its tile grid, local memory and channels per chunk).
    private func launchStagedForward(_ x: Buffer<Float>, weight: Buffer<Float>, bias: Buffer<Float>?, _ window: WindowGeometry,
                                     outChannels o: Int, activation: Activation?, plan: StagedForwardPlan,
                                     program: Program, into y: Buffer<Float>) throws {
        guard plan.channels == window.channels || activation == nil else {
            throw ShapeError("convolutionForward \(window): an activation cannot be fused into a product staged in chunks of channels.")
        }
        let flags = (bias != nil ? 2 : 0) | 4 | Int(activation?.code ?? 0) << 4
        try launch(.convForwardStaged, global: plan.grid + [window.samples], local: plan.grid + [1],
                   arguments: window.arguments + [Int32(o), Int32(flags), activation?.parameter ?? 0, Int32(plan.channels),
                                                  x, weight, bias ?? weight, y] + plan.local.map(LocalMemory.init(bytes:)),
                   in: program)
    }

    /// Launches a convolution's weight gradient: `dw` [O, C·KH·KW] = Σₙ `dy[n]` [O, OH·OW] ·
    /// columns(`x[n]`)ᵀ, from the input `x` (staged) or the `columns` the forward pass wrote. Fixed
    /// order, no atomics: the same inputs give the same bits.
    ///
    /// Without staging, both operands run along the positions, which makes each output a dot
    /// product (the nt kernel); when the output has enough tiles to keep every core busy, `dy` is
    /// first transposed per sample ([N, OH·OW, O], a small copy) so that the product runs as outer
    /// products instead (the summed tt kernel, written transposed).
    public func convolutionWeightGradient(gradOutput dy: Buffer<Float>, input x: Buffer<Float>, columns: Buffer<Float>?,
                                          _ window: WindowGeometry, outChannels o: Int, into dw: Buffer<Float>) throws {
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        let what = "convolutionWeightGradient \(window)"
        let count = try Strided.count(what, [n, o, p])
        try Check.count(what, "dy", dy, count)
        try Check.count(what, "x", x, window.inputCount)
        try Check.count(what, "dw", dw, try Strided.count(what, [o, ckk]))
        if columns == nil, let staged = staging(window, outChannels: o) {
            let plan = staged.plan
            let partial = plan.groups == 1 ? dw : try device.buffer(Float.self, count: plan.groups * o * ckk)
            try launch(.convWeightGradStaged, global: plan.weight + [plan.groups], local: plan.weight + [1],
                       arguments: window.arguments + [Int32(o), Int32(plan.perGroup), Int32(plan.chunk), x, dy, partial]
                           + plan.weightLocal.map(LocalMemory.init(bytes:)),
                       in: staged.program)
            if plan.groups > 1 { try reduce(.sum, partial, rows: plan.groups, cols: o * ckk, axis: .eachColumn, into: dw) }
            return
        }
        guard let columns else { throw ShapeError("\(what): this device needs the forward pass's columns.") }
        try Check.count(what, "columns", columns, try Strided.count(what, [n, ckk, p]))
        guard weightGradientRunsAsOuterProducts(outChannels: o, patchSize: ckk) else {
            try matmul(dy, columns, into: dw, m: o, n: ckk, k: p, transposeB: true,
                       batch: .sum(count: n, strideA: o * p, strideB: ckk * p))
            return
        }
        let dyT = try device.buffer(Float.self, count: count)
        try transpose(dy, rows: o, cols: p, batch: n, into: dyT)
        try matmul(dyT, columns, into: dw, m: o, n: ckk, k: p, transposeA: true, transposeB: true,
                   batch: .sum(count: n, strideA: o * p, strideB: ckk * p))
    }

    /// Whether the unstaged `convolutionWeightGradient` transposes `dy` and runs outer products: a
    /// CPU device, and at least 16 full tiles of the [C·KH·KW, O] output (fewer leave cores idle,
    /// and the dot products of the nt kernel split the work more finely).
    public func weightGradientRunsAsOuterProducts(outChannels o: Int, patchSize ckk: Int) -> Bool {
        !isGPU && StagingPlan.outerProductTiles(outChannels: o, patchSize: ckk, tiles: config.matmul, vec: vec)
    }

    /// Launches a convolution's input gradient: `dx` [N, C, H, W] = col2im(`weight`ᵀ · `dy[n]`) for
    /// each sample. With stride 1 on a staging device it runs as a forward convolution instead:
    /// `dy` convolved with the weights turned half a turn (`[C, O, KH, KW]`, padding
    /// `(K − 1)·D − P`), so no column gradient reaches global memory; otherwise through a scratch
    /// buffer of column gradients and col2im.
    public func convolutionInputGradient(gradOutput dy: Buffer<Float>, weight: Buffer<Float>, _ window: WindowGeometry,
                                         outChannels o: Int, into dx: Buffer<Float>) throws {
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        let what = "convolutionInputGradient \(window)"
        try Check.count(what, "dy", dy, try Strided.count(what, [n, o, p]))
        try Check.count(what, "weight", weight, try Strided.count(what, [o, ckk]))
        try Check.count(what, "dx", dx, window.inputCount)
        if let (transposed, plan, program) = inputGradientStaging(window, outChannels: o) {
            let flipped = try device.buffer(Float.self, count: o * ckk)
            try launch1D(.convWeightFlip, o * ckk, Int32(o), Int32(window.channels), Int32(window.kernel.0),
                         Int32(window.kernel.1), weight, flipped)
            try launchStagedForward(dy, weight: flipped, bias: nil, transposed, outChannels: window.channels,
                                    activation: nil, plan: plan, program: program, into: dx)
            return
        }
        let dcols = try device.buffer(Float.self, count: try Strided.count(what, [n, ckk, p]))
        try matmul(weight, dy, into: dcols, m: ckk, n: p, k: o, transposeA: true,
                   batch: MatmulBatch(count: n, strideA: 0, strideB: o * p, strideC: ckk * p))
        try col2im(dcols, window, into: dx)
    }

    /// How `convolutionInputGradient` stages `window`'s input gradient as a forward convolution of
    /// `dy` (stride 1 on a staging device; dy's channels all at once or in chunks), or nil when it
    /// runs through column gradients and col2im.
    public func convolutionInputGradientPlan(_ window: WindowGeometry, outChannels o: Int) -> StagedForwardPlan? {
        inputGradientStaging(window, outChannels: o)?.1
    }

    /// The transposed window, the staged forward plan and its program for `window`'s input gradient, or nil.
    private func inputGradientStaging(_ window: WindowGeometry, outChannels o: Int)
        -> (WindowGeometry, StagedForwardPlan, Program)? {
        guard !isGPU, config.stagesConvolutionColumns, let transposed = transposedWindow(window, outChannels: o) else { return nil }
        let (program, tiles) = convolutionProgram()
        // As when it needed the transposed window's whole staging: enough tiles of its weight
        // gradient's shape (the rule the staged products were measured with).
        guard StagingPlan.outerProductTiles(outChannels: window.channels, patchSize: transposed.patchSize, tiles: tiles,
                                            vec: tiles.vectorWidth ?? vec) else { return nil }
        guard let plan = StagedForwardPlan(transposed, outChannels: window.channels, tiles: tiles,
                                           vectorWidth: tiles.vectorWidth ?? vec, localMemory: device.info.localMemory,
                                           maxGroup: device.info.maxWorkGroupSize) else { return nil }
        return (transposed, plan, program)
    }

    /// The window whose forward convolution of `dy` [N, O, OH, OW] gives a stride-1 convolution's
    /// input gradient, or nil (another stride, or a padding above `(K − 1)·D`).
    private func transposedWindow(_ window: WindowGeometry, outChannels o: Int) -> WindowGeometry? {
        guard window.stride == (1, 1) else { return nil }
        let pad = ((window.kernel.0 - 1) * window.dilation.0 - window.padding.0,
                   (window.kernel.1 - 1) * window.dilation.1 - window.padding.1)
        guard pad.0 >= 0, pad.1 >= 0,
              let transposed = try? WindowGeometry(samples: window.samples, channels: o, height: window.outputHeight,
                                                   width: window.outputWidth, kernel: window.kernel, padding: pad,
                                                   dilation: window.dilation),
              transposed.outputHeight == window.height, transposed.outputWidth == window.width else { return nil }
        return transposed
    }
}

/// A staged convolution's plan and the program it runs in.
private struct ConvolutionStaging {
    var program: Program
    var plan: StagingPlan
}

/// Launch shapes of the staged convolution kernels (`conv_forward_staged`, `conv_weight_grad_staged`)
/// for one window on a CPU device: each product's tile grid (one work-group), the bytes of each
/// `__local` argument, and the weight gradient's groups of samples.
///
/// ```swift
/// // The CNN's second convolution at batch 128, on a core whose cache PoCL reports as 1 MiB.
/// let window = try WindowGeometry(samples: 128, channels: 32, height: 14, width: 14, kernel: (3, 3), padding: (1, 1))
/// var tiles = MatmulConfig()
/// (tiles.tileRows, tiles.vectors) = (8, 2)
/// let plan = StagingPlan(window, outChannels: 64, tiles: tiles, vectorWidth: 16, localMemory: 1 << 20,
///                        maxGroup: 4096, computeUnits: 2)   // non-nil: staged
/// ```
public struct StagingPlan: Sendable, Equatable {
    /// The tile grids of the forward product ([O, OH·OW]) and of the weight gradient ([C·KH·KW, O]).
    public var forward: [Int], weight: [Int]
    /// Bytes of the `__local` arguments of each kernel.
    public var forwardLocal: [Int], weightLocal: [Int]
    /// Samples per group of the weight gradient, the groups, and the samples staged at a time.
    public var perGroup: Int, groups: Int, chunk: Int

    /// The forward product's launch: all of a sample's channels at once.
    public var forwardPlan: StagedForwardPlan {
        StagedForwardPlan(grid: forward, local: forwardLocal, channels: channels)
    }
    private var channels: Int

    /// The plan for `window` with `outChannels` outputs and `tiles` (vectors of `vectorWidth`
    /// floats), or nil when the kernels cannot stage it on a device with `localMemory` bytes of
    /// local memory, groups of `maxGroup` and `computeUnits` cores: too few tiles for the weight
    /// gradient's outer products, a group too large, or a staged block that does not fit.
    ///
    /// PoCL sizes local memory after a core's cache. The staged block and the products' other
    /// operand (the weights, O × C·KH·KW floats) must fit in three quarters of it together,
    /// leaving a quarter for the output rows streaming through.
    public init?(_ window: WindowGeometry, outChannels o: Int, tiles: MatmulConfig, vectorWidth vec: Int,
                 localMemory: UInt64, maxGroup: Int, computeUnits: Int) {
        guard let sizes = StagedSizes(window, outChannels: o, tiles: tiles, vectorWidth: vec, localMemory: localMemory,
                                      maxGroup: maxGroup) else { return nil }
        let (n, ckk) = (window.samples, window.patchSize)
        // Staged, the weight gradient runs as outer products: that needs enough tiles, as unstaged.
        // (Staging the CNN's first layer, 32 outputs from one channel, with one full tile each way
        // was slower on a Zen 3 EPYC: about 4.3 s of device time per epoch against 2.7 s through im2col.)
        guard Self.outerProductTiles(outChannels: o, patchSize: ckk, tiles: tiles, vec: vec) else { return nil }
        forward = sizes.grid(o, window.outputPlane)
        // The weight gradient's group also stages: at least 64 work-items (those past the tiles only stage).
        weight = sizes.grid(ckk, o)
        weight[1] = max(weight[1], (64 + weight[0] - 1) / weight[0])
        // (Half the local memory for the block alone, as before, sent the CNN's input gradient
        // through col2im on a Zen 5 core with 1 MiB: 1.4 s more per epoch.)
        let (plane, columns, dyT, slack) = (sizes.plane, sizes.columns, sizes.dyT, sizes.slack)
        let budget = sizes.budget - sizes.weights
        // Each part within the budget before any sum, so the sums cannot overflow.
        guard plane <= budget, columns <= budget, dyT <= budget else { return nil }
        let perSample = plane + columns + dyT
        guard plane + slack + columns <= budget, perSample + slack <= budget,
              [forward, weight].allSatisfy({ $0[0] * $0[1] <= sizes.largestGroup }) else { return nil }
        // The weight gradient's samples in groups (partial sums added afterwards, in order): a few per core.
        let groupCount = min(n, max(2, 4 * computeUnits))
        perGroup = (n + groupCount - 1) / groupCount
        chunk = max(1, min(perGroup, (budget - slack) / perSample))
        forwardLocal = [4 * (plane + slack), 4 * columns]
        weightLocal = [4 * (chunk * plane + slack), 4 * chunk * columns, 4 * chunk * dyT]
        groups = (n + perGroup - 1) / perGroup
        channels = window.channels
    }

    /// At least 16 full tiles of `tiles` (vectors `vec` wide) in the [C·KH·KW, O] output.
    static func outerProductTiles(outChannels o: Int, patchSize ckk: Int, tiles: MatmulConfig, vec: Int) -> Bool {
        let (columnTiles, rowTiles) = (o / (tiles.vectors * vec), ckk / tiles.tileRows)
        return columnTiles >= 1 && rowTiles >= 1 && columnTiles * rowTiles >= 16
    }
}

/// The launch of `conv_forward_staged` alone, for a product that needs no staged weight gradient
/// (a stride-1 convolution's input gradient, run as the forward convolution of dy): its tile grid,
/// the bytes of its `__local` arguments, and the input channels staged at a time. A sample whose
/// columns do not fit the local memory is staged in chunks of channels, each adding its product
/// into the output.
///
/// ```swift
/// // The CNN's second input gradient (dy: 64 channels, 14 × 14, into 32) on a core of 512 KiB.
/// let dyWindow = try WindowGeometry(samples: 128, channels: 64, height: 14, width: 14, kernel: (3, 3), padding: (1, 1))
/// let plan = StagedForwardPlan(dyWindow, outChannels: 32, tiles: MatmulConfig(), vectorWidth: 8,
///                              localMemory: 512 << 10, maxGroup: 4096)
/// // plan?.channels == 32: two chunks of 32 channels
/// ```
public struct StagedForwardPlan: Sendable, Equatable {
    /// The tile grid of the product [O, OH·OW] (one work-group per sample).
    public var grid: [Int]
    /// Bytes of the `__local` arguments: a chunk's padded planes (with their slack) and its columns.
    public var local: [Int]
    /// Input channels staged at a time.
    public var channels: Int

    init(grid: [Int], local: [Int], channels: Int) {
        (self.grid, self.local, self.channels) = (grid, local, channels)
    }

    /// The plan for `window` into `outChannels` with `tiles` (vectors of `vectorWidth` floats), or
    /// nil when not even one channel's staged block fits with its weights in three quarters of
    /// `localMemory`, the product is smaller than one tile either way, or the tile grid exceeds a
    /// group of `maxGroup`. The channels are split into the fewest chunks that fit, all of one size
    /// but the last, which may be shorter.
    public init?(_ window: WindowGeometry, outChannels o: Int, tiles: MatmulConfig, vectorWidth vec: Int,
                 localMemory: UInt64, maxGroup: Int) {
        guard let sizes = StagedSizes(window, outChannels: o, tiles: tiles, vectorWidth: vec, localMemory: localMemory,
                                      maxGroup: maxGroup) else { return nil }
        let c = window.channels
        // Per channel: its padded plane, its KH·KW column rows and its weights, each checked
        // against the budget before they are added, so the sum cannot overflow.
        let (plane, columns, weights) = (sizes.plane / c, sizes.columns / c, sizes.weights / c)
        // One full tile each way: a smaller product would run as scalar dot products.
        guard plane <= sizes.budget, columns <= sizes.budget, weights <= sizes.budget,
              o >= sizes.tileRows, window.outputPlane >= sizes.tileColumns else { return nil }
        let fitting = (sizes.budget - sizes.slack) / (plane + columns + weights)
        grid = sizes.grid(o, window.outputPlane)
        guard fitting >= 1, grid[0] * grid[1] <= sizes.largestGroup else { return nil }
        let chunks = (c + fitting - 1) / fitting
        channels = (c + chunks - 1) / chunks
        local = [4 * (plane * channels + sizes.slack), 4 * (columns * channels)]
    }
}

/// Floats a staged convolution lays out in local memory (as kernels.cl does) for one sample, and
/// the budget they must fit: shared by `StagingPlan` and `StagedForwardPlan`.
private struct StagedSizes {
    /// Padded planes (stride 1 only), column rows of Pp = P rounded up to the vector, transposed
    /// dy, the weights [O, C·KH·KW], and the zeros past the planes that vector reads may touch.
    var plane: Int, columns: Int, dyT: Int, weights: Int, slack: Int
    /// Three quarters of the local memory, in floats; the largest group.
    var budget: Int, largestGroup: Int
    var tileColumns: Int, tileRows: Int

    init?(_ window: WindowGeometry, outChannels o: Int, tiles: MatmulConfig, vectorWidth vec: Int,
          localMemory: UInt64, maxGroup: Int) {
        // A window's fields are public: one changed after its init is checked again, by the init,
        // before any of its derived sizes (which could overflow) is computed.
        guard (try? WindowGeometry(samples: window.samples, channels: window.channels, height: window.height,
                                   width: window.width, kernel: window.kernel, stride: window.stride,
                                   padding: window.padding, dilation: window.dilation)) != nil else { return nil }
        let (n, p, ckk, c) = (window.samples, window.outputPlane, window.patchSize, window.channels)
        // Sizes a device buffer can index, so that the products below cannot overflow.
        let limit = Int(Int32.max)
        guard (1...limit).contains(o), (1...64).contains(vec), (1...64).contains(tiles.tileRows),
              (1...64).contains(tiles.vectors), [n, p, ckk, c].allSatisfy({ (1...limit).contains($0) }),
              maxGroup >= 1 else { return nil }
        (tileColumns, tileRows) = (tiles.vectors * vec, tiles.tileRows)
        let stride1 = window.stride == (1, 1)
        let (hp, wp) = (window.height + 2 * window.padding.0, window.width + 2 * window.padding.1)
        let pp = (p + vec - 1) / vec * vec
        slack = stride1 ? (vec + 2) * wp + vec : 1
        // Each product in floats, nil past Int: then nothing of it fits.
        func product(_ factors: Int...) -> Int? {
            factors.reduce(Int?(1)) { total, f in total.flatMap { t in
                let (v, overflow) = t.multipliedReportingOverflow(by: f)
                return overflow ? nil : v
            } }
        }
        guard let plane = stride1 ? product(c, hp, wp) : 0, let columns = product(ckk, pp), let dyT = product(p, o),
              let weights = product(o, ckk) else { return nil }
        (self.plane, self.columns, self.dyT, self.weights) = (plane, columns, dyT, weights)
        budget = Int(min(localMemory / 4 * 3, 1 << 30)) / 4
        largestGroup = min(maxGroup, 4096)
    }

    /// The tile grid of a [rows, cols] output: vector tiles along dimension 0, row tiles along 1.
    func grid(_ rows: Int, _ cols: Int) -> [Int] {
        [(cols + tileColumns - 1) / tileColumns, (rows + tileRows - 1) / tileRows]
    }
}
