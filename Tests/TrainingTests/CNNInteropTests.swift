import Foundation
import Kiln
import KilnTestSupport
import Testing

/// Runs a Python tool from Tests/Fixtures/tools; returns its exit status and standard output.
func runPython(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    let output = Pipe()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", fixtures.appendingPathComponent("tools/\(tool)").path] + arguments
    process.standardOutput = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}

@Suite("Convolutional networks and PyTorch")
struct CNNInteropTests {
    static let architecture = fixtures.appendingPathComponent("interop/torch_cnn.json")
    static let stateDict = fixtures.appendingPathComponent("interop/torch_cnn.safetensors")
    static let expected = fixtures.appendingPathComponent("interop/torch_cnn_expected.safetensors")

    /// The fixture's CNN (Conv2d, BatchNorm2d, ReLU, MaxPool2d twice, Flatten, Linear) as Kiln builds
    /// it from the architecture file, with PyTorch's trained state dict loaded.
    static func torchTrainedModel(on device: Device) throws -> (Sequential, ModelSpec) {
        let spec = try ModelSpec.parse(Data(contentsOf: architecture))
        let model = try spec.makeModel(on: device)
        try Checkpoint.loadModel(model, from: stateDict)
        return (model, spec)
    }

    @Test("a CNN state_dict PyTorch trained and saved loads into the layers its architecture file names, and gives PyTorch's logits")
    func fromPyTorch() throws {
        let device = try TestDevice.get()
        let (model, _) = try Self.torchTrainedModel(on: device)
        let expected = try SafeTensorsFile(contentsOf: Self.expected)
        let input = try #require(expected.tensors["input"]), logits = try #require(expected.tensors["logits"])
        #expect(input.shape == [64, 1, 28, 28])
        model.eval()
        let output = try withNoGrad { try model(Tensor(input.floats(), shape: input.shape, on: device)) }
        expectClose(try output.toArray(), logits.floats().map(Double.init), rtol: 1e-4, atol: 1e-4, "logits")
        #expect(try output.argmax(axis: 1).toIntArray() == (try #require(expected.tensors["classes"])).integers().map { Int($0) })
    }

    @Test("Kiln's CNN file keeps PyTorch's keys, shapes and dtypes, records its layers, and loads into PyTorch (strict) with the same predictions")
    func toPyTorch() throws {
        let device = try TestDevice.get()
        let (model, spec) = try Self.torchTrainedModel(on: device)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cnn-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Checkpoint.saveModel(model, to: url, metadata: [ModelSpec.metadataKey: try spec.json()])
        let ours = try SafeTensorsFile(contentsOf: url), theirs = try SafeTensorsFile(contentsOf: Self.stateDict)
        #expect(Set(ours.tensors.keys) == Set(theirs.tensors.keys))
        for (name, tensor) in theirs.tensors {
            let mine = try #require(ours.tensors[name])
            #expect(mine.dtype == tensor.dtype && mine.shape == tensor.shape, "\(name): \(mine.dtype) \(mine.shape) vs \(tensor.dtype) \(tensor.shape)")
        }
        #expect(try ModelSpec.from(metadata: ours.metadata) == spec)
        guard pythonHasTorch else {
            print("toPyTorch (CNN): python3 has no torch here; checked the file's layout only")
            return
        }
        let (status, output) = try runPython("check_kiln_model.py", [url.path, Self.expected.path])
        #expect(status == 0)
        let classes = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int($0) }
        let expected = try SafeTensorsFile(contentsOf: Self.expected)
        #expect(classes == (try #require(expected.tensors["classes"])).integers().map { Int($0) })
    }
}
