import Foundation

/// MNIST, Fashion-MNIST, or any folder of files in their format (`train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`),
/// read into host memory.
///
/// Pixels become floats in [0, 1] (x / 255), then `(x − mean) / std` when `normalize` is given.
///
/// ```swift
/// let test = try MNISTDataset(split: .test, limit: 1000)
/// print(test.count, test.features, test.classNames[test.labels[0]])   // 1000 784 Ankle boot
/// let (train, validation) = try MNISTDataset(split: .train).split(validationFraction: 0.1, seed: 0)
/// ```
public struct MNISTDataset: Dataset, Sendable {
    /// Which pair of files to read.
    public enum Split: String, Sendable, CaseIterable {
        /// `train-*`: 60,000 images in (Fashion-)MNIST.
        case train
        /// `t10k-*`: 10,000 images in (Fashion-)MNIST.
        case test

        /// The file-name prefix of the split.
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST.
    public static let defaultFolder = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    /// Fashion-MNIST's class names, by label.
    public static let fashionClassNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// The number of images.
    public let count: Int
    /// The shape of one image: `[rows, cols]` (`[28, 28]`).
    public let featureShape: [Int]
    /// The number of classes (10).
    public let classes: Int
    /// The pixels, row-major `[count, features]`, scaled and normalised as asked.
    public let images: [Float]
    /// The label of each image, in `0..<classes`.
    public let labels: [Int]
    /// A name for each class: Fashion-MNIST's names, or the digits `"0"`…`"9"`.
    public let classNames: [String]

    /// The images (the `Dataset` view of `images`).
    public var inputs: [Float] { images }
    /// The labels as class targets.
    public var targets: DatasetTargets { .classes(labels, classes: classes) }

    /// Reads `split` from `folder` (each file gzipped or plain, decided by its content).
    ///
    /// - Parameters:
    ///   - limit: keep only the first `limit` images.
    ///   - normalize: after scaling to [0, 1], apply `(x − mean) / std`.
    ///   - classes: the number of classes; every label must be below it.
    ///   - fashion: use Fashion-MNIST's class names; by default when the folder's name contains
    ///     "fashion", else the names are the digits.
    /// - Throws: `DataError` for a missing, truncated or corrupt file, images and labels that
    ///   disagree in count, a label out of range, or bad arguments.
    /// The most memory a data set may take while it loads (its bytes plus its floats): half of
    /// this machine's memory. A header that declares more is refused before anything is inflated.
    nonisolated(unsafe) public static var memoryBudget = Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)

    public init(folder: URL = MNISTDataset.defaultFolder, split: Split = .train, limit: Int? = nil,
                normalize: (mean: Float, std: Float)? = nil, classes: Int = 10, fashion: Bool? = nil) throws {
        if let limit, limit < 1 { throw DataError("MNISTDataset: limit must be at least 1, got \(limit)") }
        guard classes >= 1 else { throw DataError("MNISTDataset: classes must be at least 1, got \(classes)") }
        if let normalize, !(normalize.std > 0 && normalize.std.isFinite && normalize.mean.isFinite) {
            throw DataError("MNISTDataset: normalize needs a finite mean and a positive finite std, got \(normalize)")
        }
        let imageFile = try Self.locate("\(split.filePrefix)-images-idx3-ubyte", in: folder)
        let labelFile = try Self.locate("\(split.filePrefix)-labels-idx1-ubyte", in: folder)
        // The headers first: counts that disagree, or images that would not fit in memory as
        // floats, are refused before anything is inflated.
        let imageDims = try IDXFile.dimensions(contentsOf: imageFile), labelDims = try IDXFile.dimensions(contentsOf: labelFile)
        if imageDims.count == 3, labelDims.count == 1 {
            guard imageDims[0] == labelDims[0] else {
                throw DataError("holds \(imageDims[0]) images but \(labelFile.path) holds \(labelDims[0]) labels", file: imageFile.path)
            }
            let (perSample, overflow) = imageDims[1].multipliedReportingOverflow(by: imageDims[2])
            guard !overflow, perSample <= ModelSpec.maxExtent else {
                throw DataError("declares images of \(imageDims[1])×\(imageDims[2]) pixels; a model takes at most \(ModelSpec.maxExtent) features per sample, so the file is damaged or not a data set for Kiln",
                                file: imageFile.path)
            }
            let pixels = imageDims.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
            let kept = min(imageDims[0], limit ?? imageDims[0])
            let (floats, o1) = kept.multipliedReportingOverflow(by: perSample * 4)
            let (needed, o2) = pixels.addingReportingOverflow(floats)
            guard !o1, !o2, needed <= Self.memoryBudget else {
                throw DataError("declares \(imageDims[0]) images of \(imageDims[1])×\(imageDims[2]) pixels, which need \(o1 || o2 ? "more than \(Int.max)" : String(needed)) bytes in memory, over the \(Self.memoryBudget)-byte budget (half this machine's memory); the file is damaged, or use --limit",
                                file: imageFile.path)
            }
        }
        let imageIDX = try IDXFile(contentsOf: imageFile)
        let labelIDX = try IDXFile(contentsOf: labelFile)

        guard imageIDX.dimensions.count == 3 else {
            throw DataError("holds dimensions \(imageIDX.dimensions); MNIST images are [count, rows, cols]", file: imageFile.path)
        }
        guard labelIDX.dimensions.count == 1 else {
            throw DataError("holds dimensions \(labelIDX.dimensions); MNIST labels are [count]", file: labelFile.path)
        }
        let total = imageIDX.dimensions[0]
        guard total == labelIDX.dimensions[0] else {
            throw DataError("holds \(total) images but \(labelFile.path) holds \(labelIDX.dimensions[0]) labels", file: imageFile.path)
        }
        let shape = Array(imageIDX.dimensions[1...])
        guard total >= 1, shape.allSatisfy({ $0 >= 1 }) else {
            throw DataError("holds no images (dimensions \(imageIDX.dimensions))", file: imageFile.path)
        }
        if let bad = labelIDX.bytes.firstIndex(where: { Int($0) >= classes }) {
            throw DataError("label \(labelIDX.bytes[bad]) at index \(bad) is not below the \(classes) classes", file: labelFile.path)
        }

        let count = min(total, limit ?? total)
        let features = shape.reduce(1, *)
        // One affine map per pixel: x / 255, then (x − mean) / std, folded into a scale and shift.
        let (mean, std) = normalize ?? (0, 1)
        let scale = 1 / (255 * std), shift = -mean / std
        self.count = count
        featureShape = shape
        self.classes = classes
        images = Self.convert(imageIDX.bytes, count: count * features, table: (0..<256).map { Float($0) * scale + shift })
        labels = labelIDX.bytes[..<count].map(Int.init)
        let isFashion = fashion ?? folder.standardizedFileURL.lastPathComponent.lowercased().contains("fashion")
        classNames = isFashion && classes == Self.fashionClassNames.count
            ? Self.fashionClassNames
            : (0..<classes).map(String.init)
    }

