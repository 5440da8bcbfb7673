import Foundation
import KilnTensor
import KilnTraining

/// What the fuzz targets run: one reader per entry, on bytes from libFuzzer (`scripts/fuzz.sh`),
/// from the replay programs, or from the regression corpus (`Tests/FuzzTests`).
///
/// A thrown error is the expected answer to malformed input, so every entry swallows errors and
/// only says whether the input parsed. What counts as a bug is anything else: a trap (overflow,
/// index out of range, force unwrap), a hang, an AddressSanitizer report, or an allocation far
/// beyond what the input could justify. Nothing here touches an OpenCL device.
public enum FuzzEntry {
    /// The fuzz targets, by the name `scripts/fuzz.sh` and `Fuzz/Corpus/<name>/` use.
    public static let targets: [String: @Sendable (Data) -> Bool] = [
        "safetensors": safetensors, "idx": idx, "csv": csv, "metadata": metadata,
    ]

    /// Whether the entries step around faults already reported in Fuzz/Corpus/open-faults.txt
    /// (`KILN_FUZZ_SKIP_OPEN_FAULTS=1`, which scripts/fuzz.sh sets), so a shallow known trap does
    /// not stop every run at once and the fuzzer can look past it. Off in FuzzTests, where the
    /// reproducers of those faults are skipped instead until they are fixed. A guard is a line
    /// `if skipOpenFaults, <the input reaches the fault> { return false }` marked `open fault:`
    /// before the call that traps; remove it when the fault is fixed. None is open now.
    public static let skipOpenFaults = ProcessInfo.processInfo.environment["KILN_FUZZ_SKIP_OPEN_FAULTS"] == "1"

    /// `SafeTensorsFile(data:name:)`; after a successful parse, every tensor's `floats()` and
    /// `integers()`. True when the file parsed.
    @discardableResult
    public static func safetensors(_ data: Data) -> Bool {
        guard let file = try? SafeTensorsFile(data: data, name: "fuzz.safetensors") else { return false }
        var sink = 0
        for (_, tensor) in file.tensors {
            sink &+= tensor.floats().count
            sink &+= tensor.integers().count
        }
        blackHole(sink &+ file.metadata.count)
        return true
    }

    /// `IDXFile(data:name:)` (plain or gzipped) and, for gzip data, `Gzip.decompress` with a
    /// 16 MiB limit; plain data is also gzipped and parsed again. True when the IDX file parsed.
    @discardableResult
    public static func idx(_ data: Data) -> Bool {
        var parsed = false
        if let file = try? IDXFile(data: data, name: "fuzz.idx") {
            blackHole(file.dimensions.count &+ file.bytes.count)
            parsed = true
        }
        if Gzip.isGzip(data) {
            if let bytes = try? Gzip.decompress(data, name: "fuzz.gz", limit: 1 << 24) { blackHole(bytes.count) }
        } else if data.count <= 1 << 16, let packed = try? Gzip.compress([UInt8](data)),
                  let file = try? IDXFile(data: packed, name: "fuzz.idx.gz") {
            // The same bytes gzipped, so mutations of plain IDX headers also reach the gzip path
            // (incremental inflation, the compressed-size bound), which raw deflate mutations rarely do.
            blackHole(file.bytes.count)
        }
        return parsed
    }

    /// The options the first byte of a `csv` input selects; the rest is the CSV text (UTF-8).
    ///
    /// - bit 0: `.regression` when set, else `.classification`
    /// - bit 1: the target is column 0 when set, else the last column of the first line
    /// - bits 2-3: the delimiter: `,` `;` tab `|`
    /// - bit 6: no header row when set (so the printable `0`...`?` all read a header)
    /// - bit 7: the target by name (the first line's last cell) instead of by index
    public struct CSVOptions: Sendable, Equatable {
        public var task: CSVDataset.Task
        public var targetFirst: Bool
        public var delimiter: Character
        public var hasHeader: Bool
        public var byName: Bool

        public init(byte: UInt8) {
            task = byte & 1 != 0 ? .regression : .classification
            targetFirst = byte & 2 != 0
            delimiter = [",", ";", "\t", "|"][Int(byte >> 2 & 3)]
            hasHeader = byte & 0x40 == 0
            byName = byte & 0x80 != 0
        }
    }

