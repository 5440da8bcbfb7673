import Foundation
import KilnSupport
import KilnDevice

/// A problem with a safetensors file: the message names the file and what is wrong.
public struct SafeTensorsError: Error, Sendable, CustomStringConvertible {
    /// The message: `file: problem`.
    public let description: String
    init(_ file: String, _ problem: String) { description = "\(file): \(problem)" }
}

/// The element types a safetensors file can hold that Kiln reads.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case F32, F64, I64, I32, U8, F16, BF16, I16, I8, BOOL

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64: 8
        case .F32, .I32: 4
        case .F16, .BF16, .I16: 2
        case .U8, .I8, .BOOL: 1
        }
    }
}

/// One tensor of a safetensors file: its type, shape and little-endian bytes.
public struct SafeTensor: Sendable, Equatable {
    /// The element type of `data`.
    public var dtype: SafeTensorsDType
    /// The dimensions ([] for a scalar).
    public var shape: [Int]
    /// The elements' little-endian bytes, in row-major order.
    public var data: Data

    /// A tensor from raw bytes. Throws unless `data` holds exactly the bytes `shape` and `dtype`
    /// need (sizes ≥ 0, products checked for overflow).
    public init(dtype: SafeTensorsDType, shape: [Int], data: Data) throws {
        guard let bytes = Self.byteCount(shape: shape, dtype: dtype) else {
            throw SafeTensorsError("tensor", "shape \(shape) of \(dtype.rawValue) is negative or too large to address.")
        }
        guard bytes == data.count else {
            throw SafeTensorsError("tensor", "shape \(shape) of \(dtype.rawValue) needs \(bytes) bytes, but \(data.count) were given.")
        }
        self.dtype = dtype; self.shape = shape; self.data = data
    }

    /// A tensor whose bytes are known to match (the reader checked them).
    init(checked dtype: SafeTensorsDType, shape: [Int], data: Data) {
        self.dtype = dtype; self.shape = shape; self.data = data
    }

    /// A float32 tensor. Throws when `floats.count` is not the product of `shape`.
    public init(floats: [Float], shape: [Int]) throws {
        try self.init(dtype: .F32, shape: shape, data: floats.withUnsafeBytes { Data($0) })
    }

    /// The bytes `shape` of `dtype` takes, or nil when a size is negative or the product overflows.
    public static func byteCount(shape: [Int], dtype: SafeTensorsDType) -> Int? {
        var total = dtype.size
        for d in shape {
            guard d >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            total = product
        }
        return total
    }

    /// Elements in the tensor (1 for a scalar of shape []); the initializers guarantee it matches
    /// the bytes.
    public var count: Int { data.count / dtype.size }

