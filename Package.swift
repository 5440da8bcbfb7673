// swift-tools-version:6.0
import PackageDescription

// Examples/: one program per idea, each one readable file (see Examples/README.md); run one with
// `swift run <Name>`.
let examples: [Target] = ["LinearRegression", "Perceptron", "Circles", "CustomModule", "FashionMNIST", "CNN", "FineTune"].map {
    .executableTarget(name: $0, dependencies: ["Kiln", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                      path: "Examples/\($0)")
}

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Kiln", targets: ["Kiln"]),
        .library(name: "KilnDistributed", targets: ["KilnDistributed"]),
        .executable(name: "kiln", targets: ["KilnCLI"]),
        .executable(name: "kiln-bench", targets: ["KilnBenchMain"]),
        // Fuzz targets (scripts/fuzz.sh builds them for libFuzzer; normally they replay files).
        .executable(name: "kiln-fuzz-safetensors", targets: ["KilnFuzzSafetensors"]),
        .executable(name: "kiln-fuzz-idx", targets: ["KilnFuzzIDX"]),
        .executable(name: "kiln-fuzz-csv", targets: ["KilnFuzzCSV"]),
        .executable(name: "kiln-fuzz-metadata", targets: ["KilnFuzzMetadata"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation`: the DocC catalogs in Sources/*/*.docc.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // The OpenCL 1.2 C API from the system (ocl-icd + Khronos headers).
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL"),

        // What every layer uses and nothing in it is about devices: atomic file writes, the version,
        // stable hashes, the SplitMix64 generator.
        .target(name: "KilnSupport", path: "Sources/Support"),

        // Platforms, devices, selection, context/queue, buffers, pool, programs, errors.
        .target(name: "KilnDevice", dependencies: ["COpenCL", "KilnSupport"], path: "Sources/Device"),

        // kernels.cl (embedded at build time) and one typed launcher per kernel.
        .executableTarget(name: "KilnEmbed", path: "Sources/KilnEmbed"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["KilnEmbed"],
                path: "Plugins/EmbedKernels"),
        .target(name: "KilnKernels", dependencies: ["KilnSupport", "KilnDevice"], path: "Sources/Kernels",
                plugins: ["EmbedKernels"]),

        // The tuner behind `kiln tune`: searches the kernels' parameters on the device in hand and
        // writes what it finds to the tuning cache that KilnKernels reads.
        .target(name: "KilnTuning", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels"], path: "Sources/Tuning"),

        // Tensors, reverse-mode autograd, and the safetensors format.
        .target(name: "KilnTensor", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels"], path: "Sources/Tensor"),

        // Module, Linear, activations, BatchNorm1d, Dropout, Sequential, losses.
        .target(name: "KilnLayers", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTensor"], path: "Sources/Layers"),

        // zlib from the system, for gzipped data files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // Optimizers, LR schedules, datasets and DataLoader, Trainer, metrics, checkpoints, plots.
        .target(name: "KilnTraining", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTensor", "KilnLayers", "CZlib"],
                path: "Sources/Training"),

        // `import Kiln` brings in every layer.
        .target(name: "Kiln", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTuning", "KilnTensor", "KilnLayers", "KilnTraining"],
                path: "Sources/Kiln"),

        // Data-parallel training over the system's Open MPI, loaded at run time (no link dependency).
        .target(name: "KilnDistributed", dependencies: ["KilnTraining"], path: "Sources/Distributed"),

        // The benchmark suite: `kiln bench`, or `swift run -c release kiln-bench`.
        .target(name: "KilnBenchmarks", dependencies: [
            "Kiln", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "benchmarks/Suite"),
        .executableTarget(name: "KilnBenchMain", dependencies: ["KilnBenchmarks"], path: "benchmarks/Main"),

        // The `kiln` command-line tool.
        .executableTarget(name: "KilnCLI", dependencies: [
            "Kiln", "KilnBenchmarks", "KilnDistributed", "KilnTuning", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Sources/CLI"),

        // Fuzzing: one entry per reader (Fuzz/Entries), one libFuzzer target per entry. Built with
        // -DKILN_FUZZ, ASan and libFuzzer by scripts/fuzz.sh; without -DKILN_FUZZ each is a program
        // replaying files through its entry. Fuzz/Corpus holds the seeds and every reproducer,
        // which FuzzTests replays.
        .target(name: "KilnFuzzing", dependencies: ["KilnTensor", "KilnTraining"], path: "Fuzz/Entries"),
        .executableTarget(name: "KilnFuzzSafetensors", dependencies: ["KilnFuzzing"], path: "Fuzz/Safetensors"),
        .executableTarget(name: "KilnFuzzIDX", dependencies: ["KilnFuzzing"], path: "Fuzz/IDX"),
        .executableTarget(name: "KilnFuzzCSV", dependencies: ["KilnFuzzing"], path: "Fuzz/CSV"),
        .executableTarget(name: "KilnFuzzMetadata", dependencies: ["KilnFuzzing"], path: "Fuzz/Metadata"),

        // Shared test helpers: the test device, seeded data, tolerance checks.
        .target(name: "KilnTestSupport", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels"], path: "Tests/Support"),
        .testTarget(name: "DeviceTests", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTestSupport"],
                    path: "Tests/DeviceTests"),
        .testTarget(name: "TensorTests", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTensor", "KilnTestSupport"],
                    path: "Tests/TensorTests"),
        .testTarget(name: "TrainingTests", dependencies: ["Kiln", "KilnDistributed", "KilnTestSupport"], path: "Tests/TrainingTests"),
        .testTarget(name: "ModelTests", dependencies: ["Kiln", "KilnTestSupport"], path: "Tests/ModelTests"),
        // Compiles every Swift example of the README and the `///` comments (DocExamples.swift).
        .testTarget(name: "DocExampleTests", dependencies: ["Kiln", "KilnDistributed"], path: "Tests/DocExampleTests"),
        .testTarget(name: "KernelTests", dependencies: ["KilnSupport", "KilnDevice", "KilnKernels", "KilnTuning", "KilnTestSupport"],
                    path: "Tests/KernelTests"),
        // Replays every file of Fuzz/Corpus through the fuzz entries (no device needed).
        .testTarget(name: "FuzzTests", dependencies: ["KilnFuzzing"], path: "Tests/FuzzTests"),
    ] + examples
)
