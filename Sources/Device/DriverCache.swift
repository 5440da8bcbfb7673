import Foundation
import KilnSupport

/// Where the OpenCL driver keeps its own compiled kernels. PoCL caches them under
/// `$XDG_CACHE_HOME/pocl` by default, where a damaged entry makes every later run abort inside
/// the driver and a cache location that is a file makes it report no devices at all. So before
/// the first OpenCL call Kiln:
///
/// - points PoCL (`POCL_CACHE_DIR`, unless the user set it) into Kiln's cache folder, `…/kiln/pocl`;
/// - marks the folder in use by this process, and when it finds the mark of a process that died
///   (a crash, `kill -9`) and no live user, empties PoCL's cache: whatever that process left half
///   written cannot break the next run. Kiln's own binary cache makes the rebuild cheap;
/// - when the cache location is not a usable folder (a file, no permission), says so once on
///   stderr and runs uncached: Kiln's binary cache off, PoCL's cache off and its scratch files in
///   a private temporary folder.
enum DriverCache {
    /// Runs `prepare` once; every path to the OpenCL platforms goes through it.
    static let prepared: Void = prepare(ProcessInfo.processInfo.environment)

    static func prepare(_ environment: [String: String]) {
        guard let kiln = BinaryCache.location(environment) else { return }  // KILN_CACHE=0: leave the driver alone
        do {
            try createFolder(kiln, purpose: "cache folder")
        } catch {
            BinaryCache.disabled = true
            FileHandle.standardError.write(Data("kiln: warning: \(error) Running without caches (set XDG_CACHE_HOME to a folder, or KILN_CACHE=0).\n".utf8))
            if environment["POCL_CACHE_DIR"] == nil {
                var template = Array((NSTemporaryDirectory() + "kiln-pocl-XXXXXX").utf8CString)
                if let made = mkdtemp(&template) { setenv("POCL_CACHE_DIR", String(cString: made), 1) }
            }
            setenv("POCL_KERNEL_CACHE", "0", 1)
            return
        }
        guard environment["POCL_CACHE_DIR"] == nil else { return }
        let pocl = kiln.appendingPathComponent("pocl")
        let users = kiln.appendingPathComponent("pocl-users")
        recoverFromDeadUsers(pocl: pocl, users: users)
        if (try? createFolder(users, purpose: "cache folder")) != nil {
            let mark = users.appendingPathComponent(String(getpid()))
            if FileManager.default.createFile(atPath: mark.path, contents: nil) {
                markPath = strdup(mark.path)
                atexit { if let path = DriverCache.markPath { unlink(path) } }
            }
        }
        setenv("POCL_CACHE_DIR", pocl.path, 1)
    }

    /// The mark of this process, removed at exit.
    nonisolated(unsafe) static var markPath: UnsafeMutablePointer<CChar>?

    /// Empties PoCL's cache when a process that used it died without removing its mark and no
    /// process using it is alive; removes the dead marks.
    static func recoverFromDeadUsers(pocl: URL, users: URL) {
        guard let marks = try? FileManager.default.contentsOfDirectory(atPath: users.path) else { return }
        var dead: [String] = [], alive = 0
        for mark in marks {
            guard let pid = Int32(mark) else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { alive += 1 } else { dead.append(mark) }
        }
        guard !dead.isEmpty else { return }
        for mark in dead { unlink(users.appendingPathComponent(mark).path) }
        if alive == 0 { try? FileManager.default.removeItem(at: pocl) }
    }
}
