import KilnKernels
import KilnTensor

/// Modules applied in order, named `0`, `1`, ... as in PyTorch's `nn.Sequential`.
///
/// A `Linear`, `Conv2d` or batch norm followed by an activation whose derivative follows from its
/// output (ReLU, LeakyReLU with a positive slope, Sigmoid, Tanh) runs the activation in the same
/// kernel (a matrix product's epilogue, the normalization's pass): one pass fewer, the same numbers.
///
/// ```swift
/// let model = Sequential(try Linear(784, 256), ReLU(), try Linear(256, 10))
/// print(model)          // Sequential( (0): Linear(...) (1): ReLU() (2): Linear(...) )
/// ```
public final class Sequential: Module {
    /// The modules, in the order they run.
    public let layers: [Module]

    /// Chains `layers` in order.
    public init(_ layers: [Module]) {
        self.layers = layers
        super.init(nonThrowing: ())
    }

    /// Chains the given modules in order: `Sequential(Linear(784, 256), ReLU(), Linear(256, 10))`.
    public convenience init(_ layers: Module...) { self.init(layers) }

    /// The layers named by position (`0`, `1`, ...), as in PyTorch's state dict keys.
    public override func members() -> [(name: String, member: ModuleMember)] {
        layers.enumerated().map { (String($0.offset), .module($0.element)) }
    }

    /// Runs `x` through every layer in order, fusing a layer with a following activation.
    public override func forward(_ x: Tensor) throws -> Tensor {
        var x = x
        var index = layers.startIndex
        // A summary records every layer's own output, so it runs them one by one.
        let fuse = SummaryRecorder.current == nil
        while index < layers.endIndex {
            let layer = layers[index]
            let next = index + 1 < layers.endIndex ? (layers[index + 1] as? ActivationLayer)?.activation : nil
            if fuse, let activation = next, activation.derivativeFromOutput, let layer = layer as? FusesActivation {
                x = try layer(x, activation: activation)
                index += 2
            } else {
                x = try layer(x)
                index += 1
            }
        }
        return x
    }
}

/// A layer that can run a following activation in its own kernel (`Sequential` uses it).
public protocol FusesActivation: Module {
    /// The layer's output with `activation` applied (fused when its derivative follows from the output).
    func callAsFunction(_ x: Tensor, activation: Activation?) throws -> Tensor
}

extension Linear: FusesActivation {}
extension Conv2d: FusesActivation {}
extension BatchNorm: FusesActivation {}
