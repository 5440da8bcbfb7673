import KilnDevice

extension KernelLibrary {
    /// Launches max pooling: `y` [N, C, OH, OW] the largest input of each window (the padding never
    /// wins; NaN does), `indices` the position `h · W + w` of its first maximum in the input plane.
    ///
    /// For 2 × 2 windows of stride 2 the pooling can also run what precedes it in a conv block, so
    /// the block reads `x` once: `normalize`, per-channel coefficients `[mean | scale | shift]`
    /// (3 · C, from `batchNormTrainingCoefficients` or `batchNormEvalCoefficients`), maps each input
    /// to `(x - mean) * scale + shift` first; `activation` (one whose derivative follows from its
    /// output, so non-decreasing) is applied to each window's maximum, which equals pooling the
    /// activated inputs.
    public func maxPool(_ x: Buffer<Float>, _ window: WindowGeometry, normalize: Buffer<Float>? = nil,
                        activation: Activation? = nil, into y: Buffer<Float>, indices: Buffer<Int32>) throws {
        try checkPool("maxPool", window, x, y)
        try Check.count("maxPool \(window)", "indices", indices, window.outputCount)
        if let normalize { try Check.count("maxPool \(window)", "normalize", normalize, 3 * window.channels) }
        try checkFusion("maxPool", window, fused: normalize != nil || activation != nil, activation)
        if window.isTwoByTwo {
            let planes = window.samples * window.channels, rows = rowsPerItem(window.outputHeight, planes: planes)
            try launch1D(.poolMax2, planes * ((window.outputHeight + rows - 1) / rows),
                         arguments: window.planeArguments + [x, y, indices, Int32(window.channels),
                                                             Int32(normalize == nil ? 0 : 1), normalize ?? x,
                                                             activation?.code ?? 0, activation?.parameter ?? 0, Int32(rows)])
            return
        }
        try launch1D(.poolMax, window.samples * window.channels * window.outputHeight, arguments: window.arguments + [x, y, indices])
    }

    /// Launches the backward pass of max pooling: each input element sums `dy` of the windows whose
    /// saved index is its own position. After a fused `activation`, pass the pooled `output` too:
    /// the gradient first goes back through the activation (its derivative from the output).
    public func maxPoolBackward(_ dy: Buffer<Float>, indices: Buffer<Int32>, _ window: WindowGeometry,
                                activation: Activation? = nil, output: Buffer<Float>? = nil,
                                into dx: Buffer<Float>) throws {
        try checkPool("maxPoolBackward", window, dx, dy)
        try Check.count("maxPoolBackward \(window)", "indices", indices, window.outputCount)
        try checkFusion("maxPoolBackward", window, fused: activation != nil, activation)
        if activation != nil {
            guard let output else {
                throw ShapeError("maxPoolBackward \(window): a fused activation needs the pooled output.")
            }
            try Check.count("maxPoolBackward \(window)", "output", output, window.outputCount)
        }
        if window.isTwoByTwo {
            // An odd last row or column belongs to no window: zero it (all of dx, simplest) first.
            if window.height % 2 != 0 || window.width % 2 != 0 { try dx.fill(0) }
            let planes = window.samples * window.channels, rows = rowsPerItem(window.outputHeight, planes: planes)
            try launch1D(.poolMax2Backward, planes * ((window.outputHeight + rows - 1) / rows),
                         arguments: window.planeArguments + [dy, indices, dx, output ?? dy, activation?.code ?? 0,
                                                             activation?.parameter ?? 0, Int32(rows)])
            return
        }
        try launch1D(.poolMaxBackward, window.samples * window.channels * window.height,
                     arguments: window.arguments + [dy, indices, dx])
    }

    /// Rows of each of `planes` planes (of `rows` rows) that one work-item of the 2 × 2 kernels
    /// runs: one on a GPU; on a CPU as many as leave 16 work-items per core, up to the whole plane,
    /// since a work-item per row spends more on its index arithmetic than on its row.
    func rowsPerItem(_ rows: Int, planes: Int) -> Int {
        guard !isGPU else { return 1 }
        let wanted = 16 * max(1, device.info.computeUnits)
        return max(1, min(rows, planes * rows / wanted))
    }

    /// Fusion runs on the 2 × 2 kernels only, with an activation whose derivative follows from its output.
    private func checkFusion(_ what: String, _ window: WindowGeometry, fused: Bool, _ activation: Activation?) throws {
        guard fused else { return }
        guard window.isTwoByTwo else {
            throw ShapeError("\(what) \(window): normalization and activation fuse into 2 × 2 pooling of stride 2 only.")
        }
        if let activation, !activation.derivativeFromOutput {
            throw ShapeError("\(what): \(activation) cannot fuse into max pooling (it is not monotonic, or its derivative needs the input).")
        }
    }

    /// Launches average pooling with the padding counted (`count_include_pad=True`): each window's
    /// sum over KH · KW.
    public func avgPool(_ x: Buffer<Float>, _ window: WindowGeometry, into y: Buffer<Float>) throws {
        try checkPool("avgPool", window, x, y)
        try launch1D(.poolAvg, window.samples * window.channels * window.outputHeight, arguments: window.arguments + [x, y])
    }

    /// Launches the backward pass of average pooling: each input element sums `dy / (KH · KW)` over
    /// the windows that hold it.
    public func avgPoolBackward(_ dy: Buffer<Float>, _ window: WindowGeometry, into dx: Buffer<Float>) throws {
        try checkPool("avgPoolBackward", window, dx, dy)
        try launch1D(.poolAvgBackward, window.samples * window.channels * window.height, arguments: window.arguments + [dy, dx])
    }

    private func checkPool(_ what: String, _ window: WindowGeometry, _ input: Buffer<Float>, _ output: Buffer<Float>) throws {
        try Check.count("\(what) \(window)", "the input", input, window.inputCount)
        try Check.count("\(what) \(window)", "the output", output, window.outputCount)
    }
}
