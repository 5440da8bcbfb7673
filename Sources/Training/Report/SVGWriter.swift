import Foundation

// Small pieces shared by the plots: an SVG element list, number formatting, XML escaping and
// text-width estimates. Internal (namespaced in `SVGPlot`): the public surface is `SVGPlot`'s plots.

/// Collects SVG elements and wraps them into a standalone document.
struct SVGCanvas {
    let width: Double
    let height: Double
    private(set) var elements: [String] = []

    init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    mutating func add(_ element: String) {
        elements.append(element)
    }

    /// A text label. `rotate` is in degrees, about the anchor point.
    mutating func text(_ string: String, x: Double, y: Double, size: Double = 12, anchor: String = "start",
                       fill: String = "#222", bold: Bool = false, rotate: Double? = nil,
                       baseline: String? = nil) {
        var attributes = "x=\"\(SVGPlot.num(x))\" y=\"\(SVGPlot.num(y))\" font-size=\"\(SVGPlot.num(size))\" fill=\"\(fill)\""
        if anchor != "start" { attributes += " text-anchor=\"\(anchor)\"" }
        if bold { attributes += " font-weight=\"bold\"" }
        if let baseline { attributes += " dominant-baseline=\"\(baseline)\"" }
        if let rotate { attributes += " transform=\"rotate(\(SVGPlot.num(rotate)) \(SVGPlot.num(x)) \(SVGPlot.num(y)))\"" }
        add("<text \(attributes)>\(SVGPlot.xmlEscape(string))</text>")
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#222",
                       width: Double = 1, dash: String? = nil) {
        var element = "<line x1=\"\(SVGPlot.num(x1))\" y1=\"\(SVGPlot.num(y1))\" x2=\"\(SVGPlot.num(x2))\" y2=\"\(SVGPlot.num(y2))\" "
            + "stroke=\"\(stroke)\" stroke-width=\"\(SVGPlot.num(width))\""
        if let dash { element += " stroke-dasharray=\"\(dash)\"" }
        add(element + "/>")
    }

    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String,
                       stroke: String? = nil, strokeWidth: Double = 1, extra: String = "") {
        var element = "<rect x=\"\(SVGPlot.num(x))\" y=\"\(SVGPlot.num(y))\" width=\"\(SVGPlot.num(width))\" height=\"\(SVGPlot.num(height))\" "
            + "fill=\"\(fill)\""
        if let stroke { element += " stroke=\"\(stroke)\" stroke-width=\"\(SVGPlot.num(strokeWidth))\"" }
        if !extra.isEmpty { element += " " + extra }
        add(element + "/>")
    }

    /// The whole document; `title` becomes the `<title>` element (shown as the tab/tooltip name).
    func document(title: String) -> String {
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(SVGPlot.num(width))\" height=\"\(SVGPlot.num(height))\" "
        out += "viewBox=\"0 0 \(SVGPlot.num(width)) \(SVGPlot.num(height))\" font-family=\"sans-serif\">\n"
        out += "<title>\(SVGPlot.xmlEscape(title))</title>\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(SVGPlot.num(width))\" height=\"\(SVGPlot.num(height))\" fill=\"#ffffff\"/>\n"
        for element in elements {
            out += element
            out += "\n"
        }
        out += "</svg>\n"
        return out
    }
}

extension SVGPlot {
    /// A coordinate for an attribute: at most two decimals, no trailing zeros, never `nan`/`inf`
    /// (a non-finite coordinate would make the whole document unreadable, so it becomes 0).
    static func num(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        let rounded = (value * 100).rounded() / 100
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int(rounded)) }
        var text = String(format: "%.2f", rounded)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// `text` made safe inside an XML element or attribute: the five special characters become
    /// entities, and control characters XML 1.0 forbids are dropped.
    static func xmlEscape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                // XML 1.0 allows neither C0 controls nor U+FFFE/U+FFFF.
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// A rough width of `text` in sans-serif at `size`: enough to lay out labels without a font
    /// engine. Calibrated on DejaVu Sans (Linux's usual sans-serif, wider than Helvetica or
    /// Arial), so labels have room everywhere.
    static func estimatedWidth(_ text: String, size: Double, bold: Bool = false) -> Double {
        var ems = 0.0
        for character in text {
            if character.isUppercase || character == "m" || character == "w" || character == "%"
                || character == "—" || character == "&" {
                ems += 0.78
            } else if character == "i" || character == "l" || character == "." || character == ","
                        || character == "'" || character == "|" || character == "!" || character == "j"
                        || character == ":" {
                ems += 0.32
            } else if character.isWhitespace || character == "(" || character == ")" || character == "f"
                        || character == "t" || character == "r" {
                ems += 0.4
            } else {
                ems += 0.64
            }
        }
        return ems * size * (bold ? 1.12 : 1)
    }

    /// `text` cut to at most `limit` characters, with an ellipsis when cut.
    static func truncated(_ text: String, to limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(max(1, limit - 1))) + "…"
    }
}
