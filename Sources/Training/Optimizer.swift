import KilnDevice
import KilnKernels
import KilnTensor

/// The shared part of every optimizer: the parameters, the learning rate, per-parameter state on
/// the device, `step()` and `zeroGrad()`. A subclass says only how one parameter is updated.
///
/// ```swift
/// let optimizer = Adam(model.parameters, lr: 1e-3)
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
    /// call it from their own `init`.
    public init(_ parameters: [Tensor], learningRate: Float) {
        self.parameters = parameters
        self.learningRate = learningRate
        state = Array(repeating: [:], count: parameters.count)
        steps = Array(repeating: 0, count: parameters.count)
    }

    /// Updates every parameter that has a gradient (one kernel each).
    public func step() throws {
        for (i, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            steps[i] += 1
            try update(parameter, grad: grad, index: i)
        }
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for parameter in parameters { parameter.zeroGrad() }
    }

    /// Applies one update to `parameter`; `steps[index]` already counts this step.
    open func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        throw TensorError("\(type(of: self)) does not implement update(_:grad:index:).")
    }

    /// The state tensor `name` of parameter `index`, zero-filled on first use.
    func buffer(_ name: String, _ index: Int) throws -> Tensor {
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
                newSteps[i] = Int(try tensor.item())
            } else {
                guard tensor.shape == parameters[i].shape else {
                    throw TensorError("Optimizer.load(stateDict:): \(key) has shape \(tensor.shape) but parameter \(i) has \(parameters[i].shape).")
                }
                let copy = try Tensor.zeros(tensor.shape, on: parameters[i].device)
                try copy.assign(tensor)
                newState[i][parts[2]] = copy
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
        self.momentum = momentum; self.dampening = dampening; self.nesterov = nesterov; self.weightDecay = weightDecay
        super.init(parameters, learningRate: lr)
    }

    /// One SGD step of `parameter`, in one kernel.
    public override func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        let first = state[index]["momentum_buffer"] == nil
        let buffer = momentum != 0 ? try self.buffer("momentum_buffer", index) : nil
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
    /// (lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay).
    public init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0) {
        beta1 = betas.0; beta2 = betas.1; self.eps = eps; self.weightDecay = weightDecay; decoupled = false
        super.init(parameters, learningRate: lr)
    }

    init(_ parameters: [Tensor], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float, decoupled: Bool) {
        beta1 = betas.0; beta2 = betas.1; self.eps = eps; self.weightDecay = weightDecay; self.decoupled = decoupled
        super.init(parameters, learningRate: lr)
    }

    /// Updates every parameter with a gradient, those with equal step counts together in a few launches.
    public override func step() throws {
        var byStep: [Int: [(param: Buffer<Float>, grad: Buffer<Float>, expAvg: Buffer<Float>, expAvgSq: Buffer<Float>)]] = [:]
        var first: Tensor?
        for (i, parameter) in parameters.enumerated() {
            guard let grad = parameter.grad else { continue }
            steps[i] += 1
            byStep[steps[i], default: []].append((try parameter.buffer, try grad.buffer, try buffer("exp_avg", i).buffer,
                                                  try buffer("exp_avg_sq", i).buffer))
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
        let m = try buffer("exp_avg", index), v = try buffer("exp_avg_sq", index)
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
    /// (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01).
    public override init(_ parameters: [Tensor], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8,
                weightDecay: Float = 0.01) {
        super.init(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }
}

/// RMSprop with PyTorch's formulas (optional momentum and centering).
public final class RMSprop: Optimizer {
    /// Hyperparameters as in `torch.optim.RMSprop`; they may be changed between steps.
    public var alpha: Float, eps: Float, weightDecay: Float, momentum: Float, centered: Bool

    /// `torch.optim.RMSprop(params, lr, alpha, eps, weight_decay, momentum, centered)`, with
    /// PyTorch's defaults (lr 1e-2, alpha 0.99, eps 1e-8, no weight decay or momentum, not centered).
    public init(_ parameters: [Tensor], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) {
        self.alpha = alpha; self.eps = eps; self.weightDecay = weightDecay; self.momentum = momentum; self.centered = centered
        super.init(parameters, learningRate: lr)
    }

    /// One RMSprop step of `parameter`, in one kernel.
    public override func update(_ parameter: Tensor, grad: Tensor, index: Int) throws {
        let squareAvg = try buffer("square_avg", index)
        let momentumBuffer = momentum > 0 ? try buffer("momentum_buffer", index) : nil
        let gradAvg = centered ? try buffer("grad_avg", index) : nil
        try parameter.kernels.rmspropStep(
            param: parameter.buffer, grad: grad.buffer, squareAvg: squareAvg.buffer,
            momentumBuffer: momentumBuffer?.buffer, gradAvg: gradAvg?.buffer,
            hyper: RMSpropHyperparameters(lr: learningRate, alpha: alpha, eps: eps, weightDecay: weightDecay,
                                          momentum: momentum, centered: centered))
    }
}
