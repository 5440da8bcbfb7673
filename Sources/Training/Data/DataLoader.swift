import KilnSupport
import KilnDevice
import KilnTensor

/// Batches of a `Dataset` as tensors on a device: inputs `[B, features]` float32, and targets
/// `[B]` int32 (classes) or `[B, width]` float32 (regression values).
///
/// Iterate one epoch with `epoch(_:)`, a `Sequence` of `DataLoader.Batch`; `Batch.load()` makes the
/// batch's tensors (it throws, so a device error surfaces where it happens):
///
/// ```swift
/// let model = Sequential(try Linear(784, 10))
/// let optimizer = try SGD(model.parameters, lr: 0.1)
/// let loader = try DataLoader(MNISTDataset(split: .train), batchSize: 128, shuffle: true, seed: 1)
/// for epoch in 0..<10 {
///     for batch in try loader.epoch(epoch) {
///         let (x, y) = try batch.load()
///         let loss = try crossEntropy(logits: model(x), targets: y)
///         optimizer.zeroGrad()
///         try loss.backward()
///         try optimizer.step()
///     }
/// }
/// ```
///
/// - **Order.** Without `shuffle`, samples come in dataset order. With it, epoch `e` uses a
///   permutation computed on the host by `SplitMix64(seed:, stream: e)`: a new order each epoch,
///   and the same orders for the same seed on every device and machine.
/// - **Residency.** When the dataset fits on the device (by default: inputs and targets together
///   at most a quarter of the device's global memory, and each within one allocation), inputs and
///   targets are uploaded once, on first use, and each batch is built on the device: one copy of
///   the batch's slice of the epoch's index tensor (uploaded once per epoch), then one gather
///   launch per tensor; without `shuffle`, one row-copy per tensor. Otherwise each batch's inputs
///   are collected on the host and sent with a non-blocking write, which the device runs after the
///   work already queued (the previous step's), so the host prepares the next batch while the
///   device computes; class labels still live on the device (they are small).
/// - **No waiting.** Making a batch never reads anything back from the device.
public final class DataLoader {
    /// Where the dataset's samples are kept while batches are made.
    public enum Residency: String, Sendable {
        /// On the device when it fits (see the type's documentation), else on the host.
        case automatic
        /// Always uploaded whole to the device.
        case device
        /// Always kept on the host and uploaded a batch at a time.
        case host
    }

    /// One batch of an epoch, before its tensors are made: what it holds and `load()` to make them.
    public struct Batch {
        /// The batch's position in its epoch, from 0.
        public let index: Int
        /// The dataset indices of its samples, in batch order.
        public let sampleIndices: ArraySlice<Int>
        /// Positions `range` of the epoch's order that the batch covers.
        let range: Range<Int>
        let epoch: EpochState
        let loader: DataLoader

        /// The number of samples (`batchSize`, or fewer for a last partial batch).
        public var size: Int { range.count }

        /// The batch's tensors on the loader's device: inputs `[size, features]` float32, and
        /// targets `[size]` int32 or `[size, width]` float32. Enqueues work and returns at once.
        public func load() throws -> (inputs: Tensor, targets: Tensor) {
            try loader.makeBatch(range, epoch: epoch)
        }
    }

    /// The batches of one epoch, in order: a `Sequence` of `Batch`.
    public struct Epoch: Sequence {
        /// Which epoch this is.
        public let index: Int
        /// The number of batches.
        public let count: Int
        let state: EpochState
        let loader: DataLoader

        /// The batch at `position` (from 0 to `count − 1`).
        public func batch(_ position: Int) -> Batch {
            let start = position * loader.batchSize
            let range = start..<Swift.min(start + loader.batchSize, state.order.count)
            return Batch(index: position, sampleIndices: state.order[range], range: range, epoch: state, loader: loader)
        }

        /// Iterates the batches in order.
        public func makeIterator() -> AnyIterator<Batch> {
            var position = 0
            return AnyIterator {
                guard position < count else { return nil }
                defer { position += 1 }
                return batch(position)
            }
        }
    }

    /// The samples' order for one epoch, and (made on first use) its index tensor on the device.
    final class EpochState {
        let order: [Int]
        let shuffled: Bool
        var indexTensor: Tensor?
        init(order: [Int], shuffled: Bool) {
            self.order = order
            self.shuffled = shuffled
        }
    }

