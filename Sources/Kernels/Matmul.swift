import KilnDevice

/// A batch of products for `KernelLibrary.matmul`: `count` products, the operands `strideA`,
/// `strideB` and the outputs `strideC` elements apart (a stride of 0 uses the same matrix for every
/// product, as a 2-D operand broadcast over a batch). With `sums`, the products are added into one
/// C instead (a weight gradient: one product per sample, summed).
public struct MatmulBatch: Sendable, Equatable {
    /// Products in the batch.
    public var count: Int
    /// Elements between consecutive A, B and C matrices.
    public var strideA: Int, strideB: Int, strideC: Int
    /// Whether the products are summed into one C (`strideC` unused).
    public var sums: Bool

    /// One product.
    public static let single = MatmulBatch(count: 1, strideA: 0, strideB: 0, strideC: 0)

    /// `count` products with the given strides, each into its own C.
    public init(count: Int, strideA: Int, strideB: Int, strideC: Int) {
        self.count = count; self.strideA = strideA; self.strideB = strideB; self.strideC = strideC; sums = false
    }

    /// `C = Σᵢ op(Aᵢ)·op(Bᵢ)` over `count` products whose operands are `strideA` and `strideB` apart.
    public static func sum(count: Int, strideA: Int, strideB: Int) -> MatmulBatch {
        var batch = MatmulBatch(count: count, strideA: strideA, strideB: strideB, strideC: 0)
        batch.sums = true
        return batch
    }
}

