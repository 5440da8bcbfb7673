import KilnDevice

/// The activation a matmul applies after its bias (the fused epilogue).
public enum MatmulActivation: Sendable, Equatable {
    case none, relu, leakyRelu(slope: Float), sigmoid, tanh, gelu

    var code: Int32 {
        switch self {
        case .none: 0
        case .relu: 1
        case .leakyRelu: 2
        case .sigmoid: 3
        case .tanh: 4
        case .gelu: 5
        }
    }

    var slope: Float { if case .leakyRelu(let s) = self { return s } else { return 0 } }
}

extension KernelLibrary {
    /// `C = act(op(A)·op(B) + bias)` (or `C += …` with `accumulate`), row-major, where op(A) is
    /// m×k and op(B) is k×n. A is stored m×k, or k×m when `transposeA`; B is stored k×n, or n×k when
    /// `transposeB` (a Linear weight [out, in] is B with `transposeB`). `bias` has n elements.
    ///
    /// ```swift
    /// // y = relu(x · wᵀ + b) for x [batch, in], w [out, in]
    /// try kernels.matmul(x, w, into: y, m: batch, n: out, k: in, transposeB: true, bias: b, activation: .relu)
    /// ```
    public func matmul(_ a: Buffer<Float>, _ b: Buffer<Float>, into c: Buffer<Float>, m: Int, n: Int, k: Int,
                       transposeA: Bool = false, transposeB: Bool = false, accumulate: Bool = false,
                       bias: Buffer<Float>? = nil, activation: MatmulActivation = .none) throws {
        guard m >= 1, n >= 1, k >= 1 else { throw ShapeError("matmul: sizes must be ≥ 1, got m \(m), n \(n), k \(k).") }
        let aShape = transposeA ? "[\(k), \(m)]" : "[\(m), \(k)]"
        let bShape = transposeB ? "[\(n), \(k)]" : "[\(k), \(n)]"
        guard a.count == m * k else { throw ShapeError("matmul: A has \(a.count) elements but op(A) m×k needs \(aShape) = \(m * k).") }
        guard b.count == k * n else { throw ShapeError("matmul: B has \(b.count) elements but op(B) k×n needs \(bShape) = \(k * n).") }
        guard c.count == m * n else { throw ShapeError("matmul: C has \(c.count) elements but needs [\(m), \(n)] = \(m * n).") }
        if let bias, bias.count != n { throw ShapeError("matmul: bias has \(bias.count) elements but needs \(n) (one per column of C).") }
        guard c !== a, c !== b else { throw ShapeError("matmul: C must not be A or B (the kernel reads them while writing C).") }

        let variant = (transposeA ? "t" : "n") + (transposeB ? "t" : "n")
        let flags = (accumulate ? 1 : 0) | (bias != nil ? 2 : 0) | Int(activation.code) << 4
        let arguments: [any KernelArgument] = [
            Int32(m), Int32(n), Int32(k), a, Int32(transposeA ? m : k), b, Int32(transposeB ? k : n),
            c, Int32(n), bias ?? c, Int32(flags), activation.slope,
        ]
        let (name, global, local) = config.matmul.launch(variant: variant, m: m, n: n)
        try launch(name, global: global, local: local, arguments: arguments)
    }
}

