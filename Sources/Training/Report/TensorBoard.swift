import Foundation
import KilnSupport
import KilnTensor
#if canImport(Glibc)
import Glibc
#endif

// TensorBoard event files, written natively: a TFRecord file of protobuf `Event` messages. Only
// the few fields Kiln writes are encoded, by hand, so there is no protobuf dependency. Field
// numbers are those of tensorboard/compat/proto/event.proto and summary.proto:
//
//     Event         { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//     Summary       { repeated Value value = 1; }
//     Summary.Value { string tag = 1; float simple_value = 2; Image image = 4; }
//     Summary.Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }

/// TFRecord framing, the container of TensorBoard event files: each record is its length (uint64,
/// little-endian), the masked CRC-32C of those 8 bytes (uint32 LE), the data, and the masked
/// CRC-32C of the data.
public enum TFRecord {
    /// CRC-32C (Castagnoli: polynomial 0x1EDC6F41, bits reflected as 0x82F63B78) of `bytes`.
    public static func crc32c(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return ~crc
    }

    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    /// The CRC as TFRecord stores it: rotated right by 15 bits plus a constant, so a CRC of data
    /// that holds CRCs stays well distributed.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// `data` as one record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var record: [UInt8] = []
        record.reserveCapacity(data.count + 16)
        let length = littleEndian(UInt64(data.count))
        record += length
        record += littleEndian(masked(crc32c(length)))
        record += data
        record += littleEndian(masked(crc32c(data)))
        return record
    }

    /// The data of every record in `bytes`, in order. Throws a `DataError` naming `name` for a
    /// truncated record or a checksum that does not match.
    public static func records(in bytes: [UInt8], name: String = "TFRecord data") throws -> [[UInt8]] {
        var records: [[UInt8]] = [], offset = 0
        func word<T: FixedWidthInteger>(_: T.Type, at start: Int) -> T {
            (0..<MemoryLayout<T>.size).reduce(T(0)) { $0 | T(bytes[start + $1]) << (8 * $1) }
        }
        while offset < bytes.count {
            guard bytes.count - offset >= 16 else { throw DataError("the record at byte \(offset) is truncated", file: name) }
            let length = word(UInt64.self, at: offset)
            guard word(UInt32.self, at: offset + 8) == masked(crc32c(bytes[offset..<offset + 8])) else {
                throw DataError("the length of the record at byte \(offset) fails its checksum", file: name)
            }
            guard length <= UInt64(bytes.count - offset - 16) else { throw DataError("the record at byte \(offset) is truncated", file: name) }
            let start = offset + 12, end = start + Int(length)
            guard word(UInt32.self, at: end) == masked(crc32c(bytes[start..<end])) else {
                throw DataError("the data of the record at byte \(offset) fails its checksum", file: name)
            }
            records.append(Array(bytes[start..<end]))
            offset = end + 4
        }
        return records
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

/// The protobuf wire format, for just the field types TensorBoard's `Event` needs.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    /// int32 or int64 (wire type 0; negative numbers take ten bytes, as protobuf writes them).
    mutating func integer(_ field: Int, _ value: Int) {
        key(field, 0)
        varint(UInt64(bitPattern: Int64(value)))
    }
    /// double (wire type 1, fixed64).
    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }
    /// float (wire type 5, fixed32).
    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        bytes += TFRecord.littleEndian(value.bitPattern)
    }
    /// bytes, string or an embedded message (wire type 2, length-delimited).
    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
}

/// Writes one TensorBoard event file, `events.out.tfevents.<unix seconds>.<host>.<pid>.<n>`, into
/// a folder that `tensorboard --logdir` (or any folder above it) reads.
///
/// Each event is appended with one `write` as it is added, so TensorBoard shows it while training
/// runs; `flush()` also forces it to disk. The file is an append-only log, not replaced as a whole,
/// so it is not written atomically: a crash or a full disk can cut off the last record, which
/// TensorBoard's reader skips, and every record before it stays readable.
public final class TensorBoardWriter {
    /// The event file.
    public let file: URL
    private var descriptor: Int32

    /// Creates `folder` when needed and a new event file in it, starting with the file-version
    /// event TensorBoard expects. Throws a `FileError` when the folder or file cannot be made.
    public init(folder: URL) throws {
        try createFolder(folder, purpose: "TensorBoard folder")
        (file, descriptor) = try Self.create(in: folder)
        var event = Self.event(step: 0)
        event.string(3, "brain.Event:2")
        try append(event)
    }

