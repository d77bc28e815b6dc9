import Foundation

/// Everything a file can do wrong when isfgan reads or writes it.
///
/// The message names the file, where in it the problem is (a key, an archive entry or a
/// byte offset) and what was expected, so that a user can tell a truncated download from an
/// unsupported variant or a hostile file:
///
///     stylegan2.pt: entry 'archive/data.pkl' at offset 1834: the pickle names the global
///     'os.system', which is not on the allow-list; nothing was run
public struct FormatError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The broad class of failure, for callers and tests that branch on it.
    public enum Kind: String, Sendable {
        /// The file could not be opened, read, written or renamed.
        case io
        /// The file ends before the structure it declares.
        case truncated
        /// The file does not start the way the format requires.
        case badMagic
        /// A valid file that uses a feature isfgan does not read.
        case unsupported
        /// Internally inconsistent content (bad CRC, bad lengths, bad syntax).
        case corrupt
        /// A pickle names a global outside the allow-list.
        case forbidden
        /// A declared size that the file cannot hold or that overflows.
        case tooLarge
        /// A shape, stride or dtype that cannot describe a tensor.
        case invalidShape
        /// A key the caller asked for is absent.
        case missingKey
    }

    public let kind: Kind
    /// The file (or the in-memory source) the error is about.
    public let file: String
    /// Where in the file: `offset 1234`, `key 'g_ema'`, `entry 'x/data.pkl'`.
    public let location: String?
    /// What was found and what was expected.
    public let message: String

    public init(_ kind: Kind, file: String, at location: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.location = location
        self.message = message
    }

    public var description: String {
        if let location { return "\(file): \(location): \(message)" }
        return "\(file): \(message)"
    }

    /// The same error, placed inside an outer location (e.g. an archive entry).
    func within(_ outer: String) -> FormatError {
        FormatError(
            kind, file: file, at: location.map { "\(outer) at \($0)" } ?? outer, message)
    }
}

extension FormatError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Checked arithmetic for sizes read from files: overflow is an error, never a trap.
enum Checked {
    static func multiply(_ a: Int, _ b: Int, _ fail: @autoclosure () -> FormatError) throws
        -> Int
    {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if o { throw fail() }
        return r
    }

    static func add(_ a: Int, _ b: Int, _ fail: @autoclosure () -> FormatError) throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        if o { throw fail() }
        return r
    }

    /// Element count of a shape: every dimension ≥ 0 and the product representable.
    static func count(_ shape: [Int], _ fail: @autoclosure () -> FormatError) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw fail() }
            let (r, o) = n.multipliedReportingOverflow(by: d)
            if o { throw fail() }
            n = r
        }
        return n
    }
}

/// A JSON decoding failure as one line: what was wrong and at which key, without Swift's
/// debug dump.
public func describeDecoding(_ error: any Error) -> String {
    guard let decoding = error as? DecodingError else { return "\(error)" }
    func at(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return path.isEmpty ? "" : " at \(path.joined(separator: "."))"
    }
    switch decoding {
    case .dataCorrupted(let c):
        return c.codingPath.isEmpty ? "not valid JSON" : "a bad value\(at(c))"
    case .keyNotFound(let key, let c): return "no key '\(key.stringValue)'\(at(c))"
    case .typeMismatch(let type, let c): return "expected \(type)\(at(c))"
    case .valueNotFound(let type, let c): return "expected \(type)\(at(c)), found null"
    @unknown default: return "\(error)"
    }
}
