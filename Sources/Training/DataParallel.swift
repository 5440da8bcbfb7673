import Dispatch
import KilnSupport
import KilnDevice
import KilnTensor
import KilnLayers

/// The processes that train one model together, and the few collective operations data-parallel
/// training needs from them. `MPIProcessGroup` (module `KilnDistributed`) implements it with the
/// system's Open MPI; anything else that can sum, broadcast and gather across processes can too.
public protocol ProcessGroup: AnyObject {
    /// This process's number, from 0.
    var rank: Int { get }
    /// The number of processes.
    var size: Int { get }
    /// Replaces `values` by their element-wise sum over every process (each gets the result).
    func allReduceSum(_ values: inout [Float]) throws
    /// The same for doubles (metrics).
    func allReduceSum(_ values: inout [Double]) throws
    /// Replaces `values` on every process by process `root`'s.
    func broadcast(_ values: inout [Float], from root: Int) throws
    /// Every process's `value`, in rank order.
    func allGather(_ value: UInt64) throws -> [UInt64]
}

/// What goes wrong between processes: configurations that differ, replicas that drifted apart.
public struct DistributedError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public let description: String
    /// An error with the given message.
    public init(_ description: String) { self.description = description }
}

/// Data-parallel training over a `ProcessGroup`, as PyTorch's DistributedDataParallel and Horovod
/// do it: every process holds the whole model, trains on its shard of each batch
/// (`DataLoader.shard`), and before each optimizer step the gradients are averaged over the
/// processes, so every process takes the same step and the replicas stay bit-identical.
///
/// ```swift
/// func train(group: any ProcessGroup, model: Module, data: DataLoader) throws {
///     let parallel = DataParallel(group: group)
///     data.shard = try DataLoader.Shard(rank: group.rank, count: group.size)
///     let trainer = Trainer(maxEpochs: 5)
///     trainer.dataParallel = parallel           // broadcast at the start, gradients averaged each step
///     try trainer.fit(model: model, loss: CrossEntropyLoss(), optimizer: try Adam(model.parameters), train: data)
/// }
/// ```
///
/// - Start: rank 0's parameters and buffers are broadcast to every process (`broadcastState`),
///   and `checkConfiguration` makes sure every process was started with the same settings.
/// - Each step: the gradients are copied into buckets of at most `bucketBytes` (in the model's
///   parameter order, the same on every process), summed with one allreduce per bucket, divided
///   by the number of processes and copied back.
/// - Metrics: the training loss and accuracy are averaged over the processes.
/// - Validation: every process evaluates with rank 0's buffers (broadcast before each
///   validation) and the validation metrics are averaged, so callbacks decide alike everywhere;
///   an early stop on any process stops all of them.
/// - BatchNorm normalizes with per-process batch statistics (no SyncBatchNorm); the running
///   statistics used for evaluation and saved are rank 0's (DDP broadcasts them before every
///   forward pass, which gives the same evaluations).
public final class DataParallel {
    /// The processes.
    public let group: any ProcessGroup
    /// The largest bucket of gradients summed in one allreduce (default 25 MiB, DDP's).
    public var bucketBytes = 25 << 20
    /// After every step, compare a hash of the parameters across processes and throw if any
    /// differs (for tests; it reads the parameters back every step).
    public var verifyReplicas = false
    /// Seconds spent averaging gradients in all (`waitSeconds + copySeconds +
    /// communicationSeconds`), and the steps they were averaged in.
    public private(set) var allReduceSeconds = 0.0, steps = 0
    /// Of `allReduceSeconds`: waiting for the device to finish the backward pass, copying the
    /// gradients to the host and back, and the allreduce calls themselves.
    public private(set) var waitSeconds = 0.0, copySeconds = 0.0, communicationSeconds = 0.0

    /// Data-parallel training over `group`.
    public init(group: any ProcessGroup) { self.group = group }

    /// Throws on every process when any process's `configuration` (the architecture and the
    /// settings that must agree) differs from rank 0's, naming the processes that differ.
    public func checkConfiguration(_ configuration: String) throws {
        let hashes = try group.allGather(Self.hash64(stableHash(configuration)))
        let differing = hashes.indices.filter { hashes[$0] != hashes[0] }
        guard differing.isEmpty else {
            throw DistributedError("Rank\(differing.count > 1 ? "s" : "") \(differing.map(String.init).joined(separator: ", ")) of \(group.size) \(differing.count > 1 ? "were" : "was") started with another configuration than rank 0 (architecture, batch size, learning rate, optimizer, seed, schedule or data differ); start every process with the same flags.")
        }
    }

    /// Copies rank 0's parameters and buffers (in state-dict order) to every other process.
    public func broadcastState(of model: Module) throws {
        let tensors = model.stateDict().sorted { $0.key < $1.key }.map(\.value).filter { $0.dtype == .float32 }
        try forEachBucket(of: tensors) { values in try group.broadcast(&values, from: 0) }
    }

