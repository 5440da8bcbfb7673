import Foundation
import KilnDevice
import KilnKernels

/// The element type of a tensor.
public enum DType: String, Sendable, Codable {
    /// 32-bit floats: values, activations, parameters.
    case float32
    /// 32-bit signed integers: class labels and indices.
    case int32
}

/// An error a tensor operation throws: the message names the op and the shapes.
public struct TensorError: Error, Sendable, CustomStringConvertible {
    /// The message.
    public let description: String
    /// An error with the given message.
    public init(_ description: String) { self.description = description }
}

/// An n-dimensional array on an OpenCL device, with reverse-mode autograd.
///
/// Operations enqueue kernels and return at once; only `toArray()`, `item()` and `description`
/// wait for the device.
///
/// ```swift
/// let x = try Tensor([[1, 2], [3, 4]], requiresGrad: true)
/// let y = try (x * x).sum()
/// try y.backward()
/// print(try x.grad!.toArray())   // [2, 4, 6, 8]
/// ```
public final class Tensor: @unchecked Sendable {
    /// The extent of each axis; `[]` is a scalar.
    public let shape: [Int]
    /// The element type.
    public let dtype: DType
    /// The device the data lives on.
    public let device: Device

    let floatStorage: Buffer<Float>?
    let intStorage: Buffer<Int32>?

    /// Whether operations on this tensor are recorded for `backward()`. Setting it on a leaf makes
    /// the tensor a parameter (`isParameter`); setting it back to false freezes the parameter.
    public var requiresGrad: Bool {
        didSet { if requiresGrad && node == nil { isParameter = true } }
    }
    /// Whether this is a parameter: a leaf that was made to require grad (a module's trainable
    /// weight, frozen or not). A module saves its other tensors as buffers.
    public internal(set) var isParameter = false
    /// The gradient accumulated by `backward()` (leaf tensors only, as in PyTorch).
    public internal(set) var grad: Tensor?
    /// How this tensor was made, when it was made by a recorded operation.
    var node: Node?
    /// Set once `backward()` has run through this tensor and freed its graph.
    var graphReleased = false
    /// The all-ones gradient `backward()` starts from: ops may skip multiplying by it.
    var isUnitSeed = false

    init(shape: [Int], floats: Buffer<Float>, requiresGrad: Bool = false) {
        self.shape = shape
        dtype = .float32
        device = floats.device
        floatStorage = floats
        intStorage = nil
        self.requiresGrad = requiresGrad
        isParameter = requiresGrad
    }

    init(shape: [Int], ints: Buffer<Int32>) {
        self.shape = shape
        dtype = .int32
        device = ints.device
        floatStorage = nil
        intStorage = ints
        requiresGrad = false
    }

    /// Number of elements.
    public var count: Int { Tensor.elementCount(shape) }
    /// Number of axes.
    public var rank: Int { shape.count }

    /// The float buffer, or a `TensorError` naming `op` when this is an integer tensor.
    func floats(_ op: String) throws -> Buffer<Float> {
        guard let floatStorage else { throw TensorError("\(op) needs a float32 tensor, got \(dtype.rawValue) \(shape).") }
        return floatStorage
    }

    /// The integer buffer, or a `TensorError` naming `op` when this is a float tensor.
    func ints(_ op: String) throws -> Buffer<Int32> {
        guard let intStorage else { throw TensorError("\(op) needs an int32 tensor, got \(dtype.rawValue) \(shape).") }
        return intStorage
    }



    /// The shape seen as a matrix: all leading axes as rows, the last axis as columns.
    var matrix: (rows: Int, cols: Int) {
        guard let last = shape.last else { return (1, 1) }
        return (last == 0 ? 0 : count / last, last)
    }

    // MARK: Making tensors

