import Foundation
import Kiln
import Testing

@Suite("Data: PGM images")
struct PNMTests {
    /// Parses `text` (a header, maybe with pixels) plus `raster` bytes.
    static func parse(_ text: String, raster: [UInt8] = [], name: String = "test.pgm") throws -> PGMImage {
        try PGMImage(data: Data(text.utf8) + Data(raster), name: name)
    }

    @Test("a binary P5 file, written and read back from disk")
    func binary() throws {
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let image = try Self.parse("P5\n3 2\n255\n", raster: [0, 128, 255, 1, 2, 3])
        #expect(image.width == 3 && image.height == 2 && image.maxValue == 255)
        #expect(image.pixels == [0, 128, 255, 1, 2, 3])
        // A raster may contain bytes that look like whitespace or '#': they are pixels.
        let tricky = try Self.parse("P5 2 2 255 ", raster: [0x0A, 0x23, 0x20, 0x35])
        #expect(tricky.pixels == [10, 35, 32, 53])
        let file = folder.url.appendingPathComponent("image.pgm")
        try image.write(to: file)
        #expect(try PGMImage(contentsOf: file) == image)
        try image.write(to: file, plain: true)
        #expect(try PGMImage(contentsOf: file) == image)
        #expect(try String(contentsOf: file, encoding: .utf8) == "P2\n3 2\n255\n0 128 255\n1 2 3\n")
    }

    @Test("a plain P2 file, with comments, any whitespace, and a small maxval")
    func plain() throws {
        let image = try Self.parse("P2\n# made by hand\n3 # columns\n2\r\n15\n 0  7\t15\n\n# a comment in the raster\n3 4\n5\n")
        #expect(image.width == 3 && image.height == 2 && image.maxValue == 15)
        #expect(image.pixels == [0, 7, 15, 3, 4, 5])
        #expect(image.brightness == [0, 7, 15, 3, 4, 5].map { Float($0) * (1 / 15) })
        // A comment right after the maxval ends the header at its newline.
        #expect(try Self.parse("P5\n1 1\n255# the end\n", raster: [9]).pixels == [9])
        // What follows the first image (another image, in a multi-image file) is ignored.
        #expect(try Self.parse("P5 1 1 255\n", raster: [7, 1, 2, 3]).pixels == [7])
    }

