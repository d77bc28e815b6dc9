import TensorCore
import TestSupport
import XCTest

/// Matrix product and linear layer: oneDNN sgemm against the plain loops, finite
/// differences (first and second order), thread-count independence.
///
/// Tolerances: sgemm and the loops sum K float32 products in different orders; with unit
/// normal inputs and K ≤ 64 the difference stays below about 1e-5·√K, so atol = rtol =
/// 1e-4 leaves headroom without hiding a wrong index (which gives O(1) errors).
final class MatmulTests: XCTestCase {
    func randn(_ shape: [Int], _ seed: UInt64) -> Tensor { Tensor.randn(shape, seed: seed) }

    func assertMatchesReference(
        _ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line
    ) {
        let fast = Tensor.matmul(a, b, implementation: .oneDNN)
        let slow = Tensor.matmul(a, b, implementation: .reference)
        assertClose(
            fast, slow, atol: 1e-4, rtol: 1e-4,
            "matmul \(a.shape) x \(b.shape)", file: file, line: line)
    }

    func testTwoDimensionalMatchesReference() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 4), (17, 33, 9), (64, 1, 7), (1, 40, 1)] {
            assertMatchesReference(randn([m, k], 1), randn([k, n], 2))
        }
    }

    func testTransposedAndStridedViewsMatchReference() {
        let a = randn([6, 5], 3), b = randn([4, 6], 4)
        // aᵀ [5, 6] · bᵀ [6, 4]: both read through sgemm's transpose flags.
        assertMatchesReference(a.transposed(), b.transposed())
        // Rows with a stride of 2 (no unit stride on the row side: sgemm uses ld).
        let big = randn([10, 5], 5)
        assertMatchesReference(big.slice(0, 0..<10, step: 2), randn([5, 3], 6))
        // Columns with a stride of 2: no unit stride at all, so the kernel copies.
        let wide = randn([4, 12], 7)
        assertMatchesReference(wide.slice(1, 0..<12, step: 2), randn([6, 3], 8))
        // Expected values written out by hand for one small case.
        let x = Tensor(shape: [2, 2], [1, 2, 3, 4])
        let y = Tensor(shape: [2, 2], [5, 6, 7, 8])
        XCTAssertEqual(Tensor.matmul(x, y).scalars, [19, 22, 43, 50])
        XCTAssertEqual(Tensor.matmul(x.transposed(), y).scalars, [26, 30, 38, 44])
    }

    func testBatchedAndBroadcastMatchesReference() {
        assertMatchesReference(randn([3, 4, 5], 10), randn([3, 5, 6], 11))
        // Shared right operand: folded into one sgemm.
        assertMatchesReference(randn([3, 4, 5], 12), randn([5, 6], 13))
        assertMatchesReference(randn([4, 5], 14), randn([2, 5, 3], 15))
        assertMatchesReference(randn([2, 1, 4, 5], 16), randn([3, 5, 2], 17))
        // Batched transposed view.
        assertMatchesReference(randn([2, 5, 4], 18).transposed(), randn([2, 5, 3], 19))
    }

    func testEmptyDimensions() {
        let zeroK = Tensor.matmul(randn([3, 0], 1), randn([0, 4], 2))
        XCTAssertEqual(zeroK.shape, [3, 4])
        XCTAssertEqual(zeroK.scalars, [Float](repeating: 0, count: 12), "K = 0 gives zeros")
        XCTAssertEqual(Tensor.matmul(randn([0, 3, 4], 1), randn([4, 2], 2)).shape, [0, 3, 2])
        XCTAssertEqual(Tensor.matmul(randn([0, 4], 1), randn([4, 2], 2)).shape, [0, 2])
    }

    func testShapeErrorNamesOpAndBothShapes() {
        XCTAssertThrowsError(try MatmulKernels.checkedShapes([2, 3], [4, 5])) { error in
            let text = "\(error)"
            XCTAssertTrue(
                text.contains("matmul") && text.contains("[2, 3]")
                    && text.contains("[4, 5]"), text)
        }
        XCTAssertThrowsError(try MatmulKernels.checkedShapes([2, 2, 3], [3, 3, 5]))
    }

    func testLinearMatchesPyTorchFormula() {
        let x = randn([2, 3, 5], 20), w = randn([4, 5], 21), b = randn([4], 22)
        let y = x.linear(w, bias: b)
        XCTAssertEqual(y.shape, [2, 3, 4])
        // F.linear(x, w, b) = x wᵀ + b, spelled out with the reference product.
        let expected =
            Tensor.matmul(x, w.transposed(), implementation: .reference)
            + b.reshaped([1, 1, 4])
        assertClose(y, expected, atol: 1e-4, rtol: 1e-4)
        assertClose(
            x.linear(w), Tensor.matmul(x, w.transposed(), implementation: .reference),
            atol: 1e-4, rtol: 1e-4)
        assertClose(y, x.linear(w, bias: b, implementation: .reference), atol: 1e-4, rtol: 1e-4)
    }

    /// f(a, b) = Σ r ⊙ (a·b)² in Double, for the finite-difference reference.
    static func squaredProductReference(
        _ a: [Double], _ b: [Double], _ r: [Double], batch: Int, m: Int, k: Int, n: Int
    ) -> Double {
        let c = MatmulReference.matmul(a, b, batch: batch, m: m, k: k, n: n)
        return zip(c, r).reduce(0) { $0 + $1.1 * $1.0 * $1.0 }
    }

    func testMatmulGradientsAgainstDoubleFiniteDifferences() {
        let a = randn([2, 3, 4], 30), b = randn([2, 4, 5], 31)
        let r = randn([2, 3, 5], 32)
        let rd = r.scalars.map(Double.init)
        // Differenced in Double, so only float32 rounding of the analytic gradient
        // (about 1e-6 relative) remains: 1e-4 is a wide margin.
        checkGradients(
            [a, b], eps: 1e-4, atol: 1e-4, rtol: 1e-4,
            reference: { xs in
                Self.squaredProductReference(xs[0], xs[1], rd, batch: 2, m: 3, k: 4, n: 5)
            }
        ) { xs in
            (Tensor.matmul(xs[0], xs[1]).squared() * r).sum()
        }
    }

    func testBroadcastMatmulGradientsSumOverBatch() {
        let a = randn([3, 2, 4], 33), b = randn([4, 3], 34)
        let r = randn([3, 2, 3], 35)
        let rd = r.scalars.map(Double.init)
        checkGradients(
            [a, b], eps: 1e-4, atol: 1e-4, rtol: 1e-4,
            reference: { xs in
                // The shared b, repeated for each batch entry.
                let bb = Array([[Double]](repeating: xs[1], count: 3).joined())
                return Self.squaredProductReference(xs[0], bb, rd, batch: 3, m: 2, k: 4, n: 3)
            }
        ) { xs in
            (Tensor.matmul(xs[0], xs[1]).squared() * r).sum()
        }
    }

    func testLinearGradientsAgainstDoubleFiniteDifferences() {
        let x = randn([3, 4], 40), w = randn([5, 4], 41), b = randn([5], 42)
        let r = randn([3, 5], 43)
        let rd = r.scalars.map(Double.init)
        checkGradients(
            [x, w, b], eps: 1e-4, atol: 1e-4, rtol: 1e-4,
            reference: { xs in
                var total = 0.0
                for i in 0..<3 {
                    for o in 0..<5 {
                        var y = xs[2][o]
                        for j in 0..<4 { y += xs[0][i * 4 + j] * xs[1][o * 4 + j] }
                        total += rd[i * 5 + o] * y * y
                    }
                }
                return total
            }
        ) { xs in
            (xs[0].linear(xs[1], bias: xs[2]).squared() * r).sum()
        }
    }

    func testMatmulSecondOrder() {
        let a = randn([2, 3], 50), b = randn([3, 4], 51)
        let r = randn([2, 4], 52)
        // float32 differences of first gradients with eps = 1e-2: the helper's default
        // tolerances (2e-3 absolute, 2e-2 relative) are what float32 allows.
        checkSecondOrder([a, b]) { xs in
            (Tensor.matmul(xs[0], xs[1]).squared() * r).sum()
        }
    }

    func testLinearSecondOrder() {
        let x = randn([2, 3], 53), w = randn([4, 3], 54), b = randn([4], 55)
        let r = randn([2, 4], 56)
        checkSecondOrder([x, w, b]) { xs in
            (xs[0].linear(xs[1], bias: xs[2]).squared() * r).sum()
        }
    }

    func testFrozenWeightGetsNoGradientWork() {
        let x = randn([3, 4], 60).requiringGrad()
        let w = randn([5, 4], 61)  // frozen: no record
        let y = x.linear(w).sum()
        let gx = Tensor.gradients(of: y, withRespectTo: [x])[0]
        // d/dx Σ x wᵀ = column sums of w broadcast over the rows.
        let expected = w.sum(axes: [0]).reshaped([1, 4]).expanded(to: [3, 4])
        assertClose(gx, expected, atol: 1e-5, rtol: 1e-5)
    }

    func testThreadCountDoesNotChangeResults() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let a = randn([200, 300], 70), b = randn([300, 150], 71)
        Threads.count = 1
        XCTAssertEqual(OneDNNStatus.threadCount, 1, "oneDNN follows Threads.count")
        let one = Tensor.matmul(a, b)
        Threads.count = 2
        XCTAssertEqual(OneDNNStatus.threadCount, 2, "oneDNN follows Threads.count")
        let two = Tensor.matmul(a, b)
        // 1e-6 of the largest magnitude: only the summation order may differ.
        let scale = two.abs().max().item
        XCTAssertLessThanOrEqual(maxAbsDifference(one, two), 1e-6 * scale)
    }
}
