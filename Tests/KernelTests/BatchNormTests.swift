import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// Batch norm over x[n, c, s] (s = 1: [n, c]) on the host in double, two-pass, statistics per
/// channel over n and s: the reference of the kernels.
struct BatchNormReference {
    let n: Int, c: Int, s: Int
    let mean: [Double], variance: [Double], invstd: [Double]
    /// Two roundings of a float mean: the device's mean can be off by this much (it only matters
    /// when |mean| >> std, where x - mean then carries it into everything after).
    let meanRounding: [Double]
    let y: [Double]

    init(x: [Float], n: Int, c: Int, s: Int = 1, gamma: [Float]?, beta: [Float]?, eps: Float) {
        self.n = n; self.c = c; self.s = s
        let m = Double(n * s)
        var mean = [Double](repeating: 0, count: c), variance = [Double](repeating: 0, count: c)
        for i in 0..<n * c * s { mean[(i / s) % c] += Double(x[i]) }
        for f in 0..<c { mean[f] /= m }
        for i in 0..<n * c * s { let d = Double(x[i]) - mean[(i / s) % c]; variance[(i / s) % c] += d * d }
        for f in 0..<c { variance[f] /= m }
        let invstd = variance.map { 1 / ($0 + Double(eps)).squareRoot() }
        self.mean = mean; self.variance = variance; self.invstd = invstd
        meanRounding = mean.map { 2 * Double(Float($0).ulp) }
        y = (0..<n * c * s).map { i in
            let f = (i / s) % c
            let xhat = (Double(x[i]) - mean[f]) * invstd[f]
            return xhat * Double(gamma?[f] ?? 1) + Double(beta?[f] ?? 0)
        }
    }

    /// dx, dgamma, dbeta for upstream gradient dy; the size of the terms each one sums or cancels
    /// (float rounding error scales with those, not with the result); and what the mean's
    /// rounding adds.
    func backward(x: [Float], dy: [Float], gamma: [Float]?) -> (dx: [Double], dgamma: [Double], dbeta: [Double],
                                                                 dxTerms: [Double], dgammaTerms: [Double], dbetaTerms: [Double],
                                                                 dxMeanError: [Double], dgammaMeanError: [Double]) {
        var sdy = [Double](repeating: 0, count: c), sdyxhat = sdy, dgammaTerms = sdy, dbetaTerms = sdy
        let m = Double(n * s)
        for i in 0..<n * c * s {
            let f = (i / s) % c, xhat = (Double(x[i]) - mean[f]) * invstd[f]
            sdy[f] += Double(dy[i])
            sdyxhat[f] += Double(dy[i]) * xhat
            dbetaTerms[f] += abs(Double(dy[i]))
            dgammaTerms[f] += abs(Double(dy[i]) * xhat)
        }
        var dx = [Double](), dxTerms = [Double](), dxMeanError = [Double]()
        for i in 0..<n * c * s {
            let f = (i / s) % c, xhat = (Double(x[i]) - mean[f]) * invstd[f], k = Double(gamma?[f] ?? 1) * invstd[f]
            dx.append(k / m * (m * Double(dy[i]) - sdy[f] - xhat * sdyxhat[f]))
            dxTerms.append(abs(k) * (abs(Double(dy[i])) + abs(sdy[f]) / m + abs(xhat * sdyxhat[f]) / m))
            // The rounded mean shifts x - mean, and sum dy * xhat by invstd * error * sum dy.
            dxMeanError.append(meanRounding[f] * abs(k) * invstd[f] * (abs(sdyxhat[f]) + abs(xhat * sdy[f])) / m)
        }
        let dgammaMeanError = (0..<c).map { meanRounding[$0] * invstd[$0] * abs(sdy[$0]) }
        return (dx, sdyxhat, sdy, dxTerms, dgammaTerms, dbetaTerms, dxMeanError, dgammaMeanError)
    }
}

