import KilnDevice
import KilnKernels
import KilnTensor

/// The shared part of every optimizer: the parameters, the learning rate, per-parameter state on
/// the device, `step()` and `zeroGrad()`. A subclass says only how one parameter is updated
/// (`update(_:grad:index:)`), keeping what it needs between steps in `stateTensor(_:for:)`, which
/// checkpoints save and restore. Parameters that do not require grad (frozen) are left alone.
///
/// ```swift
/// let model = Sequential(try Linear(4, 2))
/// let optimizer = try Adam(model.parameters, lr: 1e-3)
/// let loss = try model(Tensor.ones([3, 4])).sum()
/// optimizer.zeroGrad()
/// try loss.backward()
/// try optimizer.step()
/// ```
open class Optimizer {
    /// The tensors this optimizer updates.
    public let parameters: [Tensor]
    /// The learning rate; may be changed between steps (schedulers do).
    public var learningRate: Float
    /// Per-parameter state by PyTorch's names (`momentum_buffer`, `exp_avg`, ...), made at first use.
    public internal(set) var state: [[String: Tensor]]
    /// Per-parameter step counts (PyTorch's `state['step']`).
    public internal(set) var steps: [Int]

    /// Holds `parameters` and the learning rate; state and step counts start empty. Subclasses
    /// call it from their own `init`. Throws when there are no parameters (a custom module whose
    /// tensors were not found would otherwise train nothing, silently) or the rate is negative.
    public init(_ parameters: [Tensor], learningRate: Float) throws {
        let name = String(describing: Self.self)
        guard !parameters.isEmpty else {
            throw TensorError("\(name): no parameters to optimize. A Module finds them in its stored properties (Tensors made with requiresGrad: true, and sub-modules); check that the model holds its layers in properties.")
        }
        guard parameters.allSatisfy({ $0.dtype == .float32 }) else {
            throw TensorError("\(name): every parameter must be a float32 tensor.")
        }
        try Optimizer.check(learningRate, "learning rate", name)
        self.parameters = parameters
        self.learningRate = learningRate
        state = Array(repeating: [:], count: parameters.count)
        steps = Array(repeating: 0, count: parameters.count)
    }

    /// Checks that a hyperparameter is finite and non-negative (PyTorch raises for these too).
    static func check(_ value: Float, _ what: String, _ optimizer: String, below limit: Float? = nil) throws {
        guard value.isFinite, value >= 0, limit.map({ value < $0 }) ?? true else {
            throw TensorError("\(optimizer): invalid \(what) \(value); it must be \(limit.map { "in [0, \($0))" } ?? "finite and ≥ 0").")
        }
    }

    /// Updates every trainable parameter that has a gradient (one kernel each).
    open func step() throws {
        for (i, parameter) in parameters.enumerated() {
            guard parameter.requiresGrad, let grad = parameter.grad else { continue }
            steps[i] += 1
            try update(parameter, grad: grad, index: i)
        }
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    /// The state every stepped parameter keeps (`exp_avg`, `momentum_buffer`, ...), by which a
    /// checkpoint's optimizer state is checked for completeness; nil (the default, for optimizers
    /// written outside Kiln) skips that check.
    open var stateNames: [String]? { nil }

    /// Applies one update to `parameter`; `steps[index]` already counts this step.
    open func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        throw TensorError("\(type(of: self)) does not implement update(_:grad:index:).")
    }

    /// The state tensor `name` of parameter `index` (PyTorch's `state[p][name]`: a momentum, a
    /// moving average), zero-filled on first use, saved and restored with checkpoints. Optimizers
    /// written outside Kiln keep their state here too.
    public func stateTensor(_ name: String, for index: Int) throws -> Tensor {
        guard parameters.indices.contains(index) else {
            throw TensorError("\(type(of: self)).stateTensor: no parameter \(index) (there are \(parameters.count)).")
        }
        if let existing = state[index][name] { return existing }
        let made = try Tensor.zeros(parameters[index].shape, on: parameters[index].device)
        state[index][name] = made
        return made
    }

