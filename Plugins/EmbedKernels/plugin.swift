import Foundation
import PackagePlugin

/// Embeds the repository's `kernels.cl` into the target as a Swift string constant,
/// so no file is looked up at run time. Rebuilds whenever `kernels.cl` changes.
@main
struct EmbedKernels: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let input = context.package.directoryURL.appending(path: "kernels.cl")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        return [
            .buildCommand(
                displayName: "Embedding kernels.cl",
                executable: try context.tool(named: "KilnEmbed").url,
                arguments: [input.path, output.path],
                inputFiles: [input],
                outputFiles: [output])
        ]
    }
}
