import Foundation
import KilnSupport
import KilnDevice
import KilnTensor

/// The toy data sets courses start with, made as scikit-learn's `sklearn.datasets` makes them.
public enum SyntheticData {
    /// Two rings as `make_circles(count, noise:, factor:)` makes them: half the points evenly spaced
    /// on the unit circle (label 0), the other half on a circle of radius `factor` inside it
    /// (label 1), shuffled, then moved by Gaussian noise of standard deviation `noise`. Points
    /// `[count, 2]` and float labels `[count, 1]` (for `BCEWithLogitsLoss`), the same for the same seed.
    ///
    /// ```swift
    /// let (points, labels) = try SyntheticData.circles(count: 1000, noise: 0.03, factor: 0.8, seed: 42)
    /// print(points.shape, labels.shape)   // [1000, 2] [1000, 1]
    /// ```
    /// - Throws: `DataError` for fewer than 2 points, a factor outside `0 < factor < 1` or a
    ///   negative or non-finite noise.
    public static func circles(count: Int, noise: Float = 0, factor: Float = 0.8, seed: UInt64 = 0,
                               on device: Device? = nil) throws -> (points: Tensor, labels: Tensor) {
        guard (2...1 << 24).contains(count) else { throw DataError("circles: count must be from 2 to \(1 << 24); got \(count).") }
        guard factor > 0, factor < 1 else { throw DataError("circles: factor must be between 0 and 1; got \(factor).") }
        guard noise.isFinite, noise >= 0 else { throw DataError("circles: noise must be a finite number ≥ 0; got \(noise).") }
        let device = try device ?? Tensor.defaultDevice()
        let outer = count / 2
        var coordinates: [Float] = [], labels: [Float] = []
        for (label, ringCount, radius) in [(Float(0), outer, Float(1)), (1, count - outer, factor)] {
            for i in 0..<ringCount {
                let angle = 2 * Float.pi * Float(i) / Float(ringCount)
                coordinates += [radius * cos(angle), radius * sin(angle)]
                labels.append(label)
            }
        }
        var rng = SplitMix64(seed: seed)
        let order = rng.permutation(count)
        let clean = try Tensor(order.flatMap { [coordinates[2 * $0], coordinates[2 * $0 + 1]] }, shape: [count, 2], on: device)
        let jitter = try RandomState.withSeed(seed) { try Tensor.randn([count, 2], std: noise, on: device) }
        return (try clean + jitter, try Tensor(order.map { labels[$0] }, shape: [count, 1], on: device))
    }
}
