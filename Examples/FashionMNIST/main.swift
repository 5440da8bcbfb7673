// FashionMNIST: the whole workflow, from data to a prediction on your own picture.
//
// 1. Data: Fashion-MNIST's 60,000 training images, of which a seeded 10% is held out for
//    validation, and its 10,000 test images, kept for one final check.
// 2. A model: the MLP `kiln train` trains (784 → 256 → 128 → 10, ReLU).
// 3. Training with `Trainer.fit`: one line per epoch, with the validation loss and accuracy.
// 4. The test set, once, at the end (choosing anything by test accuracy would make it a
//    validation set).
// 5. Saving the weights, and loading them into a fresh model, as an app would.
// 6. Predicting images you bring: `--images a.pgm b.pgm ...`, grayscale PGM files (binary P5 or
//    ASCII P2, 8-bit, any size; `convert photo.jpg -colorspace Gray photo.pgm` makes one). Each
//    is made to look like the training data: resized to 28 × 28 with a box filter (each new pixel
//    averages the area it covers; the aspect ratio is not kept, so crop to a square first), then
//    inverted when its background is light, because Fashion-MNIST's clothes are light on black.
//    The rule: invert when the mean brightness of the outermost ring of pixels (after resizing)
//    is above one half. Without `--images`, two test images are written as PGM files to a
//    temporary folder and predicted: one as it is (P5, 28 × 28) and one the way a photo might
//    come (P2, 56 × 56, dark on white), so the whole path runs.
//
// What it teaches: `MNISTDataset` and `split`, `DataLoader`, `Trainer.fit` with validation,
// `Trainer.evaluate`, `Checkpoint.saveModel`/`loadModel`, softmax probabilities, and preparing
// real-world input the way the training data looks (`PGMImage`).
//
//     swift run -c release FashionMNIST [--device cpu] [--quick] [--data DIR] [--epochs 5]
//                                       [--out fashion_mlp.safetensors] [--images a.pgm b.pgm ...]
//
// Seen here (release build, PoCL on 2 CPU cores, 5 epochs, 8.7 s in all): val_acc 83.55% after
// the first epoch, 87.43% after the fifth; test accuracy 86.81% (loss 0.3727). The two sample
// images: test-0.pgm (28×28) Ankle boot 57.5%, labelled Ankle boot; test-1-large-inverted.pgm
// (56×56, inverted) Pullover 99.8%, labelled Pullover.

import ArgumentParser
import Foundation
import Kiln

