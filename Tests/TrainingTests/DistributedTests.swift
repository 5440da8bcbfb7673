import Foundation
import Kiln
import KilnTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `mpirun` on PATH, or nil. On CI (where setup.sh installs Open MPI) a missing one fails the test.
func mpirun(sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    let found = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        .map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    if found == nil {
        #expect(ProcessInfo.processInfo.environment["CI"] != "true",
                "mpirun is missing on CI: scripts/setup.sh installs openmpi-bin and libopenmpi-dev", sourceLocation: sourceLocation)
    }
    return found
}

/// The environment for `mpirun` here: root is allowed (CI runs as root), and each process gets one core.
let mpiEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"]

/// Starts `mpirun` with `arguments`, its stdout and stderr going to the returned pipe.
func startMPI(_ arguments: [String]) throws -> (process: Process, output: Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(mpirun()))
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(mpiEnvironment) { _, new in new }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    return (process, pipe)
}

/// Runs `mpirun` with `arguments` to the end and returns its status, output and duration.
func runMPI(_ arguments: [String]) throws -> (status: Int32, output: String, seconds: Double) {
    let start = Date()
    let (process, pipe) = try startMPI(arguments)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), Date().timeIntervalSince(start))
}

@Suite("Data-parallel training over MPI", .serialized)
struct DistributedTests {
    @Test("shards follow DistributedSampler: the ranks' k-th batches together are the k-th batch of one loader at N× the batch")
    func shards() throws {
        let data = try ArrayDataset(inputs: (0..<101).map(Float.init), featureShape: [1],
                                    targets: .classes((0..<101).map { $0 % 2 }, classes: 2))
        for ranks in 1...3 {
            let whole = try DataLoader(data, batchSize: 8 * ranks, shuffle: true, seed: 5)
            let shards = try (0..<ranks).map { rank -> DataLoader in
                let loader = try DataLoader(data, batchSize: 8, shuffle: true, seed: 5)
                loader.shard = try DataLoader.Shard(rank: rank, count: ranks)
                return loader
            }
            #expect(shards.allSatisfy { $0.batchesPerEpoch == whole.batchesPerEpoch && $0.samplesPerEpoch == (101 + ranks - 1) / ranks })
            for epoch in 0..<2 {
                for k in 0..<whole.batchesPerEpoch - 1 {   // the last batch of the padded shards repeats samples
                    let union = try shards.flatMap { Array(try $0.epoch(epoch).batch(k).sampleIndices) }
                    #expect(union.sorted() == Array(try whole.epoch(epoch).batch(k).sampleIndices).sorted(), "epoch \(epoch) batch \(k), \(ranks) ranks")
                }
                // Together the shards visit every sample (and repeat the first few to pad).
                let all = try shards.flatMap { try $0.epoch(epoch).map(\.sampleIndices).flatMap { $0 } }
                #expect(Set(all) == Set(0..<101) && all.count == ((101 + ranks - 1) / ranks) * ranks)
            }
        }
        #expect(throws: DataError.self) { try DataLoader.Shard(rank: 2, count: 2) }
    }

    /// The flags of a small, deterministic run (no dropout, no batch norm, no augmentation).
    func runFlags(_ folder: URL, batch: Int, epochs: Int = 1) -> [String] {
        ["train", "--limit", "1024", "--test-limit", "100", "--val-fraction", "0", "--hidden", "32", "--optimizer", "sgd",
         "--lr", "0.1", "--seed", "3", "--batch-size", String(batch), "--epochs", String(epochs), "--out", folder.path]
    }

    func parameters(_ file: URL) throws -> [String: [Float]] {
        let loaded = try SafeTensorsFile(contentsOf: file)
        return Dictionary(uniqueKeysWithValues: loaded.tensors.map { ($0.key, $0.value.floats()) })
    }

