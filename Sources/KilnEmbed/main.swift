// Writes a Swift file holding the text of an OpenCL C file as a raw string literal.
// Usage: KilnEmbed <input.cl> <output.swift>
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: KilnEmbed <input.cl> <output.swift>\n".utf8))
    exit(2)
}
guard let data = FileManager.default.contents(atPath: arguments[1]),
      let text = String(data: data, encoding: .utf8) else {
    FileHandle.standardError.write(Data("KilnEmbed: cannot read \(arguments[1]) as UTF-8\n".utf8))
    exit(1)
}
// A raw string's delimiter needs more `#` than any `"#…` run inside the text.
var hashes = "#"
while text.contains("\"" + hashes) { hashes += "#" }
let swift = """
// Generated from kernels.cl by the EmbedKernels build plugin. Do not edit.

/// The OpenCL C source of every Kiln kernel: the repository's `kernels.cl`, embedded at build time.
public let kernelSource: String = \(hashes)\"\"\"
\(text)
\"\"\"\(hashes)

"""
do {
    try swift.write(toFile: arguments[2], atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("KilnEmbed: cannot write \(arguments[2]): \(error)\n".utf8))
    exit(1)
}
