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
            // Through the activation first (with the bias gradient in the same pass), then the
            // product's two gradients.
            var gz = g
            var gbias: Tensor? = nil
            if activation != .none {
                gz = try Tensor.empty(g.shape, on: g.device)
                gbias = try bias.map { try Tensor.empty($0.shape, on: $0.device) }
                try g.kernels.linearActivationBackward(gradOutput: g.buffer, output: out.buffer, rows: m, cols: n,
                                                       activation: activation, into: gz.buffer,
                                                       biasGradient: gbias?.buffer)
            } else if bias != nil {
                gbias = try g.sum(axis: 0)
            }
            let ga = a.requiresGrad
                ? (transposeA ? try b.matmul(gz, transposeA: transposeB, transposeB: true)      // (op(b)·gzᵀ)ᵀ as stored
                              : try gz.matmul(b, transposeB: !transposeB))
                : nil
            let gb = b.requiresGrad
                ? (transposeB ? try gz.matmul(a, transposeA: true, transposeB: transposeA)
                              : try a.matmul(gz, transposeA: !transposeA))
                : nil
            return [ga, gb] + (bias == nil ? [] : [gbias])
        }
    }
}
