import KilnDevice

extension KernelLibrary {
    /// Launches max pooling: `y` [N, C, OH, OW] the largest input of each window (the padding never
    /// wins; NaN does), `indices` the position `h · W + w` of its first maximum in the input plane.
    public func maxPool(_ x: Buffer<Float>, _ window: WindowGeometry, into y: Buffer<Float>, indices: Buffer<Int32>) throws {
        try checkPool("maxPool", window, x, y)
        try Check.count("maxPool \(window)", "indices", indices, window.outputCount)
        if window.isTwoByTwo {
            try launch1D(.poolMax2, window.samples * window.channels * window.outputHeight,
                         arguments: window.planeArguments + [x, y, indices])
            return
        }
        try launch1D(.poolMax, window.samples * window.channels * window.outputHeight, arguments: window.arguments + [x, y, indices])
    }

    /// Launches the backward pass of max pooling: each input element sums `dy` of the windows whose
    /// saved index is its own position.
    public func maxPoolBackward(_ dy: Buffer<Float>, indices: Buffer<Int32>, _ window: WindowGeometry,
                                into dx: Buffer<Float>) throws {
        try checkPool("maxPoolBackward", window, dx, dy)
        try Check.count("maxPoolBackward \(window)", "indices", indices, window.outputCount)
        if window.isTwoByTwo {
            // An odd last row or column belongs to no window: zero it (all of dx, simplest) first.
            if window.height % 2 != 0 || window.width % 2 != 0 { try dx.fill(0) }
            try launch1D(.poolMax2Backward, window.samples * window.channels * window.outputHeight,
                         arguments: window.planeArguments + [dy, indices, dx])
            return
        }
        try launch1D(.poolMaxBackward, window.samples * window.channels * window.height,
                     arguments: window.arguments + [dy, indices, dx])
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
