import Foundation

/// SIGINT and SIGTERM, caught so that training stops cleanly: `Trainer.fit` finishes the step it
/// is in, `ModelCheckpoint` writes a resumable `last.safetensors` (with the position inside the
/// epoch), the history is written, and `fit` throws `TrainingInterrupted`. A second SIGINT exits
/// at once with status 130. Nothing is caught until `install()` is called (the `kiln` tool does).
public enum Interrupts {
    /// Catches SIGINT and SIGTERM from now on.
    public static func install() {
        _ = pending   // allocate before any handler can run
        signal(SIGINT, handleInterrupt)
        signal(SIGTERM, handleInterrupt)
        // A parent may have started us with these signals blocked (they would then wait forever).
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// The signal received and not yet acted on, or nil.
    public static var received: Int32? {
        let value = pending.pointee
        return value == 0 ? nil : value
    }

    /// Acts as if `signal` had arrived (for tests, and for stopping a run from code).
    public static func request(_ signal: Int32 = SIGINT) { pending.pointee = signal }

    /// Forgets a received signal.
    public static func reset() { pending.pointee = 0 }

    /// The flag the handler sets: one word, written only by the handler and `request`/`reset`.
    nonisolated(unsafe) static let pending: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
}

/// The signal handler: async-signal-safe (one store, or `_exit`).
private func handleInterrupt(_ signal: Int32) {
    if Interrupts.pending.pointee != 0 && signal == SIGINT { _exit(130) }
    Interrupts.pending.pointee = signal
}

/// `fit` stopped because of a signal, after step `step`; a checkpoint callback has saved the run.
public struct TrainingInterrupted: Error, CustomStringConvertible, Sendable {
    /// The signal (SIGINT, SIGTERM).
    public let signal: Int32
    /// The optimizer steps taken, the epochs completed and the batches done in the epoch after them.
    public let step: Int, epoch: Int, batchesDone: Int
    /// The exit status a shell expects after the signal: 128 + its number (130, 143).
    public var exitStatus: Int32 { 128 + signal }
    /// `Interrupted by SIGINT after step N (epoch E, batch B).`
    public var description: String {
        let name = signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
        return "Interrupted by \(name) after step \(step) (epoch \(epoch + (batchesDone > 0 ? 1 : 0)), \(batchesDone > 0 ? "batch \(batchesDone)" : "at its end"))."
    }
}
