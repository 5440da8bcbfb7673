import Foundation

/// The process-wide seed for Kiln's counter-based generator (PyTorch's `torch.manual_seed`).
/// Each draw takes a fresh range of Philox counters, so results depend only on the seed and the
/// order of draws — the same on every device.
public enum RandomState {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var seed: UInt64 = 0
    nonisolated(unsafe) private static var offset: UInt64 = 0

    /// Restarts the generator from `seed`.
    public static func manualSeed(_ value: UInt64) {
        lock.lock(); seed = value; offset = 0; lock.unlock()
    }

    /// A (seed, offset) pair for `count` random numbers; later draws get later counters.
    public static func next(count: Int) -> (seed: UInt64, offset: UInt64) {
        lock.lock(); defer { lock.unlock() }
        let drawn = (seed, offset)
        offset &+= UInt64(max(count, 1) + 15) / 16 * 16
        return drawn
    }

    /// The current (seed, offset), for checkpoints.
    public static var state: (seed: UInt64, offset: UInt64) {
        get { lock.lock(); defer { lock.unlock() }; return (seed, offset) }
        set { lock.lock(); seed = newValue.seed; offset = newValue.offset; lock.unlock() }
    }
}
