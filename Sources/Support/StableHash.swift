/// A 128-bit FNV-1a hash as 32 hex digits: stable across runs and machines (unlike `Hasher`).
public func stableHash(_ text: String) -> String { stableHash(bytes: text.utf8) }

/// `stableHash` of raw bytes.
public func stableHash<Bytes: Sequence<UInt8>>(bytes: Bytes) -> String {
    var a: UInt64 = 0xcbf2_9ce4_8422_2325
    var b: UInt64 = 0x6c62_272e_07bb_0142
    for byte in bytes {
        a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 ^ (b >> 29)
    }
    return String(a, radix: 16).leftPadded(16, with: "0") + String(b, radix: 16).leftPadded(16, with: "0")
}

