import Foundation
import KilnSupport
import KilnDevice
import KilnKernels
import KilnLayers
import KilnTensor

/// One number or a (rows, columns) pair in an architecture file: `3` or `[3, 5]`.
public struct SizeSpec: Codable, Sendable, Equatable {
    /// The value as a pair.
    public var size: Size2

    /// `size` itself.
    public init(_ size: Size2) { self.size = size }

    /// Reads `3` or `[3, 5]`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(Int.self) {
            size = Size2(n)
        } else {
            let pair = try container.decode([Int].self)
            guard pair.count == 2 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a size is a number or two numbers, got \(pair)"))
            }
            size = Size2(pair[0], pair[1])
        }
    }

    /// Writes a number for a square, else a pair.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if size.height == size.width { try container.encode(size.height) } else { try container.encode([size.height, size.width]) }
    }
}

/// One layer of an architecture in the vocabulary of PyTorch's layer names and the parity fixtures
/// (`{"type": "Conv2d", "in": 1, "out": 32, "kernel": 3, "padding": 1}`). Fields a layer does not
/// use are left out; those it uses but omits take PyTorch's defaults.
///
/// Types and their fields: `Linear` (in, out, bias), `Conv2d` (in, out, kernel, stride, padding,
/// dilation, bias), `MaxPool2d` and `AvgPool2d` (kernel, stride, padding), `AdaptiveAvgPool2d`
/// (output_size: 1), `BatchNorm1d` and `BatchNorm2d` (features, eps, momentum), `Flatten`
/// (start_dim, end_dim), `Unflatten` (dim, shape), `Dropout` and `Dropout2d` (p), `ReLU`,
/// `LeakyReLU` (slope), `Sigmoid`, `Tanh`, `GELU`, `Softmax`, `LogSoftmax`, `Identity`.
public struct LayerSpec: Codable, Sendable, Equatable {
    /// The layer's PyTorch name.
    public var type: String
    /// Input and output features or channels.
    public var `in`: Int?, out: Int?
    /// Whether a Linear or Conv2d has a bias (default true).
    public var bias: Bool?
    /// BatchNorm's channels, epsilon and momentum.
    public var features: Int?, eps: Double?, momentum: Double?
    /// LeakyReLU's negative slope.
    public var slope: Double?
    /// A window's size, step, padding and dilation.
    public var kernel: SizeSpec?, stride: SizeSpec?, padding: SizeSpec?, dilation: SizeSpec?
    /// Dropout's probability.
    public var p: Double?
    /// Flatten's axes, Unflatten's axis and shape, AdaptiveAvgPool2d's output size.
    public var startDim: Int?, endDim: Int?, dim: Int?, shape: [Int]?, outputSize: Int?

    enum CodingKeys: String, CodingKey {
        case type, `in`, out, bias, features, eps, momentum, slope, kernel, stride, padding, dilation, p
        case startDim = "start_dim", endDim = "end_dim", dim, shape, outputSize = "output_size"
    }

    /// A layer of `type` with no fields set.
    public init(_ type: String) { self.type = type }

    /// Every type this vocabulary has.
    public static let types = ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d",
                               "BatchNorm2d", "Flatten", "Unflatten", "Dropout", "Dropout2d", "ReLU", "LeakyReLU",
                               "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "Identity"]
}

/// An architecture: an `nn.Sequential` of `layers` (named `0`, `1`, ... as PyTorch names them),
/// and the shape of one input sample. Model files keep it as JSON in their metadata
/// (`kiln_model`), so `kiln evaluate`, `predict` and `summary` rebuild any model Kiln wrote;
/// `kiln train --model FILE.json` trains one from a file.
///
/// ```swift
/// let spec = try ModelSpec.parse(Data(#"[{"type": "Linear", "in": 4, "out": 3}, {"type": "ReLU"}]"#.utf8))
/// let model = try spec.makeModel()
/// ```
public struct ModelSpec: Codable, Sendable, Equatable {
    /// One sample's shape ([C, H, W] for images, [features] for rows); nil when unknown.
    public var inputShape: [Int]?
    /// The layers, in order.
    public var layers: [LayerSpec]