    @Test("2 ranks at batch 64 end with the parameters of 1 process at batch 128, and hold bit-identical parameters after every step")
    func equivalence() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let single = try kiln(runFlags(root.appendingPathComponent("single"), batch: 128))
        #expect(single.status == 0, "\(single.stderr)")
        let parallel = try runMPI(["-np", "2", try kilnExecutable()] + runFlags(root.appendingPathComponent("parallel"), batch: 64)
                                  + ["--check-replicas"])
        #expect(parallel.status == 0, "\(parallel.output)")
        #expect(parallel.output.contains("Data parallel: 2 processes"))
        let a = try parameters(root.appendingPathComponent("single/model.safetensors"))
        let b = try parameters(root.appendingPathComponent("parallel/model.safetensors"))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, values) in a {
            // The same sums in another order: float32 reassociation, nothing more.
            expectClose(try #require(b[name]), values, rtol: 1e-4, atol: 2e-6, name)
        }
        // The comparison can tell runs apart: a different global batch ends elsewhere.
        let other = try kiln(runFlags(root.appendingPathComponent("other"), batch: 64))
        #expect(other.status == 0)
        let c = try parameters(root.appendingPathComponent("other/model.safetensors"))
        #expect(a.contains { name, values in zip(values, c[name] ?? []).contains { abs($0 - $1) > 1e-3 } })
    }

    @Test("with BatchNorm, dropout, validation and ReduceLROnPlateau the replicas stay bit-identical through every step")
    func batchNormAndPlateau() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-bn-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try runMPI(["-np", "2", try kilnExecutable(), "train", "--limit", "1200", "--test-limit", "100", "--hidden", "32",
                                 "--batchnorm", "--dropout", "0.2", "--schedule", "plateau", "--lr", "0.05", "--epochs", "4",
                                 "--batch-size", "32", "--out", folder.path, "--check-replicas"])
        #expect(result.status == 0, "\(result.output.suffix(2000))")
        let history = try History(contentsOf: folder.appendingPathComponent("history.json"))
        #expect(history.records.count == 4 && history.records.allSatisfy { $0.validationLoss != nil })
    }

    @Test("a distributed run resumed from its checkpoint ends bit-identical to the uninterrupted run")
    func resume() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-resume-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let kilnPath = try kilnExecutable()
        let whole = try runMPI(["-np", "2", kilnPath] + runFlags(root.appendingPathComponent("whole"), batch: 64, epochs: 2))
        #expect(whole.status == 0, "\(whole.output)")
        let half = root.appendingPathComponent("half")
        let first = try runMPI(["-np", "2", kilnPath] + runFlags(half, batch: 64, epochs: 1))
        #expect(first.status == 0, "\(first.output)")
        let resumed = try runMPI(["-np", "2", kilnPath] + runFlags(half, batch: 64, epochs: 2)
                                 + ["--resume", half.appendingPathComponent("last.safetensors").path])
        #expect(resumed.status == 0 && resumed.output.contains("Resumed"), "\(resumed.output)")
        #expect(try parameters(half.appendingPathComponent("model.safetensors")) == parameters(root.appendingPathComponent("whole/model.safetensors")))
        // The checkpoint records its 2 processes: one process cannot continue it.
        let alone = try kiln(runFlags(half, batch: 64, epochs: 3) + ["--resume", half.appendingPathComponent("last.safetensors").path])
        #expect(alone.status != 0 && alone.stderr.contains("mpirun -np 2"), "\(alone.stderr)")
    }

    @Test("processes started with different flags all stop with the same clear error")
    func mismatch() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-mismatch-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let kilnPath = try kilnExecutable()
        let result = try runMPI(["-np", "1", kilnPath] + runFlags(folder, batch: 64) + [":", "-np", "1", kilnPath]
                                + runFlags(folder, batch: 32))
        #expect(result.status != 0)
        for rank in 0..<2 {
            #expect(result.output.contains("Error (rank \(rank)): Rank 1 of 2 was started with another configuration"), "\(result.output)")
        }
    }

    /// Whether this machine lets us make network namespaces (root with iproute2), probed once.
    static let namespacesWork: Bool = {
        let probe = "kiln-probe-\(getpid())"
        func ip(_ arguments: [String]) -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = arguments
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return -1 }
            process.waitUntilExit()
            return process.terminationStatus
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"), ip(["netns", "add", probe]) == 0 else { return false }
        _ = ip(["netns", "del", probe])
        return true
    }()

    @Test("two hosts talking TCP (network namespaces joined by a veth pair) train as one process at 2× the batch",
          .enabled(if: namespacesWork, "needs root and iproute2 to make network namespaces"))
    func twoHosts() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-hosts-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        let single = try kiln(runFlags(root.appendingPathComponent("single"), batch: 128))
        #expect(single.status == 0, "\(single.stderr)")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/two-hosts.sh")
        let process = Process()
        process.executableURL = script
        process.arguments = [try kilnExecutable()] + runFlags(root.appendingPathComponent("hosts"), batch: 64) + ["--check-replicas"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output.suffix(2000))")
        let a = try parameters(root.appendingPathComponent("single/model.safetensors"))
        let b = try parameters(root.appendingPathComponent("hosts/model.safetensors"))
        for (name, values) in a { expectClose(try #require(b[name]), values, rtol: 1e-4, atol: 2e-6, name) }
    }

    @Test("a rank that throws says so, naming itself, and ends the job at once")
    func throwingRank() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-throw-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let kilnPath = try kilnExecutable()
        let missing = folder.appendingPathComponent("no-such-data").path
        let result = try runMPI(["-np", "1", kilnPath] + runFlags(folder, batch: 64) + ["--data", missing, ":", "-np", "1", kilnPath]
                                + runFlags(folder, batch: 64))
        #expect(result.status != 0)
        #expect(result.output.contains("Error (rank 0 of 2):") && result.output.contains("no-such-data"), "\(result.output)")
        #expect(result.seconds < 60)
    }

    @Test("a rank killed mid-run ends the job with a non-zero exit in under 60 s")
    func killedRank() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-kill-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let (process, _) = try startMPI(["-np", "2", try kilnExecutable(), "train", "--limit", "20000", "--test-limit", "100",
                                         "--hidden", "32", "--epochs", "50", "--out", folder.path])
        defer { if process.isRunning { process.terminate() } }
        // Wait until both ranks train (the first epoch line), then kill rank 1 with SIGKILL.
        let deadline = Date().addingTimeInterval(120)
        var victim: pid_t?
        while Date() < deadline, process.isRunning, victim == nil {
            Thread.sleep(forTimeInterval: 0.5)
            if FileManager.default.fileExists(atPath: folder.appendingPathComponent("history.json").path) {
                victim = try childProcesses(of: process.processIdentifier).last
            }
        }
        let pid = try #require(victim, "the run never finished its first epoch")
        let killed = Date()
        kill(pid, SIGKILL)
        while process.isRunning, Date().timeIntervalSince(killed) < 60 { Thread.sleep(forTimeInterval: 0.2) }
        let seconds = Date().timeIntervalSince(killed)
        #expect(!process.isRunning, "mpirun still runs \(Int(seconds)) s after a rank was killed")
        if !process.isRunning { #expect(process.terminationStatus != 0) }
        #expect(seconds < 60)
    }

    @Test("SIGTERM to the ranks stops every rank after the same step, with a checkpoint the same ranks resume from")
    func signal() throws {
        guard try fashionMNIST(.test, limit: 1) != nil, mpirun() != nil else { return }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ddp-signal-\(UUID())")
        defer { try? FileManager.default.removeItem(at: folder) }
        let flags = ["train", "--limit", "20000", "--test-limit", "100", "--hidden", "32", "--out", folder.path]
        let (process, pipe) = try startMPI(["-np", "2", try kilnExecutable()] + flags + ["--epochs", "50"])
        defer { if process.isRunning { process.terminate() } }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, process.isRunning,
              !FileManager.default.fileExists(atPath: folder.appendingPathComponent("history.json").path) {
            Thread.sleep(forTimeInterval: 0.3)
        }
        // As mpirun forwards it (the test's own children may start with SIGTERM blocked, so the
        // ranks get it directly, one after the other, as a scheduler's signal arrives).
        for rank in try childProcesses(of: process.processIdentifier) {
            kill(rank, SIGTERM)
            Thread.sleep(forTimeInterval: 0.05)
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(output.contains("Interrupted by SIGTERM"), "\(output.suffix(1500))")
        let state = try CheckpointState(metadata: try SafeTensorsFile(contentsOf: folder.appendingPathComponent("last.safetensors")).metadata,
                                        file: "last.safetensors")
        #expect(state.worldSize == 2 && state.epoch >= 1)
        let resumed = try runMPI(["-np", "2", try kilnExecutable()] + flags
                                 + ["--epochs", String(state.epoch + 1), "--resume", folder.appendingPathComponent("last.safetensors").path])
        #expect(resumed.status == 0 && resumed.output.contains("Resumed"), "\(resumed.output.suffix(1500))")
    }

    /// The pids of `parent`'s children (from /proc), in increasing order.
    func childProcesses(of parent: pid_t) throws -> [pid_t] {
        let entries = try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { pid_t($0) }
        return entries.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[1]) == parent
        }.sorted()
    }
}
