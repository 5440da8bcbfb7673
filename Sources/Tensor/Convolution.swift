import KilnDevice
import KilnKernels

/// A pair of sizes for the two spatial axes (rows, columns), written as one number for a square.
public struct Size2: Sendable, Equatable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// Rows and columns.
    public var height: Int, width: Int
    /// `Size2(3, 5)`.
    public init(_ height: Int, _ width: Int) { self.height = height; self.width = width }
    /// `3` is 3 × 3.
    public init(integerLiteral value: Int) { self.init(value, value) }
    /// `Size2(3)` is 3 × 3.
    public init(_ value: Int) { self.init(value, value) }
    /// `3` or `(3, 5)`, as PyTorch prints them.
    public var description: String { height == width ? "\(height)" : "(\(height), \(width))" }
    var pair: (Int, Int) { (height, width) }
}

extension Tensor {
    /// The window of a convolution or pooling over this [N, C, H, W] tensor.
    func window(_ op: String, kernel: Size2, stride: Size2, padding: Size2, dilation: Size2) throws -> WindowGeometry {
        guard rank == 4 else { throw TensorError("\(op) needs [N, C, H, W] input, got \(shape).") }
        do {
            return try WindowGeometry(samples: shape[0], channels: shape[1], height: shape[2], width: shape[3],
                                      kernel: kernel.pair, stride: stride.pair, padding: padding.pair, dilation: dilation.pair)
        } catch let error as ShapeError {
            throw TensorError("\(op): \(error.description)")
        }
    }

    /// A 2-D convolution (`torch.nn.functional.conv2d`) of this [N, C, H, W] input with `weight`
    /// [O, C, KH, KW] and an optional `bias` [O], with zero padding, then `activation` when given
    /// (in the product's epilogue). Computed as im2col and one matrix product per sample; the
    /// gradient of the input is only computed when the input requires it (never for a model's images).
    ///
    /// ```swift
    /// let images = try Tensor.randn([8, 1, 28, 28], seed: 1)
    /// let weight = try Tensor.randn([16, 1, 3, 3], seed: 2, requiresGrad: true)
    /// let features = try images.conv2d(weight: weight, padding: 1)   // [8, 16, 28, 28]
    /// ```
    public func conv2d(weight: Tensor, bias: Tensor? = nil, stride: Size2 = 1, padding: Size2 = 0, dilation: Size2 = 1,
                       activation: Activation? = nil) throws -> Tensor {
        guard weight.rank == 4, rank == 4, weight.shape[1] == shape[1] else {
            throw TensorError("conv2d: input \(shape) needs [N, C, H, W] and weight \(weight.shape) [O, C, KH, KW] with the same C.")
        }
        let (o, ckk) = (weight.shape[0], weight.count / weight.shape[0])
        if let bias, bias.shape != [o] { throw TensorError("conv2d: bias \(bias.shape) should be [\(o)].") }
        try Tensor.checkSameDevice("conv2d", [self, weight, bias])
        if let activation, !activation.derivativeFromOutput {
            return try conv2d(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation)
                .applying(activation)
        }
        let window = try self.window("conv2d", kernel: Size2(weight.shape[2], weight.shape[3]), stride: stride,
                                     padding: padding, dilation: dilation)
        let (n, p) = (window.samples, window.outputPlane)
        // cols [N, C·KH·KW, P]: each sample's patches in one block, kept for the weight gradient --
        // unless the device stages them in local memory, where nothing needs keeping.
        let cols = try kernels.convolutionStagesColumns(window, outChannels: o) ? nil : Tensor.empty([n, ckk, p], on: device)
        let out = try Tensor.empty([n, o, window.outputHeight, window.outputWidth], on: device)
        try kernels.convolutionForward(floats("conv2d"), weight: weight.floats("conv2d"), bias: bias?.floats("conv2d"),
                                       window, outChannels: o, activation: activation, columns: cols?.floats("conv2d"),
                                       into: out.floats("conv2d"))
        let x = self
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return out.recorded(inputs) { g in
            var gz = g
            if let activation {
                gz = try Tensor.empty(g.shape, on: g.device)
                try g.kernels.activationBackward(activation, gradOutput: g.floats("conv2d"), saved: out.floats("conv2d"),
                                                 into: gz.floats("conv2d"))
            }
            let kernels = try x.kernels
            var gWeight: Tensor? = nil, gBias: Tensor? = nil, gInput: Tensor? = nil
            if weight.requiresGrad {
                // dW = Σₙ gz[n] [O, P] · cols[n]ᵀ, the samples' products summed in one launch.
                let dw = try Tensor.empty(weight.shape, on: x.device)
                try kernels.convolutionWeightGradient(gradOutput: gz.floats("conv2d"), input: x.floats("conv2d"),
                                                      columns: cols?.floats("conv2d"), window, outChannels: o,
                                                      into: dw.floats("conv2d"))
                gWeight = dw
            }
            if bias?.requiresGrad == true { gBias = try gz.sum(axes: [0, 2, 3]) }
            if x.requiresGrad {
                // dcols[n] = Wᵀ · gz[n], then each input element gathers its windows' entries.
                let dx = try Tensor.empty(x.shape, on: x.device)
                try kernels.convolutionInputGradient(gradOutput: gz.floats("conv2d"), weight: weight.floats("conv2d"), window,
                                                     outChannels: o, into: dx.floats("conv2d"))
                gInput = dx
            }
            return [gInput, gWeight] + (bias == nil ? [] : [gBias])
        }
    }

