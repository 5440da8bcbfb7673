import Foundation
import KilnDevice
import KilnKernels
import KilnTensor
import KilnTestSupport
import Testing

/// A row-major N-d array in Double: the reference the tensor ops are checked against.
struct NDArray {
    var shape: [Int]
    var values: [Double]

    init(_ shape: [Int], _ values: [Double]) { self.shape = shape; self.values = values }
    init(_ tensor: Tensor) throws { self.init(tensor.shape, try tensor.toArray().map(Double.init)) }

    var strides: [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for i in shape.indices.dropLast().reversed() { s[i] = s[i + 1] * shape[i + 1] }
        return s
    }

    /// The index of element `flat` along each axis.
    func index(_ flat: Int) -> [Int] {
        var rest = flat
        return zip(shape, strides).map { d, s in let i = rest / s; rest -= i * s; return i % max(d, 1) }
    }

    func at(_ index: [Int]) -> Double { values[zip(index, strides).reduce(0) { $0 + $1.0 * $1.1 }] }

    /// Broadcast `a op b` under NumPy's rules.
    static func broadcast(_ a: NDArray, _ b: NDArray, _ op: (Double, Double) -> Double) -> NDArray {
        let rank = max(a.shape.count, b.shape.count)
        func pad(_ s: [Int]) -> [Int] { [Int](repeating: 1, count: rank - s.count) + s }
        let (pa, pb) = (pad(a.shape), pad(b.shape))
        let shape = zip(pa, pb).map { max($0, $1) }
        let out = NDArray(shape, [])
        let values = (0..<shape.reduce(1, *)).map { flat -> Double in
            let i = out.index(flat)
            let ia = NDArray(pa, a.values).at(zip(i, pa).map { $1 == 1 ? 0 : $0 })
            let ib = NDArray(pb, b.values).at(zip(i, pb).map { $1 == 1 ? 0 : $0 })
            return op(ia, ib)
        }
        return NDArray(shape, values)
    }

    /// `combine` over `axes` (kept as size 1 when `keepDims`).
    func reduce(_ axes: [Int], keepDims: Bool, _ initial: Double, _ combine: (Double, Double) -> Double) -> NDArray {
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        var out = NDArray(kept, [Double](repeating: initial, count: kept.reduce(1, *)))
        for flat in values.indices {
            let i = index(flat).enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
            let o = zip(i, out.strides).reduce(0) { $0 + $1.0 * $1.1 }
            out.values[o] = combine(out.values[o], values[flat])
        }
        if !keepDims { out.shape = shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element) }
        return out
    }

    func permuted(_ order: [Int]) -> NDArray {
        let shape = order.map { self.shape[$0] }
        let out = NDArray(shape, [])
        return NDArray(shape, (0..<values.count).map { flat in
            let i = out.index(flat)
            var source = [Int](repeating: 0, count: order.count)
            for (k, a) in order.enumerated() { source[a] = i[k] }
            return at(source)
        })
    }
}

/// Seeded values of `shape`, as a tensor and as its Double reference.
func ndInput(_ shape: [Int], seed: UInt64, in range: ClosedRange<Float> = -2...2) throws -> (Tensor, NDArray) {
    let values = randomFloats(shape.reduce(1, *), in: range, seed: seed)
    return (try Tensor(values, shape: shape, on: TestDevice.get()), NDArray(shape, values.map(Double.init)))
}

func expectMatches(_ tensor: Tensor, _ reference: NDArray, rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(tensor.shape == reference.shape, "\(what): shape \(tensor.shape) vs \(reference.shape)", sourceLocation: sourceLocation)
    expectClose(try tensor.toArray(), reference.values, rtol: rtol, atol: atol, what, sourceLocation: sourceLocation)
}

