import Foundation
import Kiln

/// The groups of measurements and how a row of the table reads.
public enum BenchSuite {
    public static let groups = ["launch"]

    static let header = "op".padding(toLength: 22, withPad: " ", startingAt: 0) + " "
        + "shape".padding(toLength: 18, withPad: " ", startingAt: 0) + " "
        + ["device ms".leftPad(10), "wall ms".leftPad(10), "GFLOP/s".leftPad(9), "GB/s".leftPad(9),
           "%peak".leftPad(7), "runs".leftPad(4)].joined(separator: " ")

    static func row(_ r: BenchResult) -> String {
        func f(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        return "\(r.name.padding(toLength: 22, withPad: " ", startingAt: 0)) "
            + "\(r.shape.map(String.init).joined(separator: "x").padding(toLength: 18, withPad: " ", startingAt: 0)) "
            + "\(f(r.median_ms, 4).leftPad(10)) \(f(r.wall_ms, 4).leftPad(10)) \(f(r.gflops).leftPad(9)) "
            + "\(f(r.gbps).leftPad(9)) \(f(r.percent_of_peak, 0).leftPad(7)) \(String(r.runs).leftPad(4))"
    }

    static func run(_ group: String, on runner: BenchRunner) throws -> [BenchResult] {
        switch group {
        default:
            return []
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
