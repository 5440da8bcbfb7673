#if KILN_FUZZ
import Foundation

/// libFuzzer's driver, from `libclang_rt.fuzzer_no_main` (scripts/fuzz.sh links it). The fuzz
/// targets keep their own `main` and hand libFuzzer their `LLVMFuzzerTestOneInput`, instead of
/// linking libFuzzer's `main` with `-sanitize=fuzzer`: SwiftPM renames every executable's entry
/// point (`--defsym main=<Module>_main`), so with libFuzzer's `main` in the link the build tool
/// KilnEmbed fails to link.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafeRawPointer?, Int) -> CInt) -> CInt

public enum FuzzDriver {
    /// Runs libFuzzer with the process's arguments on `testOneInput`; does not return.
    public static func run(_ testOneInput: @convention(c) (UnsafeRawPointer?, Int) -> CInt) -> Never {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
    }
}
#endif