    deinit { if descriptor >= 0 { _ = closeDescriptor(descriptor) } }

    /// A file named as TensorBoard names its own; `n` counts up past files that exist already.
    private static func create(in folder: URL) throws -> (URL, Int32) {
        var host = [CChar](repeating: 0, count: 256)
        let named = gethostname(&host, host.count - 1) == 0
        let name = named ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let prefix = "events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(name.isEmpty ? "localhost" : name).\(getpid())"
        for n in 0..<1000 {
            let url = folder.appendingPathComponent("\(prefix).\(n)")
            let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 { return (url, fd) }
            if errno != EEXIST { throw FileError("create the TensorBoard event file", url.path, errno: errno) }
        }
        throw FileError(path: folder.path, message: "Cannot create a TensorBoard event file in \(folder.path): \(prefix).0 to .999 all exist.")
    }

    /// Logs `value` under `tag` (a chart in TensorBoard's Scalars tab) at `step`.
    public func addScalar(tag: String, value: Float, step: Int) throws {
        var summaryValue = ProtoWriter()
        summaryValue.string(1, tag)
        summaryValue.float(2, value)
        try appendSummary(summaryValue, step: step)
    }

    /// Logs `image` under `tag` (TensorBoard's Images tab) at `step`, encoded as PNG.
    public func addImage(tag: String, image: PixelImage, step: Int) throws {
        try addImage(tag: tag, png: image.png(), width: image.width, height: image.height,
                     colorspace: image.channels == 1 ? 1 : 3, step: step)
    }

    /// Logs an image already encoded (PNG, JPEG, ...) of `width × height` pixels; `colorspace` is
    /// summary.proto's: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
    public func addImage(tag: String, png: [UInt8], width: Int, height: Int, colorspace: Int = 3, step: Int) throws {
        var image = ProtoWriter()
        image.integer(1, height)
        image.integer(2, width)
        image.integer(3, colorspace)
        image.bytes(4, png)
        var summaryValue = ProtoWriter()
        summaryValue.string(1, tag)
        summaryValue.bytes(4, image.bytes)
        try appendSummary(summaryValue, step: step)
    }

    /// Forces what was written to disk (TensorBoard sees every event as soon as it is added).
    public func flush() throws {
        guard descriptor >= 0 else { return }
        if fsync(descriptor) != 0, errno != EINVAL { throw appendError(errno) }
    }

    /// Flushes and closes the file; adding an event afterwards throws. Closing twice does nothing.
    public func close() throws {
        guard descriptor >= 0 else { return }
        let fd = descriptor
        descriptor = -1
        let synced: Int32 = fsync(fd) == 0 || errno == EINVAL ? 0 : errno
        let closed: Int32 = closeDescriptor(fd) == 0 ? 0 : errno
        if synced != 0 || closed != 0 { throw appendError(synced != 0 ? synced : closed) }
    }

    /// An `Event` with the wall time and `step`.
    private static func event(step: Int) -> ProtoWriter {
        var event = ProtoWriter()
        event.double(1, Date().timeIntervalSince1970)
        event.integer(2, step)
        return event
    }

    /// An `Event` at `step` whose `Summary` holds the one `Summary.Value` given.
    private func appendSummary(_ value: ProtoWriter, step: Int) throws {
        var summary = ProtoWriter()
        summary.bytes(1, value.bytes)
        var event = Self.event(step: step)
        event.bytes(5, summary.bytes)
        try append(event)
    }

    private func append(_ event: ProtoWriter) throws {
        guard descriptor >= 0 else {
            throw FileError(path: file.path, message: "Cannot add to \(file.path): the TensorBoard writer is closed.")
        }
        let failure = TFRecord.frame(event.bytes).withUnsafeBytes { writeAll(descriptor, $0) }
        if failure != 0 { throw appendError(failure) }
    }

    private func appendError(_ code: Int32) -> FileError {
        let full = code == ENOSPC || code == EDQUOT || code == EFBIG
        return FileError("append to", file.path, reason: String(cString: strerror(code)),
                         hint: full ? "Free some space or choose another folder; the events written before are intact." : nil)
    }
}

