import Foundation
import KilnSupport
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
        file.tensors["0.weight"] = try SafeTensor(floats: [1, -2, 3.5, 4, 5, 6], shape: [2, 3])
        file.tensors["labels"] = try SafeTensor(dtype: .I64, shape: [2], data: [Int64(7), -1].withUnsafeBytes { Data($0) })
        file.tensors["scalar"] = try SafeTensor(floats: [42], shape: [])
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
        expectRejected(huge, mentioning: "over the 100000000-byte limit")
        expectRejected(file(header: "[1, 2]", payload: 0), mentioning: "does not start with \"{\"")
        expectRejected(file(header: "{1: 2}", payload: 0), mentioning: "not valid JSON")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, payload: 4),
                       mentioning: "outside the 4 data bytes")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "needs 12 bytes")
        expectRejected(file(header: #"{"x": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "unknown dtype \"Q7\"")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, payload: 12),
                       mentioning: "overlap")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, payload: 8),
                       mentioning: "negative size")
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#, payload: 8),
                       mentioning: "data_offsets")
    }

    @Test("the header is at most 100 MB of UTF-8 JSON whose shapes and offsets are integers")
    func headerRules() {
        var capped = file(header: "{}", payload: 0)
        capped.replaceSubrange(0..<8, with: [0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0])  // 100,000,001
        expectRejected(capped, mentioning: "over the 100000000-byte limit")
        var latin1 = file(header: #"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, payload: 4)
        latin1[12] = 0xe9  // an é in Latin-1 inside the key: not UTF-8
        expectRejected(latin1, mentioning: "not UTF-8")
        for bad in ["1.5", "true", "1e20", "\"2\"", "null"] {
            expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": ["# + bad + #"], "data_offsets": [0, 4]}}"#, payload: 4),
                           mentioning: "tensor \"x\" is not")
            expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, "# + bad + #"]}}"#, payload: 4),
                           mentioning: "tensor \"x\" is not")
        }
        expectRejected(file(header: #"{"__metadata__": {"epoch": 3}}"#, payload: 0), mentioning: "__metadata__ is not a map of strings")
        // A repeated name, at the top or inside an entry, is refused (readers disagree on which counts).
        let twice = #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#
        expectRejected(file(header: twice, payload: 4), mentioning: "repeats the key \"a\"")
        expectRejected(file(header: #"{"a": {"dtype": "F32", "dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}"#, payload: 4),
                       mentioning: "repeats the key \"dtype\"")
        expectRejected(file(header: #"{"\u0061": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, payload: 8),
                       mentioning: "repeats the key \"a\"")
        // Keys equal to string values elsewhere are not repeats.
        #expect((try? SafeTensorsFile(data: file(header: #"{"__metadata__": {"a": "shape", "shape": "a"}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, payload: 4))) != nil)
        expectRejected(file(header: #"{"x": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}}"#, payload: 4),
                       mentioning: "too large to address")
    }

    @Test("the tensors' byte ranges tile the data section exactly: no gap, no overlap, nothing after")
    func rangesTileTheData() {
        let two = #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}"#
        expectRejected(file(header: two, payload: 12), mentioning: "4 bytes that belong to no tensor")
        expectRejected(file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, payload: 8),
                       mentioning: "4 bytes that belong to no tensor")
        expectRejected(file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, payload: 8),
                       mentioning: "4 bytes after the last tensor")
        // Out of order in the header is fine as long as the ranges tile.
        let swapped = #"{"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#
        #expect((try? SafeTensorsFile(data: file(header: swapped, payload: 8)))?.tensors.count == 2)
    }

    @Test("a header length one byte short or long is rejected, never read shifted")
    func shiftedHeaderLength() throws {
        var good = SafeTensorsFile(metadata: ["epoch": "3"])
        good.tensors["w"] = try SafeTensor(floats: [1, 2, 3, 4, 5], shape: [5])
        good.tensors["b"] = try SafeTensor(floats: [6, 7], shape: [2])
        let bytes = try good.serialized()
        #expect(try SafeTensorsFile(data: bytes).tensors == good.tensors)
        let length = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        for delta in [-8, -1, 1, 8] {
            var shifted = bytes
            var value = UInt64(length + delta)
            for i in 0..<8 { shifted[i] = UInt8(value & 0xff); value >>= 8 }
            #expect(throws: SafeTensorsError.self, "header length \(delta > 0 ? "+" : "")\(delta)") {
                try SafeTensorsFile(data: shifted)
            }
        }
    }

    @Test("a tensor made from bytes must hold exactly what its shape needs")
    func checkedTensorBytes() {
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .F32, shape: [3], data: Data(count: 8)) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(dtype: .F32, shape: [-1], data: Data()) }
        #expect(throws: SafeTensorsError.self) { try SafeTensor(floats: [1, 2], shape: [3]) }
    }

    @Test("a missing file, a folder or a device throws a FileError naming it, without reading")
    func unreadableFiles() {
        for (path, reason) in [("/nonexistent/model.safetensors", "No such file or directory"), ("/tmp", "it is a folder"),
                               ("/dev/zero", "it is not a regular file")] {
            let error = #expect(throws: FileError.self) { try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) }
            #expect(error?.description.hasPrefix("Cannot read the safetensors file \(path): \(reason)") == true, "\(String(describing: error))")
        }
    }
}