    /// The device batches go to.
    public let device: Device
    /// Samples per batch.
    public let batchSize: Int
    /// Whether each epoch takes the samples in a new seeded order.
    public let shuffle: Bool
    /// The seed of the shuffle.
    public let seed: UInt64
    /// Whether a last batch smaller than `batchSize` is left out.
    public let dropLast: Bool
    /// The number of samples in the dataset.
    public let count: Int
    /// The shape of one sample's input, as the dataset gives it (batches flatten it to `features`).
    public let featureShape: [Int]
    /// Floats per sample input.
    public let features: Int
    /// Whether the dataset is kept on the device (decided at `init` from `residency`).
    public let isDeviceResident: Bool
    /// The shape of one sample in a batch: nil (the default) gives inputs `[B, features]`; `[1, 28,
    /// 28]` gives `[B, 1, 28, 28]` for a convolutional network (the same data, no copy). Its
    /// product must be `features`.
    public var inputShape: [Int]?

    /// One replica's share of each epoch in data-parallel training, with PyTorch's
    /// `DistributedSampler` semantics: every replica takes the same seeded order of the epoch,
    /// padded to a multiple of `count` by repeating its first samples, and keeps the samples at
    /// positions `rank, rank + count, …` (`indices[rank::count]`). With `count` replicas at batch
    /// size b, the replicas' k-th batches together are exactly the k-th batch of one loader at
    /// batch size `count`·b.
    public struct Shard: Sendable, Equatable {
        /// This replica (0-based) and the number of replicas.
        public let rank: Int, count: Int
        /// A shard; throws unless `0 ≤ rank < count`.
        public init(rank: Int, count: Int) throws {
            guard count >= 1, (0..<count).contains(rank) else {
                throw DataError("DataLoader.Shard: rank \(rank) is not one of 0..<\(count)")
            }
            (self.rank, self.count) = (rank, count)
        }
    }

    /// This loader's share of every epoch (nil: all of it).
    public var shard: Shard?

    /// The samples one epoch visits: `count`, or for a shard `⌈count / shard.count⌉` (before `dropLast`).
    public var samplesPerEpoch: Int {
        guard let shard else { return count }
        return (count + shard.count - 1) / shard.count
    }
    /// Random changes to each training image, made on the device from Kiln's seeded generator
    /// (`RandomState`), so a run (and its resume) is reproducible; nil (the default) for none.
    /// Needs an `inputShape` of [C, H, W].
    public var augmentation: Augmentation?

    private let inputs: [Float]
    private let targets: DatasetTargets
    /// The dataset's inputs and targets on the device, uploaded on first use. When not resident,
    /// only class labels are uploaded (the inputs and regression values go per batch).
    private var deviceInputs: Tensor?
    private var deviceTargets: Tensor?

    /// A loader of `dataset` on `device` (the default device when nil).
    /// Throws a `DataError` for an empty dataset, a batch size below 1, or `.device` residency for a
    /// dataset that cannot fit.
    public init(_ dataset: some Dataset, batchSize: Int, shuffle: Bool = false, seed: UInt64 = 0,
                dropLast: Bool = false, on device: Device? = nil, residency: Residency = .automatic) throws {
        guard batchSize >= 1 else { throw DataError("DataLoader: batchSize must be at least 1, got \(batchSize)") }
        guard dataset.count >= 1 else { throw DataError("DataLoader: the dataset is empty") }
        let inputs = dataset.inputs, targets = dataset.targets
        guard targets.count == dataset.count, inputs.count == dataset.count * dataset.features else {
            throw DataError("DataLoader: the dataset's \(inputs.count) input values and \(targets.count) targets "
                                + "do not make \(dataset.count) samples of \(dataset.features) features")
        }
        if case .classes(let labels, _) = targets, labels.contains(where: { Int32(exactly: $0) == nil }) {
            throw DataError("DataLoader: a class label does not fit in Int32")
        }
        let device = try device ?? Tensor.defaultDevice()
        self.device = device
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
        count = dataset.count
        featureShape = dataset.featureShape
        features = dataset.features
        self.inputs = inputs
        self.targets = targets

        let fits = Self.fitsOnDevice(inputBytes: inputs.count * 4, targetBytes: Self.targetBytes(targets), device.info)
        switch residency {
        case .automatic: isDeviceResident = fits
        case .host: isDeviceResident = false
        case .device:
            guard fits || Self.fitsAllocation(inputBytes: inputs.count * 4, targetBytes: Self.targetBytes(targets), device.info) else {
                throw DataError("DataLoader: the dataset (\(inputs.count * 4) bytes of inputs) does not fit in one allocation on \(device)")
            }
            isDeviceResident = true
        }
    }