    /// The values as Float, converting from F32, F64, F16, BF16 or any integer type.
    public func floats() -> [Float] {
        data.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case .F32: return (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
            case .F64: return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case .F16: return (0..<count).map { Float(halfBits: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
            case .BF16:
                return (0..<count).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
            case .I64: return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .I32: return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .I16: return (0..<count).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
            case .I8: return (0..<count).map { Float(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .U8, .BOOL: return (0..<count).map { Float(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            }
        }
    }

    /// The values as Int64: integer types exactly; floats truncated toward zero, saturating at
    /// Int64's range (±∞ included), NaN as 0 — never a trap, whatever the file holds.
    public func integers() -> [Int64] {
        data.withUnsafeBytes { raw -> [Int64] in
            switch dtype {
            case .I64: return (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
            case .I32: return (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .I16: return (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
            case .I8: return (0..<count).map { Int64(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .U8, .BOOL: return (0..<count).map { Int64(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            default: return floats().map { $0.isNaN ? 0 : $0 >= 0x1p63 ? .max : $0 < -0x1p63 ? .min : Int64($0) }
            }
        }
    }
}

/// Reads and writes the safetensors format: an 8-byte little-endian header length N, N bytes of
/// JSON mapping names to `{"dtype", "shape", "data_offsets"}` (plus an optional `__metadata__`
/// map of strings), then the data. Reading is strict: it never trusts the header beyond the file.
public struct SafeTensorsFile: Sendable {
    /// The tensors by name.
    public var tensors: [String: SafeTensor]
    /// The `__metadata__` strings.
    public var metadata: [String: String]

    /// A file's contents in memory, empty by default; `write(to:)` saves it.
    public init(tensors: [String: SafeTensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors; self.metadata = metadata
    }

    /// Reads `url`, throwing `SafeTensorsError` for anything malformed.
    public init(contentsOf url: URL) throws {
        let data = try readRegularFile(url, what: "safetensors file")
        try self.init(data: data, name: url.path)
    }

    /// The largest header the reader accepts (the reference implementation's limit): 100 MB.
    public static let maxHeaderBytes = 100_000_000

    /// Parses the bytes of a safetensors file by the format's rules; `name` appears in errors.
    /// The header must be at most `maxHeaderBytes` of UTF-8 JSON, an object whose entries are
    /// tensors (`dtype` one of the known types, `shape` and `data_offsets` integers ≥ 0) and an
    /// optional `__metadata__` map of strings; the tensors' byte ranges must match their shapes and
    /// tile the data section exactly, without gaps or overlaps. Every size is checked (with overflow
    /// checks) before anything is copied.
    public init(data: Data, name: String = "safetensors data") throws {
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(name, problem) }
        guard data.count >= 8 else { throw fail("is \(data.count) bytes long; a safetensors file starts with an 8-byte header length.") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw fail("declares a \(headerLength)-byte header, over the \(Self.maxHeaderBytes)-byte limit; the file is damaged or not safetensors.")
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes); the file is truncated or not safetensors.")
        }
        let dataStart = 8 + Int(headerLength)
        let header = data.subdata(in: data.startIndex + 8 ..< data.startIndex + dataStart)
        guard String(bytes: header, encoding: .utf8) != nil else { throw fail("header is not UTF-8 text; the file is damaged or not safetensors.") }
        guard header.first == UInt8(ascii: "{") else {
            throw fail("header does not start with \"{\" (a JSON object); the header length is wrong or the file is not safetensors.")
        }
        let entries: SafeTensorsHeader
        do { entries = try JSONDecoder().decode(SafeTensorsHeader.self, from: header) } catch let error as SafeTensorsHeader.Problem {
            throw fail(error.text)
        } catch {
            throw fail("header is not valid JSON (\(Self.describe(error))); the header length is wrong or the file is damaged.")
        }
        if let repeated = SafeTensorsHeader.firstRepeatedKey(header) {
            throw fail("header repeats the key \"\(repeated)\"; readers disagree on which one counts, so the file is refused.")
        }
        let payload = data.count - dataStart
        var tensors: [String: SafeTensor] = [:]
        var ranges: [(begin: Int, end: Int, name: String)] = []
        for (key, entry) in entries.tensors {
            guard let dtype = SafeTensorsDType(rawValue: entry.dtype) else {
                throw fail("tensor \"\(key)\" has unknown dtype \"\(entry.dtype)\" (known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", "))).")
            }
            guard entry.shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \"\(key)\" has a negative size in its shape \(entry.shape).") }
            guard entry.offsets.count == 2 else { throw fail("tensor \"\(key)\" needs data_offsets [begin, end], got \(entry.offsets).") }
            let (begin, end) = (entry.offsets[0], entry.offsets[1])
            guard begin >= 0, begin <= end, end <= payload else {
                throw fail("tensor \"\(key)\" has data_offsets [\(begin), \(end)] outside the \(payload) data bytes.")
            }
            guard let bytes = SafeTensor.byteCount(shape: entry.shape, dtype: dtype) else {
                throw fail("tensor \"\(key)\" has a shape \(entry.shape) too large to address.")
            }
            guard bytes == end - begin else {
                throw fail("tensor \"\(key)\" of shape \(entry.shape) and dtype \(dtype.rawValue) needs \(bytes) bytes but its offsets span \(end - begin).")
            }
            ranges.append((begin, end, key))
        }
        // The ranges must cover the data section exactly: sorted, each begins where the last ended.
        ranges.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var covered = 0
        for range in ranges {
            guard range.begin == covered else {
                throw range.begin < covered
                    ? fail("tensor \"\(range.name)\" (bytes \(range.begin)..<\(range.end)) overlaps the tensor before it, which ends at byte \(covered).")
                    : fail("has \(range.begin - covered) bytes that belong to no tensor before tensor \"\(range.name)\" (bytes \(covered)..<\(range.begin)); the header length or offsets are wrong.")
            }
            covered = range.end
        }
        guard covered == payload else {
            throw fail("has \(payload - covered) bytes after the last tensor's data (the tensors cover \(covered) of \(payload)); the header length or offsets are wrong.")
        }
        for range in ranges {
            guard let entry = entries.tensors[range.name], let dtype = SafeTensorsDType(rawValue: entry.dtype) else { continue }
            tensors[range.name] = SafeTensor(checked: dtype, shape: entry.shape,
                                             data: data.subdata(in: data.startIndex + dataStart + range.begin ..< data.startIndex + dataStart + range.end))
        }
        self.tensors = tensors
        self.metadata = entries.metadata
    }

    /// A decoding error in a few words (the key path and what was expected).
    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "\"\($0.stringValue)\"" }.joined(separator: " ")
            return (path.isEmpty ? "" : path + ": ") + context.debugDescription
        default:
            return "\(error)"
        }
    }

    /// The file's bytes: tensors sorted by name, packed in that order.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            guard let tensor = tensors[name] else { continue }
            guard SafeTensor.byteCount(shape: tensor.shape, dtype: tensor.dtype) == tensor.data.count else {
                throw SafeTensorsError(name, "holds \(tensor.data.count) bytes for shape \(tensor.shape) of \(tensor.dtype.rawValue).")
            }
            header[name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape,
                            "data_offsets": [offset, offset + tensor.data.count]] as [String: Any]
            offset += tensor.data.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count)
        for _ in 0..<8 { out.append(UInt8(length & 0xff)); length >>= 8 }
        out.append(json)
        for name in names { if let tensor = tensors[name] { out.append(tensor.data) } }
        return out
    }

    /// Writes the file to a temporary name and renames it, so a crash never leaves half a file.
    public func write(to url: URL) throws {
        try writeAtomically(try serialized(), to: url)
    }
}

/// The JSON header of a safetensors file, decoded strictly: integers must be integers, metadata
/// values strings.
struct SafeTensorsHeader: Decodable {
    /// One tensor's entry.
    struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let offsets: [Int]
        enum CodingKeys: String, CodingKey { case dtype, shape, offsets = "data_offsets" }
    }
    /// A problem the decoder found, in words for the error message.
    struct Problem: Error { let text: String }
    struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    var tensors: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    /// The first key that an object of the (valid) JSON `text` holds twice, or nil. A decoder keeps
    /// one of the two silently, and readers disagree on which.
    static func firstRepeatedKey(_ text: Data) -> String? {
        let bytes = [UInt8](text)
        var objects: [(keys: Set<String>, expectingKey: Bool)?] = []   // nil for arrays
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"): objects.append(([], true))
            case UInt8(ascii: "["): objects.append(nil)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !objects.isEmpty { objects.removeLast() }
            case UInt8(ascii: ","): if let last = objects.indices.last, objects[last] != nil { objects[last]?.expectingKey = true }
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if let last = objects.indices.last, let object = objects[last], object.expectingKey {
                    let raw = Data(bytes[start...min(i, bytes.count - 1)])
                    let key = (try? JSONDecoder().decode(String.self, from: raw)) ?? String(decoding: raw, as: UTF8.self)
                    if object.keys.contains(key) { return key }
                    objects[last]?.keys.insert(key)
                    objects[last]?.expectingKey = false
                }
            default: break
            }
            i += 1
        }
        return nil
    }

    init(from decoder: Decoder) throws {
        let container: KeyedDecodingContainer<Key>
        do { container = try decoder.container(keyedBy: Key.self) } catch { throw Problem(text: "header is not a JSON object.") }
        for key in container.allKeys {
            if key.stringValue == "__metadata__" {
                do { metadata = try container.decode([String: String].self, forKey: key) } catch {
                    throw Problem(text: "__metadata__ is not a map of strings (\(SafeTensorsFile.describe(error))).")
                }
                continue
            }
            do { tensors[key.stringValue] = try container.decode(Entry.self, forKey: key) } catch {
                throw Problem(text: "tensor \"\(key.stringValue)\" is not {\"dtype\": text, \"shape\": [integers], \"data_offsets\": [begin, end]} (\(SafeTensorsFile.describe(error))).")
            }
        }
    }
}

extension Float {
    /// Converts IEEE half-precision bits.
    init(halfBits h: UInt16) {
        let sign = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1f)
        let mantissa = UInt32(h & 0x3ff)
        if exponent == 0 {
            self = (sign != 0 ? -1 : 1) * Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        } else if exponent == 31 {
            self = Float(bitPattern: sign | 0x7f80_0000 | (mantissa << 13))
        } else {
            self = Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
        }
    }
}
