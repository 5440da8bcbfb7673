import ArgumentParser
import Foundation
import Kiln

/// `kiln evaluate`: test loss, accuracy, per-class accuracy and the confusion matrix.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model file on the test set: loss, accuracy, per-class precision, recall and F1, confusion matrix.",
        discussion: """
            --json writes one JSON line: {"type": "evaluation", "accuracy", "loss", "samples", "device", \
            "per_class_accuracy": {name: recall}, "precision", "recall", "f1", "support": {name: value}, \
            "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "confusion_matrix": [[count]] \
            (rows: true class)}.
            """)

    @Option(help: ArgumentHelp("A model file (Kiln's, or a PyTorch state dict with --architecture).", valueName: "file"))
    var model: String
    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var load: LoadOptions
    @Option(parsing: .unconditional, help: "Use only the first N test samples.") var limit: Int?
    @Flag(help: "Write one JSON line to stdout (see the discussion) and everything else to stderr.") var json = false

    func run() throws {
        do { try evaluate() } catch let error as ValidationError { throw error } catch { throw Failure(error) }
    }

    func evaluate() throws {
        let device = try deviceOptions.open()
        let test = try MNISTDataset(folder: dataOptions.folder, split: .test, limit: limit)
        let (network, spec) = try loadModel(file: model, options: load, features: test.features, featureShape: test.featureShape,
                                            classes: test.classes, device: device)
        let loader = try DataLoader(test, batchSize: 1000, on: device)
        loader.inputShape = spec.inputShape
        let trainer = Trainer(maxEpochs: 0)
        let (loss, accuracy) = try trainer.evaluate(model: network, loss: CrossEntropyLoss(), data: loader)
        let (predicted, _) = try trainer.predict(model: network, data: loader)
        // A model with more outputs than the data has classes: its predictions of the others are
        // left out of the table (they count as wrong in the accuracy above).
        let known = zip(predicted, test.labels).filter { $0.0 < test.classes }
        let report = try ClassificationReport(predicted: known.map(\.0), truth: known.map(\.1), classes: test.classes)
        let console = Console(json: json)
        func byClass<T>(_ values: [T]) -> [String: T] { Dictionary(uniqueKeysWithValues: zip(test.classNames, values)) }
        try console.emit(["type": "evaluation", "accuracy": accuracy ?? 0, "loss": loss, "samples": test.count,
                          "per_class_accuracy": byClass(report.recall), "precision": byClass(report.precision),
                          "recall": byClass(report.recall), "f1": byClass(report.f1), "support": byClass(report.support),
                          "macro_precision": report.macroPrecision, "macro_recall": report.macroRecall,
                          "macro_f1": report.macroF1, "weighted_f1": report.weightedF1,
                          "confusion_matrix": report.confusion, "device": device.info.name])
        guard !json else { return }
        print("Device: \(device)")
        print(String(format: "Test loss %.4f, accuracy %.2f%% on %d images", loss, (accuracy ?? 0) * 100, test.count))
        print("class          precision  recall      f1  support")
        for (i, name) in test.classNames.enumerated() {
            print("  \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) " + [report.precision[i], report.recall[i], report.f1[i]]
                .map { String(format: "%8.4f", $0) }.joined() + String(report.support[i]).leftPadded(9))
        }
        print(String(format: "  macro avg    %8.4f%8.4f%8.4f%9d", report.macroPrecision, report.macroRecall, report.macroF1, test.count))
        print(String(format: "  weighted F1                   %8.4f", report.weightedF1))
        print("Confusion matrix (rows: true class, columns: predicted):")
        for row in report.confusion { print("  " + row.map { String($0).leftPadded(5) }.joined()) }
    }
}

