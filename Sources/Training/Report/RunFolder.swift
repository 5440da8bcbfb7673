import Foundation
import KilnSupport
#if canImport(Glibc)
import Glibc
#endif

/// One folder per training run, numbered as PyTorch Lightning numbers its logs:
/// `runs/version_0`, `runs/version_1`, …, with `runs/latest` a symbolic link to the newest.
///
/// ```swift
/// let folder = try RunFolder.create(in: URL(fileURLWithPath: "runs"))   // runs/version_3, runs/latest → version_3
/// let trainer = Trainer(maxEpochs: 10, outputFolder: folder)
/// ```
public enum RunFolder {
    /// The name of the link to the newest run.
    public static let latestName = "latest"

    /// The version numbers of the `version_N` folders in `root` (none when it does not exist).
    public static func versions(in root: URL) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.compactMap { name in
            // Numbers past Int32.max are not Kiln's (and could not be counted on from).
            guard name.hasPrefix("version_"), let n = Int(name.dropFirst("version_".count)), n >= 0, n < Int(Int32.max),
                  String(n) == name.dropFirst("version_".count) else { return nil }
            return n
        }.sorted()
    }

    /// Makes `root/version_N` with N one more than the largest there (0 for the first), and points
    /// `root/latest` at it, replacing the link in one step. A `latest` that is a real folder (runs of
    /// Kiln before version folders) is first renamed to the next `version_N`, so nothing is lost.
    /// Two runs started at once get different numbers. Returns the new folder.
    /// - Throws: `FileError` when `root` cannot be created or written.
    @discardableResult
    public static func create(in root: URL) throws -> URL {
        try createFolder(root, purpose: "runs folder")
        let latest = root.appendingPathComponent(latestName)
        var isFolder: ObjCBool = false
        let latestIsLink = (try? FileManager.default.destinationOfSymbolicLink(atPath: latest.path)) != nil
        if !latestIsLink, FileManager.default.fileExists(atPath: latest.path, isDirectory: &isFolder), isFolder.boolValue {
            let kept = root.appendingPathComponent("version_\((versions(in: root).last ?? -1) + 1)")
            guard rename(latest.path, kept.path) == 0 else { throw FileError("move the earlier run to", kept.path, errno: errno) }
        }
        var next = (versions(in: root).last ?? -1) + 1
        var folder = root.appendingPathComponent("version_\(next)")
        // mkdir fails on a name another run took first: take the next one.
        while mkdir(folder.path, 0o755) != 0 {
            guard errno == EEXIST, next < Int(Int32.max) else { throw FileError("create the run folder", folder.path, errno: errno) }
            next += 1
            folder = root.appendingPathComponent("version_\(next)")
        }
        try pointLatest(in: root, at: folder.lastPathComponent)
        return folder
    }

    /// Points `root/latest` at `name` (relative, so the runs folder can be moved), through a
    /// temporary link renamed over the old one.
    static func pointLatest(in root: URL, at name: String) throws {
        let latest = root.appendingPathComponent(latestName)
        let temporary = root.appendingPathComponent(".\(latestName).\(getpid()).tmp")
        unlink(temporary.path)
        guard symlink(name, temporary.path) == 0 else { throw FileError("link", temporary.path, errno: errno) }
        guard rename(temporary.path, latest.path) == 0 else {
            let code = errno
            unlink(temporary.path)
            throw FileError("point \(latest.path) at", name, errno: code)
        }
    }
}
