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
    public var isTwoByTwo: Bool {
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

