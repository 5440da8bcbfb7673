import Foundation

/// The plain programs the fuzz targets are without `-DKILN_FUZZ` (the normal build): each
/// argument (a file, or a folder read recursively) goes through the target's entry, and the
/// program prints how many inputs it ran and how many parsed. Handy to replay a crash reproducer
/// under the debugger, or to check a corpus without the sanitizers.
public enum FuzzReplay {
    /// Every regular file at or under `path`, sorted (hidden files skipped).
    public static func files(at path: String) -> [URL] {
        let url = URL(fileURLWithPath: path)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return [] }
        guard isFolder.boolValue else { return [url] }
        let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey],
                                                        options: [.skipsHiddenFiles])
        var found: [URL] = []
        while let next = enumerator?.nextObject() as? URL {
            if (try? next.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true { found.append(next) }
        }
        return found.sorted { $0.path < $1.path }
    }

    /// Runs `entry` on every file the command-line arguments name; the exit status is 2 for a
    /// usage error or an unreadable path, else 0.
    public static func main(target: String, entry: (Data) -> Bool) -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard !arguments.isEmpty, !arguments.contains("-h"), !arguments.contains("--help") else {
            print("""
                usage: kiln-fuzz-\(target) FILE-OR-FOLDER...
                Replays the inputs through the \(target) fuzz entry (built without -DKILN_FUZZ; \
                scripts/fuzz.sh \(target) builds the libFuzzer target).
                """)
            exit(arguments.isEmpty ? 2 : 0)
        }
        var ran = 0, parsed = 0, unreadable = 0
        for argument in arguments {
            let urls = files(at: argument)
            if urls.isEmpty { print("\(argument): no such file or folder"); unreadable += 1 }
            for url in urls {
                guard let data = try? Data(contentsOf: url) else { print("\(url.path): cannot be read"); unreadable += 1; continue }
                if entry(data) { parsed += 1 }
                ran += 1
            }
        }
        print("\(target): ran \(ran) inputs, \(parsed) parsed")
        exit(unreadable == 0 ? 0 : 2)
    }
}
