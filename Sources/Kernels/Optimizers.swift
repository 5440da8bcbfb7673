import Foundation
import KilnDevice

/// Hyper-parameters of SGD, as `torch.optim.SGD`.
public struct SGDHyperparameters: Sendable, Equatable {
    /// Learning rate.
    public var lr: Float
    /// Momentum factor; 0 disables the momentum buffer.
    public var momentum: Float
    /// Dampening of the gradient in the momentum update (not applied on the first step).
    public var dampening: Float
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    public var nesterov: Bool
    /// L2 penalty added to the gradient: `g = grad + weightDecay * p`.
    public var weightDecay: Float

    /// `SGDHyperparameters(lr: 0.1, momentum: 0.9)`; the other defaults are PyTorch's.
    public init(lr: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        self.lr = lr; self.momentum = momentum; self.dampening = dampening
        self.nesterov = nesterov; self.weightDecay = weightDecay
    }
}

/// Hyper-parameters of Adam and AdamW, as `torch.optim.Adam` / `torch.optim.AdamW`.
public struct AdamHyperparameters: Sendable, Equatable {
    /// Learning rate.
    public var lr: Float
    /// Decay of the first moment.
    public var beta1: Float
    /// Decay of the second moment.
    public var beta2: Float
    /// Added to the bias-corrected root of the second moment.
    public var eps: Float
    /// Adam: L2 penalty added to the gradient. AdamW: decoupled decay, `p *= 1 - lr * weightDecay`.
    public var weightDecay: Float

