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

    // MARK: The convolution's three products over im2col columns

    /// Launches a convolution's forward products: for each sample, `y[n]` [O, OH·OW] =
    /// act(`weight` [O, C·KH·KW] · `cols[n]` + `bias`), from the im2col columns `cols`
    /// [N, C·KH·KW, OH·OW] of `window`; `bias` has O elements (one per output channel).
    public func convolutionForward(cols: Buffer<Float>, weight: Buffer<Float>, bias: Buffer<Float>?,
                                   _ window: WindowGeometry, outChannels o: Int, activation: Activation? = nil,
                                   into y: Buffer<Float>) throws {
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        try matmul(weight, cols, into: y, m: o, n: p, k: ckk, bias: bias, biasPerRow: true, activation: activation,
                   batch: MatmulBatch(count: n, strideA: 0, strideB: ckk * p, strideC: o * p))
    }

    /// Launches a convolution's weight gradient: `dw` [O, C·KH·KW] = Σₙ `dy[n]` [O, OH·OW] · `cols[n]`ᵀ,
    /// the samples' products summed in one launch (no partial buffers, a fixed order).
    ///
    /// Both operands run along the positions, which makes each output a dot product (the nt
    /// kernel). On a CPU, when the output has enough tiles to keep every core busy, `dy` is first
    /// transposed per sample ([N, OH·OW, O], a small copy) so that the product runs as outer
    /// products instead (the tt kernel, written transposed), at the speed of the forward product.
    public func convolutionWeightGradient(gradOutput dy: Buffer<Float>, cols: Buffer<Float>, _ window: WindowGeometry,
                                          outChannels o: Int, into dw: Buffer<Float>) throws {
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        let what = "convolutionWeightGradient \(window)"
        let count = try Strided.count(what, [n, o, p])
        try Check.count(what, "dy", dy, count)
        guard weightGradientRunsAsOuterProducts(outChannels: o, patchSize: ckk) else {
            try matmul(dy, cols, into: dw, m: o, n: ckk, k: p, transposeB: true,
                       batch: .sum(count: n, strideA: o * p, strideB: ckk * p))
            return
        }
        let dyT = try device.buffer(Float.self, count: count)
        try transpose(dy, rows: o, cols: p, batch: n, into: dyT)
        try matmul(dyT, cols, into: dw, m: o, n: ckk, k: p, transposeA: true, transposeB: true,
                   batch: .sum(count: n, strideA: o * p, strideB: ckk * p))
    }

    /// Whether `convolutionWeightGradient` transposes `dy` and runs outer products: a CPU device,
    /// and at least 16 full tiles of the [C·KH·KW, O] output (fewer leave cores idle, and the dot
    /// products of the nt kernel split the work more finely).
    public func weightGradientRunsAsOuterProducts(outChannels o: Int, patchSize ckk: Int) -> Bool {
        guard !isGPU else { return false }
        let tiles = config.matmul
        let (columnTiles, rowTiles) = (o / (tiles.vectors * vec), ckk / tiles.tileRows)
        return columnTiles >= 1 && rowTiles >= 1 && columnTiles * rowTiles >= 16
    }

    /// Launches a convolution's input-gradient products: for each sample, `dcols[n]`
    /// [C·KH·KW, OH·OW] = `weight`ᵀ · `dy[n]` (then `col2im` gathers them into the input's gradient).
    public func convolutionInputColumns(gradOutput dy: Buffer<Float>, weight: Buffer<Float>, _ window: WindowGeometry,
                                        outChannels o: Int, into dcols: Buffer<Float>) throws {
        let (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        try matmul(weight, dy, into: dcols, m: ckk, n: p, k: o, transposeA: true,
                   batch: MatmulBatch(count: n, strideA: 0, strideB: o * p, strideC: ckk * p))
    }
}
