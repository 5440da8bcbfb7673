import Foundation
import KilnTensor
import Testing

/// The folder of PyTorch parity fixtures copied from `../shared/fixtures`.
let parityFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/parity")

@Suite("safetensors")
struct SafeTensorsTests {
    /// A valid file's bytes with one tensor `x` of `shape` and `dtype` spanning `offsets`.
    func file(header: String, payload: Int) -> Data {
        var data = Data()
        var length = UInt64(header.utf8.count)
        for _ in 0..<8 { data.append(UInt8(length & 0xff)); length >>= 8 }
        data.append(Data(header.utf8))
        data.append(Data(repeating: 0, count: payload))
        return data
    }

    func expectRejected(_ data: Data, mentioning text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try SafeTensorsFile(data: data, name: "bad.safetensors")
            Issue.record("accepted a malformed file (\(text))", sourceLocation: sourceLocation)
        } catch {
            let message = String(describing: error)
            #expect(error is SafeTensorsError, sourceLocation: sourceLocation)
            #expect(message.contains("bad.safetensors"), sourceLocation: sourceLocation)
            #expect(message.contains(text), "\(message)", sourceLocation: sourceLocation)
        }
    }

    @Test("PyTorch's fixtures parse, with their spec and shapes")
    func readsFixtures() throws {
        let files = try FileManager.default.contentsOfDirectory(at: parityFixtures, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "safetensors" }
        #expect(files.count >= 4)
        for url in files {
            let file = try SafeTensorsFile(contentsOf: url)
            #expect(file.metadata["spec"] != nil, "\(url.lastPathComponent) has no spec")
            let input = try #require(file.tensors["input"])
            // [N, features] for an MLP, [N, C, H, W] for a CNN.
            #expect(input.dtype == .F32 && [2, 4].contains(input.shape.count), "\(url.lastPathComponent): \(input.shape)")
            #expect(input.floats().count == input.shape.reduce(1, *))
        }
    }

    @Test("a written file reads back the same")
    func roundTrip() throws {
        var file = SafeTensorsFile(metadata: ["epoch": "3"])
        file.tensors["0.weight"] = SafeTensor(floats: [1, -2, 3.5, 4, 5, 6], shape: [2, 3])
        file.tensors["labels"] = SafeTensor(dtype: .I64, shape: [2], data: [Int64(7), -1].withUnsafeBytes { Data($0) })
        file.tensors["scalar"] = SafeTensor(floats: [42], shape: [])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try file.write(to: url)
        let back = try SafeTensorsFile(contentsOf: url)
        #expect(back.metadata == ["epoch": "3"])
        #expect(back.tensors == file.tensors)
        #expect(back.tensors["labels"]?.integers() == [7, -1])
        #expect(back.tensors["0.weight"]?.floats() == [1, -2, 3.5, 4, 5, 6])
    }

    @Test("malformed files throw clear errors")
    func strictReader() {
        expectRejected(Data([1, 2, 3]), mentioning: "8-byte header length")
        expectRejected(file(header: "{}", payload: 0).prefix(9), mentioning: "past the end")
        var huge = file(header: "{}", payload: 0)
        huge.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        expectRejected(huge, mentioning: "past the end")
        expectRejected(file(header: "[1, 2]", payload: 0), mentioning: "not a JSON object")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, payload: 4),
                       mentioning: "outside the 4 data bytes")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "needs 12 bytes")
        expectRejected(file(header: #"{"x": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "unknown dtype \"Q7\"")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, payload: 12),
                       mentioning: "overlap")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "invalid shape")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#, payload: 8),
                       mentioning: "data_offsets")
    }

    @Test("a missing file throws, naming it")
    func missingFile() {
        #expect(throws: SafeTensorsError.self) {
            try SafeTensorsFile(contentsOf: URL(fileURLWithPath: "/nonexistent/model.safetensors"))
        }
    }
}
