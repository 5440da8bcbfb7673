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

    /// A tensor from raw bytes, taken as given (not checked against `shape`).
    public init(dtype: SafeTensorsDType, shape: [Int], data: Data) {
        self.dtype = dtype; self.shape = shape; self.data = data
    }

    /// A float32 tensor.
    public init(floats: [Float], shape: [Int]) {
        self.init(dtype: .F32, shape: shape, data: floats.withUnsafeBytes { Data($0) })
    }

    /// Elements in the tensor (1 for a scalar of shape []).
    public var count: Int {
        shape.reduce(1) { n, d in let (p, overflow) = n.multipliedReportingOverflow(by: d); return overflow ? Int.max : p }
    }

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

    /// The values as Int64 (integer types exactly; floats truncated toward zero).
    public func integers() -> [Int64] {
        data.withUnsafeBytes { raw -> [Int64] in
            switch dtype {
            case .I64: return (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
            case .I32: return (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            case .I16: return (0..<count).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
            case .I8: return (0..<count).map { Int64(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .U8, .BOOL: return (0..<count).map { Int64(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            default: return floats().map { Int64($0) }
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
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw SafeTensorsError(url.path, "cannot be read (\(error.localizedDescription)).")
        }
        try self.init(data: data, name: url.path)
    }

    /// Parses the bytes of a safetensors file; `name` appears in errors.
    public init(data: Data, name: String = "safetensors data") throws {
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(name, problem) }
        guard data.count >= 8 else { throw fail("is \(data.count) bytes long; a safetensors file starts with an 8-byte header length.") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes); the file is truncated or not safetensors.")
        }
        let dataStart = 8 + Int(headerLength)
        let header = data.subdata(in: data.startIndex + 8 ..< data.startIndex + dataStart)
        guard let json = try? JSONSerialization.jsonObject(with: header), let object = json as? [String: Any] else {
            throw fail("header is not a JSON object.")
        }
        let payload = data.count - dataStart
        var tensors: [String: SafeTensor] = [:]
        var metadata: [String: String] = [:]
        var ranges: [(Int, Int, String)] = []
        for (key, value) in object {
            if key == "__metadata__" {
                guard let map = value as? [String: Any] else { throw fail("__metadata__ is not a map of strings.") }
                for (k, v) in map {
                    guard let text = v as? String else { throw fail("__metadata__[\"\(k)\"] is not a string.") }
                    metadata[k] = text
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw fail("entry \"\(key)\" is not an object.") }
            guard let dtypeName = entry["dtype"] as? String else { throw fail("tensor \"\(key)\" has no dtype.") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("tensor \"\(key)\" has unknown dtype \"\(dtypeName)\" (known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", "))).")
            }
            guard let shapeValues = entry["shape"] as? [Any] else { throw fail("tensor \"\(key)\" has no shape.") }
            let shape = shapeValues.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor \"\(key)\" has an invalid shape \(shapeValues).")
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = (offsets[0] as? NSNumber)?.intValue, let end = (offsets[1] as? NSNumber)?.intValue else {
                throw fail("tensor \"\(key)\" needs data_offsets [begin, end].")
            }
            guard begin >= 0, begin <= end, end <= payload else {
                throw fail("tensor \"\(key)\" has data_offsets [\(begin), \(end)] outside the \(payload) data bytes.")
            }
            var elements = 1
            for d in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor \"\(key)\" has a shape \(shape) too large to address.") }
                elements = product
            }
            guard elements * dtype.size == end - begin else {
                throw fail("tensor \"\(key)\" of shape \(shape) and dtype \(dtype.rawValue) needs \(elements * dtype.size) bytes but its offsets span \(end - begin).")
            }
            ranges.append((begin, end, key))
            tensors[key] = SafeTensor(dtype: dtype, shape: shape,
                                      data: data.subdata(in: data.startIndex + dataStart + begin ..< data.startIndex + dataStart + end))
        }
        ranges.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.0 < a.1 {
            throw fail("tensors \"\(a.2)\" and \"\(b.2)\" overlap (bytes \(a.0)..<\(a.1) and \(b.0)..<\(b.1)).")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The file's bytes: tensors sorted by name, packed in that order.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            guard let tensor = tensors[name] else { continue }
            guard tensor.data.count == tensor.count * tensor.dtype.size else {
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
