import Foundation

/// An error reading or preparing data: a missing, truncated, corrupt or malformed file, or a
/// dataset or loader used in a way it cannot serve. The message names the file (when there is one)
/// and the problem.
///
/// ```swift
/// do { _ = try MNISTDataset(split: .test) }
/// catch let error as DataError { print(error) }   // "/path/t10k-images-idx3-ubyte.gz: truncated ..."
/// ```
public struct DataError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file the problem is in, when there is one.
    public let file: String?
    /// What went wrong, in words.
    public let message: String

    /// An error about `file` (a path or a name), or about no file when nil.
    public init(_ message: String, file: String? = nil) {
        self.message = message
        self.file = file
    }

    /// `file: message`, or just the message.
    public var description: String {
        guard let file else { return message }
        return "\(file): \(message)"
    }
}
