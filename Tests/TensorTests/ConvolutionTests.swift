import Foundation
import KilnDevice
import KilnKernels
import KilnTensor
import KilnTestSupport
import Testing

@Suite("Convolution and pooling tensors")
struct ConvolutionTensorTests {
    /// (N, C, O, H, W, kernel, stride, padding, dilation).
    static let cases: [(Int, Int, Int, Int, Int, Size2, Size2, Size2, Size2)] = [
        (1, 1, 1, 5, 5, 1, 1, 0, 1), (2, 3, 4, 7, 9, 3, 1, 1, 1), (2, 3, 5, 11, 10, 5, 2, 2, 1),
        (1, 2, 3, 9, 13, 3, 3, 0, 1), (2, 4, 2, 13, 7, 3, 2, 1, 2), (3, 1, 6, 8, 8, 5, 1, 2, 2),
        (2, 2, 3, 9, 10, Size2(3, 5), Size2(2, 1), Size2(1, 2), 1), (5, 16, 8, 14, 14, 3, 1, 1, 1),
    ]

    @Test("conv2d forward, input gradient, weight and bias gradients match the Double reference",
          arguments: 0..<cases.count)
    func reference(index: Int) throws {
        let (n, c, o, h, w, k, s, p, d) = Self.cases[index]
        let device = try TestDevice.get()
        let xv = randomFloats(n * c * h * w, seed: 1), wv = randomFloats(o * c * k.height * k.width, seed: 2)
        let bv = randomFloats(o, seed: 3)
        let x = try Tensor(xv, shape: [n, c, h, w], on: device, requiresGrad: true)
        let weight = try Tensor(wv, shape: [o, c, k.height, k.width], on: device, requiresGrad: true)
        let bias = try Tensor(bv, shape: [o], on: device, requiresGrad: true)
        let y = try x.conv2d(weight: weight, bias: bias, stride: s, padding: p, dilation: d)
        let (oh, ow) = ((h + 2 * p.height - d.height * (k.height - 1) - 1) / s.height + 1,
                        (w + 2 * p.width - d.width * (k.width - 1) - 1) / s.width + 1)
        #expect(y.shape == [n, o, oh, ow])
        let gv = randomFloats(y.count, seed: 4)
        try y.backward(gradient: Tensor(gv, shape: y.shape, on: device))
        func xAt(_ b: Int, _ ch: Int, _ ih: Int, _ iw: Int) -> Double {
            ih >= 0 && ih < h && iw >= 0 && iw < w ? Double(xv[((b * c + ch) * h + ih) * w + iw]) : 0
        }
        var yRef = [Double](repeating: 0, count: y.count), dx = [Double](repeating: 0, count: xv.count)
        var dw = [Double](repeating: 0, count: wv.count), db = [Double](repeating: 0, count: o)
        for b in 0..<n { for q in 0..<o { for a in 0..<oh { for e in 0..<ow {
            let out = ((b * o + q) * oh + a) * ow + e
            var sum = Double(bv[q])
            db[q] += Double(gv[out])
            for ch in 0..<c { for i in 0..<k.height { for j in 0..<k.width {
                let (ih, iw) = (a * s.height - p.height + i * d.height, e * s.width - p.width + j * d.width)
                let wi = ((q * c + ch) * k.height + i) * k.width + j
                sum += Double(wv[wi]) * xAt(b, ch, ih, iw)
                dw[wi] += Double(gv[out]) * xAt(b, ch, ih, iw)
                if ih >= 0, ih < h, iw >= 0, iw < w { dx[((b * c + ch) * h + ih) * w + iw] += Double(gv[out]) * Double(wv[wi]) }
            } } }
            yRef[out] = sum
        } } } }
        let what = "conv [\(n), \(c), \(h), \(w)] → \(o) k\(k) s\(s) p\(p) d\(d)"
        expectClose(try y.toArray(), yRef, rtol: 1e-4, atol: 1e-5, "\(what) forward")
        expectClose(try #require(x.grad).toArray(), dx, rtol: 1e-4, atol: 1e-5, "\(what) input gradient")
        expectClose(try #require(weight.grad).toArray(), dw, rtol: 1e-4, atol: 1e-4, "\(what) weight gradient")
        expectClose(try #require(bias.grad).toArray(), db, rtol: 1e-4, atol: 1e-4, "\(what) bias gradient")
    }

    @Test("finite differences for conv2d and the poolings; an activation in the epilogue equals one applied after")
    func gradients() throws {
        try gradCheck([[2, 3, 7, 6], [4, 3, 3, 3], [4]], "conv2d stride 2 padding 1") {
            try $0[0].conv2d(weight: $0[1], bias: $0[2], stride: 2, padding: 1)
        }
        try gradCheck([[1, 2, 9, 8], [3, 2, 3, 3]], "conv2d dilation 2") { try $0[0].conv2d(weight: $0[1], dilation: 2) }
        // The activation in the epilogue (finite differences would straddle ReLU's kink): the same
        // values and gradients as applying it after.
        let device = try TestDevice.get()
        for activation in [Activation.relu, .sigmoid, .tanh, .leakyRelu(slope: 0.1), .gelu] {
            var grads: [[Float]] = []
            var outputs: [[Float]] = []
            for fused in [true, false] {
                let x = try Tensor(randomFloats(2 * 2 * 6 * 6, seed: 1), shape: [2, 2, 6, 6], on: device, requiresGrad: true)
                let w = try Tensor(randomFloats(3 * 2 * 9, seed: 2), shape: [3, 2, 3, 3], on: device, requiresGrad: true)
                let y = fused ? try x.conv2d(weight: w, padding: 1, activation: activation)
                              : try x.conv2d(weight: w, padding: 1).applying(activation)
                try (y * y).sum().backward()
                outputs.append(try y.toArray())
                grads.append(try #require(x.grad).toArray() + (try #require(w.grad).toArray()))
            }
            expectClose(outputs[0], outputs[1], rtol: 1e-6, atol: 1e-7, "\(activation) fused output")
            expectClose(grads[0], grads[1], rtol: 1e-5, atol: 1e-6, "\(activation) fused gradients")
        }
        // Well-separated values, so no window has a near-tie the differences would split.
        try gradCheck([[2, 3, 8, 7]], seed: 9, range: -10...10, "max pool 2") { try $0[0].maxPool2d(kernel: 2) }
        try gradCheck([[1, 2, 7, 7]], seed: 9, range: -10...10, "max pool 3 stride 2 padding 1") {
            try $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1)
        }
        try gradCheck([[2, 3, 7, 8]], "avg pool 3 stride 2 padding 1") { try $0[0].avgPool2d(kernel: 3, stride: 2, padding: 1) }
        try gradCheck([[2, 3, 5, 4]], "global average pool") { try $0[0].mean(axes: [2, 3], keepDims: true) }
    }

    @Test("pooling and convolution reject bad shapes with one clear message")
    func errors() throws {
        let device = try TestDevice.get()
        let x = try Tensor.zeros([1, 2, 5, 5], on: device), w = try Tensor.zeros([3, 4, 3, 3], on: device)
        #expect(throws: TensorError.self) { try x.conv2d(weight: w) }
        #expect(throws: TensorError.self) { try x.maxPool2d(kernel: 7) }
        #expect(throws: TensorError.self) { try x.avgPool2d(kernel: 2, padding: 2) }
        #expect(throws: TensorError.self) { try Tensor.zeros([2, 5], on: device).maxPool2d(kernel: 2) }
    }
}
