import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

/// The optimizer state of one parameter tensor, on the host in double: PyTorch's single-tensor
/// update formulas (torch/optim/sgd.py, adam.py, adamw.py, rmsprop.py), written out.
struct OptimizerReference {
    var p: [Double]
    var buf: [Double]?      // SGD / RMSprop momentum buffer
    var m: [Double]         // Adam exp_avg
    var v: [Double]         // Adam exp_avg_sq, RMSprop square_avg
    var ga: [Double]        // RMSprop grad_avg (centered)

    init(_ p: [Float]) {
        self.p = p.map(Double.init)
        m = .init(repeating: 0, count: p.count); v = m; ga = m
    }

    mutating func sgd(_ grad: [Float], _ h: SGDHyperparameters) {
        let (lr, mom, damp, wd) = (Double(h.lr), Double(h.momentum), Double(h.dampening), Double(h.weightDecay))
        var g = zip(grad, p).map { Double($0) + wd * $1 }
        if mom != 0 {
            if let old = buf {
                buf = zip(old, g).map { mom * $0 + (1 - damp) * $1 }
            } else {
                buf = g  // first step: a clone of the gradient, no dampening
            }
            g = h.nesterov ? zip(g, buf!).map { $0 + mom * $1 } : buf!
        }
        p = zip(p, g).map { $0 - lr * $1 }
    }

    mutating func adam(_ grad: [Float], step t: Int, _ h: AdamHyperparameters, decoupled: Bool) {
        let (lr, b1, b2, eps, wd) = (Double(h.lr), Double(h.beta1), Double(h.beta2), Double(h.eps), Double(h.weightDecay))
        if decoupled { p = p.map { $0 * (1 - lr * wd) } }
        let g = zip(grad, p).map { Double($0) + (decoupled ? 0 : wd * $1) }
        m = zip(m, g).map { b1 * $0 + (1 - b1) * $1 }
        v = zip(v, g).map { b2 * $0 + (1 - b2) * $1 * $1 }
        let bias1 = 1 - pow(b1, Double(t)), bias2 = 1 - pow(b2, Double(t))
        let stepSize = lr / bias1
        p = (0..<p.count).map { i in p[i] - stepSize * m[i] / (v[i].squareRoot() / bias2.squareRoot() + eps) }
    }

    mutating func rmsprop(_ grad: [Float], _ h: RMSpropHyperparameters) {
        let (lr, alpha, eps, wd, mom) = (Double(h.lr), Double(h.alpha), Double(h.eps), Double(h.weightDecay), Double(h.momentum))
        let g = zip(grad, p).map { Double($0) + wd * $1 }
        v = zip(v, g).map { alpha * $0 + (1 - alpha) * $1 * $1 }
        var avg: [Double]
        if h.centered {
            ga = zip(ga, g).map { $0 + (1 - alpha) * ($1 - $0) }
            avg = zip(v, ga).map { ($0 - $1 * $1).squareRoot() + eps }
        } else {
            avg = v.map { $0.squareRoot() + eps }
        }
        if mom > 0 {
            let old = buf ?? [Double](repeating: 0, count: p.count)
            buf = (0..<p.count).map { mom * old[$0] + g[$0] / avg[$0] }
            p = zip(p, buf!).map { $0 - lr * $1 }
        } else {
            p = (0..<p.count).map { p[$0] - lr * g[$0] / avg[$0] }
        }
    }
}

/// Sizes covering a lone element, partial 16-float vectors and several groups.
let optimizerSizes = [1, 13, 64, 1000]
let optimizerSteps = 4

@Suite("Optimizer updates")
struct OptimizerTests {
    static let sgdCases: [SGDHyperparameters] = [
        SGDHyperparameters(lr: 0.1),
        SGDHyperparameters(lr: 0.1, weightDecay: 0.01),
        SGDHyperparameters(lr: 0.05, momentum: 0.9),
        SGDHyperparameters(lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 1e-3),
        SGDHyperparameters(lr: 0.05, momentum: 0.8, nesterov: true),
        SGDHyperparameters(lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.05),
    ]

