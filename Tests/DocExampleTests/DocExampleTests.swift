import Foundation
import Testing

/// Every Swift code example of the documentation (the README's ```swift blocks, those of the DocC
/// articles under Sources, and every ```swift block in a `///` comment under Sources) is copied into `DocExamples.swift` beside this file, one
/// function each, so the normal test build compiles them all: an example that stops compiling
/// stops the build. This test checks the copy is current; to refresh it after editing an example:
///
///     KILN_UPDATE_DOC_EXAMPLES=1 swift test --filter DocExampleTests
@Suite("Documentation examples")
struct DocExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let generated = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("DocExamples.swift")

    /// One example: where it came from and its lines.
    struct Example { let source: String; let line: Int; let code: [String] }

    /// The ```swift blocks of `lines`, each with the line number of its first code line.
    static func blocks(_ lines: [String], source: String) -> [Example] {
        var examples: [Example] = [], current: [String]? = nil, start = 0
        for (number, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current == nil, trimmed == "```swift" {
                current = []
                start = number + 2
            } else if current != nil, trimmed == "```" {
                // A fragment of a manifest (first line `// Package.swift`) is not program code.
                if current?.first?.trimmingCharacters(in: .whitespaces) != "// Package.swift" {
                    examples.append(Example(source: source, line: start, code: current ?? []))
                }
                current = nil
            } else if current != nil {
                current?.append(line)
            }
        }
        return examples
    }

    /// The examples of the README and of the doc comments under Sources, in a stable order.
    static func examples() throws -> [Example] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var all = blocks(readme.components(separatedBy: "\n"), source: "README.md")
        let sources = root.appendingPathComponent("Sources")
        let files = (FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL } ?? []).filter { $0.pathExtension == "swift" }
            .sorted { $0.path < $1.path }
        // The articles of the DocC catalogs (Sources/*/*.docc), whose ```swift blocks are plain lines.
        let articles = (FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)?
            .compactMap { $0 as? URL } ?? []).filter { $0.pathExtension == "md" }
            .sorted { $0.path < $1.path }
        for article in articles {
            let text = try String(contentsOf: article, encoding: .utf8)
            all += blocks(text.components(separatedBy: "\n"), source: String(article.path.dropFirst(root.path.count + 1)))
        }
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            // Doc-comment lines without their `///` and one space; other lines break a block.
            let lines = text.components(separatedBy: "\n").map { line -> String in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard trimmed.hasPrefix("///") else { return "\u{0}" }
                let body = trimmed.dropFirst(3)
                return String(body.hasPrefix(" ") ? body.dropFirst() : body)
            }
            let relative = String(file.path.dropFirst(root.path.count + 1))
            all += blocks(lines, source: relative).filter { !$0.code.contains("\u{0}") }
        }
        return all
    }

    /// The names a top-level `let` or `var` line declares (`let a = …, b = …`, `let (a, b) = …`).
    static func declaredNames(_ line: String) -> [String] {
        guard line.hasPrefix("let ") || line.hasPrefix("var ") else { return [] }
        var names: [String] = []
        // Without string literals and the trailing comment, whose words are not declarations.
        var code = "", inString = false
        for c in line {
            if c == "\"" { inString.toggle(); continue }
            if !inString { code.append(c) }
        }
        if let comment = code.range(of: "//") { code = String(code[..<comment.lowerBound]) }
        let rest = code.dropFirst(4)
        if rest.hasPrefix("("), let close = rest.firstIndex(of: ")") {
            names = rest[rest.index(after: rest.startIndex)..<close].split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            // Each declaration of the line: the identifier before ":" or "=" at nesting depth 0.
            var depth = 0, current = "", expectingName = true
            for c in rest {
                switch c {
                case "(", "[", "{": depth += 1; expectingName = false
                case ")", "]", "}": depth -= 1
                case "," where depth == 0: expectingName = true; current = ""
                default:
                    if expectingName, depth == 0 {
                        if c.isLetter || c.isNumber || c == "_" { current.append(c) }
                        else if !current.isEmpty { names.append(current); expectingName = false }
                    }
                }
            }
        }
        return names.filter { !$0.isEmpty && $0 != "_" && ($0.first?.isLetter ?? false) }
    }

    /// The text of DocExamples.swift for `examples`.
    static func render(_ examples: [Example]) -> String {
        var imports: Set<String> = ["import Foundation", "import Kiln"]
        var functions: [String] = []
        for (index, example) in examples.enumerated() {
            var body: [String] = []
            for line in example.code {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("import ") { imports.insert(trimmed) } else { body.append(line) }
            }
            // The values an example makes only to show them, used once so the build stays quiet.
            let names = body.filter { !$0.hasPrefix(" ") }.flatMap(Self.declaredNames)
            if !names.isEmpty { body.append("_ = (\(names.joined(separator: ", ")), ())") }
            functions.append("""
            // \(example.source):\(example.line)
            private func example\(index)() throws {
            \(body.map { $0.isEmpty ? "" : "    " + $0 }.joined(separator: "\n"))
            }
            """)
        }
        return """
        // Generated by DocExampleTests from the README and the `///` examples under Sources. Do not
        // edit: change the example where it is and run
        //     KILN_UPDATE_DOC_EXAMPLES=1 swift test --filter DocExampleTests
        // The functions are compiled, not called: the examples need data, devices and time.
        // swiftlint:disable all
        \(imports.sorted().joined(separator: "\n"))

        \(functions.joined(separator: "\n\n"))

        /// How many examples this file holds (the test compares it with the sources).
        let docExampleCount = \(examples.count)

        """
    }

    @Test("every README and `///` Swift example is compiled by this target (DocExamples.swift is current)")
    func examplesAreCurrent() throws {
        let examples = try Self.examples()
        #expect(examples.count >= 30, "found only \(examples.count) examples")
        #expect(examples.contains { $0.source == "README.md" }, "the README's Swift sample was not found")
        let expected = Self.render(examples)
        if ProcessInfo.processInfo.environment["KILN_UPDATE_DOC_EXAMPLES"] == "1" {
            try expected.write(to: Self.generated, atomically: true, encoding: .utf8)
            return
        }
        let current = (try? String(contentsOf: Self.generated, encoding: .utf8)) ?? ""
        #expect(current == expected, "DocExamples.swift is out of date: run KILN_UPDATE_DOC_EXAMPLES=1 swift test --filter DocExampleTests")
        #expect(docExampleCount == examples.count)
    }
}
