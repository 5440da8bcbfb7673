import Foundation
import KilnSupport
import KilnDevice

/// Self-contained SVG plots of a training run: loss and accuracy curves, a confusion matrix and a
/// grid of sample predictions. Each returns the document as a `String` (open it in any browser;
/// no scripts, no external fonts); `write(_:to:)` saves one atomically.
///
/// ```swift
/// let history = try History(contentsOf: URL(fileURLWithPath: "runs/latest/history.json"))
/// let folder = URL(fileURLWithPath: "runs/latest")
/// try SVGPlot.write(SVGPlot.lossAndAccuracy(history: history), to: folder.appendingPathComponent("history.svg"))
/// let matrix = [[9, 1], [2, 8]]   // rows: true class, columns: predicted
/// try SVGPlot.write(SVGPlot.confusionMatrix(matrix, classNames: ["cat", "dog"]), to: folder.appendingPathComponent("confusion.svg"))
/// ```
public enum SVGPlot {
    /// Writes an SVG document to `url` atomically (temporary file in the same folder, then rename).
    public static func write(_ svg: String, to url: URL) throws {
        try writeAtomically(Data(svg.utf8), to: url)
    }

    /// Evenly spaced "nice" tick values (steps of 1, 2 or 5 times a power of ten) that cover
    /// `lower...upper` with about `count` intervals; the first tick is at or below `lower` and the
    /// last at or above `upper`. A zero-width range is widened so it still gets several ticks.
    public static func niceTicks(from lower: Double, to upper: Double, count: Int = 5) -> [Double] {
        niceScale(lower, upper, count: count).ticks
    }

    // MARK: - Loss and accuracy

    private static let trainColor = "#1f77b4"
    private static let validationColor = "#ff7f0e"

    /// One line on a panel: its points (non-finite ones already removed) and how it is drawn.
    private struct Series {
        let name: String
        let color: String
        let squareMarkers: Bool
        let points: [(x: Double, y: Double)]
    }

    /// Two panels side by side: loss per epoch (train and validation) and accuracy per epoch
    /// (train, when recorded, and validation), with a shared legend. Missing, NaN and infinite
    /// values are skipped; lines join the points that remain. Accuracies in `0...1` are shown as
    /// percentages.
    public static func lossAndAccuracy(history: History) -> String {
        let records = history.records
        let width = 980.0, height = 430.0
        var canvas = SVGCanvas(width: width, height: height)

        func points(_ value: (EpochRecord) -> Double?, scale: Double = 1) -> [(x: Double, y: Double)] {
            records.compactMap { record in
                guard let y = value(record), y.isFinite else { return nil }
                return (Double(record.epoch), y * scale)
            }
        }
        // Accuracies are stored as fractions; show percent unless someone already stored percent.
        let accuracies = records.flatMap { [$0.trainAccuracy, $0.validationAccuracy] }
            .compactMap { $0 }.filter(\.isFinite)
        let accuracyScale = accuracies.allSatisfy { $0 <= 1.0 } ? 100.0 : 1.0

        let lossSeries = [
            Series(name: "train", color: trainColor, squareMarkers: false, points: points { $0.trainLoss }),
            Series(name: "validation", color: validationColor, squareMarkers: true,
                   points: points { $0.validationLoss }),
        ].filter { !$0.points.isEmpty }
        let accuracySeries = [
            Series(name: "train", color: trainColor, squareMarkers: false,
                   points: points({ $0.trainAccuracy }, scale: accuracyScale)),
            Series(name: "validation", color: validationColor, squareMarkers: true,
                   points: points({ $0.validationAccuracy }, scale: accuracyScale)),
        ].filter { !$0.points.isEmpty }

        // The x axis is shared, so both panels line up epoch for epoch.
        let epochs = records.map { Double($0.epoch) }
        let xAxis = epochAxis(lower: epochs.min() ?? 1, upper: epochs.max() ?? 1)

        let title = historyTitle(history)
        canvas.text(title, x: width / 2, y: 28, size: 16, anchor: "middle", bold: true)
        drawPanel(&canvas, x: 0, y: 44, width: width / 2, height: 340, title: "Loss", yLabel: "loss",
                  series: lossSeries, xAxis: xAxis, emptyMessage: "no loss recorded")
        drawPanel(&canvas, x: width / 2, y: 44, width: width / 2, height: 340, title: "Accuracy",
                  yLabel: accuracyScale == 100 ? "accuracy (%)" : "accuracy", series: accuracySeries,
                  xAxis: xAxis, emptyMessage: "no accuracy recorded")

        // One legend for both panels, centred under them.
        let names = Set((lossSeries + accuracySeries).map(\.name))
        let entries = [("train", trainColor, false), ("validation", validationColor, true)]
            .filter { names.contains($0.0) }
        let entryWidths = entries.map { 34 + estimatedWidth($0.0, size: 13) }
        var legendX = width / 2 - (entryWidths.reduce(0, +) + Double(max(0, entries.count - 1)) * 24) / 2
        let legendY = 412.0
        for (entry, entryWidth) in zip(entries, entryWidths) {
            canvas.line(x1: legendX, y1: legendY, x2: legendX + 24, y2: legendY, stroke: entry.1, width: 2)
            drawMarker(&canvas, x: legendX + 12, y: legendY, color: entry.1, square: entry.2, radius: 3.5)
            canvas.text(entry.0, x: legendX + 30, y: legendY + 4.5, size: 13)
            legendX += entryWidth + 24
        }
        return canvas.document(title: title)
    }