    /// A float tensor holding `values` in `shape` (default: a vector), on `device`.
    public convenience init(_ values: [Float], shape: [Int]? = nil, on device: Device? = nil,
                            requiresGrad: Bool = false) throws {
        let shape = shape ?? [values.count]
        try Self.checkShape(shape, count: values.count)
        let device = try device ?? Tensor.defaultDevice()
        self.init(shape: shape, floats: try device.buffer(values), requiresGrad: requiresGrad)
    }

    /// A float tensor from nested arrays of numbers (`Float`, `Double` or `Int`), its shape read
    /// from the nesting (`torch.tensor`): `Tensor([[1, 2], [3, 4]])` is [2, 2], `Tensor(2.5)` is a
    /// scalar of shape []. Throws for ragged or empty arrays.
    ///
    /// ```swift
    /// let points = try Tensor([[0.5, 1.0], [1.5, 2.0], [2.5, 3.0]])   // [3, 2]
    /// let weights = try Tensor([1.0, 2.0] as [Double], requiresGrad: true)
    /// ```
    public convenience init<Values: TensorLiteral>(_ values: Values, on device: Device? = nil,
                                                   requiresGrad: Bool = false) throws {
        guard let shape = values.literalShape else {
            throw TensorError("Tensor(...): the nested arrays are ragged or empty; every row of an axis needs the same, non-zero length.")
        }
        var flat: [Float] = []
        flat.reserveCapacity(Tensor.elementCount(shape))
        values.appendLiteralValues(to: &flat)
        try self.init(flat, shape: shape, on: device, requiresGrad: requiresGrad)
    }

    /// An int32 tensor (class labels, indices). With `blocking: false` the upload is queued and
    /// the call returns at once (the tensor keeps its own copy of the values until it is sent).
    public convenience init(labels: [Int], shape: [Int]? = nil, on device: Device? = nil, blocking: Bool = true) throws {
        let shape = shape ?? [labels.count]
        try Self.checkShape(shape, count: labels.count)
        guard labels.allSatisfy({ Int32(exactly: $0) != nil }) else {
            throw TensorError("Tensor(labels:): a label does not fit in Int32.")
        }
        let device = try device ?? Tensor.defaultDevice()
        let buffer: Buffer<Int32> = try device.buffer(count: labels.count)
        try buffer.write(labels.map { Int32($0) }, blocking: blocking)
        self.init(shape: shape, ints: buffer)
    }

    static func checkShape(_ shape: [Int], count: Int) throws {
        guard shape.allSatisfy({ $0 >= 1 }) else {
            throw TensorError("Shape \(shape) has an axis of size < 1; Kiln tensors hold at least one element per axis.")
        }
        let elements = elementCount(shape)
        guard elements <= Int(Int32.max) - 4096 else {
            throw TensorError("Shape \(shape) has more elements than a device buffer can index (at most \(Int(Int32.max) - 4096)).")
        }
        guard elements == count else {
            throw TensorError("Shape \(shape) holds \(elements) elements but \(count) values were given.")
        }
    }

