import Foundation

/// Where a command's output goes. With `--json`, stdout carries JSON Lines only — one object per
/// line, each with a `"type"` saying which kind of record it is — and every line meant for a
/// person goes to stderr; without it, the human lines go to stdout. Lines are flushed as they are
/// written, so a pipe or a log file is current while a command runs.
///
/// ```swift
/// let console = Console(json: true)
/// console.say("Device: cpu")                                    // stderr: a person reads it
/// try console.emit(["type": "result", "test_accuracy": 0.875])  // stdout: {"test_accuracy":0.875,"type":"result"}
/// ```
public struct Console: Sendable {
    /// Whether stdout is JSON Lines.
    public let json: Bool
    /// Whether nothing is written at all (the processes of a data-parallel run other than rank 0).
    public let silent: Bool

    /// A console writing JSON Lines to stdout (and human lines to stderr) when `json` is set, and
    /// nothing when `silent` is.
    public init(json: Bool, silent: Bool = false) { (self.json, self.silent) = (json, silent) }

    /// Writes a line for a person: to stdout, or to stderr in JSON mode.
    public func say(_ line: String) {
        guard !silent else { return }
        FileHandle(fileDescriptor: json ? STDERR_FILENO : STDOUT_FILENO).write(Data((line + "\n").utf8))
    }

    /// Writes `object` as one line of JSON to stdout (in JSON mode only; otherwise nothing).
    /// Keys are sorted; a non-finite number becomes `null`, as JSON has no NaN.
    public func emit(_ object: [String: Any]) throws {
        try write(Console.jsonSafe(object))
    }

    /// Writes an `Encodable` record as one line of JSON with `"type": type` added.
    public func emit<Record: Encodable>(_ record: Record, type: String) throws {
        guard json else { return }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data = try encoder.encode(record)
        guard var object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EncodingError.invalidValue(record, .init(codingPath: [], debugDescription: "A JSON Lines record must be an object."))
        }
        object["type"] = type
        try write(object)
    }

    private func write(_ object: Any) throws {
        guard json, !silent else { return }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// `value` with every non-finite `Double` or `Float` replaced by `NSNull`, at any depth (for
    /// values built in Swift; numbers decoded by Foundation are `NSNumber`s and pass unchanged).
    static func jsonSafe(_ value: Any) -> Any {
        switch value {
        case let number as Double: return number.isFinite ? number : NSNull()
        case let number as Float: return number.isFinite ? Double(number) : NSNull()
        case let array as [Any]: return array.map(jsonSafe)
        case let object as [String: Any]: return object.mapValues(jsonSafe)
        default: return value
        }
    }
}