    /// "Training history: 12 epochs — best validation accuracy 98.12% (epoch 9)".
    private static func historyTitle(_ history: History) -> String {
        let count = history.records.count
        var title = "Training history: \(count) epoch\(count == 1 ? "" : "s")"
        if let best = history.best(metric: "val_accuracy"), let value = best.validationAccuracy {
            let shown = value <= 1 ? String(format: "%.2f%%", value * 100) : String(format: "%.4g", value)
            title += " — best validation accuracy \(shown) (epoch \(best.epoch))"
        } else if let best = history.best(metric: "val_loss"), let value = best.validationLoss {
            title += " — best validation loss \(String(format: "%.4g", value)) (epoch \(best.epoch))"
        }
        return title
    }

    /// The epoch axis: whole-number ticks, and a little room either side so end markers do not
    /// sit on the frame. A single epoch gets one tick in the middle.
    private static func epochAxis(lower: Double, upper: Double) -> (domain: (Double, Double), ticks: [Double]) {
        guard upper > lower else { return ((lower - 1, lower + 1), [lower]) }
        let span = upper - lower
        let step = max(1, niceScale(lower, upper, count: min(8, Int(span))).step.rounded())
        var ticks: [Double] = []
        var tick = (lower / step).rounded(.up) * step
        while tick <= upper + 1e-9 {
            ticks.append(tick)
            tick += step
        }
        let pad = max(0.3, span * 0.03)
        return ((lower - pad, upper + pad), ticks)
    }

