import KilnDevice
import KilnKernels

/// A product the tuner times: its shape, as a batch of `count` products (summed when the shape's
/// `summed` is above 1), and a name for tables.
public struct TuningShape: Sendable, Equatable {
    public var name: String
    public var shape: MatmulShape
    /// Products in the batch (each into its own C unless summed).
    public var count: Int

    public init(_ name: String, _ shape: MatmulShape, count: Int = 1) {
        self.name = name; self.shape = shape; self.count = shape.summed > 1 ? shape.summed : count
    }

    /// Floating-point operations of one run.
    public var flops: Double { 2 * Double(shape.m) * Double(shape.n) * Double(shape.k) * Double(count) }

    /// The products of training the 784-256-128-10 MLP at batch 128 (forward nt, weight gradient
    /// tn, input gradient nn), the CNN's convolutions when they run through im2col (conv2 of
    /// `kiln train --model cnn`, 32→64 channels on 14 × 14, batch 128: forward nn and input
    /// gradient tn; its weight gradient is a summed batch, which keeps the rule table's tiles), and
    /// squares in each transpose.
    public static let standard: [TuningShape] = {
        var shapes: [TuningShape] = []
        for (input, output) in [(784, 256), (256, 128), (128, 10)] {
            shapes.append(TuningShape("mlp fwd \(input)->\(output)", MatmulShape(transposeA: false, transposeB: true, m: 128, n: output, k: input)))
            shapes.append(TuningShape("mlp dW \(input)->\(output)", MatmulShape(transposeA: true, transposeB: false, m: output, n: input, k: 128)))
            shapes.append(TuningShape("mlp dX \(input)->\(output)", MatmulShape(transposeA: false, transposeB: false, m: 128, n: input, k: output)))
        }
        shapes.append(TuningShape("conv2 fwd (im2col)", MatmulShape(transposeA: false, transposeB: false, m: 64, n: 196, k: 288), count: 128))
        shapes.append(TuningShape("conv2 dX (im2col)", MatmulShape(transposeA: true, transposeB: false, m: 288, n: 196, k: 64), count: 128))
        for n in [256, 1024] {
            shapes.append(TuningShape("square \(n) nn", MatmulShape(transposeA: false, transposeB: false, m: n, n: n, k: n)))
        }
        for (ta, tb) in [(false, true), (true, false), (true, true)] {
            shapes.append(TuningShape("square 512 \(ta ? "t" : "n")\(tb ? "t" : "n")", MatmulShape(transposeA: ta, transposeB: tb, m: 512, n: 512, k: 512)))
        }
        return shapes
    }()
}

/// Device buffers for one `TuningShape`, filled once.
struct TuningOperands {
    let shape: TuningShape
    let a: Buffer<Float>, b: Buffer<Float>, c: Buffer<Float>

    init(_ shape: TuningShape, device: Device) throws {
        self.shape = shape
        let s = shape.shape
        let summed = s.summed > 1
        a = try device.buffer(TuningData.values(shape.count * s.m * s.k, seed: 1))
        b = try device.buffer(TuningData.values(shape.count * s.k * s.n, seed: 2))
        c = try device.buffer(Float.self, count: (summed ? 1 : shape.count) * s.m * s.n)
    }

    func run(_ library: KernelLibrary, tiles: MatmulConfig) throws {
        let s = shape.shape
        let batch: MatmulBatch = s.summed > 1 ? .sum(count: s.summed, strideA: s.m * s.k, strideB: s.k * s.n)
            : shape.count > 1 ? MatmulBatch(count: shape.count, strideA: s.m * s.k, strideB: s.k * s.n, strideC: s.m * s.n)
            : .single
        try library.matmul(a, b, into: c, m: s.m, n: s.n, k: s.k, transposeA: s.transposeA, transposeB: s.transposeB,
                           batch: batch, tiles: tiles)
    }
}

/// Deterministic inputs in [-1, 1).
enum TuningData {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 40) % 2001 - 1000) / 1000
        }
    }
}

/// One training step's convolution work of a layer of `kiln train --model cnn` at batch 128.
struct ConvolutionOperands {
    struct Layer { var channels: Int, outChannels: Int, size: Int }
    static let cnn = [Layer(channels: 1, outChannels: 32, size: 28), Layer(channels: 32, outChannels: 64, size: 14)]

    let window: WindowGeometry
    let o: Int
    let x: Buffer<Float>, w: Buffer<Float>, bias: Buffer<Float>, cols: Buffer<Float>, y: Buffer<Float>
    let dy: Buffer<Float>, dw: Buffer<Float>, dx: Buffer<Float>

    init(_ layer: Layer, device: Device) throws {
        window = try WindowGeometry(samples: 128, channels: layer.channels, height: layer.size, width: layer.size,
                                    kernel: (3, 3), padding: (1, 1))
        o = layer.outChannels
        let (p, ckk, n) = (window.outputPlane, window.patchSize, window.samples)
        x = try device.buffer(TuningData.values(window.inputCount, seed: 3))
        w = try device.buffer(TuningData.values(o * ckk, seed: 4))
        bias = try device.buffer(TuningData.values(o, seed: 5))
        cols = try device.buffer(Float.self, count: n * ckk * p)
        y = try device.buffer(Float.self, count: n * o * p)
        dy = try device.buffer(TuningData.values(n * o * p, seed: 6))
        dw = try device.buffer(Float.self, count: o * ckk)
        dx = try device.buffer(Float.self, count: window.inputCount)
    }