    enum CodingKeys: String, CodingKey { case inputShape = "input_shape", layers }

    /// An architecture of `layers` for samples of `inputShape`.
    public init(layers: [LayerSpec], inputShape: [Int]? = nil) {
        self.layers = layers
        self.inputShape = inputShape
    }

    /// The metadata key model files keep the architecture under.
    public static let metadataKey = "kiln_model"
    /// The largest extent of any axis of a layer's input or size (2^24), features of a flattened
    /// sample included.
    public static let maxExtent = 1 << 24

    /// An architecture from JSON: an array of layers, or an object with `layers` (and optionally
    /// `input_shape`, as a parity fixture's spec). Throws, naming the problem, for anything else.
    public static func parse(_ data: Data) throws -> ModelSpec {
        guard data.count <= 1 << 20 else { throw TrainingError("The architecture is \(data.count) bytes; an architecture file is a small JSON list of layers.") }
        let decoder = JSONDecoder()
        do {
            if let layers = try? decoder.decode([LayerSpec].self, from: data) { return ModelSpec(layers: layers) }
            return try decoder.decode(ModelSpec.self, from: data)
        } catch {
            throw TrainingError("The architecture is not a JSON list of layers (or an object with \"layers\"): \(describe(error))")
        }
    }

    /// The architecture a model file records: `kiln_model`, or the MLP description files written
    /// before it (`kiln_architecture`); nil when it records none (a plain PyTorch state dict).
    public static func from(metadata: [String: String]) throws -> ModelSpec? {
        if let text = metadata[metadataKey] {
            let spec = try parse(Data(text.utf8))
            return spec
        }
        return try MLPSpec.from(metadata: metadata).map { $0.architecture }
    }

    /// The architecture as compact JSON with sorted keys, for metadata.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The network `kiln train --model cnn` trains: two convolution blocks (3 × 3, batch norm, ReLU,
    /// 2 × 2 max pooling) of 32 and 64 channels, then 3136 → 128 → 10 with dropout 0.25.
    public static let cnn = ModelSpec(layers: [
        conv(1, 32), LayerSpec("BatchNorm2d").with { $0.features = 32 }, LayerSpec("ReLU"), pool(),
        conv(32, 64), LayerSpec("BatchNorm2d").with { $0.features = 64 }, LayerSpec("ReLU"), pool(),
        LayerSpec("Flatten"), linear(3136, 128), LayerSpec("ReLU"), LayerSpec("Dropout").with { $0.p = 0.25 },
        linear(128, 10),
    ], inputShape: [1, 28, 28])

    private static func conv(_ i: Int, _ o: Int) -> LayerSpec {
        LayerSpec("Conv2d").with { $0.in = i; $0.out = o; $0.kernel = SizeSpec(3); $0.padding = SizeSpec(1) }
    }
    private static func pool() -> LayerSpec { LayerSpec("MaxPool2d").with { $0.kernel = SizeSpec(2) } }
    private static func linear(_ i: Int, _ o: Int) -> LayerSpec { LayerSpec("Linear").with { $0.in = i; $0.out = o } }

    /// The sample shape a data set's samples take for `layers`: images [C, H, W] when the first
    /// layer is a convolution, pooling or 2-D batch norm (C from it, H × W from the data), else rows
    /// [features].
    public static func inputShape(for layers: [LayerSpec], features: Int, featureShape: [Int]) -> [Int] {
        guard let first = layers.first, ["Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d", "AdaptiveAvgPool2d"].contains(first.type),
              featureShape.count >= 2 else { return [features] }
        let (h, w) = (featureShape[featureShape.count - 2], featureShape[featureShape.count - 1])
        let c = first.type == "Conv2d" ? (first.in ?? 1) : (first.type == "BatchNorm2d" ? (first.features ?? 1) : 1)
        return checkedProduct([c, h, w]) == features ? [c, h, w] : [features]
    }

