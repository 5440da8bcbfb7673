import ArgumentParser
import Foundation
import Kiln
import KilnBenchmarks

@main
struct KilnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Deep learning in Swift on any OpenCL device.",
        version: kilnVersion,
        subcommands: [Train.self, Evaluate.self, Predict.self, Summary.self, Devices.self, BenchCommand.self])
}

/// `--device SEL`, shared by every command.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Device selector: gpu, cpu, gpu:N, cpu:N, P:D, or part of a device or platform name. Default: $KILN_DEVICE, else the first GPU, else the first device.",
        valueName: "selector"))
    var device: String?

    /// Opens the selected device (or the default one).
    func open(profiling: Bool = false) throws -> Device {
        try Device.open(device, profiling: profiling)
    }
}

/// Errors reach the user as one clear message and a non-zero exit, never a stack trace.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ error: any Error) { description = String(describing: error) }
    init(message: String) { description = message }
}
