import Foundation
import Kiln
import KilnTestSupport
import Testing

/// Whether python3 can import TensorBoard's event reader (setup.sh installs it; CI then requires it).
let pythonHasTensorBoard = pythonRuns("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator")

/// Skipped without the tensorboard package, except on CI, where the test then fails saying so.
let needsTensorBoard = Testing.ConditionTrait.enabled(if: pythonHasTensorBoard || ProcessInfo.processInfo.environment["CI"] == "true",
                                                      "python3 has no tensorboard package: python3 -m pip install tensorboard")

/// What TensorBoard's EventAccumulator found in a folder (Tests/Fixtures/tools/read_tfevents.py).
struct TensorBoardRead: Decodable {
    struct Image: Decodable { let step: Int, width: Int, height: Int, png: PNG }
    /// The PNG as decoded in Python: size, channels, raw pixels (base64).
    struct PNG: Decodable { let width: Int, height: Int, channels: Int, pixels: String }
    /// [step, value] pairs per tag, in step order.
    let scalars: [String: [[Double]]]
    let images: [String: [Image]]

    init(folder: URL) throws {
        try #require(pythonHasTensorBoard, "python3 cannot import tensorboard; on CI it is required: python3 -m pip install tensorboard")
        let process = Process(), output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent("tools/read_tfevents.py").path, folder.path]
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "read_tfevents.py failed (its error is in the test log)")
        self = try JSONDecoder().decode(TensorBoardRead.self, from: data)
    }

    /// The decoded pixels of `image`.
    static func pixels(_ image: Image) -> [UInt8] { [UInt8](Data(base64Encoded: image.png.pixels) ?? Data()) }
}

func temporaryFolder(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("kiln-\(name)-\(UUID())")
}

@Suite("TensorBoard event files")
struct TensorBoardTests {
    @Test("CRC-32C gives the published check values; TFRecord masks it as TensorFlow does")
    func crc() {
        #expect(TFRecord.crc32c(Array("123456789".utf8)) == 0xE306_9283)
        #expect(TFRecord.crc32c([UInt8]()) == 0)
        // RFC 3720 (iSCSI), appendix B.4.
        #expect(TFRecord.crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(TFRecord.crc32c([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(TFRecord.crc32c((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(TFRecord.crc32c((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")
        #expect(TFRecord.masked(0xE306_9283) == 0xC78A_B0E5)
        #expect(TFRecord.masked(0) == 0xA282_EAD8)
    }

    @Test("records framed by TFRecord read back whole; a flipped byte or a cut-off tail is refused")
    func framing() throws {
        let payloads: [[UInt8]] = [[], [42], (0..<300).map { UInt8($0 % 251) }]
        let stream = payloads.flatMap(TFRecord.frame)
        #expect(stream.count == payloads.reduce(0) { $0 + $1.count + 16 })
        #expect(Array(TFRecord.frame([1, 2, 3]).prefix(8)) == [3, 0, 0, 0, 0, 0, 0, 0])
        #expect(try TFRecord.records(in: stream) == payloads)

        var flipped = stream
        flipped[16 + 12] ^= 1   // the byte of the second record
        #expect(throws: DataError.self) { try TFRecord.records(in: flipped) }
        var longer = stream
        longer[0] = 5           // the first length, no longer matching its checksum
        #expect(throws: DataError.self) { try TFRecord.records(in: longer) }
        #expect(throws: DataError.self) { try TFRecord.records(in: Array(stream.dropLast())) }
    }