    /// The number of elements of `shape`, saturating at `Int.max` instead of overflowing.
    static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            let (product, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return Int.max }
            n = product
        }
        return n
    }

    /// A float tensor from the pool whose elements are undefined until written (by a kernel, or
    /// `buffer.write`): no fill is enqueued.
    public static func empty(_ shape: [Int], on device: Device) throws -> Tensor {
        try checkShape(shape, count: elementCount(shape))
        return Tensor(shape: shape, floats: try device.buffer(Float.self, count: elementCount(shape)))
    }

    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Float, on device: Device? = nil, requiresGrad: Bool = false) throws -> Tensor {
        let t = try empty(shape, on: device ?? defaultDevice())
        try t.floats("full").fill(value)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Zeros of `shape`.
    public static func zeros(_ shape: [Int], on device: Device? = nil, requiresGrad: Bool = false) throws -> Tensor {
        try full(shape, 0, on: device, requiresGrad: requiresGrad)
    }

    /// Ones of `shape`.
    public static func ones(_ shape: [Int], on device: Device? = nil, requiresGrad: Bool = false) throws -> Tensor {
        try full(shape, 1, on: device, requiresGrad: requiresGrad)
    }

    /// `[start, start + step, ...)` below `end`, as floats.
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1, on device: Device? = nil) throws -> Tensor {
        guard step != 0, (end - start) / step > 0 else {
            throw TensorError("arange(\(start), \(end), step: \(step)) is empty; Kiln tensors hold at least one element.")
        }
        let n = Int(((end - start) / step).rounded(.up))
        return try Tensor((0..<n).map { start + Float($0) * step }, on: device)
    }

    /// Uniform random numbers in `[low, high)` from Philox (seed, offset): the same on every device.
    /// Without a seed they are the next draw of `RandomState` (as `torch.rand` draws from the seeded
    /// generator).
    public static func rand(_ shape: [Int], low: Float = 0, high: Float = 1, seed: UInt64? = nil, offset: UInt64 = 0,
                            on device: Device? = nil, requiresGrad: Bool = false) throws -> Tensor {
        let t = try empty(shape, on: device ?? defaultDevice())
        let (seed, offset) = seed.map { ($0, offset) } ?? RandomState.next(count: t.count)
        try t.kernels.randomUniform(t.floats("rand"), low: low, high: high, seed: seed, offset: offset)
        t.requiresGrad = requiresGrad
        return t
    }

    /// Normal random numbers from Philox (seed, offset): the same on every device. Without a seed
    /// they are the next draw of `RandomState`.
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64? = nil, offset: UInt64 = 0,
                             on device: Device? = nil, requiresGrad: Bool = false) throws -> Tensor {
        let t = try empty(shape, on: device ?? defaultDevice())
        let (seed, offset) = seed.map { ($0, offset) } ?? RandomState.next(count: t.count)
        try t.kernels.randomNormal(t.floats("randn"), mean: mean, std: std, seed: seed, offset: offset)
        t.requiresGrad = requiresGrad
        return t
    }

    // MARK: Reading back (the only calls that wait for the device)

    /// The elements as floats, in row-major order.
    public func toArray() throws -> [Float] {
        if let floatStorage { return try floatStorage.toArray(count: count) }
        return try ints("toArray").toArray(count: count).map(Float.init)
    }

    /// The elements of an int32 tensor.
    public func toIntArray() throws -> [Int] {
        if let intStorage { return try intStorage.toArray(count: count).map(Int.init) }
        return try toArray().map { Int($0) }
    }

    /// The value of a one-element tensor.
    public func item() throws -> Float {
        guard count == 1 else { throw TensorError("item() needs a one-element tensor, got shape \(shape).") }
        return try toArray()[0]
    }

    // MARK: Default device

    @TaskLocal static var scopedDevice: Device?

    /// The device new tensors go to: the innermost `withDevice` scope, else `Device.shared()`.
    public static func defaultDevice() throws -> Device {
        if let scopedDevice { return scopedDevice }
        return try Device.shared()
    }

    /// Runs `body` with `device` as the default for new tensors.
    public static func withDevice<R>(_ device: Device, _ body: () throws -> R) rethrows -> R {
        try $scopedDevice.withValue(device, operation: body)
    }
}