    /// One panel: title, frame, grid, ticks, axis labels and the series. The panel occupies
    /// `x..<x+width`, `y..<y+height`.
    private static func drawPanel(_ canvas: inout SVGCanvas, x: Double, y: Double, width: Double, height: Double,
                                  title: String, yLabel: String, series: [Series],
                                  xAxis: (domain: (Double, Double), ticks: [Double]), emptyMessage: String) {
        let tickFont = 11.0
        let ys = series.flatMap { $0.points.map(\.y) }
        let yScale = niceScale(ys.min() ?? 0, ys.max() ?? 1, count: 5)
        let yLabels = yScale.ticks.map { tickLabel($0, step: yScale.step) }
        let labelWidth = yLabels.map { estimatedWidth($0, size: tickFont) }.max() ?? 0

        let left = x + 30 + labelWidth + 8
        let right = x + width - 20
        let top = y + 34
        let bottom = y + height - 46
        canvas.text(title, x: (left + right) / 2, y: y + 20, size: 15, anchor: "middle", bold: true)

        guard !series.isEmpty else {
            canvas.rect(x: left, y: top, width: right - left, height: bottom - top, fill: "#f6f6f6", stroke: "#ccc")
            canvas.text(emptyMessage, x: (left + right) / 2, y: (top + bottom) / 2, size: 13, anchor: "middle",
                        fill: "#777")
            return
        }

        let (x0, x1) = xAxis.domain
        let y0 = yScale.ticks.first ?? 0, y1 = yScale.ticks.last ?? 1
        func px(_ value: Double) -> Double { left + (value - x0) / (x1 - x0) * (right - left) }
        func py(_ value: Double) -> Double { bottom - (value - y0) / (y1 - y0) * (bottom - top) }

        // Grid and y ticks.
        for (value, label) in zip(yScale.ticks, yLabels) {
            let yy = py(value)
            canvas.line(x1: left, y1: yy, x2: right, y2: yy, stroke: "#e5e5e5")
            canvas.line(x1: left - 4, y1: yy, x2: left, y2: yy, stroke: "#444")
            canvas.text(label, x: left - 7, y: yy + 4, size: tickFont, anchor: "end", fill: "#444")
        }
        // x ticks.
        for value in xAxis.ticks {
            let xx = px(value)
            canvas.line(x1: xx, y1: bottom, x2: xx, y2: bottom + 4, stroke: "#444")
            canvas.text(String(Int(value)), x: xx, y: bottom + 17, size: tickFont, anchor: "middle", fill: "#444")
        }
        canvas.rect(x: left, y: top, width: right - left, height: bottom - top, fill: "none", stroke: "#444")
        canvas.text("epoch", x: (left + right) / 2, y: bottom + 36, size: 13, anchor: "middle")
        canvas.text(yLabel, x: x + 18, y: (top + bottom) / 2, size: 13, anchor: "middle", rotate: -90)

        // Markers shrink, then disappear, as epochs crowd the axis.
        let most = series.map(\.points.count).max() ?? 0
        let radius = most <= 30 ? 3.5 : most <= 80 ? 2.2 : 0
        for line in series {
            if line.points.count > 1 {
                let coordinates = line.points.map { "\(num(px($0.x))),\(num(py($0.y)))" }.joined(separator: " ")
                canvas.add("<polyline points=\"\(coordinates)\" fill=\"none\" stroke=\"\(line.color)\" "
                           + "stroke-width=\"2\" stroke-linejoin=\"round\"/>")
            }
            // A lone point is invisible without a marker, so it always gets one.
            let r = line.points.count == 1 ? 3.5 : radius
            if r > 0 {
                for point in line.points {
                    drawMarker(&canvas, x: px(point.x), y: py(point.y), color: line.color,
                               square: line.squareMarkers, radius: r)
                }
            }
        }
    }

    /// A circle (train) or square (validation) marker, so the two lines differ by more than colour.
    private static func drawMarker(_ canvas: inout SVGCanvas, x: Double, y: Double, color: String, square: Bool,
                                   radius: Double) {
        if square {
            canvas.rect(x: x - radius, y: y - radius, width: 2 * radius, height: 2 * radius, fill: color)
        } else {
            canvas.add("<circle cx=\"\(num(x))\" cy=\"\(num(y))\" r=\"\(num(radius))\" fill=\"\(color)\"/>")
        }
    }