struct FashionMNIST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "FashionMNIST",
        abstract: "Train an MLP on Fashion-MNIST with a validation split, test it, save it, load it, and classify PGM images.")

    @Option(help: ArgumentHelp("The OpenCL device, as for `kiln --device`: gpu, cpu, gpu:N, P:D, or part of a device name.",
                               valueName: "selector"))
    var device: String?

    @Flag(help: "A short run (for CI): 2,000 training and 500 test images, one epoch.")
    var quick = false

    @Option(help: ArgumentHelp("An MNIST-format folder (train-images-idx3-ubyte.gz, ...).", valueName: "dir"))
    var data = MNISTDataset.defaultFolder.path

    @Option(help: "Epochs to train.")
    var epochs = 5

    @Option(help: ArgumentHelp("Where to save the trained model.", valueName: "file"))
    var out = "fashion_mlp.safetensors"

    @Option(parsing: .upToNextOption, help: ArgumentHelp("PGM images to classify (P5 or P2, 8-bit, any size).", valueName: "file"))
    var images: [String] = []

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1; got \(epochs).") }
    }

    func run() throws {
        let device = try Device.open(device)
        print("Device: \(device)")
        try Tensor.withDevice(device) { try workflow() }
    }

    func workflow() throws {
        // Your images are read first: a file that cannot be read fails now, not after training.
        var pictures = try images.map { Picture(name: $0, image: try PGMImage(contentsOf: URL(fileURLWithPath: $0))) }

        // 1. Data.
        let folder = URL(fileURLWithPath: data)
        let all = try MNISTDataset(folder: folder, split: .train, limit: quick ? 2000 : nil)
        let test = try MNISTDataset(folder: folder, split: .test, limit: quick ? 500 : nil)
        let (train, validation) = try all.split(validationFraction: 0.1, seed: 0)
        print("Data: \(train.count) training, \(validation.count) validation and \(test.count) test images")

        // 2. The model.
        RandomState.manualSeed(0)
        let model = try makeModel()
        print(model)

        // 3. Training, with the validation set checked after every epoch.
        let trainLoader = try DataLoader(train, batchSize: 128, shuffle: true, seed: 0)
        let validationLoader = try DataLoader(validation, batchSize: 1000)
        let trainer = Trainer(maxEpochs: quick ? 1 : epochs)
        let lossFunction = CrossEntropyLoss()
        try trainer.fit(model: model, loss: lossFunction, optimizer: try Adam(model.parameters, lr: 1e-3),
                        train: trainLoader, validation: validationLoader)

        // 4. The test set, once.
        let (testLoss, testAccuracy) = try trainer.evaluate(model: model, loss: lossFunction,
                                                            data: try DataLoader(test, batchSize: 1000))
        print(String(format: "Test accuracy: %.2f%% (loss %.4f) on %d images", (testAccuracy ?? 0) * 100, testLoss, test.count))

        // 5. Save, then load into a new model, as a program that only predicts would.
        let file = URL(fileURLWithPath: out)
        try Checkpoint.saveModel(model, to: file)
        let restored = try makeModel()
        try Checkpoint.loadModel(restored, from: file)
        print("Saved \(out) and loaded it into a fresh model")

        // 6. Predictions.
        if pictures.isEmpty { pictures = try writeSamples(from: test) }
        let prepared = try pictures.map { try prepare($0.image) }
        restored.eval()
        let probabilities = try withNoGrad {
            try restored(Tensor(prepared.flatMap(\.pixels), shape: [prepared.count, 784])).softmax().toArray()
        }
        for (index, picture) in pictures.enumerated() {
            let row = Array(probabilities[index * 10..<(index + 1) * 10])
            let best = row.indices.max { row[$0] < row[$1] } ?? 0
            var line = "\(picture.name) (\(picture.image.width)×\(picture.image.height)\(prepared[index].inverted ? ", inverted" : "")): "
            line += "\(test.classNames[best]) \(String(format: "%.1f%%", row[best] * 100))"
            if let label = picture.label { line += "  (labelled \(label))" }
            print(line)
        }
    }

    /// Two test images as PGM files in a new temporary folder: the first as it is (binary P5,
    /// 28 × 28), the second as a photo might come (plain P2, 56 × 56, dark on a light background).
    func writeSamples(from test: MNISTDataset) throws -> [Picture] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("FashionMNIST-\(UUID().uuidString)")
        try createFolder(folder, purpose: "folder for the sample images")
        func testImage(_ index: Int) throws -> PGMImage {
            try PGMImage(width: 28, height: 28, brightness: Array(test.images[index * 784..<(index + 1) * 784]))
        }
        let first = folder.appendingPathComponent("test-0.pgm")
        try testImage(0).write(to: first)
        let second = folder.appendingPathComponent("test-1-large-inverted.pgm")
        try testImage(1).resized(width: 56, height: 56).inverted().write(to: second, plain: true)
        print("No --images given: predicting two test images written to \(folder.path)")
        return try [(first, test.labels[0]), (second, test.labels[1])].map { url, label in
            Picture(name: url.path, image: try PGMImage(contentsOf: url), label: test.classNames[label])
        }
    }
}

/// An image to classify: its file name, its pixels, and its label when known.
struct Picture {
    let name: String
    let image: PGMImage
    var label: String? = nil
}

/// The MLP of `kiln train`: 784 → 256 → 128 → 10 with ReLU.
func makeModel() throws -> Sequential {
    Sequential(try Linear(784, 256), ReLU(), try Linear(256, 128), ReLU(), try Linear(128, 10))
}

/// An image made to look like Fashion-MNIST's: 28 × 28 (box filter), light on dark (inverted when
/// the mean of its outermost ring of pixels is above one half), as 784 brightness values in [0, 1].
func prepare(_ image: PGMImage) throws -> (pixels: [Float], inverted: Bool) {
    let small = try image.resized(width: 28, height: 28)
    let brightness = small.brightness
    let ring = (0..<784).filter { [0, 27].contains($0 / 28) || [0, 27].contains($0 % 28) }
    let background = ring.map { brightness[$0] }.reduce(0, +) / Float(ring.count)
    return background > 0.5 ? (small.inverted().brightness, true) : (brightness, false)
}

FashionMNIST.main()
