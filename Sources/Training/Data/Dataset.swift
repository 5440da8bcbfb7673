import KilnSupport
/// The targets of a dataset: class indices, or rows of real values.
public enum DatasetTargets: Sendable, Equatable {
    /// One class index in `0..<classes` per sample.
    case classes([Int], classes: Int)
    /// `width` real values per sample, row-major (`values.count == count × width`).
    case values([Float], width: Int)

    /// The number of samples these targets describe.
    public var count: Int {
        switch self {
        case .classes(let labels, _): return labels.count
        case .values(let values, let width): return width > 0 ? values.count / width : 0
        }
    }

    /// The targets of the samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> DatasetTargets {
        switch self {
        case .classes(let labels, let classes):
            return .classes(indices.map { labels[$0] }, classes: classes)
        case .values(let values, let width):
            var picked: [Float] = []
            picked.reserveCapacity(indices.count * width)
            for i in indices { picked += values[i * width..<(i + 1) * width] }
            return .values(picked, width: width)
        }
    }
}

/// A dataset held in host memory: `count` samples, each a row of floats (`featureShape`) and a
/// target. `DataLoader` turns any of them into batches on a device.
///
/// ```swift
/// let data: any Dataset = try MNISTDataset(split: .test)
/// print(data.count, data.featureShape, data.features)   // 10000 [28, 28] 784
/// ```
public protocol Dataset {
    /// The number of samples.
    var count: Int { get }
    /// The shape of one sample's input (`[28, 28]` for MNIST, `[columns]` for a table).
    var featureShape: [Int] { get }
    /// Every sample's input, row-major: `count × features` floats.
    var inputs: [Float] { get }
    /// Every sample's target.
    var targets: DatasetTargets { get }
}

extension Dataset {
    /// Floats per sample: the product of `featureShape`.
    public var features: Int { featureShape.reduce(1, *) }

    /// The samples at `indices` (in that order) as an `ArrayDataset`.
    /// Throws a `DataError` when an index is out of range.
    public func subset(_ indices: [Int]) throws -> ArrayDataset {
        if let bad = indices.first(where: { $0 < 0 || $0 >= count }) {
            throw DataError("subset: index \(bad) is outside the dataset's \(count) samples")
        }
        let width = features
        let source = inputs
        var picked: [Float] = []
        picked.reserveCapacity(indices.count * width)
        for i in indices { picked += source[i * width..<(i + 1) * width] }
        return try ArrayDataset(inputs: picked, featureShape: featureShape, targets: targets.subset(indices))
    }

    /// The samples whose class is one of `classes`, in dataset order, relabelled by their class's
    /// position in `classes`: `subset(classes: 5...9)` gives the samples of classes 5 to 9 with
    /// labels 0 to 4, for a model with 5 outputs (PyTorch's `Subset` of those indices with a
    /// target transform). Throws a `DataError` when the targets are not classes, when `classes` is
    /// empty, repeats a class or names one out of range, or when no sample has any of them.
    ///
    /// ```swift
    /// let xor = try ArrayDataset(inputs: [0, 0, 0, 1, 1, 0, 1, 1], featureShape: [2],
    ///                            targets: .classes([0, 1, 1, 0], classes: 2))
    /// let ones = try xor.subset(classes: [1])   // the samples [0, 1] and [1, 0], both labelled 0
    /// ```
    public func subset(classes: some Collection<Int>) throws -> ArrayDataset {
        let (indices, labels, count) = try classSelection(Array(classes), what: "subset(classes:)")
        let picked = try subset(indices)
        return try ArrayDataset(inputs: picked.inputs, featureShape: featureShape, targets: .classes(labels, classes: count))
    }

