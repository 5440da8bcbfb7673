import Foundation
import KilnSupport

/// A grayscale image in Netpbm's PGM format: binary (`P5`) or plain ASCII (`P2`), 8-bit
/// (maxval 1 to 255), any size. The format any image tool writes (`convert photo.jpg
/// -colorspace Gray photo.pgm`, GIMP, `pnmtopng`'s family), and the simplest way to bring your
/// own picture to a model trained on MNIST-like data.
///
/// Layout: the magic `P5` or `P2`, then width, height and maxval as decimal numbers separated by
/// whitespace (comments run from `#` to the end of the line), then one whitespace character and
/// the raster: `width × height` samples from the top-left corner, row by row, as bytes (`P5`) or
/// as decimal numbers separated by whitespace (`P2`). Every sample is at most maxval.
///
/// Reading is strict, and every size is checked before anything is allocated: the header is
/// parsed field by field, the pixel count is an overflow-checked product limited to `maxPixels`,
/// and the raster the header promises must be in the file. A file that breaks a rule throws a
/// one-line `DataError` naming the file and the rule. 16-bit PGM (maxval above 255) is refused
/// with a message saying so. A file may hold several images in a row (Netpbm allows it): the
/// first is read and the rest ignored.
///
/// ```swift
/// let image = try PGMImage(contentsOf: URL(fileURLWithPath: "shoe.pgm"))
/// let small = try image.resized(width: 28, height: 28)   // a box filter: each pixel averages its area
/// print(small.width, small.height, small.brightness.count)   // 28 28 784
/// ```
public struct PGMImage: Sendable, Equatable {
    /// Columns.
    public let width: Int
    /// Rows.
    public let height: Int
    /// The value of white (1 to 255); black is 0.
    public let maxValue: Int
    /// The samples, row by row from the top-left corner, each from 0 (black) to `maxValue` (white).
    public let pixels: [UInt8]

    /// The most pixels an image may have (2²⁸, a 16384 × 16384 square), whatever its header says.
    public static let maxPixels = 1 << 28

    /// An image of `width × height` `pixels` (row-major), each at most `maxValue`.
    /// Throws a `DataError` when the sizes, the count or a sample are out of range.
    public init(width: Int, height: Int, maxValue: Int = 255, pixels: [UInt8]) throws {
        guard width >= 1, height >= 1 else { throw DataError("PGMImage: a \(width)×\(height) image has no pixels") }
        guard (1...255).contains(maxValue) else { throw DataError("PGMImage: maxValue must be from 1 to 255, got \(maxValue)") }
        guard let count = checkedProduct([width, height]), count <= Self.maxPixels else {
            throw DataError("PGMImage: \(width)×\(height) is more than the \(Self.maxPixels) pixels an image may have")
        }
        guard pixels.count == count else {
            throw DataError("PGMImage: \(pixels.count) pixels do not make a \(width)×\(height) image")
        }
        if let bad = pixels.first(where: { Int($0) > maxValue }) {
            throw DataError("PGMImage: sample \(bad) is above the maxValue \(maxValue)")
        }
        self.width = width
        self.height = height
        self.maxValue = maxValue
        self.pixels = pixels
    }

    /// An 8-bit image (maxval 255) from brightness values in [0, 1] (clamped), row-major.
    public init(width: Int, height: Int, brightness: [Float]) throws {
        let samples = brightness.map { UInt8((min(max($0.isNaN ? 0 : $0, 0), 1) * 255).rounded()) }
        try self.init(width: width, height: height, maxValue: 255, pixels: samples)
    }

    /// Reads the PGM file at `url`.
    public init(contentsOf url: URL) throws {
        // A plain file spends at most four bytes a sample ("255 "), plus its header.
        let data = try readRegularFile(url, what: "PGM image", limit: 4 * Self.maxPixels + (1 << 20))
        try self.init(data: data, name: url.path)
    }

    /// Parses PGM `data`; `name` stands for the file in errors.
    public init(data: Data, name: String) throws {
        var reader = PGMReader(bytes: [UInt8](data), name: name)
        self = try reader.image()
    }

    /// Each sample as a brightness in [0, 1] (`sample × (1 / maxValue)`, row-major): the input a
    /// model trained on MNIST-like data expects, the same floats `MNISTDataset` makes of its bytes.
    public var brightness: [Float] {
        let scale = 1 / Float(maxValue)
        return pixels.map { Float($0) * scale }
    }

    /// The photographic negative: white becomes black (`maxValue − sample`).
    public func inverted() -> PGMImage {
        PGMImage(checkedWidth: width, height: height, maxValue: maxValue, pixels: pixels.map { UInt8(maxValue) - $0 })
    }

