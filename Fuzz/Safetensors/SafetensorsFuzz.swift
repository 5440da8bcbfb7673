// The safetensors fuzz target. Built with -DKILN_FUZZ (scripts/fuzz.sh safetensors: ASan and libFuzzer's
// coverage instrumentation) it runs libFuzzer on LLVMFuzzerTestOneInput; in the normal build it
// is a program replaying files and folders through the same entry (FuzzEntry.safetensors).
import Foundation
import KilnFuzzing

/// libFuzzer's per-input callback: the bytes go through the entry; errors it throws are expected.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    FuzzEntry.safetensors(start.map { Data(bytes: $0, count: count) } ?? Data())
    return 0
}

@main struct FuzzSafetensors {
    static func main() {
        #if KILN_FUZZ
        FuzzDriver.run(fuzz)
        #else
        FuzzReplay.main(target: "safetensors", entry: FuzzEntry.safetensors)
        #endif
    }
}