    /// Batches in one epoch: `samplesPerEpoch / batchSize`, plus one for a remainder unless `dropLast`.
    public var batchesPerEpoch: Int {
        dropLast ? samplesPerEpoch / batchSize : (samplesPerEpoch + batchSize - 1) / batchSize
    }

    /// The dataset indices in the order epoch `epoch` visits them (before `dropLast` trims it);
    /// for a shard, its share of the whole epoch's order.
    public func order(epoch: Int) -> [Int] {
        var order = Array(0..<count)
        if shuffle {
            var rng = SplitMix64(seed: seed, stream: UInt64(truncatingIfNeeded: epoch))
            order = rng.permutation(count)
        }
        guard let shard, shard.count > 1 else { return order }
        let total = samplesPerEpoch * shard.count
        let padded = (0..<total).map { order[$0 % count] }
        return Array(stride(from: shard.rank, to: total, by: shard.count).map { padded[$0] })
    }

    /// The batches of epoch `index`. The first call uploads the dataset when it is device-resident;
    /// a shuffled epoch uploads its order (one small int32 tensor) on its first batch.
    public func epoch(_ index: Int) throws -> Epoch {
        try uploadIfNeeded()
        let state = EpochState(order: order(epoch: index), shuffled: shuffle || (shard?.count ?? 1) > 1)
        return Epoch(index: index, count: batchesPerEpoch, state: state, loader: self)
    }

    /// Loads every batch of epoch `epoch` in order and hands its tensors to `body`.
    public func forEachBatch(epoch: Int, _ body: (_ inputs: Tensor, _ targets: Tensor) throws -> Void) throws {
        try forEachBatch(epoch: epoch, skipping: 0, body)
    }

    /// The same from batch `skipping` on; the batches before it are not loaded (nor augmented),
    /// so a run resumed inside an epoch sees exactly the batches it had not trained on.
    public func forEachBatch(epoch: Int, skipping: Int, _ body: (_ inputs: Tensor, _ targets: Tensor) throws -> Void) throws {
        let batches = try self.epoch(epoch)
        for position in max(0, skipping)..<max(max(0, skipping), batches.count) {
            let (x, y) = try batches.batch(position).load()
            try body(x, y)
        }
    }

    // MARK: Making batches

    private func uploadIfNeeded() throws {
        if isDeviceResident, deviceInputs == nil {
            deviceInputs = try Tensor(inputs, shape: [count, features], on: device)
        }
        if deviceTargets == nil {
            switch targets {
            case .classes(let labels, _):
                deviceTargets = try Tensor(labels: labels, on: device)
            case .values(let values, let width):
                if isDeviceResident { deviceTargets = try Tensor(values, shape: [count, width], on: device) }
            }
        }
    }

