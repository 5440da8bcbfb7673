import KilnDevice
import KilnKernels

// Element-wise arithmetic with PyTorch's broadcasting for the cases a model needs: same shape,
// a row vector ([C] or [1, C]) over [R, C], a column ([R, 1]) over [R, C], or a one-element tensor.

extension Tensor {
    /// How `other` lines up with `self` (seen as [rows, cols]), or nil when it does not broadcast.
    func broadcast(of other: Tensor) -> Broadcast? {
        if other.shape == shape { return Broadcast.none }
        if other.count == 1 { return .scalar }
        let (rows, cols) = matrix
        if other.shape == [cols] || other.shape == [1, cols] { return .row }
        if rank == 2 && other.shape == [rows, 1] { return .column }
        return nil
    }

    /// Sums `self` down to `shape`, undoing a broadcast (the gradient of a broadcast operand).
    func sum(to target: [Int]) throws -> Tensor {
        if target == shape { return self }
        let kind: ReductionAxis
        if target.reduce(1, *) == 1 { kind = .all }
        else if target.last == matrix.cols { kind = .eachColumn }
        else { kind = .eachRow }
        let out = try Tensor.empty(target, on: device)
        try kernels.reduce(.sum, floats("sum"), rows: matrix.rows, cols: matrix.cols, axis: kind, into: out.floats("sum"))
        return out
    }

    /// `self op other` with broadcasting; records the gradient.
    func binary(_ op: BinaryOp, _ other: Tensor) throws -> Tensor {
        guard device === other.device else {
            throw TensorError("\(op.rawValue): the tensors are on different devices (\(device) and \(other.device)).")
        }
        guard let kind = broadcast(of: other) else {
            // The first operand is the broadcast one: rewrite so the second is.
            guard other.broadcast(of: self) != nil else {
                throw TensorError("\(op.rawValue): shapes \(shape) and \(other.shape) do not broadcast (Kiln broadcasts a row [C], a column [R, 1] or a scalar over [R, C]).")
            }
            switch op {
            case .add: return try other.binary(.add, self)
            case .mul: return try other.binary(.mul, self)
            case .sub: return try other.binary(.sub, self).neg()
            case .div: return try other.pow(-1).binary(.mul, self)
            }
        }
        let out = try Tensor.empty(shape, on: device)
        try kernels.binary(op, floats(op.rawValue), other.floats(op.rawValue), rows: matrix.rows, cols: matrix.cols,
                           broadcast: kind, into: out.floats(op.rawValue))
        let (a, b) = (self, other)
        return out.recorded([a, b]) { g in
            switch op {
            case .add: return [g, try g.sum(to: b.shape)]
            case .sub: return [g, try g.sum(to: b.shape).neg()]
            case .mul: return [try g.binary(.mul, b), try (g * a).sum(to: b.shape)]
            case .div: return [try g.binary(.div, b), try (g * a / (b * b)).sum(to: b.shape).neg()]
            }
        }
    }