    /// Copies rank 0's float buffers (BatchNorm's running statistics) to every other process, so
    /// that evaluation gives the same numbers everywhere.
    public func broadcastBuffers(of model: Module) throws {
        let buffers = model.namedBuffers().sorted { $0.name < $1.name }.map(\.tensor).filter { $0.dtype == .float32 }
        try forEachBucket(of: buffers) { values in try group.broadcast(&values, from: 0) }
    }

    /// Replaces every gradient of `parameters` by its mean over the processes. `stopRequested`
    /// (this process was asked to stop, by a signal) travels with the first bucket; returns
    /// whether any process was, so that all stop after the same step.
    @discardableResult
    public func averageGradients(_ parameters: [Tensor], stopRequested: Bool = false) throws -> Bool {
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        let start = now()
        let grads = parameters.compactMap(\.grad)
        // The gradients are ready once the device has run the backward pass.
        grads.first?.device.queue.finish()
        let ready = now()
        waitSeconds += ready - start
        let scale = 1 / Float(group.size)
        var anyStop = stopRequested, first = true, communicating = 0.0
        try forEachBucket(of: grads) { values in
            if first { values.append(stopRequested ? 1 : 0) }
            let sent = now()
            try group.allReduceSum(&values)
            communicating += now() - sent
            if first { anyStop = (values.removeLast()) > 0 }
            first = false
            for i in values.indices { values[i] *= scale }
        }
        if grads.isEmpty {
            var flag: [Float] = [stopRequested ? 1 : 0]
            try group.allReduceSum(&flag)
            anyStop = flag[0] > 0
        }
        let end = now()
        communicationSeconds += communicating
        copySeconds += end - ready - communicating
        allReduceSeconds += end - start
        steps += 1
        return anyStop
    }

    /// Throws when the processes' parameters are not bit-identical.
    public func verifyParameters(_ parameters: [Tensor]) throws {
        var bytes: [UInt8] = []
        for p in parameters { for value in try p.toArray() { withUnsafeBytes(of: value.bitPattern) { bytes += $0 } } }
        let hashes = try group.allGather(Self.hash64(stableHash(bytes: bytes)))
        if let bad = hashes.indices.first(where: { hashes[$0] != hashes[0] }) {
            throw DistributedError("The parameters of rank \(bad) differ from rank 0's after step \(steps): the replicas drifted apart.")
        }
    }

    /// The mean over the processes of each of `values`.
    public func mean(_ values: [Double]) throws -> [Double] {
        var sums = values
        try group.allReduceSum(&sums)
        return sums.map { $0 / Double(group.size) }
    }

    /// The first 64 bits of a `stableHash`.
    static func hash64(_ hex: String) -> UInt64 { UInt64(hex.prefix(16), radix: 16) ?? 0 }

    /// The seed of `rank`'s random numbers (dropout, augmentation) in a run seeded with `seed`:
    /// `seed` itself on rank 0, a seed of its own on every other rank.
    public static func rankSeed(_ seed: UInt64, rank: Int) -> UInt64 {
        guard rank > 0 else { return seed }
        var mixer = SplitMix64(seed: seed, stream: UInt64(rank))
        return mixer.next()
    }

    /// Reads `tensors` back in buckets of at most `bucketBytes`, lets `body` change each bucket
    /// (the same buckets, in the same order, on every process), and writes them back. The tensors
    /// must all be on one device.
    func forEachBucket(of tensors: [Tensor], _ body: (inout [Float]) throws -> Void) throws {
        let limit = max(1, bucketBytes / MemoryLayout<Float>.stride)
        var start = 0
        while start < tensors.count {
            var end = start, elements = 0
            while end < tensors.count, end == start || elements + tensors[end].count <= limit {
                elements += tensors[end].count
                end += 1
            }
            let bucket = tensors[start..<end]
            // One device staging buffer per bucket: the copies into and out of it are queued, so a
            // bucket costs one read and one write however many tensors it holds.
            let staging = try Tensor.empty([elements], on: bucket[bucket.startIndex].device)
            var offset = 0
            for t in bucket {
                try staging.buffer.copy(from: t.buffer, offset: offset, count: t.count)
                offset += t.count
            }
            var values = [Float](repeating: 0, count: elements)
            try values.withUnsafeMutableBufferPointer { try staging.buffer.read(into: $0) }
            try body(&values)
            try values.withUnsafeBufferPointer { try staging.buffer.write(from: UnsafeBufferPointer(rebasing: $0[0..<elements])) }
            offset = 0
            for t in bucket {
                try t.buffer.copy(from: staging.buffer, sourceOffset: offset, count: t.count)
                offset += t.count
            }
            start = end
        }
    }
}
