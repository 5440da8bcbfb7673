import Foundation
import Kiln
import KilnTestSupport
import Testing

/// The seeds' `CircleModelV2`, line for line: layers in properties, `forward` overridden, nothing
/// listed by hand.
final class CircleModel: Module {
    let layer_1: Linear
    let layer_2: Linear
    let layer_3: Linear
    let relu = ReLU()

    override init() throws {
        layer_1 = try Linear(2, 10)
        layer_2 = try Linear(10, 10)
        layer_3 = try Linear(10, 1)
    }

    override func forward(_ x: Tensor) throws -> Tensor {
        try layer_3(relu(layer_2(relu(layer_1(x)))))
    }
}

/// Two interleaved circles (as scikit-learn's `make_circles(noise: 0.03, factor: 0.5)`), seeded:
/// points [n, 2] and labels [n, 1] (1 for the inner circle).
func circles(_ n: Int, seed: UInt64) -> (points: [Float], labels: [Float]) {
    var rng = SeededGenerator(seed: seed)
    var points: [Float] = [], labels: [Float] = []
    for i in 0..<n {
        let inner = i % 2 == 1
        let angle = Double.random(in: 0..<(2 * .pi), using: &rng)
        let radius = inner ? 0.5 : 1.0
        points += [Float(radius * cos(angle) + Double.random(in: -0.03...0.03, using: &rng)),
                   Float(radius * sin(angle) + Double.random(in: -0.03...0.03, using: &rng))]
        labels.append(inner ? 1 : 0)
    }
    return (points, labels)
}

/// A module with the containers reflection must see through: an array and a dictionary of
/// modules, an optional one, camelCase names, a tensor parameter and a tensor buffer of its own.
final class Zoo: Module {
    let blocks: [Linear]
    let heads: [String: Linear]
    let maybeNorm: BatchNorm1d?
    let missing: Linear? = nil
    let scaleFactor: Tensor
    let runningTotal: Tensor
    let note = "not a tensor"

    override init() throws {
        blocks = [try Linear(4, 4), try Linear(4, 3)]
        heads = ["b": try Linear(3, 2), "a": try Linear(3, 1)]
        maybeNorm = try BatchNorm1d(3)
        scaleFactor = try Tensor.ones([1], requiresGrad: true)
        runningTotal = try Tensor.zeros([2])
    }
}