extension KernelLibrary {
    /// Backward through a fused `matmul` epilogue: from the gradient `g` of the output `y`
    /// ([rows, cols]), `gz = g · act'(y)` and, when `biasGradient` is given, its column sums (the
    /// bias gradient), in one launch. `activation` must not be `.gelu` (its derivative needs the input).
    public func linearActivationBackward(gradOutput g: Buffer<Float>, output y: Buffer<Float>, rows: Int, cols: Int,
                                         activation: MatmulActivation, into gz: Buffer<Float>,
                                         biasGradient: Buffer<Float>?) throws {
        guard rows >= 1, cols >= 1 else { throw ShapeError("linearActivationBackward: sizes must be ≥ 1, got \(rows)×\(cols).") }
        for (name, buffer) in [("g", g), ("y", y), ("gz", gz)] where buffer.count != rows * cols {
            throw ShapeError("linearActivationBackward: \(name) has \(buffer.count) elements but [\(rows), \(cols)] needs \(rows * cols).")
        }
        if let biasGradient, biasGradient.count != cols {
            throw ShapeError("linearActivationBackward: the bias gradient has \(biasGradient.count) elements but needs \(cols).")
        }
        if activation == .gelu {
            throw ShapeError("linearActivationBackward: GELU's derivative needs the pre-activation; apply gelu() separately.")
        }
        let items = (cols + config.vectorWidth - 1) / config.vectorWidth
        try launch("linear_act_backward", global: [items], local: [config.treeReductions ? 64 : 16],
                   Int32(rows), Int32(cols), activation.code, activation.slope, g, y, gz, biasGradient ?? gz,
                   Int32(biasGradient == nil ? 0 : 1))
    }
}

/// Tile sizes of the matmul kernels (the `MM_*` build options) and the launch rule that goes with them.
public struct MatmulConfig: Sendable, Equatable {
    /// Local-memory tiles of 16×16 work-items, each computing 4×4 outputs (GPUs).
    public var gpu: Bool
    /// Rows of C per work-item (`MM_TM`).
    public var tileRows = 6
    /// Float vector width of a tile row (`MM_VW`): the device's native width.
    public var vectorWidth = 8
    /// Vectors per tile row (`MM_TNV`): a work-item holds tileRows × vectors accumulators.
    public var vectors = 2
    /// K-slice each work-group finishes before the next, so it stays in cache (`MM_KB`).
    public var kBlock = 256
    /// Rows of the small kernel's tile (`MM_STM`) and its vector width (`MM_SVW`).
    public var smallRows = 2, smallWidth = 8

    /// Output columns covered by one work-item.
    var tileColumns: Int { vectors * vectorWidth }

    /// The rule table: register-blocked float vectors without local memory on CPUs (the vector
    /// width of the device's SIMD registers), local-memory tiles on GPUs.
    public init(gpu: Bool, vectorWidth: Int) {
        self.gpu = gpu
        self.vectorWidth = gpu ? 8 : max(4, min(vectorWidth, 16))
    }

    /// The `-D` options of these tiles.
    public var defines: [String: Int] {
        gpu ? ["MM_GPU": 1, "MM_SVW": smallWidth, "MM_STM": smallRows]
            : ["MM_TM": tileRows, "MM_VW": vectorWidth, "MM_TNV": vectors, "MM_KB": kBlock, "MM_SVW": smallWidth,
               "MM_STM": smallRows]
    }

    /// Kernel name, global and local size for C[m, n] (see the comments in kernels.cl). Every
    /// work-item of a group must reach the kernel's barriers, so the local sizes are exact.
    func launch(variant: String, m: Int, n: Int) -> (String, [Int], [Int]) {
        func up(_ x: Int, _ d: Int) -> Int { (x + d - 1) / d }
        func roundUp(_ x: Int, _ d: Int) -> Int { up(x, d) * d }
        // tt computes Cᵀ = B·A, so its tiles run over (n, m).
        let (rows, cols) = variant == "tt" ? (n, m) : (m, n)
        if gpu {
            return ("matmul_" + variant, [up(n, 64) * 16, up(m, 64) * 16], [16, 16])
        }
        if cols < tileColumns || rows < tileRows {
            return ("matmul_small_" + variant, [roundUp(up(cols, smallWidth), 2), roundUp(up(rows, smallRows), 8)], [2, 8])
        }
        return ("matmul_" + variant, [roundUp(up(cols, tileColumns), 4), roundUp(up(rows, tileRows), 4)], [4, 4])
    }
}

