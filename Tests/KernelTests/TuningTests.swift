import Foundation
import KilnDevice
import KilnKernels
import KilnSupport
import KilnTestSupport
import KilnTuning
import Testing

/// A fresh folder for a tuning cache.
private func temporaryCache() throws -> TuningCache {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tuning-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return TuningCache(directory: url)
}

/// A tuned configuration for the test device holding one shape's tiles.
private func sample(_ device: Device, tiles: MatmulConfig) -> TunedConfiguration {
    var tuned = TunedConfiguration(for: device.info, kind: KernelConfig(for: device.info).kind)
    tuned.products = [TunedProduct(shape: MatmulShape(transposeA: false, transposeB: true, m: 128, n: 256, k: 784),
                                   config: tiles, ruleGFLOPS: 50, tunedGFLOPS: 60)]
    tuned.rowsGroup = 32
    return tuned
}

/// Tiles unlike the rule table's in every parameter the tuner searches on a CPU.
private var otherTiles: MatmulConfig {
    var tiles = MatmulConfig()
    (tiles.tileRows, tiles.vectors, tiles.vectorWidth, tiles.swizzle, tiles.group) = (8, 3, 8, 1, [2, 8])
    (tiles.mainKBlock, tiles.dotWidth, tiles.dotRows, tiles.dotCols) = (128, 16, 2, 4)
    return tiles
}

@Suite("Tuning", .serialized)
struct TuningTests {
    @Test("the candidate check accepts the reference and catches one wrong element, a NaN, a touched pad and a missing row")
    func checkCatchesWrongProducts() throws {
        let c = TuningCheck.Case(m: 5, n: 7, k: 9, ta: true, tb: false, count: 2, epilogue: true, accumulate: true,
                                 padA: 2, padC: 3)
        let (lda, ldc) = (5 + 2, 7 + 3)
        let a = randomFloats(2 * 9 * lda, seed: 1), b = randomFloats(2 * 9 * 7, seed: 2), bias = randomFloats(7, seed: 3)
        let old = randomFloats(2 * 5 * ldc, seed: 4)
        var product = old
        for p in 0..<2 {
            for i in 0..<5 {
                for j in 0..<7 {
                    var sum = Double(bias[j])
                    for q in 0..<9 { sum += Double(a[p * 9 * lda + q * lda + i]) * Double(b[p * 63 + q * 7 + j]) }
                    product[p * 5 * ldc + i * ldc + j] = Float(Double(old[p * 5 * ldc + i * ldc + j]) + max(sum, 0))
                }
            }
        }
        #expect(TuningCheck.verify(c, a: a, b: b, bias: bias, old: old, got: product) == nil)
        var wrong = product
        wrong[ldc + 5] += 0.01
        #expect(TuningCheck.verify(c, a: a, b: b, bias: bias, old: old, got: wrong)?.contains("C[1, 5]") == true)
        wrong = product
        wrong[3] = .nan
        #expect(TuningCheck.verify(c, a: a, b: b, bias: bias, old: old, got: wrong) != nil)
        wrong = product
        wrong[8] = 0  // the padding past column 7 of row 0
        #expect(TuningCheck.verify(c, a: a, b: b, bias: bias, old: old, got: wrong)?.contains("C[0, 8]") == true)
        #expect(TuningCheck.verify(c, a: a, b: b, bias: bias, old: old, got: Array(product.dropLast(7))) != nil)
    }

