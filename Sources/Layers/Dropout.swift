import KilnKernels
import KilnTensor

/// Inverted dropout (`nn.Dropout`): in training, zeroes each element with probability `p` and
/// scales the rest by 1/(1−p); the identity in eval. Masks come from Kiln's seeded generator.
public final class Dropout: Module {
    /// The probability of zeroing each element.
    public let p: Float
    /// `nn.Dropout(p)`; `p` defaults to 0.5. Throws unless 0 ≤ `p` ≤ 1.
    public init(_ p: Float = 0.5) throws {
        guard p >= 0, p <= 1 else { throw TensorError("Dropout(\(p)): p must be in [0, 1].") }
        self.p = p
        super.init(nonThrowing: ())
    }
    /// In training with `p > 0`, `x` with each element zeroed with probability `p` and the rest
    /// scaled by 1/(1−p); otherwise `x` itself.
    public override func forward(_ x: Tensor) throws -> Tensor {
        guard training, p > 0 else { return x }
        let (seed, offset) = RandomState.next(count: x.count)
        return try x.dropout(p: p, seed: seed, offset: offset)
    }
    /// `p=0.5, inplace=False`
    public override var extraDescription: String { "p=\(p), inplace=False" }
}

/// Channel dropout (`nn.Dropout2d`): in training, zeroes each whole channel of each sample of
/// [N, C, H, W] with probability `p` and scales the rest by 1/(1−p); the identity in eval.
public final class Dropout2d: Module {
    /// The probability of zeroing each channel.
    public let p: Float
    /// `nn.Dropout2d(p)`; `p` defaults to 0.5. Throws unless 0 ≤ `p` ≤ 1.
    public init(_ p: Float = 0.5) throws {
        guard p >= 0, p <= 1 else { throw TensorError("Dropout2d(\(p)): p must be in [0, 1].") }
        self.p = p
        super.init(nonThrowing: ())
    }
    /// `x` [N, C, ...] with channels dropped in training.
    public override func forward(_ x: Tensor) throws -> Tensor {
        guard training, p > 0 else { return x }
        guard x.rank >= 3 else { throw TensorError("Dropout2d needs [N, C, H, W] input, got \(x.shape).") }
        let group = x.count / (x.shape[0] * x.shape[1])
        let (seed, offset) = RandomState.next(count: x.shape[0] * x.shape[1])
        return try x.dropout(p: p, seed: seed, offset: offset, group: group)
    }
    /// `p=0.5, inplace=False`
    public override var extraDescription: String { "p=\(p), inplace=False" }
}
