import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Adam over several tensors in one launch")
struct AdamMultiTests {
    @Test("the multi-tensor Adam/AdamW kernel equals one launch per tensor, for 1 to 11 tensors of awkward sizes")
    func matchesSingle() throws {
        let kernels = try TestDevice.kernels()
        let device = kernels.device
        let sizes = [1, 7, 13, 31, 64, 129, 257, 1000, 17, 3, 100_003]
        for decoupled in [false, true] {
            for count in [1, 6, 8, 11] {
                let hyper = AdamHyperparameters(lr: 1e-2, beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.1)
                var multi: [(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>)] = []
                var single = multi
                for (i, n) in sizes.prefix(count).enumerated() {
                    let p = randomFloats(n, seed: UInt64(i)), g = randomFloats(n, seed: UInt64(100 + i))
                    let m = randomFloats(n, in: -0.1...0.1, seed: UInt64(200 + i)), v = randomFloats(n, in: 0...0.1, seed: UInt64(300 + i))
                    multi.append((try device.buffer(p), try device.buffer(g), try device.buffer(m), try device.buffer(v)))
                    single.append((try device.buffer(p), try device.buffer(g), try device.buffer(m), try device.buffer(v)))
                }
                for step in 1...3 {
                    try kernels.adamStep(tensors: multi, step: step, hyper: hyper, decoupled: decoupled)
                    for t in single {
                        if decoupled {
                            try kernels.adamWStep(param: t.param, grad: t.grad, expAvg: t.expAvg, expAvgSq: t.expAvgSq, step: step, hyper: hyper)
                        } else {
                            try kernels.adamStep(param: t.param, grad: t.grad, expAvg: t.expAvg, expAvgSq: t.expAvgSq, step: step, hyper: hyper)
                        }
                    }
                }
                for (a, b) in zip(multi, single) {
                    #expect(try a.param.toArray() == b.param.toArray(), "\(count) tensors, decoupled \(decoupled)")
                    #expect(try a.expAvgSq.toArray() == b.expAvgSq.toArray())
                }
            }
        }
    }
}