    func makeBatch(_ range: Range<Int>, epoch: EpochState) throws -> (inputs: Tensor, targets: Tensor) {
        let (x, y) = try rawBatch(range, epoch: epoch)
        guard let inputShape else {
            guard augmentation == nil else { throw DataError("DataLoader: augmentation needs an inputShape of [C, H, W]") }
            return (x, y)
        }
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 1 }),
              inputShape.reduce(1, { $0.multipliedReportingOverflow(by: $1).partialValue }) == features else {
            throw DataError("DataLoader: inputShape \(inputShape) does not hold the \(features) features of a sample")
        }
        let shaped = try x.reshaped([range.count] + inputShape)
        guard let augmentation else { return (shaped, y) }
        guard inputShape.count == 3 else { throw DataError("DataLoader: augmentation needs an inputShape of [C, H, W], not \(inputShape)") }
        return (try augmentation.apply(to: shaped), y)
    }

    func rawBatch(_ range: Range<Int>, epoch: EpochState) throws -> (inputs: Tensor, targets: Tensor) {
        try uploadIfNeeded()
        // The device-side index of this batch: a slice of the epoch's order, uploaded once per epoch.
        func index() throws -> Tensor {
            if epoch.indexTensor == nil {
                epoch.indexTensor = try Tensor(labels: epoch.order, on: device, blocking: false)
            }
            guard let all = epoch.indexTensor else { throw DataError("DataLoader: the epoch's index tensor is missing") }
            return try all.rows(range)
        }
        // Rows `range` of a resident tensor: a gather by the index when shuffled, else a plain row copy.
        func take(_ tensor: Tensor, index: Tensor?) throws -> Tensor {
            if let index { return try tensor.gathered(rows: index) }
            return try tensor.rows(range)
        }
        let batchIndex = epoch.shuffled ? try index() : nil

        let x: Tensor
        if let deviceInputs {
            x = try take(deviceInputs, index: batchIndex)
        } else {
            x = try upload(rowsOf: inputs, width: features, at: epoch.order[range])
        }
        let y: Tensor
        switch targets {
        case .classes:
            guard let deviceTargets else { throw DataError("DataLoader: the labels were not uploaded") }
            y = try take(deviceTargets, index: batchIndex)
        case .values(let values, let width):
            if let deviceTargets {
                y = try take(deviceTargets, index: batchIndex)
            } else {
                y = try upload(rowsOf: values, width: width, at: epoch.order[range])
            }
        }
        return (x, y)
    }

    /// A `[rows.count, width]` tensor of `source`'s rows `rows`, sent with a non-blocking write.
    private func upload(rowsOf source: [Float], width: Int, at rows: ArraySlice<Int>) throws -> Tensor {
        var host: [Float] = []
        host.reserveCapacity(rows.count * width)
        for row in rows { host += source[row * width..<(row + 1) * width] }
        let tensor = try Tensor.empty([rows.count, width], on: device)
        try tensor.buffer.write(host, blocking: false)
        return tensor
    }

    // MARK: Sizing

    private static func targetBytes(_ targets: DatasetTargets) -> Int {
        switch targets {
        case .classes(let labels, _): return labels.count * 4
        case .values(let values, _): return values.count * 4
        }
    }

    private static func fitsAllocation(inputBytes: Int, targetBytes: Int, _ info: DeviceInfo) -> Bool {
        UInt64(inputBytes) <= info.maxAllocation && UInt64(targetBytes) <= info.maxAllocation
    }

    /// Inputs and targets together within a quarter of global memory, and each within one allocation.
    private static func fitsOnDevice(inputBytes: Int, targetBytes: Int, _ info: DeviceInfo) -> Bool {
        UInt64(inputBytes + targetBytes) <= info.globalMemory / 4
            && fitsAllocation(inputBytes: inputBytes, targetBytes: targetBytes, info)
    }
}

/// Random changes to training images, on the device: a random crop from the image padded with
/// zeros, and a horizontal flip with probability ½ (torchvision's `RandomCrop(size, padding)` and
/// `RandomHorizontalFlip()`), drawn per image from Kiln's seeded generator.
public struct Augmentation: Sendable, Equatable {
    /// Zeros added on each side before cropping back to the image's size (2 for 28 × 28 digits).
    public var cropPadding: Int

    /// Crop from `cropPadding` pixels of zero padding, and flip.
    public init(cropPadding: Int = 2) { self.cropPadding = cropPadding }

    /// `images` [N, C, H, W] with each image cropped and flipped (a new tensor; no gradient).
    public func apply(to images: Tensor) throws -> Tensor {
        guard images.rank == 4 else { throw DataError("Augmentation needs images [N, C, H, W], got \(images.shape)") }
        let (seed, offset) = RandomState.next(count: 4 * images.shape[0])
        let out = try Tensor.empty(images.shape, on: images.device)
        try images.kernels.augmentCropFlip(images.buffer, samples: images.shape[0], channels: images.shape[1],
                                           height: images.shape[2], width: images.shape[3], pad: cropPadding,
                                           seed: seed, offset: offset, into: out.buffer)
        return out
    }
}
