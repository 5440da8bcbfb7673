import Foundation
import Kiln
import KilnTestSupport
import Testing

@Suite("Layers, losses and optimizers")
struct LayerTests {
    @Test("parameters and buffers carry PyTorch's state_dict names and layouts")
    func names() throws {
        let device = try TestDevice.get()
        let model = try Tensor.withDevice(device) {
            Sequential(try Linear(784, 256), ReLU(), try BatchNorm1d(256), try Dropout(0.2), try Linear(256, 10, bias: false))
        }
        #expect(model.namedParameters().map(\.name) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight"])
        #expect(model.namedBuffers().map(\.name) == ["2.running_mean", "2.running_var", "2.num_batches_tracked"])
        #expect(model.stateDict()["0.weight"]?.shape == [256, 784])
        #expect(model.parameters.count == 5)
        model.eval()
        #expect(model.layers.allSatisfy { !$0.training })
        model.train()
        #expect(model.layers.allSatisfy { $0.training })
    }

    @Test("load(stateDict:) copies values and names missing, unexpected and mismatched keys")
    func loading() throws {
        let device = try TestDevice.get()
        let model = try Sequential(Linear(3, 2, on: device))
        let weight = try Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3], on: device)
        let bias = try Tensor([7, 8], on: device)
        try model.load(stateDict: ["0.weight": weight, "0.bias": bias])
        #expect(try model.stateDict()["0.weight"]?.toArray() == [1, 2, 3, 4, 5, 6])
        do {
            try model.load(stateDict: ["0.weight": bias, "1.bias": bias])
            Issue.record("a bad state dict loaded")
        } catch {
            let message = String(describing: error)
            #expect(message.contains("missing keys: 0.bias"))
            #expect(message.contains("unexpected keys: 1.bias"))
            #expect(message.contains("0.weight: expected [2, 3], got [2]"))
        }
        #expect(try model.stateDict()["0.bias"]?.toArray() == [7, 8])  // nothing copied on failure
    }

    @Test("Linear initializes like PyTorch: uniform within ±1/√in, reproducible for a seed")
    func linearInit() throws {
        let device = try TestDevice.get()
        let a = try Linear(100, 30, seed: 5, on: device), b = try Linear(100, 30, seed: 5, on: device)
        let w = try a.weight.toArray()
        #expect(w == (try b.weight.toArray()))
        #expect(w.allSatisfy { abs($0) <= 0.1 })
        #expect(w.max()! > 0.09 && w.min()! < -0.09)
        #expect(try a.bias!.toArray().allSatisfy { abs($0) <= 0.1 })
        RandomState.manualSeed(1)
        let c = try Linear(4, 4, on: device)
        RandomState.manualSeed(1)
        #expect(try c.weight.toArray() == (try Linear(4, 4, on: device).weight.toArray()))
    }

    @Test("a Linear followed by an activation gives the same numbers fused as apart")
    func fusion() throws {
        let device = try TestDevice.get()
        let x = try Tensor(randomFloats(7 * 5, seed: 3), shape: [7, 5], on: device)
        for activation in [ReLU(), LeakyReLU(0.2), Sigmoid(), Tanh()] as [Module] {
            let linear = try Linear(5, 4, seed: 9, on: device)
            let fused = try Sequential(linear, activation)(x).toArray()
            let apart = try activation(linear(x)).toArray()
            expectClose(fused, apart, rtol: 1e-6, atol: 1e-7, "\(type(of: activation))")
        }
    }

    @Test("BatchNorm2d → activation (→ MaxPool2d(2)) fuses: the same outputs, gradients and running statistics as apart",
          arguments: [false, true])
    func batchNormFusion(pooled: Bool) throws {
        // Odd sizes: the pooling drops the last row and column, whose gradient must be zero.
        let (n, c, h, w) = (4, 3, 7, 9)
        let values = randomFloats(n * c * h * w, seed: 5).map { $0 * 3 + 1 }
        // A device of its own, so that its launch count is this test's alone.
        let device = try Device.makeDefault()
        for activation in [nil, ReLU(), LeakyReLU(0.2), Sigmoid(), Tanh(), GELU()] as [Module?] {
            var results: [[[Float]]] = [], launches: [Int] = []
            for fused in [true, false] {
                let (bn, pool) = try Tensor.withDevice(device) { (try BatchNorm2d(c), try MaxPool2d(2)) }
                let x = try Tensor(values, shape: [n, c, h, w], on: device, requiresGrad: true)
                let layers = [bn] + (activation.map { [$0] } ?? []) + (pooled ? [pool] : [])
                func apart(_ x: Tensor) throws -> Tensor { try layers.reduce(x) { try $1($0) } }
                let before = x.device.queue.launches
                let y = fused ? try Sequential(layers)(x) : try apart(x)
                launches.append(x.device.queue.launches - before)
                try (y * y).sum().backward()
                results.append([try y.toArray(), try #require(x.grad).toArray(), try #require(bn.weight?.grad).toArray(),
                                try #require(bn.bias?.grad).toArray(), try bn.runningMean.toArray(), try bn.runningVar.toArray()])
                bn.eval()
                results[results.count - 1].append(try (fused ? Sequential(layers)(x) : apart(x)).toArray())
            }
            let what = "\(activation.map { "\(type(of: $0))" } ?? "no activation")\(pooled ? " pooled" : "")"
            // The fused forward runs fewer kernels whenever there is something to fuse (GELU stays apart).
            let fuses = activation is GELU ? false : pooled || activation != nil
            #expect(fuses ? launches[0] < launches[1] : launches[0] == launches[1], "\(what): launches \(launches)")
            for (part, name) in ["output", "input gradient", "weight gradient", "bias gradient", "running mean", "running var",
                                 "eval output"].enumerated() {
                expectClose(results[0][part], results[1][part], rtol: 1e-5, atol: 1e-6, "\(what) \(name)")
            }
        }
    }

    @Test("Dropout is the identity in eval and drops about p in training")
    func dropout() throws {
        let device = try TestDevice.get()
        let x = try Tensor.ones([100, 100], on: device)
        let layer = try Dropout(0.3)
        let y = try layer(x).toArray()
        let kept = y.filter { $0 != 0 }
        #expect(abs(Double(kept.count) / 10_000 - 0.7) < 0.03)
        #expect(kept.allSatisfy { abs($0 - 1 / 0.7) < 1e-5 })
        layer.eval()
        #expect(try layer(x).toArray() == [Float](repeating: 1, count: 10_000))
        #expect(throws: TensorError.self) { try Dropout(1.5) }
    }

    @Test("BatchNorm1d keeps the unbiased variance and uses it in eval")
    func batchNorm() throws {
        let device = try TestDevice.get()
        let values: [Float] = [1, 10, 2, 20, 3, 30, 6, 60]  // [4, 2]
        let bn = try Tensor.withDevice(device) { try BatchNorm1d(2, momentum: 0.5) }
        let x = try Tensor(values, shape: [4, 2], on: device)
        let y = try bn(x).toArray()
        // Column 0: mean 3, biased variance 3.5, unbiased 14/3.
        expectClose([y[0], y[2]], [(1 - 3) / Float(3.5 + 1e-5).squareRoot(), (2 - 3) / Float(3.5 + 1e-5).squareRoot()], rtol: 1e-4)
        expectClose(try bn.runningMean.toArray(), [1.5, 15], rtol: 1e-6)
        expectClose(try bn.runningVar.toArray(), [0.5 + 0.5 * 14 / 3, 0.5 + 0.5 * 1400 / 3], rtol: 1e-5)
        bn.eval()
        let z = try bn(x).toArray()
        expectClose([z[0]], [(1 - 1.5) / Float(0.5 + 0.5 * 14 / 3 + 1e-5).squareRoot()], rtol: 1e-5)
        bn.train()
        #expect(throws: (any Error).self) { try bn(Tensor([1, 2], shape: [1, 2], on: device)) }
    }

    @Test("optimizers skip parameters without gradients, follow learning-rate changes and expose their state")
    func optimizers() throws {
        let device = try TestDevice.get()
        let w = try Tensor([1, 2], on: device, requiresGrad: true)
        let unused = try Tensor([5], on: device, requiresGrad: true)
        let sgd = try SGD([w, unused], lr: 0.1, momentum: 0.9)
        try (w * w).sum().backward()        // grad = 2w = [2, 4]
        try sgd.step()                      // buf = g, w -= 0.1·g
        expectClose(try w.toArray(), [0.8, 1.6], rtol: 1e-6)
        #expect(try unused.toArray() == [5])
        sgd.zeroGrad()
        #expect(w.grad == nil)
        try (w * w).sum().backward()        // g = [1.6, 3.2]; buf = 0.9·[2, 4] + g
        sgd.learningRate = 0.01
        try sgd.step()
        expectClose(try w.toArray(), [0.8 - 0.01 * 3.4, 1.6 - 0.01 * 6.8], rtol: 1e-6)
        let state = try sgd.stateDict()
        expectClose(try #require(state["state.0.momentum_buffer"]).toArray(), [3.4, 6.8], rtol: 1e-6)
        #expect(try state["state.0.step"]?.item() == 2)
        #expect(state["state.1.momentum_buffer"] == nil)

        let restored = try SGD([w, unused], lr: 0.01, momentum: 0.9)
        try restored.load(stateDict: state)
        #expect(restored.steps == [2, 0])
        #expect(throws: TensorError.self) { try SGD([w], lr: 0.1, nesterov: true) }
    }

    @Test("losses: MSE, NLL and BCE-with-logits values")
    func losses() throws {
        let device = try TestDevice.get()
        let p = try Tensor([[1, 2], [3, 4]], on: device), t = try Tensor([[0, 2], [3, 2]], on: device)
        #expect(try MSELoss()(p, t).item() == 1.25)
        #expect(try MSELoss(reduction: .sum)(p, t).item() == 5)
        #expect(try MSELoss(reduction: .none)(p, t).toArray() == [1, 0, 0, 4])
        let logProbs = try Tensor([[-1, -2], [-3, -0.5]], on: device)
        #expect(try NLLLoss()(logProbs, Tensor(labels: [1, 0], on: device)).item() == 2.5)
        let bce = try BCEWithLogitsLoss()(Tensor([0, 1000, -1000], on: device), Tensor([1, 1, 0], on: device)).item()
        expectClose([bce], [Double(log(2.0)) / 3], rtol: 1e-5)
    }
}
