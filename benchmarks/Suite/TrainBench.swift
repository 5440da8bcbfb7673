import ArgumentParser
import Dispatch
import Foundation
import Kiln

/// What `kiln bench train` measured.
public struct TrainBenchReport: Codable, Sendable {
    public var device: String
    public var date: String
    public var command: String
    /// `mlp` or `cnn`.
    public var model: String
    public var batchnorm: Bool
    public var epoch_seconds: [Double]
    /// Median of the epochs after the first (compilation and warm-up).
    public var steady_epoch_seconds: Double
    public var samples_per_second: Double
    public var ms_per_step: Double
    public var launches_per_step: Double
    /// Buffer-pool misses (OpenCL allocations) per step in a steady epoch.
    public var allocations_per_step: Double
    public var pool_hit_rate: Double
    /// The most bytes of device buffers alive at once during a steady epoch.
    public var peak_bytes_live: Int
    public var test_accuracy: Double
    /// Kernel device time over the profiled epoch's wall time (how busy the device is).
    public var device_busy_fraction: Double
    /// Device time per kernel over one profiled epoch.
    public var kernels: [Profiler.Entry]
}

/// `kiln bench train`: training epochs of the MLP or the CNN on Fashion-MNIST, timed, counted and profiled.
public struct TrainBench: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training epochs of the 784-256-128-10 MLP or `kiln train`'s CNN (Adam, batch 128) on Fashion-MNIST's 60,000 images.",
        discussion: """
            Runs --epochs epochs (the first one compiles and warms up; the figure is the median of the \
            rest), then one more on a profiling queue for the per-kernel device times. Prints epoch \
            time, samples/s, kernel launches and allocations per step, pool statistics and the top kernels.
            """)

    @Option(name: .long, help: ArgumentHelp("Device selector.", valueName: "selector")) var device: String?
    @Option(help: ArgumentHelp("An MNIST-format folder.", valueName: "dir")) var data = MNISTDataset.defaultFolder.path
    @Option(help: "Epochs to time (the first is warm-up).") var epochs = 4
    @Option(help: "The model: mlp (784-256-128-10) or cnn (the architecture of `kiln train --model cnn`).") var model = "mlp"
    @Flag(help: "Add BatchNorm1d after each hidden Linear of the MLP.") var batchnorm = false
    @Option(name: .customLong("json-file"), help: ArgumentHelp("Also write the results as one JSON document to this file.", valueName: "file"))
    var jsonFile: String?
    @Flag(help: "Write the results as one JSON line ({\"type\": \"train_bench\"}, the fields of --json-file) to stdout and everything else to stderr.")
    var json = false

    public init() {}

    public func validate() throws {
        guard epochs >= 2 else { throw ValidationError("--epochs must be ≥ 2 (the first is warm-up).") }
        guard ["mlp", "cnn"].contains(model) else { throw ValidationError("--model must be mlp or cnn, got '\(model)'.") }
    }

    public func run() throws {
        do { try measure() } catch { throw BenchFailure(description: String(describing: error)) }
    }

    func measure() throws {
        let console = Console(json: json)
        let folder = URL(fileURLWithPath: data)
        let train = try MNISTDataset(folder: folder, split: .train)
        let test = try MNISTDataset(folder: folder, split: .test)
        // Timed epochs on a plain queue; the profile on a second, profiling one.
        let plain = try Device.open(device)
        console.say("Device: \(plain)")
        let (times, stats, launches, steps, accuracy) = try epochsOn(plain, train: train, test: test, count: epochs)
        let steady = median(Array(times.dropFirst()))
        console.say("Epoch seconds: \(times.map { String(format: "%.3f", $0) }.joined(separator: ", ")) (first: compile and warm-up)")
        console.say(String(format: "Steady epoch: %.3f s, %.0f samples/s, %.3f ms/step, test accuracy %.2f%%",
                     steady, Double(train.count) / steady, steady / Double(steps) * 1e3, accuracy * 100))
        console.say(String(format: "Per step: %.1f kernel launches, %.3f allocations (pool hit rate %.2f%% in a steady epoch)",
                     Double(launches) / Double(steps), Double(stats.misses) / Double(steps), stats.hitRate * 100))
        console.say("Pool: \(formatBytes(stats.peakBytesLive)) peak live, \(formatBytes(stats.bytesCached)) cached")

        let profiled = try Device.open(device, profiling: true)
        let (profiledTimes, _, _, _, _) = try epochsOn(profiled, train: train, test: test, count: 1, profileLast: true)
        let kernelSeconds = Double(profiled.queue.profiler.summary().reduce(0) { $0 + $1.nanoseconds }) / 1e9
        let busy = kernelSeconds / max(profiledTimes[0], 1e-9)
        console.say("Device time per kernel over one profiled epoch:")
        console.say(profiled.queue.profiler.table(top: 15))
        console.say(String(format: "Kernels: %.3f s of device time in a %.3f s profiled epoch (%.1f%% busy)",
                     kernelSeconds, profiledTimes[0], busy * 100))

        do {
            let report = TrainBenchReport(
                device: plain.info.name, date: ISO8601DateFormatter().string(from: Date()),
                command: CommandLine.arguments.joined(separator: " "), model: model, batchnorm: batchnorm, epoch_seconds: times,
                steady_epoch_seconds: steady, samples_per_second: Double(train.count) / steady,
                ms_per_step: steady / Double(steps) * 1e3, launches_per_step: Double(launches) / Double(steps),
                allocations_per_step: Double(stats.misses) / Double(steps), pool_hit_rate: stats.hitRate,
                peak_bytes_live: stats.peakBytesLive, test_accuracy: accuracy, device_busy_fraction: busy,
                kernels: profiled.queue.profiler.summary())
            try console.emit(report, type: "train_bench")
            if let jsonFile {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeAtomically(try encoder.encode(report), to: URL(fileURLWithPath: jsonFile))
                console.say("Wrote \(jsonFile)")
            }
        }
    }

    /// Trains `count` epochs on `device`; returns epoch times, the pool statistics and kernel launches
    /// of the last epoch, steps per epoch and the final test accuracy.
    func epochsOn(_ device: Device, train: MNISTDataset, test: MNISTDataset, count: Int, profileLast: Bool = false) throws
        -> ([Double], BufferPool.Statistics, Int, Int, Double) {
        RandomState.manualSeed(0)
        let cnn = self.model == "cnn"
        let model = cnn ? try ModelSpec.cnn.makeModel(on: device) : try MLPSpec(batchNorm: batchnorm).makeModel(on: device)
        let inputShape = cnn ? ModelSpec.cnn.inputShape : nil
        let optimizer = try Adam(model.parameters, lr: 1e-3)
        let loader = try DataLoader(train, batchSize: 128, shuffle: true, seed: 0, on: device)
        loader.inputShape = inputShape
        let trainer = Trainer(maxEpochs: 1, logEvery: 1_000_000)
        trainer.log = { _ in }
        trainer.progressBar = false
        var times: [Double] = []
        var launches = 0
        for epoch in 0..<count {
            device.queue.finish()
            device.pool.resetCounters()
            device.queue.profiler.reset()
            let before = device.queue.launches
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try trainer.trainEpoch(model: model, loss: CrossEntropyLoss(), optimizer: optimizer, data: loader, epoch: epoch)
            device.queue.finish()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            launches = device.queue.launches - before
        }
        let stats = device.pool.statistics
        let testLoader = try DataLoader(test, batchSize: 1000, on: device)
        testLoader.inputShape = inputShape
        let (_, accuracy) = try trainer.evaluate(model: model, loss: CrossEntropyLoss(), data: testLoader)
        return (times, stats, launches, loader.batchesPerEpoch, accuracy ?? 0)
    }
}
