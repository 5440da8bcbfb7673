import Foundation
import KilnDevice
import KilnKernels
import KilnTensor
import KilnTestSupport
import Testing

/// Checks autograd against central finite differences: `f` maps the inputs to any tensor, which is
/// reduced to a scalar by a fixed random weighting so every output element matters.
func gradCheck(_ shapes: [[Int]], seed: UInt64 = 1, range: ClosedRange<Float> = -1...1, avoidZero: Bool = false,
               eps: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3,
               _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
               _ f: ([Tensor]) throws -> Tensor) throws {
    let device = try TestDevice.get()
    var values = shapes.enumerated().map { i, shape in
        randomFloats(shape.reduce(1, *), in: range, seed: seed &+ UInt64(i) &* 7919).map {
            avoidZero ? ($0 < 0 ? $0 - 0.2 : $0 + 0.2) : $0
        }
    }
    let inputs = try zip(values, shapes).map { try Tensor($0, shape: $1, on: device, requiresGrad: true) }
    let probe = try f(inputs)
    let weights = try Tensor(randomFloats(probe.count, in: 0.5...1.5, seed: seed &+ 99), shape: probe.shape, on: device)
    func scalar(_ ts: [Tensor]) throws -> Tensor { try (f(ts) * weights).sum() }

    let loss = try scalar(inputs)
    try loss.backward()
    for (i, input) in inputs.enumerated() {
        let analytic = try #require(input.grad, "\(what): input \(i) got no gradient", sourceLocation: sourceLocation).toArray()
        var numeric: [Double] = []
        for j in values[i].indices {
            let original = values[i][j]
            func evaluate(_ v: Float) throws -> Double {
                values[i][j] = v
                defer { values[i][j] = original }
                return try withNoGrad {
                    Double(try scalar(zip(values, shapes).map { try Tensor($0, shape: $1, on: device) }).item())
                }
            }
            numeric.append((try evaluate(original + eps) - evaluate(original - eps)) / Double(2 * eps))
        }
        expectClose(analytic, numeric, rtol: rtol, atol: atol, "\(what): gradient of input \(i)", sourceLocation: sourceLocation)
    }
}

@Suite("Finite-difference gradient checks")
struct GradCheckTests {
    @Test("binary arithmetic with every broadcast")
    func arithmetic() throws {
        for (name, op) in [("+", { (a: Tensor, b: Tensor) in try a + b }), ("-", { try $0 - $1 }),
                           ("*", { try $0 * $1 }), ("/", { try $0 / $1 })] as [(String, (Tensor, Tensor) throws -> Tensor)] {
            for bShape in [[3, 5], [5], [1, 5], [3, 1], [1]] {
                try gradCheck([[3, 5], bShape], range: 0.5...2, "a \(name) b with b \(bShape)") { try op($0[0], $0[1]) }
            }
            try gradCheck([[5], [3, 5]], range: 0.5...2, "row \(name) matrix") { try op($0[0], $0[1]) }
        }
        try gradCheck([[4, 3]], "scalar ops") { try (($0[0] * 3 + 1) / 2 - 0.5) }
        try gradCheck([[4, 3]], range: 0.5...2, "scalar / tensor, scalar - tensor") { try (2 / $0[0]) + (1 - $0[0]) }
    }

    @Test("unary functions and activations")
    func unary() throws {
        try gradCheck([[3, 7]], "neg") { try $0[0].neg() }
        try gradCheck([[3, 7]], "exp") { try $0[0].exp() }
        try gradCheck([[3, 7]], range: 0.5...3, "log") { try $0[0].log() }
        try gradCheck([[3, 7]], range: 0.5...3, "sqrt") { try $0[0].sqrt() }
        try gradCheck([[3, 7]], range: 0.5...2, "pow 3") { try $0[0].pow(3) }
        try gradCheck([[3, 7]], range: -2...2, avoidZero: true, "clamp") { try $0[0].clamp(min: -0.7, max: 0.9) }
        try gradCheck([[3, 7]], avoidZero: true, "relu") { try $0[0].relu() }
        try gradCheck([[3, 7]], avoidZero: true, "leakyRelu") { try $0[0].leakyRelu(slope: 0.1) }
        try gradCheck([[3, 7]], "sigmoid") { try $0[0].sigmoid() }
        try gradCheck([[3, 7]], "tanh") { try $0[0].tanh() }
        try gradCheck([[3, 7]], range: -3...3, "gelu") { try $0[0].gelu() }
    }