    /// `CSVDataset(text:name:targetColumn:task:hasHeader:delimiter:)` with the options the first
    /// byte selects (`CSVOptions`). True when the table parsed.
    @discardableResult
    public static func csv(_ data: Data) -> Bool {
        guard let first = data.first else { return false }
        let options = CSVOptions(byte: first)
        let text = String(decoding: data.dropFirst(), as: UTF8.self)
        // The first line's cells, split naively (quotes ignored): enough to aim at the last column.
        let firstLine = text.prefix { $0 != "\n" && $0 != "\r" }
        let cells = firstLine.split(separator: options.delimiter, omittingEmptySubsequences: false)
        let target: CSVColumn
        if options.byName {
            target = .name(String(options.targetFirst ? cells.first ?? "" : cells.last ?? "")
                .trimmingCharacters(in: .whitespaces))
        } else {
            target = .index(options.targetFirst ? 0 : max(cells.count - 1, 0))
        }
        guard let table = try? CSVDataset(text: text, name: "fuzz.csv", targetColumn: target, task: options.task,
                                          hasHeader: options.hasHeader, delimiter: options.delimiter) else { return false }
        var sink = table.count &+ table.inputs.count &+ table.classValues.count &+ table.featureNames.count
        switch table.targets {
        case .classes(let classes, let count): sink &+= classes.count &+ count
        case .values(let values, let width): sink &+= values.count &+ width
        }
        blackHole(sink)
        return true
    }

    /// Model-file metadata, as `kiln evaluate`/`predict`/`summary` check it before building a
    /// model. Input starting with `[` or `{` is architecture JSON (`ModelSpec.parse`); anything
    /// else is a safetensors file whose metadata goes through `ModelSpec.from(metadata:)` (and the
    /// checkpoint-state reader). The spec found is then checked without a device: the input shape
    /// inferred for MNIST-like data when it has none, `outputShapes(for:)`, `stateShapes()`
    /// against the file's tensors, `parameterCount()`, and a JSON round trip. True when a spec was
    /// found and all of those checks passed.
    @discardableResult
    public static func metadata(_ data: Data) -> Bool {
        if let first = data.first, first == UInt8(ascii: "[") || first == UInt8(ascii: "{") {
            guard let spec = try? ModelSpec.parse(data) else { return false }
            return check(spec, tensors: nil)
        }
        guard let file = try? SafeTensorsFile(data: data, name: "fuzz.safetensors") else { return false }
        // The training state a checkpoint records (Trainer.restore reads it).
        if let state = try? CheckpointState(metadata: file.metadata, file: "fuzz.safetensors") {
            blackHole(state.epoch &+ state.step &+ state.metadata.count)
        }
        guard let spec = try? ModelSpec.from(metadata: file.metadata) else { return false }
        return check(spec, tensors: file.tensors.mapValues(\.shape))
    }

    /// The device-free checks of `loadModel` in Sources/CLI/Models.swift, for MNIST's 28 × 28 samples.
    static func check(_ recorded: ModelSpec, tensors: [String: [Int]]?) -> Bool {
        var spec = recorded
        var ok = true
        if spec.inputShape == nil {
            spec.inputShape = ModelSpec.inputShape(for: spec.layers, features: 784, featureShape: [28, 28])
        }
        if let shape = spec.inputShape {
            if let shapes = try? spec.outputShapes(for: shape) { blackHole(shapes.count) } else { ok = false }
        }
        if let expected = try? spec.stateShapes() {
            if let tensors {
                let missing = expected.keys.filter { tensors[$0] == nil && !$0.hasSuffix("num_batches_tracked") }
                let unexpected = tensors.keys.filter { expected[$0] == nil }
                let mismatched = expected.filter { name, shape in tensors[name].map { $0 != shape } ?? false }
                blackHole(missing.count &+ unexpected.count &+ mismatched.count)
            }
        } else { ok = false }
        if let count = try? spec.parameterCount() { blackHole(count) } else { ok = false }
        if let json = try? recorded.json(), let again = try? ModelSpec.parse(Data(json.utf8)) {
            blackHole(again.layers.count)
        } else { ok = false }
        return ok
    }

    /// Keeps a value alive so the optimizer cannot drop the work that made it.
    @inline(never)
    static func blackHole(_ value: Int) {
        if value == 0x5eed_f00d_dead_beef { print("") }
    }
}