/// Records an issue where `|actual - expected| > rtol * |expected| + allowance`: for results whose
/// rounding error scales with the terms they sum or cancel rather than with themselves.
func expectCloseAllowing(_ actual: [Float], _ expected: [Double], rtol: Double, allowance: [Double],
                         _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let bad = (0..<expected.count).filter { i in
        !(abs(Double(actual[i]) - expected[i]) <= rtol * abs(expected[i]) + allowance[i])
    }
    if let i = bad.first {
        Issue.record("\(what): \(bad.count) of \(expected.count) values differ (rtol \(rtol)); first [\(i)] \(actual[i]) vs \(expected[i]), allowed \(allowance[i])",
                     sourceLocation: sourceLocation)
    }
}

/// Shapes [n, c] from the awkward sizes: partial vector blocks, several 256-row chunks.
let batchNormShapes: [(Int, Int)] = [(7, 13), (13, 1), (64, 31), (129, 7), (257, 64), (1000, 13), (31, 129), (2, 1000)]

/// Shapes [n, c, s] of BatchNorm2d (s = H·W): positions that are and are not a multiple of the
/// vector width, chunks of one and of many samples.
let batchNorm2dShapes: [(Int, Int, Int)] = [(2, 3, 49), (5, 4, 16), (17, 5, 13), (3, 1, 784), (129, 7, 3), (64, 8, 196)]

/// A library built for the GPU path (`KILN_GPU`: local-memory trees, one element per work-item)
/// on the test device, so those kernels are checked on PoCL too.
enum GPUPathLibrary {
    static let shared: Result<KernelLibrary, any Error>? = {
        guard let device = TestDevice.shared else { return nil }
        return Result { try KernelLibrary(device: device, config: KernelConfig(for: device.info, kind: .gpu)) }
    }()

    static func get() throws -> KernelLibrary {
        try #require(shared, "No OpenCL device").get()
    }
}

