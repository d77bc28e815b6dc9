import Foundation
import TensorCore
import TestSupport
import XCTest

/// Elementwise ops: forward against Double math, backward against Double central
/// differences, broadcasting, strided views, empty tensors, and thread independence.
///
/// Tolerances: Foundation's float32 functions are within a few ulps, so forwards are
/// checked to 2e-6 relative (plus 1e-7 absolute near zero). Gradients are differenced in
/// Double with step 1e-4 (truncation ~1e-8 of O(1) derivatives); the analytic float32
/// gradient goes through two or three rounded ops, so 1e-5 absolute, 1e-4 relative.
final class ElementwiseTests: XCTestCase {
    struct Unary {
        let name: String
        let op: (Tensor) -> Tensor
        let reference: (Double) -> Double
        let input: Tensor
    }

    static let shape = [3, 5]
    static let anywhere = randomTensor(shape, seed: 70, scale: 2)
    static let positive = Tensor.rand(shape, seed: 71) * 2 + 0.5
    static let nonzero = awayFromZero(shape, seed: 72, gap: 0.1)

    static let unaryOps: [Unary] = [
        Unary(name: "neg", op: { -$0 }, reference: { -$0 }, input: anywhere),
        Unary(name: "exp", op: { $0.exp() }, reference: { exp($0) }, input: anywhere),
        Unary(name: "log", op: { $0.log() }, reference: { log($0) }, input: positive),
        Unary(name: "sqrt", op: { $0.sqrt() }, reference: { $0.squareRoot() }, input: positive),
        Unary(
            name: "rsqrt", op: { $0.rsqrt() }, reference: { 1 / $0.squareRoot() },
            input: positive),
        Unary(name: "abs", op: { $0.abs() }, reference: { abs($0) }, input: nonzero),
        Unary(name: "relu", op: { $0.relu() }, reference: { max($0, 0) }, input: nonzero),
        Unary(
            name: "leakyRelu 0.2", op: { $0.leakyRelu(slope: 0.2) },
            reference: { $0 > 0 ? $0 : 0.2 * $0 }, input: nonzero),
        Unary(
            name: "leakyRelu -1.5", op: { $0.leakyRelu(slope: -1.5) },
            reference: { $0 > 0 ? $0 : -1.5 * $0 }, input: nonzero),
        Unary(name: "tanh", op: { $0.tanh() }, reference: { tanh($0) }, input: anywhere),
        Unary(
            name: "sigmoid", op: { $0.sigmoid() }, reference: { 1 / (1 + exp(-$0)) },
            input: anywhere),
        Unary(
            name: "softplus", op: { $0.softplus() }, reference: { log1p(exp($0)) },
            input: anywhere),
        Unary(name: "pow 3", op: { $0.pow(3) }, reference: { pow($0, 3) }, input: anywhere),
        Unary(name: "squared", op: { $0.squared() }, reference: { $0 * $0 }, input: anywhere),
        Unary(
            name: "pow -1.5", op: { $0.pow(-1.5) }, reference: { pow($0, -1.5) },
            input: positive),
        Unary(
            name: "affine", op: { $0.affine(scale: -3, shift: 0.5) },
            reference: { -3 * $0 + 0.5 }, input: anywhere),
        Unary(
            name: "scalar ops", op: { (2 - $0) * 3 / 4 + 1 }, reference: { (2 - $0) * 0.75 + 1 },
            input: anywhere),
        Unary(name: "reciprocal", op: { 2 / $0 }, reference: { 2 / $0 }, input: nonzero),
        Unary(
            name: "clamp", op: { $0.clamped(min: -0.5, max: 1) },
            reference: { min(max($0, -0.5), 1) },
            input: Tensor(shape: shape, (0..<15).map { Float($0) * 0.21 - 1.6 })),
    ]

    func testUnaryForward() {
        for u in Self.unaryOps {
            let want = doubles(u.input).map(u.reference)
            assertClose(
                u.op(u.input), Tensor(shape: Self.shape, doubles: want), atol: 1e-7, rtol: 2e-6,
                u.name)
        }
    }

    func testUnaryGradients() {
        let w = randomTensor(Self.shape, seed: 73)
        let wd = doubles(w)
        for u in Self.unaryOps {
            checkGradients(
                [u.input], eps: 1e-4, atol: 1e-5, rtol: 1e-4,
                reference: { all in dot(wd, all[0].map(u.reference)) }
            ) { xs in (u.op(xs[0]) * w).sum() }
        }
    }