@Suite("N-d tensors against a Double reference")
struct NDTensorTests {
    static let broadcastPairs: [([Int], [Int])] = [
        ([4, 1], [1, 3]), ([7, 13], [13]), ([7, 13], [7, 1]), ([2, 3, 5], [3, 1]), ([3, 1, 5], [2, 1, 4, 1]),
        ([1], [31, 7]), ([129, 1, 3], [1, 257, 1]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([5, 1, 7, 1, 3], [4, 1, 2, 1]), ([], [3, 2]),
    ]

    @Test("element-wise ops broadcast at any rank, either operand", arguments: broadcastPairs)
    func broadcasting(a aShape: [Int], b bShape: [Int]) throws {
        let (a, ra) = try ndInput(aShape, seed: 1, in: 0.5...2), (b, rb) = try ndInput(bShape, seed: 2, in: 0.5...2)
        try expectMatches(a + b, .broadcast(ra, rb, +), "\(aShape) + \(bShape)")
        try expectMatches(a - b, .broadcast(ra, rb, -), "\(aShape) - \(bShape)")
        try expectMatches(b - a, .broadcast(rb, ra, -), "\(bShape) - \(aShape)")
        try expectMatches(a * b, .broadcast(ra, rb, *), "\(aShape) * \(bShape)")
        try expectMatches(b / a, .broadcast(rb, ra, /), "\(bShape) / \(aShape)")
        try expectMatches(a.maximum(b), .broadcast(ra, rb, { max($0, $1) }), "maximum")
        try expectMatches(a .< b, .broadcast(ra, rb, { $0 < $1 ? 1 : 0 }), "\(aShape) .< \(bShape)")
        try expectMatches(a.pow(b), .broadcast(ra, rb, { Foundation.pow($0, $1) }), rtol: 4e-6, "pow")
    }

    @Test("shapes that do not broadcast throw, naming both")
    func broadcastErrors() throws {
        let (a, _) = try ndInput([4, 3], seed: 1), (b, _) = try ndInput([4], seed: 2)
        do {
            _ = try a + b
            Issue.record("[4, 3] + [4] should not broadcast")
        } catch let error as TensorError {
            #expect(error.description.contains("[4, 3]") && error.description.contains("[4]"))
        }
    }

    @Test("an op whose inputs live on two devices throws a TensorError instead of reaching OpenCL")
    func twoDevices() throws {
        let (one, two) = (try Device.makeDefault(), try Device.makeDefault())
        let a = try Tensor.ones([2, 3, 4, 4], on: one), w = try Tensor.ones([5, 3, 3, 3], on: two)
        let checks: [(String, () throws -> Tensor)] = [
            ("add", { try a + Tensor.ones([4], on: two) }),
            ("matmul", { try Tensor.ones([2, 3], on: one).matmul(Tensor.ones([3, 2], on: two)) }),
            ("conv2d", { try a.conv2d(weight: w) }),
            ("batchNorm", { try a.batchNorm(weight: Tensor.ones([3], on: two), bias: nil, runningMean: nil, runningVar: nil,
                                            training: true) }),
            ("crossEntropy", { try crossEntropy(logits: Tensor.ones([2, 3], on: one), targets: Tensor(labels: [0, 1], on: two)) }),
        ]
        for (op, run) in checks {
            #expect(throws: TensorError.self, "\(op)") { try run() }
            do { _ = try run() } catch { #expect("\(error)".contains("different devices"), "\(op): \(error)") }
        }
    }

    @Test("sum, mean and max over any set of axes, with and without keepDims",
          arguments: [[0], [1], [3], [0, 2], [1, 3], [0, 1, 3], [0, 1, 2, 3], [-1], [2, -3]])
    func reductions(axes: [Int]) throws {
        let shape = [3, 7, 13, 5]
        let (x, rx) = try ndInput(shape, seed: 4)
        let resolved = axes.map { $0 < 0 ? $0 + 4 : $0 }
        for keepDims in [false, true] {
            try expectMatches(x.sum(axes: axes, keepDims: keepDims), rx.reduce(resolved, keepDims: keepDims, 0, +),
                              rtol: 1e-5, atol: 1e-5, "sum \(axes) keepDims \(keepDims)")
            let count = Double(resolved.reduce(1) { $0 * shape[$1] })
            var mean = rx.reduce(resolved, keepDims: keepDims, 0, +)
            mean.values = mean.values.map { $0 / count }
            try expectMatches(x.mean(axes: axes, keepDims: keepDims), mean, rtol: 1e-5, atol: 1e-6, "mean \(axes)")
            try expectMatches(x.max(axes: axes, keepDims: keepDims), rx.reduce(resolved, keepDims: keepDims, -.infinity, max),
                              "max \(axes)")
        }
    }

    @Test("argmax along each axis of a rank-3 tensor with ties takes the first maximum")
    func argmax() throws {
        let device = try TestDevice.get()
        let shape = [5, 6, 7]
        let values = randomFloats(210, in: -2...2, seed: 8).map { ($0 * 2).rounded() / 2 }   // many ties
        let x = try Tensor(values, shape: shape, on: device), rx = NDArray(shape, values.map(Double.init))
        for axis in 0..<3 {
            let got = try x.argmax(axis: axis).toIntArray()
            var kept = shape
            kept.remove(at: axis)
            var expected: [Int] = []
            for flat in 0..<kept.reduce(1, *) {
                let i = NDArray(kept, []).index(flat)
                var best = 0
                for k in 1..<shape[axis] {
                    var a = i, b = i
                    a.insert(k, at: axis)
                    b.insert(best, at: axis)
                    if rx.at(a) > rx.at(b) { best = k }
                }
                expected.append(best)
            }
            #expect(got == expected, "argmax axis \(axis)")
        }
        let flat = try x.argmax().toIntArray()[0]
        #expect(flat == values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) })
    }

    @Test("permute, transpose of two axes, squeeze, unsqueeze, flatten and expand move elements as PyTorch does")
    func layout() throws {
        let (x, rx) = try ndInput([3, 1, 7, 5], seed: 5)
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [0, 2, 1, 3]] {
            try expectMatches(x.permuted(order), rx.permuted(order), rtol: 0, atol: 0, "permute \(order)")
        }
        try expectMatches(x.transposed(0, 2), rx.permuted([2, 1, 0, 3]), rtol: 0, atol: 0, "transpose 0, 2")
        #expect(try x.squeezed().shape == [3, 7, 5])
        #expect(try x.squeezed(axis: 1).shape == [3, 7, 5])
        #expect(try x.squeezed(axis: 0).shape == [3, 1, 7, 5])   // not of size 1: unchanged, as PyTorch
        #expect(try x.unsqueezed(axis: -1).shape == [3, 1, 7, 5, 1])
        #expect(try x.flattened().shape == [3, 35])
        #expect(try x.flattened(startAxis: 0, endAxis: 1).shape == [3, 7, 5])
        let (c, rc) = try ndInput([7, 1], seed: 6)
        try expectMatches(c.expanded(to: [2, 7, 5]), .broadcast(rc, NDArray([2, 7, 5], [Double](repeating: 0, count: 70)), +),
                          rtol: 0, atol: 0, "expand")
        #expect(throws: TensorError.self) { try c.expanded(to: [2, 6, 5]) }
        #expect(throws: TensorError.self) { try x.permuted([0, 0, 1, 2]) }
    }

    @Test("subscripts, slices, concatenation along any axis and stack")
    func indexing() throws {
        let (x, rx) = try ndInput([4, 3, 5], seed: 7)
        let first = try x[0], last = try x[-1], row = try x[2, 1]
        #expect(first.shape == [3, 5] && row.shape == [5])
        #expect(try first.toArray().map(Double.init) == Array(rx.values[0..<15]))
        #expect(try last.toArray().map(Double.init) == Array(rx.values[45..<60]))
        #expect(try row.toArray().map(Double.init) == Array(rx.values[35..<40]))
        #expect(try x[1, 2, 3].shape == [])
        #expect(try x[1..<3].shape == [2, 3, 5] && x[..<1].shape == [1, 3, 5] && x[3...].shape == [1, 3, 5])
        #expect(throws: TensorError.self) { try x[4] }
        #expect(throws: TensorError.self) { try x[0, 0, 0, 0] }
        let middle = try x.sliced(axis: 2, 1..<4)
        #expect(middle.shape == [4, 3, 3])
        #expect(try middle.toArray().map(Double.init) == (0..<36).map { rx.at([$0 / 9, $0 / 3 % 3, $0 % 3 + 1]) })
        let (y, ry) = try ndInput([4, 2, 5], seed: 8)
        let joined = try Tensor.concatenated([x, y], along: 1)
        #expect(joined.shape == [4, 5, 5])
        #expect(try joined.toArray().map(Double.init) == (0..<100).map { i in
            let (a, b, c) = (i / 25, i / 5 % 5, i % 5)
            return b < 3 ? rx.at([a, b, c]) : ry.at([a, b - 3, c])
        })
        #expect(throws: TensorError.self) { try Tensor.concatenated([x, y], along: 0) }
        let stacked = try Tensor.stack([x, x], along: 3)
        #expect(stacked.shape == [4, 3, 5, 2])
        #expect(try stacked.toArray().map(Double.init) == rx.values.flatMap { [$0, $0] })
    }

    @Test("where, abs and comparisons with a scalar")
    func selection() throws {
        let (x, rx) = try ndInput([5, 7], seed: 9)
        let (y, _) = try ndInput([7], seed: 10)
        let picked = try Tensor.where(x .> 0, x, y)
        let ry = try NDArray(y)
        try expectMatches(picked, NDArray([5, 7], (0..<35).map { rx.values[$0] > 0 ? rx.values[$0] : ry.values[$0 % 7] }),
                          rtol: 0, atol: 0, "where")
        try expectMatches(x.abs(), NDArray([5, 7], rx.values.map { Swift.abs($0) }), rtol: 0, atol: 0, "abs")
        try expectMatches(x .>= 0.5, NDArray([5, 7], rx.values.map { $0 >= 0.5 ? 1 : 0 }), rtol: 0, atol: 0, ".>= 0.5")
        try expectMatches(x.eq(x), NDArray([5, 7], [Double](repeating: 1, count: 35)), rtol: 0, atol: 0, "eq")
    }

    @Test("batched matmul: batches, broadcast batch axes, shared 2-D sides, transposes, vectors")
    func batchedMatmul() throws {
        func reference(_ a: NDArray, _ b: NDArray, ta: Bool, tb: Bool) -> NDArray {
            let a3 = a.shape.count == 2 ? NDArray([1] + a.shape, a.values) : a
            let b3 = b.shape.count == 2 ? NDArray([1] + b.shape, b.values) : b
            let batch = max(a3.shape[0], b3.shape[0])
            let (m, k) = ta ? (a3.shape[2], a3.shape[1]) : (a3.shape[1], a3.shape[2])
            let n = tb ? b3.shape[1] : b3.shape[2]
            var out: [Double] = []
            for i in 0..<batch {
                let ia = a3.shape[0] == 1 ? 0 : i, ib = b3.shape[0] == 1 ? 0 : i
                for r in 0..<m {
                    for c in 0..<n {
                        out.append((0..<k).reduce(0.0) { s, p in
                            s + a3.at(ta ? [ia, p, r] : [ia, r, p]) * b3.at(tb ? [ib, c, p] : [ib, p, c])
                        })
                    }
                }
            }
            return NDArray(batch == 1 && a.shape.count == 2 && b.shape.count == 2 ? [m, n] : [batch, m, n], out)
        }
        for (aShape, bShape, ta, tb) in [([3, 7, 13], [3, 13, 5], false, false), ([3, 13, 7], [3, 5, 13], true, true),
                                         ([4, 7, 13], [5, 13], false, true), ([7, 13], [2, 13, 31], false, false),
                                         ([2, 13, 7], [13, 5], true, false), ([1, 7, 13], [6, 13, 3], false, false)] {
            let (a, ra) = try ndInput(aShape, seed: 11), (b, rb) = try ndInput(bShape, seed: 12)
            try expectMatches(a.matmul(b, transposeA: ta, transposeB: tb), reference(ra, rb, ta: ta, tb: tb),
                              rtol: 1e-4, atol: 1e-5, "\(aShape)\(ta ? "ᵀ" : "") · \(bShape)\(tb ? "ᵀ" : "")")
        }
        // Batch axes that broadcast against each other.
        let (a, _) = try ndInput([2, 1, 3, 4], seed: 13), (b, _) = try ndInput([1, 5, 4, 2], seed: 14)
        #expect(try a.matmul(b).shape == [2, 5, 3, 2])
        let (v, _) = try ndInput([4], seed: 15)
        #expect(try v.matmul(b).shape == [1, 5, 2] && a.matmul(v).shape == [2, 1, 3])
        #expect(throws: TensorError.self) { try a.matmul(a) }
    }

    @Test("tensors from Double arrays and nested arrays of any depth; ragged arrays throw")
    func literals() throws {
        let device = try TestDevice.get()
        let a = try Tensor([1.5, 2.5] as [Double], on: device)
        #expect(a.shape == [2])
        #expect(try a.toArray() == [1.5, 2.5])
        let b = try Tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], on: device)
        #expect(b.shape == [2, 2, 2])
        #expect(try b.toArray() == (1...8).map(Float.init))
        let c = try Tensor(2.5, on: device)
        #expect(c.shape == [])
        #expect(try c.item() == 2.5)
        #expect(throws: TensorError.self) { try Tensor([[1, 2], [3]], on: device) }
        #expect(throws: TensorError.self) { try Tensor([[Double]](), on: device) }
    }
}
