import KilnDevice
import KilnTensor

/// Records what each module produced while `Module.summary(inputShape:)` runs a forward pass.
final class SummaryRecorder: @unchecked Sendable {
    @TaskLocal static var current: SummaryRecorder?

    struct Row {
        let module: Module
        let depth: Int
        let index: [Int]
        var outputShape: [Int] = []
    }
    private(set) var rows: [Row] = []
    private var depth = 0
    private var counters: [Int] = [0]

    func record(_ module: Module, input: Tensor, _ body: () throws -> Tensor) throws -> Tensor {
        counters[counters.count - 1] += 1
        let slot = rows.count
        rows.append(Row(module: module, depth: depth, index: Array(counters.dropFirst())))
        depth += 1
        counters.append(0)
        defer { depth -= 1; counters.removeLast() }
        let output = try body()
        rows[slot].outputShape = output.shape
        return output
    }
}

extension Module {
    /// The layers, their output shapes and parameter counts for an input of `inputShape` (batch
    /// included), as torchinfo's `summary(model, input_size=...)` prints it:
    ///
    /// ```text
    /// ============================================================================
    /// Layer (type:depth-idx)                   Output Shape         Param #
    /// ============================================================================
    /// Sequential                               [1, 10]              --
    /// ├─Linear: 1-1                            [1, 256]             200,960
    /// ├─ReLU: 1-2                              [1, 256]             --
    /// ...
    /// Total params: 235,146
    /// ```
    /// It runs one forward pass on zeros, in eval mode and without recording gradients.
    public func summary(inputShape: [Int], on device: Device? = nil) throws -> String {
        let device = try device ?? parameters.first?.device ?? Tensor.defaultDevice()
        let recorder = SummaryRecorder()
        let wasTraining = training
        eval()
        defer { train(wasTraining) }
        let input = try Tensor.zeros(inputShape, on: device)
        _ = try withNoGrad { try SummaryRecorder.$current.withValue(recorder) { try self(input) } }

        func number(_ n: Int) -> String {
            let digits = String(n)
            var out = ""
            for (i, c) in digits.reversed().enumerated() {
                if i > 0 && i % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return String(out.reversed())
        }
        func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
        let rule = String(repeating: "=", count: 78)
        var lines = [rule, pad("Layer (type:depth-idx)", 41) + pad("Output Shape", 21) + "Param #", rule]
        for row in recorder.rows {
            let own = row.module.members().reduce(0) { total, entry in
                if case .parameter(let t) = entry.member { return total + t.count }
                return total
            }
            let name = row.depth == 0 ? row.module.typeName
                : String(repeating: "│    ", count: row.depth - 1) + "├─" + row.module.typeName + ": "
                  + "\(row.depth)-\(row.index.last ?? 0)"
            lines.append(pad(name, 41) + pad("\(row.outputShape)", 21) + (own == 0 ? "--" : number(own)))
        }
        let all = parameters
        let total = all.reduce(0) { $0 + $1.count }, trainable = all.filter(\.requiresGrad).reduce(0) { $0 + $1.count }
        let buffers = namedBuffers().reduce(0) { $0 + $1.tensor.count }
        lines += [rule, "Total params: \(number(total))", "Trainable params: \(number(trainable))",
                  "Non-trainable params: \(number(total - trainable))",
                  "Buffers: \(number(buffers)) values (running statistics and counters)",
                  "Params size (MB): \(String(format: "%.2f", Double(total * 4) / 1e6))", rule]
        return lines.joined(separator: "\n")
    }
}
