import Foundation
import Kiln
import KilnTestSupport
import Testing

/// The tools practitioners expect from PyTorch and Lightning, checked against PyTorch's own
/// numbers (computed with torch 2.15 and written down here) or against an equivalent run.
@Suite("Training tools with PyTorch's semantics", .serialized)
struct TrainingToolsTests {
    /// Doubles within a relative tolerance of PyTorch's.
    func expectNear(_ actual: [Double], _ expected: [Double], rtol: Double = 1e-6, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(actual.count == expected.count, sourceLocation: sourceLocation)
        for (i, (a, e)) in zip(actual, expected).enumerated() {
            #expect(abs(a - e) <= rtol * max(abs(e), 1e-12), "element \(i): \(a) against \(e)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Gradient clipping

    /// Gradients [3, 4] and [12] (total 2-norm 13) on two leaves.
    func leaves(_ a: [Float], _ b: [Float]) throws -> [Tensor] {
        let x = try Tensor(a, requiresGrad: true), y = try Tensor(b, requiresGrad: true)
        // d/dx of Σ g·x is g: the gradients are exactly the given values.
        try ((x * Tensor(a)).sum() + (y * Tensor(b)).sum()).backward()
        return [x, y]
    }

    @Test("clipGradNorm scales all gradients by maxNorm / (norm + 1e-6) and returns the norm, as clip_grad_norm_")
    func clipNorm() throws {
        let p = try leaves([3, 4], [12])
        let norm = try clipGradNorm(p, maxNorm: 6.5)
        #expect(try norm.item() == 13)
        expectClose(try #require(p[0].grad).toArray(), [1.4999998807907104, 1.9999998807907104], rtol: 1e-6)
        expectClose(try #require(p[1].grad).toArray(), [5.999999523162842], rtol: 1e-6)

        let q = try leaves([3, -4], [12])
        #expect(try clipGradNorm(q, maxNorm: 6, normType: .infinity).item() == 12)
        expectClose(try #require(q[1].grad).toArray(), [5.999999523162842], rtol: 1e-6)
        let l1 = try leaves([3, -4], [12])
        expectNear([Double(try clipGradNorm(l1, maxNorm: 6, normType: 1).item())], [19])
        expectClose(try #require(l1[0].grad).toArray(), [0.9473682641983032, -1.2631577253341675], rtol: 1e-5)

        // Below the limit nothing changes (the coefficient is clamped to 1).
        let small = try leaves([0.3, -0.4], [0.2])
        expectNear([Double(try clipGradNorm(small, maxNorm: 6).item())], [0.5385164618492126])
        #expect(try #require(small[0].grad).toArray() == [0.3, -0.4])
    }

    @Test("a NaN gradient makes the norm and every gradient NaN, as in PyTorch; bad arguments throw")
    func clipNormNaN() throws {
        let p = try leaves([3, -4], [.nan])
        #expect(try clipGradNorm(p, maxNorm: 6).item().isNaN)
        #expect(try #require(p[0].grad).toArray().allSatisfy(\.isNaN))
        #expect(throws: TensorError.self) { try clipGradNorm(p, maxNorm: -1) }
        #expect(throws: TensorError.self) { try clipGradNorm(p, maxNorm: 1, normType: 0.5) }
        // No gradient anywhere: the norm is 0 and nothing changes, as clip_grad_norm_ returns 0.
        let untouched = try Tensor([1, 2])
        #expect(try clipGradNorm([untouched], maxNorm: 1).item() == 0 && untouched.grad == nil)
    }

    @Test("clipGradValue clamps each element to ±value and keeps NaN, as clip_grad_value_")
    func clipValue() throws {
        let p = try leaves([3, -4], [.nan])
        try clipGradValue(p, 3.5)
        #expect(try #require(p[0].grad).toArray() == [3, -3.5])
        #expect(try #require(p[1].grad).toArray()[0].isNaN)
        #expect(throws: TensorError.self) { try clipGradValue(p, .infinity) }
    }

    // MARK: Gradient accumulation

    /// 64 seeded samples of 6 features in 3 classes, in order (no shuffling).
    func samples() throws -> ArrayDataset {
        let inputs = (0..<64 * 6).map { Float(sin(Double($0) * 0.37)) }
        return try ArrayDataset(inputs: inputs, featureShape: [6], targets: .classes((0..<64).map { $0 % 3 }, classes: 3))
    }

    func trainedWeights(batchSize: Int, accumulate: Int, clipping: GradientClipping? = nil) throws -> [Float] {
        RandomState.manualSeed(7)
        let model = Sequential(try Linear(6, 5), ReLU(), try Linear(5, 3))
        let trainer = Trainer(maxEpochs: 2)
        trainer.accumulateGradBatches = accumulate
        trainer.gradientClipping = clipping
        trainer.progressBar = false
        trainer.log = { _ in }
        try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try SGD(model.parameters, lr: 0.5),
                        train: try DataLoader(samples(), batchSize: batchSize))
        #expect(trainer.globalStep == 2 * 64 / (batchSize * accumulate))
        return try model.parameters.flatMap { try $0.toArray() }
    }

    @Test("accumulating 4 batches of 8 gives the weights of batches of 32, with a quarter of the steps")
    func accumulation() throws {
        let accumulated = try trainedWeights(batchSize: 8, accumulate: 4)
        let large = try trainedWeights(batchSize: 32, accumulate: 1)
        expectClose(accumulated, large, rtol: 1e-4, atol: 1e-5)
        let unaccumulated = try trainedWeights(batchSize: 8, accumulate: 1)
        #expect(zip(unaccumulated, large).contains { abs($0 - $1) > 1e-3 }, "the comparison can tell the runs apart")
        // Clipping by a tiny norm slows training: the weights move less.
        let clipped = try trainedWeights(batchSize: 32, accumulate: 1, clipping: .norm(1e-3))
        #expect(zip(clipped, large).contains { abs($0 - $1) > 1e-3 })
    }

    // MARK: Schedules

    @Test("OneCycle gives PyTorch's OneCycleLR rates step by step (max_lr 0.01, 20 steps)")
    func oneCycle() throws {
        let torch = [0.0004, 0.001316718427, 0.003716718427, 0.006683281573, 0.009083281573, 0.01, 0.009874640062,
                     0.00950484632, 0.008909161776, 0.008117456539, 0.007169430018, 0.006112620219, 0.00500002,
                     0.003887419781, 0.002830609982, 0.001882583461, 0.001090878224, 0.0004951936799, 0.0001253999376, 4e-08]
        let schedule = LRSchedule.oneCycle(maxLR: 0.01, totalSteps: 20)
        try schedule.validate()
        expectNear((0..<20).map { schedule.rate(base: 0.001, epoch: 0, step: $0) }, torch, rtol: 1e-8)
    }

    @Test("sequential hands over at its milestone and chained multiplies, as SequentialLR and ChainedScheduler")
    func chaining() throws {
        // SequentialLR([LinearLR(start_factor=0.1, total_iters=2), StepLR(1, 0.5)], milestones=[2]), one step per epoch.
        let sequential = LRSchedule.sequential([.linearWarmup(steps: 2, startFactor: 0.1), .step(stepSize: 1, gamma: 0.5)],
                                               milestones: [2])
        try sequential.validate()
        expectNear((0..<5).map { sequential.rate(base: 1, epoch: $0, step: $0, stepsPerEpoch: 1) }, [0.1, 0.55, 1.0, 0.5, 0.25])
        let chained = LRSchedule.chained([.step(stepSize: 1, gamma: 0.5), .linearWarmup(steps: 4, startFactor: 0.5)])
        #expect(chained.rate(base: 1, epoch: 1, step: 2) == 0.5 * 0.75)
        #expect(throws: TrainingError.self) { try LRSchedule.sequential([.step(stepSize: 1, gamma: 0.5)], milestones: [3]).validate() }
        #expect(throws: TrainingError.self) { try LRSchedule.oneCycle(totalSteps: 0).validate() }
    }

    /// The learning rates after each epoch's `ReduceLROnPlateau` step for the given metric values.
    func plateauRates(_ plateau: ReduceLROnPlateau, _ values: [Double]) throws -> [Double] {
        let model = try Linear(1, 1)
        let trainer = Trainer(maxEpochs: 1)
        trainer.log = { _ in }
        let optimizer = try SGD(model.parameters, lr: 1)
        try trainer.fit(model: model, loss: MSELoss(), optimizer: optimizer,
                        train: try DataLoader(ArrayDataset(inputs: [1], featureShape: [1], targets: .values([1], width: 1)), batchSize: 1))
        optimizer.learningRate = 1
        return try values.enumerated().map { epoch, value in
            try plateau.epochEnd(trainer, epoch: epoch, record: EpochRecord(epoch: epoch + 1, trainLoss: 0, validationLoss: value,
                                                                             validationAccuracy: value, seconds: 1,
                                                                             samplesPerSecond: 1, learningRate: 1))
            return Double(optimizer.learningRate)
        }
    }

    @Test("ReduceLROnPlateau lowers the rate as PyTorch's does: patience, cooldown, thresholds, minimum")
    func plateau() throws {
        let rates = try plateauRates(try ReduceLROnPlateau(factor: 0.5, patience: 2, cooldown: 1),
                                     [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
        #expect(rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
        let maximizing = try ReduceLROnPlateau(monitor: "val_accuracy", factor: 0.1, patience: 0, threshold: 0.01,
                                               thresholdMode: .absolute, minLR: 0.005)
        expectNear(try plateauRates(maximizing, [0.5, 0.505, 0.52, 0.52, 0.6, 0.6, 0.6]),
                   [1.0, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005])
        #expect(throws: TrainingError.self) { try ReduceLROnPlateau(factor: 1) }
    }

    // MARK: Metrics and initialization

    @Test("binary targets of BCEWithLogitsLoss get an accuracy: logits above 0 predict 1")
    func binaryAccuracy() throws {
        let data = try ArrayDataset(inputs: [2, -1, 0.5, -3], featureShape: [1], targets: .values([1, 0, 0, 0], width: 1))
        let identity = Sequential(Identity())
        let (_, accuracy) = try Trainer(maxEpochs: 1).evaluate(model: identity, loss: BCEWithLogitsLoss(),
                                                                 data: DataLoader(data, batchSize: 3))
        #expect(accuracy == 0.75)
        let (_, mse) = try Trainer(maxEpochs: 1).evaluate(model: identity, loss: MSELoss(), data: DataLoader(data, batchSize: 3))
        #expect(mse == nil, "a regression has no accuracy")
    }

    @Test("ClassificationReport gives scikit-learn's precision, recall and F1 (zero_division 0)")
    func report() throws {
        let report = try ClassificationReport(predicted: [0, 1, 1, 2, 0], truth: [0, 1, 2, 2, 3], classes: 4)
        #expect(report.precision == [0.5, 0.5, 1, 0])
        #expect(report.recall == [1, 1, 0.5, 0])
        expectNear(report.f1, [2.0 / 3, 2.0 / 3, 2.0 / 3, 0])
        #expect(report.support == [1, 1, 2, 1])
        #expect(report.accuracy == 0.6)
        expectNear([report.macroF1, report.weightedF1], [0.5, (2.0 / 3 * 4) / 5])
        #expect(throws: TrainingError.self) { try ClassificationReport(predicted: [4], truth: [0], classes: 4) }
        // A class neither present nor predicted is left out of the macro averages, as in scikit-learn.
        let partial = try ClassificationReport(predicted: [0, 1, 1], truth: [0, 1, 0], classes: 3)
        #expect(partial.presentClasses == [0, 1])
        expectNear([partial.macroRecall], [(0.5 + 1) / 2])
    }

    @Test("Init follows torch.nn.init: gains, fans, bounds and standard deviations")
    func initialization() throws {
        #expect(Init.gain(.relu) == Float(2).squareRoot())
        expectNear([Init.gain(.tanh), Init.gain(.leakyRelu(slope: 0.2)), Init.gain(.selu)].map(Double.init),
                   [1.6666666666666667, 1.3867504905630728, 0.75])
        #expect(try Init.fans([64, 32, 3, 3]) == (fanIn: 288, fanOut: 576))
        #expect(throws: TensorError.self) { try Init.fans([5]) }
        RandomState.manualSeed(3)
        let w = try Tensor.zeros([400, 300])
        try Init.kaimingUniform(w, nonlinearity: .relu)        // bound √6 / √300
        let values = try w.toArray()
        let bound = Float(6.0 / 300).squareRoot()
        #expect(values.allSatisfy { abs($0) <= bound } && values.contains { abs($0) > 0.95 * bound })
        try Init.kaimingNormal(w, mode: .fanOut, nonlinearity: .relu)   // std √2 / √400
        let normal = try w.toArray().map(Double.init)
        let std = (normal.map { $0 * $0 }.reduce(0, +) / Double(normal.count)).squareRoot()
        #expect(abs(std - (2.0 / 400).squareRoot()) < 0.002)
        try Init.xavierUniform(w)
        #expect(try w.toArray().allSatisfy { abs($0) <= Float(6.0 / 700).squareRoot() })
        try Init.constant(w, 0.25)
        #expect(try w.toArray().allSatisfy { $0 == 0.25 })
    }

    @Test("SyntheticData.circles makes scikit-learn's two rings: half on each, radii 1 and factor, seeded")
    func circles() throws {
        let (points, labels) = try SyntheticData.circles(count: 101, factor: 0.5, seed: 3)
        #expect(points.shape == [101, 2] && labels.shape == [101, 1])
        let xy = try points.toArray(), y = try labels.toArray()
        #expect(y.filter { $0 == 1 }.count == 51 && y.filter { $0 == 0 }.count == 50)
        for i in 0..<101 {
            let radius = (xy[2 * i] * xy[2 * i] + xy[2 * i + 1] * xy[2 * i + 1]).squareRoot()
            #expect(abs(radius - (y[i] == 1 ? 0.5 : 1)) < 1e-5)
        }
        #expect(try SyntheticData.circles(count: 101, noise: 0.1, seed: 3).points.toArray()
                == SyntheticData.circles(count: 101, noise: 0.1, seed: 3).points.toArray())
        #expect(throws: DataError.self) { try SyntheticData.circles(count: 1) }
        #expect(throws: DataError.self) { try SyntheticData.circles(count: 10, factor: 1) }
        #expect(throws: DataError.self) { try SyntheticData.circles(count: 10, noise: .nan) }
    }

    // MARK: Reports and run folders

    @Test("history.csv writes a float learning rate as it was given (0.001, not 0.0010000000474974513)")
    func csvNumbers() throws {
        #expect(Float(0.001).decimalDouble == 0.001)
        var history = History()
        history.append(EpochRecord(epoch: 1, trainLoss: 0.5, seconds: 1, samplesPerSecond: 10,
                                   learningRate: Float(0.001).decimalDouble))
        #expect(history.csvString().contains(",0.001\n"))
        #expect(!history.csvString().contains("0.00100000004"))
    }

    @Test("each run gets runs/version_N and runs/latest points at it; an old runs/latest folder is kept as a version")
    func runFolders() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-runs-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("latest"), withIntermediateDirectories: true)
        try Data("earlier".utf8).write(to: root.appendingPathComponent("latest/history.csv"))
        let first = try RunFolder.create(in: root)
        #expect(first.lastPathComponent == "version_1")
        #expect(try String(contentsOf: root.appendingPathComponent("version_0/history.csv"), encoding: .utf8) == "earlier")
        let second = try RunFolder.create(in: root)
        #expect(second.lastPathComponent == "version_2")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root.appendingPathComponent("latest").path) == "version_2")
        #expect(RunFolder.versions(in: root) == [0, 1, 2])
        let file = root.appendingPathComponent("version_2/file")
        try Data().write(to: file)
        #expect(throws: FileError.self) { try RunFolder.create(in: file) }
    }

    @Test("the binary cache lists its entries with what they were built for, and clear empties it")
    func cacheListing() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cache-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cache = BinaryCache(directory: folder)
        let device = try Device.shared()
        let described = String(repeating: "a1", count: 16), bare = String(repeating: "0f", count: 16)
        cache.store([1, 2, 3], key: described, for: device.info)
        cache.store([4, 5], key: bare)
        // Files that are not the cache's stay where they are.
        let foreign = folder.appendingPathComponent("notes.json")
        try Data("{}".utf8).write(to: foreign)
        try FileManager.default.createDirectory(at: cache.driverCacheFolder.appendingPathComponent("kcache"), withIntermediateDirectories: true)
        try Data(count: 100).write(to: cache.driverCacheFolder.appendingPathComponent("kcache/entry"))
        let entries = cache.entries()
        #expect(Set(entries.map(\.key)) == [described, bare])
        #expect(entries.first { $0.key == described }?.description?.device == device.info.name)
        #expect(entries.first { $0.key == bare }?.description == nil)
        #expect(cache.load(key: described) == [1, 2, 3])
        let freed = try cache.clear()
        #expect(freed >= 100 + 48 + 3)
        #expect(cache.entries().isEmpty && BinaryCache.bytes(under: cache.driverCacheFolder) == 0)
        #expect(FileManager.default.fileExists(atPath: foreign.path))
    }
}
