import Foundation
import Kiln
import KilnTestSupport
import Testing

/// The `kiln` executable built beside the tests.
func kilnExecutable() throws -> String {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [directory, directory.deletingLastPathComponent()].map { $0.appendingPathComponent("kiln").path }
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) },
                        "the kiln executable is not built beside the tests (swift build --build-tests builds it)")
}

/// Runs the `kiln` executable built beside the tests; returns exit status and output.
func kiln(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try kilnExecutable())
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// `text` as JSON Lines: one object per line, every line an object (the test fails otherwise).
func jsonLines(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    try text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0).map { line in
        try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                     "not a JSON object: \(line.prefix(200))", sourceLocation: sourceLocation)
    }
}

/// A failure a user caused: non-zero exit, a short message containing `text`, no crash report.
func expectCleanFailure(_ arguments: [String], mentioning text: String, environment: [String: String] = [:],
                        sourceLocation: SourceLocation = #_sourceLocation) throws {
    let result = try kiln(arguments, environment: environment)
    let output = result.stdout + result.stderr
    #expect(result.status != 0, "kiln \(arguments.joined(separator: " ")) succeeded", sourceLocation: sourceLocation)
    #expect(output.contains(text), "kiln \(arguments.joined(separator: " ")): \(output.prefix(500))", sourceLocation: sourceLocation)
    #expect(!output.contains("Fatal error") && !output.contains("Backtrace") && !output.contains("crashed"),
            "kiln \(arguments.joined(separator: " ")) crashed: \(output.prefix(500))", sourceLocation: sourceLocation)
}

@Suite("kiln command line", .serialized)
struct CLITests {
    @Test("devices lists the PoCL device with its selectors; a bad selector fails with the listing")
    func devices() throws {
        let list = try kiln(["devices"])
        #expect(list.status == 0)
        #expect(list.stdout.contains("cpu:0") && list.stdout.contains("(default)"))
        let json = try kiln(["devices", "--json"])
        let parsed = try jsonLines(json.stdout)
        #expect(parsed.first?["selectors"] != nil && parsed.first?["type"] as? String == "device")
        try expectCleanFailure(["devices", "--device", "zzz"], mentioning: "Devices on this machine")
        try expectCleanFailure(["devices"], mentioning: "No OpenCL device matches the selector \"nope\"",
                               environment: ["KILN_DEVICE": "nope"])
    }

    @Test("wrong flags, missing files and bad values give one clear message and a non-zero exit")
    func errors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let corrupt = folder.appendingPathComponent("corrupt.safetensors")
        try Data("not a model".utf8).write(to: corrupt)

