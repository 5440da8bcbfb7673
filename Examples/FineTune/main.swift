// FineTune: transfer learning, reusing what a network learned on some classes for others.
//
// A CNN is trained on five of Fashion-MNIST's classes (T-shirt/top, Trouser, Pullover, Dress,
// Coat). Its body, the convolutional part, has learned to turn an image into features that are
// useful beyond those classes: edges, outlines, textures. For five *new* classes (Sandal, Shirt,
// Sneaker, Bag, Ankle boot), with only a few labelled images of them (100 by default), the body
// is frozen and only a new head, the classifier on top of it, is trained. The same network
// trained from scratch on the same few images, for the same number of steps, is the comparison:
// with little data, a body that already knows how to see does better.
//
// `freeze()` stops the gradients to the body's parameters, so the optimizer leaves them as they
// are (PyTorch: `requires_grad_(False)`); the optimizer is given only the trainable ones. In
// training mode the body's BatchNorm layers still update their running statistics with the new
// images, as they do in PyTorch.
//
// What it teaches: a model built from named parts (`body`, `head`), `freeze()`,
// `trainableParameters`, replacing a layer, and choosing classes with `subset(classes:)`, which
// renumbers them 0 to 4 for a five-way head.
//
//     swift run -c release FineTune [--device cpu] [--quick] [--data DIR] [--shots 100]
//
// Seen here (release build, PoCL on 2 CPU cores, 54 s): 1. two epochs on the 30,000 images of
// classes 0-4 (23-26 s each), 91.96% on their 5,000 test images; 2. and 3. ten epochs of the 100
// new images, 20 steps each. On the 5,000 test images of classes 5-9: frozen body + new head
// 91.62%, from scratch 79.34%. With `--shots 1000` (160 steps each): 95.52% and 94.80%; with
// enough data of its own, the network from scratch nearly catches up.

import ArgumentParser
import Foundation
import Kiln

/// The `kiln train --model cnn` network in two named parts, as torchvision's models are split
/// into `features` and `classifier`.
final class FashionNet: Module {
    /// The convolutional part: an image [1, 28, 28] → 3136 features (64 maps of 7 × 7).
    let body: Sequential
    /// The classifier: 3136 features → one score per class. Replaced when fine-tuning.
    var head: Sequential

    init(classes: Int) throws {
        body = Sequential(
            try Conv2d(1, 32, kernelSize: 3, padding: 1), try BatchNorm2d(32), ReLU(), try MaxPool2d(2),
            try Conv2d(32, 64, kernelSize: 3, padding: 1), try BatchNorm2d(64), ReLU(), try MaxPool2d(2),
            Flatten())
        head = try FashionNet.newHead(classes: classes)
        try super.init()
    }

    /// A new, untrained classifier.
    static func newHead(classes: Int) throws -> Sequential {
        Sequential(try Linear(3136, 128), ReLU(), try Dropout(0.25), try Linear(128, classes))
    }

    override func forward(_ x: Tensor) throws -> Tensor {
        try head(body(x))
    }
}

struct FineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "FineTune",
        abstract: "Train a CNN on classes 0-4, freeze its body, train a new head on classes 5-9; compare with training from scratch.")

    @Option(help: ArgumentHelp("The OpenCL device, as for `kiln --device`: gpu, cpu, gpu:N, P:D, or part of a device name.",
                               valueName: "selector"))
    var device: String?

    @Flag(help: "A short run (for CI): the first 2,000 training and 1,000 test images, one or two epochs per phase.")
    var quick = false

    @Option(help: ArgumentHelp("An MNIST-format folder (train-images-idx3-ubyte.gz, ...).", valueName: "dir"))
    var data = MNISTDataset.defaultFolder.path

    @Option(help: "Labelled images of the new classes (5-9) to fine-tune on.")
    var shots = 100

    func validate() throws {
        guard shots >= 1 else { throw ValidationError("--shots must be at least 1; got \(shots).") }
    }

    func run() throws {
        let device = try Device.open(device)
        print("Device: \(device)")
        try Tensor.withDevice(device) { try transfer() }
    }

    func transfer() throws {
        let folder = URL(fileURLWithPath: data)
        let train = try MNISTDataset(folder: folder, split: .train, limit: quick ? 2000 : nil)
        let test = try MNISTDataset(folder: folder, split: .test, limit: quick ? 1000 : nil)
        let oldClasses = 0..<5, newClasses = 5..<10
        let newTrain = try train.subset(classes: newClasses)
        let few = try newTrain.subset(Array(0..<min(shots, newTrain.count)))   // the few labelled new images
        let newTest = try test.subset(classes: newClasses)
        let (pretrainEpochs, fineTuneEpochs) = quick ? (1, 2) : (2, 10)

        // 1. Learn the old classes.
        RandomState.manualSeed(0)
        let model = try FashionNet(classes: 5)
        let oldTrain = try train.subset(classes: oldClasses)
        print("1. Training on \(oldTrain.count) images of \(oldTrain.classNames.joined(separator: ", "))")
        try fit(model, parameters: model.parameters, on: oldTrain, epochs: pretrainEpochs)
        let oldAccuracy = try accuracy(model, on: try test.subset(classes: oldClasses))
        print("   accuracy on their test images: \(percent(oldAccuracy))")

        // 2. Freeze the body, put a new head on it, and train only the head on the new classes.
        model.body.freeze()
        model.head = try FashionNet.newHead(classes: 5)
        let trainable = model.trainableParameters.reduce(0) { $0 + $1.count }, all = model.parameters.reduce(0) { $0 + $1.count }
        print("2. Fine-tuning a new head on \(few.count) images of \(few.classNames.joined(separator: ", ")) "
              + "(\(trainable) of the \(all) parameters train)")
        let fineTuneSteps = try fit(model, parameters: model.trainableParameters, on: few, epochs: fineTuneEpochs)

        // 3. The same network from scratch, on the same images for the same number of steps.
        let scratch = try FashionNet(classes: 5)
        print("3. Training the same network from scratch on the same \(few.count) images")
        let scratchSteps = try fit(scratch, parameters: scratch.parameters, on: few, epochs: fineTuneEpochs)

        print("Accuracy on the \(newTest.count) test images of the new classes:")
        print("   frozen body + new head: \(percent(try accuracy(model, on: newTest)))  (\(fineTuneSteps) steps)")
        print("   from scratch:           \(percent(try accuracy(scratch, on: newTest)))  (\(scratchSteps) steps)")
    }

    /// Trains `parameters` of `model` on `data` with Adam; returns the number of steps taken.
    @discardableResult
    func fit(_ model: Module, parameters: [Tensor], on data: MNISTDataset, epochs: Int) throws -> Int {
        let loader = try DataLoader(data, batchSize: 64, shuffle: true, seed: 0)
        loader.inputShape = [1, 28, 28]
        let trainer = Trainer(maxEpochs: epochs)
        try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try Adam(parameters, lr: 1e-3), train: loader)
        return trainer.globalStep
    }

    /// The fraction of `data` that `model` classifies correctly.
    func accuracy(_ model: Module, on data: MNISTDataset) throws -> Double {
        let loader = try DataLoader(data, batchSize: 1000)
        loader.inputShape = [1, 28, 28]
        return try Trainer(maxEpochs: 1).evaluate(model: model, loss: CrossEntropyLoss(), data: loader).accuracy ?? 0
    }

    func percent(_ fraction: Double) -> String { String(format: "%.2f%%", fraction * 100) }
}

FineTune.main()