extension Tensor: CustomStringConvertible {
    /// `tensor([[1, 2], [3, 4]], shape [2, 2], float32)` — reads the values back from the device.
    public var description: String {
        guard let values = try? toArray() else { return "tensor(<unreadable>, shape \(shape), \(dtype.rawValue))" }
        func format(_ v: Float) -> String {
            dtype == .int32 ? String(Int(v)) : (v == v.rounded() && Swift.abs(v) < 1e6 ? String(format: "%.1f", v) : String(format: "%.4g", v))
        }
        func nest(_ axis: Int, _ offset: Int) -> String {
            if axis == shape.count { return format(values[offset]) }
            let stride = shape[(axis + 1)...].reduce(1, *)
            let shown = shape[axis] > 8 ? Array(0..<3) + [-1] + Array(shape[axis] - 3..<shape[axis]) : Array(0..<shape[axis])
            return "[" + shown.map { $0 < 0 ? "..." : nest(axis + 1, offset + $0 * stride) }.joined(separator: ", ") + "]"
        }
        return "tensor(\(nest(0, 0)), shape \(shape), \(dtype.rawValue)\(requiresGrad ? ", requiresGrad" : ""))"
    }
}

extension Tensor {
    /// Overwrites this tensor's elements with `source`'s (same shape; copied on the device when
    /// both are on the same device, else through the host). Not recorded by autograd.
    public func assign(_ source: Tensor) throws {
        guard source.shape == shape else {
            throw TensorError("assign: shape \(source.shape) does not match \(shape).")
        }
        if let floatStorage {
            if source.device === device, let other = source.floatStorage {
                try floatStorage.copy(from: other, count: count)
            } else {
                try floatStorage.write(try source.toArray())
            }
        } else {
            try ints("assign").write(try source.toIntArray().map { Int32($0) })
        }
    }
}

extension Tensor {
    /// The float device buffer behind this tensor, for launching kernels directly (optimizers do).
    /// An int32 tensor has none: use it through tensor operations.
    public var buffer: Buffer<Float> {
        get throws { try floats("buffer") }
    }

    /// The int32 device buffer behind an integer tensor (labels, indices, counts).
    public var intBuffer: Buffer<Int32> {
        get throws { try ints("intBuffer") }
    }

    /// The kernel library of this tensor's device.
    public var kernels: KernelLibrary {
        get throws { try KernelLibrary.shared(for: device) }
    }
}

/// Numbers and nested arrays of numbers that `Tensor(_:)` takes: `Float`, `Double`, `Int`, and
/// arrays of them to any depth.
public protocol TensorLiteral {
    /// The extents of the nesting ([] for a number), or nil when ragged or empty.
    var literalShape: [Int]? { get }
    /// Appends the numbers in row-major order.
    func appendLiteralValues(to values: inout [Float])
}

extension Float: TensorLiteral {
    /// A number is a scalar: shape [].
    public var literalShape: [Int]? { [] }
    /// Appends itself.
    public func appendLiteralValues(to values: inout [Float]) { values.append(self) }
}

extension Double: TensorLiteral {
    /// A number is a scalar: shape [].
    public var literalShape: [Int]? { [] }
    /// Appends itself, rounded to Float.
    public func appendLiteralValues(to values: inout [Float]) { values.append(Float(self)) }
}

extension Int: TensorLiteral {
    /// A number is a scalar: shape [].
    public var literalShape: [Int]? { [] }
    /// Appends itself as a Float.
    public func appendLiteralValues(to values: inout [Float]) { values.append(Float(self)) }
}

extension Array: TensorLiteral where Element: TensorLiteral {
    /// `[count] + ` the shape every element shares, or nil.
    public var literalShape: [Int]? {
        guard let inner = first?.literalShape else { return nil }
        for element in dropFirst() where element.literalShape != inner { return nil }
        return [count] + inner
    }
    /// Appends every element's numbers in order.
    public func appendLiteralValues(to values: inout [Float]) {
        for element in self { element.appendLiteralValues(to: &values) }
    }
}

extension Tensor {
    /// Throws unless every given tensor is on the same device (an op's inputs must be).
    static func checkSameDevice(_ op: String, _ tensors: [Tensor?]) throws {
        let present = tensors.compactMap { $0 }
        guard let first = present.first, let other = present.first(where: { $0.device !== first.device }) else { return }
        throw TensorError("\(op): the tensors are on different devices (\(first.device) and \(other.device)); create or move them on one device.")
    }
}
