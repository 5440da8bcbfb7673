import ArgumentParser
import Foundation
import Kiln

/// `--hidden`, `--activation`, `--batchnorm`, `--dropout`: the MLP that `--model mlp` (the
/// default) means, for `train` and for plain PyTorch state dicts in `evaluate`, `predict` and `summary`.
struct ArchitectureOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Hidden layer sizes of the MLP, comma-separated.", valueName: "sizes"))
    var hidden = "256,128"

    @Option(help: "Activation between the MLP's layers: relu, leaky_relu, gelu, tanh or sigmoid.")
    var activation = "relu"

    @Flag(help: "Add BatchNorm1d after each hidden Linear of the MLP.")
    var batchnorm = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Dropout probability after each hidden activation of the MLP.", valueName: "p"))
    var dropout: Float = 0

    func spec(inputs: Int, classes: Int) throws -> MLPSpec {
        let sizes = hidden.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !hidden.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1 << 20 }) else {
            throw ValidationError("--hidden takes positive sizes separated by commas, such as 256,128; got \"\(hidden)\".")
        }
        guard let kind = Activation(name: activation) else {
            throw ValidationError("--activation must be one of relu, leaky_relu, gelu, tanh, sigmoid; got \"\(activation)\".")
        }
        guard dropout >= 0, dropout < 1 else { throw ValidationError("--dropout must be in [0, 1); got \(dropout).") }
        return MLPSpec(inputs: inputs, hidden: sizes.compactMap { $0 }, classes: classes, activation: kind,
                       batchNorm: batchnorm, dropout: dropout)
    }

    /// The architecture a name gives: `mlp` (these flags), `cnn`, or a JSON file of layers, for
    /// samples of `featureShape` (the first layer decides whether they are rows or images).
    func architecture(_ name: String, features: Int, featureShape: [Int], classes: Int) throws -> ModelSpec {
        var spec: ModelSpec
        switch name.lowercased() {
        case "mlp": spec = try self.spec(inputs: features, classes: classes).architecture
        case "cnn": spec = ModelSpec.cnn
        default:
            let url = URL(fileURLWithPath: name)
            guard name.hasSuffix(".json") || FileManager.default.fileExists(atPath: url.path) else {
                throw ValidationError("--model takes mlp, cnn or an architecture file (FILE.json); got \"\(name)\".")
            }
            let data: Data
            do { data = try readSmallFile(url, limit: 1 << 20) } catch {
                throw Failure(message: "Cannot read the architecture \(name): \(error)")
            }
            spec = try ModelSpec.parse(data)
        }
        if spec.inputShape == nil { spec.inputShape = ModelSpec.inputShape(for: spec.layers, features: features, featureShape: featureShape) }
        guard let shape = spec.inputShape else { throw Failure(message: "The architecture has no input shape.") }
        let shapes = try spec.outputShapes(for: shape)
        guard checkedProduct(shape) == features else {
            throw Failure(message: "The architecture takes samples of \(shape), but the data's have \(features) values (\(featureShape)).")
        }
        guard shapes.last == [classes] else {
            throw Failure(message: "The architecture ends in \(shapes.last ?? shape) values per sample, but the data has \(classes) classes: make the last layer give \(classes).")
        }
        return spec
    }
}

/// `--architecture mlp|cnn|FILE.json` for a model file that does not record one (a plain PyTorch
/// state dict), with the MLP flags.
struct LoadOptions: ParsableArguments {
    @Option(name: [.customLong("architecture"), .customLong("arch")],
            help: ArgumentHelp("The architecture of a model file that does not record one (a PyTorch state dict): mlp (with --hidden, --activation, --batchnorm), cnn, or FILE.json.", valueName: "name"))
    var architecture: String?

    @OptionGroup var mlp: ArchitectureOptions

    /// The flags' values are checked even where the file's own architecture makes them moot.
    func validate() throws {
        if let architecture, architecture.isEmpty { throw ValidationError("--architecture takes mlp, cnn or FILE.json; got an empty name.") }
        _ = try mlp.spec(inputs: 1, classes: 1)
    }
}

extension ModelSpec {
    /// Whether a model file's metadata records an architecture.
    static func from(metadataOf file: SafeTensorsFile) -> Bool {
        file.metadata[ModelSpec.metadataKey] != nil || file.metadata[MLPSpec.metadataKey] != nil
    }
}

