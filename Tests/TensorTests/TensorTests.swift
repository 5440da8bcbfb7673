import Foundation
import KilnDevice
import KilnKernels
import KilnTensor
import KilnTestSupport
import Testing

@Suite("Tensors and autograd")
struct TensorTests {
    @Test("tensors are made from arrays, full, zeros, ones, arange and read back")
    func creation() throws {
        let device = try TestDevice.get()
        let m = try Tensor([[1, 2, 3], [4, 5, 6]], on: device)
        #expect(m.shape == [2, 3])
        #expect(try m.toArray() == [1, 2, 3, 4, 5, 6])
        #expect(try Tensor.full([2, 2], 7, on: device).toArray() == [7, 7, 7, 7])
        #expect(try Tensor.zeros([3], on: device).toArray() == [0, 0, 0])
        #expect(try Tensor.ones([1, 2], on: device).toArray() == [1, 1])
        #expect(try Tensor.arange(0, 5, on: device).toArray() == [0, 1, 2, 3, 4])
        #expect(try Tensor.arange(1, 2, step: 0.25, on: device).toArray() == [1, 1.25, 1.5, 1.75])
        #expect(try Tensor(labels: [3, 1], on: device).toIntArray() == [3, 1])
        #expect(try Tensor([5], shape: [], on: device).item() == 5)
        #expect(throws: TensorError.self) { try Tensor([1, 2, 3], shape: [2, 2], on: device) }
        #expect(throws: TensorError.self) { try Tensor([[1, 2], [3]], on: device) }
        #expect(throws: TensorError.self) { try m.item() }
        #expect(m.description == "tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], shape [2, 3], float32)")
    }

    @Test("rand and randn are seeded: the same numbers for the same seed")
    func random() throws {
        let device = try TestDevice.get()
        let a = try Tensor.rand([1000], seed: 42, on: device).toArray()
        #expect(a == (try Tensor.rand([1000], seed: 42, on: device).toArray()))
        #expect(a != (try Tensor.rand([1000], seed: 43, on: device).toArray()))
        #expect(a.allSatisfy { $0 >= 0 && $0 < 1 })
        let n = try Tensor.randn([10_000], mean: 2, std: 3, seed: 7, on: device).toArray()
        let mean = n.reduce(0, +) / Float(n.count)
        let std = (n.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(n.count)).squareRoot()
        #expect(abs(mean - 2) < 0.1 && abs(std - 3) < 0.1)
    }

    @Test("reductions and argmax along axes, with keepDims")
    func reductions() throws {
        let device = try TestDevice.get()
        let x = try Tensor([[1, 5, 3], [4, 2, 6]], on: device)
        #expect(try x.sum().item() == 21)
        #expect(try x.sum(axis: 0).toArray() == [5, 7, 9])
        #expect(try x.sum(axis: 1, keepDims: true).shape == [2, 1])
        #expect(try x.mean(axis: 1).toArray() == [3, 4])
        #expect(try x.max(axis: 0).toArray() == [4, 5, 6])
        #expect(try x.argmax(axis: 1).toIntArray() == [1, 2])
        #expect(try x.argmax().toIntArray() == [5])
        #expect(throws: TensorError.self) { try x.sum(axis: 2) }
    }

    @Test("gradients accumulate across backward calls until zeroGrad")
    func accumulation() throws {
        let device = try TestDevice.get()
        let x = try Tensor([1, 2, 3], on: device, requiresGrad: true)
        try (x * x).sum().backward()
        #expect(try x.grad?.toArray() == [2, 4, 6])
        try (x * 3).sum().backward()
        #expect(try x.grad?.toArray() == [5, 7, 9])
        x.zeroGrad()
        #expect(x.grad == nil)
        // A shared sub-expression gets both contributions.
        let y = try x * 2
        try (y + y * y).sum().backward()
        #expect(try x.grad?.toArray() == [10, 18, 26])
    }

    @Test("backward needs a scalar or a seed, and a graph that was not released")
    func backwardErrors() throws {
        let device = try TestDevice.get()
        let x = try Tensor([1, 2], on: device, requiresGrad: true)
        let y = try x * x
        #expect(throws: TensorError.self) { try y.backward() }
        try y.backward(gradient: Tensor([1, 1], on: device))
        #expect(try x.grad?.toArray() == [2, 4])
        #expect(throws: TensorError.self) { try y.backward(gradient: Tensor([1, 1], on: device)) }
        #expect(throws: TensorError.self) { try y.backward(gradient: Tensor([1, 1, 1], on: device)) }
        #expect(throws: TensorError.self) { try Tensor([1], on: device).backward() }
    }

    @Test("nothing is recorded in withNoGrad or through detach")
    func noGrad() throws {
        let device = try TestDevice.get()
        let x = try Tensor([1, 2], on: device, requiresGrad: true)
        let y = try withNoGrad { try x * x }
        #expect(!y.requiresGrad && y.isLeaf)
        let z = try x.detach() * 2
        #expect(!z.requiresGrad)
        #expect(try x.detach().toArray() == [1, 2])
    }

    @Test("the graph's buffers return to the pool after backward")
    func graphRelease() throws {
        let device = try Device.makeDefault()
        let x = try Tensor(randomFloats(64 * 32, seed: 1), shape: [64, 32], on: device, requiresGrad: true)
        let w = try Tensor(randomFloats(16 * 32, seed: 2), shape: [16, 32], on: device, requiresGrad: true)
        func step() throws {
            let loss = try Tensor.linear(x, w, bias: nil, activation: .relu, transposeB: true).softmax().sum()
            try loss.backward()
        }
        try step()
        let live = device.pool.statistics.bytesLive
        for _ in 0..<3 { try step() }
        #expect(device.pool.statistics.bytesLive == live)  // nothing kept from earlier steps
    }

    @Test("shape errors throw TensorError")
    func shapeErrors() throws {
        let device = try TestDevice.get()
        let a = try Tensor.zeros([2, 3], on: device)
        #expect(throws: TensorError.self) { try a + Tensor.zeros([2], on: device) }
        #expect(throws: TensorError.self) { try a.matmul(Tensor.zeros([2, 3], on: device)) }
        #expect(throws: TensorError.self) { try a.reshaped([4, 2]) }
        #expect(throws: TensorError.self) { try a.rows(1..<5) }
        #expect(throws: TensorError.self) { try crossEntropy(logits: a, targets: Tensor(labels: [0], on: device)) }
        #expect(try a.reshaped([3, -1]).shape == [3, 2])
    }

    @Test("cross-entropy stays finite for logits of ±1e4")
    func stableCrossEntropy() throws {
        let device = try TestDevice.get()
        let logits = try Tensor([[1e4, -1e4, 0], [-1e4, -1e4, -1e4]], on: device, requiresGrad: true)
        let loss = try crossEntropy(logits: logits, targets: Tensor(labels: [1, 2], on: device))
        try loss.backward()
        let value = try loss.item()
        // Row 0: target logit is 2e4 below the max; row 1: equal logits give log 3.
        #expect(abs(value - Float((2e4 + Double(log(3.0))) / 2)) < 1)
        #expect(try logits.grad!.toArray().allSatisfy(\.isFinite))
    }
}