    @Test("truncated files: in the header, in a binary raster, in a plain raster")
    func truncated() throws {
        expectDataError("test.pgm", "is empty") { _ = try Self.parse("") }
        expectDataError("test.pgm", "truncated", "the height") { _ = try Self.parse("P5\n28") }
        expectDataError("truncated", "the maxval") { _ = try Self.parse("P5 28 28 # no maxval") }
        expectDataError("truncated", "before the pixels") { _ = try Self.parse("P5 28 28 255") }
        expectDataError("test.pgm", "truncated", "784 pixels", "500 bytes") {
            _ = try Self.parse("P5\n28 28\n255\n", raster: [UInt8](repeating: 0, count: 500))
        }
        expectDataError("truncated", "after 5 of the 6 pixels") { _ = try Self.parse("P2 3 2 255 1 2 3 4 5\n") }
        expectDataError("truncated", "100 pixels") { _ = try Self.parse("P2 10 10 255\n1 2 3\n") }
        // One line, naming the file.
        do {
            _ = try Self.parse("P5 4 4 255\n", raster: [1, 2], name: "/photos/shoe.pgm")
            Issue.record("a truncated file was accepted")
        } catch let error as DataError {
            #expect(error.file == "/photos/shoe.pgm")
            #expect(error.description.hasPrefix("/photos/shoe.pgm: "))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("a huge declared size is refused before anything is allocated")
    func hugeSize() throws {
        expectDataError("declares 100000×100000 pixels", "more than") { _ = try Self.parse("P5 100000 100000 255\n", raster: [1]) }
        expectDataError("the width", "more digits") { _ = try Self.parse("P5 99999999999999999999999 1 255\n") }
        expectDataError("2147483647×2147483647") { _ = try Self.parse("P2 2147483647 2147483647 255\n1\n") }
        expectDataError("truncated", "16384 pixels") { _ = try Self.parse("P2 128 128 255\n1 2 3\n") }
        expectDataError("0×5") { _ = try Self.parse("P5 0 5 255\n") }
    }

    @Test("maxval: 16-bit is refused with its own message, 0 and above 65535 are invalid, samples above it are errors")
    func badMaxValue() throws {
        expectDataError("16-bit", "maxval 65535", "8-bit") { _ = try Self.parse("P5 1 1 65535\n", raster: [0, 0]) }
        expectDataError("16-bit", "maxval 256") { _ = try Self.parse("P2 1 1 256\n0\n") }
        expectDataError("maxval 0", "1 to 65535") { _ = try Self.parse("P5 1 1 0\n", raster: [0]) }
        expectDataError("maxval 70000") { _ = try Self.parse("P5 1 1 70000\n", raster: [0]) }
        expectDataError("sample 200 at pixel 1", "maxval 100") { _ = try Self.parse("P5 2 1 100\n", raster: [5, 200]) }
        expectDataError("above the maxval 15", "pixel 2") { _ = try Self.parse("P2 3 1 15\n1 2 16\n") }
        expectDataError("maxValue") { _ = try PGMImage(width: 1, height: 1, maxValue: 300, pixels: [0]) }
    }

    @Test("garbage: other Netpbm formats, random bytes, malformed fields")
    func garbage() throws {
        expectDataError("PPM", "ppmtopgm") { _ = try Self.parse("P6 1 1 255\n", raster: [1, 2, 3]) }
        expectDataError("PBM") { _ = try Self.parse("P4 8 1\n", raster: [0]) }
        expectDataError("PAM") { _ = try Self.parse("P7\nWIDTH 1\n") }
        expectDataError("not a PGM file") { _ = try Self.parse("\u{89}PNG\r\n") }
        expectDataError("not a PGM file") { _ = try Self.parse("P") }
        expectDataError("not a PGM file") { _ = try Self.parse("P9 1 1 255\n") }
        expectDataError("'x'", "whitespace should come before the width") { _ = try Self.parse("P5x 1 1 255\n") }
        expectDataError("'-'", "the width (a decimal number)") { _ = try Self.parse("P5 -1 1 255\n") }
        expectDataError("'.'", "whitespace should come before the height") { _ = try Self.parse("P5 2.5 1 255\n") }
        expectDataError("'a'", "pixel 1") { _ = try Self.parse("P2 2 1 255\n1 a\n") }
        expectDataError("'x'", "one whitespace character") { _ = try Self.parse("P5 1 1 255x", raster: [1]) }
        // Random bytes after a valid magic never crash the reader.
        var rng = SplitMix64(seed: 13)
        for _ in 0..<300 {
            let noise = (0..<Int(rng.next(below: 40))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for magic in ["P5", "P2", "P5 3 3 255\n", "P2 3 3 9\n"] {
                if let image = try? PGMImage(data: Data(magic.utf8) + Data(noise), name: "noise") {
                    #expect(image.pixels.count == image.width * image.height)
                }
            }
        }
    }

    @Test("resizing is a box filter; inverting and brightness")
    func resizeAndInvert() throws {
        // Halving averages each 2 × 2 block.
        let image = try PGMImage(width: 4, height: 2, pixels: [0, 100, 200, 200, 100, 200, 0, 40])
        let half = try image.resized(width: 2, height: 1)
        #expect(half.pixels == [100, 110])
        // Doubling a single pixel repeats it; a 3 → 2 shrink weights the middle pixel half to each side.
        #expect(try PGMImage(width: 1, height: 1, pixels: [77]).resized(width: 2, height: 2).pixels == [77, 77, 77, 77])
        #expect(try PGMImage(width: 3, height: 1, pixels: [0, 90, 180]).resized(width: 2, height: 1).pixels == [30, 150])
        // Any size to 28 × 28; a constant image stays constant.
        let big = try PGMImage(width: 97, height: 61, pixels: [UInt8](repeating: 9, count: 97 * 61)).resized(width: 28, height: 28)
        #expect(big.width == 28 && big.height == 28 && big.pixels.allSatisfy { $0 == 9 })
        #expect(image.inverted().pixels == [255, 155, 55, 55, 155, 55, 255, 215])
        #expect(try PGMImage(width: 2, height: 1, brightness: [0.5, 2]).pixels == [128, 255])
        expectDataError("resized", "0×28") { _ = try image.resized(width: 0, height: 28) }
    }
}