    @Test("SGD matches PyTorch over several steps (first-step buffer, dampening, nesterov, weight decay)",
          arguments: sgdCases, optimizerSizes)
    func sgd(hyper: SGDHyperparameters, n: Int) throws {
        let kernels = try TestDevice.kernels()
        let p0 = randomFloats(n, seed: 1)
        var ref = OptimizerReference(p0)
        let param = try kernels.device.buffer(p0), grad = try kernels.device.buffer(Float.self, count: n)
        let buf = hyper.momentum != 0 ? try kernels.device.buffer([Float](repeating: .nan, count: n)) : nil
        for step in 1...optimizerSteps {
            let g = randomFloats(n, seed: UInt64(10 + step))
            try grad.write(g)
            try kernels.sgdStep(param: param, grad: grad, momentumBuffer: buf, hyper: hyper, firstStep: step == 1)
            ref.sgd(g, hyper)
            expectClose(try param.toArray(), ref.p, rtol: 1e-5, atol: 1e-6, "SGD \(hyper) step \(step) param")
            if let buf, let expected = ref.buf {
                expectClose(try buf.toArray(), expected, rtol: 1e-5, atol: 1e-6, "SGD step \(step) buffer")
            }
        }
    }

    @Test("Adam and AdamW match PyTorch at steps 1...4 (bias corrections, L2 vs decoupled decay)",
          arguments: [false, true], optimizerSizes)
    func adam(decoupled: Bool, n: Int) throws {
        let kernels = try TestDevice.kernels()
        let hyper = AdamHyperparameters(lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: decoupled ? 0.1 : 0.05)
        let p0 = randomFloats(n, seed: 2)
        var ref = OptimizerReference(p0)
        let d = kernels.device
        let param = try d.buffer(p0), grad = try d.buffer(Float.self, count: n)
        let m = try d.buffer([Float](repeating: 0, count: n)), v = try d.buffer([Float](repeating: 0, count: n))
        for step in 1...optimizerSteps {
            // Small gradients too, where eps and the bias corrections matter most.
            let g = randomFloats(n, seed: UInt64(20 + step)).map { $0 * (step == 2 ? 1e-3 : 1) }
            try grad.write(g)
            if decoupled {
                try kernels.adamWStep(param: param, grad: grad, expAvg: m, expAvgSq: v, step: step, hyper: hyper)
            } else {
                try kernels.adamStep(param: param, grad: grad, expAvg: m, expAvgSq: v, step: step, hyper: hyper)
            }
            ref.adam(g, step: step, hyper, decoupled: decoupled)
            let what = "\(decoupled ? "AdamW" : "Adam") n=\(n) step \(step)"
            expectClose(try param.toArray(), ref.p, rtol: 1e-5, atol: 1e-6, "\(what) param")
            expectClose(try m.toArray(), ref.m, rtol: 1e-5, atol: 1e-7, "\(what) exp_avg")
            expectClose(try v.toArray(), ref.v, rtol: 1e-5, atol: 1e-9, "\(what) exp_avg_sq")
        }
    }

    static let rmspropCases: [RMSpropHyperparameters] = [
        RMSpropHyperparameters(lr: 1e-2),
        RMSpropHyperparameters(lr: 1e-2, alpha: 0.9, weightDecay: 0.1),
        RMSpropHyperparameters(lr: 1e-2, momentum: 0.9),
        RMSpropHyperparameters(lr: 1e-2, weightDecay: 0.01, momentum: 0.5, centered: true),
        RMSpropHyperparameters(lr: 1e-3, alpha: 0.8, centered: true),
    ]

    @Test("RMSprop matches PyTorch over several steps (with and without momentum, centered)",
          arguments: rmspropCases, optimizerSizes)
    func rmsprop(hyper: RMSpropHyperparameters, n: Int) throws {
        let kernels = try TestDevice.kernels()
        let p0 = randomFloats(n, seed: 3)
        var ref = OptimizerReference(p0)
        let d = kernels.device
        let param = try d.buffer(p0), grad = try d.buffer(Float.self, count: n)
        let v = try d.buffer([Float](repeating: 0, count: n))
        let buf = hyper.momentum > 0 ? try d.buffer([Float](repeating: 0, count: n)) : nil
        let ga = hyper.centered ? try d.buffer([Float](repeating: 0, count: n)) : nil
        for step in 1...optimizerSteps {
            let g = randomFloats(n, seed: UInt64(30 + step))
            try grad.write(g)
            try kernels.rmspropStep(param: param, grad: grad, squareAvg: v, momentumBuffer: buf, gradAvg: ga, hyper: hyper)
            ref.rmsprop(g, hyper)
            // Centered RMSprop divides by sqrt(v - ga^2), which amplifies float rounding.
            let rtol = hyper.centered ? 1e-4 : 1e-5
            expectClose(try param.toArray(), ref.p, rtol: rtol, atol: 1e-5, "RMSprop \(hyper) step \(step) param")
            expectClose(try v.toArray(), ref.v, rtol: 1e-5, atol: 1e-8, "RMSprop step \(step) square_avg")
            if let buf, let expected = ref.buf {
                expectClose(try buf.toArray(), expected, rtol: rtol, atol: 1e-5, "RMSprop step \(step) buffer")
            }
        }
    }

