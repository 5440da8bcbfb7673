import Foundation
import KilnSupport
import KilnDevice

/// What happened in one epoch of training: losses, accuracies, time and learning rate.
///
/// Accuracies are fractions of correct samples (`0...1`). `nil` means "not measured this epoch"
/// (no validation set, or validation only every few epochs).
public struct EpochRecord: Codable, Sendable, Equatable {
    /// The epoch number, counted from 1.
    public var epoch: Int
    /// The mean training loss over the epoch.
    public var trainLoss: Double
    /// The fraction of training samples classified correctly, if measured.
    public var trainAccuracy: Double?
    /// The mean validation loss, if measured.
    public var validationLoss: Double?
    /// The fraction of validation samples classified correctly, if measured.
    public var validationAccuracy: Double?
    /// Wall-clock seconds the epoch took.
    public var seconds: Double
    /// Training samples processed per second.
    public var samplesPerSecond: Double
    /// The learning rate in effect at the end of the epoch.
    public var learningRate: Double

    /// Makes a record; the optional metrics default to "not measured".
    public init(epoch: Int, trainLoss: Double, trainAccuracy: Double? = nil, validationLoss: Double? = nil,
                validationAccuracy: Double? = nil, seconds: Double, samplesPerSecond: Double,
                learningRate: Double) {
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.validationLoss = validationLoss
        self.validationAccuracy = validationAccuracy
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
        self.learningRate = learningRate
    }

    /// The metric names `value(of:)` and `History.best(metric:mode:)` understand, in the order
    /// of the CSV columns (after `epoch`).
    public static let metricNames = [
        "train_loss", "train_accuracy", "val_loss", "val_accuracy",
        "seconds", "samples_per_second", "learning_rate",
    ]

    /// The value of the metric called `name` (`"train_loss"`, `"val_accuracy"`, ...; see
    /// `metricNames`), or `nil` when it was not measured or the name is unknown.
    /// `"validation_loss"` and `"validation_accuracy"` are accepted too.
    public func value(of name: String) -> Double? {
        switch name {
        case "epoch": return Double(epoch)
        case "train_loss": return trainLoss
        case "train_accuracy": return trainAccuracy
        case "val_loss", "validation_loss": return validationLoss
        case "val_accuracy", "validation_accuracy": return validationAccuracy
        case "seconds": return seconds
        case "samples_per_second": return samplesPerSecond
        case "learning_rate": return learningRate
        default: return nil
        }
    }

    // snake_case keys, so the file reads naturally from Python (pandas, json).
    enum CodingKeys: String, CodingKey {
        case epoch
        case trainLoss = "train_loss"
        case trainAccuracy = "train_accuracy"
        case validationLoss = "val_loss"
        case validationAccuracy = "val_accuracy"
        case seconds
        case samplesPerSecond = "samples_per_second"
        case learningRate = "learning_rate"
    }

    // JSON has no NaN or infinity, and a diverged run (loss = NaN) must still be saved; so a
    // missing or non-finite value is written as `null`, and `null` reads back as `nil` (or NaN for
    // the fields that are always present). Every key is written, so the schema never changes.
    /// Writes every field; missing and non-finite values become `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(epoch, forKey: .epoch)
        try container.encode(Self.finite(trainLoss), forKey: .trainLoss)
        try container.encode(Self.finite(trainAccuracy), forKey: .trainAccuracy)
        try container.encode(Self.finite(validationLoss), forKey: .validationLoss)
        try container.encode(Self.finite(validationAccuracy), forKey: .validationAccuracy)
        try container.encode(Self.finite(seconds), forKey: .seconds)
        try container.encode(Self.finite(samplesPerSecond), forKey: .samplesPerSecond)
        try container.encode(Self.finite(learningRate), forKey: .learningRate)
    }

    /// Reads what `encode(to:)` writes; `null` or absent values become `nil` (NaN for the
    /// non-optional fields).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        epoch = try container.decode(Int.self, forKey: .epoch)
        trainLoss = try container.decodeIfPresent(Double.self, forKey: .trainLoss) ?? .nan
        trainAccuracy = try container.decodeIfPresent(Double.self, forKey: .trainAccuracy)
        validationLoss = try container.decodeIfPresent(Double.self, forKey: .validationLoss)
        validationAccuracy = try container.decodeIfPresent(Double.self, forKey: .validationAccuracy)
        seconds = try container.decodeIfPresent(Double.self, forKey: .seconds) ?? .nan
        samplesPerSecond = try container.decodeIfPresent(Double.self, forKey: .samplesPerSecond) ?? .nan
        learningRate = try container.decodeIfPresent(Double.self, forKey: .learningRate) ?? .nan
    }

    private static func finite(_ value: Double?) -> Double? {
        guard let value, value.isFinite else { return nil }
        return value
    }
}

