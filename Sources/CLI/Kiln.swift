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
        subcommands: [Train.self, Evaluate.self, Predict.self, Summary.self, Devices.self, Cache.self, BenchCommand.self, Tune.self])

    /// Parses and runs the command. A `ValidationError` found while running (a file that does not
    /// fit, an index out of range) prints the usage of the subcommand that was run, not kiln's.
    static func main() {
        // `kiln help NAME` for a NAME that is no subcommand is an error, not kiln's help and success.
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "help", arguments.count >= 2, !arguments[1].hasPrefix("-"),
           !(configuration.subcommands.map { $0._commandName } + ["help"]).contains(arguments[1]) {
            FileHandle.standardError.write(Data("Error: kiln has no command \"\(arguments[1])\"; the commands are \(configuration.subcommands.map { $0._commandName }.joined(separator: ", ")) (kiln --help).\n".utf8))
            exit(withError: ExitCode.validationFailure)
        }
        let command: any ParsableCommand
        // `kiln bench --json FILE` of earlier versions is `--json-file FILE` now.
        let upgraded = arguments.first == "bench" ? ["bench"] + BenchCommand.upgradingArguments(Array(arguments.dropFirst())) : arguments
        do { command = try parseAsRoot(upgraded) } catch { exit(withError: error) }
        var running = command
        do { try running.run() } catch let error as ValidationError {
            let type = Swift.type(of: command)
            let name = type._commandName
            FileHandle.standardError.write(Data("Error: \(error.message)\nUsage: \(usageString(for: type))\n  See 'kiln \(name) --help' for more information.\n".utf8))
            exit(withError: ExitCode.validationFailure)
        } catch {
            exit(withError: error)
        }
    }
}

/// `--device SEL`, shared by every command.
struct DeviceOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp(
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
    init(_ error: any Error) {
        // Kiln's own errors describe themselves in one line; a Foundation error is put into words
        // without its user-info dump.
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
            description = describeFileSystemError(error)
        } else {
            description = String(describing: error)
        }
    }
    init(message: String) { description = message }
}

/// An option's parser for a whole number ≥ 0 (a seed), whose error names the flag, the value and
/// the range.
func wholeNumber(_ flag: String) -> @Sendable (String) throws -> UInt64 {
    { text in
        guard let value = UInt64(text) else {
            throw ValidationError("\(flag) takes a whole number from 0 to \(UInt64.max); got \"\(text)\".")
        }
        return value
    }
}
