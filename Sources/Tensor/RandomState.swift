import Foundation

/// The process-wide seed for Kiln's counter-based generator (PyTorch's `torch.manual_seed`).
/// Each draw takes a fresh range of Philox counters, so results depend only on the seed and the
/// order of draws — the same on every device. `withSeed(_:_:)` gives a block a generator of its
/// own (PyTorch's `torch.random.fork_rng`), which concurrent work cannot disturb.
public enum RandomState {
    /// A seed and the next counter offset.
    final class Generator: @unchecked Sendable {
        let lock = NSLock()
        var seed: UInt64
        var offset: UInt64 = 0
        init(seed: UInt64) { self.seed = seed }
    }

    private static let global = Generator(seed: 0)
    @TaskLocal private static var scoped: Generator?
    private static var current: Generator { scoped ?? global }

    /// Restarts the generator from `seed` (the block's own inside `withSeed`).
    public static func manualSeed(_ value: UInt64) {
        let g = current
        g.lock.lock(); g.seed = value; g.offset = 0; g.lock.unlock()
    }

    /// Runs `body` with a generator of its own, started from `seed`: its draws do not move the
    /// process-wide generator, and draws elsewhere (another test, another thread) do not move its.
    ///
    /// ```swift
    /// let a = try RandomState.withSeed(7) { try Tensor.rand([3]).toArray() }
    /// let b = try RandomState.withSeed(7) { try Tensor.rand([3]).toArray() }   // a == b
    /// ```
    public static func withSeed<R>(_ seed: UInt64, _ body: () throws -> R) rethrows -> R {
        try $scoped.withValue(Generator(seed: seed), operation: body)
    }

    /// A (seed, offset) pair for `count` random numbers; later draws get later counters.
    public static func next(count: Int) -> (seed: UInt64, offset: UInt64) {
        let g = current
        g.lock.lock(); defer { g.lock.unlock() }
        let drawn = (g.seed, g.offset)
        g.offset &+= UInt64(max(count, 1) + 15) / 16 * 16
        return drawn
    }

    /// The current (seed, offset), for checkpoints.
    public static var state: (seed: UInt64, offset: UInt64) {
        get { let g = current; g.lock.lock(); defer { g.lock.unlock() }; return (g.seed, g.offset) }
        set { let g = current; g.lock.lock(); g.seed = newValue.seed; g.offset = newValue.offset; g.lock.unlock() }
    }
}