    /// PyTorch's Adam defaults (`lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0`);
    /// AdamW's default weight decay is 1e-2.
    public init(lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// Hyper-parameters of RMSprop, as `torch.optim.RMSprop`.
public struct RMSpropHyperparameters: Sendable, Equatable {
    /// Learning rate.
    public var lr: Float
    /// Smoothing constant of the squared-gradient average.
    public var alpha: Float
    /// Added to the root of the average.
    public var eps: Float
    /// L2 penalty added to the gradient.
    public var weightDecay: Float
    /// Momentum factor; 0 disables the momentum buffer.
    public var momentum: Float
    /// Normalize by the variance estimate `v - E[g]^2` instead of `v` (needs a gradient-average buffer).
    public var centered: Bool

    /// PyTorch's defaults: `lr 1e-2, alpha 0.99, eps 1e-8`, no decay, no momentum, not centered.
    public init(lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8, weightDecay: Float = 0,
                momentum: Float = 0, centered: Bool = false) {
        self.lr = lr; self.alpha = alpha; self.eps = eps; self.weightDecay = weightDecay
        self.momentum = momentum; self.centered = centered
    }
}

extension KernelLibrary {
    private func checkOptimizer(_ name: String, param: Buffer<Float>, _ others: [(String, Buffer<Float>?)]) throws {
        for (label, buffer) in others {
            if let buffer, buffer.count != param.count {
                throw ShapeError("\(name): \(label) has \(buffer.count) elements but param has \(param.count).")
            }
        }
        guard param.count >= 1, param.count <= Check.maxElements else {
            throw ShapeError("\(name): \(param.count) elements exceed the kernels' 32-bit indexing.")
        }
    }


    /// One SGD step on `param` in place (PyTorch's single-tensor SGD): `g = grad + wd * p`; with
    /// momentum, `buf = g` on the first step (`firstStep`, no dampening) and
    /// `buf = momentum * buf + (1 - dampening) * g` after; `g = nesterov ? g + momentum * buf : buf`;
    /// `p -= lr * g`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let w = try device.buffer([1, 2] as [Float]), dw = try device.buffer([0.5, 0.5] as [Float])
    /// let momentum = try device.buffer([0, 0] as [Float])
    /// try kernels.sgdStep(param: w, grad: dw, momentumBuffer: momentum,
    ///                     hyper: SGDHyperparameters(lr: 0.1, momentum: 0.9), firstStep: true)   // w = [0.95, 1.95]
    /// ```
    /// - Parameters:
    ///   - param: the parameter, updated in place.
    ///   - grad: its gradient.
    ///   - momentumBuffer: required when `momentum != 0`, ignored otherwise.
    ///   - hyper: the learning rate, momentum, dampening, weight decay and nesterov flag.
    ///   - firstStep: whether this is the first step (the momentum buffer then starts as the gradient).
    /// - Throws: `ShapeError` on mismatched lengths, a missing buffer or invalid nesterov settings.
    public func sgdStep(param: Buffer<Float>, grad: Buffer<Float>, momentumBuffer: Buffer<Float>?,
                        hyper: SGDHyperparameters, firstStep: Bool) throws {
        let name = "sgdStep"
        try checkOptimizer(name, param: param, [("grad", grad), ("momentumBuffer", momentumBuffer)])
        if hyper.momentum != 0, momentumBuffer == nil {
            throw ShapeError("\(name): momentum \(hyper.momentum) needs a momentumBuffer.")
        }
        if hyper.nesterov, hyper.momentum <= 0 || hyper.dampening != 0 {
            throw ShapeError("\(name): nesterov needs momentum > 0 and dampening 0 (PyTorch raises too).")
        }
        try launchFlat(.sgdStep, count: param.count,
                       arguments: [Int32(param.count), hyper.lr, hyper.momentum, hyper.dampening, hyper.weightDecay,
                                   Int32(hyper.nesterov ? 1 : 0), Int32(firstStep ? 1 : 0), param, grad,
                                   momentumBuffer ?? param])
    }

    /// One Adam step (L2 weight decay added to the gradient) on `param` in place, `step` counting
    /// from 1: `m = β1 m + (1 - β1) g`, `v = β2 v + (1 - β2) g²`,
    /// `p -= lr / (1 - β1^t) * m / (sqrt(v) / sqrt(1 - β2^t) + eps)`. The bias corrections are
    /// computed here in double.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let w = try device.buffer([1, 2] as [Float]), dw = try device.buffer([0.5, -0.5] as [Float])
    /// let m = try device.buffer([0, 0] as [Float]), v = try device.buffer([0, 0] as [Float])
    /// try kernels.adamStep(param: w, grad: dw, expAvg: m, expAvgSq: v, step: 1, hyper: .init(lr: 1e-3))
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `step < 1`.
    public func adamStep(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>,
                         step: Int, hyper: AdamHyperparameters) throws {
        try adam("adamStep", param, grad, expAvg, expAvgSq, step: step, hyper: hyper, decoupled: false)
    }

    /// One AdamW step: the decoupled decay `p *= 1 - lr * weightDecay` first, then Adam's update
    /// without L2 on the gradient (`torch.optim.AdamW`).
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let w = try device.buffer([1, 2] as [Float]), dw = try device.buffer([0.5, -0.5] as [Float])
    /// let m = try device.buffer([0, 0] as [Float]), v = try device.buffer([0, 0] as [Float])
    /// try kernels.adamWStep(param: w, grad: dw, expAvg: m, expAvgSq: v, step: 1,
    ///                       hyper: .init(lr: 1e-3, weightDecay: 1e-2))
    /// ```
    /// - Throws: `ShapeError` on mismatched lengths or `step < 1`.
    public func adamWStep(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>,
                          step: Int, hyper: AdamHyperparameters) throws {
        try adam("adamWStep", param, grad, expAvg, expAvgSq, step: step, hyper: hyper, decoupled: true)
    }

    /// One Adam or AdamW update (`decoupled`) of several tensors that share a step count, in
    /// ⌈count/8⌉ launches instead of one per tensor. Each entry is (param, grad, expAvg, expAvgSq).
    public func adamStep(tensors: [(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>)],
                         step: Int, hyper: AdamHyperparameters, decoupled: Bool) throws {
        let name = decoupled ? "adamWStep" : "adamStep"
        guard !tensors.isEmpty else { return }
        for t in tensors {
            try checkOptimizer(name, param: t.param, [("grad", t.grad), ("expAvg", t.expAvg), ("expAvgSq", t.expAvgSq)])
        }
        let (decay, l2, stepSize, bias2Sqrt) = try adamScalars(name, step: step, hyper: hyper, decoupled: decoupled)
        for group in stride(from: 0, to: tensors.count, by: 8).map({ Array(tensors[$0..<min($0 + 8, tensors.count)]) }) {
            var arguments: [any KernelArgument] = [decay, l2, hyper.beta1, hyper.beta2, hyper.eps, stepSize, bias2Sqrt]
            var start = 0
            for slot in 0..<8 {
                // An unused slot repeats the first tensor with n = 0: valid buffers, never touched.
                let entry = slot < group.count ? group[slot] : group[0]
                let n = slot < group.count ? entry.param.count : 0
                arguments += [Int32(n), Int32(start), entry.param, entry.grad, entry.expAvg, entry.expAvgSq]
                start += chunks(n)
            }
            try launch1D(.adamStep, start, arguments: arguments)
        }
    }

    /// The per-step scalars of Adam's update, in Double then rounded once: the decoupled decay
    /// factor, the L2 coefficient, lr / (1 − β1ᵗ) and √(1 − β2ᵗ).
    private func adamScalars(_ name: String, step: Int, hyper: AdamHyperparameters, decoupled: Bool) throws
        -> (decay: Float, l2: Float, stepSize: Float, bias2Sqrt: Float) {
        guard step >= 1 else { throw ShapeError("\(name): step counts from 1, got \(step).") }
        let t = Double(step)
        let bias1 = 1 - pow(Double(hyper.beta1), t), bias2 = 1 - pow(Double(hyper.beta2), t)
        return (decoupled ? Float(1 - Double(hyper.lr) * Double(hyper.weightDecay)) : 1,
                decoupled ? 0 : hyper.weightDecay,
                Float(Double(hyper.lr) / bias1), Float(bias2.squareRoot()))
    }

    private func adam(_ name: String, _ param: Buffer<Float>, _ grad: Buffer<Float>, _ expAvg: Buffer<Float>,
                      _ expAvgSq: Buffer<Float>, step: Int, hyper: AdamHyperparameters, decoupled: Bool) throws {
        try adamStep(tensors: [(param, grad, expAvg, expAvgSq)], step: step, hyper: hyper, decoupled: decoupled)
    }

    /// One RMSprop step on `param` in place: `g = grad + wd * p`, `v = α v + (1 - α) g²`,
    /// `avg = sqrt(v) + eps` (centered: `ga = ga + (1 - α)(g - ga)`, `avg = sqrt(v - ga²) + eps`);
    /// with momentum `buf = momentum * buf + g / avg`, `p -= lr * buf`, else `p -= lr * g / avg`.
    ///
    /// ```swift
    /// let device = try Device.shared()
    /// let kernels = try KernelLibrary.shared(for: device)
    /// let w = try device.buffer([1, 2] as [Float]), dw = try device.buffer([0.5, -0.5] as [Float])
    /// let squares = try device.buffer([0, 0] as [Float])
    /// try kernels.rmspropStep(param: w, grad: dw, squareAvg: squares, momentumBuffer: nil, gradAvg: nil,
    ///                         hyper: .init(lr: 1e-2))
    /// ```
    /// - Parameters:
    ///   - param: the parameter, updated in place.
    ///   - grad: its gradient.
    ///   - squareAvg: the running average of squared gradients.
    ///   - momentumBuffer: required when `momentum > 0`.
    ///   - gradAvg: required when `centered`.
    ///   - hyper: the learning rate, alpha, eps, weight decay, momentum and centered flag.
    /// - Throws: `ShapeError` on mismatched lengths or a missing buffer.
    public func rmspropStep(param: Buffer<Float>, grad: Buffer<Float>, squareAvg: Buffer<Float>,
                            momentumBuffer: Buffer<Float>?, gradAvg: Buffer<Float>?,
                            hyper: RMSpropHyperparameters) throws {
        let name = "rmspropStep"
        try checkOptimizer(name, param: param, [("grad", grad), ("squareAvg", squareAvg),
                                                ("momentumBuffer", momentumBuffer), ("gradAvg", gradAvg)])
        if hyper.momentum > 0, momentumBuffer == nil {
            throw ShapeError("\(name): momentum \(hyper.momentum) needs a momentumBuffer.")
        }
        if hyper.centered, gradAvg == nil { throw ShapeError("\(name): centered needs a gradAvg buffer.") }
        try launchFlat(.rmspropStep, count: param.count,
                       arguments: [Int32(param.count), hyper.lr, hyper.alpha, hyper.eps, hyper.weightDecay, hyper.momentum,
                                   Int32(hyper.centered ? 1 : 0), param, grad, squareAvg, gradAvg ?? param,
                                   momentumBuffer ?? param])
    }
}
