import Foundation
import KilnSupport

/// One IDX file (the format of MNIST and Fashion-MNIST), gzipped or plain, of unsigned bytes.
///
/// Layout: two zero bytes, the element type (`0x08` = unsigned byte), the number of dimensions,
/// each dimension as a big-endian `UInt32`, then the elements in row-major order. Whether the file
/// is gzipped is decided by its first bytes (`1f 8b`), not by its name.
///
/// Every size the header claims is checked against the data that is really there before an array
/// of that size is made, so a truncated, forged or corrupt file throws a `DataError` naming the
/// file instead of crashing or allocating without bound.
///
/// ```swift
/// let images = try IDXFile(contentsOf: MNISTDataset.defaultFolder.appendingPathComponent("t10k-images-idx3-ubyte.gz"))
/// print(images.dimensions)   // [10000, 28, 28]
/// ```
public struct IDXFile: Sendable, Equatable {
    /// The extent of each axis, outermost first (`[count, rows, cols]` for MNIST images).
    public let dimensions: [Int]
    /// The elements, row-major.
    public let bytes: [UInt8]

    /// The most element bytes one file may hold (1 GiB), whatever its header says.
    public static let maxBytes = 1 << 30

    /// Element types the IDX format defines, by their type byte, for error messages.
    static let typeNames: [UInt8: String] = [
        0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "16-bit integer", 0x0C: "32-bit integer",
        0x0D: "32-bit float", 0x0E: "64-bit float",
    ]