    @Test("reductions, softmax and log-softmax")
    func reductions() throws {
        try gradCheck([[4, 6]], "sum") { try $0[0].sum() }
        try gradCheck([[4, 6]], "sum rows") { try $0[0].sum(axis: 1) }
        try gradCheck([[4, 6]], "sum columns keepDims") { try $0[0].sum(axis: 0, keepDims: true) }
        try gradCheck([[4, 6]], "mean") { try $0[0].mean() }
        try gradCheck([[4, 6]], "mean rows") { try $0[0].mean(axis: -1) }
        // Finite differences split the gradient between near-ties, so max gets well-separated values.
        try gradCheck([[4, 6]], seed: 11, range: -10...10, "max") { try $0[0].max() }
        try gradCheck([[4, 6]], seed: 11, range: -10...10, "max rows") { try $0[0].max(axis: 1) }
        try gradCheck([[4, 6]], seed: 11, range: -10...10, "max columns") { try $0[0].max(axis: 0) }
        try gradCheck([[4, 6]], range: -3...3, "softmax") { try $0[0].softmax() }
        try gradCheck([[4, 6]], range: -3...3, "logSoftmax") { try $0[0].logSoftmax() }
    }

    @Test("matmul in all four transposes, and linear with bias and activations")
    func matmul() throws {
        try gradCheck([[3, 4], [4, 5]], "matmul nn") { try $0[0].matmul($0[1]) }
        try gradCheck([[3, 4], [5, 4]], "matmul nt") { try $0[0].matmul($0[1], transposeB: true) }
        try gradCheck([[4, 3], [4, 5]], "matmul tn") { try $0[0].matmul($0[1], transposeA: true) }
        try gradCheck([[4, 3], [5, 4]], "matmul tt") { try $0[0].matmul($0[1], transposeA: true, transposeB: true) }
        for activation in [Activation?.none, .relu, .leakyRelu(slope: 0.2), .leakyRelu(slope: -0.5), .sigmoid, .tanh, .gelu] {
            try gradCheck([[6, 4], [3, 4], [3]], "linear \(String(describing: activation))") {
                try Tensor.linear($0[0], $0[1], bias: $0[2], activation: activation, transposeB: true)
            }
        }
    }

