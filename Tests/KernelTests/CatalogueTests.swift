import Foundation
import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("The kernel catalogue")
struct CatalogueTests {
    /// Sources/Kernels, read from this file's place in the repository.
    static let launcherFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources/Kernels")

    @Test("every kernel of the built program, on both paths, is in the catalogue, and every entry is built")
    func programMatchesCatalogue() throws {
        for kernels in try EW.libraries() {
            let built = Set(try kernels.program.kernelNames())
            let listed = Set(KernelName.allCases.filter { $0.isBuilt(for: kernels.config.kind) }.map(\.rawValue))
            #expect(built.subtracting(listed).isEmpty, "\(EW.path(kernels)): in kernels.cl but not in KernelName: \(built.subtracting(listed).sorted())")
            #expect(listed.subtracting(built).isEmpty, "\(EW.path(kernels)): in KernelName but not built: \(listed.subtracting(built).sorted())")
        }
    }

    @Test("every catalogue entry has a launcher: some launcher in Sources/Kernels names it")
    func everyEntryIsLaunched() throws {
        let files = try FileManager.default.contentsOfDirectory(at: Self.launcherFolder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "swift" && $0.lastPathComponent != "KernelCatalogue.swift" }
        let text = try files.map { try String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")
        #expect(!files.isEmpty, "found no launcher files under \(Self.launcherFolder.path)")
        // The matmul launcher picks its variant through KernelName.matmul(transposeA:transposeB:small:summed:).
        #expect(text.contains(".matmul(transposeA:"), "the matmul launcher does not choose its kernel by KernelName.matmul")
        let flags = [false, true]
        let variants = Set(flags.flatMap { a in
            flags.flatMap { b in
                flags.flatMap { small in flags.map { KernelName.matmul(transposeA: a, transposeB: b, small: small, summed: $0) } }
            }
        })
        for entry in KernelName.allCases {
            let launched = text.contains(".\(entry)") || variants.contains(entry)
            #expect(launched, "KernelName.\(entry) (\(entry.rawValue)) has no launcher")
        }
        // No kernel is named by a string literal in a launcher.
        for file in files {
            let source = try String(contentsOf: file, encoding: .utf8)
            for entry in KernelName.allCases where source.contains("\"\(entry.rawValue)\"") {
                Issue.record("\(file.lastPathComponent) names kernel \(entry.rawValue) by a string literal")
            }
        }
    }

    @Test("the library's program holds no benchmark microkernels")
    func noBenchKernels() throws {
        let names = try TestDevice.kernels().program.kernelNames()
        #expect(!names.contains { $0.hasPrefix("bench_") }, "\(names.filter { $0.hasPrefix("bench_") })")
    }
}
