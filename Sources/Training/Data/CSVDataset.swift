import Foundation
import KilnSupport

/// A column of a CSV file, by header name or by zero-based position.
/// String and integer literals convert: `targetColumn: "price"` or `targetColumn: 3`.
public enum CSVColumn: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    /// The column whose header cell is this name.
    case name(String)
    /// The column at this zero-based position.
    case index(Int)

    /// `.name(value)`.
    public init(stringLiteral value: String) { self = .name(value) }
    /// `.index(value)`.
    public init(integerLiteral value: Int) { self = .index(value) }
}

/// A table from a CSV file: numeric feature columns and one target column.
///
/// Fields are separated by `delimiter` (a comma by default); a field may be quoted (`"a, b"`, with
/// `""` for a quote inside); blank lines are skipped; the file may be gzipped (decided by its
/// content). Every feature cell must be a finite number. For `.classification` the target's
/// distinct values, sorted (numerically when all are numbers), become the classes `0, 1, …`; for
/// `.regression` the target must be numeric too.
///
/// ```swift
/// let houses = try CSVDataset(url: URL(fileURLWithPath: "houses.csv"), targetColumn: "price", task: .regression)
/// let iris = try CSVDataset(url: URL(fileURLWithPath: "iris.csv"), targetColumn: 4, task: .classification)
/// print(iris.classValues)   // ["setosa", "versicolor", "virginica"]
/// ```
public struct CSVDataset: Dataset, Sendable {
    /// What the target column holds.
    public enum Task: String, Sendable {
        /// A real value per row: targets are `.values(_, width: 1)`.
        case regression
        /// A class per row: targets are `.classes`, indices into `classValues`.
        case classification
    }

    /// The number of data rows.
    public let count: Int
    /// `[featureNames.count]`.
    public let featureShape: [Int]
    /// The feature cells, row-major `[count, features]`.
    public let inputs: [Float]
    /// Class indices or regression values, per `task`.
    public let targets: DatasetTargets
    /// The task the targets were read for.
    public let task: Task
    /// Every column's name: the header's cells, or `column 0`, `column 1`, … without a header.
    public let columnNames: [String]
    /// The names of the feature columns, in input order.
    public let featureNames: [String]
    /// The name of the target column.
    public let targetName: String
    /// For classification, the target value of each class index (sorted); empty for regression.
    public let classValues: [String]

    /// Reads the CSV file at `url` (plain or gzipped). Throws a `DataError` naming the file, and the
    /// row and column of a bad cell.
    public init(url: URL, targetColumn: CSVColumn, task: Task, hasHeader: Bool = true,
                delimiter: Character = ",") throws {
        let data = try readRegularFile(url, what: "CSV file", limit: Gzip.defaultLimit)
        let bytes = Gzip.isGzip(data) ? try Gzip.decompress(data, name: url.path) : [UInt8](data)
        try self.init(bytes: bytes, name: url.path, targetColumn: targetColumn, task: task, hasHeader: hasHeader,
                      delimiter: delimiter)
    }

    /// Parses CSV `text`; `name` stands for the file in error messages.
    public init(text: String, name: String = "CSV text", targetColumn: CSVColumn, task: Task,
                hasHeader: Bool = true, delimiter: Character = ",") throws {
        try self.init(bytes: Array(text.utf8), name: name, targetColumn: targetColumn, task: task,
                      hasHeader: hasHeader, delimiter: delimiter)
    }

