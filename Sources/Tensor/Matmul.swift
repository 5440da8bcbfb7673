import KilnDevice
import KilnKernels

extension Tensor {
    /// The matrix product `op(self) · op(other)` (`torch.matmul`), with op a transpose of the last
    /// two axes when asked. 2-D × 2-D is one product; `[..., M, K] · [..., K, N]` is a batch of
    /// products whose leading axes broadcast (a 2-D side is shared by every product); a 1-D side
    /// is a vector, as in PyTorch.
    ///
    /// ```swift
    /// let a = try Tensor.randn([8, 3, 4], seed: 1), b = try Tensor.randn([4, 5], seed: 2)
    /// let c = try a.matmul(b)                               // [8, 3, 5]
    /// let d = try a.matmul(a, transposeB: true)             // [8, 3, 3]
    /// ```
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        if rank == 2 && other.rank == 2 {
            return try Tensor.linear(self, other, bias: nil, activation: nil, transposeA: transposeA, transposeB: transposeB)
        }
        guard rank >= 1, other.rank >= 1 else {
            throw TensorError("matmul needs tensors of at least one axis, got \(shape) and \(other.shape).")
        }
        // Vectors: [K] · B is [1, K] · B without its row axis; A · [K] is A · [K, 1] without its column.
        if rank == 1 {
            let product = try unsqueezed(axis: 0).matmul(other, transposeA: false, transposeB: transposeB)
            return try product.squeezed(axis: -2)
        }
        if other.rank == 1 {
            let product = try matmul(other.unsqueezed(axis: 1), transposeA: transposeA, transposeB: false)
            return try product.squeezed(axis: -1)
        }
        // A batch against one matrix, no transpose of A: fold the batch into the rows (one product).
        if other.rank == 2 && !transposeA {
            let k = shape[rank - 1]
            let folded = try reshaped([count / k, k]).matmul(other, transposeB: transposeB)
            return try folded.reshaped(Array(shape.dropLast()) + [folded.shape[1]])
        }
        return try Tensor.batchedMatmul(self, other, transposeA: transposeA, transposeB: transposeB)
    }

    /// A batch of products over the broadcast leading axes of `a` and `b` (both of rank ≥ 2).
    static func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let (aBatch, bBatch) = (Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)))
        guard let batch = broadcastShape(aBatch, bBatch) else {
            throw TensorError("matmul: batch shapes \(aBatch) and \(bBatch) (of \(a.shape) and \(b.shape)) do not broadcast.")
        }
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1]), (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        guard k == k2 else {
            throw TensorError("matmul: inner sizes differ: op(a) is [..., \(m), \(k)] and op(b) is [..., \(k2), \(n)] (shapes \(a.shape) and \(b.shape)).")
        }
        let products = elementCount(batch)
        // A side whose batch is all ones is shared (stride 0); one that broadcasts otherwise is
        // expanded to the full batch first.
        func operand(_ t: Tensor, _ own: [Int]) throws -> (Tensor, Int) {
            if elementCount(own) == 1 { return (t, 0) }
            let full = own == batch ? t : try t.expanded(to: batch + Array(t.shape.suffix(2)))
            return (full, t.shape[t.rank - 2] * t.shape[t.rank - 1])
        }
        let ((x, sa), (y, sb)) = try withNoGrad { (try operand(a, aBatch), try operand(b, bBatch)) }
        let out = try Tensor.empty(batch + [m, n], on: a.device)
        try a.kernels.matmul(x.floats("matmul"), y.floats("matmul"), into: out.floats("matmul"), m: m, n: n, k: k,
                             transposeA: transposeA, transposeB: transposeB,
                             batch: MatmulBatch(count: products, strideA: sa, strideB: sb, strideC: m * n))
        return out.recorded([a, b]) { g in
            // The two gradients as products of the same kind, summed over the batch where the
            // operand was shared or broadcast.
            let ga = a.requiresGrad
                ? (transposeA ? try y.matmul(g, transposeA: transposeB, transposeB: true)
                              : try g.matmul(y, transposeB: !transposeB))
                : nil
            let gb = b.requiresGrad
                ? (transposeB ? try g.matmul(x, transposeA: true, transposeB: transposeA)
                              : try x.matmul(g, transposeA: !transposeA))
                : nil
            return [try ga?.sum(to: a.shape), try gb?.sum(to: b.shape)]
        }
    }

    /// `act(op(a) · op(b) + bias)` for 2-D `a` and `b` in one kernel, with its gradient (the Linear
    /// layer's forward pass). The gradient of `a` is only computed when `a` requires grad (never for
    /// a model's input). An activation whose derivative needs its input (GELU) is applied after
    /// the product.
    public static func linear(_ a: Tensor, _ b: Tensor, bias: Tensor?, activation: Activation?,
                              transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard a.rank == 2, b.rank == 2 else {
            throw TensorError("linear needs 2-D tensors, got \(a.shape) and \(b.shape).")
        }
        if let activation, !activation.derivativeFromOutput {
            return try linear(a, b, bias: bias, activation: nil, transposeA: transposeA, transposeB: transposeB)
                .applying(activation)
        }
        let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (k2, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == k2 else {
            throw TensorError("matmul: inner sizes differ: op(a) is [\(m), \(k)] and op(b) is [\(k2), \(n)] (shapes \(a.shape)\(transposeA ? "ᵀ" : "") and \(b.shape)\(transposeB ? "ᵀ" : "")).")
        }
        try checkSameDevice("matmul", [a, b, bias])
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
            if let activation {
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