    /// The first `count` bytes mapped through `table` (byte value → float). A table lookup in a
    /// plain loop over buffers keeps this fast even in debug builds, where `map` over 47 million
    /// pixels takes seconds.
    static func convert(_ bytes: [UInt8], count: Int, table: [Float]) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { out, initialized in
            bytes.withUnsafeBufferPointer { source in
                table.withUnsafeBufferPointer { table in
                    for i in 0..<count { out[i] = table[Int(source[i])] }
                }
            }
            initialized = count
        }
    }

    /// A dataset of already-prepared images and labels (what `split` and `subset` make).
    init(images: [Float], labels: [Int], featureShape: [Int], classes: Int, classNames: [String]) {
        count = labels.count
        self.featureShape = featureShape
        self.classes = classes
        self.images = images
        self.labels = labels
        self.classNames = classNames
    }

    /// The images at `indices`, in that order, keeping the class names.
    /// Throws a `DataError` when an index is out of range.
    public func subset(_ indices: [Int]) throws -> MNISTDataset {
        if let bad = indices.first(where: { $0 < 0 || $0 >= count }) {
            throw DataError("MNISTDataset.subset: index \(bad) is outside the \(count) images")
        }
        let width = features
        var picked: [Float] = []
        picked.reserveCapacity(indices.count * width)
        for i in indices { picked += images[i * width..<(i + 1) * width] }
        return MNISTDataset(images: picked, labels: indices.map { labels[$0] }, featureShape: featureShape,
                            classes: classes, classNames: classNames)
    }

    /// The images of `classes`, in dataset order, relabelled by their class's position in
    /// `classes` and keeping those classes' names (see `Dataset.subset(classes:)`).
    ///
    /// ```swift
    /// let footwear = try MNISTDataset(split: .test).subset(classes: [5, 7, 9])
    /// print(footwear.classes, footwear.classNames)   // 3 ["Sandal", "Sneaker", "Ankle boot"]
    /// ```
    public func subset(classes: some Collection<Int>) throws -> MNISTDataset {
        let chosen = Array(classes)
        let (indices, labels, count) = try classSelection(chosen, what: "MNISTDataset.subset(classes:)")
        let picked = try subset(indices)
        return MNISTDataset(images: picked.images, labels: labels, featureShape: featureShape, classes: count,
                            classNames: chosen.map { classNames[$0] })
    }

    /// A training part and a validation part carved out of this dataset by a seeded shuffle
    /// (`splitIndices`): the same split for the same seed on every machine.
    public func split(validationFraction: Double, seed: UInt64) throws -> (train: MNISTDataset, validation: MNISTDataset) {
        let parts = try splitIndices(count: count, validationFraction: validationFraction, seed: seed)
        return (try subset(parts.train), try subset(parts.validation))
    }

    /// The file `base.gz` or `base` in `folder`, or a `DataError` that says where it looked and how
    /// to get the data.
    static func locate(_ base: String, in folder: URL) throws -> URL {
        let candidates = [folder.appendingPathComponent(base + ".gz"), folder.appendingPathComponent(base)]
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) }) { return found }
        throw DataError(
            "file not found (also looked for \(candidates[1].lastPathComponent)). Install Fashion-MNIST with "
                + "`apt-get install dataset-fashion-mnist`, or pass `--data DIR` with a folder of MNIST-format files.",
            file: candidates[0].path)
    }
}