    /// Ticks and their spacing; see `niceTicks`.
    static func niceScale(_ lower: Double, _ upper: Double, count: Int) -> (ticks: [Double], step: Double) {
        var lo = lower.isFinite ? lower : 0
        var hi = upper.isFinite ? upper : 1
        if lo > hi { swap(&lo, &hi) }
        if hi - lo <= max(abs(lo), abs(hi)) * 1e-9 {
            // A flat line still needs an axis: widen by 10% (or by 1 around zero).
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            lo -= pad
            hi += pad
        }
        let raw = (hi - lo) / Double(max(1, count))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let fraction = raw / magnitude
        let step = (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude
        // The small slack stops rounding error (1.9999999 steps) from adding a whole extra tick.
        let first = (lo / step + 1e-9).rounded(.down)
        let last = (hi / step - 1e-9).rounded(.up)
        guard first.isFinite, last.isFinite, last - first < 1000 else { return ([lo, hi], hi - lo) }
        let ticks = stride(from: first, through: last, by: 1).map { k -> Double in
            let value = k * step
            return abs(value) < step * 1e-9 ? 0 : value
        }
        return (ticks, step)
    }

    /// A tick label with just enough decimals for `step` (steps are 1, 2 or 5 × 10ⁿ).
    private static func tickLabel(_ value: Double, step: Double) -> String {
        if step >= 1e6 || step < 1e-5 || abs(value) >= 1e7 { return String(format: "%.3g", value) }
        let decimals = max(0, Int((-log10(step) - 1e-9).rounded(.up)))
        return String(format: "%.\(decimals)f", value)
    }

    // MARK: - Confusion matrix

    /// A heat map of `matrix` (rows: true class, columns: predicted class). Each cell is shaded by
    /// its count as a share of its row (so rare classes read as clearly as common ones) and
    /// labelled with the count; hovering a cell shows the details. The title gives the overall
    /// accuracy. Missing class names are shown as the class index.
    public static func confusionMatrix(_ matrix: [[Int]], classNames: [String]) -> String {
        let n = max(matrix.count, matrix.map(\.count).max() ?? 0)
        func count(_ row: Int, _ column: Int) -> Int {
            row < matrix.count && column < matrix[row].count ? matrix[row][column] : 0
        }
        func name(_ index: Int) -> String {
            truncated(index < classNames.count ? classNames[index] : String(index), to: 24)
        }
        let total = matrix.joined().reduce(0, +)
        let correct = (0..<n).map { count($0, $0) }.reduce(0, +)
        let title: String
        if total > 0 {
            title = "Confusion matrix — accuracy "
                + String(format: "%.2f%%", Double(correct) / Double(total) * 100) + " (\(correct) of \(total))"
        } else {
            title = "Confusion matrix — no samples"
        }
        guard n > 0 else {
            var canvas = SVGCanvas(width: 420, height: 120)
            canvas.text(title, x: 210, y: 60, size: 16, anchor: "middle", bold: true)
            return canvas.document(title: title)
        }

        let cell = min(56, max(16, (600.0 / Double(n)).rounded(.down)))
        // Rotated neighbours are cell × sin 45° apart, so the font shrinks with the cells.
        let labelFont = min(12, max(7, cell * 0.5))
        let maxDigits = Double((0..<n).flatMap { r in (0..<n).map { String(count(r, $0)).count } }.max() ?? 1)
        let countFont = min(13, cell * 0.85 / (maxDigits * 0.7))  // the widest count fits its cell, bold
        let names = (0..<n).map(name)
        let nameWidth = names.map { estimatedWidth($0, size: labelFont) }.max() ?? 0
        // Column labels are rotated 45°, so they reach left and down by width × sin 45°.
        let slant = nameWidth * 0.7072

        let gridSize = cell * Double(n)
        let labelRoom = max(40 + nameWidth + 8, slant - cell / 2 + 20)
        // The colour bar and its labels take about 104 px right of the grid.
        let contentWidth = labelRoom + gridSize + 104
        let width = max(contentWidth, estimatedWidth(title, size: 16, bold: true) + 40)
        // When the title is the widest part, centre the rest under it.
        let shift = (width - contentWidth) / 2
        let gridLeft = labelRoom + shift
        let gridTop = 62.0
        let gridBottom = gridTop + gridSize
        let colorbarX = gridLeft + gridSize + 24
        let height = gridBottom + 8 + slant + labelFont + 34
        var canvas = SVGCanvas(width: width, height: height)
        canvas.text(title, x: width / 2, y: 30, size: 16, anchor: "middle", bold: true)

        for row in 0..<n {
            let rowTotal = (0..<n).map { count(row, $0) }.reduce(0, +)
            for column in 0..<n {
                let value = count(row, column)
                let share = rowTotal > 0 ? Double(value) / Double(rowTotal) : 0
                let x = gridLeft + Double(column) * cell, y = gridTop + Double(row) * cell
                let tooltip = "true \(names[row]), predicted \(names[column]): \(value)"
                    + (rowTotal > 0 ? String(format: " (%.1f%% of row)", share * 100) : "")
                canvas.add("<g><title>\(xmlEscape(tooltip))</title>")
                canvas.rect(x: x, y: y, width: cell, height: cell, fill: heatColor(share), stroke: "#ffffff",
                            strokeWidth: 0.5)
                // Zeros are drawn faint so the non-zero cells stand out.
                let textColor = value == 0 ? "#b0b0b0" : share > 0.5 ? "#ffffff" : "#222"
                canvas.text(String(value), x: x + cell / 2, y: y + cell / 2 + countFont * 0.35, size: countFont,
                            anchor: "middle", fill: textColor, bold: row == column && value > 0)
                canvas.add("</g>")
            }
        }
        canvas.rect(x: gridLeft, y: gridTop, width: gridSize, height: gridSize, fill: "none", stroke: "#444")

        for (index, label) in names.enumerated() {
            let center = Double(index) * cell + cell / 2
            canvas.text(label, x: gridLeft - 6, y: gridTop + center + labelFont * 0.35, size: labelFont,
                        anchor: "end")
            canvas.text(label, x: gridLeft + center + labelFont * 0.3, y: gridBottom + 8, size: labelFont,
                        anchor: "end", rotate: -45, baseline: "hanging")
        }
        canvas.text("true class", x: 16 + shift, y: gridTop + gridSize / 2, size: 13, anchor: "middle", bold: true,
                    rotate: -90)
        canvas.text("predicted class", x: gridLeft + gridSize / 2, y: height - 14, size: 13, anchor: "middle",
                    bold: true)

        // Colour bar: what the shading means.
        let barHeight = min(gridSize, 200)
        canvas.add("<defs><linearGradient id=\"kiln-share\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
                   + "<stop offset=\"0\" stop-color=\"\(heatColor(0))\"/>"
                   + "<stop offset=\"0.5\" stop-color=\"\(heatColor(0.5))\"/>"
                   + "<stop offset=\"1\" stop-color=\"\(heatColor(1))\"/></linearGradient></defs>")
        canvas.rect(x: colorbarX, y: gridTop, width: 14, height: barHeight, fill: "url(#kiln-share)", stroke: "#444",
                    strokeWidth: 0.5)
        for (share, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
            let y = gridTop + barHeight * (1 - share)
            canvas.line(x1: colorbarX + 14, y1: y, x2: colorbarX + 18, y2: y, stroke: "#444")
            canvas.text(label, x: colorbarX + 21, y: y + 4, size: 10, fill: "#444")
        }
        canvas.text("of row", x: colorbarX, y: gridTop + barHeight + 16, size: 10, fill: "#444")
        return canvas.document(title: title)
    }

    /// White to dark blue; `share` in `0...1`.
    private static func heatColor(_ share: Double) -> String {
        let t = min(1, max(0, share.isFinite ? share : 0))
        let light = (247.0, 251.0, 255.0), dark = (8.0, 48.0, 107.0)
        func mix(_ a: Double, _ b: Double) -> Int { Int((a + (b - a) * t).rounded()) }
        return hexColor(mix(light.0, dark.0), mix(light.1, dark.1), mix(light.2, dark.2))
    }

    private static func hexColor(_ r: Int, _ g: Int, _ b: Int) -> String {
        "#" + [r, g, b].map { String(format: "%02x", min(255, max(0, $0))) }.joined()
    }

    // MARK: - Image grid

    /// A grid of grayscale images (values in `0...1`, row-major, `side × side`; `side` defaults to
    /// the square root of the first image's size, 28 for MNIST) with a caption "predicted (true)"
    /// under each. Misclassified images get a thick red border and a red caption, correct ones a
    /// thin green border and a green caption. Pixels are quantised to 32 gray levels and drawn as
    /// rectangles, one per run of equal pixels in a row, to keep the file small. Only the first
    /// `min(images.count, predicted.count, truth.count)` images are drawn.
    public static func imageGrid(images: [[Float]], predicted: [Int], truth: [Int], classNames: [String],
                                 columns: Int = 8, side: Int? = nil) -> String {
        let count = min(images.count, predicted.count, truth.count)
        let side = max(1, side ?? Int(Double(images.first?.count ?? 1).squareRoot().rounded()))
        let columns = max(1, min(columns, max(count, 1)))
        let rows = (count + columns - 1) / columns
        // Small images are scaled up to about 84 px so digits are readable.
        let scale = max(1, (84.0 / Double(side)).rounded())
        let imageSize = Double(side) * scale

        func name(_ index: Int) -> String {
            truncated(index >= 0 && index < classNames.count ? classNames[index] : String(index), to: 20)
        }
        // A caption too wide for the image goes on two lines ("pred" / "(true)"), so one long
        // class name does not spread the whole grid out.
        let captionFont = 12.0
        let baseWidth = imageSize + 28
        let captions: [[String]] = (0..<count).map { index in
            let wrong = predicted[index] != truth[index]
            let predictedName = name(predicted[index]), trueName = name(truth[index])
            let oneLine = "\(predictedName) (\(trueName))"
            if estimatedWidth(oneLine, size: captionFont, bold: wrong) <= baseWidth - 8 { return [oneLine] }
            return ["\(predictedName) ", "(\(trueName))"]
        }
        let captionWidth = zip(0..<count, captions).map { index, lines in
            lines.map { estimatedWidth($0, size: captionFont, bold: predicted[index] != truth[index]) }.max() ?? 0
        }.max() ?? 0
        let captionLines = captions.map(\.count).max() ?? 1
        let tileWidth = max(baseWidth, captionWidth + 10)
        let tileHeight = imageSize + 16 + 15 * Double(captionLines) + 4
        let margin = 16.0
        let top = 62.0

        let correct = (0..<count).filter { predicted[$0] == truth[$0] }.count
        let title = count > 0
            ? "Predictions: \(correct) of \(count) correct" + String(format: " (%.1f%%)", Double(correct) / Double(count) * 100)
            : "Predictions: no images"
        let subtitle = "caption: predicted (true) — red border: misclassified"
        let width = max(Double(columns) * tileWidth + 2 * margin, estimatedWidth(title, size: 16, bold: true) + 2 * margin,
                        estimatedWidth(subtitle, size: 12) + 2 * margin)
        let height = top + Double(rows) * tileHeight + margin
        var canvas = SVGCanvas(width: width, height: height)
        canvas.text(title, x: width / 2, y: 26, size: 16, anchor: "middle", bold: true)
        canvas.text(subtitle, x: width / 2, y: 46, size: 12, anchor: "middle", fill: "#555")

        let gridLeft = (width - Double(columns) * tileWidth) / 2
        for index in 0..<count {
            let wrong = predicted[index] != truth[index]
            let tileX = gridLeft + Double(index % columns) * tileWidth
            let tileY = top + Double(index / columns) * tileHeight
            let imageX = (tileX + (tileWidth - imageSize) / 2).rounded()
            let imageY = tileY + 4
            canvas.add("<g class=\"\(wrong ? "wrong" : "correct")\">")
            canvas.add("<g transform=\"translate(\(num(imageX)) \(num(imageY))) scale(\(num(scale)))\" "
                       + "shape-rendering=\"crispEdges\">")
            canvas.add(pixelRects(images[index], side: side))
            canvas.add("</g>")
            let border = wrong ? 3.0 : 1.5
            canvas.rect(x: imageX - border / 2, y: imageY - border / 2, width: imageSize + border,
                        height: imageSize + border, fill: "none", stroke: wrong ? "#d62728" : "#2ca02c",
                        strokeWidth: border)
            // Two-line captions are one <text> with two <tspan>s, so the caption reads as one string.
            let lines = captions[index]
            let captionY = imageY + imageSize + 18
            let captionX = tileX + tileWidth / 2
            let color = wrong ? "#d62728" : "#1e7b1e"
            if lines.count == 1 {
                canvas.text(lines[0], x: captionX, y: captionY, size: captionFont, anchor: "middle", fill: color,
                            bold: wrong)
            } else {
                canvas.add("<text x=\"\(num(captionX))\" y=\"\(num(captionY))\" font-size=\"\(num(captionFont))\" "
                           + "fill=\"\(color)\" text-anchor=\"middle\"\(wrong ? " font-weight=\"bold\"" : "")>"
                           + "<tspan x=\"\(num(captionX))\">\(xmlEscape(lines[0]))</tspan>"
                           + "<tspan x=\"\(num(captionX))\" dy=\"15\">\(xmlEscape(lines[1]))</tspan></text>")
            }
            canvas.add("</g>")
        }
        return canvas.document(title: title)
    }

