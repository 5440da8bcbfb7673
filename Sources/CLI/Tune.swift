import ArgumentParser
import Foundation
import Kiln
import KilnTuning

/// `kiln tune`: searches the kernels' parameters on a device and stores what it finds.
struct Tune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tune the kernels to a device: search tiles and work-groups, keep the fastest, use them from then on.",
        discussion: """
            Searches the matrix products' tiles (all four transposes, at the MLP's, the CNN's and square \
            shapes), the convolutions' use of local memory, and the work-group sizes of the reduction, \
            softmax and batch-norm kernels, within --budget seconds. Each candidate is checked against a \
            float64 reference before it is timed. The result goes to $XDG_CACHE_HOME/kiln/tuning (else \
            ~/.cache/kiln/tuning), keyed by the device, its driver and Kiln's version and tied to the \
            kernels' source; every later start on that device uses it with no search. Without it (or with \
            KILN_TUNING=0) Kiln uses its rule table. A damaged or stale file is ignored, and the next \
            `kiln tune` replaces it.

            --json writes {"type": "progress", "fraction", "message"} lines, one {"type": "product", "name", \
            "shape", "rule_gflops", "tuned_gflops", "tiles"} per measured shape, one {"type": "choice", "name", \
            "rule", "chosen", "rule_ms", "tuned_ms"} per launch choice, then {"type": "tuned", "file", \
            "seconds", "candidates", "rejected", "kept_products"}. A search of some parts (--only) keeps what an \
            earlier search stored for the others.
            """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "Seconds the search may take (candidates stop when it is spent).")
    var budget: Double = 180

    @Option(name: .long, parsing: .upToNextOption,
            help: "Only these parts: \(Tuner.Part.allCases.map(\.rawValue).joined(separator: ", ")).")
    var only: [String] = []

    @Flag(help: "Show what is stored for the device (and whether it is used) without searching.")
    var show = false

    @Flag(help: "Remove the stored result for the device: the rule table again.")
    var reset = false

    @Flag(help: "Write JSON Lines to stdout (see the discussion) and everything else to stderr.")
    var json = false

    func validate() throws {
        guard budget.isFinite, budget > 0, budget <= 86_400 else {
            throw ValidationError("--budget takes seconds from more than 0 to 86400; got \(budget).")
        }
        let unknown = parts.unknown
        guard unknown.isEmpty else {
            throw ValidationError("Unknown part(s) \(unknown.joined(separator: ", ")); choose from \(Tuner.Part.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        guard !(show && reset) else { throw ValidationError("--show and --reset cannot be combined.") }
    }

    private var parts: (chosen: Set<Tuner.Part>, unknown: [String]) {
        let names = only.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        let chosen = Set(names.compactMap(Tuner.Part.init(rawValue:)))
        // `--only ""` names nothing: an unknown part, not every part.
        let unknown = names.filter { Tuner.Part(rawValue: $0) == nil } + (!only.isEmpty && names.isEmpty ? ["\"\""] : [])
        return (only.isEmpty ? Set(Tuner.Part.allCases) : chosen, unknown)
    }

    func run() throws {
        do {
            let console = Console(json: json)
            guard let cache = TuningCache.fromEnvironment() else {
                throw Failure(message: "Tuning is off (KILN_TUNING=0); unset it to tune or to use a tuned configuration.")
            }
            let device = try deviceOptions.open(profiling: true)
            let file = cache.url(for: device.info)
            if reset {
                try cache.remove(for: device.info)
                console.say("Removed the tuning of \(device.info.name); Kiln uses its rule table on it.")
                try console.emit(["type": "reset", "file": file.path])
                return
            }
            if show {
                try showEntry(cache.entry(for: device.info, base: KernelConfig(for: device.info)), file: file, console)
                return
            }
            console.say("Tuning \(device) for at most \(Int(budget)) s")
            let tuner = try Tuner(device: device, budget: budget)
            tuner.parts = parts.chosen
            let bar = ProgressBar(enabled: !json)
            var tuned = try tuner.run { step in
                bar.show(step.fraction, step.message)
                try? console.emit(["type": "progress", "fraction": step.fraction, "message": step.message])
            }
            bar.finish()
            // A search of some parts keeps what an earlier search found for the others.
            if case .tuned(let earlier) = cache.entry(for: device.info, base: KernelConfig(for: device.info)) {
                tuned = tuned.merging(earlier, searched: Set(tuner.parts.map(\.rawValue)))
            }
            try cache.store(tuned, for: device.info)
            printTable(tuner.rows, tuned.choices, console)
            for row in tuner.rows {
                try console.emit(["type": "product", "name": row.name, "shape": row.shape.description,
                                  "rule_gflops": row.ruleGFLOPS, "tuned_gflops": row.tunedGFLOPS, "tiles": row.tiles])
            }
            for choice in tuned.choices {
                try console.emit(["type": "choice", "name": choice.name, "rule": choice.rule, "chosen": choice.chosen,
                                  "rule_ms": choice.ruleMilliseconds, "tuned_ms": choice.tunedMilliseconds])
            }
            for problem in tuner.rejected { console.say("Rejected: \(problem)") }
            let kept = tuner.rows.filter { $0.tiles != "rule table" }.count
            console.say(String(format: "Searched %d candidates in %.0f s; new tiles for %d of %d shapes. Wrote %@",
                               tuner.candidates, tuned.seconds, kept, tuner.rows.count, file.path))
            try console.emit(["type": "tuned", "file": file.path, "seconds": tuned.seconds, "candidates": tuner.candidates,
                              "rejected": tuner.rejected.count, "kept_products": kept])
        } catch let error as ValidationError {
            throw error
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(error)
        }
    }

    private func showEntry(_ entry: TuningCache.Entry, file: URL, _ console: Console) throws {
        switch entry {
        case .none:
            console.say("No tuning stored for this device (\(file.path)); Kiln uses its rule table. Run `kiln tune`.")
            try console.emit(["type": "tuning", "status": "none", "file": file.path])
        case .ignored(let reason):
            console.say("Ignored: \(reason). Kiln uses its rule table until `kiln tune` replaces the file.")
            try console.emit(["type": "tuning", "status": "ignored", "reason": reason, "file": file.path])
        case .tuned(let tuned):
            console.say("Tuned on \(tuned.date) in \(String(format: "%.0f", tuned.seconds)) s (\(file.path)):")
            let rows = tuned.products.map {
                Tuner.Row(name: $0.shape.description, shape: $0.shape, ruleGFLOPS: $0.ruleGFLOPS, tunedGFLOPS: $0.tunedGFLOPS,
                          tiles: $0.keepsRuleTable ? "rule table" : $0.config.summary(kind: DeviceKind(rawValue: tuned.kind) ?? .cpu))
            }
            printTable(rows, tuned.choices, console)
            try console.emit(["type": "tuning", "status": "tuned", "file": file.path, "date": tuned.date,
                              "products": tuned.products.count, "choices": tuned.choices.count])
        }
    }

    private func printTable(_ rows: [Tuner.Row], _ choices: [TunedChoice], _ console: Console) {
        guard !rows.isEmpty || !choices.isEmpty else { return }
        console.say("shape".padding(toLength: 22, withPad: " ", startingAt: 0) + " " + "m x k x n".padding(toLength: 20, withPad: " ", startingAt: 0)
            + "rule GFLOP/s".leftPadded(13) + "tuned".leftPadded(9) + "×".leftPadded(7) + "  tiles")
        for row in rows {
            let s = row.shape
            let dims = "\(s.variant) \(s.m)x\(s.k)x\(s.n)" + (s.summed > 1 ? " Σ\(s.summed)" : "")
            console.say(row.name.padding(toLength: 22, withPad: " ", startingAt: 0) + " " + dims.padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: "%.1f", row.ruleGFLOPS).leftPadded(13) + String(format: "%.1f", row.tunedGFLOPS).leftPadded(9)
                + String(format: "%.2f", row.tunedGFLOPS / max(row.ruleGFLOPS, 1e-9)).leftPadded(7) + "  " + row.tiles)
        }
        for choice in choices {
            console.say(choice.name.padding(toLength: 43, withPad: " ", startingAt: 0)
                + String(format: "%9.3f ms", choice.ruleMilliseconds) + String(format: "%9.3f ms", choice.tunedMilliseconds)
                + "  \(choice.rule) → \(choice.chosen)")
        }
    }
}

/// A one-line progress bar on stderr, redrawn in place on a terminal (one line per step otherwise).
final class ProgressBar {
    private let enabled: Bool
    private let terminal = isatty(STDERR_FILENO) != 0
    private var last = ""

    init(enabled: Bool) { self.enabled = enabled }

    func show(_ fraction: Double, _ message: String) {
        guard enabled else { return }
        let width = 24, filled = Int((fraction * Double(width)).rounded(.down))
        let bar = "[" + String(repeating: "#", count: min(width, filled)) + String(repeating: ".", count: max(0, width - filled)) + "]"
        let line = "\(bar) \(String(format: "%3.0f", fraction * 100))%  \(message)"
        guard line != last else { return }
        last = line
        let text = terminal ? "\r\u{1B}[K" + String(line.prefix(120)) : line + "\n"
        FileHandle.standardError.write(Data(text.utf8))
    }

    func finish() {
        if enabled, terminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
