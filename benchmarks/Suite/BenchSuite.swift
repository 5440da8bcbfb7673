import Foundation
import Kiln

/// The groups of measurements and how a row of the table reads.
public enum BenchSuite {
    public static let groups = ["matmul", "mlp", "elementwise", "softmax", "batchnorm", "conv"]

    static let header = "op".padding(toLength: 40, withPad: " ", startingAt: 0) + " "
        + "shape".padding(toLength: 18, withPad: " ", startingAt: 0) + " "
        + ["device ms".leftPadded(10), "wall ms".leftPadded(10), "GFLOP/s".leftPadded(9), "GB/s".leftPadded(9),
           "%peak".leftPadded(7), "runs".leftPadded(4), "configuration"].joined(separator: " ")

    static func row(_ r: BenchResult) -> String {
        func f(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        return "\(r.name.padding(toLength: 40, withPad: " ", startingAt: 0)) "
            + "\(r.shape.map(String.init).joined(separator: "x").padding(toLength: 18, withPad: " ", startingAt: 0)) "
            + "\(f(r.median_ms, 4).leftPadded(10)) \(f(r.wall_ms, 4).leftPadded(10)) \(f(r.gflops).leftPadded(9)) "
            + "\(f(r.gbps).leftPadded(9)) \(f(r.percent_of_peak, 0).leftPadded(7)) \(String(r.runs).leftPadded(4))"
            + (r.config.map { " \($0)" } ?? "")
    }

    static func run(_ group: String, on runner: BenchRunner) throws -> [BenchResult] {
        let k = runner.kernels.config
        let source = runner.kernels.tuned == nil ? "rules" : "tuned"
        let launch: String? = switch group {
        case "elementwise": "\(source) group \(k.elementwiseGroup), columns \(k.columnsGroup)"
        case "softmax": "\(source) rows group \(k.rowsGroup)"
        case "batchnorm": "\(source) bn group \(k.batchNormGroup)"
        case "conv": "\(source) \(runner.kernels.convolutionTiles.summary(kind: k.kind)), bn group \(k.batchNormGroup)"
        default: nil
        }
        return try results(group, on: runner).map { result in
            var result = result
            if result.config == nil { result.config = launch }
            return result
        }
    }

    private static func results(_ group: String, on runner: BenchRunner) throws -> [BenchResult] {
        switch group {
        case "matmul": return try [256, 512, 1024, 2048].map { try matmul(runner, "matmul", m: $0, k: $0, n: $0) }
        case "mlp": return try mlpProducts(runner)
        case "elementwise": return try elementwise(runner)
        case "softmax": return try softmax(runner)
        case "batchnorm": return try batchNorm(runner)
        case "conv": return try convolutions(runner)
        default: return []
        }
    }

    /// C[m, n] = op(A)·op(B) with op(A) m×k; the name says which transposes.
    static func matmul(_ r: BenchRunner, _ name: String, m: Int, k: Int, n: Int, ta: Bool = false, tb: Bool = false,
                       bias: Bool = false, activation: Activation? = nil) throws -> BenchResult {
        let a = try r.device.buffer(randomData(m * k)), b = try r.device.buffer(randomData(k * n))
        let c: Buffer<Float> = try r.device.buffer(count: m * n)
        let biasBuffer = bias ? try r.device.buffer(randomData(n)) : nil
        var result = try r.measure(name, shape: [m, k, n], flops: 2 * Double(m) * Double(n) * Double(k)) {
            try r.kernels.matmul(a, b, into: c, m: m, n: n, k: k, transposeA: ta, transposeB: tb, bias: biasBuffer,
                                 activation: activation)
        }
        let shape = MatmulShape(transposeA: ta, transposeB: tb, m: m, n: n, k: k)
        let tiles = r.kernels.tiles(for: shape)
        result.config = (tiles == r.kernels.config.matmul ? "rules " : "tuned ") + r.kernels.summary(of: tiles, at: shape)
        return result
    }

    /// The products of one training step of the 784-256-128-10 MLP at batch 128: forward (nt, with
    /// bias and ReLU), weight gradient dW = dYᵀ·X (tn) and input gradient dX = dY·W (nn).
    static func mlpProducts(_ r: BenchRunner) throws -> [BenchResult] {
        var results: [BenchResult] = []
        for (input, output, act) in [(784, 256, Activation?.some(.relu)), (256, 128, .relu), (128, 10, nil)] {
            results.append(try matmul(r, "mlp fwd \(input)->\(output) nt", m: 128, k: input, n: output, tb: true,
                                      bias: true, activation: act))
            results.append(try matmul(r, "mlp dW \(input)->\(output) tn", m: output, k: 128, n: input, ta: true))
            results.append(try matmul(r, "mlp dX \(input)->\(output) nn", m: 128, k: output, n: input))
        }
        return results
    }

    static func elementwise(_ r: BenchRunner) throws -> [BenchResult] {
        var results: [BenchResult] = []
        for (rows, cols) in [(128, 256), (1024, 4096)] {
            let n = rows * cols
            let x = try r.device.buffer(randomData(n)), y: Buffer<Float> = try r.device.buffer(count: n)
            let bias = try r.device.buffer(randomData(cols))
            results.append(try r.measure("add row-broadcast", shape: [rows, cols], bytes: Double(8 * n)) {
                try r.kernels.binary(.add, x, bias, rows: rows, cols: cols, broadcast: .row, into: y)
            })
            results.append(try r.measure("relu", shape: [rows, cols], bytes: Double(8 * n)) {
                try r.kernels.activation(.relu, x, into: y)
            })
            results.append(try r.measure("relu backward", shape: [rows, cols], bytes: Double(12 * n)) {
                try r.kernels.activationBackward(.relu, gradOutput: x, saved: x, into: y)
            })
            results.append(try r.measure("gelu", shape: [rows, cols], bytes: Double(8 * n)) {
                try r.kernels.activation(.gelu, x, into: y)
            })
            let sums: Buffer<Float> = try r.device.buffer(count: cols)
            results.append(try r.measure("sum columns", shape: [rows, cols], bytes: Double(4 * n)) {
                try r.kernels.reduce(.sum, x, rows: rows, cols: cols, axis: .eachColumn, into: sums)
            })
            let m = try r.device.buffer(Float.self, count: n), v = try r.device.buffer(Float.self, count: n)
            try m.fill(0); try v.fill(0)
            let p = try r.device.buffer(randomData(n))
            results.append(try r.measure("adam step", shape: [rows, cols], bytes: Double(28 * n)) {
                try r.kernels.adamStep(param: p, grad: x, expAvg: m, expAvgSq: v, step: 1, hyper: .init())
            })
        }
        return results
    }

    static func softmax(_ r: BenchRunner) throws -> [BenchResult] {
        var results: [BenchResult] = []
        for (rows, cols) in [(128, 10), (1024, 1000), (8192, 512)] {
            let n = rows * cols
            let x = try r.device.buffer(randomData(n)), y: Buffer<Float> = try r.device.buffer(count: n)
            results.append(try r.measure("softmax", shape: [rows, cols], bytes: Double(8 * n)) {
                try r.kernels.softmax(x, rows: rows, cols: cols, into: y)
            })
            let targets = try r.device.buffer((0..<rows).map { Int32($0 % cols) })
            let loss: Buffer<Float> = try r.device.buffer(count: 1)
            results.append(try r.measure("cross-entropy+grad", shape: [rows, cols], bytes: Double(8 * n)) {
                try r.kernels.crossEntropy(logits: x, targets: targets, rows: rows, classes: cols, meanLoss: loss, gradient: y)
            })
        }
        return results
    }

    static func batchNorm(_ r: BenchRunner) throws -> [BenchResult] {
        var results: [BenchResult] = []
        for (rows, features) in [(128, 256), (32768, 128)] {
            let n = rows * features
            let x = try r.device.buffer(randomData(n)), y: Buffer<Float> = try r.device.buffer(count: n)
            let gamma = try r.device.buffer([Float](repeating: 1, count: features))
            let beta = try r.device.buffer([Float](repeating: 0, count: features))
            let mean: Buffer<Float> = try r.device.buffer(count: features), invstd: Buffer<Float> = try r.device.buffer(count: features)
            let runningMean = try r.device.buffer([Float](repeating: 0, count: features))
            let runningVar = try r.device.buffer([Float](repeating: 1, count: features))
            // Training forward reads x twice (statistics, then normalisation) and writes y.
            results.append(try r.measure("batchnorm fwd train", shape: [rows, features], bytes: Double(12 * n)) {
                try r.kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: rows, channels: features),
                                                       gamma: gamma, beta: beta,
                                                       runningMean: runningMean, runningVar: runningVar,
                                                       y: y, saveMean: mean, saveInvstd: invstd)
            })
            let dx: Buffer<Float> = try r.device.buffer(count: n)
            let dgamma: Buffer<Float> = try r.device.buffer(count: features), dbeta: Buffer<Float> = try r.device.buffer(count: features)
            // Backward reads x and dy for the sums, again for dx, and writes dx.
            results.append(try r.measure("batchnorm backward", shape: [rows, features], bytes: Double(20 * n)) {
                try r.kernels.batchNormBackward(x: x, dy: y, shape: BatchNormShape(samples: rows, channels: features),
                                                gamma: gamma, saveMean: mean,
                                                saveInvstd: invstd, dx: dx, dgamma: dgamma, dbeta: dbeta)
            })
        }
        return results
    }

    /// The convolution products of `kiln train --model cnn` at batch 128, both layers, as training
    /// runs them (`convolutionStagesColumns`: each sample's columns staged in local memory, or
    /// im2col columns in global memory, whose im2col and col2im are then counted in the products):
    /// the forward product (per sample, [O, C·9] · [C·9, 784 or 196]), the weight gradient
    /// (Σₙ dy[n] · cols[n]ᵀ) and the input gradient (staged: dy convolved with the flipped weights; else
    /// col2im of Wᵀ · dy[n]); then the global im2col and
    /// col2im alone, the 2 × 2 max pooling and BatchNorm2d that go with them. FLOPs count 2·N·O·C·9·P
    /// for each product.
    static func convolutions(_ r: BenchRunner) throws -> [BenchResult] {
        var results: [BenchResult] = []
        let n = 128
        for (name, c, o, hw) in [("conv1 1->32 28x28", 1, 32, 28), ("conv2 32->64 14x14", 32, 64, 14)] {
            let window = try WindowGeometry(samples: n, channels: c, height: hw, width: hw, kernel: (3, 3), padding: (1, 1))
            let (p, ckk) = (window.outputPlane, window.patchSize)
            let flops = 2 * Double(n * o * ckk * p)
            let x = try r.device.buffer(randomData(n * c * hw * hw)), w = try r.device.buffer(randomData(o * ckk))
            let bias = try r.device.buffer(randomData(o))
            let cols: Buffer<Float> = try r.device.buffer(count: ckk * n * p)
            let y: Buffer<Float> = try r.device.buffer(count: n * o * p)
            let g = try r.device.buffer(randomData(o * n * p)), dw: Buffer<Float> = try r.device.buffer(count: o * ckk)
            let dx: Buffer<Float> = try r.device.buffer(count: window.inputCount)
            // As training runs them, and (when that stages) through global columns too, for comparison.
            var unstaged = r.kernels.config
            unstaged.stagesConvolutionColumns = false
            var libraries = [r.kernels]
            if r.kernels.convolutionStagesColumns(window, outChannels: o) || r.kernels.convolutionInputGradientPlan(window, outChannels: o) != nil {
                libraries.append(try KernelLibrary(device: r.device, config: unstaged))
            }
            var layerPaths: Set<Bool> = []
            for kernels in libraries {
                let staged = kernels.convolutionStagesColumns(window, outChannels: o)
                let path = staged ? "staged" : "im2col"
                // (When only the input gradient stages, both libraries run the layer through im2col: once.)
                if layerPaths.insert(staged).inserted {
                    results.append(try r.measure("\(name) forward (\(path))", shape: [o, ckk, p, n], flops: flops) {
                        try kernels.convolutionForward(x, weight: w, bias: bias, window, outChannels: o,
                                                       columns: staged ? nil : cols, into: y)
                    })
                    results.append(try r.measure("\(name) weight grad (\(path))", shape: [o, p, ckk, n], flops: flops) {
                        try kernels.convolutionWeightGradient(gradOutput: g, input: x, columns: staged ? nil : cols, window,
                                                              outChannels: o, into: dw)
                    })
                }
                if c > 1 {
                    // The input gradient stages on its own (dy's channels, in chunks when a sample does not fit).
                    let plan = kernels.convolutionInputGradientPlan(window, outChannels: o)
                    let chunks = plan.map { (o + $0.channels - 1) / $0.channels } ?? 0
                    let how = chunks == 0 ? "im2col" : chunks == 1 ? "staged" : "staged, \(chunks) chunks"
                    results.append(try r.measure("\(name) input grad (\(how))", shape: [ckk, o, p, n], flops: flops) {
                        try kernels.convolutionInputGradient(gradOutput: g, weight: w, window, outChannels: o, into: dx)
                    })
                }
            }
            results.append(try r.measure("\(name) im2col", shape: [ckk, n * p], bytes: Double(4 * (ckk * n * p + window.inputCount))) {
                try r.kernels.im2col(x, window, into: cols)
            })
            if c > 1 {
                results.append(try r.measure("\(name) col2im", shape: [ckk, n * p], bytes: Double(4 * (ckk * n * p + window.inputCount))) {
                    try r.kernels.col2im(cols, window, into: dx)
                })
            }
            let pool = try WindowGeometry(samples: n, channels: o, height: hw, width: hw, kernel: (2, 2), stride: (2, 2))
            let pooled: Buffer<Float> = try r.device.buffer(count: pool.outputCount)
            let indices: Buffer<Int32> = try r.device.buffer(count: pool.outputCount)
            results.append(try r.measure("\(name) max pool", shape: [n, o, hw, hw], bytes: Double(4 * (n * o * p + 2 * pool.outputCount))) {
                try r.kernels.maxPool(y, pool, into: pooled, indices: indices)
            })
            results.append(try r.measure("\(name) max pool backward", shape: [n, o, hw, hw], bytes: Double(4 * (n * o * p + 2 * pool.outputCount))) {
                try r.kernels.maxPoolBackward(pooled, indices: indices, pool, into: y)
            })
            let shape = BatchNormShape(samples: n, channels: o, spatial: p)
            let gamma = try r.device.buffer([Float](repeating: 1, count: o)), beta = try r.device.buffer([Float](repeating: 0, count: o))
            let mean: Buffer<Float> = try r.device.buffer(count: o), invstd: Buffer<Float> = try r.device.buffer(count: o)
            let dgamma: Buffer<Float> = try r.device.buffer(count: o), dbeta: Buffer<Float> = try r.device.buffer(count: o)
            let normalized: Buffer<Float> = try r.device.buffer(count: n * o * p)
            results.append(try r.measure("\(name) batchnorm2d fwd", shape: [n, o, p], bytes: Double(12 * n * o * p)) {
                try r.kernels.batchNormForwardTraining(x: y, shape: shape, gamma: gamma, beta: beta, runningMean: nil,
                                                       runningVar: nil, y: normalized, saveMean: mean, saveInvstd: invstd)
            })
            results.append(try r.measure("\(name) batchnorm2d bwd", shape: [n, o, p], bytes: Double(20 * n * o * p)) {
                try r.kernels.batchNormBackward(x: y, dy: g, shape: shape, gamma: gamma, saveMean: mean, saveInvstd: invstd,
                                                dx: normalized, dgamma: dgamma, dbeta: dbeta)
            })
        }
        return results
    }

    /// Deterministic data in [-1, 1).
    static func randomData(_ n: Int) -> [Float] {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        return (0..<n).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }
}