    /// The optimizer's state: `state.<i>.<name>` tensors and `state.<i>.step` (as PyTorch keeps it).
    public func stateDict() throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (i, entries) in state.enumerated() {
            for (name, tensor) in entries { result["state.\(i).\(name)"] = tensor }
            if steps[i] > 0 { result["state.\(i).step"] = try Tensor([Float(steps[i])], shape: [], on: parameters[i].device) }
        }
        return result
    }

    /// Restores what `stateDict()` gave.
    public func load(stateDict: [String: Tensor]) throws {
        var newState = Array(repeating: [String: Tensor](), count: parameters.count)
        var newSteps = Array(repeating: 0, count: parameters.count)
        for (key, tensor) in stateDict {
            let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
            guard parts.count == 3, parts[0] == "state", let i = Int(parts[1]), parameters.indices.contains(i) else {
                throw TensorError("Optimizer.load(stateDict:): unexpected key \(key).")
            }
            if parts[2] == "step" {
                let value = try tensor.item()
                guard value.isFinite, value >= 0, value <= 1e15, value == value.rounded() else {
                    throw TensorError("Optimizer.load(stateDict:): \(key) is \(value); a step count is a whole number ≥ 0.")
                }
                newSteps[i] = Int(value)
            } else {
                guard tensor.shape == parameters[i].shape else {
                    throw TensorError("Optimizer.load(stateDict:): \(key) has shape \(tensor.shape) but parameter \(i) has \(parameters[i].shape).")
                }
                let copy = try Tensor.zeros(tensor.shape, on: parameters[i].device)
                try copy.assign(tensor)
                newState[i][parts[2]] = copy
            }
        }
        // Each parameter's state is complete (its step and every state tensor) or absent.
        for i in parameters.indices where newSteps[i] > 0 || !newState[i].isEmpty {
            guard newSteps[i] > 0 else {
                throw TensorError("Optimizer.load(stateDict:): parameter \(i) has state \(newState[i].keys.sorted()) but no step count; the optimizer state is incomplete.")
            }
            if let names = stateNames {
                let missing = names.filter { newState[i][$0] == nil }, unknown = newState[i].keys.filter { !names.contains($0) }.sorted()
                guard missing.isEmpty, unknown.isEmpty else {
                    throw TensorError("Optimizer.load(stateDict:): parameter \(i)'s state \(missing.isEmpty ? "" : "lacks \(missing)")\(missing.isEmpty || unknown.isEmpty ? "" : " and ")\(unknown.isEmpty ? "" : "has unknown \(unknown)") for \(type(of: self)); the checkpoint was written by another optimizer or is damaged.")
                }
            }
        }
        state = newState
        steps = newSteps
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's formulas,
/// including the first step, where the momentum buffer is the gradient itself).
public final class SGD: Optimizer {
    /// Hyperparameters as in `torch.optim.SGD`; they may be changed between steps.
    public var momentum: Float, dampening: Float, nesterov: Bool, weightDecay: Float

    /// `torch.optim.SGD(params, lr, momentum, dampening, nesterov, weight_decay)`, with PyTorch's
    /// defaults (all 0, no Nesterov). Throws when `nesterov` is set without momentum or with dampening.
    public init(_ parameters: [Tensor], lr: Float, momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0) throws {
        guard !nesterov || (momentum > 0 && dampening == 0) else {
            throw TensorError("SGD: Nesterov momentum requires a momentum and zero dampening.")
        }
        try Optimizer.check(momentum, "momentum", "SGD")
        try Optimizer.check(dampening, "dampening", "SGD")
        try Optimizer.check(weightDecay, "weight decay", "SGD")
        self.momentum = momentum; self.dampening = dampening; self.nesterov = nesterov; self.weightDecay = weightDecay
        try super.init(parameters, learningRate: lr)
    }

    /// `momentum_buffer` with momentum, nothing without.
    public override var stateNames: [String]? { momentum != 0 ? ["momentum_buffer"] : [] }

    /// One SGD step of `parameter`, in one kernel.
    public override func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        let first = state[index]["momentum_buffer"] == nil
        let buffer = momentum != 0 ? try stateTensor("momentum_buffer", for: index) : nil
        try parameter.kernels.sgdStep(
            param: parameter.buffer, grad: grad.buffer, momentumBuffer: buffer?.buffer,
            hyper: SGDHyperparameters(lr: learningRate, momentum: momentum, dampening: dampening, nesterov: nesterov,
                                      weightDecay: weightDecay),
            firstStep: first)
    }
}

/// Adam (`decoupled: false`, weight decay added to the gradient) with PyTorch's bias correction.
public class Adam: Optimizer {
    /// Hyperparameters as in `torch.optim.Adam` (`betas` split in two); they may be changed between steps.
    public var beta1: Float, beta2: Float, eps: Float, weightDecay: Float
    let decoupled: Bool

