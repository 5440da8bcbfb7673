import KilnKernels
import KilnTensor

/// Modules applied in order, named `0`, `1`, ... as in PyTorch's `nn.Sequential`.
///
/// A `Linear` followed by `ReLU`, `LeakyReLU`, `Sigmoid` or `Tanh` runs as one kernel (the
/// activation fused into the matrix product's epilogue); the numbers are the same.
public final class Sequential: Module {
    /// The modules, in the order they run.
    public let layers: [any Module]
    /// Training mode (see `Module.train()`, which also sets it on every layer).
    public var training = true

    /// Chains `layers` in order.
    public init(_ layers: [any Module]) { self.layers = layers }

    /// Chains the given modules in order: `Sequential(Linear(784, 256), ReLU(), Linear(256, 10))`.
    public convenience init(_ layers: any Module...) { self.init(layers) }

    /// The layers named by position (`0`, `1`, ...), as in PyTorch's state dict keys.
    public var children: [(name: String, module: any Module)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    /// Runs `x` through every layer in order, fusing a `Linear` with a following activation.
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