    @Test("an event file is named as TensorBoard names it, starts with file_version brain.Event:2, and a scalar is Event{step, Summary{Value{tag, simple_value}}}")
    func encoding() throws {
        let folder = temporaryFolder("tb-encoding").appendingPathComponent("nested")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let before = Date().timeIntervalSince1970
        let writer = try TensorBoardWriter(folder: folder)
        try writer.addScalar(tag: "a", value: 1, step: 7)
        try writer.close()
        try writer.close()   // a second close does nothing

        let parts = writer.file.lastPathComponent.split(separator: ".")
        #expect(parts.prefix(3) == ["events", "out", "tfevents"] && parts.last == "0")
        #expect(parts.dropLast().last == Substring(String(getpid())))
        #expect(Double(parts[3]).map { abs($0 - before) < 5 } == true)
        let records = try TFRecord.records(in: [UInt8](Data(contentsOf: writer.file)))
        try #require(records.count == 2)
        // Field 1, wire type 1 (double): the wall time, in seconds.
        #expect(records[0].first == 0x09 && records[1].first == 0x09)
        let wallTime = Double(bitPattern: records[0][1..<9].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        #expect(abs(wallTime - before) < 5)
        // step 0 (field 2, varint), file_version (field 3, string).
        #expect(Array(records[0].dropFirst(9)) == [0x10, 0, 0x1A, 13] + Array("brain.Event:2".utf8))
        // step 7; summary (field 5) { value (1) { tag (1) "a", simple_value (2, fixed32) 1.0 } }.
        #expect(Array(records[1].dropFirst(9)) == [0x10, 7, 0x2A, 10, 0x0A, 8, 0x0A, 1, 0x61, 0x15, 0x00, 0x00, 0x80, 0x3F])
    }

    @Test("a second writer in the same folder gets a file of its own; a file in the folder's place and a closed writer fail with a FileError")
    func fileErrors() throws {
        let folder = temporaryFolder("tb-errors")
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = try TensorBoardWriter(folder: folder), second = try TensorBoardWriter(folder: folder)
        #expect(first.file != second.file)
        try first.close()
        #expect(throws: FileError.self) { try first.addScalar(tag: "x", value: 1, step: 1) }
        try second.addScalar(tag: "x", value: 1, step: 1)

        let file = folder.appendingPathComponent("not-a-folder")
        try Data().write(to: file)
        let error = #expect(throws: FileError.self) { try TensorBoardWriter(folder: file) }
        #expect(error?.description.contains("not a folder") == true)
    }

    @Test("the confusion-matrix image shades each cell by its share of the row; the sample grid frames right in green, wrong in red")
    func pictures() throws {
        let matrix = try PixelImage.confusionMatrix([[4, 0], [1, 3]], cell: 10)
        #expect(matrix.width == 23 && matrix.height == 23 && matrix.channels == 3)   // 2 cells of 10 and 3 lines
        func pixel(_ image: PixelImage, _ x: Int, _ y: Int) -> [UInt8] {
            Array(image.pixels[(y * image.width + x) * 3..<(y * image.width + x) * 3 + 3])
        }
        #expect(pixel(matrix, 5, 5) == [8, 48, 107])       // row 0, column 0: 100%, dark blue
        #expect(pixel(matrix, 16, 5) == [247, 251, 255])   // row 0, column 1: 0%, white
        #expect(pixel(matrix, 16, 16) == [68, 99, 144])    // row 1, column 1: 75%
        #expect(pixel(matrix, 0, 0) == [200, 200, 200])    // a grid line
        #expect(throws: TrainingError.self) { try PixelImage.confusionMatrix([[1, 2]]) }

        let grid = try PixelImage.sampleGrid(images: [[0, 1, 1, 0], [1, 1, 1, 1]], predicted: [0, 1], truth: [0, 2], scale: 3)
        // Two tiles of 2·3 pixels inside a 2-pixel border, 2 pixels apart and from the edges.
        #expect(grid.width == 2 + 2 * (10 + 2) && grid.height == 2 + 10 + 2)
        #expect(pixel(grid, 2, 2) == [46, 160, 67] && pixel(grid, 14, 2) == [214, 39, 40])
        #expect(pixel(grid, 4, 4) == [0, 0, 0] && pixel(grid, 7, 4) == [255, 255, 255])
        #expect(throws: TrainingError.self) { try PixelImage.sampleGrid(images: [[0, 1, 1]], predicted: [0], truth: [0]) }
        #expect(throws: TrainingError.self) { try PixelImage(width: 2, height: 2, channels: 1, pixels: [0, 1, 2]) }
    }

    @Test("TensorBoard's EventAccumulator reads back the scalars (float32-equal, at their steps) and the PNG images (pixel-equal) a writer wrote",
          needsTensorBoard)
    func readByTensorBoard() throws {
        let folder = temporaryFolder("tb-read")
        defer { try? FileManager.default.removeItem(at: folder) }
        let writer = try TensorBoardWriter(folder: folder)
        let values: [Float] = [0.1, -3.5, 1e-7, 65504, .pi]
        let steps = [0, 1, 10, 1_000_000, 1 << 40]
        for (value, step) in zip(values, steps) { try writer.addScalar(tag: "group/value", value: value, step: step) }
        let gray = try PixelImage(width: 3, height: 2, channels: 1, pixels: [0, 128, 255, 7, 77, 177])
        let colour = try PixelImage.confusionMatrix([[5, 1, 0], [0, 6, 0], [2, 2, 2]])
        try writer.addImage(tag: "gray", image: gray, step: 3)
        try writer.addImage(tag: "colour", image: colour, step: 4)
        try writer.close()

        let read = try TensorBoardRead(folder: folder)
        #expect(read.scalars["group/value"] == zip(steps, values).map { [Double($0), Double($1)] })
        for (tag, image, step) in [("gray", gray, 3), ("colour", colour, 4)] {
            let found = try #require(read.images[tag]?.first, "no \(tag) image")
            #expect(found.step == step && found.width == image.width && found.height == image.height)
            #expect(found.png.width == image.width && found.png.height == image.height && found.png.channels == image.channels)
            #expect(TensorBoardRead.pixels(found) == image.pixels, "\(tag): the PNG decodes to other pixels")
        }
    }

    @Test("a short Trainer.fit with a TensorBoardLogger: TensorBoard reads the loss every logEvery steps, the epoch metrics at each epoch's last step, and the images",
          needsTensorBoard)
    func trainerLogs() throws {
        let device = try TestDevice.get()
        let folder = temporaryFolder("tb-fit")
        defer { try? FileManager.default.removeItem(at: folder) }
        let data = try ArrayDataset(inputs: randomFloats(48 * 4, in: 0...1, seed: 2), featureShape: [4],
                                    targets: .classes((0..<48).map { $0 % 3 }, classes: 3))
        let loader = try DataLoader(data, batchSize: 8, on: device)   // 6 steps an epoch
        /// Every step's loss, to compare with what the logger wrote.
        final class Losses: Callback {
            var byStep: [Int: Float] = [:]
            func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws { byStep[step] = try loss.item() }
        }
        let losses = Losses(), board = try TensorBoardLogger(folder: folder)
        let model = try Sequential(Linear(4, 3, seed: 1, on: device))
        let trainer = Trainer(maxEpochs: 3, callbacks: [board, losses], logEvery: 4)
        trainer.log = { _ in }
        trainer.progressBar = false
        let history = try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try SGD(model.parameters, lr: 0.05),
                                      train: loader, validation: loader)
        let (predicted, _) = try trainer.predict(model: model, data: loader)
        var matrix = [[Int]](repeating: [0, 0, 0], count: 3)
        for (p, t) in zip(predicted, (0..<48).map { $0 % 3 }) { matrix[t][p] += 1 }
        try board.logConfusionMatrix(matrix, step: trainer.globalStep)
        try board.close()

        let read = try TensorBoardRead(folder: folder)
        #expect(Set(read.scalars.keys) == ["loss/train_step", "learning_rate", "loss/train", "accuracy/train", "loss/val",
                                           "accuracy/val", "epoch"])
        #expect(read.scalars["loss/train_step"] == [4, 8, 12, 16].map { [Double($0), Double(losses.byStep[$0] ?? .nan)] })
        // Logged steps and epoch ends (step 12 is both, logged once).
        #expect(read.scalars["learning_rate"] == [4, 6, 8, 12, 16, 18].map { [Double($0), Double(Float(0.05))] })
        let epochEnds = [6.0, 12, 18]
        func perEpoch(_ metric: String) -> [[Double]] {
            zip(epochEnds, history.records).map { [$0, Double(Float($1.value(of: metric) ?? .nan))] }
        }
        #expect(read.scalars["loss/train"] == perEpoch("train_loss"))
        #expect(read.scalars["accuracy/train"] == perEpoch("train_accuracy"))
        #expect(read.scalars["loss/val"] == perEpoch("val_loss"))
        #expect(read.scalars["accuracy/val"] == perEpoch("val_accuracy"))
        #expect(read.scalars["epoch"] == [[6, 1], [12, 2], [18, 3]])

        let expected = try PixelImage.confusionMatrix(matrix)
        let image = try #require(read.images["confusion_matrix"]?.first)
        #expect(image.step == 18 && image.width == expected.width && image.height == expected.height)
        #expect(TensorBoardRead.pixels(image) == expected.pixels)
    }

    @Test("kiln train --tensorboard DIR writes event files TensorBoard reads: per-step and per-epoch scalars, the confusion matrix and the samples",
          needsTensorBoard)
    func command() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "Fashion-MNIST is missing on CI")
            return
        }
        let folder = temporaryFolder("tb-cli")
        defer { try? FileManager.default.removeItem(at: folder) }
        let board = folder.appendingPathComponent("board")
        let run = try kiln(["train", "--limit", "300", "--test-limit", "100", "--epochs", "2", "--hidden", "16", "--batch-size", "50",
                            "--log-every", "2", "--out", folder.appendingPathComponent("run").path, "--tensorboard", board.path])
        #expect(run.status == 0, "\(run.stderr)")
        let read = try TensorBoardRead(folder: board)
        #expect(read.scalars["loss/train_step"]?.map { $0[0] } == [2, 4, 6, 8, 10, 12])
        #expect(read.scalars["accuracy/val"]?.map { $0[0] } == [6, 12])
        let matrix = try #require(read.images["confusion_matrix"]?.first), samples = try #require(read.images["samples"]?.first)
        #expect(matrix.step == 12 && matrix.width == 10 * 26 + 1)   // 10 classes, cells of 25 pixels and 1-pixel lines
        #expect(samples.step == 12 && samples.width == 8 * (28 * 2 + 4 + 2) + 2 && samples.height == 4 * (28 * 2 + 4 + 2) + 2)
        try expectCleanFailure(["train", "--tensorboard", ""], mentioning: "--tensorboard")
    }
}
