import Foundation
import TensorCore
import TestSupport
import XCTest

/// Reductions over axis sets against a Double reference; gradients by Double central
/// differences; empty tensors; and agreement across thread counts.
///
/// Tolerances: float32 sums of n ≤ 60 O(1) terms round to ≲ n·2⁻²⁴ relative, so 1e-5;
/// gradients as in `ElementwiseTests` (step 1e-4 in Double; 1e-5 absolute, 1e-4 relative).
final class ReductionTests: XCTestCase {
    enum Kind { case sum, mean, max, min }

    /// Double reduction of `x` (row-major, `shape`) over `axes` (keepDims false).
    func reduceReference(_ x: [Double], _ shape: [Int], axes: [Int], _ kind: Kind) -> [Double] {
        let kept = (0..<shape.count).filter { !axes.contains($0) }
        let outShape = kept.map { shape[$0] }
        var groups = [[Double]](repeating: [], count: Shape.count(outShape))
        for i in x.indices {
            let idx = multiIndex(i, shape)
            var o = 0
            for d in kept { o = o * shape[d] + idx[d] }
            groups[o].append(x[i])
        }
        return groups.map { g in
            switch kind {
            case .sum: return g.reduce(0, +)
            case .mean: return g.reduce(0, +) / Double(g.count)
            case .max: return g.max()!
            case .min: return g.min()!
            }
        }
    }

    static let axisSets: [[Int]] = [[0], [1], [2], [0, 2], [1, 2], [0, 1, 2], [-1]]

    func testReductionsMatchReference() {
        let shape = [3, 4, 5]
        let x = randomTensor(shape, seed: 130)
        for axes in Self.axisSets {
            let norm = axes.map { $0 < 0 ? $0 + 3 : $0 }
            for (kind, op) in [
                (Kind.sum, { (t: Tensor, k: Bool) in t.sum(axes: axes, keepDims: k) }),
                (.mean, { $0.mean(axes: axes, keepDims: $1) }),
                (.max, { $0.max(axes: axes, keepDims: $1) }),
                (.min, { $0.min(axes: axes, keepDims: $1) }),
            ] {
                let want = reduceReference(doubles(x), shape, axes: norm, kind)
                let y = op(x, false)
                let outShape = (0..<3).filter { !norm.contains($0) }.map { shape[$0] }
                assertClose(
                    y, Tensor(shape: outShape, doubles: want), atol: 1e-5, rtol: 1e-5,
                    "\(kind) \(axes)")
                let kept = op(x, true)
                XCTAssertEqual(kept.shape, (0..<3).map { norm.contains($0) ? 1 : shape[$0] })
                XCTAssertEqual(kept.scalars, y.scalars)
            }
        }
        XCTAssertEqual(x.sum().shape, [])
    }

    func testReductionGradients() {
        let shape = [2, 3, 4]
        let x = randomTensor(shape, seed: 131)
        for axes in [[0], [1, 2], [0, 1, 2]] {
            let outShape = (0..<3).filter { !axes.contains($0) }.map { shape[$0] }
            let w = randomTensor(outShape, seed: 132)
            let wd = doubles(w)
            for kind in [Kind.sum, .mean, .max, .min] {
                checkGradients(
                    [x], eps: 1e-4, atol: 1e-5, rtol: 1e-4,
                    reference: { all in
                        dot(wd, self.reduceReference(all[0], shape, axes: axes, kind))
                    }
                ) { xs in
                    let y: Tensor
                    switch kind {
                    case .sum: y = xs[0].sum(axes: axes)
                    case .mean: y = xs[0].mean(axes: axes)
                    case .max: y = xs[0].max(axes: axes)
                    case .min: y = xs[0].min(axes: axes)
                    }
                    return (y * w).sum()
                }
            }
        }
    }

    /// Variance (unbiased and biased) and the norm against Double, with gradients.
    func testVarianceAndNorm() {
        let x = randomTensor([3, 6], seed: 133)
        let v = doubles(x)
        func rowStats(_ v: [Double], _ r: Int, unbiased: Bool) -> Double {
            let row = Array(v[(r * 6)..<(r * 6 + 6)])
            let m = row.reduce(0, +) / 6
            return row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (unbiased ? 5 : 6)
        }
        for unbiased in [true, false] {
            let want = (0..<3).map { rowStats(v, $0, unbiased: unbiased) }
            assertClose(
                x.variance(axes: [1], unbiased: unbiased), Tensor(shape: [3], doubles: want),
                atol: 1e-5, rtol: 1e-5)
            checkGradients(
                [x], eps: 1e-4, atol: 1e-5, rtol: 1e-4,
                reference: { all in
                    (0..<3).reduce(0) {
                        $0 + Double($1 + 1) * rowStats(all[0], $1, unbiased: unbiased)
                    }
                }
            ) { xs in
                (xs[0].variance(axes: [1], unbiased: unbiased) * Tensor(shape: [3], [1, 2, 3]))
                    .sum()
            }
        }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        XCTAssertEqual(Double(x.norm().item), norm, accuracy: 1e-5 * norm)
        checkGradients(
            [x], eps: 1e-4, atol: 1e-5, rtol: 1e-4,
            reference: { all in all[0].reduce(0) { $0 + $1 * $1 }.squareRoot() }
        ) { xs in xs[0].norm() }
    }

