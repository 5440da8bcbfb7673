/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny seeded generator whose sequence is fixed by its
/// seed on every machine and every Swift version, which `SystemRandomNumberGenerator` and the
/// standard library's `shuffle(using:)` do not promise. Kiln's data splits and shuffles use it.
///
/// ```swift
/// var rng = SplitMix64(seed: 42)
/// let order = rng.permutation(10)     // the same 10 indices in the same order everywhere
/// ```
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The generator's whole state.
    public var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) { state = seed }

    /// A generator for one numbered stream of `seed` (for example, one epoch): streams of nearby
    /// numbers are unrelated, because the pair is mixed through one SplitMix64 step first.
    public init(seed: UInt64, stream: UInt64) {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        state = mixer.next()
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0..<bound` by Lemire's multiply-and-reject method, spelled out here
    /// so the result never depends on the standard library's implementation. A bound of 0 gives 0.
    public mutating func next(below bound: UInt64) -> UInt64 {
        guard bound > 0 else { return 0 }
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    /// A random order of `0..<count` (Fisher–Yates, from the last position down).
    public mutating func permutation(_ count: Int) -> [Int] {
        var order = Array(0..<count)
        var i = count - 1
        while i > 0 {
            let j = Int(next(below: UInt64(i + 1)))
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}
