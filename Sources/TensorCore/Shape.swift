/// A shape error: which op, and the shapes it was given.
///
/// Ops trap on shape errors (they are the caller's mistake); the throwing shape functions
/// below let callers that handle user input (the CLI, file loaders) check first and report.
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public let op: String
    public let message: String
    public init(op: String, _ message: String) {
        self.op = op
        self.message = message
    }
    public var description: String { "\(op): \(message)" }
}

/// Formats a shape the way PyTorch prints it: `[4, 3, 32, 32]`.
public func describe(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

public enum Shape {
    /// Number of elements of `shape` (1 for a scalar).
    @inlinable
    public static func count(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape { n *= d }
        return n
    }

    /// Row-major strides of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = s
            s *= max(shape[i], 1)
        }
        return strides
    }

    /// The NumPy broadcast of two shapes, or an error naming `op` and both shapes.
    public static func broadcast(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                throw ShapeError(
                    op: op, "shapes \(describe(a)) and \(describe(b)) cannot be broadcast")
            }
        }
        return out
    }

    /// Normalises a possibly negative axis, or throws naming `op`.
    public static func axis(_ axis: Int, rank: Int, op: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < max(rank, 1) else {
            throw ShapeError(op: op, "axis \(axis) is out of range for rank \(rank)")
        }
        return a
    }

    /// Checks `shape` against a pattern with wildcards (`nil`), naming the tensor.
    ///
    ///     try Shape.check(x.shape, [nil, 3, nil, nil], "images")   // N, C=3, H, W
    public static func check(_ shape: [Int], _ pattern: [Int?], _ name: String) throws {
        var ok = shape.count == pattern.count
        if ok {
            for (d, p) in zip(shape, pattern) where p != nil && p != d { ok = false }
        }
        if !ok {
            let want =
                "[" + pattern.map { $0.map(String.init) ?? "*" }.joined(separator: ", ")
                + "]"
            throw ShapeError(op: name, "expected shape \(want), got \(describe(shape))")
        }
    }
}

/// Traps with the error's text: for ops, where a shape error is a programming mistake.
@usableFromInline
func must<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        preconditionFailure("\(error)")
    }
}
