import ArgumentParser
import Dispatch
import Foundation
import Kiln

/// Everything one run of the suite measured; `--json-file FILE` writes it.
public struct BenchReport: Codable, Sendable {
    public var device: String
    public var device_type: String
    public var driver: String
    public var date: String
    public var command: String
    /// Seconds to build kernels.cl in this process, and whether Kiln's disk cache served it.
    public var build_seconds: Double
    public var build_from_disk_cache: Bool
    /// `tuned` (a `kiln tune` result was used), `rules`, or `ignored: why`.
    public var tuning: String?
    public var peak: Peak?
    public var results: [BenchResult]
}

/// `kiln bench` and `kiln-bench`: the benchmark suite.
public struct BenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "The benchmark suite: kernels (the default) and training epochs.",
        subcommands: [KernelBench.self, TrainBench.self],
        defaultSubcommand: KernelBench.self)

    public init() {}

    /// The arguments with the `--json FILE` of earlier versions (a file name after `--json`, or
    /// `--json=FILE`) spelled as today's `--json-file FILE`, so scripts written for them still work;
    /// `--json` alone is the JSON Lines flag.
    public static func upgradingArguments(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument.hasPrefix("--json=") {
                result += ["--json-file", String(argument.dropFirst("--json=".count))]
            } else if argument == "--json", i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") {
                result += ["--json-file", arguments[i + 1]]
                i += 1
            } else {
                result.append(argument)
            }
            i += 1
        }
        return result
    }
}

/// `kiln bench kernels`: matmul, memory-bound kernels and the device's peak.
public struct KernelBench: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Measure Kiln's kernels on a device: matmul GFLOP/s, memory-bound ops in GB/s, and the device's own peak.",
        discussion: """
            Each figure is the median of --repeats timed runs after --warmup runs, timed on the device \
            with OpenCL profiling events (wall time beside it), and shown as a percentage of the peak \
            the suite measures with its own microkernels (FMA throughput, copy bandwidth, empty-kernel launch).
            """)

    @Option(name: .long, help: ArgumentHelp("Device selector (gpu, cpu, gpu:N, P:D, or part of a name).", valueName: "selector"))
    var device: String?

    @Option(name: .customLong("json-file"), help: ArgumentHelp("Also write the results as one JSON document to this file.", valueName: "file"))
    var jsonFile: String?

    @Flag(help: "Write JSON Lines to stdout ({\"type\": \"device\"}, {\"type\": \"peak\"}, then one {\"type\": \"result\"} per figure, with the fields of --json-file) and everything else to stderr.")
    var json = false

    @Option(name: .long, help: "Timed runs per measurement (the median is reported).")
    var repeats = 10

    @Option(name: .long, help: "Untimed runs before timing.")
    var warmup = 3

    @Option(name: .long, parsing: .upToNextOption,
            help: "Only these groups: \(BenchSuite.groups.joined(separator: ", ")).")
    var only: [String] = []

    @Flag(name: .long, help: "Only measure start-up: opening the device, building kernels.cl, and the first launch of a few kernels.")
    var startup = false

    public init() {}

    public func validate() throws {
        guard repeats >= 1, warmup >= 0 else { throw ValidationError("--repeats must be ≥ 1 and --warmup ≥ 0.") }
        let unknown = only.flatMap { $0.split(separator: ",").map(String.init) }.filter { !BenchSuite.groups.contains($0) }
        guard unknown.isEmpty else {
            throw ValidationError("Unknown group(s) \(unknown.joined(separator: ", ")); choose from \(BenchSuite.groups.joined(separator: ", ")).")
        }
    }

    public func run() throws {
        do {
            let console = Console(json: json)
            let start = DispatchTime.now().uptimeNanoseconds
            let device = try Device.open(device, profiling: true)
            let runner = try BenchRunner(device: device, warmup: warmup, repeats: repeats)
            let buildSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            console.say("Device: \(device)")
            let source = runner.kernels.program.fromBinaryCache ? "from Kiln's disk cache" : "compiled"
            console.say("Open and build kernels.cl: \(String(format: "%.3f", buildSeconds)) s (\(source))")
            console.say(tuningLine(runner.kernels))
            if startup {
                // PoCL compiles each kernel for its work-group size at the first enqueue.
                let x: Buffer<Float> = try device.buffer(count: 1 << 16)
                for (name, body) in [("ew_axpy", { try runner.kernels.axpy(alpha: 1, x: x, y: x) }),
                                     ("bench_copy", { try runner.peakKernels.copy(x, into: x) })] as [(String, () throws -> Void)] {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try body()
                    device.queue.finish()
                    let first = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                    let t1 = DispatchTime.now().uptimeNanoseconds
                    try body()
                    device.queue.finish()
                    let second = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e6
                    console.say("First launch of \(name): \(String(format: "%.2f", first)) ms (second: \(String(format: "%.2f", second)) ms)")
                }
                return
            }
            let groups = only.isEmpty ? BenchSuite.groups : only.flatMap { $0.split(separator: ",").map(String.init) }
            var report = BenchReport(
                device: device.info.name, device_type: device.info.type.rawValue, driver: device.info.driverVersion,
                date: ISO8601DateFormatter().string(from: Date()),
                command: CommandLine.arguments.joined(separator: " "),
                build_seconds: buildSeconds, build_from_disk_cache: runner.kernels.program.fromBinaryCache,
                tuning: runner.kernels.tuned != nil ? "tuned" : runner.kernels.tuningIgnored.map { "ignored: \($0)" } ?? "rules",
                peak: nil, results: [])
            let peak = try runner.measurePeak()
            report.peak = peak
            console.say(String(format: "Peak: %.1f GFLOP/s FMA, %.1f GB/s copy, %.2f µs per queued launch",
                         peak.gflops, peak.gbps, peak.launch_us))
            try console.emit(["type": "device", "device": report.device, "device_type": report.device_type,
                              "driver": report.driver, "date": report.date, "command": report.command,
                              "build_seconds": report.build_seconds, "build_from_disk_cache": report.build_from_disk_cache,
                              "tuning": report.tuning ?? "rules"])
            try console.emit(peak, type: "peak")
            console.say(BenchSuite.header)
            for group in groups {
                for result in try BenchSuite.run(group, on: runner) {
                    console.say(BenchSuite.row(result))
                    try console.emit(result, type: "result")
                    report.results.append(result)
                }
            }
            if let jsonFile {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeAtomically(try encoder.encode(report), to: URL(fileURLWithPath: jsonFile))
                console.say("Wrote \(jsonFile)")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw BenchFailure(description: String(describing: error))
        }
    }
}

struct BenchFailure: Error, CustomStringConvertible { let description: String }

/// Which configuration the figures use: `kiln tune`'s result for the device, or the rule table (and why).
func tuningLine(_ kernels: KernelLibrary) -> String {
    if let tuned = kernels.tuned {
        return "Tuning: kiln tune of \(tuned.date) (\(tuned.products.filter { !$0.keepsRuleTable }.count) shapes with their own tiles; \"tuned\" below)"
    }
    if let reason = kernels.tuningIgnored { return "Tuning: ignored (\(reason)); the rule table" }
    return "Tuning: none stored for this device; the rule table (run `kiln tune`)"
}