@Suite("Modules as in PyTorch", .serialized)
struct ModuleTests {
    @Test("a custom module finds its layers by reflection, named by property as PyTorch names them")
    func reflection() throws {
        let device = try TestDevice.get()
        let model = try Tensor.withDevice(device) { try CircleModel() }
        #expect(model.namedParameters().map(\.name) == ["layer_1.weight", "layer_1.bias", "layer_2.weight", "layer_2.bias",
                                                        "layer_3.weight", "layer_3.bias"])
        #expect(model.children.map(\.name) == ["layer_1", "layer_2", "layer_3", "relu"])
        #expect(model.namedBuffers().isEmpty)
        #expect(model.parameters.count == 6 && model.stateDict().count == 6)

        let zoo = try Tensor.withDevice(device) { try Zoo() }
        #expect(zoo.namedParameters().map(\.name) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                                                      "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias",
                                                      "maybe_norm.weight", "maybe_norm.bias", "scale_factor"])
        #expect(zoo.namedBuffers().map(\.name) == ["maybe_norm.running_mean", "maybe_norm.running_var",
                                                   "maybe_norm.num_batches_tracked", "running_total"])
    }

    @Test("training mode lives in Module; train() and eval() reach every sub-module")
    func modes() throws {
        let zoo = try Tensor.withDevice(try TestDevice.get()) { try Zoo() }
        zoo.eval()
        #expect(!zoo.training && zoo.blocks.allSatisfy { !$0.training } && zoo.maybeNorm?.training == false)
        zoo.train()
        #expect(zoo.training && zoo.heads.values.allSatisfy(\.training))
    }

    @Test("print(model) shows the module tree as PyTorch's repr does")
    func description() throws {
        let model = try Tensor.withDevice(try TestDevice.get()) { try CircleModel() }
        #expect(model.description == """
            CircleModel(
              (layer_1): Linear(in_features=2, out_features=10, bias=True)
              (layer_2): Linear(in_features=10, out_features=10, bias=True)
              (layer_3): Linear(in_features=10, out_features=1, bias=True)
              (relu): ReLU()
            )
            """)
        let sequential = try Tensor.withDevice(try TestDevice.get()) {
            Sequential(try Linear(784, 256), ReLU(), try BatchNorm1d(256), try Dropout(0.25), Sequential(try Linear(256, 10, bias: false)))
        }
        #expect(sequential.description == """
            Sequential(
              (0): Linear(in_features=784, out_features=256, bias=True)
              (1): ReLU()
              (2): BatchNorm1d(256, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
              (3): Dropout(p=0.25, inplace=False)
              (4): Sequential(
                (0): Linear(in_features=256, out_features=10, bias=False)
              )
            )
            """)
    }

    @Test("summary(inputShape:) lists every layer's output shape and parameters, with totals (torchinfo's table)")
    func summary() throws {
        let model = try Tensor.withDevice(try TestDevice.get()) {
            Sequential(try Linear(784, 256), ReLU(), try Linear(256, 128), ReLU(), try Linear(128, 10))
        }
        let table = try model.summary(inputShape: [1, 784])
        print(table)
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("Sequential") && $0.contains("[1, 10]") })
        #expect(lines.contains { $0.hasPrefix("├─Linear: 1-1") && $0.contains("[1, 256]") && $0.hasSuffix("200,960") })
        #expect(lines.contains { $0.hasPrefix("├─ReLU: 1-2") && $0.contains("[1, 256]") && $0.hasSuffix("--") })
        #expect(lines.contains { $0.hasPrefix("├─Linear: 1-5") && $0.contains("[1, 10]") && $0.hasSuffix("1,290") })
        #expect(lines.contains("Total params: 235,146"))
        model.layers[0].freeze()
        #expect(try model.summary(inputShape: [1, 784]).contains("Trainable params: 34,186"))
        #expect(model.training, "summary leaves the model's mode as it found it")
    }

    @Test("frozen parameters stay bit for bit through training; the others move")
    func freezing() throws {
        let device = try TestDevice.get()
        for makeOptimizer in [{ try SGD($0, lr: 0.1, momentum: 0.9, weightDecay: 0.01) },
                              { try Adam($0, lr: 0.01, weightDecay: 0.01) }] as [([Tensor]) throws -> Optimizer] {
            let model = try Tensor.withDevice(device) { try CircleModel() }
            model.layer_1.freeze()
            model.layer_3.bias?.requiresGrad = false
            #expect(model.trainableParameters.count == 3)
            let frozen = try [model.layer_1.weight, model.layer_1.bias, model.layer_3.bias].compactMap { $0 }.map { try $0.toArray() }
            let moving = try model.layer_2.weight.toArray()
            let optimizer = try makeOptimizer(model.parameters)
            let data = circles(64, seed: 3)
            let x = try Tensor(data.points, shape: [64, 2], on: device), y = try Tensor(data.labels, shape: [64, 1], on: device)
            for _ in 0..<5 {
                optimizer.zeroGrad()
                try BCEWithLogitsLoss()(model(x), y).backward()
                try optimizer.step()
            }
            let after = try [model.layer_1.weight, model.layer_1.bias, model.layer_3.bias].compactMap { $0 }.map { try $0.toArray() }
            #expect(after == frozen, "\(type(of: optimizer)) changed a frozen parameter")
            #expect(try model.layer_2.weight.toArray() != moving)
            model.unfreeze()
            #expect(model.trainableParameters.count == 6)
        }
    }

    @Test("an optimizer given no parameters, and a model with nothing to save, throw")
    func emptiness() throws {
        final class Forgetful: Module {
            override func forward(_ x: Tensor) throws -> Tensor { x }
        }
        let model = try Forgetful()
        #expect(throws: TensorError.self) { try Adam(model.parameters) }
        #expect(throws: TensorError.self) { try SGD([], lr: 0.1) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-empty-\(UUID()).safetensors")
        #expect(throws: TrainingError.self) { try Checkpoint.saveModel(model, to: url) }
        #expect(!FileManager.default.fileExists(atPath: url.path))
        // A module without forward says so.
        final class Unfinished: Module {}
        #expect(throws: TensorError.self) { try Unfinished()(Tensor.zeros([1])) }
        // Invalid hyperparameters are errors, as in PyTorch.
        let p = [try Tensor.zeros([2], requiresGrad: true)]
        #expect(throws: TensorError.self) { try Adam(p, lr: -1) }
        #expect(throws: TensorError.self) { try Adam(p, betas: (1.0, 0.999)) }
        #expect(throws: TensorError.self) { try RMSprop(p, alpha: -0.5) }
        #expect(throws: TensorError.self) { try SGD(p, lr: .nan) }
    }

    @Test("the seeds' CircleModel trains on two circles, saves, and loads into PyTorch's CircleModelV2")
    func circleModel() throws {
        let device = try TestDevice.get()
        RandomState.manualSeed(42)
        let model = try Tensor.withDevice(device) { try CircleModel() }
        let data = circles(400, seed: 42)
        let x = try Tensor(data.points, shape: [400, 2], on: device), y = try Tensor(data.labels, shape: [400, 1], on: device)
        let optimizer = try Adam(model.parameters, lr: 0.01)
        let lossFunction = BCEWithLogitsLoss()
        var first = Float.nan, last = Float.nan
        for step in 0..<300 {
            optimizer.zeroGrad()
            let loss = try lossFunction(model(x), y)
            try loss.backward()
            try optimizer.step()
            if step == 0 { first = try loss.item() }
            if step == 299 { last = try loss.item() }
        }
        model.eval()
        let logits = try withNoGrad { try model(x) }
        let accuracy = try ((logits .> 0) .== y).mean().item()
        print("CircleModel: loss \(first) → \(last), accuracy \(accuracy * 100)% on 400 points")
        #expect(last < first / 4)
        #expect(accuracy > 0.95)

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-circle-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let modelFile = folder.appendingPathComponent("circle.safetensors")
        try Checkpoint.saveModel(model, to: modelFile)
        let saved = try SafeTensorsFile(contentsOf: modelFile)
        #expect(saved.tensors.mapValues(\.shape) == ["layer_1.weight": [10, 2], "layer_1.bias": [10], "layer_2.weight": [10, 10],
                                                     "layer_2.bias": [10], "layer_3.weight": [1, 10], "layer_3.bias": [1]])
        let copy = try Tensor.withDevice(device) { try CircleModel() }
        try Checkpoint.loadModel(copy, from: modelFile)
        copy.eval()
        #expect(try withNoGrad { try copy(x) }.toArray() == (try logits.toArray()))

        guard pythonHasTorch else {
            print("circleModel: python3 has no torch here; checked the file's keys and shapes only")
            return
        }
        let inputs = folder.appendingPathComponent("inputs.safetensors")
        try SafeTensorsFile(tensors: ["input": try SafeTensor(floats: data.points, shape: [400, 2])]).write(to: inputs)
        let process = Process(), output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent("tools/check_circle_model.py").path, modelFile.path, inputs.path]
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "PyTorch's strict load_state_dict failed")
        let theirs = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Double($0) }
        expectClose(try logits.toArray(), theirs, rtol: 1e-4, atol: 1e-5, "PyTorch's CircleModelV2 logits from Kiln's file")
    }
}
