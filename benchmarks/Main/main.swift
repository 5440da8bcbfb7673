// `kiln-bench`: the benchmark suite as its own executable (the same as `kiln bench`).
import KilnBenchmarks

BenchCommand.main(BenchCommand.upgradingArguments(Array(CommandLine.arguments.dropFirst())))
