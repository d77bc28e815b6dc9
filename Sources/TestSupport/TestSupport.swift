import Foundation
import TensorCore
import XCTest

/// Where the shared reference fixtures live, and how a test gets one.
///
/// Tests read `../shared/fixtures` (relative to the package root) or `ISFGAN_FIXTURES`.
/// A missing fixture skips the test with a message, unless `ISFGAN_REQUIRE_FIXTURES=1`
/// (set by `.ci/run`), where it fails.
public enum Fixtures {
    public static var root: URL {
        if let p = ProcessInfo.processInfo.environment["ISFGAN_FIXTURES"] {
            return URL(fileURLWithPath: p)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures")
    }

    /// The package root, found from this source file's path.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    public static var required: Bool {
        ProcessInfo.processInfo.environment["ISFGAN_REQUIRE_FIXTURES"] == "1"
    }

    /// The URL of a fixture file, or a skip (a failure when fixtures are required).
    public static func url(_ relative: String, file: StaticString = #filePath, line: UInt = #line)
        throws -> URL
    {
        let u = root.appendingPathComponent(relative)
        if FileManager.default.fileExists(atPath: u.path) { return u }
        if required {
            XCTFail(
                "fixture \(u.path) is missing (ISFGAN_REQUIRE_FIXTURES=1)", file: file, line: line)
            throw XCTSkip("fixture missing")
        }
        throw XCTSkip("fixture \(u.path) is missing; skipping (set ISFGAN_FIXTURES to its folder)")
    }
}

/// A scratch folder for one test, removed by the caller's `addTeardownBlock` or left in /tmp.
public func temporaryDirectory(_ name: String = "isfgan-test") -> URL {
    let u = FileManager.default.temporaryDirectory
        .appendingPathComponent("\(name)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// Largest absolute difference between two tensors of one shape.
public func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "shapes \(a.shape) and \(b.shape) differ")
    var m: Float = 0
    for (x, y) in zip(a.scalars, b.scalars) {
        let d = abs(x - y)
        if d.isNaN { return .nan }
        m = max(m, d)
    }
    return m
}

/// Asserts `|a − b| ≤ atol + rtol·|b|` elementwise, reporting the worst element.
public func assertClose(
    _ a: Tensor, _ b: Tensor, atol: Float = 1e-5, rtol: Float = 1e-5, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard a.shape == b.shape else {
        XCTFail("\(message) shapes differ: \(a.shape) vs \(b.shape)", file: file, line: line)
        return
    }
    let x = a.scalars, y = b.scalars
    var worst = -1
    var worstExcess: Float = 0
    for i in x.indices {
        let excess = abs(x[i] - y[i]) - (atol + rtol * abs(y[i]))
        if excess > worstExcess || x[i].isNaN != y[i].isNaN {
            worstExcess = x[i].isNaN != y[i].isNaN ? .infinity : excess
            worst = i
        }
    }
    if worst >= 0 {
        XCTFail(
            "\(message) element \(worst): \(x[worst]) vs \(y[worst]) "
                + "(atol \(atol), rtol \(rtol); max |diff| \(maxAbsDifference(a, b)))",
            file: file, line: line)
    }
}

/// Checks the gradients of `f` (a scalar function of `inputs`) against central finite
/// differences.
///
/// `f` is evaluated in float32, so the step `eps` trades truncation error (∝ eps²) against
/// rounding (∝ 1e-7·|f|/eps); with inputs of order one, eps = 1e-2 and a tolerance of
/// about 1e-2 relative is what float32 allows. Pass `reference` (the same function in
/// Double) to difference in double precision instead, which allows far tighter tolerances.
public func checkGradients(
    _ inputs: [Tensor], eps: Double = 1e-2, atol: Float = 1e-3, rtol: Float = 1e-2,
    reference: (([[Double]]) -> Double)? = nil,
    file: StaticString = #filePath, line: UInt = #line,
    _ f: ([Tensor]) -> Tensor
) {
    let leaves = inputs.map { $0.contiguous().detached().requiringGrad() }
    let out = f(leaves)
    XCTAssertEqual(
        out.count, 1, "checkGradients: f must return one element", file: file, line: line)
    let analytic = Tensor.gradients(of: out, withRespectTo: leaves)
    for (k, x) in inputs.enumerated() {
        var numeric = [Float](repeating: 0, count: x.count)
        let base = x.contiguous().scalars
        for i in 0..<x.count {
            func value(_ delta: Double) -> Double {
                if let reference {
                    var all = inputs.map { $0.contiguous().scalars.map(Double.init) }
                    all[k][i] += delta
                    return reference(all)
                }
                var moved = base
                moved[i] = Float(Double(base[i]) + delta)
                var args = inputs
                args[k] = Tensor(shape: x.shape, moved)
                return Double(f(args).item)
            }
            numeric[i] = Float((value(eps) - value(-eps)) / (2 * eps))
        }
        assertClose(
            analytic[k], Tensor(shape: x.shape, numeric), atol: atol, rtol: rtol,
            "gradient of input \(k)", file: file, line: line)
    }
}

/// Checks second derivatives: differentiates `g(x) = sum(seed · ∂f/∂x)` (built with
/// `createGraph: true`) against finite differences of the first gradients.
public func checkSecondOrder(
    _ inputs: [Tensor], eps: Double = 1e-2, atol: Float = 2e-3, rtol: Float = 2e-2,
    file: StaticString = #filePath, line: UInt = #line,
    _ f: ([Tensor]) -> Tensor
) {
    let seeds = inputs.enumerated().map {
        Tensor.randn($0.element.shape, seed: 99 + UInt64($0.offset))
    }
    func inner(_ xs: [Tensor]) -> Tensor {
        let leaves = xs.map { $0.requiresGrad ? $0 : $0.requiringGrad() }
        let out = f(leaves)
        let grads = Tensor.gradients(of: out, withRespectTo: leaves, createGraph: true)
        var total = (grads[0] * seeds[0]).sum()
        for i in 1..<grads.count { total = total + (grads[i] * seeds[i]).sum() }
        return total
    }
    checkGradients(inputs, eps: eps, atol: atol, rtol: rtol, file: file, line: line, inner)
}