    /// The image scaled to `width × height` with a box filter: each new pixel is the average of
    /// the old pixels under its area, weighted by how much of each it covers (area averaging, good
    /// for shrinking; enlarging blends neighbouring pixels). The aspect ratio follows the new size.
    public func resized(width newWidth: Int, height newHeight: Int) throws -> PGMImage {
        guard newWidth >= 1, newHeight >= 1, let count = checkedProduct([newWidth, newHeight]), count <= Self.maxPixels,
              let between = checkedProduct([height, newWidth]), between <= Self.maxPixels else {
            throw DataError("PGMImage.resized: \(newWidth)×\(newHeight) is not a size from 1×1 to \(Self.maxPixels) pixels")
        }
        let columns = Self.boxWeights(from: width, to: newWidth), rows = Self.boxWeights(from: height, to: newHeight)
        // Columns first (height × newWidth), then rows.
        var across = [Double](repeating: 0, count: height * newWidth)
        for y in 0..<height {
            for (x, weights) in columns.enumerated() {
                across[y * newWidth + x] = weights.reduce(0) { $0 + $1.weight * Double(pixels[y * width + $1.index]) }
            }
        }
        var result = [UInt8](repeating: 0, count: count)
        for (y, weights) in rows.enumerated() {
            for x in 0..<newWidth {
                let value = weights.reduce(0) { $0 + $1.weight * across[$1.index * newWidth + x] }
                result[y * newWidth + x] = UInt8(min(max(value.rounded(), 0), Double(maxValue)))
            }
        }
        return PGMImage(checkedWidth: newWidth, height: newHeight, maxValue: maxValue, pixels: result)
    }

    /// For each of `target` new positions along an axis of `source` pixels: the old pixels it
    /// covers and the share of its width each covers (the shares add up to 1).
    static func boxWeights(from source: Int, to target: Int) -> [[(index: Int, weight: Double)]] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { position in
            let start = Double(position) * scale, end = Double(position + 1) * scale
            return (Int(start)..<min(source, Int(end.rounded(.up)))).compactMap { index in
                let overlap = min(end, Double(index + 1)) - max(start, Double(index))
                return overlap > 0 ? (index, overlap / scale) : nil
            }
        }
    }

    /// The image as a PGM file: binary (`P5`) by default, plain ASCII (`P2`) with `plain`.
    public func encoded(plain: Bool = false) -> Data {
        var data = Data("\(plain ? "P2" : "P5")\n\(width) \(height)\n\(maxValue)\n".utf8)
        guard plain else {
            data.append(contentsOf: pixels)
            return data
        }
        for row in 0..<height {
            let line = pixels[row * width..<(row + 1) * width].map(String.init).joined(separator: " ")
            data.append(contentsOf: Array((line + "\n").utf8))
        }
        return data
    }

    /// Writes the image as a PGM file (replacing the file at `url` only once it is complete).
    public func write(to url: URL, plain: Bool = false) throws {
        try writeAtomically(encoded(plain: plain), to: url)
    }

    /// An image whose fields are known to be valid.
    init(checkedWidth width: Int, height: Int, maxValue: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.maxValue = maxValue
        self.pixels = pixels
    }
}

/// Reads one PGM image from the bytes of a file, field by field.
struct PGMReader {
    let bytes: [UInt8]
    let name: String
    var position = 0

    init(bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }

    func fail(_ message: String) -> DataError { DataError(message, file: name) }

    mutating func image() throws -> PGMImage {
        let plain = try magic()
        let width = try number("the width")
        let height = try number("the height")
        let maxValue = try number("the maxval")
        guard width >= 1, height >= 1 else { throw fail("declares a \(width)×\(height) image; a PGM image is at least 1×1") }
        guard maxValue >= 1, maxValue <= 65535 else { throw fail("declares maxval \(maxValue); a PGM maxval is from 1 to 65535") }
        guard maxValue <= 255 else {
            throw fail("is a 16-bit PGM (maxval \(maxValue)); only 8-bit PGM (maxval 1 to 255) is read. Convert it, for example with `pamdepth 255`")
        }
        guard let count = checkedProduct([width, height]), count <= PGMImage.maxPixels else {
            throw fail("declares \(width)×\(height) pixels, more than the \(PGMImage.maxPixels) an image may have; the file is damaged or too large")
        }
        try endOfHeader()
        let pixels = plain ? try plainRaster(count, maxValue: maxValue) : try binaryRaster(count, maxValue: maxValue)
        return PGMImage(checkedWidth: width, height: height, maxValue: maxValue, pixels: pixels)
    }

