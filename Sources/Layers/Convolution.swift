import KilnDevice
import KilnKernels
import KilnTensor

/// A 2-D convolution over [N, C, H, W] (`nn.Conv2d`): weight [out, in, KH, KW], bias [out], zero
/// padding, PyTorch's initialization (Kaiming-uniform with a = √5: uniform in ±1/√(in·KH·KW), the
/// bias too) from Kiln's seeded generator or a given `seed`.
///
/// ```swift
/// let conv = try Conv2d(1, 32, kernelSize: 3, padding: 1)
/// let features = try conv(Tensor.zeros([8, 1, 28, 28]))    // [8, 32, 28, 28]
/// ```
public final class Conv2d: Module {
    /// The weight [out, in, KH, KW], a trainable parameter.
    public let weight: Tensor
    /// The bias [out], or nil when made with `bias: false`.
    public let bias: Tensor?
    /// Steps between windows, zero padding on each side, spacing of the kernel's elements.
    public let stride: Size2, padding: Size2, dilation: Size2

    /// Input channels.
    public var inChannels: Int { weight.shape[1] }
    /// Output channels.
    public var outChannels: Int { weight.shape[0] }
    /// The kernel's rows and columns.
    public var kernelSize: Size2 { Size2(weight.shape[2], weight.shape[3]) }

    /// `nn.Conv2d(in, out, kernel_size, stride, padding, dilation, bias)`. Throws for sizes below 1
    /// or a negative padding.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Size2, stride: Size2 = 1, padding: Size2 = 0,
                dilation: Size2 = 1, bias: Bool = true, seed: UInt64? = nil, on device: Device? = nil) throws {
        let sizes = [inChannels, outChannels, kernelSize.height, kernelSize.width, stride.height, stride.width,
                     dilation.height, dilation.width]
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }), padding.height >= 0, padding.width >= 0,
              padding.height <= 1 << 16, padding.width <= 1 << 16 else {
            throw TensorError("Conv2d(\(inChannels), \(outChannels), kernel_size=\(kernelSize), stride=\(stride), padding=\(padding), dilation=\(dilation)): sizes must be at least 1 and padding at least 0.")
        }
        let fanIn = inChannels * kernelSize.height * kernelSize.width
        let (count, overflow) = fanIn.multipliedReportingOverflow(by: outChannels)
        guard !overflow, count <= Int(Int32.max) - 4096 else {
            throw TensorError("Conv2d(\(inChannels), \(outChannels), kernel_size=\(kernelSize)): the weight is too large for a device buffer.")
        }
        let bound = 1 / Float(fanIn).squareRoot()
        let w = seed.map { ($0, UInt64(0)) } ?? RandomState.next(count: count)
        weight = try Tensor.rand([outChannels, inChannels, kernelSize.height, kernelSize.width], low: -bound, high: bound,
                                 seed: w.0, offset: w.1, on: device, requiresGrad: true)
        if bias {
            let b = seed.map { ($0, UInt64(count + 15) / 16 * 16) } ?? RandomState.next(count: outChannels)
            self.bias = try Tensor.rand([outChannels], low: -bound, high: bound, seed: b.0, offset: b.1, on: device,
                                        requiresGrad: true)
        } else {
            self.bias = nil
        }
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        super.init(nonThrowing: ())
    }

    /// The convolution of `x` [N, in, H, W].
    public override func forward(_ x: Tensor) throws -> Tensor { try callAsFunction(x, activation: nil) }

    /// The convolution followed by `activation`, in the product's epilogue when its derivative allows.
    public func callAsFunction(_ x: Tensor, activation: Activation?) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == inChannels else {
            throw TensorError("\(typeName)(\(inChannels), \(outChannels)): input \(x.shape) should be [N, \(inChannels), H, W].")
        }
        return try x.conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                            activation: activation)
    }

    /// `1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)`, as PyTorch prints it.
    public override var extraDescription: String {
        func tuple(_ s: Size2) -> String { "(\(s.height), \(s.width))" }
        var parts = ["\(inChannels)", "\(outChannels)", "kernel_size=\(tuple(kernelSize))", "stride=\(tuple(stride))"]
        if padding != Size2(0) { parts.append("padding=\(tuple(padding))") }
        if dilation != Size2(1) { parts.append("dilation=\(tuple(dilation))") }
        if bias == nil { parts.append("bias=False") }
        return parts.joined(separator: ", ")
    }
}

