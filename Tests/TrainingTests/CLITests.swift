import Foundation
import KilnTestSupport
import Testing

/// Runs the `kiln` executable built beside the tests; returns exit status and output.
func kiln(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [directory, directory.deletingLastPathComponent()].map { $0.appendingPathComponent("kiln") }
    let binary = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
                              "the kiln executable is not built beside the tests (swift build --build-tests builds it)")
    let process = Process()
    process.executableURL = binary
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
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]]
        #expect(parsed?.first?["selectors"] != nil)
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
}