    /// Large inputs where naive formulas overflow or lose everything.
    func testStableAtExtremes() {
        let x = Tensor(shape: [4], [-100, -30, 30, 100])
        XCTAssertEqual(x.softplus().scalars[3], 100)
        XCTAssertEqual(x.softplus().scalars[0], 0, accuracy: 1e-30)
        let s = x.sigmoid().scalars
        XCTAssertEqual(s[0], 0, accuracy: 1e-40)
        XCTAssertEqual(Double(s[1]), exp(-30.0) / (1 + exp(-30.0)), accuracy: 1e-19)
        XCTAssertEqual([s[2], s[3]], [1, 1])
        XCTAssertEqual(x.tanh().scalars, [-1, -1, 1, 1])
    }

    struct Binary {
        let name: String
        let op: (Tensor, Tensor) -> Tensor
        let reference: (Double, Double) -> Double
    }

    static let binaryOps: [Binary] = [
        Binary(name: "add", op: { $0 + $1 }, reference: { $0 + $1 }),
        Binary(name: "sub", op: { $0 - $1 }, reference: { $0 - $1 }),
        Binary(name: "mul", op: { $0 * $1 }, reference: { $0 * $1 }),
        Binary(name: "div", op: { $0 / $1 }, reference: { $0 / $1 }),
        Binary(name: "maximum", op: { Tensor.maximum($0, $1) }, reference: { max($0, $1) }),
        Binary(name: "minimum", op: { Tensor.minimum($0, $1) }, reference: { min($0, $1) }),
        Binary(
            name: "lerp", op: { Tensor.lerp($0, $1, 0.3) },
            reference: { $0 + 0.3 * ($1 - $0) }),
    ]

    /// Every binary op over the broadcasting pairs (rank-changing, both sides expanding,
    /// scalars), forward and gradients for both operands.
    func testBinaryBroadcastingForwardAndGradients() {
        let pairs: [([Int], [Int], [Int])] = [
            ([3, 1, 4], [2, 4], [3, 2, 4]),
            ([3, 1], [1, 4], [3, 4]),
            ([], [2, 3], [2, 3]),
            ([2, 3], [1], [2, 3]),
            ([2, 3], [2, 3], [2, 3]),
        ]
        for (i, (sa, sb, so)) in pairs.enumerated() {
            let a = randomTensor(sa, seed: 80 + UInt64(i))
            let b = awayFromZero(sb, seed: 90 + UInt64(i), gap: 0.3)
            let w = randomTensor(so, seed: 100 + UInt64(i))
            let wd = doubles(w)
            for op in Self.binaryOps {
                let y = op.op(a, b)
                XCTAssertEqual(y.shape, so, "\(op.name) \(sa) \(sb)")
                let want = (0..<Shape.count(so)).map { j -> Double in
                    let idx = multiIndex(j, so)
                    return op.reference(
                        broadcastRead(doubles(a), sa, at: idx),
                        broadcastRead(doubles(b), sb, at: idx))
                }
                assertClose(y, Tensor(shape: so, doubles: want), atol: 1e-6, rtol: 1e-6, op.name)
                checkGradients(
                    [a, b], eps: 1e-4, atol: 1e-5, rtol: 1e-4,
                    reference: { all in
                        broadcastDot(
                            all[0], sa, all[1], sb, weights: wd, outShape: so, op.reference)
                    }
                ) { xs in (op.op(xs[0], xs[1]) * w).sum() }
            }
        }
    }

    /// Where the two arguments of maximum are equal each gets half of the gradient.
    func testMaximumTieSplitsGradient() {
        let a = Tensor(shape: [3], [1, 2, 3]).requiringGrad()
        let b = Tensor(shape: [3], [1, 5, 0]).requiringGrad()
        Tensor.maximum(a, b).sum().backward()
        XCTAssertEqual(a.grad?.scalars, [0.5, 0, 1])
        XCTAssertEqual(b.grad?.scalars, [0.5, 1, 0])
    }

