import CZlib
import Foundation

/// Gzip detection and bounded decompression of bytes in memory, through the system zlib.
///
/// ```swift
/// let url = MNISTDataset.defaultFolder.appendingPathComponent("t10k-labels-idx1-ubyte.gz")
/// let data = try Data(contentsOf: url)
/// let bytes = Gzip.isGzip(data) ? try Gzip.decompress(data, name: url.path) : [UInt8](data)
/// ```
public enum Gzip {
    /// The most any caller gets back from one file unless it asks for more: 1 GiB, so a gzip bomb
    /// fails with a `DataError` instead of exhausting memory.
    public static let defaultLimit = 1 << 30

    /// The largest expansion deflate can achieve (about 1032 : 1). A header that promises more
    /// decompressed bytes than `compressed × maxRatio` cannot be honest, so readers reject it
    /// before allocating anything.
    public static let maxRatio = 1032

    /// Whether `data` starts with the gzip magic bytes `1f 8b` (the content decides, not the name).
    public static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
    }

    /// The whole decompressed content of the gzip `data` (every member of a multi-member file).
    /// Throws a `DataError` naming `name` when the data is corrupt, truncated, or would decompress
    /// to more than `limit` bytes.
    public static func decompress(_ data: Data, name: String, limit: Int = defaultLimit) throws -> [UInt8] {
        let reader = try GzipReader(data: data, name: name)
        var output: [UInt8] = []
        let chunk = 1 << 20
        while true {
            // Ask for one byte past the limit so "exactly the limit" and "more" can be told apart.
            let want = min(chunk, limit + 1 - output.count)
            let piece = try reader.read(want)
            output += piece
            if output.count > limit {
                throw DataError("decompresses to more than \(limit) bytes (the limit); refusing to read it", file: name)
            }
            if piece.count < want { return output }
        }
    }

    /// `bytes` as one gzip member (zlib's default level), e.g. to write `.gz` data files.
    public static func compress(_ bytes: [UInt8]) throws -> Data {
        guard bytes.count < 1 << 31 else { throw DataError("Gzip.compress takes less than 2 GiB at a time, got \(bytes.count) bytes") }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer { stream.deinitialize(count: 1); stream.deallocate() }
        // 15 + 16: a 32 KiB window with a gzip header; memory level 8 is zlib's default.
        var status = deflateInit2_(stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                   ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw DataError("zlib could not start compressing (deflateInit2 returned \(status))") }
        defer { deflateEnd(stream) }
        var input = bytes
        var output = [UInt8](repeating: 0, count: Int(deflateBound(stream, uLong(bytes.count))) + 32)
        var written = 0
        input.withUnsafeMutableBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer in
                stream.pointee.next_in = inBuffer.baseAddress
                stream.pointee.avail_in = uInt(inBuffer.count)
                stream.pointee.next_out = outBuffer.baseAddress
                stream.pointee.avail_out = uInt(outBuffer.count)
                // The output holds deflateBound bytes, so one call with Z_FINISH completes the stream.
                status = deflate(stream, Z_FINISH)
                written = outBuffer.count - Int(stream.pointee.avail_out)
            }
        }
        guard status == Z_STREAM_END else { throw DataError("zlib could not compress \(bytes.count) bytes (deflate returned \(status))") }
        return Data(output[..<written])
    }
}

/// Decompresses gzip bytes in memory incrementally: each `read(_:)` inflates only as much as asked,
/// so the caller decides (from a header it has already checked) how much memory to spend.
public final class GzipReader {
    /// The name used in error messages (usually the file's path).
    public let name: String
    private let input: Data
    private var consumed = 0            // bytes of `input` zlib has used
    private var finished = false        // the last member has ended
    private let stream: UnsafeMutablePointer<z_stream>
    /// Decompressed bytes handed out so far.
    public private(set) var produced = 0

    /// Starts decompressing `data`, which must begin with the gzip magic bytes.
    public init(data: Data, name: String) throws {
        self.name = name
        guard Gzip.isGzip(data) else {
            throw DataError("is not gzip data (it does not start with the bytes 1f 8b)", file: name)
        }
        input = data
        // zlib keeps a pointer back to the z_stream in its state, so the stream must never move:
        // it lives in memory of its own rather than in a Swift property.
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 15 + 16: a 32 KiB window, and expect a gzip (not zlib) header.
        let status = inflateInit2_(stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw DataError("zlib could not start decompressing (inflateInit2 returned \(status))", file: name)
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Up to `count` more decompressed bytes; fewer only when the data has ended.
    /// Throws a `DataError` when the data is corrupt or ends in the middle of a gzip stream.
    public func read(_ count: Int) throws -> [UInt8] {
        guard count > 0, !finished else { return [] }
        var output = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count, !finished {
            let before = (consumed, filled)
            let status = input.withUnsafeBytes { (inBytes: UnsafeRawBufferPointer) -> Int32 in
                output.withUnsafeMutableBytes { (outBytes: UnsafeMutableRawBufferPointer) -> Int32 in
                    // zlib counts in UInt32, so very large spans go in pieces of at most 1 GiB.
                    let inLeft = min(inBytes.count - consumed, 1 << 30)
                    let outLeft = min(count - filled, 1 << 30)
                    guard let inBase = inBytes.baseAddress, let outBase = outBytes.baseAddress else { return Z_STREAM_ERROR }
                    stream.pointee.next_in = UnsafeMutablePointer(
                        mutating: inBase.advanced(by: consumed).assumingMemoryBound(to: Bytef.self))
                    stream.pointee.avail_in = uInt(inLeft)
                    stream.pointee.next_out = outBase.advanced(by: filled).assumingMemoryBound(to: Bytef.self)
                    stream.pointee.avail_out = uInt(outLeft)
                    let status = inflate(stream, Z_NO_FLUSH)
                    consumed += inLeft - Int(stream.pointee.avail_in)
                    filled += outLeft - Int(stream.pointee.avail_out)
                    stream.pointee.next_in = nil
                    stream.pointee.next_out = nil
                    return status
                }
            }
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                try endOfMember()
            case Z_BUF_ERROR:
                // No progress was possible: with all of the input available, that means it ran out.
                if consumed >= input.count || before == (consumed, filled) {
                    throw DataError("the gzip data ends early (the file is truncated) after \(produced + filled) decompressed bytes",
                                    file: name)
                }
                continue
            case Z_DATA_ERROR, Z_NEED_DICT:
                throw DataError("the gzip data is corrupt (zlib: \(message(status)))", file: name)
            case Z_MEM_ERROR:
                throw DataError("zlib ran out of memory while decompressing", file: name)
            default:
                throw DataError("zlib failed while decompressing (\(message(status)))", file: name)
            }
        }
        produced += filled
        if filled < count { output.removeSubrange(filled...) }
        return output
    }

    /// At the end of one gzip member: go on with the next member when another follows (as `gzip`
    /// does for concatenated files), stop at the end of the data or at zero padding, and reject
    /// anything else after it.
    private func endOfMember() throws {
        let rest = input.dropFirst(consumed)
        if rest.isEmpty || rest.allSatisfy({ $0 == 0 }) {
            finished = true
            return
        }
        guard Gzip.isGzip(Data(rest.prefix(2))) else {
            throw DataError("has \(rest.count) bytes of unexpected data after the end of the gzip stream", file: name)
        }
        let status = inflateReset(stream)
        guard status == Z_OK else {
            throw DataError("zlib could not restart for the next gzip member (\(message(status)))", file: name)
        }
    }

    private func message(_ status: Int32) -> String {
        if let text = stream.pointee.msg { return String(cString: text) }
        return "status \(status)"
    }
}