/// The bytes of a regular file of at most `limit` bytes (no FIFOs, devices or folders).
func readSmallFile(_ url: URL, limit: Int) throws -> Data {
    try readRegularFile(url, what: "architecture file", limit: limit)
}

/// Loads a model file: Kiln's (architecture in its metadata) or a plain PyTorch state dict with
/// `--architecture`. The file's tensors are checked against the architecture's shapes before the
/// model is built, so a forged or mismatched file costs no allocation.
func loadModel(file: String, options: LoadOptions, features: Int, featureShape: [Int], classes: Int,
               device: Device) throws -> (Sequential, ModelSpec) {
    let url = URL(fileURLWithPath: file)
    guard FileManager.default.fileExists(atPath: url.path) else { throw Failure(message: "No model file at \(file).") }
    let contents = try SafeTensorsFile(contentsOf: url)
    var spec: ModelSpec
    if let recorded = try ModelSpec.from(metadata: contents.metadata) {
        if let named = options.architecture {
            throw ValidationError("\(file) records its own architecture; --architecture \(named) is for files that do not (a PyTorch state dict). Leave it out.")
        }
        spec = recorded
        if spec.inputShape == nil {
            spec.inputShape = ModelSpec.inputShape(for: spec.layers, features: features, featureShape: featureShape)
        }
        if let shape = spec.inputShape { _ = try spec.outputShapes(for: shape) }
    } else {
        // A plain state dict: the architecture named, or the MLP of the flags (as before --architecture).
        spec = try options.mlp.architecture(options.architecture ?? "mlp", features: features, featureShape: featureShape,
                                            classes: classes)
    }
    let hint = ModelSpec.from(metadataOf: contents) ? "" : " It records no architecture (a PyTorch state dict?): name it with --architecture mlp (and --hidden, --activation, --batchnorm as for kiln train), cnn or FILE.json."
    let expected = try spec.stateShapes()
    if let problems = Module.stateDictProblems(expected: expected.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                               given: contents.tensors.mapValues(\.shape)) {
        throw Failure(message: "\(file) does not fit its architecture (\(problems)).\(hint)")
    }
    let model = try spec.makeModel(on: device)
    try Checkpoint.loadModel(model, from: contents, name: file, device: device)
    return (model, spec)
}

/// `kiln summary`: the module tree and torchinfo's table for a model file or an architecture.
struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's layers, output shapes and parameter counts (for a model file or an architecture).")

    @Option(help: ArgumentHelp("A model file (Kiln's, or a PyTorch state dict with --architecture).", valueName: "file"))
    var model: String?
    @OptionGroup var load: LoadOptions
    @OptionGroup var deviceOptions: DeviceOptions
    @Option(help: ArgumentHelp("The shape of one sample when the architecture does not say (default 1,28,28 for images, else 784).", valueName: "shape"))
    var input: String?
    @Option(parsing: .unconditional, help: "Classes of the data (for --architecture mlp).") var classes = 10

    func run() throws {
        do { try summarize() } catch let error as ValidationError { throw error } catch { throw Failure(error) }
    }

    func summarize() throws {
        guard classes >= 1 else { throw ValidationError("--classes must be at least 1; got \(classes).") }
        let shape = try input.map { text -> [Int] in
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty, parts.count <= 8, parts.allSatisfy({ ($0 ?? 0) >= 1 }),
                  (checkedProduct(parts.compactMap { $0 }) ?? .max) <= ModelSpec.maxExtent else {
                throw ValidationError("--input takes up to 8 positive sizes separated by commas, at most \(ModelSpec.maxExtent) values in all, such as 1,28,28; got \"\(text)\".")
            }
            return parts.compactMap { $0 }
        } ?? [28, 28]
        let features = checkedProduct(shape) ?? 0
        let device = try deviceOptions.open()
        let network: Sequential, spec: ModelSpec
        if let model {
            (network, spec) = try loadModel(file: model, options: load, features: features, featureShape: shape,
                                            classes: classes, device: device)
        } else if let name = load.architecture {
            spec = try load.mlp.architecture(name, features: features, featureShape: shape, classes: classes)
            network = try spec.makeModel(on: device)
        } else {
            throw ValidationError("Give --model FILE or --architecture mlp|cnn|FILE.json.")
        }
        print(network)
        print(try network.summary(inputShape: [1] + (spec.inputShape ?? [features]), on: device))
    }
}