    /// `self op scalar`; records the gradient.
    func binary(_ op: BinaryOp, scalar: Float) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.binary(op, floats(op.rawValue), scalar: scalar, into: out.floats(op.rawValue))
        return out.recorded([self]) { g in
            switch op {
            case .add, .sub: return [g]
            case .mul: return [try g.binary(.mul, scalar: scalar)]
            case .div: return [try g.binary(.div, scalar: scalar)]
            }
        }
    }

    /// Element-wise `a + b` with broadcasting (`torch.add`); records the gradient.
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b) }
    /// Element-wise `a − b` with broadcasting (`torch.sub`); records the gradient.
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b) }
    /// Element-wise `a · b` with broadcasting (`torch.mul`); records the gradient.
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b) }
    /// Element-wise `a / b` with broadcasting (`torch.div`); records the gradient.
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b) }
    /// `b` added to every element of `a`.
    public static func + (a: Tensor, b: Float) throws -> Tensor { try a.binary(.add, scalar: b) }
    /// `b` subtracted from every element of `a`.
    public static func - (a: Tensor, b: Float) throws -> Tensor { try a.binary(.sub, scalar: b) }
    /// Every element of `a` times `b`.
    public static func * (a: Tensor, b: Float) throws -> Tensor { try a.binary(.mul, scalar: b) }
    /// Every element of `a` divided by `b`.
    public static func / (a: Tensor, b: Float) throws -> Tensor { try a.binary(.div, scalar: b) }
    /// `a` added to every element of `b`.
    public static func + (a: Float, b: Tensor) throws -> Tensor { try b.binary(.add, scalar: a) }
    /// `a − x` for every element `x` of `b`.
    public static func - (a: Float, b: Tensor) throws -> Tensor { try b.neg().binary(.add, scalar: a) }
    /// `a` times every element of `b`.
    public static func * (a: Float, b: Tensor) throws -> Tensor { try b.binary(.mul, scalar: a) }
    /// `a / x` for every element `x` of `b` (computed as `a · x^-1`).
    public static func / (a: Float, b: Tensor) throws -> Tensor { try b.pow(-1).binary(.mul, scalar: a) }
    /// Element-wise negation, `-a`.
    public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }

    /// Applies a one-input kernel; `derivative(g, x, y)` gives the input gradient.
    func unary(_ op: UnaryOp, _ name: String, derivative: @escaping (Tensor, Tensor, Tensor) throws -> Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.unary(op, floats(name), into: out.floats(name))
        let x = self
        return out.recorded([x]) { g in [try derivative(g, x, out)] }
    }

    /// `-x`
    public func neg() throws -> Tensor { try unary(.neg, "neg") { g, _, _ in try g.neg() } }
    /// `e^x`
    public func exp() throws -> Tensor { try unary(.exp, "exp") { g, _, y in try g * y } }
    /// Natural logarithm.
    public func log() throws -> Tensor { try unary(.log, "log") { g, x, _ in try g / x } }
    /// Square root.
    public func sqrt() throws -> Tensor { try unary(.sqrt, "sqrt") { g, _, y in try g / (y * 2) } }
    /// `x^p` for a scalar exponent.
    public func pow(_ p: Float) throws -> Tensor {
        try unary(.pow(p), "pow") { g, x, _ in try g * (try x.pow(p - 1) * p) }
    }
    /// `min(max(x, low), high)`; the gradient flows where `low < x < high` (PyTorch also passes it
    /// at exactly `low` or `high`).
    public func clamp(min low: Float, max high: Float) throws -> Tensor {
        try unary(.clamp(min: low, max: high), "clamp") { g, x, _ in
            // 1 inside [low, high], 0 outside: (clamp(x) == x) built from kernels we have.
            let inside = try withNoGrad { try x.clampMask(low: low, high: high) }
            return try g * inside
        }
    }

    /// 1 where `low < x < high`, else 0.
    func clampMask(low: Float, high: Float) throws -> Tensor {
        // relu'(x - low) · relu'(high - x): the ReLU backward kernel with a gradient of ones gives
        // each step function.
        let ones = try Tensor.ones(shape, on: device)
        let lowStep = try Tensor.empty(shape, on: device)
        let highStep = try Tensor.empty(shape, on: device)
        let shiftedLow = try self - low
        let shiftedHigh = try high - self
        try kernels.activationBackward(.relu, gradOutput: ones.floats("clamp"), saved: shiftedLow.floats("clamp"),
                                       into: lowStep.floats("clamp"))
        try kernels.activationBackward(.relu, gradOutput: ones.floats("clamp"), saved: shiftedHigh.floats("clamp"),
                                       into: highStep.floats("clamp"))
        return try lowStep * highStep
    }

    /// Applies `activation` with its backward kernel.
    func activation(_ f: Activation, _ name: String) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.activation(f, floats(name), into: out.floats(name))
        let x = self
        return out.recorded([x]) { g in
            let dx = try Tensor.empty(x.shape, on: x.device)
            try x.kernels.activationBackward(f, gradOutput: g.floats(name), saved: f.backwardTakesOutput ? out.floats(name) : x.floats(name),
                                             into: dx.floats(name))
            return [dx]
        }
    }

    /// `max(x, 0)`
    public func relu() throws -> Tensor { try activation(.relu, "relu") }
    /// `x` for `x > 0`, else `slope * x`.
    public func leakyRelu(slope: Float = 0.01) throws -> Tensor { try activation(.leakyRelu(slope: slope), "leakyRelu") }
    /// `1 / (1 + e^-x)`
    public func sigmoid() throws -> Tensor { try activation(.sigmoid, "sigmoid") }
    /// Hyperbolic tangent.
    public func tanh() throws -> Tensor { try activation(.tanh, "tanh") }
    /// GELU, the exact erf form (PyTorch's default).
    public func gelu() throws -> Tensor { try activation(.gelu, "gelu") }
}