    @Test("tiles unlike the rule table's, nt through a transpose, packed panels and other GPU tiles all pass the check in every transpose")
    func candidatesMatchTheReference() throws {
        let device = try TestDevice.get()
        let cpu = try KernelLibrary(device: device, config: KernelConfig(for: device.info, kind: .cpu))
        var transposing = MatmulConfig()
        transposing.ntTransposesB = true
        var packing = otherTiles   // 8 × 3 vectors of 8: panels of 8 rows and 24 columns
        packing.packsPanels = true
        for (library, tiles) in [(cpu, otherTiles), (cpu, transposing), (cpu, packing)] {
            for variant in ["nn", "nt", "tn", "tt"] {
                #expect(try TuningCheck.products(library, tiles: tiles, variant: variant) == nil,
                        "\(tiles.summary(kind: .cpu)) \(variant)")
            }
        }
        let gpu = try KernelLibrary(device: device, config: KernelConfig(for: device.info, kind: .gpu))
        var gpuTiles = MatmulConfig()
        (gpuTiles.gpuGroup, gpuTiles.gpuWork, gpuTiles.gpuK) = ([8, 4], 2, 8)
        for variant in ["nn", "nt", "tn", "tt"] {
            #expect(try TuningCheck.products(gpu, tiles: gpuTiles, variant: variant) == nil, "gpu \(variant)")
        }
    }

    @Test("a stored configuration is used at the next start: its tiles for the nearest shape, its group sizes")
    func storedConfigurationIsUsed() throws {
        let device = try TestDevice.get()
        let cache = try temporaryCache()
        let tuned = sample(device, tiles: otherTiles)
        try cache.store(tuned, for: device.info)
        #expect(cache.entry(for: device.info, base: KernelConfig(for: device.info)) == .tuned(tuned))
        let library = try KernelLibrary(device: device, tuningCache: cache)
        #expect(library.tuned == tuned && library.tuningIgnored == nil)
        #expect(library.config.rowsGroup == 32)
        // A Linear forward of nearby size takes the stored tiles; another transpose or a far shape does not.
        #expect(library.tiles(for: MatmulShape(transposeA: false, transposeB: true, m: 100, n: 256, k: 700)) == otherTiles)
        let rules = KernelConfig(for: device.info).matmul
        #expect(library.tiles(for: MatmulShape(transposeA: false, transposeB: false, m: 128, n: 256, k: 784)) == rules)
        #expect(library.tiles(for: MatmulShape(transposeA: false, transposeB: true, m: 4, n: 4, k: 4)) == rules)
        // And the product it runs with them is right.
        let (m, n, k) = (128, 256, 784)
        let a = randomFloats(m * k, seed: 5), b = randomFloats(n * k, seed: 6)
        let c = try device.buffer(Float.self, count: m * n)
        try library.matmul(device.buffer(a), device.buffer(b), into: c, m: m, n: n, k: k, transposeB: true)
        expectClose(try c.toArray(), referenceMatmul(a, b, m: m, n: n, k: k, ta: false, tb: true, bias: nil,
                                                     activation: nil, previous: nil), rtol: 1e-4, atol: 1e-4)
    }

    @Test("a corrupt, truncated, stale, foreign or forged tuning file is ignored with a reason, and the rule table used")
    func badFilesAreIgnored() throws {
        let device = try TestDevice.get()
        let cache = try temporaryCache()
        let base = KernelConfig(for: device.info)
        let good = sample(device, tiles: otherTiles)
        let encoder = JSONEncoder()
        let valid = try encoder.encode(good)
        func variant(_ change: (inout TunedConfiguration) -> Void) throws -> Data {
            var copy = good
            change(&copy)
            return try encoder.encode(copy)
        }
        func json(_ change: (inout [String: Any]) -> Void) throws -> Data {
            var object = try #require(try JSONSerialization.jsonObject(with: valid) as? [String: Any])
            change(&object)
            return try JSONSerialization.data(withJSONObject: object)
        }
        var tooMany = good
        tooMany.products = Array(repeating: good.products[0], count: 300)
        let bad: [(String, Data, String)] = [
            ("garbage", Data([0xff, 0x00, 0x13, 0x37]), "not a tuning file"),
            ("truncated", valid.prefix(valid.count / 2), "not a tuning file"),
            ("empty", Data(), "not a tuning file"),
            ("a missing key", try json { $0.removeValue(forKey: "products") }, "not a tuning file"),
            ("a string for a number", try json { $0["seconds"] = "fast" }, "not a tuning file"),
            ("other kernels", try variant { $0.sourceHash = String(repeating: "0", count: 32) }, "other kernels"),
            ("another Kiln", try variant { $0.kilnVersion = "0.0.1" }, "other kernels"),
            ("another device", try variant { $0.device = "Some GPU" }, "not this device"),
            ("another driver", try variant { $0.driver = "0.1" }, "not this device"),
            ("another format", try variant { $0.format = 99 }, "format 99"),
            ("the other path", try variant { $0.kind = base.kind == .cpu ? "gpu" : "cpu" }, "path"),
            ("huge tiles", try variant { $0.products[0].config.tileRows = 100_000 }, "tileRows"),
            ("an empty group", try variant { $0.products[0].config.group = [0, 4] }, "group"),
            ("a 3-D group", try variant { $0.products[0].config.group = [4, 4, 4] }, "group"),
            ("a vector width of 3", try variant { $0.products[0].config.vectorWidth = 3 }, "vectorWidth"),
            ("a negative shape", try variant { $0.products[0].shape.m = -1 }, "impossible shape"),
            ("an unknown variant", try variant { $0.products[0].shape.variant = "xx" }, "impossible shape"),
            ("a group of 3", try variant { $0.rowsGroup = 3 }, "rowsGroup"),
            ("a group of 2^40", try variant { $0.batchNormGroup = 1 << 40 }, "batchNormGroup"),
            ("300 entries", try encoder.encode(tooMany), "more entries"),
            ("float2 small tiles", try variant { $0.products[0].config.smallWidth = 2 }, "smallWidth"),
            ("a K block past 4096", try variant { $0.products[0].config.mainKBlock = 1 << 20 }, "mainKBlock"),
            ("a GPU group of 64 x 65", try variant { $0.products[0].config.gpuGroup = [64, 65] }, "gpuGroup"),
            ("1e300 seconds", try json { $0["seconds"] = 1e300 }, "impossible"),
            ("negative GFLOP/s", try variant { $0.products[0].tunedGFLOPS = -1 }, "impossible"),
            ("5 MiB", Data(repeating: 0x20, count: 5 << 20), "larger than"),
        ]
        let url = cache.url(for: device.info)
        for (what, data, reason) in bad {
            try data.write(to: url)
            let entry = cache.entry(for: device.info, base: base)
            guard case .ignored(let message) = entry else {
                Issue.record("\(what): \(entry)")
                continue
            }
            #expect(message.contains(reason), "\(what): \(message)")
            let library = try KernelLibrary(device: device, tuningCache: cache)
            #expect(library.tuned == nil && library.tuningIgnored == message, "\(what)")
            #expect(library.config == base, "\(what)")
        }
        // Not a regular file: a link to /dev/zero (endless) and a FIFO (would block) are not read.
        try FileManager.default.removeItem(at: url)
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: "/dev/zero")
        #expect(cache.entry(for: device.info, base: base) == .ignored("\(url.path) is not a regular file"))
        try FileManager.default.removeItem(at: url)
        #expect(mkfifo(url.path, 0o600) == 0)
        #expect(cache.entry(for: device.info, base: base) == .ignored("\(url.path) is not a regular file"))
        try cache.remove(for: device.info)
        #expect(cache.entry(for: device.info, base: base) == .none)
    }

    @Test("the tuner replaces an ignored file with one that is used; a candidate that fails the check is never kept")
    func tunerRebuildsTheCache() throws {
        let device = try Device.open(nil, profiling: true)
        let cache = try temporaryCache()
        try Data("{\"format\": 1, \"products\": [".utf8).write(to: cache.url(for: device.info))
        #expect(cache.entry(for: device.info, base: KernelConfig(for: device.info)) != .none)
        let tuner = try Tuner(device: device, budget: 120,
                              shapes: [TuningShape("small nn", MatmulShape(transposeA: false, transposeB: false, m: 64, n: 64, k: 64))])
        (tuner.repeats, tuner.warmup, tuner.candidateLimit) = (3, 1, 2)
        tuner.parts = [.matmul, .groups]
        var checked = 0
        tuner.check = { _, _, _ in checked += 1; return "rejected by the test" }
        var steps: [Tuner.Progress] = []
        let tuned = try tuner.run { steps.append($0) }
        #expect(checked == 2 && tuner.rejected.count == 2 && tuner.candidates == 2)
        let rules = KernelConfig(for: device.info).matmul
        #expect(tuned.products.count == 1 && tuned.products.allSatisfy { $0.keepsRuleTable && $0.config == rules },
                "a rejected candidate was kept")
        #expect(tuner.rows.count == 1 && tuner.rows[0].tiles == "rule table")
        #expect(steps.last?.fraction == 1 && steps.contains { $0.message.contains("rule table") })
        #expect(tuned.choices.contains { $0.name.contains("rows") } || KernelConfig(for: device.info).isGPU)
        try cache.store(tuned, for: device.info)
        #expect(cache.entry(for: device.info, base: KernelConfig(for: device.info)) == .tuned(tuned))
        #expect(try KernelLibrary(device: device, tuningCache: cache).tuned == tuned)
    }

    @Test("tuned convolution tiles run the staged kernels from their own program, with the im2col path's results")
    func convolutionTiles() throws {
        let device = try TestDevice.get()
        let base = KernelConfig(for: device.info, kind: .cpu)
        var tuned = TunedConfiguration(for: device.info, kind: .cpu)
        var tiles = MatmulConfig()
        (tiles.tileRows, tiles.vectors, tiles.vectorWidth) = (4, 4, 8)
        tuned.convolutionTiles = tiles
        let library = try KernelLibrary(device: device, config: base, tuned: tuned)
        #expect(library.convolutionTiles == tiles)
        var unstaged = base
        unstaged.stagesConvolutionColumns = false
        let reference = try KernelLibrary(device: device, config: unstaged)
        let window = try WindowGeometry(samples: 3, channels: 32, height: 13, width: 11, kernel: (3, 3), padding: (1, 1))
        let o = 64, (n, p, ckk) = (window.samples, window.outputPlane, window.patchSize)
        #expect(library.convolutionStagesColumns(window, outChannels: o))
        let x = try device.buffer(randomFloats(window.inputCount, seed: 51)), w = try device.buffer(randomFloats(o * ckk, seed: 52))
        let bias = try device.buffer(randomFloats(o, seed: 53)), dy = try device.buffer(randomFloats(n * o * p, seed: 54))
        var outputs: [[[Float]]] = []
        for (kernels, staged) in [(library, true), (reference, false)] {
            let y = try device.buffer(Float.self, count: n * o * p), dw = try device.buffer(Float.self, count: o * ckk)
            let dx = try device.buffer(Float.self, count: window.inputCount)
            let columns = staged ? nil : try device.buffer(Float.self, count: n * ckk * p)
            try kernels.convolutionForward(x, weight: w, bias: bias, window, outChannels: o, activation: .relu, columns: columns, into: y)
            try kernels.convolutionWeightGradient(gradOutput: dy, input: x, columns: columns, window, outChannels: o, into: dw)
            try kernels.convolutionInputGradient(gradOutput: dy, weight: w, window, outChannels: o, into: dx)
            outputs.append([try y.toArray(), try dw.toArray(), try dx.toArray()])
        }
        for i in 0..<3 { expectClose(outputs[0][i], outputs[1][i], rtol: 1e-4, atol: 1e-3, "result \(i)") }
    }

    @Test("a search of some parts keeps what an earlier search stored for the others")
    func mergingKeepsOtherParts() throws {
        let device = try TestDevice.get()
        var earlier = sample(device, tiles: otherTiles)
        earlier.stagesConvolutionColumns = false
        earlier.choices = [TunedChoice(name: "group: rows", rule: "64", chosen: "32", ruleMilliseconds: 2, tunedMilliseconds: 1),
                           TunedChoice(name: "conv: CNN", rule: "staged", chosen: "im2col", ruleMilliseconds: 9, tunedMilliseconds: 8)]
        var groupsOnly = TunedConfiguration(for: device.info, kind: KernelConfig(for: device.info).kind)
        groupsOnly.batchNormGroup = 4
        groupsOnly.choices = [TunedChoice(name: "group: batch norm", rule: "16", chosen: "4", ruleMilliseconds: 3, tunedMilliseconds: 2)]
        let merged = groupsOnly.merging(earlier, searched: ["groups"])
        #expect(merged.products == earlier.products && merged.stagesConvolutionColumns == false)
        #expect(merged.batchNormGroup == 4 && merged.rowsGroup == nil)
        #expect(merged.choices.map(\.name) == ["conv: CNN", "group: batch norm"])
    }

    @Test("the tuning cache follows the environment: KILN_TUNING=0 turns it off, KILN_TUNING_DIR and XDG_CACHE_HOME place it")
    func cacheLocation() {
        #expect(TuningCache.fromEnvironment(["KILN_TUNING": "0"]) == nil)
        #expect(TuningCache.fromEnvironment(["KILN_TUNING_DIR": "/tmp/t"])?.directory.path == "/tmp/t")
        #expect(TuningCache.fromEnvironment(["XDG_CACHE_HOME": "/x"])?.directory.path == "/x/kiln/tuning")
        #expect(TuningCache.fromEnvironment(["HOME": "/h"])?.directory.path == "/h/.cache/kiln/tuning")
    }
}