    /// 2-D max pooling (`torch.nn.functional.max_pool2d`) over this [N, C, H, W] tensor; the stride
    /// defaults to the kernel, the padding (−∞) to 0. The gradient goes to each window's first
    /// maximum (saved as int32 indices).
    public func maxPool2d(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0, dilation: Size2 = 1) throws -> Tensor {
        let window = try self.window("maxPool2d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: dilation)
        try checkPoolPadding("maxPool2d", window)
        let out = try Tensor.empty([window.samples, window.channels, window.outputHeight, window.outputWidth], on: device)
        let indices = try device.buffer(Int32.self, count: window.outputCount)
        try kernels.maxPool(floats("maxPool2d"), window, into: out.floats("maxPool2d"), indices: indices)
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.empty(x.shape, on: x.device)
            try x.kernels.maxPoolBackward(g.floats("maxPool2d"), indices: indices, window, into: dx.floats("maxPool2d"))
            return [dx]
        }
    }

    /// 2-D average pooling (`torch.nn.functional.avg_pool2d`, `count_include_pad=True`) over this
    /// [N, C, H, W] tensor; the stride defaults to the kernel, the zero padding to 0.
    public func avgPool2d(kernel: Size2, stride: Size2? = nil, padding: Size2 = 0) throws -> Tensor {
        let window = try self.window("avgPool2d", kernel: kernel, stride: stride ?? kernel, padding: padding, dilation: 1)
        try checkPoolPadding("avgPool2d", window)
        let out = try Tensor.empty([window.samples, window.channels, window.outputHeight, window.outputWidth], on: device)
        try kernels.avgPool(floats("avgPool2d"), window, into: out.floats("avgPool2d"))
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.empty(x.shape, on: x.device)
            try x.kernels.avgPoolBackward(g.floats("avgPool2d"), window, into: dx.floats("avgPool2d"))
            return [dx]
        }
    }

    /// PyTorch's rule: a pooling's padding is at most half its kernel (so no window is all padding).
    private func checkPoolPadding(_ op: String, _ window: WindowGeometry) throws {
        guard window.padding.0 * 2 <= window.kernel.0, window.padding.1 * 2 <= window.kernel.1 else {
            throw TensorError("\(op): padding \(window.padding) must be at most half the kernel \(window.kernel) (PyTorch raises too).")
        }
    }
}