    @Test("optimizer launchers reject mismatched or missing state")
    func errors() throws {
        let kernels = try TestDevice.kernels()
        let d = kernels.device
        let p = try d.buffer(Float.self, count: 8), g = try d.buffer(Float.self, count: 8), short = try d.buffer(Float.self, count: 7)
        #expect(throws: ShapeError.self) {
            try kernels.sgdStep(param: p, grad: short, momentumBuffer: nil, hyper: .init(lr: 0.1), firstStep: true)
        }
        #expect(throws: ShapeError.self) {
            try kernels.sgdStep(param: p, grad: g, momentumBuffer: nil, hyper: .init(lr: 0.1, momentum: 0.9), firstStep: true)
        }
        #expect(throws: ShapeError.self) {
            try kernels.sgdStep(param: p, grad: g, momentumBuffer: nil, hyper: .init(lr: 0.1, nesterov: true), firstStep: true)
        }
        #expect(throws: ShapeError.self) {
            try kernels.adamStep(param: p, grad: g, expAvg: short, expAvgSq: g, step: 1, hyper: .init())
        }
        #expect(throws: ShapeError.self) {
            try kernels.adamWStep(param: p, grad: g, expAvg: g, expAvgSq: g, step: 0, hyper: .init())
        }
        #expect(throws: ShapeError.self) {
            try kernels.rmspropStep(param: p, grad: g, squareAvg: g, momentumBuffer: nil, gradAvg: nil,
                                    hyper: .init(centered: true))
        }
    }

    @Test("the GPU code paths (one float per item) match PyTorch too")
    func gpuPaths() throws {
        let kernels = try GPUPathLibrary.get()
        let n = 13
        let p0 = randomFloats(n, seed: 4)
        var sgdRef = OptimizerReference(p0), adamRef = OptimizerReference(p0), rmsRef = OptimizerReference(p0)
        let d = kernels.device
        let sgdP = try d.buffer(p0), adamP = try d.buffer(p0), rmsP = try d.buffer(p0), grad = try d.buffer(Float.self, count: n)
        let buf = try d.buffer(Float.self, count: n), m = try d.buffer([Float](repeating: 0, count: n))
        let v = try d.buffer([Float](repeating: 0, count: n)), sq = try d.buffer([Float](repeating: 0, count: n))
        let rmsBuf = try d.buffer([Float](repeating: 0, count: n)), ga = try d.buffer([Float](repeating: 0, count: n))
        let sgd = SGDHyperparameters(lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        let adam = AdamHyperparameters(lr: 1e-2, weightDecay: 0.1)
        let rms = RMSpropHyperparameters(lr: 1e-2, momentum: 0.5, centered: true)
        for step in 1...3 {
            let g = randomFloats(n, seed: UInt64(40 + step))
            try grad.write(g)
            try kernels.sgdStep(param: sgdP, grad: grad, momentumBuffer: buf, hyper: sgd, firstStep: step == 1)
            try kernels.adamWStep(param: adamP, grad: grad, expAvg: m, expAvgSq: v, step: step, hyper: adam)
            try kernels.rmspropStep(param: rmsP, grad: grad, squareAvg: sq, momentumBuffer: rmsBuf, gradAvg: ga, hyper: rms)
            sgdRef.sgd(g, sgd); adamRef.adam(g, step: step, adam, decoupled: true); rmsRef.rmsprop(g, rms)
        }
        expectClose(try sgdP.toArray(), sgdRef.p, rtol: 1e-5, atol: 1e-6, "GPU path SGD")
        expectClose(try adamP.toArray(), adamRef.p, rtol: 1e-5, atol: 1e-6, "GPU path AdamW")
        expectClose(try rmsP.toArray(), rmsRef.p, rtol: 1e-4, atol: 1e-5, "GPU path RMSprop")
    }
}