    /// One image as SVG rectangles in pixel units: a black square, then for each of the 31 non-black
    /// gray levels a group of 1-pixel-high runs. Grouping by level writes each colour once.
    private static func pixelRects(_ image: [Float], side: Int) -> String {
        var runsByLevel: [Int: [String]] = [:]
        for row in 0..<side {
            var column = 0
            while column < side {
                let level = grayLevel(image, row * side + column)
                var end = column + 1
                while end < side && grayLevel(image, row * side + end) == level { end += 1 }
                if level > 0 {
                    runsByLevel[level, default: []].append(
                        "<rect x=\"\(column)\" y=\"\(row)\" width=\"\(end - column)\" height=\"1\"/>")
                }
                column = end
            }
        }
        var out = "<rect width=\"\(side)\" height=\"\(side)\" fill=\"#000000\"/>"
        for (level, runs) in runsByLevel.sorted(by: { $0.key < $1.key }) {
            let gray = Int((Double(level) * 255 / 31).rounded())
            out += "<g fill=\"\(hexColor(gray, gray, gray))\">" + runs.joined() + "</g>"
        }
        return out
    }

    /// The pixel at `index` as one of 32 levels (0 = black); missing and NaN pixels are black.
    private static func grayLevel(_ image: [Float], _ index: Int) -> Int {
        guard index < image.count, image[index].isFinite else { return 0 }
        return Int((min(1, max(0, Double(image[index]))) * 31).rounded())
    }
}
