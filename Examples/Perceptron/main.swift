// Perceptron: what one neuron can learn, and what it cannot.
//
// One `Linear(2, 1)` followed by a sigmoid draws a single straight line through the plane and
// says "1" on one side, "0" on the other. It learns points labelled by a line (they are linearly
// separable). It cannot learn XOR, where the 1s sit in two opposite quadrants: no line splits
// them, so the best it can do is get about two points in three right. A hidden layer with an
// activation bends the boundary and learns XOR.
//
// What it teaches: logits and `BCEWithLogitsLoss` (the sigmoid is inside the loss, where it is
// numerically safe), predictions as `sigmoid(logit) > 0.5`, accuracy with tensor ops, labels
// computed with comparisons, and how capacity (a hidden layer) changes what a model can fit.
//
//     swift run -c release Perceptron [--device cpu] [--quick]
//
// Seen here (release build, PoCL on 2 CPU cores, 1000 epochs each, 1.8 s): one neuron on the
// points split by a line 100.0% (its line x₂ = 0.51·x₁ - 0.21, the labels' x₂ = 0.50·x₁ - 0.20);
// one neuron on XOR 66.5%; a hidden layer of 8 tanh units on XOR 99.5%.

import ArgumentParser
import Foundation
import Kiln

struct Perceptron: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "Perceptron",
        abstract: "One neuron learns a line, fails on XOR; a hidden layer learns XOR.")

    @Option(help: ArgumentHelp("The OpenCL device, as for `kiln --device`: gpu, cpu, gpu:N, P:D, or part of a device name.",
                               valueName: "selector"))
    var device: String?

    @Flag(help: "A short run (for CI).")
    var quick = false

    func run() throws {
        let device = try Device.open(device)
        print("Device: \(device)")
        try Tensor.withDevice(device) { try compare() }
    }

    func compare() throws {
        // 400 random points in the square [-1, 1]², and two ways of labelling them.
        RandomState.manualSeed(0)
        let points = try Tensor.rand([400, 2], low: -1, high: 1)
        let x1 = try points.sliced(axis: 1, 0..<1), x2 = try points.sliced(axis: 1, 1..<2)   // [400, 1] each
        let aboveLine = try x2 .> (0.5 * x1 - 0.2)          // 1 above the line x₂ = 0.5·x₁ − 0.2, else 0
        let xor = try (x1 .> 0) .!= (x2 .> 0)               // 1 where exactly one coordinate is positive

        let epochs = quick ? 150 : 1000

        let perceptron = try Linear(2, 1)
        let lineAccuracy = try train(perceptron, points, aboveLine, epochs: epochs)
        print("one neuron, points split by a line: \(percent(lineAccuracy))")
        // The neuron's boundary is where its logit is 0: w₁·x₁ + w₂·x₂ + b = 0.
        let w = try perceptron.weight.toArray(), b = try perceptron.bias?.item() ?? 0
        let slope = -w[0] / w[1], offset = -b / w[1]
        print("  its line: x₂ = \(decimal(slope))·x₁ \(offset < 0 ? "-" : "+") \(decimal(abs(offset)))"
                  + "   (the labels' line: x₂ = 0.50·x₁ - 0.20)")

        let xorAccuracy = try train(try Linear(2, 1), points, xor, epochs: epochs)
        print("one neuron, XOR:                    \(percent(xorAccuracy))   (no line splits XOR)")

        let hidden = Sequential(try Linear(2, 8), Tanh(), try Linear(8, 1))
        let hiddenAccuracy = try train(hidden, points, xor, epochs: epochs)
        print("hidden layer of 8 (tanh), XOR:      \(percent(hiddenAccuracy))")
    }

    /// Trains `model` on the whole set at once for `epochs` steps; returns its accuracy on it.
    func train(_ model: Module, _ points: Tensor, _ labels: Tensor, epochs: Int) throws -> Float {
        let lossFunction = BCEWithLogitsLoss()
        let optimizer = try Adam(model.parameters, lr: 0.05)
        model.train()
        for _ in 0..<epochs {
            let loss = try lossFunction(model(points), labels)
            optimizer.zeroGrad()
            try loss.backward()
            try optimizer.step()
        }
        return try accuracy(model, points, labels)
    }

    /// The fraction of points whose prediction, sigmoid(logit) > 0.5, equals the label.
    func accuracy(_ model: Module, _ points: Tensor, _ labels: Tensor) throws -> Float {
        model.eval()
        return try withNoGrad {
            let predictions = try model(points).sigmoid() .> 0.5
            return try (predictions .== labels).mean().item()
        }
    }

    func percent(_ fraction: Float) -> String { String(format: "%5.1f%%", fraction * 100) }
    func decimal(_ value: Float) -> String { String(format: "%.2f", value) }
}

Perceptron.main()
