import ArgumentParser
import Foundation
import Kiln

/// `kiln evaluate`: test loss, accuracy, per-class accuracy and the confusion matrix.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model file on the test set: loss, accuracy, per-class accuracy, confusion matrix.")

    @Option(help: ArgumentHelp("A model file (Kiln's, or a PyTorch state dict with --architecture).", valueName: "file"))
    var model: String
    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var load: LoadOptions
    @Option(parsing: .unconditional, help: "Use only the first N test samples.") var limit: Int?
    @Flag(help: "Print JSON.") var json = false

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
        var matrix = Array(repeating: Array(repeating: 0, count: test.classes), count: test.classes)
        for (p, t) in zip(predicted, test.labels) where p < test.classes && t < test.classes { matrix[t][p] += 1 }
        let perClass = matrix.enumerated().map { i, row in Double(row[i]) / Double(max(row.reduce(0, +), 1)) }
        if json {
            let object: [String: Any] = ["accuracy": accuracy ?? 0, "loss": loss, "samples": test.count,
                                         "per_class_accuracy": Dictionary(uniqueKeysWithValues: zip(test.classNames, perClass)),
                                         "confusion_matrix": matrix, "device": device.info.name]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("Device: \(device)")
        print(String(format: "Test loss %.4f, accuracy %.2f%% on %d images", loss, (accuracy ?? 0) * 100, test.count))
        print("Per-class accuracy:")
        for (name, value) in zip(test.classNames, perClass) {
            print("  \(name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(format: "%6.2f%%", value * 100))")
        }
        print("Confusion matrix (rows: true class, columns: predicted):")
        for row in matrix { print("  " + row.map { String($0).leftPadded(5) }.joined()) }
    }
}

/// `kiln predict`: classes and probabilities for test images by index, or for an IDX image file.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict classes with a model file, for test-set images by index or for an IDX image file.")

    @Option(help: ArgumentHelp("A model file.", valueName: "file")) var model: String
    @Option(parsing: .unconditional, help: ArgumentHelp("Indices of the images to classify, comma-separated: of the test set (default 0), or of --images (default all).", valueName: "list"))
    var index: String?
    @Option(help: ArgumentHelp("An IDX file of images (gzipped or not) to classify instead.", valueName: "file"))
    var images: String?
    @OptionGroup var deviceOptions: DeviceOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var load: LoadOptions

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
        for i in 0..<count {
            let row = Array(probabilities[i * classes..<(i + 1) * classes])
            let best = row.indices.max { row[$0] < row[$1] } ?? 0
            let name = best < classNames.count ? classNames[best] : String(best)
            let label = truth.map { " (true: \($0[i] < classNames.count ? classNames[$0[i]] : String($0[i])))" } ?? ""
            print("\(i): class \(best) \(name)  p=\(String(format: "%.4f", row[best]))\(label)")
        }
    }
}