    /// The indices of the samples of `classes` and their new labels (positions in `classes`).
    func classSelection(_ classes: [Int], what: String) throws -> (indices: [Int], labels: [Int], classes: Int) {
        guard case .classes(let labels, let classCount) = targets else {
            throw DataError("\(what): the dataset's targets are values, not classes")
        }
        guard !classes.isEmpty else { throw DataError("\(what): no classes given") }
        if let bad = classes.first(where: { $0 < 0 || $0 >= classCount }) {
            throw DataError("\(what): class \(bad) is outside the dataset's 0..<\(classCount)")
        }
        var position: [Int: Int] = [:]
        for (index, label) in classes.enumerated() {
            guard position[label] == nil else { throw DataError("\(what): class \(label) is given twice") }
            position[label] = index
        }
        var indices: [Int] = [], newLabels: [Int] = []
        for (index, label) in labels.enumerated() {
            guard let new = position[label] else { continue }
            indices.append(index)
            newLabels.append(new)
        }
        guard !indices.isEmpty else { throw DataError("\(what): no sample has class \(classes.map(String.init).joined(separator: ", "))") }
        return (indices, newLabels, classes.count)
    }

    /// A training and a validation part, chosen by a seeded shuffle (see `splitIndices`).
    public func split(validationFraction: Double, seed: UInt64) throws -> (train: ArrayDataset, validation: ArrayDataset) {
        let parts = try splitIndices(count: count, validationFraction: validationFraction, seed: seed)
        return (try subset(parts.train), try subset(parts.validation))
    }
}

/// The sample indices of a seeded train/validation split of `count` samples: a SplitMix64
/// permutation of `0..<count` from `seed`; its first `round(count × validationFraction)` entries
/// are the validation part. Both parts come back sorted, so they keep the dataset's order, and the
/// split is the same for the same seed on every machine.
/// Throws a `DataError` unless the fraction leaves both parts non-empty.
public func splitIndices(count: Int, validationFraction: Double, seed: UInt64) throws -> (train: [Int], validation: [Int]) {
    guard validationFraction > 0, validationFraction < 1 else {
        throw DataError("validationFraction must be between 0 and 1 (exclusive), got \(validationFraction)")
    }
    let validationCount = Int((Double(count) * validationFraction).rounded())
    guard validationCount >= 1, validationCount < count else {
        throw DataError("a validation fraction of \(validationFraction) of \(count) samples leaves one part empty")
    }
    var rng = SplitMix64(seed: seed)
    let order = rng.permutation(count)
    return (Array(order[validationCount...]).sorted(), Array(order[..<validationCount]).sorted())
}

/// A dataset from arrays already in memory: the general-purpose `Dataset`, and what `subset` and
/// `split` return.
///
/// ```swift
/// let xor = try ArrayDataset(inputs: [0, 0, 0, 1, 1, 0, 1, 1], featureShape: [2],
///                            targets: .classes([0, 1, 1, 0], classes: 2))
/// ```
public struct ArrayDataset: Dataset, Sendable {
    /// The number of samples.
    public let count: Int
    /// The shape of one sample's input.
    public let featureShape: [Int]
    /// Every sample's input, row-major.
    public let inputs: [Float]
    /// Every sample's target.
    public let targets: DatasetTargets

    /// Checks that `inputs` holds `targets.count` rows of `featureShape` and that every class index
    /// is in range; throws a `DataError` saying what disagrees.
    public init(inputs: [Float], featureShape: [Int], targets: DatasetTargets) throws {
        guard !featureShape.isEmpty, featureShape.allSatisfy({ $0 >= 1 }) else {
            throw DataError("ArrayDataset: feature shape \(featureShape) needs at least one axis, each of size ≥ 1")
        }
        let width = featureShape.reduce(1, *)
        let count = targets.count
        guard inputs.count == count * width else {
            throw DataError("ArrayDataset: \(inputs.count) input values are not \(count) samples (the targets' count) × \(width) features")
        }
        switch targets {
        case .classes(let labels, let classes):
            if let bad = labels.first(where: { $0 < 0 || $0 >= classes }) {
                throw DataError("ArrayDataset: label \(bad) is outside 0..<\(classes)")
            }
        case .values(let values, let width):
            guard width >= 1, values.count % width == 0 else {
                throw DataError("ArrayDataset: \(values.count) target values are not rows of width \(width)")
            }
        }
        self.count = count
        self.featureShape = featureShape
        self.inputs = inputs
        self.targets = targets
    }
}
