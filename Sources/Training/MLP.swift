import Foundation
import KilnDevice
import KilnKernels
import KilnLayers
import KilnTensor

/// A multilayer perceptron described by a few numbers: what `kiln train` builds and what its
/// model files record in their metadata (`kiln_architecture`), so `evaluate` and `predict` can
/// rebuild it.
public struct MLPSpec: Codable, Sendable, Equatable {
    /// Input features (784, the default, for flattened 28×28 images).
    public var inputs: Int
    /// The widths of the hidden layers, in order (default [256, 128]).
    public var hidden: [Int]
    /// Output logits, one per class (default 10).
    public var classes: Int
    /// The activation after each hidden layer (default `.relu`).
    public var activation: Activation
    /// Whether each hidden `Linear` is followed by a `BatchNorm1d` (default false).
    public var batchNorm: Bool
    /// The `Dropout` probability after each hidden activation (0, the default: no dropout layers).
    public var dropout: Float

    /// A spec; the defaults describe 784 → 256 → 128 → 10 with ReLU, no batch norm and no dropout.
    public init(inputs: Int = 784, hidden: [Int] = [256, 128], classes: Int = 10, activation: Activation = .relu,
                batchNorm: Bool = false, dropout: Float = 0) {
        self.inputs = inputs; self.hidden = hidden; self.classes = classes
        self.activation = activation; self.batchNorm = batchNorm; self.dropout = dropout
    }

    /// The metadata key under which model files keep the spec as JSON.
    public static let metadataKey = "kiln_architecture"

    /// `Sequential(Linear, [BatchNorm1d], activation, [Dropout], ..., Linear)`, named like the
    /// equivalent PyTorch `nn.Sequential`.
    public func makeModel(on device: Device? = nil) throws -> Sequential {
        guard inputs >= 1, classes >= 1, hidden.allSatisfy({ $0 >= 1 }) else {
            throw TensorError("MLP: layer sizes must be ≥ 1 (inputs \(inputs), hidden \(hidden), classes \(classes)).")
        }
        let device = try device ?? Tensor.defaultDevice()
        return try Tensor.withDevice(device) {
            var layers: [Module] = []
            var width = inputs
            for size in hidden {
                layers.append(try Linear(width, size))
                if batchNorm { layers.append(try BatchNorm1d(size)) }
                layers.append(ActivationLayer.make(activation))
                if dropout > 0 { layers.append(try Dropout(dropout)) }
                width = size
            }
            layers.append(try Linear(width, classes))
            return Sequential(layers)
        }
    }

    /// The spec as JSON text for metadata.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The spec from a model file's metadata, if it has one.
    public static func from(metadata: [String: String]) throws -> MLPSpec? {
        guard let text = metadata[metadataKey] else { return nil }
        do { return try JSONDecoder().decode(MLPSpec.self, from: Data(text.utf8)) } catch {
            throw TensorError("The model file's \(metadataKey) metadata is not a valid architecture: \(error).")
        }
    }
}

extension DataLoader: BatchSource {
    /// Samples in one epoch: `samplesPerEpoch`, or only those of full batches with `dropLast`.
    public var sampleCount: Int { dropLast ? batchesPerEpoch * batchSize : samplesPerEpoch }
    /// Batches in one epoch (`batchesPerEpoch`).
    public var batchCount: Int { batchesPerEpoch }
}