/// Runs training forward (with running statistics), eval forward and backward on `kernels` and
/// checks all against the double reference.
func checkBatchNorm(_ kernels: KernelLibrary, n: Int, c: Int, s: Int = 1, xs: [Float], affine: Bool, what: String) throws {
    let device = kernels.device
    let shape = BatchNormShape(samples: n, channels: c, spatial: s)
    let gammaValues = affine ? randomFloats(c, in: 0.5...1.5, seed: 21) : nil
    let betaValues = affine ? randomFloats(c, seed: 22) : nil
    let runMean0 = randomFloats(c, seed: 23), runVar0 = randomFloats(c, in: 0.5...2, seed: 24)
    let hyper = BatchNormHyperparameters(eps: 1e-5, momentum: 0.1)
    let x = try device.buffer(xs), y = try device.buffer(Float.self, count: n * c * s)
    let gamma = try gammaValues.map { try device.buffer($0) }, beta = try betaValues.map { try device.buffer($0) }
    let runMean = try device.buffer(runMean0), runVar = try device.buffer(runVar0)
    let mean = try device.buffer(Float.self, count: c), invstd = try device.buffer(Float.self, count: c)
    let ref = BatchNormReference(x: xs, n: n, c: c, s: s, gamma: gammaValues, beta: betaValues, eps: hyper.eps)

    try kernels.batchNormForwardTraining(x: x, shape: shape, gamma: gamma, beta: beta, runningMean: runMean,
                                         runningVar: runVar, hyper: hyper, y: y, saveMean: mean, saveInvstd: invstd)
    let ys = try y.toArray()
    let yAllowance = (0..<n * c * s).map { i -> Double in
        let f = (i / s) % c
        return 2e-5 + ref.meanRounding[f] * abs(Double(gammaValues?[f] ?? 1)) * ref.invstd[f]
    }
    expectCloseAllowing(ys, ref.y, rtol: 1e-4, allowance: yAllowance, "\(what): y")
    #expect(ys.allSatisfy { $0.isFinite }, "\(what): y finite")
    expectCloseAllowing(try mean.toArray(), ref.mean, rtol: 1e-5, allowance: ref.meanRounding.map { $0 + 1e-6 },
                        "\(what): saved mean")
    expectClose(try invstd.toArray(), ref.invstd, rtol: 1e-4, atol: 0, "\(what): saved invstd")
    // PyTorch: running = (1 - momentum) * running + momentum * stat, with the unbiased variance.
    let m = Double(hyper.momentum)
    let expectedRunMean = (0..<c).map { (1 - m) * Double(runMean0[$0]) + m * ref.mean[$0] }
    let expectedRunVar = (0..<c).map { (1 - m) * Double(runVar0[$0]) + m * ref.variance[$0] * Double(n * s) / Double(n * s - 1) }
    let runMean1 = try runMean.toArray(), runVar1 = try runVar.toArray()
    expectClose(runMean1, expectedRunMean, rtol: 1e-5, atol: 1e-6, "\(what): running mean")
    expectClose(runVar1, expectedRunVar, rtol: 1e-4, atol: 1e-6, "\(what): running var")

    // Eval forward with the updated running statistics.
    try kernels.batchNormForwardInference(x: x, shape: shape, gamma: gamma, beta: beta, runningMean: runMean,
                                          runningVar: runVar, eps: hyper.eps, y: y)
    let evalRef = (0..<n * c * s).map { i in
        let f = (i / s) % c
        return (Double(xs[i]) - Double(runMean1[f])) / (Double(runVar1[f]) + Double(hyper.eps)).squareRoot()
            * Double(gammaValues?[f] ?? 1) + Double(betaValues?[f] ?? 0)
    }
    expectClose(try y.toArray(), evalRef, rtol: 1e-4, atol: 1e-4, "\(what): eval y")

    // Backward from the saved statistics.
    let dys = randomFloats(n * c * s, seed: UInt64(n * 31 + c))
    let dy = try device.buffer(dys), dx = try device.buffer(Float.self, count: n * c * s)
    let dgamma = affine ? try device.buffer(Float.self, count: c) : nil
    let dbeta = affine ? try device.buffer(Float.self, count: c) : nil
    try kernels.batchNormBackward(x: x, dy: dy, shape: shape, gamma: gamma, saveMean: mean, saveInvstd: invstd,
                                  dx: dx, dgamma: dgamma, dbeta: dbeta)
    let grads = ref.backward(x: xs, dy: dys, gamma: gammaValues)
    // Gradients: 1e-4 relative, plus 1e-5 of the terms summed or cancelled, plus the mean's rounding.
    let dxAllowance = zip(grads.dxTerms, grads.dxMeanError).map { 1e-5 * $0 + $1 }
    expectCloseAllowing(try dx.toArray(), grads.dx, rtol: 1e-4, allowance: dxAllowance, "\(what): dx")
    if let dgamma, let dbeta {
        let dgammaAllowance = zip(grads.dgammaTerms, grads.dgammaMeanError).map { 1e-5 * $0 + $1 }
        expectCloseAllowing(try dgamma.toArray(), grads.dgamma, rtol: 1e-4, allowance: dgammaAllowance, "\(what): dgamma")
        expectCloseAllowing(try dbeta.toArray(), grads.dbeta, rtol: 1e-4, allowance: grads.dbetaTerms.map { 1e-5 * $0 },
                            "\(what): dbeta")
    }
}

@Suite("Batch norm")
struct BatchNormTests {
    @Test("training forward, running statistics, eval forward and backward match the double reference",
          arguments: batchNormShapes)
    func matchesReference(n: Int, c: Int) throws {
        let kernels = try TestDevice.kernels()
        let xs = randomFloats(n * c, in: -2...3, seed: UInt64(n * 1000 + c))
        try checkBatchNorm(kernels, n: n, c: c, xs: xs, affine: true, what: "[\(n), \(c)] affine")
        try checkBatchNorm(kernels, n: n, c: c, xs: xs, affine: false, what: "[\(n), \(c)] no affine")
    }

    @Test("BatchNorm2d's layout [N, C, H·W]: statistics per channel over samples and positions",
          arguments: batchNorm2dShapes)
    func spatial(n: Int, c: Int, s: Int) throws {
        let xs = randomFloats(n * c * s, in: -2...3, seed: UInt64(n * 100 + c * 10 + s))
        for kernels in [try TestDevice.kernels(), try GPUPathLibrary.get()] {
            try checkBatchNorm(kernels, n: n, c: c, s: s, xs: xs, affine: true, what: "\(kernels.config.kind) [\(n), \(c), \(s)]")
        }
        try checkBatchNorm(TestDevice.kernels(), n: n, c: c, s: s, xs: xs.map { $0 + 10_000 }, affine: false,
                           what: "[\(n), \(c), \(s)] at mean 1e4")
    }