    /// `torch.optim.Adam(params, lr, betas, eps, weight_decay)`, with PyTorch's defaults
    /// (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay). Throws for no parameters or a
    /// value out of range (betas in [0, 1), the rest ≥ 0).
    public convenience init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0) throws {
        try self.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: false)
    }

    init(_ parameters: [Tensor], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float, decoupled: Bool) throws {
        let name = decoupled ? "AdamW" : "Adam"
        try Optimizer.check(betas.0, "beta1", name, below: 1)
        try Optimizer.check(betas.1, "beta2", name, below: 1)
        try Optimizer.check(eps, "eps", name)
        try Optimizer.check(weightDecay, "weight decay", name)
        beta1 = betas.0; beta2 = betas.1; self.eps = eps; self.weightDecay = weightDecay; self.decoupled = decoupled
        try super.init(parameters, learningRate: lr)
    }

    /// `exp_avg` and `exp_avg_sq`.
    public override var stateNames: [String]? { ["exp_avg", "exp_avg_sq"] }

    /// Updates every parameter with a gradient, those with equal step counts together in a few launches.
    public override func step() throws {
        var byStep: [Int: [(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>)]] = [:]
        var first: Tensor?
        for (i, parameter) in parameters.enumerated() {
            guard parameter.requiresGrad, let grad = parameter.grad else { continue }
            steps[i] += 1
            byStep[steps[i], default: []].append((try parameter.buffer, try grad.buffer,
                                                  try stateTensor("exp_avg", for: i).buffer,
                                                  try stateTensor("exp_avg_sq", for: i).buffer))
            first = first ?? parameter
        }
        guard let kernels = try first?.kernels else { return }
        let hyper = AdamHyperparameters(lr: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
        for (step, tensors) in byStep.sorted(by: { $0.key < $1.key }) {
            try kernels.adamStep(tensors: tensors, step: step, hyper: hyper, decoupled: decoupled)
        }
    }

    /// One Adam (or AdamW) step of `parameter` alone; `step()` updates many in fewer launches.
    public override func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        let hyper = AdamHyperparameters(lr: learningRate, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
        let m = try stateTensor("exp_avg", for: index), v = try stateTensor("exp_avg_sq", for: index)
        if decoupled {
            try parameter.kernels.adamWStep(param: parameter.buffer, grad: grad.buffer, expAvg: m.buffer,
                                            expAvgSq: v.buffer, step: steps[index], hyper: hyper)
        } else {
            try parameter.kernels.adamStep(param: parameter.buffer, grad: grad.buffer, expAvg: m.buffer,
                                           expAvgSq: v.buffer, step: steps[index], hyper: hyper)
        }
    }
}

/// AdamW: Adam with decoupled weight decay (default 0.01, as in PyTorch).
public final class AdamW: Adam {
    /// `torch.optim.AdamW(params, lr, betas, eps, weight_decay)`, with PyTorch's defaults
    /// (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01). Throws as `Adam` does.
    public init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0.01) throws {
        try super.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}

/// RMSprop with PyTorch's formulas (optional momentum and centering).
public final class RMSprop: Optimizer {
    /// Hyperparameters as in `torch.optim.RMSprop`; they may be changed between steps.
    public var alpha: Float, eps: Float, weightDecay: Float, momentum: Float, centered: Bool

    /// `torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered)`, with
    /// PyTorch's defaults (lr 1e-2, alpha 0.99, eps 1e-8, no weight decay or momentum, not centered).
    /// Throws for no parameters or a negative value.
    public init(_ parameters: [Tensor], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) throws {
        for (value, what) in [(alpha, "alpha"), (eps, "eps"), (weightDecay, "weight decay"), (momentum, "momentum")] {
            try Optimizer.check(value, what, "RMSprop")
        }
        self.alpha = alpha; self.eps = eps; self.weightDecay = weightDecay; self.momentum = momentum; self.centered = centered
        try super.init(parameters, learningRate: lr)
    }

    /// `square_avg`, plus `momentum_buffer` with momentum and `grad_avg` when centered.
    public override var stateNames: [String]? {
        ["square_avg"] + (momentum > 0 ? ["momentum_buffer"] : []) + (centered ? ["grad_avg"] : [])
    }

    /// One RMSprop step of `parameter`, in one kernel.
    public override func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        let squareAvg = try stateTensor("square_avg", for: index)
        let momentumBuffer = momentum > 0 ? try stateTensor("momentum_buffer", for: index) : nil
        let gradAvg = centered ? try stateTensor("grad_avg", for: index) : nil
        try parameter.kernels.rmspropStep(
            param: parameter.buffer, grad: grad.buffer, squareAvg: squareAvg.buffer,
            momentumBuffer: momentumBuffer?.buffer, gradAvg: gradAvg?.buffer,
            hyper: RMSpropHyperparameters(lr: learningRate, alpha: alpha, eps: eps, weightDecay: weightDecay,
                                          momentum: momentum, centered: centered))
    }
}
