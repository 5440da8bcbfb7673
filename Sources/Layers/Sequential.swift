import KilnKernels
import KilnTensor

/// Modules applied in order, named `0`, `1`, ... as in PyTorch's `nn.Sequential`.
///
/// A `Linear`, `Conv2d` or batch norm followed by an activation whose derivative follows from its
/// output (ReLU, LeakyReLU with a positive slope, Sigmoid, Tanh) runs the activation in the same
/// kernel (a matrix product's epilogue, the normalization's pass): one pass fewer, the same numbers.
/// A BatchNorm2d, such an activation (or none) and a `MaxPool2d(2)` run as one pooling pass that
/// normalizes and activates as it reads.
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
            // BatchNorm2d → (activation) → MaxPool2d(2): the pooling normalizes and activates as it reads.
            if fuse, let norm = layer as? BatchNorm, x.rank == 4 {
                let activation = next.flatMap { $0.derivativeFromOutput ? $0 : nil }
                let poolIndex = index + (activation == nil ? 1 : 2)
                if poolIndex < layers.endIndex, let pool = layers[poolIndex] as? MaxPool2d, pool.isTwoByTwo,
                   activation != nil || next == nil {
                    x = try norm.normalizedMaxPool(x, activation: activation)
                    index = poolIndex + 1
                    continue
                }
            }
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