    @Test("a constant feature (variance 0) normalizes to beta, finite")
    func constantFeature() throws {
        let kernels = try TestDevice.kernels()
        let (n, c) = (1000, 3)
        var xs = randomFloats(n * c, seed: 5)
        for r in 0..<n { xs[r * c + 1] = 0.3 }
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: n * c)
        let gamma = try kernels.device.buffer([Float](repeating: 2, count: c)), beta = try kernels.device.buffer([Float(0.5), -1.25, 4])
        let mean = try kernels.device.buffer(Float.self, count: c), invstd = try kernels.device.buffer(Float.self, count: c)
        try kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: n, channels: c), gamma: gamma, beta: beta, runningMean: nil,
                                             runningVar: nil, y: y, saveMean: mean, saveInvstd: invstd)
        let ys = try y.toArray()
        expectClose((0..<n).map { ys[$0 * c + 1] }, [Double](repeating: -1.25, count: n), rtol: 0, atol: 1e-4, "constant column")
        #expect(ys.allSatisfy { $0.isFinite })
        let savedMean = try mean.toArray()[1], savedInvstd = try invstd.toArray()[1]
        #expect(savedMean == 0.3)
        #expect(abs(Double(savedInvstd) - 1 / 1e-5.squareRoot()) < 1)
    }

    @Test("a feature of mean 1e4 and spread 1 (where E[x^2] - E[x]^2 fails) matches the two-pass reference",
          arguments: [(1000, 5), (257, 17)])
    func largeMean(n: Int, c: Int) throws {
        let kernels = try TestDevice.kernels()
        let xs = randomFloats(n * c, in: -1...1, seed: 77).map { $0 + 10_000 }
        // A float mean at 1e4 is only known to half an ulp (~5e-4); the references allow for that
        // (meanRounding). The one-pass formula E[x^2] - E[x]^2 would be wrong by whole units.
        try checkBatchNorm(kernels, n: n, c: c, xs: xs, affine: true, what: "mean 1e4")
        let x = try kernels.device.buffer(xs), y = try kernels.device.buffer(Float.self, count: n * c)
        let mean = try kernels.device.buffer(Float.self, count: c), invstd = try kernels.device.buffer(Float.self, count: c)
        try kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: n, channels: c), gamma: nil, beta: nil, runningMean: nil,
                                             runningVar: nil, y: y, saveMean: mean, saveInvstd: invstd)
        let ref = BatchNormReference(x: xs, n: n, c: c, gamma: nil, beta: nil, eps: 1e-5)
        let variances = try invstd.toArray().map { 1 / (Double($0) * Double($0)) - 1e-5 }
        expectClose(variances.map(Float.init), ref.variance, rtol: 1e-4, atol: 0, "variance at mean 1e4")
    }

    @Test("the running variance uses PyTorch's unbiased formula over several steps")
    func runningStatisticsOverSteps() throws {
        let kernels = try TestDevice.kernels()
        let (n, c) = (31, 7)
        let runMean = try kernels.device.buffer([Float](repeating: 0, count: c))
        let runVar = try kernels.device.buffer([Float](repeating: 1, count: c))
        let y = try kernels.device.buffer(Float.self, count: n * c)
        let mean = try kernels.device.buffer(Float.self, count: c), invstd = try kernels.device.buffer(Float.self, count: c)
        var expectedMean = [Double](repeating: 0, count: c), expectedVar = [Double](repeating: 1, count: c)
        let hyper = BatchNormHyperparameters(eps: 1e-3, momentum: 0.25)
        for step in 0..<3 {
            let xs = randomFloats(n * c, in: -3...5, seed: UInt64(100 + step))
            let ref = BatchNormReference(x: xs, n: n, c: c, gamma: nil, beta: nil, eps: hyper.eps)
            try kernels.batchNormForwardTraining(x: kernels.device.buffer(xs), shape: BatchNormShape(samples: n, channels: c), gamma: nil, beta: nil,
                                                 runningMean: runMean, runningVar: runVar, hyper: hyper, y: y,
                                                 saveMean: mean, saveInvstd: invstd)
            for f in 0..<c {
                expectedMean[f] = 0.75 * expectedMean[f] + 0.25 * ref.mean[f]
                expectedVar[f] = 0.75 * expectedVar[f] + 0.25 * ref.variance[f] * Double(n) / Double(n - 1)
            }
            expectClose(try runMean.toArray(), expectedMean, rtol: 1e-5, atol: 1e-6, "running mean step \(step)")
            expectClose(try runVar.toArray(), expectedVar, rtol: 1e-5, atol: 1e-6, "running var step \(step)")
        }
    }

    @Test("the fused batch norm → activation → 2 × 2 max pool backward equals pooling backward then batch norm backward, on both paths")
    func fusedPoolBackward() throws {
        for kernels in try EW.libraries() {
            let device = kernels.device
            // Odd sizes; more samples than a chunk; rows of 7 and 5 windows (the last four overlapping
            // the ones before) in work-items of several rows (enough planes for more than one per item).
            // (1, 3, 51, 8): 26 row pairs a plane, the last an odd row, in short blocks on 2 cores.
            for (n, c, h, w) in [(3, 4, 7, 9), (2, 3, 8, 6), (130, 2, 5, 4), (40, 3, 9, 14), (33, 2, 12, 11),
                                 (1, 3, 51, 8)] {
                let window = try WindowGeometry(samples: n, channels: c, height: h, width: w, kernel: (2, 2), stride: (2, 2))
                let shape = BatchNormShape(samples: n, channels: c, spatial: h * w)
                let x = try device.buffer(randomFloats(n * c * h * w, seed: 1).map { $0 * 2 + 0.5 })
                let gamma = try device.buffer(randomFloats(c, seed: 2)), beta = try device.buffer(randomFloats(c, seed: 3))
                let dy = try device.buffer(randomFloats(window.outputCount, seed: 4))
                for activation in [nil, Activation.relu, .tanh] {
                    let mean = try device.buffer(Float.self, count: c), invstd = try device.buffer(Float.self, count: c)
                    let coefficients = try kernels.batchNormTrainingCoefficients(
                        x: x, shape: shape, gamma: gamma, beta: beta, runningMean: nil, runningVar: nil,
                        saveMean: mean, saveInvstd: invstd)
                    let y = try device.buffer(Float.self, count: window.outputCount)
                    let indices = try device.buffer(Int32.self, count: window.outputCount)
                    try kernels.maxPool(x, window, normalize: coefficients, activation: activation, into: y, indices: indices)
                    var results: [[Float]] = []
                    for fused in [true, false] {
                        let dx = try device.buffer(Float.self, count: n * c * h * w)
                        let dgamma = try device.buffer(Float.self, count: c), dbeta = try device.buffer(Float.self, count: c)
                        if fused {
                            try kernels.batchNormMaxPoolBackward(x: x, gradOutput: dy, indices: indices, output: y, window,
                                                                 activation: activation, gamma: gamma, saveMean: mean,
                                                                 saveInvstd: invstd, dx: dx, dgamma: dgamma, dbeta: dbeta)
                        } else {
                            let gz = try device.buffer(Float.self, count: n * c * h * w)
                            try kernels.maxPoolBackward(dy, indices: indices, window, activation: activation, output: y, into: gz)
                            try kernels.batchNormBackward(x: x, dy: gz, shape: shape, gamma: gamma, saveMean: mean,
                                                          saveInvstd: invstd, dx: dx, dgamma: dgamma, dbeta: dbeta)
                        }
                        results += [try dx.toArray(), try dgamma.toArray(), try dbeta.toArray()]
                    }
                    for (i, name) in ["dx", "dgamma", "dbeta"].enumerated() {
                        expectClose(results[i], results[i + 3], rtol: 1e-5, atol: 1e-5,
                                    "\(EW.path(kernels)) [\(n), \(c), \(h), \(w)] \(String(describing: activation)) \(name)")
                    }
                }
            }
        }
    }

    @Test("launchers reject bad shapes, and a single row in training")
    func shapeErrors() throws {
        let kernels = try TestDevice.kernels()
        let d = kernels.device
        let x = try d.buffer(Float.self, count: 12), y = try d.buffer(Float.self, count: 12)
        let c4 = try d.buffer(Float.self, count: 4), c4b = try d.buffer(Float.self, count: 4), c3 = try d.buffer(Float.self, count: 3)
        #expect(throws: ShapeError.self) {
            try kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: 1, channels: 12), gamma: nil, beta: nil, runningMean: nil,
                                                 runningVar: nil, y: y, saveMean: d.buffer(Float.self, count: 12),
                                                 saveInvstd: d.buffer(Float.self, count: 12))
        }
        #expect(throws: ShapeError.self) {
            try kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: 4, channels: 4), gamma: nil, beta: nil, runningMean: nil,
                                                 runningVar: nil, y: y, saveMean: c4, saveInvstd: c4b)
        }
        #expect(throws: ShapeError.self) {
            try kernels.batchNormForwardTraining(x: x, shape: BatchNormShape(samples: 3, channels: 4), gamma: c4, beta: nil, runningMean: nil,
                                                 runningVar: nil, y: y, saveMean: c4, saveInvstd: c4b)
        }
        #expect(throws: ShapeError.self) {
            try kernels.batchNormForwardInference(x: x, shape: BatchNormShape(samples: 3, channels: 4), gamma: nil, beta: nil, runningMean: c3,
                                                  runningVar: c4, y: y)
        }
        #expect(throws: ShapeError.self) {
            try kernels.batchNormBackward(x: x, dy: y, shape: BatchNormShape(samples: 3, channels: 4), gamma: c4, saveMean: c4, saveInvstd: c4b,
                                          dx: y, dgamma: nil, dbeta: nil)
        }
        // The fused pooling backward writes dx while it reads x and dy: they must differ.
        let window = try WindowGeometry(samples: 1, channels: 3, height: 2, width: 2, kernel: (2, 2), stride: (2, 2))
        let pooled = try d.buffer(Float.self, count: 3), indices = try d.buffer(Int32.self, count: 3)
        let c3b = try d.buffer(Float.self, count: 3)
        #expect(throws: ShapeError.self) {
            try kernels.batchNormMaxPoolBackward(x: x, gradOutput: pooled, indices: indices, output: c3b, window,
                                                 activation: nil, gamma: nil, saveMean: c3, saveInvstd: c3b, dx: x,
                                                 dgamma: nil, dbeta: nil)
        }
        // One row is fine in eval mode.
        try kernels.batchNormForwardInference(x: c4, shape: BatchNormShape(samples: 1, channels: 4), gamma: nil, beta: nil, runningMean: c4b,
                                              runningVar: d.buffer([Float](repeating: 1, count: 4)), y: d.buffer(Float.self, count: 4))
    }
}