    init(bytes: [UInt8], name: String, targetColumn: CSVColumn, task: Task, hasHeader: Bool,
         delimiter: Character) throws {
        guard let separator = delimiter.asciiValue, delimiter != "\"", delimiter != "\n", delimiter != "\r" else {
            throw DataError("the delimiter must be one ASCII character other than a quote or a line break, got \(delimiter.debugDescription)",
                            file: name)
        }
        var records = try CSVParser.parse(bytes, separator: separator, name: name)
        guard !records.isEmpty else { throw DataError("is empty: no rows", file: name) }

        // The header (or made-up names) fixes the number of columns.
        let width = records[0].fields.count
        let columnNames = hasHeader ? records.removeFirst().fields : (0..<width).map { "column \($0)" }
        guard !records.isEmpty else { throw DataError("has a header but no data rows", file: name) }
        for record in records where record.fields.count != width {
            throw DataError("row at line \(record.line) has \(record.fields.count) fields, expected \(width)"
                                + (hasHeader ? " (as the header has)" : " (as the first row has)"), file: name)
        }

        let target: Int
        switch targetColumn {
        case .name(let wanted):
            guard hasHeader else {
                throw DataError("a target column named \"\(wanted)\" needs a header row (hasHeader is false); give its index instead",
                                file: name)
            }
            guard let found = columnNames.firstIndex(of: wanted) else {
                throw DataError("has no column named \"\(wanted)\"; the columns are \(columnNames.joined(separator: ", "))", file: name)
            }
            target = found
        case .index(let index):
            guard index >= 0, index < width else {
                throw DataError("has no column \(index): it has \(width) columns (0 to \(width - 1))", file: name)
            }
            target = index
        }
        guard width >= 2 else {
            throw DataError("has only the target column; a dataset needs at least one feature column", file: name)
        }

        func number(_ cell: String, line: Int, column: Int) throws -> Float {
            let trimmed = cell.trimmingCharacters(in: .whitespaces)
            guard let value = Float(trimmed), value.isFinite else {
                let why = trimmed.isEmpty ? "is empty" : "\"\(cell)\" is not a finite number"
                throw DataError("row at line \(line), column \(column) (\"\(columnNames[column])\"): \(why)", file: name)
            }
            return value
        }

        var inputs: [Float] = []
        inputs.reserveCapacity(records.count * (width - 1))
        var rawTargets: [String] = []
        rawTargets.reserveCapacity(records.count)
        for record in records {
            for (column, cell) in record.fields.enumerated() where column != target {
                inputs.append(try number(cell, line: record.line, column: column))
            }
            rawTargets.append(record.fields[target].trimmingCharacters(in: .whitespaces))
        }

        switch task {
        case .regression:
            var values: [Float] = []
            values.reserveCapacity(records.count)
            for (record, cell) in zip(records, rawTargets) {
                values.append(try number(cell, line: record.line, column: target))
            }
            targets = .values(values, width: 1)
            classValues = []
        case .classification:
            if let blank = zip(records, rawTargets).first(where: { $0.1.isEmpty }) {
                throw DataError("row at line \(blank.0.line), column \(target) (\"\(columnNames[target])\"): the target is empty",
                                file: name)
            }
            let distinct = Array(Set(rawTargets))
            let numeric = distinct.compactMap { Double($0) }
            // Numbers sort as numbers (2 before 10); anything else sorts as text.
            let sorted = numeric.count == distinct.count
                ? distinct.sorted { (Double($0) ?? 0, $0) < (Double($1) ?? 0, $1) }
                : distinct.sorted()
            let index = Dictionary(uniqueKeysWithValues: sorted.enumerated().map { ($1, $0) })
            targets = .classes(rawTargets.map { index[$0] ?? 0 }, classes: sorted.count)
            classValues = sorted
        }
        count = records.count
        featureNames = columnNames.enumerated().filter { $0.offset != target }.map(\.element)
        featureShape = [width - 1]
        self.inputs = inputs
        self.task = task
        self.columnNames = columnNames
        targetName = columnNames[target]
    }
}

/// A small RFC 4180 reader: records of fields, each record with the line it starts on.
enum CSVParser {
    struct Record {
        var fields: [String]
        var line: Int
    }

    static func parse(_ bytes: [UInt8], separator: UInt8, name: String) throws -> [Record] {
        let quote = UInt8(ascii: "\""), newline = UInt8(ascii: "\n"), carriage = UInt8(ascii: "\r")
        var records: [Record] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1, recordLine = 1
        var inQuotes = false
        var quoteLine = 0
        var i = bytes.startIndex
        // Skip a UTF-8 byte-order mark.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i += 3 }

        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
        }
        func endRecord() {
            endField()
            // A line with nothing on it is a blank line, not a record of one empty field.
            if !(fields.count == 1 && fields[0].allSatisfy(\.isWhitespace)) {
                records.append(Record(fields: fields, line: recordLine))
            }
            fields.removeAll(keepingCapacity: true)
        }

        while i < bytes.endIndex {
            let byte = bytes[i]
            if inQuotes {
                if byte == quote {
                    if i + 1 < bytes.endIndex, bytes[i + 1] == quote {
                        field.append(quote)
                        i += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    if byte == newline { line += 1 }
                    field.append(byte)
                }
            } else if byte == quote, field.allSatisfy({ $0 == UInt8(ascii: " ") }) {
                field.removeAll(keepingCapacity: true)
                inQuotes = true
                quoteLine = line
            } else if byte == separator {
                endField()
            } else if byte == newline || byte == carriage {
                // \r\n, \n and a lone \r all end the record.
                if byte == carriage, i + 1 < bytes.endIndex, bytes[i + 1] == newline { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                field.append(byte)
            }
            i += 1
        }
        if inQuotes { throw DataError("a quoted field opened on line \(quoteLine) is never closed", file: name) }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        return records
    }
}