    // MARK: Checking and building

    /// The shape after every layer for one sample of `input` (no batch axis), checking each
    /// layer's fields and that its input fits, before anything is allocated. Throws a message
    /// naming the layer (`layer 3 (Linear): ...`).
    public func outputShapes(for input: [Int]) throws -> [[Int]] {
        guard !input.isEmpty, input.allSatisfy({ $0 >= 1 && $0 <= ModelSpec.maxExtent }) else {
            throw TrainingError("The input shape \(input) needs extents from 1 to \(ModelSpec.maxExtent).")
        }
        var shape = input
        var shapes: [[Int]] = []
        for (index, layer) in layers.enumerated() {
            shape = try layer.check(input: shape, at: index)
            shapes.append(shape)
        }
        return shapes
    }

    /// The model: each layer made as `LayerSpec.makeModule` makes it, in a `Sequential`. When
    /// `inputShape` is known the shapes are checked first (`outputShapes`).
    public func makeModel(on device: Device? = nil) throws -> Sequential {
        guard !layers.isEmpty else { throw TrainingError("The architecture has no layers.") }
        guard layers.count <= 10_000 else { throw TrainingError("The architecture has \(layers.count) layers; at most 10,000.") }
        if let inputShape { _ = try outputShapes(for: inputShape) }
        for (index, layer) in layers.enumerated() { try layer.checkFields(at: index) }
        let parameters = try parameterCount()
        guard parameters <= 1 << 28 else {
            throw TrainingError("The architecture has \(parameters) parameters; Kiln builds models of at most \(1 << 28).")
        }
        let device = try device ?? Tensor.defaultDevice()
        return try Tensor.withDevice(device) {
            Sequential(try layers.enumerated().map { index, layer in
                do { return try layer.makeModule() } catch {
                    throw TrainingError("layer \(index) (\(layer.type)): \(describe(error))")
                }
            })
        }
    }

    /// The state-dict entries the model will have, by name, with their shapes: what a model file
    /// must hold to load into it (checked before the model is built).
    public func stateShapes() throws -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        for (index, layer) in layers.enumerated() {
            try layer.checkFields(at: index)
            for (name, shape) in layer.stateShapes { shapes["\(index).\(name)"] = shape }
        }
        return shapes
    }

    /// Parameters of the model, counted from the architecture alone (saturating, never trapping).
    public func parameterCount() throws -> Int {
        var total = 0
        for (index, layer) in layers.enumerated() {
            try layer.checkFields(at: index)
            for (name, shape) in layer.stateShapes where !name.hasPrefix("running") && name != "num_batches_tracked" {
                let n = shape.reduce(1) { a, b in a.multipliedReportingOverflow(by: b).overflow ? Int.max : a * b }
                total = total.addingReportingOverflow(n).overflow ? Int.max : total + n
            }
        }
        return total
    }
}

extension MLPSpec {
    /// The same MLP as a layer list.
    public var architecture: ModelSpec {
        var layers: [LayerSpec] = []
        var width = inputs
        for size in hidden {
            layers.append(LayerSpec("Linear").with { $0.in = width; $0.out = size })
            if batchNorm { layers.append(LayerSpec("BatchNorm1d").with { $0.features = size }) }
            layers.append(LayerSpec(activation.layerName).with {
                if case .leakyRelu(let s) = activation { $0.slope = Double(s) }
            })
            if dropout > 0 { layers.append(LayerSpec("Dropout").with { $0.p = Double(dropout) }) }
            width = size
        }
        layers.append(LayerSpec("Linear").with { $0.in = width; $0.out = classes })
        return ModelSpec(layers: layers, inputShape: [inputs])
    }
}