@Suite("GPU code paths (built with -DKILN_GPU, run on the test device)")
struct GPUPathTests {
    @Test("batch norm tree reductions match the double reference", arguments: [(7, 13), (257, 17), (600, 3)])
    func batchNorm(n: Int, c: Int) throws {
        let kernels = try GPUPathLibrary.get()
        let xs = randomFloats(n * c, in: -1...1, seed: 12).map { $0 + (c == 3 ? 10_000 : 0) }
        try checkBatchNorm(kernels, n: n, c: c, xs: xs, affine: true, what: "GPU path [\(n), \(c)]")
    }

    @Test("random fills and dropout match the CPU path bit for bit")
    func random() throws {
        let gpu = try GPUPathLibrary.get(), cpu = try TestDevice.kernels()
        let n = 1001
        let a = try cpu.device.buffer(Float.self, count: n), b = try cpu.device.buffer(Float.self, count: n)
        try cpu.randomUniform(a, low: -1, high: 2, seed: 9, offset: 4)
        try gpu.randomUniform(b, low: -1, high: 2, seed: 9, offset: 4)
        #expect(try a.toArray() == (try b.toArray()))
        try gpu.randomNormal(b, seed: 9, offset: 4)
        expectClose(try b.toArray(), PhiloxReference.normal(n, mean: 0, std: 1, seed: 9, offset: 4), rtol: 1e-5, atol: 1e-5, "normal")
        let x = try cpu.device.buffer(randomFloats(n, seed: 1))
        try cpu.dropout(x, into: a, p: 0.4, seed: 3, offset: 3)
        try gpu.dropout(x, into: b, p: 0.4, seed: 3, offset: 3)
        #expect(try a.toArray() == (try b.toArray()))
    }
}
