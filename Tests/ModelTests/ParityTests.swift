import Foundation
import Kiln
import KilnTestSupport
import Testing

/// Every PyTorch parity fixture: those copied into Tests/Fixtures/parity, plus those in
/// `$KILN_PARITY_DIR` when set.
func parityFixtureFiles() -> [URL] {
    let bundled = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/parity")
    var folders = [bundled]
    if let extra = ProcessInfo.processInfo.environment["KILN_PARITY_DIR"], !extra.isEmpty {
        folders.append(URL(fileURLWithPath: extra))
    }
    return folders.flatMap { folder in
        ((try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "safetensors" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}

/// A fixture's spec (see Tests/Fixtures/parity/README.md).
struct ParitySpec: Decodable {
    struct LossSpec: Decodable { var type: String; var label_smoothing: Double? }
    struct OptimizerSpec: Decodable {
        var type: String
        var lr: Double
        var momentum: Double?, dampening: Double?, nesterov: Bool?, weight_decay: Double?
        var betas: [Double]?, eps: Double?, alpha: Double?, centered: Bool?
    }
    struct Tolerance: Decodable { var rtol: Double; var atol: Double }
    var loss: LossSpec
    var optimizer: OptimizerSpec
    var steps: Int
    var tolerance: [String: Tolerance]
}

struct ParityFailure: Error, CustomStringConvertible { let description: String }

/// Runs one fixture; returns how many tensors were compared and how many differed (each
/// difference is also recorded as an issue).
func runParityFixture(_ url: URL, on device: Device) throws -> (compared: Int, failed: Int) {
    let file = try SafeTensorsFile(contentsOf: url)
    guard let specText = file.metadata["spec"] else { throw ParityFailure(description: "no spec in metadata") }
    let spec = try JSONDecoder().decode(ParitySpec.self, from: Data(specText.utf8))
    func tensor(_ name: String) throws -> SafeTensor {
        guard let t = file.tensors[name] else { throw ParityFailure(description: "fixture has no tensor \(name)") }
        return t
    }
    func tolerance(_ group: String) throws -> ParitySpec.Tolerance {
        guard let t = spec.tolerance[group] else { throw ParityFailure(description: "no \(group) tolerance") }
        return t
    }
    var compared = 0, failed = 0
    func compare(_ actual: Tensor, _ name: String, _ group: String) throws {
        let expected = try tensor(name)
        let tol = try tolerance(group)
        compared += 1
        if !expectClose(try actual.toArray(), expected.floats().map(Double.init), rtol: tol.rtol, atol: tol.atol,
                        "\(url.lastPathComponent) \(name)") {
            failed += 1
        }
    }

    // The model, as nn.Sequential would name it, from the fixture's own layer list.
    let model = try ModelSpec.parse(Data(specText.utf8)).makeModel(on: device)
    var initial: [String: Tensor] = [:]
    for (name, t) in file.tensors where name.hasPrefix("param.") || name.hasPrefix("buffer.") {
        let key = String(name.drop { $0 != "." }.dropFirst())
        initial[key] = try Tensor(t.floats(), shape: t.shape, on: device)
    }
    try model.load(stateDict: initial)

    let inputTensor = try tensor("input")
    let input = try Tensor(inputTensor.floats(), shape: inputTensor.shape, on: device)
    let targetTensor = try tensor("target")
    let lossFunction: any Loss
    let target: Tensor
    switch spec.loss.type {
    case "CrossEntropy":
        lossFunction = CrossEntropyLoss(labelSmoothing: Float(spec.loss.label_smoothing ?? 0))
        target = try Tensor(labels: targetTensor.integers().map { Int($0) }, on: device)
    case "MSE":
        lossFunction = MSELoss()
        target = try Tensor(targetTensor.floats(), shape: targetTensor.shape, on: device)
    default: throw ParityFailure(description: "unknown loss \(spec.loss.type)")
    }

    let o = spec.optimizer
    let optimizer: Optimizer
    switch o.type {
    case "SGD":
        optimizer = try SGD(model.parameters, lr: Float(o.lr), momentum: Float(o.momentum ?? 0),
                            dampening: Float(o.dampening ?? 0), nesterov: o.nesterov ?? false,
                            weightDecay: Float(o.weight_decay ?? 0))
    case "Adam", "AdamW":
        let betas = (Float(o.betas?.first ?? 0.9), Float(o.betas?.last ?? 0.999))
        optimizer = o.type == "Adam"
            ? try Adam(model.parameters, lr: Float(o.lr), betas: betas, eps: Float(o.eps ?? 1e-8), weightDecay: Float(o.weight_decay ?? 0))
            : try AdamW(model.parameters, lr: Float(o.lr), betas: betas, eps: Float(o.eps ?? 1e-8), weightDecay: Float(o.weight_decay ?? 0.01))
    case "RMSprop":
        optimizer = try RMSprop(model.parameters, lr: Float(o.lr), alpha: Float(o.alpha ?? 0.99), eps: Float(o.eps ?? 1e-8),
                            weightDecay: Float(o.weight_decay ?? 0), momentum: Float(o.momentum ?? 0),
                            centered: o.centered ?? false)
    default: throw ParityFailure(description: "unknown optimizer \(o.type)")
    }

    // Forward and backward in training mode, then the optimizer steps on the same batch. Step k's
    // loss is the forward pass at the start of step k + 1, so the last step has none (and no extra
    // forward pass, which would move BatchNorm's running statistics).
    model.train()
    for k in 0..<spec.steps {
        let logits = try model(input)
        let loss = try lossFunction(logits, target)
        if k == 0 {
            try compare(logits, "out.logits", "forward")
            try compare(loss, "out.loss", "forward")
        } else {
            try compare(loss, "step\(k).loss", "step")
        }
        optimizer.zeroGrad()
        try loss.backward()
        if k == 0 {
            for (name, p) in model.namedParameters() { try compare(try #require(p.grad), "grad.\(name)", "grad") }
        }
        try optimizer.step()
        for (name, p) in model.namedParameters() { try compare(p, "step\(k + 1).param.\(name)", "step") }
        for (name, b) in model.namedBuffers() {
            // PyTorch's fixtures leave out BatchNorm's step counter.
            if name.hasSuffix("num_batches_tracked") && file.tensors["step\(k + 1).buffer.\(name)"] == nil { continue }
            try compare(b, "step\(k + 1).buffer.\(name)", "step")
        }
    }
    model.eval()
    try withNoGrad { try compare(try model(input), "eval.logits", "step") }
    return (compared, failed)
}

@Suite("PyTorch parity")
struct ParityTests {
    @Test("every parity fixture matches PyTorch: forward, gradients, optimizer steps, eval")
    func fixtures() throws {
        let device = try TestDevice.get()
        let files = parityFixtureFiles()
        #expect(files.count >= 4, "expected the bundled fixtures")
        for url in files {
            do {
                let (compared, failed) = try runParityFixture(url, on: device)
                print("parity: \(url.lastPathComponent): \(failed == 0 ? "passed" : "FAILED"), \(compared - failed) of \(compared) tensors within tolerance")
            } catch {
                Issue.record("parity: \(url.lastPathComponent) could not run: \(error)")
                print("parity: \(url.lastPathComponent): FAILED to run: \(error)")
            }
        }
    }
}
