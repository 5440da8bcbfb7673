/// Per-class precision, recall and F1 from predicted and true classes, as scikit-learn's
/// `classification_report` computes them (a class never predicted has precision 0, one never
/// present has recall 0: `zero_division=0`).
///
/// ```swift
/// let report = try ClassificationReport(predicted: [0, 1, 1, 2], truth: [0, 1, 2, 2], classes: 3)
/// print(report.precision)    // [1.0, 0.5, 1.0]
/// print(report.recall)       // [1.0, 1.0, 0.5]
/// print(report.macroF1)      // 0.7777…
/// ```
public struct ClassificationReport: Sendable, Equatable {
    /// `confusion[t][p]`: samples of true class `t` predicted as `p`.
    public let confusion: [[Int]]
    /// Per class: true positives over predicted positives.
    public let precision: [Double]
    /// Per class: true positives over actual positives (the per-class accuracy).
    public let recall: [Double]
    /// Per class: the harmonic mean of precision and recall.
    public let f1: [Double]
    /// Per class: how many samples belong to it.
    public let support: [Int]

    /// A report over `classes` classes. Labels outside `0..<classes` are refused.
    /// - Throws: `TrainingError` when the lists differ in length or hold a label out of range.
    public init(predicted: [Int], truth: [Int], classes: Int) throws {
        guard predicted.count == truth.count else {
            throw TrainingError("ClassificationReport: \(predicted.count) predictions for \(truth.count) labels.")
        }
        guard classes >= 1 else { throw TrainingError("ClassificationReport: classes must be ≥ 1; got \(classes).") }
        var matrix = Array(repeating: Array(repeating: 0, count: classes), count: classes)
        for (p, t) in zip(predicted, truth) {
            guard (0..<classes).contains(p), (0..<classes).contains(t) else {
                throw TrainingError("ClassificationReport: label \((0..<classes).contains(p) ? t : p) is not a class of 0..<\(classes).")
            }
            matrix[t][p] += 1
        }
        self.init(confusion: matrix)
    }

    /// A report from a square confusion matrix (rows: true class, columns: predicted); a short row
    /// counts as zeros.
    public init(confusion given: [[Int]]) {
        let n = given.count
        let confusion = given.map { row in (0..<n).map { $0 < row.count ? row[$0] : 0 } }
        self.confusion = confusion
        func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }
        let predictedCounts = (0..<n).map { p in confusion.reduce(0) { $0 + $1[p] } }
        let support = confusion.map { $0.reduce(0, +) }
        let precision = (0..<n).map { ratio(confusion[$0][$0], predictedCounts[$0]) }
        let recall = (0..<n).map { ratio(confusion[$0][$0], support[$0]) }
        (self.support, self.precision, self.recall) = (support, precision, recall)
        f1 = zip(precision, recall).map { p, r in p + r == 0 ? 0 : 2 * p * r / (p + r) }
    }

    /// Correct predictions over all samples.
    public var accuracy: Double {
        let total = support.reduce(0, +)
        return total == 0 ? 0 : Double(confusion.indices.reduce(0) { $0 + confusion[$1][$1] }) / Double(total)
    }

    /// The classes that occur among the labels or the predictions: the ones scikit-learn's
    /// averages cover (`labels=None`).
    public var presentClasses: [Int] {
        confusion.indices.filter { c in support[c] > 0 || confusion.contains { $0[c] > 0 } }
    }

    /// The unweighted mean of the per-class precisions, over `presentClasses`.
    public var macroPrecision: Double { mean(presentClasses.map { precision[$0] }) }
    /// The unweighted mean of the per-class recalls, over `presentClasses`.
    public var macroRecall: Double { mean(presentClasses.map { recall[$0] }) }
    /// The unweighted mean of the per-class F1 scores, over `presentClasses`.
    public var macroF1: Double { mean(presentClasses.map { f1[$0] }) }
    /// The per-class F1 scores weighted by support.
    public var weightedF1: Double {
        let total = support.reduce(0, +)
        return total == 0 ? 0 : zip(f1, support).reduce(0) { $0 + $1.0 * Double($1.1) } / Double(total)
    }

    private func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
}
