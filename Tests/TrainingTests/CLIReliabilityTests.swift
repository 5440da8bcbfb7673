import Foundation
import Kiln
import KilnTestSupport
import Testing

/// Whether Fashion-MNIST is installed (CI installs it; elsewhere the data tests skip).
private func haveData() -> Bool {
    if FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") { return true }
    #expect(ProcessInfo.processInfo.environment["CI"] != "true", "Fashion-MNIST is missing on CI")
    return false
}

/// A user error: non-zero exit, the first line of stderr is `Error: …` containing `text`, and
/// any usage shown is the usage of `command` (never kiln's top level).
private func expectOneLineError(_ arguments: [String], _ text: String, environment: [String: String] = [:],
                                sourceLocation: SourceLocation = #_sourceLocation) throws {
    let result = try kiln(arguments, environment: environment)
    let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
    #expect(result.status != 0, "kiln \(arguments.joined(separator: " ")) succeeded", sourceLocation: sourceLocation)
    #expect(first.hasPrefix("Error: ") && first.contains(text), "kiln \(arguments.joined(separator: " ")): \(result.stderr.prefix(400))",
            sourceLocation: sourceLocation)
    for junk in ["Missing value for", "NSCocoaErrorDomain", "Error Domain=", "Fatal error", "Usage: kiln <subcommand>"] {
        #expect(!result.stderr.contains(junk), "kiln \(arguments.joined(separator: " ")): \(result.stderr.prefix(400))",
                sourceLocation: sourceLocation)
    }
    if result.stderr.contains("Usage:") {
        #expect(result.stderr.contains("Usage: kiln \(arguments[0])"), "\(result.stderr.prefix(400))", sourceLocation: sourceLocation)
    }
}

/// Starts `kiln` with stdout and stderr going to `log`; returns the running process.
private func startKiln(_ arguments: [String], log: URL) throws -> Process {
    let binary = URL(fileURLWithPath: try kilnExecutable())
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let handle = try FileHandle(forWritingTo: log)
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    return process
}