    func testLerpWithTensorWeight() {
        let a = Tensor(shape: [2], [0, 10]), b = Tensor(shape: [2], [4, 20])
        let t = Tensor(shape: [2], [0.25, 0.5])
        XCTAssertEqual(Tensor.lerp(a, b, t).scalars, [1, 15])
    }

    /// Zero-size dims broadcast like any other (a 0 against a 1), and their gradients
    /// come back with the right (possibly empty) shapes.
    func testZeroSizeBroadcasting() {
        let empty = Tensor.zeros([0, 3]).requiringGrad()
        let row = Tensor.ones([1, 3]).requiringGrad()
        let y = empty * row + 1
        XCTAssertEqual(y.shape, [0, 3])
        XCTAssertEqual(y.scalars, [])
        let g = Tensor.gradients(of: y.sum(), withRespectTo: [empty, row])
        XCTAssertEqual(g[0].shape, [0, 3])
        XCTAssertEqual(g[1].shape, [1, 3])
        XCTAssertEqual(g[1].scalars, [0, 0, 0])
        XCTAssertEqual(y.sum().item, 0)
        XCTAssertEqual((Tensor.zeros([2, 0]) + Tensor.zeros([0])).shape, [2, 0])
        let literal = Tensor(shape: [0, 2], [])
        XCTAssertEqual(literal.exp().shape, [0, 2])
        XCTAssertEqual(literal.transposed().contiguous().shape, [2, 0])
    }

    /// A mismatch names the op and both shapes (a thrown `ShapeError` from
    /// `Shape.broadcast`, which the ops check before running).
    func testShapeMismatchErrorNamesOpAndShapes() {
        XCTAssertThrowsError(try Shape.broadcast([2, 3], [4], op: "mul")) { error in
            guard let e = error as? ShapeError else { return XCTFail("not a ShapeError: \(error)") }
            XCTAssertEqual(e.op, "mul")
            let text = "\(e)"
            XCTAssertTrue(text.contains("mul"), text)
            XCTAssertTrue(text.contains("[2, 3]"), text)
            XCTAssertTrue(text.contains("[4]"), text)
        }
        XCTAssertThrowsError(try Shape.broadcast([0, 3], [2, 3], op: "add"))
        XCTAssertEqual(try Shape.broadcast([], [2, 1], op: "add"), [2, 1])
        XCTAssertEqual(try Shape.broadcast([5, 1, 1], [1, 4, 1], op: "add"), [5, 4, 1])
    }

    /// Strided inputs (transposed, stepped slices, expanded) give the same values as their
    /// contiguous copies, bit for bit, and the same gradients.
    func testNonContiguousInputs() {
        let base = randomTensor([6, 8], seed: 110)
        let views: [(String, Tensor)] = [
            ("transposed", base.transposed()),
            ("stepped slice", base.slice(1, 1..<8, step: 3)),
            ("expanded", base.slice(0, 2..<3).expanded(to: [4, 8])),
            ("permuted 3-D", base.reshaped([2, 3, 8]).permute([2, 0, 1])),
        ]
        for (name, v) in views {
            XCTAssertFalse(v.isContiguous, name)
            let c = v.contiguous()
            assertBitIdentical(v.exp(), c.exp(), name)
            assertBitIdentical(v * v + 1, c * c + 1, name)
            let other = randomTensor(v.shape, seed: 111)
            assertBitIdentical(Tensor.maximum(v, other), Tensor.maximum(c, other), name)
        }
        // Gradients flow back through a view into the base's layout.
        checkGradients([base]) { xs in
            let t = xs[0].transposed()  // [8, 6]
            return (t.slice(0, 0..<8, step: 2) * t.slice(0, 1..<8, step: 2)).sum()
        }
    }

    /// Elementwise results are identical for 1 and 2 threads (large enough to split).
    func testThreadCountDoesNotChangeElementwiseResults() {
        let a = randomTensor([300, 1000], seed: 120)
        let b = randomTensor([1, 1000], seed: 121)
        func run() -> [Tensor] {
            [
                a.exp(), a * b, (a + b).leakyRelu(slope: 0.2), a.transposed().sigmoid(),
                a.softplus(),
                Tensor.lerp(a, a.transposed().transposed(), 0.3),
            ]
        }
        let one = withThreads(1) { run() }
        let two = withThreads(2) { run() }
        for (x, y) in zip(one, two) { assertBitIdentical(x, y, "threads 1 vs 2") }
    }
}