extension Activation {
    /// The layer type that applies it (`ReLU`, `LeakyReLU`, ...).
    var layerName: String {
        switch self {
        case .relu: "ReLU"
        case .leakyRelu: "LeakyReLU"
        case .sigmoid: "Sigmoid"
        case .tanh: "Tanh"
        case .gelu: "GELU"
        }
    }
}

extension LayerSpec {
    /// A copy changed by `body` (for building specs in code).
    public func with(_ body: (inout LayerSpec) -> Void) -> LayerSpec {
        var copy = self
        body(&copy)
        return copy
    }

    func fail(_ index: Int, _ problem: String) -> TrainingError {
        TrainingError("layer \(index) (\(type)): \(problem)")
    }

    /// A required size field, checked to be from 1 to 2^24.
    func size(_ value: Int?, _ name: String, at index: Int) throws -> Int {
        guard let value else { throw fail(index, "needs \"\(name)\".") }
        guard value >= 1, value <= 1 << 24 else { throw fail(index, "\"\(name)\" is \(value); it must be from 1 to \(1 << 24).") }
        return value
    }

    /// A window field (`kernel`, `stride`, ...), checked to be within `range`.
    func window(_ value: SizeSpec?, _ name: String, default fallback: Size2?, range: ClosedRange<Int>,
                at index: Int) throws -> Size2 {
        guard let size = value?.size ?? fallback else { throw fail(index, "needs \"\(name)\".") }
        guard range.contains(size.height), range.contains(size.width) else {
            throw fail(index, "\"\(name)\" is \(size); it must be from \(range.lowerBound) to \(range.upperBound).")
        }
        return size
    }

    /// A real field, checked to be finite and within `range`.
    func real(_ value: Double?, _ name: String, default fallback: Double, range: ClosedRange<Double>, at index: Int) throws -> Float {
        let v = value ?? fallback
        guard v.isFinite, range.contains(v) else {
            throw fail(index, "\"\(name)\" is \(v); it must be finite, from \(range.lowerBound) to \(range.upperBound).")
        }
        return Float(v)
    }

    /// Checks the fields this type needs, with no input shape.
    func checkFields(at index: Int) throws {
        switch type {
        case "Linear":
            _ = try size(self.in, "in", at: index); _ = try size(out, "out", at: index)
        case "Conv2d":
            _ = try size(self.in, "in", at: index); _ = try size(out, "out", at: index)
            _ = try window(kernel, "kernel", default: nil, range: 1...1024, at: index)
            _ = try window(stride, "stride", default: 1, range: 1...1024, at: index)
            _ = try window(padding, "padding", default: 0, range: 0...1024, at: index)
            _ = try window(dilation, "dilation", default: 1, range: 1...1024, at: index)
        case "MaxPool2d", "AvgPool2d":
            let k = try window(kernel, "kernel", default: nil, range: 1...1024, at: index)
            _ = try window(stride, "stride", default: k, range: 1...1024, at: index)
            let pad = try window(padding, "padding", default: 0, range: 0...1024, at: index)
            guard pad.height * 2 <= k.height, pad.width * 2 <= k.width else {
                throw fail(index, "the padding \(pad) is more than half the kernel \(k).")
            }
        case "AdaptiveAvgPool2d":
            guard (outputSize ?? 1) == 1 else { throw fail(index, "only \"output_size\": 1 (global pooling) is supported.") }
        case "BatchNorm1d", "BatchNorm2d":
            _ = try size(features, "features", at: index)
            _ = try real(eps, "eps", default: 1e-5, range: 0...1, at: index)
            _ = try real(momentum, "momentum", default: 0.1, range: 0...1, at: index)
        case "Dropout", "Dropout2d":
            _ = try real(p, "p", default: 0.5, range: 0...1, at: index)
        case "LeakyReLU":
            _ = try real(slope, "slope", default: 0.01, range: -1e6...1e6, at: index)
        case "Unflatten":
            guard let shape, !shape.isEmpty, shape.count <= 8, shape.allSatisfy({ $0 >= 1 && $0 <= 1 << 24 }) else {
                throw fail(index, "needs \"shape\": 1 to 8 extents of at least 1.")
            }
        case "Flatten", "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "LogSoftmax", "Identity":
            break
        default:
            throw fail(index, "unknown layer type; the vocabulary is \(LayerSpec.types.joined(separator: ", ")).")
        }
    }