/// `kiln predict`: classes and probabilities for test images by index, or for an IDX image file.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict classes with a model file, for test-set images by index or for an IDX image file.",
        discussion: """
            --json writes one JSON line per image: {"type": "prediction", "index", "class", "name", \
            "probability", "probabilities": [per class], "true_class", "true_name" (test images only)}.
            """)

    @Option(help: ArgumentHelp("A model file.", valueName: "file")) var model: String
    @Option(parsing: .unconditional, help: ArgumentHelp("Indices of the images to classify, comma-separated: of the test set (default 0), or of --images (default all).", valueName: "list"))
    var index: String?
    @Option(help: ArgumentHelp("An IDX file of images (gzipped or not) to classify instead.", valueName: "file"))
    var images: String?
    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var load: LoadOptions
    @Flag(help: "Write one JSON line per image to stdout (see the discussion).") var json = false

    /// `--index 0,5,9`: whole numbers ≥ 0, no empty items.
    static func parseIndices(_ text: String) throws -> [Int] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !text.isEmpty, items.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw ValidationError("--index takes image indices ≥ 0 separated by commas, such as 0,1,2; got \"\(text)\".")
        }
        return items.compactMap { $0 }
    }

    func run() throws {
        do { try predict() } catch let error as ValidationError { throw error } catch { throw Failure(error) }
    }

    func predict() throws {
        let device = try deviceOptions.open()
        let pixels: [Float], count: Int, features: Int, featureShape: [Int], classNames: [String], truth: [Int]?
        let indices = try index.map(Self.parseIndices)
        if let images {
            // The header first: images too large for any model, or for memory as floats, are
            // refused before anything is inflated.
            let url = URL(fileURLWithPath: images)
            let declared = try IDXFile.dimensions(contentsOf: url)
            guard declared.count == 3, declared.allSatisfy({ $0 >= 1 }) else {
                throw ValidationError("\(images) holds \(declared) values; an image file has [count, rows, columns], none of them 0.")
            }
            let perImage = checkedProduct(declared.dropFirst()) ?? .max
            guard perImage <= ModelSpec.maxExtent, let total = checkedProduct([perImage, declared[0], 5]), total <= MNISTDataset.memoryBudget else {
                throw ValidationError("\(images) declares \(declared[0]) images of \(declared[1])×\(declared[2]) pixels: more than a model takes (\(ModelSpec.maxExtent) values per sample) or memory holds as floats.")
            }
            let file = try IDXFile(contentsOf: url)
            let size = file.dimensions[1] * file.dimensions[2]
            let chosen = indices ?? Array(0..<file.dimensions[0])
            if let bad = chosen.first(where: { $0 >= file.dimensions[0] }) {
                throw ValidationError("--index \(bad) is out of range: \(images) has \(file.dimensions[0]) images.")
            }
            count = chosen.count
            featureShape = [file.dimensions[1], file.dimensions[2]]
            features = size
            pixels = chosen.flatMap { file.bytes[$0 * size..<($0 + 1) * size].map { Float($0) / 255 } }
            classNames = dataOptions.folder == MNISTDataset.defaultFolder ? MNISTDataset.fashionClassNames : (0..<10).map(String.init)
            truth = nil
        } else {
            let test = try MNISTDataset(folder: dataOptions.folder, split: .test)
            let chosen = indices ?? [0]
            if let bad = chosen.first(where: { $0 >= test.count }) {
                throw ValidationError("--index \(bad) is out of range: the test set has \(test.count) images.")
            }
            features = test.features
            featureShape = test.featureShape
            count = chosen.count
            pixels = chosen.flatMap { test.images[$0 * features..<($0 + 1) * features] }
            classNames = test.classNames
            truth = chosen.map { test.labels[$0] }
        }
        let (network, spec) = try loadModel(file: model, options: load, features: features, featureShape: featureShape,
                                            classes: classNames.count, device: device)
        network.eval()
        let probabilities = try withNoGrad {
            try network(Tensor(pixels, shape: [count] + (spec.inputShape ?? [features]), on: device)).softmax().toArray()
        }
        let classes = probabilities.count / count
        let console = Console(json: json)
        func name(_ c: Int) -> String { c < classNames.count ? classNames[c] : String(c) }
        let numbers = indices ?? (images == nil ? [0] : Array(0..<count))
        for i in 0..<count {
            let row = Array(probabilities[i * classes..<(i + 1) * classes])
            let best = row.indices.max { row[$0] < row[$1] } ?? 0
            var line: [String: Any] = ["type": "prediction", "index": numbers[i], "class": best, "name": name(best),
                                       "probability": row[best].decimalDouble, "probabilities": row.map(\.decimalDouble)]
            if let truth { (line["true_class"], line["true_name"]) = (truth[i], name(truth[i])) }
            try console.emit(line)
            let label = truth.map { " (true: \(name($0[i])))" } ?? ""
            if !json { print("\(numbers[i]): class \(best) \(name(best))  p=\(String(format: "%.4f", row[best]))\(label)") }
        }
    }
}
