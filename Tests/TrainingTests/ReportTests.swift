import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Kiln
import KilnTestSupport
import Testing

/// Training history files (JSON, CSV) and the SVG plots. Pure host code: no device needed.
@Suite struct ReportTests {
    // MARK: - Fixtures

    static func twoEpochs() -> History {
        History(records: [
            EpochRecord(epoch: 1, trainLoss: 0.5, trainAccuracy: 0.8, validationLoss: 0.25, validationAccuracy: 0.9,
                        seconds: 2, samplesPerSecond: 1000, learningRate: 0.01),
            EpochRecord(epoch: 2, trainLoss: 0.125, trainAccuracy: nil, validationLoss: 0.375,
                        validationAccuracy: 0.95, seconds: 1.5, samplesPerSecond: 1250, learningRate: 0.005),
        ])
    }

    static func longHistory(epochs: Int = 12) -> History {
        var history = History()
        for epoch in 1...epochs {
            let t = Double(epoch)
            history.append(EpochRecord(
                epoch: epoch, trainLoss: 2.3 * exp(-t / 3) + 0.05, trainAccuracy: 1 - 0.9 * exp(-t / 2.5),
                validationLoss: 2.2 * exp(-t / 3.2) + 0.09, validationAccuracy: 1 - 0.88 * exp(-t / 2.4) - 0.01,
                seconds: 3.2, samplesPerSecond: 18750, learningRate: 0.001))
        }
        return history
    }

    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("kiln-report-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Parses `svg` as XML (XMLDocument: FoundationXML on Linux) and checks the root and the
    /// self-contained rules.
    static func checkWellFormed(_ svg: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let document = try XMLDocument(xmlString: svg, options: [])
        #expect(document.rootElement()?.name == "svg", sourceLocation: sourceLocation)
        #expect(svg.contains("font-family=\"sans-serif\""), sourceLocation: sourceLocation)
        #expect(!svg.contains("<script"), sourceLocation: sourceLocation)
    }

    /// The text content of every `<text>` element, unescaped.
    static func texts(_ svg: String) throws -> [String] {
        let document = try XMLDocument(xmlString: svg, options: [])
        return try document.nodes(forXPath: "//*[local-name()='text']").compactMap(\.stringValue)
    }

    // MARK: - History

    @Test func jsonRoundTrip() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("history.json")
        let history = Self.twoEpochs()
        try history.writeJSON(to: url)
        let back = try History(contentsOf: url)
        #expect(back == history)
        #expect(back.records[1].trainAccuracy == nil)

        // The documented layout: {"epochs": [...]} with snake_case keys; missing values are null.
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let epochs = try #require(object?["epochs"] as? [[String: Any]])
        #expect(epochs.count == 2)
        #expect(Set(epochs[0].keys) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                        "seconds", "samples_per_second", "learning_rate"])
        #expect(epochs[0]["val_accuracy"] as? Double == 0.9)
        #expect(epochs[1]["train_accuracy"] is NSNull)
        // Nothing but the file is left in the folder (the temporary file was renamed).
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["history.json"])
    }

    @Test func jsonSurvivesNaN() throws {
        var history = Self.twoEpochs()
        history.records[1].trainLoss = .nan
        history.records[1].validationLoss = .infinity
        let data = try history.jsonData()
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.lowercased().contains("nan"))
        let back = try JSONDecoder().decode(History.self, from: data)
        #expect(back.records[1].trainLoss.isNaN)
        #expect(back.records[1].validationLoss == nil)
        #expect(back.records[0] == history.records[0])
    }

    @Test func csvContent() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("history.csv")
        try Self.twoEpochs().writeCSV(to: url)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text == """
            epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,samples_per_second,learning_rate
            1,0.5,0.8,0.25,0.9,2.0,1000.0,0.01
            2,0.125,,0.375,0.95,1.5,1250.0,0.005

            """)
    }

    @Test func best() {
        let history = Self.twoEpochs()
        #expect(history.best(metric: "train_loss")?.epoch == 2)
        #expect(history.best(metric: "val_loss")?.epoch == 1)
        #expect(history.best(metric: "val_accuracy")?.epoch == 2)
        #expect(history.best(metric: "val_loss", mode: .max)?.epoch == 2)
        #expect(history.best(metric: "train_accuracy", mode: .min)?.epoch == 1)  // epoch 2 has none
        #expect(history.best(metric: "samples_per_second")?.epoch == 2)
        #expect(history.best(metric: "no_such_metric") == nil)
        #expect(History().best(metric: "val_loss") == nil)

        // NaN never wins; ties go to the earliest epoch.
        var tied = history
        tied.records[0].trainLoss = .nan
        tied.append(EpochRecord(epoch: 3, trainLoss: 0.125, seconds: 1, samplesPerSecond: 1, learningRate: 0))
        #expect(tied.best(metric: "train_loss")?.epoch == 2)
        #expect(tied.best(metric: "train_loss", mode: .max)?.epoch == 2)
    }

    @Test func niceTicks() {
        #expect(SVGPlot.niceTicks(from: 0.05, to: 2.3) == [0, 0.5, 1, 1.5, 2, 2.5])
        #expect(SVGPlot.niceTicks(from: 0, to: 100) == [0, 20, 40, 60, 80, 100])
        let flat = SVGPlot.niceTicks(from: 0.5, to: 0.5)
        #expect(flat.count >= 3 && flat.first! < 0.5 && flat.last! > 0.5)
        let zero = SVGPlot.niceTicks(from: 0, to: 0)
        #expect(zero.count >= 3 && zero.first! < 0 && zero.last! > 0)
        let ticks = SVGPlot.niceTicks(from: 91.3, to: 99.2)
        #expect(ticks.first! <= 91.3 && ticks.last! >= 99.2 && ticks.count <= 11)
    }

    // MARK: - Plots

    @Test func lossAndAccuracyPlot() throws {
        let svg = SVGPlot.lossAndAccuracy(history: Self.longHistory())
        try Self.checkWellFormed(svg)
        let texts = try Self.texts(svg)
        for expected in ["Loss", "Accuracy", "epoch", "loss", "accuracy (%)", "train", "validation", "12"] {
            #expect(texts.contains(expected), "missing text \(expected)")
        }
        #expect(texts.contains { $0.hasPrefix("Training history: 12 epochs") })
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 4)
        #expect(!svg.lowercased().contains("nan"))
    }

    @Test func lossAndAccuracyEdgeCases() throws {
        // One epoch, no accuracy at all.
        let one = History(records: [EpochRecord(epoch: 1, trainLoss: 0.7, seconds: 1, samplesPerSecond: 10,
                                                learningRate: 0.1)])
        let svg = SVGPlot.lossAndAccuracy(history: one)
        try Self.checkWellFormed(svg)
        #expect(try Self.texts(svg).contains("no accuracy recorded"))
        #expect(svg.contains("<circle"))  // the lone point is still visible

        // NaN and infinities are skipped, never printed.
        var bad = Self.twoEpochs()
        bad.records[0].trainLoss = .nan
        bad.records[1].validationLoss = .infinity
        bad.records[1].validationAccuracy = .nan
        bad.records[0].trainAccuracy = -.infinity
        for history in [bad, History(), Self.longHistory(epochs: 150)] {
            let text = SVGPlot.lossAndAccuracy(history: history)
            try Self.checkWellFormed(text)
            #expect(!text.lowercased().contains("nan"))
            #expect(!text.contains("inf"))
        }
    }

    @Test func confusionMatrixPlot() throws {
        let matrix = [[50, 2, 0], [3, 40, 7], [0, 0, 98]]
        let svg = SVGPlot.confusionMatrix(matrix, classNames: ["cat & dog", "<bird>", "fish"])
        try Self.checkWellFormed(svg)
        #expect(svg.contains("cat &amp; dog"))
        #expect(svg.contains("&lt;bird&gt;"))
        #expect(!svg.contains("<bird>"))
        let texts = try Self.texts(svg)
        // 188 of 200 correct.
        #expect(texts.contains { $0.contains("accuracy 94.00%") && $0.contains("188 of 200") })
        for count in ["50", "2", "3", "40", "7", "98"] {
            #expect(texts.contains(count), "missing count \(count)")
        }
        #expect(texts.filter { $0 == "cat & dog" }.count == 2)  // row and column label
        #expect(texts.contains("true class") && texts.contains("predicted class"))
        #expect(svg.contains("rotate(-45"))

        // Empty and ragged matrices, and missing class names, do not crash.
        try Self.checkWellFormed(SVGPlot.confusionMatrix([], classNames: []))
        let ragged = SVGPlot.confusionMatrix([[1], [0, 2, 3]], classNames: ["a"])
        try Self.checkWellFormed(ragged)
        #expect(try Self.texts(ragged).contains("2"))  // the unnamed class shows its index
    }

    @Test func imageGridPlot() throws {
        var generator = SeededGenerator(seed: 7)
        let images = (0..<10).map { _ in
            (0..<784).map { _ in Bool.random(using: &generator) ? Float.random(in: 0...1, using: &generator) : 0 }
        }
        let truth = Array(0..<10)
        var predicted = truth
        predicted[3] = 5
        predicted[8] = 0
        let names = (0..<10).map { $0 == 5 ? "R&D <5>" : "digit \($0)" }
        let svg = SVGPlot.imageGrid(images: images, predicted: predicted, truth: truth, classNames: names, columns: 4)
        try Self.checkWellFormed(svg)
        #expect(svg.components(separatedBy: "class=\"wrong\"").count - 1 == 2)
        #expect(svg.components(separatedBy: "class=\"correct\"").count - 1 == 8)
        #expect(svg.contains("R&amp;D &lt;5&gt;"))
        let texts = try Self.texts(svg)
        #expect(texts.contains("R&D <5> (digit 3)"))
        #expect(texts.contains("digit 0 (digit 0)"))
        #expect(texts.contains { $0.hasPrefix("Predictions: 8 of 10 correct") })

        // The misclassified tiles carry the red border and red caption.
        let document = try XMLDocument(xmlString: svg, options: [])
        let wrong = try document.nodes(forXPath: "//*[@class='wrong']")
        #expect(wrong.count == 2)
        for node in wrong {
            let xml = node.xmlString
            #expect(xml.contains("stroke=\"#d62728\""))
            #expect(xml.contains("fill=\"#d62728\""))
        }
        // 32 gray levels at most (plus black): every fill is one of them.
        let grays = Set((0..<32).map { level -> String in
            let g = Int((Double(level) * 255 / 31).rounded())
            return "#" + String(repeating: String(format: "%02x", g), count: 3)
        })
        let fills = svg.components(separatedBy: "<g fill=\"").dropFirst().map { String($0.prefix(7)) }
        #expect(!fills.isEmpty && fills.allSatisfy(grays.contains))
    }

    @Test func imageGridRunsAndSizes() throws {
        // A 4×4 image with one row of equal pixels draws that row as one rect.
        var image = [Float](repeating: 0, count: 16)
        for column in 0..<4 { image[4 + column] = 1 }
        image[15] = 0.5
        let svg = SVGPlot.imageGrid(images: [image], predicted: [1], truth: [1], classNames: ["a", "b"], side: 4)
        try Self.checkWellFormed(svg)
        #expect(svg.contains("<rect x=\"0\" y=\"1\" width=\"4\" height=\"1\"/>"))
        #expect(svg.contains("<rect x=\"3\" y=\"3\" width=\"1\" height=\"1\"/>"))
        // Nothing to draw, out-of-range labels, NaN pixels: still a document.
        try Self.checkWellFormed(SVGPlot.imageGrid(images: [], predicted: [], truth: [], classNames: []))
        let odd = SVGPlot.imageGrid(images: [[.nan, 1, 0.5, 0]], predicted: [-1], truth: [9], classNames: ["a"])
        try Self.checkWellFormed(odd)
        #expect(try Self.texts(odd).contains("-1 (9)"))
    }

    @Test func writeIsAtomic() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("history.svg")
        let svg = SVGPlot.lossAndAccuracy(history: Self.longHistory())
        try SVGPlot.write(svg, to: url)
        try SVGPlot.write(svg, to: url)  // overwrites
        #expect(try String(contentsOf: url, encoding: .utf8) == svg)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["history.svg"])

        // Samples for looking at by eye: KILN_REPORT_SAMPLES=/some/folder swift test ...
        if let samples = ProcessInfo.processInfo.environment["KILN_REPORT_SAMPLES"] {
            try Self.writeSamples(to: URL(fileURLWithPath: samples, isDirectory: true))
        }
    }

    static func writeSamples(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var history = longHistory(epochs: 20)
        history.records[4].validationLoss = nil
        history.records[4].validationAccuracy = nil
        try SVGPlot.write(SVGPlot.lossAndAccuracy(history: history), to: folder.appendingPathComponent("history.svg"))
        let one = History(records: [EpochRecord(epoch: 1, trainLoss: 0.7, validationLoss: 0.8, seconds: 1,
                                                samplesPerSecond: 10, learningRate: 0.1)])
        try SVGPlot.write(SVGPlot.lossAndAccuracy(history: one), to: folder.appendingPathComponent("one.svg"))

        let names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot & <co>"]
        var generator = SeededGenerator(seed: 3)
        let matrix = (0..<10).map { row in
            (0..<10).map { column in
                row == column ? Int.random(in: 800...990, using: &generator)
                    : (Int.random(in: 0...9, using: &generator) < 6 ? 0 : Int.random(in: 1...60, using: &generator))
            }
        }
        try SVGPlot.write(SVGPlot.confusionMatrix(matrix, classNames: names),
                          to: folder.appendingPathComponent("confusion.svg"))
        try SVGPlot.write(SVGPlot.confusionMatrix([[5, 1], [2, 9]], classNames: ["no", "yes"]),
                          to: folder.appendingPathComponent("confusion2.svg"))

        // Blurry synthetic "digits": a ring or a bar, so the rendering shows shapes and grays.
        var images: [[Float]] = []
        for index in 0..<16 {
            var image = [Float](repeating: 0, count: 784)
            for row in 0..<28 {
                for column in 0..<28 {
                    let dx = Double(column) - 13.5, dy = Double(row) - 13.5
                    let distance = index % 2 == 0 ? abs((dx * dx + dy * dy).squareRoot() - 8) : abs(dx - Double(index % 5))
                    image[row * 28 + column] = Float(max(0, 1 - distance / 2.5))
                }
            }
            images.append(image)
        }
        let truth = (0..<16).map { $0 % 10 }
        var predicted = truth
        predicted[2] = 6
        predicted[9] = 7
        predicted[13] = 5
        try SVGPlot.write(SVGPlot.imageGrid(images: images, predicted: predicted, truth: truth, classNames: names),
                          to: folder.appendingPathComponent("images.svg"))

        // Harder layouts: many epochs with validation every 5th and a narrow loss range; many
        // classes with long names; small images in few columns.
        var long = History()
        for epoch in 1...150 {
            let t = Double(epoch)
            long.append(EpochRecord(epoch: epoch, trainLoss: 0.012 + 0.02 * exp(-t / 40),
                                    validationLoss: epoch % 5 == 0 ? 0.02 + 0.015 * exp(-t / 50) : nil,
                                    validationAccuracy: epoch % 5 == 0 ? 0.97 + 0.02 * (1 - exp(-t / 30)) : nil,
                                    seconds: 1, samplesPerSecond: 1, learningRate: 0.1))
        }
        try SVGPlot.write(SVGPlot.lossAndAccuracy(history: long), to: folder.appendingPathComponent("long.svg"))
        let many = (0..<30).map { "class number \($0) with a long name" }
        let big = (0..<30).map { row in (0..<30).map { row == $0 ? 1000 + row : ($0 * 7 + row) % 13 == 0 ? 12 : 0 } }
        try SVGPlot.write(SVGPlot.confusionMatrix(big, classNames: many), to: folder.appendingPathComponent("big.svg"))
        let small = (0..<7).map { index in (0..<256).map { Float(($0 + index * 16) % 256) / 255 } }
        try SVGPlot.write(SVGPlot.imageGrid(images: small, predicted: [0, 1, 2, 3, 4, 5, 1], truth: [0, 1, 2, 3, 4, 5, 6],
                                            classNames: ["0", "1", "2", "3", "4", "5", "6"], columns: 3),
                          to: folder.appendingPathComponent("small.svg"))
    }
}