    /// Row norms over an axis, forward and backward; a zero row gets the subgradient 0, as in
    /// PyTorch, rather than 0/0; second order through the norm matches finite differences.
    func testNormOverAxisAndAtZero() {
        let x = Tensor(shape: [2, 3], [0, 0, 0, 3, 4, 12]).requiringGrad()
        let n = x.norm(axes: [1])  // [2]
        XCTAssertEqual(n.scalars, [0, 13])
        (n * Tensor(shape: [2], [1, 2])).sum().backward()
        let g = x.grad!.scalars
        XCTAssertEqual(Array(g[0..<3]), [0, 0, 0])
        for (a, b) in zip(g[3..<6], [6.0 / 13, 8.0 / 13, 24.0 / 13]) {
            XCTAssertEqual(Double(a), b, accuracy: 1e-6)
        }
        let y = Tensor(shape: [2, 2], [1, -2, 0.5, 3])
        checkSecondOrder([y]) { xs in
            xs[0].norm(axes: [1], keepDims: true).sum()
        }
    }

    /// Ties in max share the gradient equally (PyTorch's amax).
    func testMaxTiesShareGradient() {
        let x = Tensor(shape: [2, 3], [1, 4, 4, 2, 2, 2]).requiringGrad()
        x.max(axes: [1]).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [0, 0.5, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3])
    }

    /// summed(toShape:) undoes broadcasting: leading dims and size-1 dims.
    func testSummedToShape() {
        let x = Tensor.arange(0, 24).reshaped([2, 3, 4])
        // x[a, b, c] = 12a + 4b + c; summing a and c gives 32b + 60.
        XCTAssertEqual(x.summed(toShape: [3, 1]).scalars, [60, 92, 124])
        XCTAssertEqual(x.summed(toShape: [4]).shape, [4])
        XCTAssertEqual(x.summed(toShape: [2, 3, 4]).scalars, x.scalars)
    }

    /// Sums over empty axes are 0; reductions of empty tensors keep the other dims.
    func testZeroSizeReductions() {
        let empty = Tensor.zeros([0, 3])
        XCTAssertEqual(empty.sum(axes: [0]).scalars, [0, 0, 0])
        XCTAssertEqual(empty.sum(axes: [1]).shape, [0])
        XCTAssertEqual(empty.sum().item, 0)
        let leaf = empty.requiringGrad()
        XCTAssertEqual(Tensor.gradients(of: leaf.sum(), withRespectTo: [leaf])[0].shape, [0, 3])
    }

    /// Reductions of strided views equal those of their contiguous copies.
    func testNonContiguousReductions() {
        let base = randomTensor([5, 7, 3], seed: 134)
        let v = base.permute([2, 0, 1]).slice(2, 0..<7, step: 2)
        XCTAssertFalse(v.isContiguous)
        for axes in [[0], [1, 2], [2]] {
            assertBitIdentical(v.sum(axes: axes), v.contiguous().sum(axes: axes), "\(axes)")
            assertBitIdentical(v.max(axes: axes), v.contiguous().max(axes: axes), "\(axes)")
        }
    }

    /// Reductions agree to 1e-6 relative for 1 and 2 threads (the bound; blocks of
    /// fixed size actually make them identical).
    func testThreadCountReductionAgreement() {
        let x = randomTensor([64, 40_000], seed: 135)
        for axes in [[1], [0], [0, 1]] {
            let one = withThreads(1) { x.sum(axes: axes) }
            let two = withThreads(2) { x.sum(axes: axes) }
            // Sums near zero have no relative scale: 1e-6 of the summed magnitudes (≥ 50).
            assertClose(two, one, atol: 5e-5, rtol: 1e-6, "sum \(axes)")
            let m1 = withThreads(1) { x.max(axes: axes) }
            let m2 = withThreads(2) { x.max(axes: axes) }
            assertBitIdentical(m1, m2, "max \(axes)")
        }
    }
}