        try expectCleanFailure(["train", "--epochs", "0"], mentioning: "--epochs")
        try expectCleanFailure(["train", "--hidden", "abc"], mentioning: "--hidden")
        try expectCleanFailure(["train", "--optimizer", "lbfgs"], mentioning: "--optimizer")
        try expectCleanFailure(["train", "--no-such-flag"], mentioning: "no-such-flag")
        try expectCleanFailure(["train", "--data", "/nonexistent/folder", "--epochs", "1"], mentioning: "/nonexistent/folder")
        try expectCleanFailure(["evaluate", "--model", "/nonexistent/model.safetensors"], mentioning: "/nonexistent/model.safetensors")
        try expectCleanFailure(["evaluate", "--model", corrupt.path], mentioning: "corrupt.safetensors")
        try expectCleanFailure(["train", "--resume", corrupt.path, "--limit", "100", "--test-limit", "10", "--out", folder.path],
                               mentioning: "corrupt.safetensors")
    }

    @Test("train, then evaluate and predict with the model it wrote")
    func trainEvaluatePredict() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            #expect(ProcessInfo.processInfo.environment["CI"] != "true", "Fashion-MNIST is missing on CI")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-run-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let train = try kiln(["train", "--limit", "1000", "--test-limit", "200", "--epochs", "2", "--hidden", "64",
                              "--out", folder.path, "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let last = try #require(train.stdout.split(separator: "\n").last)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let accuracy = try #require(summary["test_accuracy"] as? Double)
        #expect((summary["epoch_seconds"] as? [Double])?.count == 2)
        for file in ["model.safetensors", "last.safetensors", "history.json", "history.csv", "curves.svg", "confusion.svg", "samples.svg"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) missing")
        }

        let model = folder.appendingPathComponent("model.safetensors").path
        let evaluate = try kiln(["evaluate", "--model", model, "--limit", "200", "--json"])
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(evaluate.stdout.utf8)) as? [String: Any])
        #expect(abs((metrics["accuracy"] as? Double ?? -1) - accuracy) < 1e-9)
        #expect((metrics["confusion_matrix"] as? [[Int]])?.count == 10)

        let predict = try kiln(["predict", "--model", model, "--index", "0,1,2"])
        #expect(predict.status == 0, "\(predict.stderr)")
        #expect(predict.stdout.split(separator: "\n").count == 3)
        #expect(predict.stdout.contains("p="))
        try expectCleanFailure(["predict", "--model", model, "--index", "99999"], mentioning: "out of range")

        let resumed = try kiln(["train", "--limit", "1000", "--test-limit", "200", "--epochs", "3", "--hidden", "64",
                                "--out", folder.path, "--resume", folder.appendingPathComponent("last.safetensors").path])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("Resumed") && resumed.stdout.contains("epoch 3/3") && !resumed.stdout.contains("epoch 1/3"))
    }

    @Test("every --json writes JSON Lines on stdout, one object per line with its type, and the lines for people on stderr")
    func jsonLinesEverywhere() throws {
        guard try fashionMNIST(.test, limit: 1) != nil else { return }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-lines-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let runs = root.appendingPathComponent("runs")
        let train = try kiln(["train", "--limit", "600", "--test-limit", "100", "--epochs", "2", "--hidden", "16",
                              "--runs", runs.path, "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        let trainLines = try jsonLines(train.stdout)
        #expect(trainLines.map { $0["type"] as? String } == ["epoch", "epoch", "result"])
        #expect(trainLines.first?["val_accuracy"] is Double && trainLines.first?["learning_rate"] as? Double == 0.001)
        #expect(trainLines.last?["run_folder"] as? String == runs.appendingPathComponent("version_0").path)
        #expect(train.stderr.contains("Test accuracy:") && train.stderr.contains("epoch 2/2"))
        let model = runs.appendingPathComponent("latest/model.safetensors").path

        let evaluate = try kiln(["evaluate", "--model", model, "--limit", "100", "--json"])
        let evaluation = try #require(try jsonLines(evaluate.stdout).first)
        #expect(evaluation["type"] as? String == "evaluation" && (evaluation["f1"] as? [String: Double])?.count == 10)
        let predict = try kiln(["predict", "--model", model, "--index", "4,7", "--json"])
        let predictions = try jsonLines(predict.stdout)
        #expect(predictions.map { $0["index"] as? Int } == [4, 7])
        #expect(predictions.allSatisfy { ($0["probabilities"] as? [Double])?.count == 10 && $0["true_class"] is Int })
        #expect(try jsonLines(kiln(["devices", "--json"]).stdout).allSatisfy { $0["type"] as? String == "device" })

        // The cache commands, on a cache of their own.
        let cacheHome = ["XDG_CACHE_HOME": root.appendingPathComponent("cache").path]
        _ = try kiln(["devices"], environment: cacheHome)
        let listed = try jsonLines(kiln(["cache", "--json"], environment: cacheHome).stdout)
        #expect(listed.last?["type"] as? String == "total")
        let cleared = try jsonLines(kiln(["cache", "clear", "--json"], environment: cacheHome).stdout)
        #expect(cleared.first?["type"] as? String == "cleared")
        #expect(try jsonLines(kiln(["cache", "--json"], environment: cacheHome).stdout).first?["entries"] as? Int == 0)

        let bench = try kiln(["bench", "--only", "softmax", "--repeats", "1", "--warmup", "0", "--json"])
        let benchLines = try jsonLines(bench.stdout)
        #expect(benchLines.first?["type"] as? String == "device" && benchLines.contains { $0["type"] as? String == "result" })
        // The --json FILE of earlier versions still writes the file.
        let file = root.appendingPathComponent("bench.json")
        #expect(try kiln(["bench", "--only", "softmax", "--repeats", "1", "--warmup", "0", "--json", file.path]).status == 0)
        #expect(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) is [String: Any])
    }

    @Test("each kiln train makes runs/version_N and points runs/latest at it; --resume continues in the checkpoint's folder")
    func runFolders() throws {
        guard try fashionMNIST(.test, limit: 1) != nil else { return }
        let runs = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-runs-\(UUID())")
        defer { try? FileManager.default.removeItem(at: runs) }
        let flags = ["--limit", "300", "--test-limit", "50", "--hidden", "8", "--runs", runs.path]
        for _ in 0..<2 { #expect(try kiln(["train", "--epochs", "1"] + flags).status == 0) }
        #expect(RunFolder.versions(in: runs) == [0, 1])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: runs.appendingPathComponent("latest").path) == "version_1")
        let resumed = try kiln(["train", "--epochs", "2", "--resume", runs.appendingPathComponent("version_0/last.safetensors").path] + flags)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(RunFolder.versions(in: runs) == [0, 1], "a resumed run makes no new folder")
        let history = try History(contentsOf: runs.appendingPathComponent("version_0/history.json"))
        #expect(history.records.map(\.epoch) == [1, 2])
    }

    /// The classes `kiln predict` printed, in order ("3: class 7 Sneaker  p=0.24 (true: ...)" lines).
    static func predictedClasses(_ output: String) -> [Int] {
        output.split(separator: "\n").compactMap { line in
            line.split(separator: " ").dropFirst(2).first.flatMap { Int($0) }
        }
    }

    @Test("train --model cnn on a slice, then evaluate, predict and summary with the file it wrote; PyTorch loads it (strict)")
    func convolutionalNetwork() throws {
        guard try fashionMNIST(.test, limit: 1) != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-cnn-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let train = try kiln(["train", "--model", "cnn", "--limit", "2000", "--test-limit", "500", "--epochs", "1",
                              "--out", folder.path, "--json"])
        #expect(train.status == 0, "\(train.stderr)")
        #expect(train.stderr.contains("Model: cnn, 421834 parameters, input [1, 28, 28]"), "with --json, the lines for people go to stderr")
        let last = try #require(train.stdout.split(separator: "\n").last)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let accuracy = try #require(summary["test_accuracy"] as? Double)
        #expect(accuracy > 0.5, "one epoch on 2,000 images: \(accuracy)")
        for file in ["model.safetensors", "last.safetensors", "history.json", "curves.svg", "confusion.svg", "samples.svg"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) missing")
        }
        let model = folder.appendingPathComponent("model.safetensors").path
        let evaluate = try kiln(["evaluate", "--model", model, "--limit", "500", "--json"])
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(evaluate.stdout.utf8)) as? [String: Any])
        #expect(abs((metrics["accuracy"] as? Double ?? -1) - accuracy) < 1e-9)

        let described = try kiln(["summary", "--model", model])
        #expect(described.status == 0, "\(described.stderr)")
        for text in ["Conv2d(32, 64, kernel_size=(3, 3)", "├─MaxPool2d: 1-8", "[1, 64, 7, 7]", "Total params: 421,834"] {
            #expect(described.stdout.contains(text), "summary lacks \(text)")
        }
        let predict = try kiln(["predict", "--model", model, "--index", (0..<64).map(String.init).joined(separator: ",")])
        #expect(predict.status == 0, "\(predict.stderr)")
        let classes = Self.predictedClasses(predict.stdout)
        #expect(classes.count == 64)
        guard pythonHasTorch else { return }
        // The same file in PyTorch's nn.Sequential (built from the file's own layer list): the same classes.
        let (status, output) = try runPython("check_kiln_model.py", [model, CNNInteropTests.expected.path])
        #expect(status == 0)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").compactMap { Int($0) } == classes)
    }

    @Test("a PyTorch CNN state dict evaluates with --architecture FILE.json (and cnn, with PyTorch installed); without it, a clear message")
    func pyTorchStateDict() throws {
        guard let test = try fashionMNIST(.test, limit: 64) else { return }
        let expected = try SafeTensorsFile(contentsOf: CNNInteropTests.expected)
        let classes = try #require(expected.tensors["classes"]).integers().map { Int($0) }
        let labels = test.labels
        func accuracy(_ predicted: [Int]) -> Double { Double(zip(predicted, labels).filter { $0 == $1 }.count) / 64 }
        let evaluate = try kiln(["evaluate", "--model", CNNInteropTests.stateDict.path, "--architecture",
                                 CNNInteropTests.architecture.path, "--limit", "64", "--json"])
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        let metrics = try #require(try JSONSerialization.jsonObject(with: Data(evaluate.stdout.utf8)) as? [String: Any])
        #expect(metrics["accuracy"] as? Double == accuracy(classes))
        try expectCleanFailure(["evaluate", "--model", CNNInteropTests.stateDict.path, "--limit", "64"], mentioning: "--architecture")
        try expectCleanFailure(["evaluate", "--model", CNNInteropTests.stateDict.path, "--architecture", "cnn", "--limit", "64"],
                               mentioning: "0.weight")
        guard pythonHasTorch else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-torch-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (model, outputs) = (folder.appendingPathComponent("cnn.safetensors"), folder.appendingPathComponent("expected.safetensors"))
        #expect(try runPython("make_torch_cnn.py", [model.path, outputs.path]).status == 0)
        let theirs = try #require(try SafeTensorsFile(contentsOf: outputs).tensors["classes"]).integers().map { Int($0) }
        let predict = try kiln(["predict", "--model", model.path, "--architecture", "cnn", "--index",
                                (0..<64).map(String.init).joined(separator: ",")])
        #expect(predict.status == 0, "\(predict.stderr)")
        #expect(Self.predictedClasses(predict.stdout) == theirs)
    }

    @Test("train --model FILE.json and --augment; layers that do not chain, and augmenting an MLP, fail naming the problem")
    func architectureFiles() throws {
        guard try fashionMNIST(.test, limit: 1) != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cli-json-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let good = folder.appendingPathComponent("net.json"), bad = folder.appendingPathComponent("bad.json")
        try Data("""
            [{"type": "Conv2d", "in": 1, "out": 12, "kernel": 5, "stride": 2, "padding": 2}, {"type": "ReLU"},
             {"type": "Flatten"}, {"type": "Linear", "in": 2352, "out": 10}]
            """.utf8).write(to: good)
        try Data("""
            {"layers": [{"type": "Conv2d", "in": 1, "out": 12, "kernel": 5, "stride": 2, "padding": 2},
                        {"type": "Flatten"}, {"type": "Linear", "in": 784, "out": 10}]}
            """.utf8).write(to: bad)
        let run = try kiln(["train", "--model", good.path, "--augment", "--limit", "512", "--test-limit", "100", "--epochs", "1",
                            "--out", folder.appendingPathComponent("run").path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("input [1, 28, 28], augmented"))
        let evaluate = try kiln(["evaluate", "--model", folder.appendingPathComponent("run/model.safetensors").path, "--limit", "100"])
        #expect(evaluate.status == 0, "\(evaluate.stderr)")
        try expectCleanFailure(["train", "--model", bad.path, "--epochs", "1", "--limit", "100"], mentioning: "Linear")
        try expectCleanFailure(["train", "--model", "mlp", "--augment", "--epochs", "1", "--limit", "100"], mentioning: "--augment")
        try expectCleanFailure(["train", "--model", "resnet", "--epochs", "1"], mentioning: "--model")
    }

    @Test("tune stores a result that bench then uses and names; --show tells a damaged file apart; --reset; bad flags fail cleanly")
    func tune() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tune-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let environment = ["KILN_TUNING_DIR": folder.path]
        let run = try kiln(["tune", "--budget", "60", "--only", "groups", "--json"], environment: environment)
        #expect(run.status == 0, "\(run.stderr.suffix(500))")
        let lines = try jsonLines(run.stdout)
        #expect(lines.contains { $0["type"] as? String == "progress" })
        let done = try #require(lines.last)
        #expect(done["type"] as? String == "tuned" && done["seconds"] is Double)
        let file = try #require(done["file"] as? String)
        #expect(FileManager.default.fileExists(atPath: file) && file.hasPrefix(folder.path))

        let show = try jsonLines(try kiln(["tune", "--show", "--json"], environment: environment).stdout)
        #expect(show.first?["status"] as? String == "tuned")
        let bench = try kiln(["bench", "kernels", "--only", "softmax", "--repeats", "2", "--warmup", "1", "--json"],
                             environment: environment)
        let benchLines = try jsonLines(bench.stdout)
        #expect(benchLines.first?["tuning"] as? String == "tuned")
        // A CPU device searches its work-groups (a GPU's trees have fixed shapes).
        if benchLines.first?["device_type"] as? String == "cpu" {
            #expect(lines.contains { $0["type"] as? String == "choice" && $0["rule"] != nil && $0["chosen"] != nil })
        }
        let results = benchLines.filter { $0["type"] as? String == "result" }
        #expect(!results.isEmpty && results.allSatisfy { ($0["config"] as? String)?.hasPrefix("tuned rows group") == true })
        #expect(bench.stderr.contains("Tuning: kiln tune of"))

        // A damaged file: said so, and the rule table used.
        try Data("{\"format\": 1, \"products\": [".utf8).write(to: URL(fileURLWithPath: file))
        let ignored = try kiln(["tune", "--show"], environment: environment)
        #expect(ignored.status == 0 && ignored.stdout.contains("Ignored:") && ignored.stdout.contains("rule table"))
        let untuned = try jsonLines(try kiln(["bench", "kernels", "--only", "softmax", "--repeats", "1", "--warmup", "0", "--json"],
                                             environment: environment).stdout)
        #expect((untuned.first?["tuning"] as? String)?.hasPrefix("ignored") == true)
        #expect(untuned.filter { $0["type"] as? String == "result" }.allSatisfy { ($0["config"] as? String)?.hasPrefix("rules") == true })

        let reset = try kiln(["tune", "--reset"], environment: environment)
        #expect(reset.status == 0 && !FileManager.default.fileExists(atPath: file))
        try expectCleanFailure(["tune", "--budget", "0"], mentioning: "--budget", environment: environment)
        try expectCleanFailure(["tune", "--budget", "nan"], mentioning: "--budget", environment: environment)
        try expectCleanFailure(["tune", "--only", "everything"], mentioning: "Unknown part", environment: environment)
        try expectCleanFailure(["tune", "--only", ""], mentioning: "Unknown part", environment: environment)
        try expectCleanFailure(["tune", "--show", "--reset"], mentioning: "cannot be combined", environment: environment)
        try expectCleanFailure(["tune", "--show"], mentioning: "KILN_TUNING=0", environment: ["KILN_TUNING": "0"])
    }
}