    /// An IDX file made in memory (for writing test files).
    public init(dimensions: [Int], bytes: [UInt8]) throws {
        guard dimensions.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }),
              dimensions.count >= 1, dimensions.count <= 255 else {
            throw DataError("IDX dimensions \(dimensions) are not 1 to 255 sizes that fit in UInt32")
        }
        // Multiply with overflow checks: the product of UInt32-sized axes can exceed Int.
        let product = dimensions.reduce(Optional(1)) { total, size in
            total.flatMap { let (p, overflow) = $0.multipliedReportingOverflow(by: size); return overflow ? nil : p }
        }
        guard product == bytes.count else {
            throw DataError("IDX dimensions \(dimensions) do not hold the \(bytes.count) bytes given")
        }
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// Reads the IDX file at `url` (gzipped or plain), refusing one whose header declares more
    /// than `maxBytes` of elements.
    public init(contentsOf url: URL, maxBytes: Int = IDXFile.maxBytes) throws {
        let data = try readRegularFile(url, what: "IDX file", limit: Self.maxBytes + (1 << 20))
        try self.init(data: data, name: url.path, maxBytes: maxBytes)
    }

    /// The dimensions the header of the IDX file at `url` declares, read (and checked) without
    /// decompressing or reading the elements, so a caller can judge the size before paying for it.
    public static func dimensions(contentsOf url: URL) throws -> [Int] {
        let data = try readRegularFile(url, what: "IDX file", limit: Self.maxBytes + (1 << 20))
        return try Header(data: data, name: url.path, maxBytes: Int.max).dimensions
    }

    /// Parses IDX `data` (gzipped or plain); `name` is the file name used in error messages.
    /// Elements are inflated in pieces, so gzip data that ends before its header's promise fails
    /// having allocated only what it held.
    public init(data: Data, name: String, maxBytes: Int = IDXFile.maxBytes) throws {
        var header = try Header(data: data, name: name, maxBytes: maxBytes)
        let (dimensions, expected, what) = (header.dimensions, header.elementBytes, header.what)
        var bytes: [UInt8] = []
        while bytes.count < expected {
            let piece = try header.source.read(min(expected - bytes.count, 1 << 24))
            if piece.isEmpty { break }
            bytes += piece
        }
        guard bytes.count == expected else {
            throw DataError("is truncated: dimensions \(dimensions) need \(expected) bytes of data but \(what) has only \(bytes.count) after the header",
                            file: name)
        }
        let extra = try header.source.read(1)
        guard extra.isEmpty else {
            throw DataError("has more data than dimensions \(dimensions) account for (\(expected) bytes)", file: name)
        }
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// The magic and dimensions of an IDX file, checked against the data that follows and the
    /// limit; `source` is left at the first element.
    struct Header {
        var source: ByteSource
        let dimensions: [Int], elementBytes: Int, what: String

        init(data: Data, name: String, maxBytes: Int) throws {
            guard !data.isEmpty else { throw DataError("is empty (0 bytes); expected an IDX file", file: name) }
            let gzipped = Gzip.isGzip(data)
            var source = ByteSource.plain(data, offset: 0)
            if gzipped { source = .gzip(try GzipReader(data: data, name: name), compressedBytes: data.count) }
            let what = gzipped ? "the decompressed data" : "the file"

            // Magic: 00 00 type rank.
            let magic = try source.read(4)
            guard magic.count == 4 else {
                throw DataError("is truncated: \(what) has \(magic.count) bytes, too few for the 4-byte IDX magic", file: name)
            }
            guard magic[0] == 0, magic[1] == 0 else {
                let hex = magic.map { String(format: "%02x", $0) }.joined(separator: " ")
                let hint = name.hasSuffix(".gz") && !gzipped ? " It is named .gz but is not gzip data either." : ""
                throw DataError("is not an IDX file: it starts with \(hex), expected 00 00 <type> <dimensions>.\(hint)", file: name)
            }
            guard magic[2] == 0x08 else {
                let type = String(format: "0x%02X", magic[2])
                if let known = IDXFile.typeNames[magic[2]] {
                    throw DataError("has IDX element type \(type) (\(known)); only unsigned bytes (0x08) are supported", file: name)
                }
                throw DataError("has an unknown IDX element type \(type); expected 0x08 (unsigned byte)", file: name)
            }
            let rank = Int(magic[3])
            guard rank >= 1 else { throw DataError("has an IDX header with 0 dimensions", file: name) }

            // Dimensions, big-endian UInt32 each.
            let header = try source.read(4 * rank)
            guard header.count == 4 * rank else {
                throw DataError("is truncated: the header declares \(rank) dimensions (\(4 * rank) bytes) but only \(header.count) bytes follow",
                                file: name)
            }
            let dimensions = (0..<rank).map { axis in
                header[4 * axis..<4 * axis + 4].reduce(0) { $0 << 8 | Int($1) }
            }
            var expected = 1
            for size in dimensions {
                let (product, overflow) = expected.multipliedReportingOverflow(by: size)
                guard !overflow, product <= maxBytes else {
                    throw DataError("declares dimensions \(dimensions), more than the \(maxBytes)-byte limit", file: name)
                }
                expected = product
            }

            // Check the claimed size against the data before making an array of that size.
            switch source {
            case .plain(let data, let offset):
                let remaining = data.count - offset
                guard remaining >= expected else {
                    throw DataError("is truncated: dimensions \(dimensions) need \(expected) bytes of data but only \(remaining) follow the header",
                                    file: name)
                }
                guard remaining == expected else {
                    throw DataError("has \(remaining - expected) bytes more than dimensions \(dimensions) account for (\(expected) bytes)",
                                    file: name)
                }
            case .gzip(_, let compressedBytes):
                guard expected <= compressedBytes * Gzip.maxRatio + 1024 else {
                    throw DataError("declares dimensions \(dimensions) (\(expected) bytes), more than \(compressedBytes) bytes of gzip data can hold",
                                    file: name)
                }
            }
            self.source = source
            self.dimensions = dimensions
            elementBytes = expected
            self.what = what
        }
    }

    /// The file's bytes: the header, then the elements (uncompressed).
    public func encoded() -> Data {
        var data = Data([0, 0, 0x08, UInt8(dimensions.count)])
        for size in dimensions {
            let value = UInt32(truncatingIfNeeded: size)
            data.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)])
        }
        data.append(contentsOf: bytes)
        return data
    }
}

/// Where IDX bytes come from: a plain file in memory, or a gzip stream inflated on demand.
enum ByteSource {
    case plain(Data, offset: Int)
    case gzip(GzipReader, compressedBytes: Int)

    /// Up to `count` bytes; fewer only at the end of the data.
    mutating func read(_ count: Int) throws -> [UInt8] {
        switch self {
        case .plain(let data, let offset):
            let end = min(data.count, offset + count)
            self = .plain(data, offset: end)
            return [UInt8](data[data.startIndex + offset..<data.startIndex + end])
        case .gzip(let reader, _):
            return try reader.read(count)
        }
    }
}