/// `close(2)`, out of reach of the writer's own `close()`.
private func closeDescriptor(_ descriptor: Int32) -> Int32 { close(descriptor) }

/// A `Callback` that writes TensorBoard event files while `Trainer.fit` runs, named and stepped
/// as PyTorch Lightning's TensorBoardLogger does (the x axis is always the global step, the
/// optimizer steps taken so far):
///
/// - every `trainer.logEvery` steps (the loss is read back only then, since reading waits for the
///   device): `loss/train_step` (that step's batch loss) and `learning_rate`;
/// - after every epoch, at the epoch's last step: `loss/train`, `accuracy/train`, `loss/val`,
///   `accuracy/val` (those measured), `learning_rate` and `epoch` (counted from 1, which maps
///   steps to epochs);
/// - on request: `confusion_matrix` and `samples` images (`logConfusionMatrix`, `logSamples`).
///
/// `learning_rate` is the optimizer's rate when the logger runs: put it before an `LRScheduler`
/// in `callbacks` to log the rate each step used.
///
/// ```swift
/// let board = try TensorBoardLogger(folder: URL(fileURLWithPath: "runs/tb"))
/// let model = Sequential(try Linear(784, 10))
/// let trainer = Trainer(maxEpochs: 5, callbacks: [board], logEvery: 50)
/// try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try Adam(model.parameters),
///                 train: try DataLoader(MNISTDataset(split: .train), batchSize: 128))
/// try board.logConfusionMatrix([[50, 2], [3, 45]], step: trainer.globalStep)
/// try board.close()   // then: tensorboard --logdir runs/tb
/// ```
public final class TensorBoardLogger: Callback {
    /// The event file's writer (to log more scalars or images of your own).
    public let writer: TensorBoardWriter
    private var learningRateStep: Int?

    /// Writes a new event file into `folder` (created when needed).
    public init(folder: URL) throws {
        writer = try TensorBoardWriter(folder: folder)
    }

    /// Every `trainer.logEvery` steps: the batch loss and the learning rate.
    public func batchEnd(_ trainer: Trainer, step: Int, loss: Tensor) throws {
        guard step % max(1, trainer.logEvery) == 0 else { return }
        try writer.addScalar(tag: "loss/train_step", value: loss.item(), step: step)
        try logLearningRate(trainer, step: step)
    }

    /// The epoch's metrics, at the global step, flushed to disk.
    public func epochEnd(_ trainer: Trainer, epoch: Int, record: EpochRecord) throws {
        let step = trainer.globalStep
        let metrics: [(String, Double?)] = [("loss/train", record.trainLoss), ("accuracy/train", record.trainAccuracy),
                                            ("loss/val", record.validationLoss), ("accuracy/val", record.validationAccuracy),
                                            ("epoch", Double(record.epoch))]
        for case let (tag, value?) in metrics { try writer.addScalar(tag: tag, value: Float(value), step: step) }
        try logLearningRate(trainer, step: step)
        try writer.flush()
    }

    /// Flushes what was logged.
    public func fitEnd(_ trainer: Trainer) throws { try writer.flush() }

    /// Flushes what was logged before the signal.
    public func interrupted(_ trainer: Trainer, epoch: Int, batchesDone: Int) throws { try writer.flush() }

    /// The confusion matrix (rows: true class) as the `confusion_matrix` image (`PixelImage.confusionMatrix`).
    public func logConfusionMatrix(_ matrix: [[Int]], step: Int) throws {
        try writer.addImage(tag: "confusion_matrix", image: PixelImage.confusionMatrix(matrix), step: step)
    }

    /// Sample images with their predictions as the `samples` image (`PixelImage.sampleGrid`:
    /// a green border when correct, red when not).
    public func logSamples(images: [[Float]], predicted: [Int], truth: [Int], step: Int) throws {
        try writer.addImage(tag: "samples", image: PixelImage.sampleGrid(images: images, predicted: predicted, truth: truth),
                            step: step)
    }

    /// Flushes and closes the event file.
    public func close() throws { try writer.close() }

    /// `learning_rate` at `step`, once per step.
    private func logLearningRate(_ trainer: Trainer, step: Int) throws {
        guard let optimizer = trainer.optimizer, learningRateStep != step else { return }
        learningRateStep = step
        try writer.addScalar(tag: "learning_rate", value: optimizer.learningRate, step: step)
    }
}