    /// The sample shape after this layer for a sample of `input` (no batch axis).
    func check(input: [Int], at index: Int) throws -> [Int] {
        try checkFields(at: index)
        func want(_ condition: Bool, _ problem: @autoclosure () -> String) throws {
            if !condition { throw fail(index, problem()) }
        }
        switch type {
        case "Linear":
            let i = try size(self.in, "in", at: index)
            try want(input.last == i, "expects \(i) input features, but its input is \(input) (after the layers before).")
            return Array(input.dropLast()) + [try size(out, "out", at: index)]
        case "Conv2d", "MaxPool2d", "AvgPool2d":
            try want(input.count == 3, "needs an input of [C, H, W], but its input is \(input).")
            if type == "Conv2d" {
                let i = try size(self.in, "in", at: index)
                try want(input[0] == i, "expects \(i) input channels, but its input is \(input).")
            }
            let k = try window(kernel, "kernel", default: nil, range: 1...1024, at: index)
            let s = try window(stride, "stride", default: type == "Conv2d" ? 1 : k, range: 1...1024, at: index)
            let pad = try window(padding, "padding", default: 0, range: 0...1024, at: index)
            let d = type == "Conv2d" ? try window(dilation, "dilation", default: 1, range: 1...1024, at: index) : Size2(1)
            func outputs(_ n: Int, _ k: Int, _ s: Int, _ p: Int, _ d: Int) -> Int {
                let span = n + 2 * p - d * (k - 1) - 1
                return span < 0 ? 0 : span / s + 1
            }
            let (oh, ow) = (outputs(input[1], k.height, s.height, pad.height, d.height),
                            outputs(input[2], k.width, s.width, pad.width, d.width))
            try want(oh >= 1 && ow >= 1, "its window \(k) does not fit the input \(input) with padding \(pad).")
            return [type == "Conv2d" ? try size(out, "out", at: index) : input[0], oh, ow]
        case "AdaptiveAvgPool2d":
            try want(input.count == 3, "needs an input of [C, H, W], but its input is \(input).")
            return [input[0], 1, 1]
        case "BatchNorm1d", "BatchNorm2d":
            let f = try size(features, "features", at: index)
            try want(type == "BatchNorm2d" ? input.count == 3 : (1...2).contains(input.count),
                     "needs an input of \(type == "BatchNorm2d" ? "[C, H, W]" : "[C] or [C, L]"), but its input is \(input).")
            try want(input[0] == f, "expects \(f) channels, but its input is \(input).")
            return input
        case "Flatten":
            // Axes of the whole batch: start_dim 1 is the sample's first axis.
            let rank = input.count + 1
            let start = (startDim ?? 1) < 0 ? (startDim ?? 1) + rank : (startDim ?? 1)
            let end = (endDim ?? -1) < 0 ? (endDim ?? -1) + rank : (endDim ?? -1)
            try want(start >= 1 && end < rank && start <= end, "its axes \(startDim ?? 1)...\(endDim ?? -1) do not fit an input of \(input) (the batch is axis 0 and stays).")
            let s = start - 1, e = end - 1
            let merged = checkedProduct(input[s...e])
            try want(merged.map { $0 <= ModelSpec.maxExtent } ?? false,
                     "flattens \(Array(input[s...e])) into more than \(ModelSpec.maxExtent) features.")
            return Array(input[..<s]) + [merged ?? 0] + Array(input[(e + 1)...])
        case "Unflatten":
            let rank = input.count + 1
            let axis = (dim ?? 1) < 0 ? (dim ?? 1) + rank : (dim ?? 1)
            let shape = self.shape ?? []
            try want(axis >= 1 && axis < rank && checkedProduct(shape) == input[axis - 1],
                     "splits axis \(dim ?? 1) into \(shape), but its input is \(input).")
            return Array(input[..<(axis - 1)]) + shape + Array(input[axis...])
        case "Dropout2d":
            try want(input.count >= 2, "needs an input of [C, H, W], but its input is \(input).")
            return input
        default:
            return input
        }
    }

