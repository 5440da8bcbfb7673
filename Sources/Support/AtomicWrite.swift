import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file or folder that could not be read or written: which, what was being done, and the
/// system's reason, in one line that says what to do.
public struct FileError: Error, Sendable, CustomStringConvertible {
    /// The path concerned.
    public let path: String
    /// The message.
    public let description: String

    /// An error about `path` with the whole message.
    public init(path: String, message: String) {
        self.path = path
        description = message
    }

    /// `Cannot <action> <path>: <reason>.` plus a hint for the common reasons.
    public init(_ action: String, _ path: String, reason: String, hint: String? = nil) {
        self.init(path: path, message: "Cannot \(action) \(path): \(reason)." + (hint.map { " " + $0 } ?? ""))
    }

    /// The error for the C library's `errno` value `code` while doing `action` on `path`.
    public init(_ action: String, _ path: String, errno code: Int32) {
        let hint: String?
        switch code {
        case ENOSPC, EDQUOT, EFBIG: hint = "Free some space (or raise the file size limit) or choose another folder; the previous file, if any, is intact."
        case EACCES, EPERM, EROFS: hint = "Choose a folder you can write to."
        case ENOTDIR: hint = "A part of the path is a file, not a folder."
        case EISDIR: hint = "Give a file, not a folder."
        default: hint = nil
        }
        self.init(action, path, reason: String(cString: strerror(code)), hint: hint)
    }
}

/// Writes `data` to a temporary file beside `url` (`.NAME.PID.RANDOM.tmp`), flushes it to disk
/// and renames it over `url`, so a crash, a signal or a full disk never leaves half a file and
/// never damages the file being replaced. Temporary files left by writers that died are removed
/// first. Throws a `FileError` naming the path and the reason.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let folder = url.deletingLastPathComponent()
    removeStaleTemporaries(of: url)
    let temporary = folder.appendingPathComponent(
        ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
    let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FileError("write", url.path, errno: errno) }
    var failure = data.withUnsafeBytes { writeAll(fd, $0) }
    if failure == 0, fsync(fd) != 0, errno != EINVAL { failure = errno }
    if close(fd) != 0, failure == 0 { failure = errno }
    if failure == 0, rename(temporary.path, url.path) != 0 { failure = errno }
    if failure != 0 {
        unlink(temporary.path)
        throw FileError("write", url.path, errno: failure)
    }
}

/// Writes all of `bytes` to the file descriptor `fd`, retrying short and interrupted writes.
/// Returns 0, or the `errno` of the write that failed.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    var offset = 0
    while offset < bytes.count, let base = bytes.baseAddress {
        let n = write(fd, base + offset, bytes.count - offset)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += n
    }
    return 0
}

/// Removes `.NAME.PID.RANDOM.tmp` files beside `url` whose writing process no longer exists
/// (an interrupted `writeAtomically`). Files of live processes are left alone.
public func removeStaleTemporaries(of url: URL) {
    let folder = url.deletingLastPathComponent()
    let prefix = ".\(url.lastPathComponent)."
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return }
    for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
        let parts = name.dropFirst(prefix.count).dropLast(4).split(separator: ".")
        guard parts.count == 2, let pid = Int32(parts[0]), UInt32(parts[1]) != nil else { continue }
        if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
            unlink(folder.appendingPathComponent(name).path)
        }
    }
}

/// Creates `url` as a folder (and its parents) unless it is one already; `purpose` says what it
/// is for in the error (`run folder`, `cache folder`). Throws a `FileError` when something that is
/// not a folder is in the way or the folder cannot be made.
public func createFolder(_ url: URL, purpose: String) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
        guard isFolder.boolValue else {
            throw FileError(path: url.path, message: "Cannot use \(url.path) as the \(purpose): it is a file, not a folder. Remove it or choose another folder.")
        }
        guard access(url.path, W_OK | X_OK) == 0 else { throw FileError("write into the \(purpose)", url.path, errno: errno) }
        return
    }
    // Make the parents one by one so the failing component and its reason can be named.
    var path = ""
    for component in url.standardizedFileURL.pathComponents {
        path = path.isEmpty ? component : (path == "/" ? "/" + component : path + "/" + component)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw FileError("create the \(purpose)", url.path, reason: "\(path) is a file, not a folder",
                                hint: "Choose another folder.")
            }
            continue
        }
        if mkdir(path, 0o755) != 0, errno != EEXIST { throw FileError("create the \(purpose)", url.path, errno: errno) }
    }
}

/// Reads the whole regular file at `url`, at most `limit` bytes, with a one-line `FileError`
/// for a missing file, a folder, a device or pipe (which could block or never end), a file over
/// the limit, or an unreadable one. `what` names the kind of file in messages (`model file`).
public func readRegularFile(_ url: URL, what: String, limit: Int = 1 << 32) throws -> Data {
    var info = stat()
    guard stat(url.path, &info) == 0 else {
        let code = errno
        throw FileError("read the \(what)", url.path, reason: String(cString: strerror(code)),
                        hint: code == ENOENT ? "Check the path." : nil)
    }
    switch info.st_mode & S_IFMT {
    case S_IFREG: break
    case S_IFDIR: throw FileError("read the \(what)", url.path, reason: "it is a folder", hint: "Give a file.")
    default: throw FileError("read the \(what)", url.path, reason: "it is not a regular file (a device, pipe or socket)", hint: "Give a file.")
    }
    guard Int(info.st_size) <= limit else {
        throw FileError("read the \(what)", url.path, reason: "it is \(info.st_size) bytes, over the \(limit)-byte limit for a \(what)")
    }
    do { return try Data(contentsOf: url, options: .mappedIfSafe) } catch {
        throw FileError("read the \(what)", url.path, reason: describeFileSystemError(error))
    }
}

/// A Foundation file error in a few words (the POSIX reason when there is one), never a dump of
/// its user info.
public func describeFileSystemError(_ error: Error) -> String {
    if let error = error as? FileError { return error.description }
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if let posix = error as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
    return ns.localizedDescription
}