/// Whether the best value of a metric is the smallest or the largest.
public enum MetricMode: String, Codable, Sendable {
    /// Smaller is better (losses, seconds).
    case min
    /// Larger is better (accuracies, throughput).
    case max

    /// The usual direction for a metric: `max` for accuracies and throughput, `min` otherwise.
    public static func natural(for metric: String) -> MetricMode {
        metric.hasSuffix("accuracy") || metric == "samples_per_second" ? .max : .min
    }
}

/// The per-epoch records of a training run, with writers for `history.json` and `history.csv`.
///
/// ```swift
/// var history = History()
/// history.append(EpochRecord(epoch: 1, trainLoss: 0.41, validationAccuracy: 0.93,
///                            seconds: 12.5, samplesPerSecond: 4800, learningRate: 1e-3))
/// let folder = URL(fileURLWithPath: "runs/demo")
/// try history.writeJSON(to: folder.appendingPathComponent("history.json"))
/// try history.writeCSV(to: folder.appendingPathComponent("history.csv"))
/// let best = history.best(metric: "val_accuracy")   // the epoch to keep
/// ```
public struct History: Codable, Sendable, Equatable {
    /// One record per epoch, in the order they were appended.
    public var records: [EpochRecord]

    /// A history holding `records` (empty by default).
    public init(records: [EpochRecord] = []) {
        self.records = records
    }

    /// Reads a history written by `writeJSON(to:)`, e.g. to resume training.
    public init(contentsOf url: URL) throws {
        let data = try readRegularFile(url, what: "history file", limit: 1 << 28)
        self = try JSONDecoder().decode(History.self, from: data)
    }

    /// Adds the record of one more epoch.
    public mutating func append(_ record: EpochRecord) {
        records.append(record)
    }

    /// The record with the best value of `metric` (see `EpochRecord.metricNames`), or `nil` when
    /// no epoch has a finite value for it. `mode` defaults to the metric's natural direction
    /// (`max` for accuracies and throughput, `min` for the rest). On a tie the earliest epoch wins.
    public func best(metric: String, mode: MetricMode? = nil) -> EpochRecord? {
        let mode = mode ?? MetricMode.natural(for: metric)
        var best: (record: EpochRecord, value: Double)?
        for record in records {
            guard let value = record.value(of: metric), value.isFinite else { continue }
            if let current = best {
                let better = mode == .min ? value < current.value : value > current.value
                if !better { continue }
            }
            best = (record, value)
        }
        return best?.record
    }

    // The file is `{"epochs": [...]}` rather than a bare array, so fields can be added later.
    enum CodingKeys: String, CodingKey {
        case records = "epochs"
    }

    /// The `history.json` contents: `{"epochs": [{"epoch": 1, "train_loss": ..., ...}, ...]}`,
    /// pretty-printed with sorted keys; missing and non-finite values are `null`.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// The `history.csv` contents: a header line, then one row per epoch. A value that was not
    /// measured is an empty cell; NaN and infinities are written `nan`, `inf`, `-inf` (which
    /// pandas and Python's `float` read back).
    public func csvString() -> String {
        var lines = ["epoch," + EpochRecord.metricNames.joined(separator: ",")]
        for record in records {
            let cells = [String(record.epoch)] + EpochRecord.metricNames.map { name in
                record.value(of: name).map { "\($0)" } ?? ""
            }
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `jsonData()` to `url` atomically (a crash never leaves half a file).
    public func writeJSON(to url: URL) throws {
        try writeAtomically(jsonData(), to: url)
    }

    /// Writes `csvString()` to `url` atomically.
    public func writeCSV(to url: URL) throws {
        try writeAtomically(Data(csvString().utf8), to: url)
    }
}
