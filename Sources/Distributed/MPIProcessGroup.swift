import Foundation
import KilnTraining
#if canImport(Glibc)
import Glibc
#endif

/// Why MPI could not be used: the library is missing, or a call failed.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// The message.
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The processes `mpirun` started, as a `ProcessGroup`, through the system's Open MPI.
///
/// Kiln does not link MPI: `libmpi.so.40` (Open MPI 4 and 5, Debian's `libopenmpi3`) is loaded
/// when a group is made, so Kiln builds and runs on machines without MPI and only
/// `mpirun -np N kiln train` needs it. The handles (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`, …)
/// are Open MPI's exported objects; MPICH's ABI differs and is not supported.
///
/// ```swift
/// import KilnDistributed
///
/// if MPIProcessGroup.launchedSize ?? 1 > 1 {
///     let group = try MPIProcessGroup()
///     print("rank \(group.rank) of \(group.size)")
///     var gradient: [Float] = [1, 2]
///     try group.allReduceSum(&gradient)         // [size, 2·size] on every rank
///     group.finalize()
/// }
/// ```
public final class MPIProcessGroup: ProcessGroup {
    public let rank: Int
    public let size: Int

    private typealias Handle = OpaquePointer
    private typealias Allreduce = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, Handle?, Handle?, Handle?) -> Int32
    private typealias Bcast = @convention(c) (UnsafeMutableRawPointer?, Int32, Handle?, Int32, Handle?) -> Int32
    private typealias Allgather = @convention(c) (UnsafeRawPointer?, Int32, Handle?, UnsafeMutableRawPointer?, Int32, Handle?, Handle?) -> Int32
    private typealias Abort = @convention(c) (Handle?, Int32) -> Int32
    private typealias Finalize = @convention(c) () -> Int32
    private let comm: Handle, float: Handle, double: Handle, uint64: Handle, sum: Handle
    private let allreduce: Allreduce, bcast: Bcast, allgather: Allgather, abortFunction: Abort, finalizeFunction: Finalize
    private var finalized = false

    /// The number of processes `mpirun` (or a scheduler using Open MPI) started, read from the
    /// environment without loading MPI; nil when this process was not started by it.
    public static var launchedSize: Int? {
        let environment = ProcessInfo.processInfo.environment
        return (environment["OMPI_COMM_WORLD_SIZE"] ?? environment["PMIX_SIZE"]).flatMap { Int($0) }
    }

    /// The processes on this machine, from the environment (nil when not started by Open MPI).
    public static var localSize: Int? {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) }
    }

    /// Loads Open MPI, initializes it (once per process) and reads this process's rank and the size.
    /// - Throws: `MPIError` when no MPI library can be loaded (install `openmpi-bin` and
    ///   `libopenmpi-dev`, or Debian's `libopenmpi3`) or it lacks a function Kiln needs.
    public init(libraries: [String] = ["libmpi.so.40", "libmpi.so"]) throws {
        // RTLD_GLOBAL: Open MPI's own plugins resolve their symbols against libmpi.
        guard let library = libraries.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_GLOBAL) }).first else {
            let reason = dlerror().map { String(cString: $0) } ?? "not found"
            throw MPIError("Cannot load Open MPI (\(libraries.joined(separator: " or ")): \(reason)); install it with: apt-get install openmpi-bin libopenmpi-dev")
        }
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let address = dlsym(library, name) else { throw MPIError("The MPI library has no \(name); Kiln needs Open MPI 4 or later.") }
            return address
        }
        func function<F>(_ name: String, as type: F.Type) throws -> F { unsafeBitCast(try symbol(name), to: type) }
        func object(_ name: String) throws -> Handle { Handle(try symbol(name)) }

        let initialized = try function("MPI_Initialized", as: (@convention(c) (UnsafeMutablePointer<Int32>?) -> Int32).self)
        let initialize = try function("MPI_Init", as: (@convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32).self)
        let commRank = try function("MPI_Comm_rank", as: (@convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32).self)
        let commSize = try function("MPI_Comm_size", as: (@convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32).self)
        allreduce = try function("MPI_Allreduce", as: Allreduce.self)
        bcast = try function("MPI_Bcast", as: Bcast.self)
        allgather = try function("MPI_Allgather", as: Allgather.self)
        abortFunction = try function("MPI_Abort", as: Abort.self)
        finalizeFunction = try function("MPI_Finalize", as: Finalize.self)
        comm = try object("ompi_mpi_comm_world")
        float = try object("ompi_mpi_float")
        double = try object("ompi_mpi_double")
        uint64 = try object("ompi_mpi_uint64_t")
        sum = try object("ompi_mpi_op_sum")

        var flag: Int32 = 0
        _ = initialized(&flag)
        if flag == 0 {
            let status = initialize(nil, nil)
            guard status == 0 else { throw MPIError("MPI_Init failed (error \(status)); start the program with mpirun.") }
        }
        var rank: Int32 = 0, size: Int32 = 1
        _ = commRank(comm, &rank)
        _ = commSize(comm, &size)
        (self.rank, self.size) = (Int(rank), Int(size))
    }

    /// `MPI_IN_PLACE` in Open MPI.
    private static var inPlace: UnsafeRawPointer? { UnsafeRawPointer(bitPattern: 1) }

    private func check(_ status: Int32, _ call: String) throws {
        guard status == 0 else { throw MPIError("\(call) failed on rank \(rank) (MPI error \(status)).") }
    }

    /// Splits `count` elements into calls of at most Int32.max elements each.
    private func chunks(_ count: Int, _ body: (_ offset: Int, _ length: Int32) throws -> Void) rethrows {
        var offset = 0
        while offset < count {
            let length = min(count - offset, Int(Int32.max))
            try body(offset, Int32(length))
            offset += length
        }
    }

    public func allReduceSum(_ values: inout [Float]) throws { try allReduceSum(&values, type: float) }

    public func allReduceSum(_ values: inout [Double]) throws { try allReduceSum(&values, type: double) }

    /// `MPI_Allreduce` with `MPI_SUM`, in place, of elements of MPI type `type`.
    private func allReduceSum<Element>(_ values: inout [Element], type: Handle) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { buffer in
            try chunks(n) { offset, length in
                try check(allreduce(Self.inPlace, buffer.baseAddress.map { UnsafeMutableRawPointer($0 + offset) }, length, type, sum, comm),
                          "MPI_Allreduce")
            }
        }
    }

    public func broadcast(_ values: inout [Float], from root: Int) throws {
        let n = values.count
        try values.withUnsafeMutableBufferPointer { buffer in
            try chunks(n) { offset, length in
                try check(bcast(buffer.baseAddress.map { UnsafeMutableRawPointer($0 + offset) }, length, float, Int32(root), comm),
                          "MPI_Bcast")
            }
        }
    }

    public func allGather(_ value: UInt64) throws -> [UInt64] {
        var mine = value
        var all = [UInt64](repeating: 0, count: size)
        try all.withUnsafeMutableBytes { received in
            try check(allgather(&mine, 1, uint64, received.baseAddress, 1, uint64, comm), "MPI_Allgather")
        }
        return all
    }

    /// Ends every process of the job with `code` (`MPI_Abort`): what a process that failed calls
    /// so the others do not wait for it.
    public func abort(code: Int32) -> Never {
        _ = abortFunction(comm, code)
        exit(code)
    }

    /// Shuts MPI down (`MPI_Finalize`); call once, when the work is done.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        _ = finalizeFunction()
    }
}