    /// The state-dict entries of this layer, by local name, with shapes.
    var stateShapes: [(String, [Int])] {
        switch type {
        case "Linear":
            let (i, o) = (self.in ?? 0, out ?? 0)
            return [("weight", [o, i])] + (bias ?? true ? [("bias", [o])] : [])
        case "Conv2d":
            let k = kernel?.size ?? Size2(1)
            let (i, o) = (self.in ?? 0, out ?? 0)
            return [("weight", [o, i, k.height, k.width])] + (bias ?? true ? [("bias", [o])] : [])
        case "BatchNorm1d", "BatchNorm2d":
            let f = features ?? 0
            return [("weight", [f]), ("bias", [f]), ("running_mean", [f]), ("running_var", [f]), ("num_batches_tracked", [])]
        default:
            return []
        }
    }

    /// The module this layer describes (fields checked by `checkFields` first).
    public func makeModule() throws -> Module {
        try checkFields(at: 0)
        switch type {
        case "Linear": return try Linear(self.in ?? 0, out ?? 0, bias: bias ?? true)
        case "Conv2d":
            return try Conv2d(self.in ?? 0, out ?? 0, kernelSize: kernel?.size ?? 1, stride: stride?.size ?? 1,
                              padding: padding?.size ?? 0, dilation: dilation?.size ?? 1, bias: bias ?? true)
        case "MaxPool2d": return try MaxPool2d(kernel?.size ?? 1, stride: stride?.size, padding: padding?.size ?? 0)
        case "AvgPool2d": return try AvgPool2d(kernel?.size ?? 1, stride: stride?.size, padding: padding?.size ?? 0)
        case "AdaptiveAvgPool2d": return try AdaptiveAvgPool2d(outputSize ?? 1)
        case "BatchNorm1d": return try BatchNorm1d(features ?? 0, eps: Float(eps ?? 1e-5), momentum: Float(momentum ?? 0.1))
        case "BatchNorm2d": return try BatchNorm2d(features ?? 0, eps: Float(eps ?? 1e-5), momentum: Float(momentum ?? 0.1))
        case "Flatten": return Flatten(startAxis: startDim ?? 1, endAxis: endDim ?? -1)
        case "Unflatten": return try Unflatten(axis: dim ?? 1, shape: shape ?? [])
        case "Dropout": return try Dropout(Float(p ?? 0.5))
        case "Dropout2d": return try Dropout2d(Float(p ?? 0.5))
        case "ReLU": return ReLU()
        case "LeakyReLU": return LeakyReLU(Float(slope ?? 0.01))
        case "Sigmoid": return Sigmoid()
        case "Tanh": return Tanh()
        case "GELU": return GELU()
        case "Softmax": return Softmax()
        case "LogSoftmax": return LogSoftmax()
        default: return Identity()
        }
    }
}

/// A decoding error as one line.
func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let context): return context.debugDescription
    case DecodingError.keyNotFound(let key, _): return "the field \"\(key.stringValue)\" is missing."
    case DecodingError.typeMismatch(_, let context):
        return "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type (\(context.debugDescription))."
    case DecodingError.valueNotFound(_, let context):
        return "\(context.codingPath.map(\.stringValue).joined(separator: ".")) is null."
    default: return String(describing: error)
    }
}