/// 2-D max pooling (`nn.MaxPool2d`): the largest value of each window; the padding is −∞.
public final class MaxPool2d: Module {
    /// The window, its step (default: the window) and the padding on each side.
    public let kernelSize: Size2, stride: Size2, padding: Size2
    /// `nn.MaxPool2d(kernel_size, stride, padding)`. Throws for sizes below 1, or a padding over
    /// half the kernel.
    public init(_ kernelSize: Size2, stride: Size2? = nil, padding: Size2 = 0) throws {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
        try checkPool("MaxPool2d", kernelSize, self.stride, padding)
        super.init(nonThrowing: ())
    }
    /// Max pooling of `x` [N, C, H, W].
    public override func forward(_ x: Tensor) throws -> Tensor {
        try x.maxPool2d(kernel: kernelSize, stride: stride, padding: padding)
    }
    /// 2 × 2 windows of stride 2 without padding: the pooling a batch norm can fuse.
    public var isTwoByTwo: Bool { kernelSize == 2 && stride == 2 && padding == 0 }
    /// `kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False`
    public override var extraDescription: String {
        "kernel_size=\(kernelSize), stride=\(stride), padding=\(padding), dilation=1, ceil_mode=False"
    }
}

/// 2-D average pooling (`nn.AvgPool2d`, `count_include_pad=True`): each window's mean, the zero
/// padding counted.
public final class AvgPool2d: Module {
    /// The window, its step (default: the window) and the padding on each side.
    public let kernelSize: Size2, stride: Size2, padding: Size2
    /// `nn.AvgPool2d(kernel_size, stride, padding)`. Throws for sizes below 1, or a padding over
    /// half the kernel.
    public init(_ kernelSize: Size2, stride: Size2? = nil, padding: Size2 = 0) throws {
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
        try checkPool("AvgPool2d", kernelSize, self.stride, padding)
        super.init(nonThrowing: ())
    }
    /// Average pooling of `x` [N, C, H, W].
    public override func forward(_ x: Tensor) throws -> Tensor {
        try x.avgPool2d(kernel: kernelSize, stride: stride, padding: padding)
    }
    /// `kernel_size=2, stride=2, padding=0`
    public override var extraDescription: String { "kernel_size=\(kernelSize), stride=\(stride), padding=\(padding)" }
}

/// Global average pooling to 1 × 1 (`nn.AdaptiveAvgPool2d(1)`): [N, C, H, W] → [N, C, 1, 1].
public final class AdaptiveAvgPool2d: Module {
    /// The output size; only 1 (global pooling) is supported.
    public let outputSize: Int
    /// `nn.AdaptiveAvgPool2d(1)`. Throws for another output size.
    public init(_ outputSize: Int = 1) throws {
        guard outputSize == 1 else {
            throw TensorError("AdaptiveAvgPool2d(\(outputSize)): Kiln pools to 1 × 1 (global average pooling) only.")
        }
        self.outputSize = outputSize
        super.init(nonThrowing: ())
    }
    /// The mean of each channel's plane.
    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError("AdaptiveAvgPool2d needs [N, C, H, W] input, got \(x.shape).") }
        return try x.mean(axes: [2, 3], keepDims: true)
    }
    /// `output_size=1`
    public override var extraDescription: String { "output_size=\(outputSize)" }
}

private func checkPool(_ name: String, _ kernel: Size2, _ stride: Size2, _ padding: Size2) throws {
    let sizes = [kernel.height, kernel.width, stride.height, stride.width]
    guard sizes.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }), padding.height >= 0, padding.width >= 0,
          padding.height * 2 <= kernel.height, padding.width * 2 <= kernel.width else {
        throw TensorError("\(name)(kernel_size=\(kernel), stride=\(stride), padding=\(padding)): sizes must be at least 1 and the padding at most half the kernel.")
    }
}