    @Test("batch norm in training mode (with and without affine) and dropout with a fixed mask")
    func normalization() throws {
        try gradCheck([[6, 4], [4], [4]], range: -2...2, "batchNorm affine") {
            try $0[0].batchNorm(weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        try gradCheck([[5, 3]], range: -2...2, "batchNorm without affine") {
            try $0[0].batchNorm(weight: nil, bias: nil, runningMean: nil, runningVar: nil, training: true)
        }
        try gradCheck([[4, 3, 2, 5], [3], [3]], range: -2...2, "batchNorm over [N, C, H, W] (BatchNorm2d)") {
            try $0[0].batchNorm(weight: $0[1], bias: $0[2], runningMean: nil, runningVar: nil, training: true)
        }
        // The same (seed, offset) gives the same mask in every evaluation.
        try gradCheck([[7, 5]], "dropout p 0.3") { try $0[0].dropout(p: 0.3, seed: 42, offset: 0) }
        try gradCheck([[3, 4, 5]], "channel dropout p 0.5") { try $0[0].dropout(p: 0.5, seed: 42, offset: 0, group: 5) }
    }

    @Test("NumPy broadcasting at any rank, both operands broadcast")
    func broadcasting() throws {
        let pairs: [([Int], [Int])] = [([4, 1], [1, 3]), ([2, 3, 4], [3, 1]), ([2, 1, 4], [3, 1]), ([3], [2, 3, 1]),
                                       ([2, 3, 4, 5], [3, 1, 1]), ([1, 3, 1, 5], [2, 1, 4, 1]), ([2, 3], [])]
        for (a, b) in pairs {
            try gradCheck([a, b], range: 0.5...2, "\(a) + \(b)") { try $0[0] + $0[1] }
            try gradCheck([a, b], range: 0.5...2, "\(a) - \(b)") { try $0[0] - $0[1] }
            try gradCheck([a, b], range: 0.5...2, "\(a) * \(b)") { try $0[0] * $0[1] }
            try gradCheck([a, b], range: 0.5...2, "\(a) / \(b)") { try $0[0] / $0[1] }
        }
        try gradCheck([[3, 4], [4]], seed: 3, range: -2...2, "maximum") { try $0[0].maximum($0[1]) }
        try gradCheck([[3, 4], [3, 1]], seed: 4, range: -2...2, "minimum") { try $0[0].minimum($0[1]) }
        try gradCheck([[3, 4], [4]], range: 0.5...2, "pow with a tensor exponent") { try $0[0].pow($0[1]) }
        try gradCheck([[3, 4]], range: -2...2, avoidZero: true, "abs") { try $0[0].abs() }
        try gradCheck([[3, 4], [3, 4]], range: -2...2, avoidZero: true, "where") { try Tensor.where($0[0] .> 0, $0[0], $0[1] * 2) }
    }

    @Test("reductions over any set of axes of rank-4 tensors")
    func reductionsND() throws {
        let shape = [2, 3, 4, 5]
        for axes in [[0], [1], [3], [0, 2], [1, 3], [0, 1, 3], [0, 1, 2, 3]] {
            try gradCheck([shape], "sum over \(axes)") { try $0[0].sum(axes: axes) }
            try gradCheck([shape], "mean over \(axes) keepDims") { try $0[0].mean(axes: axes, keepDims: true) }
        }
        try gradCheck([shape], seed: 11, range: -10...10, "max over axis 2") { try $0[0].max(axis: 2) }
        try gradCheck([shape], seed: 11, range: -10...10, "max over [1, 3]") { try $0[0].max(axes: [1, 3]) }
    }

    @Test("N-d shape ops: permute, transpose of two axes, squeeze, expand, slices, subscripts, concatenation, stack")
    func shapesND() throws {
        try gradCheck([[2, 3, 4]], "permute [2, 0, 1]") { try $0[0].permuted([2, 0, 1]) }
        try gradCheck([[2, 3, 4, 5]], "transpose axes 1, 3") { try $0[0].transposed(1, 3) }
        try gradCheck([[3, 1, 4]], "squeeze, unsqueeze") { try $0[0].squeezed(axis: 1).unsqueezed(axis: 0) }
        try gradCheck([[3, 1]], "expand to [2, 3, 4]") { try $0[0].expanded(to: [2, 3, 4]) }
        try gradCheck([[3, 5, 2]], "slice axis 1") { try $0[0].sliced(axis: 1, 1..<4) }
        try gradCheck([[4, 3, 2]], "subscripts") { try Tensor.concatenated([$0[0][1], $0[0][2, 1].unsqueezed(axis: 0), $0[0][-1]]) }
        try gradCheck([[4, 3]], "range subscript") { try $0[0][1..<3] }
        try gradCheck([[2, 3, 4], [2, 1, 4]], "concatenate along axis 1") { try Tensor.concatenated([$0[0], $0[1]], along: 1) }
        try gradCheck([[2, 3], [2, 3]], "stack along a new last axis") { try Tensor.stack([$0[0], $0[1]], along: -1) }
        try gradCheck([[2, 3, 4]], "flatten axes 1...2") { try $0[0].flattened(startAxis: 1) }
    }

    @Test("batched matmul: batches, broadcast 2-D sides, batch broadcasting, transposes, vectors")
    func batchedMatmul() throws {
        try gradCheck([[2, 3, 4], [2, 4, 5]], "batched nn") { try $0[0].matmul($0[1]) }
        try gradCheck([[2, 4, 3], [2, 5, 4]], "batched tt") { try $0[0].matmul($0[1], transposeA: true, transposeB: true) }
        try gradCheck([[2, 3, 4], [5, 4]], "batch times a shared matrix, nt") { try $0[0].matmul($0[1], transposeB: true) }
        try gradCheck([[3, 4], [2, 4, 5]], "shared matrix times a batch") { try $0[0].matmul($0[1]) }
        try gradCheck([[2, 4, 3], [4, 5]], "batch transposed times a shared matrix") { try $0[0].matmul($0[1], transposeA: true) }
        try gradCheck([[2, 1, 3, 4], [1, 3, 4, 2]], "batch axes broadcast") { try $0[0].matmul($0[1]) }
        try gradCheck([[4], [4, 5]], "vector times matrix") { try $0[0].matmul($0[1]) }
        try gradCheck([[2, 3, 4], [4]], "batch times vector") { try $0[0].matmul($0[1]) }
    }

    @Test("shape ops: reshape, transpose, rows, gather, concatenation")
    func shapes() throws {
        let device = try TestDevice.get()
        let index = try Tensor(labels: [2, 0, 2, 1], on: device)
        try gradCheck([[3, 4]], "reshape") { try $0[0].reshaped([2, 6]) }
        try gradCheck([[3, 4]], "transpose") { try $0[0].transposed() }
        try gradCheck([[5, 3]], "rows") { try $0[0].rows(1..<4) }
        try gradCheck([[3, 4]], "gather (with a repeated index)") { try $0[0].gathered(rows: index) }
        try gradCheck([[2, 3], [4, 3]], "concatenation") { try Tensor.concatenated([$0[0], $0[1]]) }
    }

    @Test("losses: cross-entropy (with smoothing and every reduction), NLL, MSE, BCE with logits")
    func losses() throws {
        let device = try TestDevice.get()
        let targets = try Tensor(labels: [0, 3, 1, 3, 2], on: device)
        for reduction in Reduction.allCases {
            try gradCheck([[5, 4]], range: -3...3, "cross-entropy \(reduction)") {
                try crossEntropy(logits: $0[0], targets: targets, reduction: reduction)
            }
        }
        try gradCheck([[5, 4]], range: -3...3, "cross-entropy, label smoothing 0.1") {
            try crossEntropy(logits: $0[0], targets: targets, labelSmoothing: 0.1)
        }
        try gradCheck([[5, 4]], range: -3...3, "NLL of log-softmax") {
            try nllLoss(logProbabilities: $0[0].logSoftmax(), targets: targets)
        }
        try gradCheck([[5, 4], [5, 4]], "MSE") { try mseLoss($0[0], $0[1]) }
        let labels = try Tensor(randomFloats(20, in: 0...1, seed: 5), shape: [5, 4], on: device)
        try gradCheck([[5, 4]], range: -3...3, "BCE with logits") { try binaryCrossEntropyWithLogits($0[0], labels) }
    }
}
