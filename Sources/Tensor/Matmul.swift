import KilnDevice
import KilnKernels

extension Tensor {
    /// The matrix product of two 2-D tensors, `op(self) · op(other)`, with op a transpose when asked.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        try Tensor.linear(self, other, bias: nil, activation: .none, transposeA: transposeA, transposeB: transposeB)
    }

    /// `act(op(a) · op(b) + bias)` in one kernel, with its gradient (the Linear layer's forward pass).
    /// The gradient of `a` is only computed when `a` requires grad (never for a model's input).
    public static func linear(_ a: Tensor, _ b: Tensor, bias: Tensor?, activation: MatmulActivation,
                              transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard a.rank == 2, b.rank == 2 else {
            throw TensorError("matmul needs 2-D tensors, got \(a.shape) and \(b.shape).")
        }
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == k2 else {
            throw TensorError("matmul: inner sizes differ: op(a) is [\(m), \(k)] and op(b) is [\(k2), \(n)] (shapes \(a.shape)\(transposeA ? "ᵀ" : "") and \(b.shape)\(transposeB ? "ᵀ" : "")).")
        }
        if let bias, bias.count != n { throw TensorError("linear: bias has shape \(bias.shape) but the output has \(n) columns.") }
        let out = try Tensor.empty([m, n], on: a.device)
        try a.kernels.matmul(a.floats("matmul"), b.floats("matmul"), into: out.floats("matmul"), m: m, n: n, k: k,
                             transposeA: transposeA, transposeB: transposeB, bias: bias?.floats("matmul"),
                             activation: activation)
        let inputs = [a, b] + (bias.map { [$0] } ?? [])
        return out.recorded(inputs) { g in
            // Through the activation first, then the product's two gradients.
            let gz = try activationGradient(activation, g: g, out: out)
            let ga = a.requiresGrad
                ? (transposeA ? try b.matmul(gz, transposeA: transposeB, transposeB: true)      // (op(b)·gzᵀ)ᵀ as stored
                              : try gz.matmul(b, transposeB: !transposeB))
                : nil
            let gb = b.requiresGrad
                ? (transposeB ? try gz.matmul(a, transposeA: true, transposeB: transposeA)
                              : try a.matmul(gz, transposeA: !transposeA))
                : nil
            let gbias = try bias.map { _ in try gz.sum(axis: 0) }
            return [ga, gb] + (bias == nil ? [] : [gbias])
        }
    }

    /// The gradient before an epilogue activation, from the gradient after it and the output.
    static func activationGradient(_ activation: MatmulActivation, g: Tensor, out: Tensor) throws -> Tensor {
        let f: Activation
        switch activation {
        case .none: return g
        case .relu: f = .relu
        case .leakyRelu(let slope): f = .leakyRelu(slope: slope)
        case .sigmoid: f = .sigmoid
        case .tanh: f = .tanh
        case .gelu:
            throw TensorError("linear: a fused GELU epilogue has no backward here (it needs the pre-activation); apply gelu() separately.")
        }
        // ReLU and leaky ReLU backward read the sign, which the output shares with the input.
        let dz = try Tensor.empty(g.shape, on: g.device)
        try g.kernels.activationBackward(f, gradOutput: g.floats("linear"), saved: out.floats("linear"),
                                         into: dz.floats("linear"))
        return dz
    }
}
