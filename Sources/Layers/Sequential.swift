import KilnKernels
import KilnTensor

/// Modules applied in order, named `0`, `1`, ... as in PyTorch's `nn.Sequential`.
///
/// A `Linear` followed by `ReLU`, `LeakyReLU`, `Sigmoid` or `Tanh` runs as one kernel (the
/// activation fused into the matrix product's epilogue); the numbers are the same.
public final class Sequential: Module {
    public let layers: [any Module]
    public var training = true

    public init(_ layers: [any Module]) { self.layers = layers }

    public convenience init(_ layers: any Module...) { self.init(layers) }

    public var children: [(name: String, module: any Module)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var x = x
        var index = layers.startIndex
        while index < layers.endIndex {
            let layer = layers[index]
            if let linear = layer as? Linear, index + 1 < layers.endIndex,
               let activation = Self.fusable(layers[index + 1]) {
                x = try linear(x, activation: activation)
                index += 2
            } else {
                x = try layer(x)
                index += 1
            }
        }
        return x
    }

    /// The epilogue activation a `Linear` can apply for `module`, if any.
    static func fusable(_ module: any Module) -> MatmulActivation? {
        switch module {
        case is ReLU: .relu
        case let leaky as LeakyReLU: .leakyRelu(slope: leaky.slope)
        case is Sigmoid: .sigmoid
        case is Tanh: .tanh
        default: nil
        }
    }
}
