import KilnDevice

/// The geometry of a 2-D sliding window over NCHW: a convolution's or a pooling's kernel, stride,
/// zero padding and dilation on an input of `samples` × `channels` × `height` × `width`, as
/// PyTorch defines them (`out = (in + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`).
public struct WindowGeometry: Sendable, Equatable, CustomStringConvertible {
    /// N, C, H, W of the input.
    public var samples: Int, channels: Int, height: Int, width: Int
    /// The window's rows and columns.
    public var kernel: (Int, Int)
    /// Steps between windows, rows and columns.
    public var stride: (Int, Int)
    /// Zeros (or −∞ for max pooling) added on each side, rows and columns.
    public var padding: (Int, Int)
    /// Spacing between the window's elements (1: adjacent).
    public var dilation: (Int, Int)

    /// A window over [samples, channels, height, width]; throws `ShapeError` for sizes below 1,
    /// negative padding, or a window larger than the padded input.
    public init(samples: Int, channels: Int, height: Int, width: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) throws {
        self.samples = samples; self.channels = channels; self.height = height; self.width = width
        self.kernel = kernel; self.stride = stride; self.padding = padding; self.dilation = dilation
        let sizes = [samples, channels, height, width, kernel.0, kernel.1, stride.0, stride.1, dilation.0, dilation.1]
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= 1 << 20 }), padding.0 >= 0, padding.1 >= 0,
              padding.0 <= 1 << 20, padding.1 <= 1 << 20 else {
            throw ShapeError("window \(self): sizes, strides and dilations must be at least 1, paddings at least 0.")
        }
        guard outputHeight >= 1, outputWidth >= 1 else {
            throw ShapeError("window \(self): the window is larger than the padded input (output \(outputHeight) × \(outputWidth)).")
        }
        _ = try Strided.count("window \(self)", [samples, channels, height, width])
        _ = try Strided.count("window \(self)", [samples, channels, outputHeight, outputWidth])
    }

    /// OH (0 when the window does not fit).
    public var outputHeight: Int { Self.outputs(height, kernel.0, stride.0, padding.0, dilation.0) }
    /// OW (0 when the window does not fit).
    public var outputWidth: Int { Self.outputs(width, kernel.1, stride.1, padding.1, dilation.1) }

    /// `(size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1`, floored as PyTorch does (a
    /// window larger than the padded input gives none, not one).
    static func outputs(_ size: Int, _ kernel: Int, _ stride: Int, _ padding: Int, _ dilation: Int) -> Int {
        let span = size + 2 * padding - dilation * (kernel - 1) - 1
        return span < 0 ? 0 : span / stride + 1
    }
    /// Elements of the input.
    public var inputCount: Int { samples * channels * height * width }
    /// Elements of the output with `channels` planes per sample (a pooling's; a convolution has its own).
    public var outputCount: Int { samples * channels * outputHeight * outputWidth }
    /// OH · OW.
    public var outputPlane: Int { outputHeight * outputWidth }
    /// C · KH · KW: the rows of the im2col matrix.
    public var patchSize: Int { channels * kernel.0 * kernel.1 }

    /// `[N, C, H, W] kernel 3x3 stride 1x1 padding 1x1 dilation 1x1`.
    public var description: String {
        "[\(samples), \(channels), \(height), \(width)] kernel \(kernel.0)x\(kernel.1) stride \(stride.0)x\(stride.1) padding \(padding.0)x\(padding.1) dilation \(dilation.0)x\(dilation.1)"
    }

    public static func == (a: WindowGeometry, b: WindowGeometry) -> Bool { a.description == b.description }

    /// 2 × 2 windows with stride 2, no padding, no dilation: the pooling with its own kernels.
    var isTwoByTwo: Bool {
        kernel == (2, 2) && stride == (2, 2) && padding == (0, 0) && dilation == (1, 1)
    }

    /// (planes, H, W, OH, OW): the arguments of the 2 × 2 kernels.
    var planeArguments: [any KernelArgument] {
        [Int32(samples * channels), Int32(height), Int32(width), Int32(outputHeight), Int32(outputWidth)]
    }

    /// The two `int8` arguments of the window kernels.
    var arguments: [any KernelArgument] {
        [SIMD8<Int32>(Int32(samples), Int32(channels), Int32(height), Int32(width), Int32(outputHeight),
                      Int32(outputWidth), Int32(kernel.0), Int32(kernel.1)),
         SIMD8<Int32>(Int32(stride.0), Int32(stride.1), Int32(padding.0), Int32(padding.1), Int32(dilation.0),
                      Int32(dilation.1), 0, 0)]
    }
}

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

    /// Launches a random crop and horizontal flip of each image of `x` [N, C, H, W] into `y`: the
    /// H × W crop of the image zero-padded by `pad` at a random offset, flipped with probability ½,
    /// from Philox stream `(seed, offset)` (4 words per image), so a run is reproducible on every
    /// device. `y` must not be `x`.
    public func augmentCropFlip(_ x: Buffer<Float>, samples: Int, channels: Int, height: Int, width: Int, pad: Int,
                                seed: UInt64, offset: UInt64, into y: Buffer<Float>) throws {
        let what = "augment [\(samples), \(channels), \(height), \(width)] pad \(pad)"
        let count = try Strided.count(what, [samples, channels, height, width])
        try Check.count(what, "x", x, count)
        try Check.count(what, "y", y, count)
        guard pad >= 0, pad <= 1 << 16, x !== y else {
            throw ShapeError("\(what): the padding must be ≥ 0 and y a buffer other than x.")
        }
        let words = try device.buffer(UInt32.self, count: 4 * samples)
        try philoxBits(words, seed: seed, offset: offset)
        try launch1D(.augmentCropFlip, samples * channels * height, Int32(samples), Int32(channels), Int32(height),
                     Int32(width), Int32(pad), words, x, y)
    }
}