extension KernelLibrary {
    /// `C = act(op(A)·op(B) + bias)` (or `C += …` with `accumulate`), row-major, where op(A) is
    /// m×k and op(B) is k×n, for each product of `batch`. A is stored m×k, or k×m when `transposeA`;
    /// B is stored k×n, or n×k when `transposeB` (a Linear weight [out, in] is B with `transposeB`).
    /// `bias` has n elements (one per column), or m with `biasPerRow` (one per row: a convolution's
    /// output channels). `lda`, `ldb` and `ldc` are the row strides of the stored matrices (default:
    /// their widths); a larger stride reads a column block of a wider matrix. `tiles` runs the
    /// product with other tiles than the tuned or rule-table ones (a products-only program built
    /// for them; the tuner's candidates); a summed batch always uses the library's own.
    ///
    /// ```swift
    /// // y = relu(x · wᵀ + b) for x [2, 3], w [4, 3]
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let x = try device.buffer([Float](repeating: 1, count: 6)), w = try device.buffer([Float](repeating: 0.5, count: 12))
    /// let b = try device.buffer([Float](repeating: -1, count: 4)), y = try device.buffer(Float.self, count: 8)
    /// try kernels.matmul(x, w, into: y, m: 2, n: 4, k: 3, transposeB: true, bias: b, activation: .relu)   // 0.5s
    /// ```
    public func matmul(_ a: Buffer<Float>, _ b: Buffer<Float>, into c: Buffer<Float>, m: Int, n: Int, k: Int,
                       transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false,
                       bias: Buffer<Float>? = nil, biasPerRow: Bool = false, activation: Activation? = nil,
                       lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil, batch: MatmulBatch = .single,
                       tiles: MatmulConfig? = nil) throws {
        guard m >= 1, n >= 1, k >= 1 else { throw ShapeError("matmul: sizes must be ≥ 1, got m \(m), n \(n), k \(k).") }
        let (aRows, aCols) = transposeA ? (k, m) : (m, k)
        let (bRows, bCols) = transposeB ? (n, k) : (k, n)
        let lda = lda ?? aCols, ldb = ldb ?? bCols, ldc = ldc ?? n
        guard lda >= aCols, ldb >= bCols, ldc >= n else {
            throw ShapeError("matmul: row strides lda \(lda), ldb \(ldb), ldc \(ldc) are below the widths \(aCols), \(bCols), \(n).")
        }
        guard batch.count >= 1, batch.strideA >= 0, batch.strideB >= 0, batch.strideC >= 0 else {
            throw ShapeError("matmul: a batch needs count ≥ 1 and non-negative strides, got \(batch).")
        }
        guard batch.count == 1 || batch.sums || batch.strideC >= (m - 1) * ldc + n else {
            throw ShapeError("matmul: the batch's outputs overlap (strideC \(batch.strideC) for [\(m), \(n)] with ldc \(ldc)).")
        }
        guard !(batch.sums && accumulate) else { throw ShapeError("matmul: a summed batch cannot also accumulate into C.") }
        func extent(_ rows: Int, _ cols: Int, _ ld: Int, _ stride: Int) -> Int {
            (batch.count - 1) * stride + (rows - 1) * ld + cols
        }
        let cStride = batch.sums ? 0 : batch.strideC
        let aShape = transposeA ? "[\(k), \(m)]" : "[\(m), \(k)]"
        let bShape = transposeB ? "[\(n), \(k)]" : "[\(k), \(n)]"
        for (name, buffer, needed, shape) in [("A", a, extent(aRows, aCols, lda, batch.strideA), "op(A) m×k, stored \(aShape)"),
                                              ("B", b, extent(bRows, bCols, ldb, batch.strideB), "op(B) k×n, stored \(bShape)"),
                                              ("C", c, extent(m, n, ldc, cStride), "C [\(m), \(n)]")]
            where buffer.count < needed || needed > Check.maxElements {
            throw ShapeError("matmul: \(name) has \(buffer.count) elements but \(shape) (batch \(batch.count)) needs \(needed).")
        }
        if let bias, bias.count != (biasPerRow ? m : n) {
            throw ShapeError("matmul: bias has \(bias.count) elements but needs \(biasPerRow ? m : n) (one per \(biasPerRow ? "row" : "column") of C).")
        }
        guard c !== a, c !== b else { throw ShapeError("matmul: C must not be A or B (the kernel reads them while writing C).") }

        let flags = (accumulate ? 1 : 0) | (bias != nil ? 2 : 0) | (biasPerRow ? 4 : 0) | Int(activation?.code ?? 0) << 4
        let arguments: [any KernelArgument] = [
            Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(ldb), c, Int32(ldc), bias ?? c, Int32(flags),
            activation?.parameter ?? 0, Int32(batch.strideA), Int32(batch.strideB), Int32(cStride),
            Int32(batch.sums ? batch.count : 1),
        ]
        // Tiles: those asked for, else the tuned ones for the nearest measured shape, else the rule
        // table's (in the library's own program). Summed batches always run the library's own.
        let shape = MatmulShape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                summed: batch.sums ? batch.count : 1)
        if let tiles { try validate(tiles) }
        var chosen = batch.sums ? nil : tiles ?? tunedTiles(for: shape)
        // (packedProduct decides with the tiles in effect: tuned ones that do not build here
        // fall back to the rule table's, which may pack.)
        if let wanted = chosen ?? (batch.sums ? nil : config.matmul), batch.count == 1, !isGPU,
           shape.multiplyAdds >= Self.largeProduct,
           try packedProduct(a, b, into: c, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                             lda: lda, ldb: ldb, ldc: ldc, bias: bias, flags: flags, activation: activation,
                             tiles: wanted, explicit: tiles != nil, variant: shape.variant) {
            return
        }
        if let chosen = chosen ?? (batch.sums ? nil : config.matmul), chosen.ntTransposesB, shape.variant == "nt",
           ldb == k, !isGPU, n > Self.narrowColumns {
            // Bᵀ once (per product when each has its own B), then the outer-product kernel.
            let matrices = batch.count > 1 && batch.strideB > 0 ? batch.count : 1
            if b.count == matrices * n * k, matrices == 1 || batch.strideB == n * k {
                let bt = try device.buffer(Float.self, count: matrices * n * k)
                try transpose(b, rows: n, cols: k, batch: matrices, into: bt)
                var nn = batch
                nn.strideB = matrices > 1 ? k * n : 0
                var nnTiles = chosen
                nnTiles.ntTransposesB = false
                try matmul(a, bt, into: c, m: m, n: n, k: k, transposeA: false, transposeB: false, accumulate: accumulate,
                           bias: bias, biasPerRow: biasPerRow, activation: activation, lda: lda, ldb: n, ldc: ldc,
                           batch: nn, tiles: nnTiles)
                return
            }
        }
        // Rows a multiple of 512 floats apart share cache sets: a large single product copies
        // such an operand to rows 16 floats wider first (a copy of O(size) against O(size^1.5) work).
        if let wanted = chosen ?? (batch.sums ? nil : config.matmul), wanted.padsWideRows, !isGPU, batch.count == 1,
           shape.multiplyAdds >= Self.largeProduct, lda % 512 == 0 || ldb % 512 == 0 {
            func padded(_ x: Buffer<Float>, rows: Int, cols: Int, ld: Int) throws -> (Buffer<Float>, Int) {
                guard ld % 512 == 0 else { return (x, ld) }
                let wider = ld + 16
                let copy = try device.buffer(Float.self, count: rows * wider)
                try self.copy(shape: [rows, cols], from: StridedBuffer(x, strides: [ld, 1]),
                              to: StridedBuffer(copy, strides: [wider, 1]))
                return (copy, wider)
            }
            let (pa, newLda) = try padded(a, rows: aRows, cols: aCols, ld: lda)
            let (pb, newLdb) = try padded(b, rows: bRows, cols: bCols, ld: ldb)
            var unpadded = wanted
            unpadded.padsWideRows = false
            try matmul(pa, pb, into: c, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                       accumulate: accumulate, bias: bias, biasPerRow: biasPerRow, activation: activation,
                       lda: newLda, ldb: newLdb, ldc: ldc, tiles: unpadded)
            return
        }
        // Tiles that build like the library's run in its program; others in a products program.
        // Tuned tiles whose program does not build here fall back to the rule table's; tiles
        // asked for explicitly throw.
        let program: Program?
        (program, chosen) = try productsProgram(for: chosen, explicit: tiles != nil, variant: shape.variant)
        let (kernel, global, local) = matmulLaunch(transposeA: transposeA, transposeB: transposeB, m: m, n: n,
                                                   batch: batch.sums ? 1 : batch.count, summed: batch.sums,
                                                   tiles: chosen ?? config.matmul)
        try launch(kernel, global: global, local: local, arguments: arguments, in: program, exact: isGPU)
    }

    /// Multiply-adds from which a single product counts as large: it may pad wide rows
    /// (`MatmulConfig.padsWideRows`) or pack its operands (`packsPanels`), copies of O(size)
    /// against O(size^1.5) work.
    public static let largeProduct = Double(1 << 26)

    /// Whether a single product of `shape` with `tiles` runs through packed panels: a CPU, tiles
    /// that pack, at least `largeProduct` multiply-adds and a whole tile each way, not a summed batch.
    public func packs(_ shape: MatmulShape, tiles: MatmulConfig) -> Bool {
        !isGPU && tiles.packsPanels && shape.summed <= 1 && shape.multiplyAdds >= Self.largeProduct
            && shape.m >= tiles.tileRows && shape.n >= tiles.vectors * (tiles.vectorWidth ?? vec)
    }

    /// `tiles` as `kiln bench` and `kiln tune` show them for a product of `shape` (`single`: one
    /// product, not a batch): "packed" only where that product runs packed.
    public func summary(of tiles: MatmulConfig, at shape: MatmulShape, single: Bool = true) -> String {
        var ran = tiles
        ran.packsPanels = single && packs(shape, tiles: tiles)
        return ran.summary(kind: config.kind)
    }

    /// The program `wanted` tiles run in: nil for the library's own (tiles that build like the
    /// rule table's), else a products program. Tuned tiles whose program does not build here fall
    /// back to the rule table's (nil tiles); tiles asked for explicitly (`explicit`) throw.
    private func productsProgram(for wanted: MatmulConfig?, explicit: Bool,
                                 variant: String) throws -> (Program?, MatmulConfig?) {
        guard let wanted, !wanted.buildsLike(config.matmul) else { return (nil, wanted) }
        if explicit { return (try productsProgram(for: wanted, variant: variant), wanted) }
        guard let built = try? productsProgram(for: wanted, variant: variant) else { return (nil, nil) }
        return (built, wanted)
    }

    /// A large product through packed panels (`MatmulConfig.packsPanels`): op(A) and op(B) copied
    /// into panels of `tiles`' rows and columns, then `matmul_packed`. False, with nothing
    /// launched, where the product is smaller than a tile either way, its panels would pass the
    /// kernels' 32-bit indices, or the tiles in effect (the rule table's, when tuned ones do not
    /// build here) do not pack.
    private func packedProduct(_ a: Buffer<Float>, _ b: Buffer<Float>, into c: Buffer<Float>, m: Int, n: Int, k: Int,
                               transposeA: Bool, transposeB: Bool, lda: Int, ldb: Int, ldc: Int,
                               bias: Buffer<Float>?, flags: Int, activation: Activation?,
                               tiles wanted: MatmulConfig, explicit: Bool, variant: String) throws -> Bool {
        let (program, built) = try productsProgram(for: wanted, explicit: explicit, variant: variant)
        let tiles = built ?? config.matmul
        guard packs(MatmulShape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k), tiles: tiles) else {
            return false
        }
        let rows = tiles.tileRows, cols = tiles.vectors * (tiles.vectorWidth ?? vec)
        let panelsA = (m + rows - 1) / rows, panelsB = (n + cols - 1) / cols
        let (countA, overA) = (panelsA * rows).multipliedReportingOverflow(by: k)
        let (countB, overB) = (panelsB * cols).multipliedReportingOverflow(by: k)
        guard !overA, !overB, countA <= Int(Int32.max), countB <= Int(Int32.max) else { return false }
        let packedA = try device.buffer(Float.self, count: countA), packedB = try device.buffer(Float.self, count: countB)
        // Element (r, k) of each source is src[r·rs + k·ks]: op(A)'s rows, and op(B)'s columns as rows.
        let (rsA, ksA) = transposeA ? (1, lda) : (lda, 1)
        let (rsB, ksB) = transposeB ? (ldb, 1) : (1, ldb)
        for (source, count, panel, rs, ks, target) in [(a, m, rows, rsA, ksA, packedA), (b, n, cols, rsB, ksB, packedB)] {
            let panels = (count + panel - 1) / panel
            try launch(.matmulPack, global: [ks == 1 ? (k + 7) / 8 : k, panels], local: [16, 1],
                       arguments: [Int32(count), Int32(k), Int32(panel), source, Int32(rs), Int32(ks), target], in: program)
        }
        let (gx, gy) = (tiles.group[0], tiles.group[1])
        try launch(.matmulPacked, global: [panelsB, panelsA], local: [gx, gy],
                   arguments: [Int32(m), Int32(n), Int32(k), packedA, packedB, c, Int32(ldc), bias ?? c, Int32(flags),
                               activation?.parameter ?? 0],
                   in: program)
        return true
    }

    /// The widest nt product (columns of C) that runs as `matmul_narrow_nt` on a CPU: one work-item
    /// per row of C with a vector accumulator per column (`KILN_MM_NARROW` in kernels.cl).
    static let narrowColumns = 16

    /// The tiles `matmul` uses for `shape` when none are given: the tuned ones, else the rule table's.
    public func tiles(for shape: MatmulShape) -> MatmulConfig {
        shape.summed > 1 ? config.matmul : tunedTiles(for: shape) ?? config.matmul
    }

    /// Kernel, global and local size for C[m, n] with `tiles` (see the comments in kernels.cl).
    /// Every work-item of a group must reach the kernel's barriers, so the local sizes are exact.
    func matmulLaunch(transposeA: Bool, transposeB: Bool, m: Int, n: Int, batch: Int,
                      summed: Bool = false, tiles: MatmulConfig? = nil) -> (KernelName, [Int], [Int]) {
        func up(_ x: Int, _ d: Int) -> Int { (x + d - 1) / d }
        func roundUp(_ x: Int, _ d: Int) -> Int { up(x, d) * d }
        let tiles = tiles ?? config.matmul
        if isGPU {
            let (gx, gy) = (tiles.gpuGroup[0], tiles.gpuGroup[1])
            return (.matmul(transposeA: transposeA, transposeB: transposeB, small: false),
                    [up(n, gx * tiles.gpuWork) * gx, up(m, gy * tiles.gpuWork) * gy, batch], [gx, gy, 1])
        }
        let vec = tiles.vectorWidth ?? self.vec
        // tt computes Cᵀ = B·A, so its tiles run over (n, m).
        let (rows, cols) = transposeA && transposeB ? (n, m) : (m, n)
        // nt of a few columns, not summed: one work-item per row, all columns at once.
        if transposeB, !transposeA, !summed, n <= Self.narrowColumns {
            return (.matmulNarrowNT, [roundUp(m, 16), 1, batch], [16, 1, 1])
        }
        if cols < tiles.vectors * vec || rows < tiles.tileRows {
            return (.matmul(transposeA: transposeA, transposeB: transposeB, small: true),
                    [roundUp(up(cols, tiles.smallWidth), 2), roundUp(up(rows, tiles.smallRows), 8), batch], [2, 8, 1])
        }
        let (gx, gy) = (tiles.group[0], tiles.group[1])
        return (.matmul(transposeA: transposeA, transposeB: transposeB, small: false, summed: summed),
                [roundUp(up(cols, tiles.vectors * vec), gx), roundUp(up(rows, tiles.tileRows), gy), batch], [gx, gy, 1])
    }

    /// Backward through a fused `matmul` epilogue: from the gradient `g` of the output `y`
    /// ([rows, cols]), `gz = g · act'(y)` and, when `biasGradient` is given, its column sums (the
    /// bias gradient), in one launch. `activation` must have `derivativeFromOutput` (not gelu, nor
    /// a leaky relu of slope ≤ 0).
    public func linearActivationBackward(gradOutput g: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                         activation: Activation, into gz: Buffer<Float>,
                                         biasGradient: Buffer<Float>?) throws {
        try Check.matrix("linearActivationBackward", rows: rows, cols: cols)
        for (name, buffer) in [("g", g), ("y", y), ("gz", gz)] {
            try Check.count("linearActivationBackward", name, buffer, rows * cols, "[\(rows), \(cols)]")
        }
        if let biasGradient { try Check.count("linearActivationBackward", "the bias gradient", biasGradient, cols) }
        guard activation.derivativeFromOutput else {
            throw ShapeError("linearActivationBackward: the derivative of \(activation) needs the pre-activation; apply it separately.")
        }
        try launch(.linearActBackward, global: [chunks(cols)], local: [isGPU ? 64 : 16],
                   Int32(rows), Int32(cols), activation.code, activation.parameter, g, y, gz, biasGradient ?? gz,
                   Int32(biasGradient == nil ? 0 : 1))
    }
}