    /// `P5` (binary, returns false) or `P2` (plain, returns true); a clear error for the other
    /// Netpbm formats and for anything else.
    mutating func magic() throws -> Bool {
        guard !bytes.isEmpty else { throw fail("is empty; a PGM file starts with P5 or P2") }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P") else { throw fail("is not a PGM file (it does not start with P5 or P2)") }
        position = 2
        switch bytes[1] {
        case UInt8(ascii: "5"): return false
        case UInt8(ascii: "2"): return true
        case UInt8(ascii: "1"), UInt8(ascii: "4"): throw fail("is a PBM (black-and-white bitmap) file; only PGM (P5 or P2) is read")
        case UInt8(ascii: "3"), UInt8(ascii: "6"): throw fail("is a PPM (colour) file; only grayscale PGM (P5 or P2) is read. Convert it, for example with `ppmtopgm`")
        case UInt8(ascii: "7"): throw fail("is a PAM file; only PGM (P5 or P2) is read")
        default: throw fail("is not a PGM file (it does not start with P5 or P2)")
        }
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)   // space, tab, LF, VT, FF, CR
    }

    static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

    /// Skips whitespace and comments (`#` to the end of the line).
    mutating func skipSeparators() {
        while position < bytes.count {
            if Self.isWhitespace(bytes[position]) {
                position += 1
            } else if bytes[position] == UInt8(ascii: "#") {
                while position < bytes.count, bytes[position] != 0x0A, bytes[position] != 0x0D { position += 1 }
            } else {
                return
            }
        }
    }

    /// `byte` as text for an error: the character when printable, else its code.
    static func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(UnicodeScalar(byte)))'" : String(format: "byte 0x%02X", byte)
    }

    /// The next header field: separators (at least one), then a decimal number.
    mutating func number(_ what: String) throws -> Int {
        let start = position
        skipSeparators()
        guard position < bytes.count else { throw fail("is truncated: the header ends before \(what)") }
        guard position > start else { throw fail("has \(Self.describe(bytes[position])) at byte \(position) where whitespace should come before \(what)") }
        guard Self.isDigit(bytes[position]) else {
            throw fail("has \(Self.describe(bytes[position])) at byte \(position) where \(what) (a decimal number) should be")
        }
        var value = 0
        while position < bytes.count, Self.isDigit(bytes[position]) {
            value = value * 10 + Int(bytes[position] - 0x30)
            guard value <= Int(Int32.max) else { throw fail("declares \(what) with more digits than any image has; the file is damaged") }
            position += 1
        }
        return value
    }

    /// The one whitespace character after maxval (or a comment ending in one), where the raster starts.
    mutating func endOfHeader() throws {
        guard position < bytes.count else { throw fail("is truncated: it ends after the header, before the pixels") }
        if bytes[position] == UInt8(ascii: "#") {
            while position < bytes.count, bytes[position] != 0x0A, bytes[position] != 0x0D { position += 1 }
            guard position < bytes.count else { throw fail("is truncated: it ends in a header comment, before the pixels") }
        }
        guard Self.isWhitespace(bytes[position]) else {
            throw fail("has \(Self.describe(bytes[position])) right after the maxval, where one whitespace character should end the header")
        }
        position += 1
    }

    /// `count` samples of one byte each.
    mutating func binaryRaster(_ count: Int, maxValue: Int) throws -> [UInt8] {
        let available = bytes.count - position
        guard available >= count else {
            throw fail("is truncated: the header declares \(count) pixels but only \(available) bytes of pixels follow it")
        }
        let pixels = Array(bytes[position..<position + count])
        if let bad = pixels.firstIndex(where: { Int($0) > maxValue }) {
            throw fail("has sample \(pixels[bad]) at pixel \(bad), above the maxval \(maxValue)")
        }
        position += count
        return pixels
    }

    /// `count` samples written as decimal numbers separated by whitespace (comments allowed).
    mutating func plainRaster(_ count: Int, maxValue: Int) throws -> [UInt8] {
        // Each sample takes at least a digit and a separator (the last no separator), so a file
        // too short for the count is refused before the array is made.
        let available = bytes.count - position
        guard count <= available / 2 + 1 else {
            throw fail("is truncated: the header declares \(count) pixels but only \(available) bytes of pixels follow it")
        }
        var pixels: [UInt8] = []
        pixels.reserveCapacity(count)
        while pixels.count < count {
            let start = position
            skipSeparators()
            guard position < bytes.count else {
                throw fail("is truncated: it ends after \(pixels.count) of the \(count) pixels its header declares")
            }
            guard pixels.isEmpty || position > start else {
                throw fail("has \(Self.describe(bytes[position])) at byte \(position) where whitespace should separate two pixels")
            }
            guard Self.isDigit(bytes[position]) else {
                throw fail("has \(Self.describe(bytes[position])) at byte \(position) where pixel \(pixels.count) (a decimal number) should be")
            }
            var value = 0
            while position < bytes.count, Self.isDigit(bytes[position]) {
                value = value * 10 + Int(bytes[position] - 0x30)
                guard value <= maxValue else { throw fail("has a sample above the maxval \(maxValue) at pixel \(pixels.count)") }
                position += 1
            }
            pixels.append(UInt8(value))
        }
        return pixels
    }
}
