import CZlib
import Foundation
import KilnSupport

/// An 8-bit image in memory, gray (1 channel) or RGB (3 channels), rows top to bottom: what
/// `TensorBoardWriter.addImage` logs, with a small PNG encoder (zlib from the system) and the two
/// pictures of a run drawn as pixels: the confusion matrix and a grid of sample predictions.
public struct PixelImage: Sendable, Equatable {
    /// The size in pixels, and the channels per pixel (1: gray, 3: RGB).
    public let width: Int, height: Int, channels: Int
    /// `height` rows of `width × channels` bytes.
    public var pixels: [UInt8]

    /// The largest width or height accepted (PNG allows more; TensorBoard shows less).
    public static let maxSide = 1 << 14

    /// An image of `pixels` (`height` rows of `width × channels` bytes); throws a `TrainingError`
    /// for a size out of `1...maxSide`, a channel count other than 1 or 3, or a pixel count that
    /// does not match.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard (1...Self.maxSide).contains(width), (1...Self.maxSide).contains(height) else {
            throw TrainingError("An image must be 1 to \(Self.maxSide) pixels wide and high; got \(width) × \(height).")
        }
        guard channels == 1 || channels == 3 else {
            throw TrainingError("An image has 1 (gray) or 3 (RGB) channels; got \(channels).")
        }
        guard pixels.count == width * height * channels else {
            throw TrainingError("A \(width) × \(height) image with \(channels) channel(s) has \(width * height * channels) bytes; got \(pixels.count).")
        }
        (self.width, self.height, self.channels, self.pixels) = (width, height, channels, pixels)
    }

    /// An RGB image filled with `color`.
    init(width: Int, height: Int, color: RGB) throws {
        try self.init(width: width, height: height, channels: 3,
                      pixels: Array([[UInt8]](repeating: [color.r, color.g, color.b], count: width * height).joined()))
    }

    /// An RGB colour.
    struct RGB: Equatable {
        var r: UInt8, g: UInt8, b: UInt8
        static let white = RGB(r: 255, g: 255, b: 255), gridLine = RGB(r: 200, g: 200, b: 200)
        static let correct = RGB(r: 46, g: 160, b: 67), wrong = RGB(r: 214, g: 39, b: 40)
        static func gray(_ value: UInt8) -> RGB { RGB(r: value, g: value, b: value) }
    }

    /// Paints the rectangle at (`x`, `y`) of `width × height` pixels (clipped to the image) in `color`.
    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: RGB) {
        let x0 = max(0, x), x1 = min(width, x + w), y0 = max(0, y), y1 = min(height, y + h)
        guard channels == 3, x0 < x1, y0 < y1 else { return }
        for row in y0..<y1 {
            for column in x0..<x1 {
                let i = (row * width + column) * 3
                (pixels[i], pixels[i + 1], pixels[i + 2]) = (color.r, color.g, color.b)
            }
        }
    }

    // MARK: - PNG

    /// The image as a PNG file: 8-bit gray or RGB, one IDAT chunk deflated by zlib, no row
    /// filters (the pictures here are flat colours, which deflate handles well unfiltered).
    public func png() throws -> [UInt8] {
        var header: [UInt8] = []
        Self.appendBigEndian(UInt32(width), to: &header)
        Self.appendBigEndian(UInt32(height), to: &header)
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0]   // bit depth, colour type, deflate, filter set 0, no interlace
        let rowBytes = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity(height * (rowBytes + 1))
        for row in 0..<height {
            raw.append(0)   // filter type 0: the row as it is
            raw += pixels[row * rowBytes..<(row + 1) * rowBytes]
        }
        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        Self.appendChunk("IHDR", header, to: &file)
        Self.appendChunk("IDAT", try Self.zlibCompress(raw), to: &file)
        Self.appendChunk("IEND", [], to: &file)
        return file
    }

    /// `bytes` as a zlib stream (PNG's IDAT format), at zlib's default level.
    static func zlibCompress(_ bytes: [UInt8]) throws -> [UInt8] {
        var size = compressBound(uLong(bytes.count))
        var output = [UInt8](repeating: 0, count: Int(size))
        let status = compress2(&output, &size, bytes, uLong(bytes.count), Z_DEFAULT_COMPRESSION)
        guard status == Z_OK else { throw TrainingError("zlib could not compress a \(bytes.count)-byte image (compress2 returned \(status)).") }
        return Array(output[..<Int(size)])
    }

    /// One PNG chunk: length, type, data, and the CRC-32 (zlib's) of type and data.
    static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        let typed = Array(type.utf8) + data
        appendBigEndian(UInt32(data.count), to: &file)
        file += typed
        appendBigEndian(UInt32(crc32(0, typed, uInt(typed.count))), to: &file)
    }

    static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    // MARK: - Pictures of a run

    /// The confusion matrix (rows: true class, columns: predicted class) as a heat map: one square
    /// of `cell` pixels per entry, shaded by its share of the row from white (0%) to dark blue
    /// (100%), as in `SVGPlot.confusionMatrix`, with 1-pixel gray lines between squares. `cell`
    /// defaults to what makes the picture about 256 pixels wide. No labels: the SVG has them.
    public static func confusionMatrix(_ matrix: [[Int]], cell: Int? = nil) throws -> PixelImage {
        let n = matrix.count
        guard n >= 1, n <= 1024, matrix.allSatisfy({ $0.count == n }) else {
            throw TrainingError("A confusion matrix is square with 1 to 1024 classes; got \(n) rows of \(matrix.map(\.count)) entries.")
        }
        let cell = max(1, min(cell ?? 256 / n, (Self.maxSide - 1) / n - 1))
        let side = n * (cell + 1) + 1
        var image = try PixelImage(width: side, height: side, color: .gridLine)
        for (row, counts) in matrix.enumerated() {
            let total = counts.reduce(0.0) { $0 + Double(max($1, 0)) }   // in Double: counts may be huge
            for (column, count) in counts.enumerated() {
                let share = total > 0 ? Double(max(count, 0)) / total : 0
                image.fill(x: 1 + column * (cell + 1), y: 1 + row * (cell + 1), width: cell, height: cell, heat(share))
            }
        }
        return image
    }

    /// White to dark blue, as `SVGPlot`'s heat map; `share` in `0...1`.
    static func heat(_ share: Double) -> RGB {
        func mix(_ light: Double, _ dark: Double) -> UInt8 { UInt8((light + (dark - light) * min(1, max(0, share))).rounded()) }
        return RGB(r: mix(247, 8), g: mix(251, 48), b: mix(255, 107))
    }

    /// Grayscale images (values in `0...1`, row-major, `side × side`; `side` defaults to the square
    /// root of the first image's size) side by side, `columns` to a row, each scaled up `scale`
    /// times inside a 2-pixel border: green when `predicted` equals `truth`, red when not. Only
    /// the first `min(images.count, predicted.count, truth.count)` images are drawn.
    public static func sampleGrid(images: [[Float]], predicted: [Int], truth: [Int], columns: Int = 8,
                                  side: Int? = nil, scale: Int = 2) throws -> PixelImage {
        let count = min(images.count, predicted.count, truth.count)
        let side = side ?? Int(Double(images.first?.count ?? 0).squareRoot().rounded())
        guard count > 0, side > 0, side <= maxSide, images.prefix(count).allSatisfy({ $0.count == side * side }) else {
            throw TrainingError("A sample grid needs images of \(side) × \(side) values, each with a prediction and a label; got \(count) (the first has \(images.first?.count ?? 0) values).")
        }
        let columns = max(1, min(columns, count)), rows = (count + columns - 1) / columns
        let scale = min(max(1, scale), 64), border = 2, gap = 2
        let tile = side * scale + 2 * border
        let width = columns * (tile + gap) + gap, height = rows * (tile + gap) + gap
        guard width <= maxSide, height <= maxSide else {
            throw TrainingError("A sample grid of \(count) images of \(side) × \(side) pixels (scale \(scale)) is \(width) × \(height) pixels, over \(maxSide).")
        }
        var image = try PixelImage(width: width, height: height, color: .white)
        for index in 0..<count {
            let x = gap + (index % columns) * (tile + gap), y = gap + (index / columns) * (tile + gap)
            image.fill(x: x, y: y, width: tile, height: tile, predicted[index] == truth[index] ? .correct : .wrong)
            for (i, value) in images[index].enumerated() {
                let level = UInt8((min(1, max(0, value.isFinite ? value : 0)) * 255).rounded())
                image.fill(x: x + border + (i % side) * scale, y: y + border + (i / side) * scale,
                           width: scale, height: scale, .gray(level))
            }
        }
        return image
    }
}