    /// Forward, weight gradient and (past the first layer) input gradient, as training runs them.
    func step(_ kernels: KernelLibrary) throws {
        let staged = kernels.convolutionStagesColumns(window, outChannels: o)
        try kernels.convolutionForward(x, weight: w, bias: bias, window, outChannels: o, activation: .relu,
                                       columns: staged ? nil : cols, into: y)
        try kernels.convolutionWeightGradient(gradOutput: dy, input: x, columns: staged ? nil : cols, window,
                                              outChannels: o, into: dw)
        if window.channels > 1 {
            try kernels.convolutionInputGradient(gradOutput: dy, weight: w, window, outChannels: o, into: dx)
        }
    }
}

/// The work of each launch family whose group size the tuner searches, at training's shapes.
struct GroupOperands {
    let logits: Buffer<Float>, gradient: Buffer<Float>, targets: Buffer<Int32>, loss: Buffer<Float>
    let wide: Buffer<Float>, wideOut: Buffer<Float>, columnSums: Buffer<Float>, total: Buffer<Float>
    let narrow: Buffer<Float>
    let norms: [BatchNormOperands]

    init(device: Device) throws {
        logits = try device.buffer(TuningData.values(128 * 10, seed: 7))
        gradient = try device.buffer(Float.self, count: 128 * 10)
        targets = try device.buffer((0..<128).map { Int32($0 % 10) })
        loss = try device.buffer(Float.self, count: 1)
        wide = try device.buffer(TuningData.values(1024 * 1000, seed: 8))
        wideOut = try device.buffer(Float.self, count: 1024 * 1000)
        narrow = try device.buffer(TuningData.values(128 * 1000, seed: 9))
        columnSums = try device.buffer(Float.self, count: 1000)
        total = try device.buffer(Float.self, count: 1)
        norms = try [BatchNormShape(samples: 128, channels: 32, spatial: 784), BatchNormShape(samples: 128, channels: 256)]
            .map { try BatchNormOperands($0, device: device) }
    }

    func rows(_ k: KernelLibrary) throws {
        try k.softmax(wide, rows: 1024, cols: 1000, into: wideOut)
        try k.crossEntropy(logits: logits, targets: targets, rows: 128, classes: 10, meanLoss: loss, gradient: gradient)
    }

    func columns(_ k: KernelLibrary) throws {
        try k.reduce(.sum, wide, rows: 1024, cols: 1000, axis: .eachColumn, into: columnSums)
        try k.reduce(.sum, narrow, rows: 128, cols: 1000, axis: .eachColumn, into: columnSums)
    }

    func chunks(_ k: KernelLibrary) throws {
        try k.reduce(.sum, wide, rows: 1024, cols: 1000, axis: .all, into: total)
    }

    func batchNorm(_ k: KernelLibrary) throws {
        for norm in norms { try norm.step(k) }
    }
}

/// A batch-norm layer's training forward and backward.
struct BatchNormOperands {
    let shape: BatchNormShape
    let x: Buffer<Float>, y: Buffer<Float>, dx: Buffer<Float>
    let gamma: Buffer<Float>, beta: Buffer<Float>, mean: Buffer<Float>, invstd: Buffer<Float>
    let runningMean: Buffer<Float>, runningVar: Buffer<Float>, dgamma: Buffer<Float>, dbeta: Buffer<Float>

    init(_ shape: BatchNormShape, device: Device) throws {
        self.shape = shape
        let (n, c) = (shape.count, shape.channels)
        x = try device.buffer(TuningData.values(n, seed: 10))
        y = try device.buffer(Float.self, count: n)
        dx = try device.buffer(Float.self, count: n)
        gamma = try device.buffer([Float](repeating: 1, count: c))
        beta = try device.buffer([Float](repeating: 0, count: c))
        runningMean = try device.buffer([Float](repeating: 0, count: c))
        runningVar = try device.buffer([Float](repeating: 1, count: c))
        mean = try device.buffer(Float.self, count: c)
        invstd = try device.buffer(Float.self, count: c)
        dgamma = try device.buffer(Float.self, count: c)
        dbeta = try device.buffer(Float.self, count: c)
    }

    func step(_ k: KernelLibrary) throws {
        try k.batchNormForwardTraining(x: x, shape: shape, gamma: gamma, beta: beta, runningMean: runningMean,
                                       runningVar: runningVar, y: y, saveMean: mean, saveInvstd: invstd)
        try k.batchNormBackward(x: x, dy: x, shape: shape, gamma: gamma, saveMean: mean, saveInvstd: invstd,
                                dx: dx, dgamma: dgamma, dbeta: dbeta)
    }
}
