import KilnDevice

/// How a tensor was made: its inputs, and a closure that, given the gradient of the output,
/// enqueues the kernels giving the gradients of the inputs (one per input; nil where none flows).
final class Node {
    let inputs: [Tensor]
    let backward: (Tensor) throws -> [Tensor?]

    init(inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether operations are being recorded (false inside `withNoGrad`).
enum GradMode {
    @TaskLocal static var enabled = true
}

/// Runs `body` without recording operations for autograd (PyTorch's `torch.no_grad()`).
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(false, operation: body)
}

extension Tensor {
    /// Records `node` as the maker of `self` when grad mode is on and an input requires grad.
    /// Returns `self`, so an op can end with `return out.recorded(inputs) { g in ... }`.
    func recorded(_ inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        guard GradMode.enabled, inputs.contains(where: \.requiresGrad) else { return self }
        node = Node(inputs: inputs, backward: backward)
        requiresGrad = true   // after the node: a tensor made by an op is not a parameter
        return self
    }

    /// Whether this tensor was made by a recorded operation (PyTorch's `grad_fn is not None`).
    public var isLeaf: Bool { node == nil }

    /// Computes the gradient of this tensor with respect to every leaf that requires grad, adding it
    /// to their `grad`. Needs a one-element tensor unless `gradient` (the seed, of this shape) is given.
    /// The graph is released afterwards, so its buffers return to the pool.
    public func backward(gradient seed: Tensor? = nil) throws {
        guard requiresGrad else {
            throw TensorError("backward(): this tensor does not require grad (no input had requiresGrad, or it was made in withNoGrad).")
        }
        if node == nil && graphReleased {
            throw TensorError("backward(): the graph through this tensor was already released by an earlier backward(); run the forward pass again.")
        }
        let userSeed = seed
        let seed = try seed ?? {
            guard count == 1 else {
                throw TensorError("backward(): the output has shape \(shape); pass gradient: for a non-scalar output (PyTorch: grad can be implicitly created only for scalar outputs).")
            }
            let ones = try Tensor.full(shape, 1, on: device)
            ones.isUnitSeed = true
            return ones
        }()
        guard seed.shape == shape else {
            throw TensorError("backward(gradient:): the gradient has shape \(seed.shape) but the output has \(shape).")
        }

        // Topological order: every tensor after all the tensors it was made from.
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        func visit(_ t: Tensor) {
            guard t.requiresGrad, visited.insert(ObjectIdentifier(t)).inserted else { return }
            t.node?.inputs.forEach(visit)
            order.append(t)
        }
        visit(self)

        // A leaf takes its first gradient's buffer as its own unless another tensor's gradient (or
        // the caller) also holds that buffer; then it copies. Saves a copy per parameter per step.
        var handedOut = Set<ObjectIdentifier>(), shared = Set<ObjectIdentifier>()
        func note(_ t: Tensor) {
            guard let buffer = t.floatStorage else { return }
            if !handedOut.insert(ObjectIdentifier(buffer)).inserted { shared.insert(ObjectIdentifier(buffer)) }
        }
        note(seed)
        if let buffer = userSeed?.floatStorage { shared.insert(ObjectIdentifier(buffer)) }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        for t in order.reversed() {
            guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
            guard let node = t.node else {
                let exclusive = g.floatStorage.map { !shared.contains(ObjectIdentifier($0)) } ?? false
                try t.accumulateGrad(g, adopting: exclusive)
                continue
            }
            // Backward closures use tensor ops themselves; they must not record a graph of their own.
            let inputGrads = try withNoGrad { try node.backward(g) }
            for (input, inputGrad) in zip(node.inputs, inputGrads) {
                guard input.requiresGrad, let inputGrad else { continue }
                note(inputGrad)
                let key = ObjectIdentifier(input)
                if let earlier = grads[key] {
                    let sum = try earlier.adding(inputGrad)
                    note(sum)
                    grads[key] = sum
                } else {
                    grads[key] = inputGrad
                }
            }
        }
        for t in order where t.node != nil {
            t.node = nil
            t.graphReleased = true
        }
    }

    /// `grad += g` for a leaf. The first time, `g` itself becomes the gradient when `adopting` (no
    /// other tensor holds its buffer), else a copy of it.
    func accumulateGrad(_ g: Tensor, adopting: Bool) throws {
        guard g.shape == shape else {
            throw TensorError("internal: gradient of shape \(g.shape) for a tensor of shape \(shape).")
        }
        if let grad {
            try kernels.axpy(alpha: 1, x: g.floats("grad"), y: grad.floats("grad"))
        } else if adopting {
            grad = Tensor(shape: shape, floats: try g.floats("grad"))
        } else {
            // Keep a buffer of our own: `g` may be shared with other tensors of the graph.
            let copy = try Tensor.empty(shape, on: device)
            try copy.floats("grad").copy(from: g.floats("grad"))
            grad = copy
        }
    }

    /// Sets `grad` to nil (PyTorch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() { grad = nil }

    /// A tensor sharing this one's data but cut from the graph (never requires grad).
    public func detach() -> Tensor {
        if let floatStorage { return Tensor(shape: shape, floats: floatStorage) }
        return self
    }

    /// `self + other` without recording: gradients are summed this way.
    func adding(_ other: Tensor) throws -> Tensor {
        let out = try Tensor.empty(shape, on: device)
        try kernels.binary(.add, floats("add"), other.floats("add"), rows: 1, cols: count, into: out.floats("add"))
        return out
    }
}