@Suite("kiln command line: hostile input, signals, files", .serialized)
struct CLIReliabilityTests {
    @Test("negative, empty and out-of-range values are rejected naming the flag and the value")
    func badValues() throws {
        try expectOneLineError(["train", "--lr", "-1"], "--lr must be a positive number; got -1.0")
        try expectOneLineError(["train", "--lr", "nan"], "--lr must be a positive number; got nan")
        try expectOneLineError(["train", "--seed", "-1"], "--seed takes a whole number from 0 to 18446744073709551615; got \"-1\"")
        try expectOneLineError(["train", "--epochs", "-1"], "--epochs must be from 1 to 1000000; got -1")
        try expectOneLineError(["train", "--batch-size", "0"], "--batch-size must be from 1")
        try expectOneLineError(["train", "--momentum", "-0.5"], "--momentum must be a finite number ≥ 0; got -0.5")
        try expectOneLineError(["train", "--val-fraction", "-0.1"], "--val-fraction must be in [0, 1); got -0.1")
        try expectOneLineError(["train", "--limit", "-5"], "--limit must be ≥ 2; got -5")
        try expectOneLineError(["train", "--hidden", ","], "--hidden takes positive sizes")
        try expectOneLineError(["train", "--hidden", "256,,128"], "got \"256,,128\"")
        try expectOneLineError(["train", "--hidden", ""], "--hidden")
        try expectOneLineError(["train", "--hidden", "-1"], "--hidden takes positive sizes separated by commas, such as 256,128; got \"-1\"")
        try expectOneLineError(["evaluate", "--model", "m.safetensors", "--hidden", ","], "--hidden takes positive sizes")
        try expectOneLineError(["summary", "--architecture", "cnn", "--input", "1,28,28,1,1,1,1,1,1"], "--input takes up to 8 positive sizes")
        try expectOneLineError(["devices", "--device", "-1:0"], "No OpenCL device matches the selector \"-1:0\"")
        let selector = try kiln(["devices", "--device", "zzz"])
        #expect(selector.stderr.split(separator: "\n").count == 1 && selector.stderr.contains("Devices on this machine: cpu, cpu:0"),
                "\(selector.stderr)")
        try expectOneLineError(["help", "bogus"], "kiln has no command \"bogus\"")
        try expectOneLineError(["train", "--out", ""], "--out needs a folder name")
        try expectOneLineError(["train", "--resume", ""], "--resume needs a checkpoint file")
        try expectOneLineError(["predict", "--model", "m.safetensors", "--index", "-1"], "--index takes image indices ≥ 0")
        try expectOneLineError(["predict", "--model", "m.safetensors", "--index", "1,,2"], "got \"1,,2\"")
        try expectOneLineError(["train", "--accumulate", "0"], "--accumulate must be from 1 to 1048576; got 0")
        try expectOneLineError(["train", "--clip-grad-norm", "nan"], "--clip-grad-norm must be a positive number; got nan")
        try expectOneLineError(["train", "--clip-grad-value", "-2"], "--clip-grad-value must be a positive number; got -2.0")
        try expectOneLineError(["train", "--clip-grad-norm", "1", "--clip-grad-value", "1"], "not both")
        try expectOneLineError(["train", "--schedule", "warmup,,cosine"], "--schedule takes none, step, cosine, warmup, onecycle, plateau")
        try expectOneLineError(["train", "--schedule", "plateau,cosine"], "cannot be combined")
        try expectOneLineError(["train", "--schedule", "plateau", "--val-fraction", "0"], "needs validation data")
        try expectOneLineError(["train", "--runs", ""], "--runs needs a folder name")
        try expectOneLineError(["train", "--tensorboard", ""], "--tensorboard needs a folder name")
        try expectOneLineError(["cache", "bogus"], "bogus")
    }

    @Test("files that are folders, devices, pipes or in the way give one line naming the path; an unusable cache folder runs uncached")
    func badFiles() throws {
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let file = try folder.write(Data("x".utf8), "a-file")
        let fifo = folder.url.appendingPathComponent("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        try expectOneLineError(["evaluate", "--model", folder.url.path], "\(folder.url.path): it is a folder")
        try expectOneLineError(["evaluate", "--model", "/dev/zero"], "/dev/zero: it is not a regular file")
        try expectOneLineError(["evaluate", "--model", fifo.path], "\(fifo.path): it is not a regular file")
        try expectOneLineError(["train", "--model", fifo.path], "it is not a regular file")
        try expectOneLineError(["train", "--data", file.path, "--epochs", "1"], file.path)
        guard haveData() else { return }
        try expectOneLineError(["train", "--out", file.path, "--limit", "100", "--test-limit", "10", "--epochs", "1"],
                               "Cannot use \(file.path) as the run folder: it is a file, not a folder")
        try expectOneLineError(["train", "--out", file.path + "/inside", "--limit", "100", "--test-limit", "10", "--epochs", "1"],
                               "a-file is a file, not a folder")
        let devices = try kiln(["devices"], environment: ["XDG_CACHE_HOME": file.path])
        #expect(devices.status == 0 && devices.stdout.contains("cpu:0"), "\(devices.stderr)")
        #expect(devices.stderr.contains("warning: Cannot create the cache folder \(file.path)/kiln") && devices.stderr.contains("Running without caches"))
    }

    @Test("PoCL's cache lives in Kiln's folder; a run that died leaves it emptied for the next, unless another run is using it")
    func driverCacheRecovery() throws {
        let cache = try TempFolder()
        defer { cache.cleanUp() }
        let pocl = cache.url.appendingPathComponent("kiln/pocl"), users = cache.url.appendingPathComponent("kiln/pocl-users")
        func run() throws {
            var env = ProcessInfo.processInfo.environment
            env["XDG_CACHE_HOME"] = cache.url.path
            env["POCL_CACHE_DIR"] = nil
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try kilnExecutable())
            process.arguments = ["devices"]
            process.environment = env
            process.standardOutput = Pipe()
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
        }
        try run()
        #expect(FileManager.default.fileExists(atPath: pocl.path), "PoCL's cache is not under Kiln's folder")
        #expect(try FileManager.default.contentsOfDirectory(atPath: users.path).isEmpty, "a finished run left its mark")
        // A user that died (no such process) and a damaged entry: the next run starts clean.
        let junk = pocl.appendingPathComponent("damaged-entry")
        try Data("half a kernel".utf8).write(to: junk)
        try Data().write(to: users.appendingPathComponent("2147483646"))
        try run()
        #expect(!FileManager.default.fileExists(atPath: junk.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: users.path).isEmpty)
        // While another user is alive (this test's parent process stands in), nothing is removed.
        try Data("entry".utf8).write(to: junk)
        try Data().write(to: users.appendingPathComponent("2147483646"))
        try Data().write(to: users.appendingPathComponent(String(getppid())))
        try run()
        #expect(FileManager.default.fileExists(atPath: junk.path))
    }

    @Test("predict --images applies --index; a run-time error prints the usage of the subcommand that was run")
    func predictImages() throws {
        guard haveData() else { return }
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let train = try kiln(["train", "--limit", "300", "--test-limit", "50", "--epochs", "1", "--hidden", "16", "--out", folder.url.path])
        #expect(train.status == 0, "\(train.stderr)")
        let model = folder.url.appendingPathComponent("model.safetensors").path
        let test = try IDXFile(contentsOf: URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"))
        let five = try IDXFile(dimensions: [5, 28, 28], bytes: Array(test.bytes[..<(5 * 784)]))
        let images = try folder.write(five.encoded(), "five-idx3-ubyte")
        let all = try kiln(["predict", "--model", model, "--images", images.path])
        #expect(all.status == 0 && all.stdout.split(separator: "\n").count == 5, "\(all.stderr)")
        let two = try kiln(["predict", "--model", model, "--images", images.path, "--index", "1,3"])
        #expect(two.status == 0 && two.stdout.split(separator: "\n").count == 2, "\(two.stderr)")
        // The same images by index from the test set and from the file get the same classes.
        let fromTestSet = try kiln(["predict", "--model", model, "--index", "1,3"])
        #expect(CLITests.predictedClasses(two.stdout) == CLITests.predictedClasses(fromTestSet.stdout))
        try expectOneLineError(["predict", "--model", model, "--images", images.path, "--index", "5"],
                               "--index 5 is out of range: \(images.path) has 5 images")
        try expectOneLineError(["evaluate", "--model", model, "--architecture", "cnn"], "records its own architecture; --architecture cnn is for files that do not")
        // A 1-image file whose header declares 32768 × 32768 pixels is refused from the header.
        var bomb = Data([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0x80, 0, 0, 0, 0x80, 0])
        bomb.append(Data(count: 1 << 16))
        let huge = try folder.write(try Gzip.compress(Array(bomb)), "huge-idx3-ubyte.gz")
        try expectOneLineError(["predict", "--model", model, "--images", huge.path], huge.path)
        let usage = try kiln(["predict", "--model", model, "--index", "99999"])
        #expect(usage.stderr.contains("Usage: kiln predict") && !usage.stderr.contains("<subcommand>"), "\(usage.stderr)")
    }

    @Test("SIGINT and SIGTERM finish the step, save a resumable checkpoint, flush the log and exit 130 and 143")
    func signals() throws {
        guard haveData() else { return }
        for (signal, status) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            let folder = try TempFolder()
            defer { folder.cleanUp() }
            let log = folder.url.appendingPathComponent("log.txt")
            let run = folder.url.appendingPathComponent("run")
            let arguments = ["train", "--limit", "3000", "--test-limit", "100", "--hidden", "32", "--out", run.path]
            let process = try startKiln(arguments + ["--epochs", "200"], log: log)
            // Wait for the second epoch's line in the (redirected) log, then signal.
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, process.isRunning,
                  !(String(data: (try? Data(contentsOf: log)) ?? Data(), encoding: .utf8) ?? "").contains("epoch 2/200") {
                usleep(20_000)
            }
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            let text = String(decoding: try Data(contentsOf: log), as: UTF8.self)
            #expect(process.terminationReason == .exit && process.terminationStatus == status, "signal \(signal): status \(process.terminationStatus), \(text.suffix(400))")
            #expect(text.contains("epoch 1/200") && text.contains("Interrupted by \(signal == SIGINT ? "SIGINT" : "SIGTERM")"), "\(text.suffix(400))")
            let last = run.appendingPathComponent("last.safetensors")
            let state = try CheckpointState(metadata: SafeTensorsFile(contentsOf: last).metadata, file: last.path)
            #expect(state.epoch >= 2)
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.path).filter { $0.hasSuffix(".tmp") }
            #expect(leftovers.isEmpty, "\(leftovers)")
            // Resume for one more epoch (finishing the interrupted one when it stopped inside it).
            let resumed = try kiln(arguments + ["--epochs", String(state.epoch + 1), "--resume", last.path])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            #expect(resumed.stdout.contains("Resumed from") && resumed.stdout.contains("Test accuracy"))
        }
    }

    @Test("a write that runs out of space fails naming the file and keeps the previous checkpoint intact")
    func fullDisk() throws {
        guard haveData() else { return }
        let folder = try TempFolder()
        defer { folder.cleanUp() }
        let arguments = ["train", "--limit", "500", "--test-limit", "50", "--hidden", "64", "--out", folder.url.path]
        let first = try kiln(arguments + ["--epochs", "1"])
        #expect(first.status == 0, "\(first.stderr)")
        let last = folder.url.appendingPathComponent("last.safetensors")
        let before = try Data(contentsOf: last)
        // A file-size limit below the checkpoint's size stands in for a full disk (EFBIG, like ENOSPC).
        let quoted = (arguments + ["--epochs", "2", "--resume", last.path]).map { "'\($0)'" }.joined(separator: " ")
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let kilnPath = [binary, binary.deletingLastPathComponent()].map { $0.appendingPathComponent("kiln").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "kiln"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        // Under ThreadSanitizer its runtime writes a shadow file into $TMPDIR at start, which the
        // size limit would cut short (a SIGBUS inside TSan); a missing TMPDIR makes it skip that.
        let tsan = ProcessInfo.processInfo.environment["KILN_SANITIZER"] == "thread" ? "export TMPDIR=/nonexistent-kiln-tsan; " : ""
        process.arguments = ["-c", "\(tsan)trap '' XFSZ; ulimit -f 200; exec '\(kilnPath)' \(quoted)"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(stderr.contains("Cannot write \(last.path): File too large") && stderr.contains("the previous file, if any, is intact"), "\(stderr)")
        #expect(try Data(contentsOf: last) == before, "the failed write damaged last.safetensors")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.url.path).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }
}
