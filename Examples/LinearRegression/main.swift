// LinearRegression: the first model of every PyTorch course, in Kiln.
//
// A farmer notes how much feed each chicken eats a day and how much it weighs. The points lie
// near a straight line, weight = slope × feed + intercept, plus noise. A `Linear(1, 1)` layer *is*
// such a line: its weight is the slope, its bias the intercept. Gradient descent (SGD) on the mean
// squared error moves both, step by step, towards the line the data came from.
//
// What it teaches: making data as tensors, a train/test split by slicing, the five steps of a
// training loop (forward, loss, zero the gradients, backward, step), and testing without
// gradients (`withNoGrad`, PyTorch's `torch.inference_mode()`).
//
//     swift run -c release LinearRegression [--device cpu] [--quick]
//
// Seen here (release build, PoCL on 2 CPU cores, 300 epochs, 0.4 s): the train loss fell from
// 4.3736 (epoch 1) to 0.0099 by epoch 150 and stayed there: the noise's variance is 0.1² = 0.01,
// so the line explains all the rest. Test loss 0.0151. Learned: weight = 1.2336 × feed + 0.3631,
// against the true 1.2000 × feed + 0.4000; 80 noisy points pin the line down only this closely.

import ArgumentParser
import Foundation
import Kiln

struct LinearRegression: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "LinearRegression",
        abstract: "Fit a line to noisy (feed, chicken weight) points with Linear(1, 1), MSELoss and SGD.")

    @Option(help: ArgumentHelp("The OpenCL device, as for `kiln --device`: gpu, cpu, gpu:N, P:D, or part of a device name.",
                               valueName: "selector"))
    var device: String?

    @Flag(help: "A short run (for CI).")
    var quick = false

    func run() throws {
        let device = try Device.open(device)
        print("Device: \(device)")
        // Every tensor and layer made inside this block lives on `device`.
        try Tensor.withDevice(device) { try fitLine() }
    }

    func fitLine() throws {
        // The line the data comes from, which training should find. Feed is in hundreds of grams
        // a day and weight in kilograms, so the numbers are near 1: gradient descent likes that.
        let trueSlope: Float = 1.2, trueIntercept: Float = 0.4

        // 100 chickens, the same ones every run (the seed fixes the random numbers).
        RandomState.manualSeed(42)
        let feed = try Tensor.rand([100, 1], low: 0.2, high: 1.6)          // [100, 1]: 20 to 160 g a day
        let noise = try Tensor.randn([100, 1], std: 0.1)
        let weight = try trueSlope * feed + trueIntercept + noise          // [100, 1]: kilograms

        // 80 chickens to learn from, 20 to test on (the points are random: any 80 are a fair sample).
        let trainFeed = try feed[..<80], trainWeight = try weight[..<80]
        let testFeed = try feed[80...], testWeight = try weight[80...]

        let model = try Linear(1, 1)                    // y = x · weight + bias, both random at first
        let lossFunction = MSELoss()
        let optimizer = try SGD(model.parameters, lr: 0.2)

        let epochs = quick ? 50 : 300
        print("epoch  train loss  test loss")
        for epoch in 1...epochs {
            model.train()
            let prediction = try model(trainFeed)                   // 1. forward pass
            let loss = try lossFunction(prediction, trainWeight)    // 2. how wrong it is
            optimizer.zeroGrad()                                    // 3. clear the last step's gradients
            try loss.backward()                                     // 4. gradients of the loss
            try optimizer.step()                                    // 5. move the weight and bias downhill

            if epoch == 1 || epoch % (epochs / 10) == 0 {
                model.eval()
                let testLoss = try withNoGrad { try lossFunction(model(testFeed), testWeight) }
                print(String(format: "%5d  %.4f      %.4f", epoch, try loss.item(), try testLoss.item()))
            }
        }

        let slope = try model.weight.item(), intercept = try model.bias?.item() ?? 0
        print("learned: weight = \(format(slope)) × feed + \(format(intercept))")
        print("true:    weight = \(format(trueSlope)) × feed + \(format(trueIntercept))")
    }

    func format(_ value: Float) -> String { String(format: "%.4f", value) }
}

LinearRegression.main()
