import Foundation
import KilnDevice
import KilnKernels

// Element-wise arithmetic with NumPy/PyTorch broadcasting at any rank. The broadcasts a model
// uses most (same shape, a trailing block such as a bias row, a leading block such as a column,
// a scalar) run on the plain `ew_binary` kernel; everything else on the strided `ew_binary_nd`.

extension Tensor {
    /// The shape `a` and `b` broadcast to under NumPy's rules (align at the right; each pair of
    /// extents equal or one of them 1), or nil when they do not broadcast.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
        let rank = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else { return nil }
            out[i] = Swift.max(x, y)
        }
        return out
    }

    /// Element strides that read this tensor as `target` (which it broadcasts to): its own
    /// contiguous strides, 0 along the axes it is repeated over.
    func broadcastStrides(to target: [Int]) -> [Int] {
        let own = Strided.contiguous(shape)
        let lead = target.count - rank
        return target.indices.map { i in
            i < lead || shape[i - lead] == 1 ? 0 : own[i - lead]
        }
    }

    /// How `b` lines up with `a` of the output's shape on the plain kernel, if it does.
    static func plainBroadcast(of b: [Int], over out: [Int]) -> Broadcast? {
        if b == out { return Broadcast.none }
        if b.reduce(1, *) == 1 { return .scalar }
        let trimmed = Array(b.drop { $0 == 1 })
        if trimmed.count <= out.count, Array(out.suffix(trimmed.count)) == trimmed { return .row }
        let head = Array(b.reversed().drop { $0 == 1 }.reversed())
        if b.count == out.count, Array(out.prefix(head.count)) == head { return .column }
        return nil
    }

    /// Sums `self` down to `shape`, undoing a broadcast (the gradient of a broadcast operand).
    func sum(to target: [Int]) throws -> Tensor {
        if target == shape { return self }
        let lead = rank - target.count
        let axes = shape.indices.filter { $0 < lead || (target[$0 - lead] == 1 && shape[$0] != 1) }
        return try reduced(.sum, axes: axes, keepDims: false).reshaped(target)
    }

    /// `self op other` with broadcasting; records the gradient.
    func binary(_ op: BinaryOp, _ other: Tensor) throws -> Tensor {
        try Tensor.checkSameDevice(op.rawValue, [self, other])
        guard let outShape = Tensor.broadcastShape(shape, other.shape) else {
            throw TensorError("\(op.rawValue): shapes \(shape) and \(other.shape) do not broadcast (each pair of axes, aligned at the right, must be equal or 1).")
        }
        let out = try Tensor.empty(outShape, on: device)
        let a = try floats(op.rawValue), b = try other.floats(op.rawValue)
        if shape == outShape, let kind = Tensor.plainBroadcast(of: other.shape, over: outShape) {
            let cols: Int
            switch kind {
            case .none, .scalar: cols = out.count
            case .row: cols = other.count
            case .column: cols = out.count / other.count
            }
            try kernels.binary(op, a, b, rows: out.count / cols, cols: cols, broadcast: kind, into: out.floats(op.rawValue))
        } else {
            try kernels.binary(op, a, strides: broadcastStrides(to: outShape), b, strides: other.broadcastStrides(to: outShape),
                               shape: outShape, into: out.floats(op.rawValue))
        }
        let (x, y) = (self, other)
        return out.recorded([x, y]) { g in
            switch op {
            case .add: return [try g.sum(to: x.shape), try g.sum(to: y.shape)]
            case .sub: return [try g.sum(to: x.shape), try g.neg().sum(to: y.shape)]
            case .mul: return [try (g * y).sum(to: x.shape), try (g * x).sum(to: y.shape)]
            case .div: return [try (g / y).sum(to: x.shape), try (g * x / (y * y)).neg().sum(to: y.shape)]
            case .maximum, .minimum:
                // The larger (smaller) operand takes the gradient; a tie splits it, as in PyTorch.
                let wins = try x.binary(op == .maximum ? .gt : .lt, y), ties = try x.binary(.eq, y) * 0.5
                let share = try wins + ties
                return [try (g * share).sum(to: x.shape), try (g * (1 - share)).sum(to: y.shape)]
            case .pow:
                return [try (g * y * x.binary(.pow, y - 1)).sum(to: x.shape),
                        try (g * out * x.log()).sum(to: y.shape)]
            case .eq, .ne, .lt, .le, .gt, .ge: return [nil, nil]
            }
        }
    }

    /// `self op scalar` (or `scalar op self` when `reversed`); records the gradient.
    func binary(_ op: BinaryOp, scalar: Float, reversed: Bool = false) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.binary(op, floats(op.rawValue), scalar: scalar, reversed: reversed, into: out.floats(op.rawValue))
        let x = self
        return out.recorded([self]) { g in
            switch (op, reversed) {
            case (.add, _), (.sub, false): return [g]
            case (.sub, true): return [try g.neg()]
            case (.mul, _): return [try g.binary(.mul, scalar: scalar)]
            case (.div, false): return [try g.binary(.div, scalar: scalar)]
            case (.div, true): return [try (g * out / x).neg()]          // d(s/x) = -s/x²
            case (.maximum, _), (.minimum, _):
                let wins = try x.binary(op == .maximum ? .gt : .lt, scalar: scalar)
                return [try g * (wins + x.binary(.eq, scalar: scalar) * 0.5)]
            case (.pow, false): return [try g * x.pow(scalar - 1) * scalar]
            case (.pow, true): return [try g * out * Float(Foundation.log(Double(scalar)))]
            case (.eq, _), (.ne, _), (.lt, _), (.le, _), (.gt, _), (.ge, _): return [nil]
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
    public static func - (a: Float, b: Tensor) throws -> Tensor { try b.binary(.sub, scalar: a, reversed: true) }
    /// `a` times every element of `b`.
    public static func * (a: Float, b: Tensor) throws -> Tensor { try b.binary(.mul, scalar: a) }
    /// `a / x` for every element `x` of `b`.
    public static func / (a: Float, b: Tensor) throws -> Tensor { try b.binary(.div, scalar: a, reversed: true) }
    /// Element-wise negation, `-a`.
    public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }

    /// The larger of `self` and `other` element-wise, with broadcasting; NaN propagates
    /// (`torch.maximum`). A tie splits the gradient between both.
    public func maximum(_ other: Tensor) throws -> Tensor { try binary(.maximum, other) }
    /// The smaller of `self` and `other` element-wise (`torch.minimum`).
    public func minimum(_ other: Tensor) throws -> Tensor { try binary(.minimum, other) }
    /// `self ^ exponent` element-wise, with broadcasting (`torch.pow`).
    public func pow(_ exponent: Tensor) throws -> Tensor { try binary(.pow, exponent) }

    // MARK: Comparisons (1.0 where true, 0.0 where false; no gradient)

    /// 1 where `self == other` (broadcasting), else 0 (`torch.eq`).
    public func eq(_ other: Tensor) throws -> Tensor { try binary(.eq, other) }
    /// 1 where `self != other`, else 0 (`torch.ne`; NaN is unequal to everything).
    public func ne(_ other: Tensor) throws -> Tensor { try binary(.ne, other) }
    /// 1 where `self < other`, else 0 (`torch.lt`).
    public func lt(_ other: Tensor) throws -> Tensor { try binary(.lt, other) }
    /// 1 where `self <= other`, else 0 (`torch.le`).
    public func le(_ other: Tensor) throws -> Tensor { try binary(.le, other) }
    /// 1 where `self > other`, else 0 (`torch.gt`).
    public func gt(_ other: Tensor) throws -> Tensor { try binary(.gt, other) }
    /// 1 where `self >= other`, else 0 (`torch.ge`).
    public func ge(_ other: Tensor) throws -> Tensor { try binary(.ge, other) }
    /// 1 where `self == value`, else 0.
    public func eq(_ value: Float) throws -> Tensor { try binary(.eq, scalar: value) }
    /// 1 where `self != value`, else 0.
    public func ne(_ value: Float) throws -> Tensor { try binary(.ne, scalar: value) }
    /// 1 where `self < value`, else 0.
    public func lt(_ value: Float) throws -> Tensor { try binary(.lt, scalar: value) }
    /// 1 where `self <= value`, else 0.
    public func le(_ value: Float) throws -> Tensor { try binary(.le, scalar: value) }
    /// 1 where `self > value`, else 0.
    public func gt(_ value: Float) throws -> Tensor { try binary(.gt, scalar: value) }
    /// 1 where `self >= value`, else 0.
    public func ge(_ value: Float) throws -> Tensor { try binary(.ge, scalar: value) }

    /// Element-wise `a == b` as 1 or 0 (as SIMD's `.==`); `try (y .== t).mean()` is an accuracy.
    public static func .== (a: Tensor, b: Tensor) throws -> Tensor { try a.eq(b) }
    /// Element-wise `a != b` as 1 or 0.
    public static func .!= (a: Tensor, b: Tensor) throws -> Tensor { try a.ne(b) }
    /// Element-wise `a < b` as 1 or 0.
    public static func .< (a: Tensor, b: Tensor) throws -> Tensor { try a.lt(b) }
    /// Element-wise `a <= b` as 1 or 0.
    public static func .<= (a: Tensor, b: Tensor) throws -> Tensor { try a.le(b) }
    /// Element-wise `a > b` as 1 or 0.
    public static func .> (a: Tensor, b: Tensor) throws -> Tensor { try a.gt(b) }
    /// Element-wise `a >= b` as 1 or 0.
    public static func .>= (a: Tensor, b: Tensor) throws -> Tensor { try a.ge(b) }
    /// Element-wise `a == b` as 1 or 0.
    public static func .== (a: Tensor, b: Float) throws -> Tensor { try a.eq(b) }
    /// Element-wise `a != b` as 1 or 0.
    public static func .!= (a: Tensor, b: Float) throws -> Tensor { try a.ne(b) }
    /// Element-wise `a < b` as 1 or 0.
    public static func .< (a: Tensor, b: Float) throws -> Tensor { try a.lt(b) }
    /// Element-wise `a <= b` as 1 or 0.
    public static func .<= (a: Tensor, b: Float) throws -> Tensor { try a.le(b) }
    /// Element-wise `a > b` as 1 or 0.
    public static func .> (a: Tensor, b: Float) throws -> Tensor { try a.gt(b) }
    /// Element-wise `a >= b` as 1 or 0.
    public static func .>= (a: Tensor, b: Float) throws -> Tensor { try a.ge(b) }

    /// `a` where `condition` is non-zero, else `b`, with all three broadcast together (`torch.where`).
    /// The gradient flows to `a` where the condition holds and to `b` elsewhere.
    ///
    /// ```swift
    /// let x = try Tensor([-2, -1, 0, 1, 2])
    /// let clipped = try Tensor.where(x .> 0, x, Tensor.zeros([1]))   // [0, 0, 0, 1, 2]
    /// ```
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard let ab = broadcastShape(a.shape, b.shape), let shape = broadcastShape(condition.shape, ab) else {
            throw TensorError("where: shapes \(condition.shape), \(a.shape) and \(b.shape) do not broadcast.")
        }
        try checkSameDevice("where", [condition, a, b])
        let (c, x, y) = try withNoGrad { (try condition.expanded(to: shape), try a.expanded(to: shape), try b.expanded(to: shape)) }
        let out = try Tensor.empty(shape, on: a.device)
        try a.kernels.select(c.floats("where"), x.floats("where"), y.floats("where"), into: out.floats("where"))
        return out.recorded([a, b]) { g in
            let zeros = try Tensor.zeros([1], on: g.device)
            return [try Tensor.where(c, g, zeros).sum(to: a.shape), try Tensor.where(c, zeros, g).sum(to: b.shape)]
        }
    }

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
    /// `|x|`; the gradient is `sign(x)` (0 at 0, as in PyTorch).
    public func abs() throws -> Tensor { try unary(.abs, "abs") { g, x, _ in try g * x.sign() } }
    /// -1, 0 or 1 by the sign of each element; NaN stays NaN. No gradient (it is 0 almost everywhere).
    public func sign() throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.unary(.sign, floats("sign"), into: out.floats("sign"))
        return out
    }
    /// `x^p` for a scalar exponent.
    public func pow(_ p: Float) throws -> Tensor {
        try unary(.pow(p), "pow") { g, x, _ in try g * (try x.pow(p - 1) * p) }
    }
    /// `min(max(x, low), high)`; NaN stays NaN. The gradient flows where `low ≤ x ≤ high`, as in
    /// PyTorch (which passes it at exactly `low` and `high` too).
    public func clamp(min low: Float, max high: Float) throws -> Tensor {
        try unary(.clamp(min: low, max: high), "clamp") { g, x, _ in
            try g * (try x.ge(low) * x.le(high))
        }
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

    /// `activation` applied element-wise (`Activation.relu`, `.gelu`, ...), with its gradient.
    public func applying(_ activation: Activation) throws -> Tensor { try self.activation(activation, activation.name) }

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
