import Foundation
import Testing
import KilnFuzzing

/// The regression corpus of the fuzz targets: every seed and every input a fuzzer found
/// (Fuzz/Corpus/<target>/), replayed through the same entries the fuzzers run. A reader that traps,
/// hangs or corrupts memory on one of them fails the run; `valid-*` files must parse, `invalid-*`
/// files must be rejected with an error, and the reproducers (`crash-*`, `timeout-*`, `oom-*`,
/// `leak-*`) must return, parsed or not as their own tests below say. Fuzz/Corpus/open-faults.txt
/// lists reproducers of faults not fixed yet, skipped until fixed.
@Suite struct FuzzCorpusReplay {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus")

    /// `target/file` names of open-faults.txt.
    static let open: Set<String> = {
        guard let text = try? String(contentsOf: corpus.appendingPathComponent("open-faults.txt"), encoding: .utf8) else { return [] }
        return Set(text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            return trimmed.split(separator: " ", maxSplits: 1).first.map(String.init)
        })
    }()

    static func files(_ target: String) -> [URL] {
        FuzzReplay.files(at: corpus.appendingPathComponent(target).path)
    }

    static let reproducerPrefixes = ["crash-", "timeout-", "oom-", "leak-"]

    /// Whether each replayable file of `target` parsed, by file name.
    static func replay(_ target: String) throws -> [String: Bool] {
        let entry = try #require(FuzzEntry.targets[target])
        var parsed: [String: Bool] = [:]
        for url in files(target) where !open.contains("\(target)/\(url.lastPathComponent)") {
            parsed[url.lastPathComponent] = entry(try Data(contentsOf: url))
        }
        return parsed
    }

    @Test("every corpus file of each target goes through its entry and returns; valid-* parse and invalid-* are rejected",
          arguments: ["safetensors", "idx", "csv", "metadata"])
    func replaysTheCorpus(target: String) throws {
        let parsed = try Self.replay(target)
        var valid = 0, invalid = 0
        for (name, parsed) in parsed.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("valid-") {
                #expect(parsed, "\(target)/\(name) is a valid seed but the reader rejected it")
                valid += 1
            } else if name.hasPrefix("invalid-") {
                #expect(!parsed, "\(target)/\(name) should be rejected with an error but parsed")
                invalid += 1
            }
        }
        #expect(parsed.count > 0, "Fuzz/Corpus/\(target) holds no inputs")
        #expect(valid > 0, "Fuzz/Corpus/\(target) holds no valid-* seed")
        #expect(invalid > 0, "Fuzz/Corpus/\(target) holds no invalid-* input")
    }

    @Test("architectures whose shape products overflow Int are refused, as JSON and in a model file's metadata (no trap)")
    func overflowingArchitecturesAreRefused() throws {
        let parsed = try Self.replay("metadata")
        let reproducers = parsed.filter { $0.key.hasPrefix("crash-") }
        #expect(reproducers.count >= 4)
        for (name, parsed) in reproducers { #expect(!parsed, "metadata/\(name) passed the shape checks") }
    }

    @Test("float tensors beyond Int64 (inf, 1e30) read as integers without trapping; the files themselves are valid")
    func integersOfHugeFloatsDoNotTrap() throws {
        let parsed = try Self.replay("safetensors")
        let reproducers = parsed.filter { $0.key.hasPrefix("crash-integers-") }
        #expect(reproducers.count == 2)
        for (name, parsed) in reproducers { #expect(parsed, "safetensors/\(name) is a valid file but was rejected") }
    }

    @Test("every corpus file is named valid-, invalid-, crash-, timeout-, oom- or leak-, so the replay knows what to expect")
    func corpusNamesSayWhatToExpect() {
        for target in FuzzEntry.targets.keys.sorted() {
            for url in Self.files(target) {
                let name = url.lastPathComponent
                #expect(["valid-", "invalid-"].contains(where: name.hasPrefix) || Self.reproducerPrefixes.contains(where: name.hasPrefix),
                        "\(target)/\(name) has no prefix saying whether it should parse")
            }
        }
    }

    @Test("open-faults.txt names only reproducers that are in the corpus")
    func openFaultsExist() {
        for entry in Self.open {
            #expect(FileManager.default.fileExists(atPath: Self.corpus.appendingPathComponent(entry).path),
                    "open-faults.txt lists \(entry), which is not in Fuzz/Corpus")
        }
    }

    @Test("the first byte of a csv input selects task, target column, delimiter and header as documented")
    func csvOptionsFromTheFirstByte() {
        let plain = FuzzEntry.CSVOptions(byte: UInt8(ascii: "0"))
        #expect(plain.task == .classification && !plain.targetFirst && plain.delimiter == "," && plain.hasHeader && !plain.byName)
        let other = FuzzEntry.CSVOptions(byte: 0x80 | 0x40 | 0b1111)
        #expect(other.task == .regression && other.targetFirst && other.delimiter == "|" && !other.hasHeader && other.byName)
        #expect(FuzzEntry.CSVOptions(byte: 0b0100).delimiter == ";")
        #expect(FuzzEntry.CSVOptions(byte: 0b1000).delimiter == "\t")
    }

    @Test("empty and one-byte inputs are rejected by every entry without trapping")
    func tinyInputs() {
        for (target, entry) in FuzzEntry.targets.sorted(by: { $0.key < $1.key }) {
            for data in [Data(), Data([0]), Data([0x1f]), Data([0x7b]), Data([0xff])] {
                #expect(!entry(data), "\(target) accepted \(Array(data))")
            }
        }
    }
}
