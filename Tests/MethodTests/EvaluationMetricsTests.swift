import Foundation
import TensorCore
import XCTest

@testable import Method

/// The arithmetic of `isfgan eval` on small cases worked out by hand: pair counting,
/// diversity, the symmetric eigensolver and matrix square root, feature moments, the
/// Fréchet distance and mean ± std.
final class EvaluationMetricsTests: XCTestCase {
    func testPairCountsAndTheOfficialRule() {
        XCTAssertEqual(DiversityPairs.distinct.pairs(styles: 10).count, 45)
        XCTAssertEqual(DiversityPairs.official.pairs(styles: 10).count, 54)
        XCTAssertEqual(DiversityPairs.official.pairs(styles: 10).filter { $0.0 == $0.1 }.count, 9)
        XCTAssertTrue(DiversityPairs.distinct.pairs(styles: 10).allSatisfy { $0.0 < $0.1 })
        XCTAssertEqual(
            DiversityPairs.distinct.pairs(styles: 3).map { [$0.0, $0.1] },
            [[0, 1], [0, 2], [1, 2]])
        // i in 0..<2, j in i..<3: (0,0) (0,1) (0,2) (1,1) (1,2).
        XCTAssertEqual(
            DiversityPairs.official.pairs(styles: 3).map { [$0.0, $0.1] },
            [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2]])
        XCTAssertTrue(DiversityPairs.distinct.pairs(styles: 1).isEmpty)
    }

    func testDiversityByHand() throws {
        // Three styles on a line at 0, 1, 3 with distance |a − b|: pairs 1, 3, 2.
        let at: [Double] = [0, 1, 3]
        let distance = { (i: Int, j: Int) in abs(at[i] - at[j]) }
        XCTAssertEqual(
            try XCTUnwrap(Diversity.mean(styles: 3, rule: .distinct, distance: distance)),
            2, accuracy: 1e-12)
        // Official rule: the same sum 6 over 5 pairs (two of them self-pairs).
        XCTAssertEqual(
            try XCTUnwrap(Diversity.mean(styles: 3, rule: .official, distance: distance)),
            1.2, accuracy: 1e-12)
        let both = try XCTUnwrap(Diversity.both(distinctPairDistances: [1, 3, 2], styles: 3))
        XCTAssertEqual(both.distinct, 2, accuracy: 1e-12)
        XCTAssertEqual(both.official, 1.2, accuracy: 1e-12)

        // Ten styles with every distinct distance 1: 45 pairs give 1, the official
        // figure 45/54.
        let ten = try XCTUnwrap(
            Diversity.both(distinctPairDistances: [Double](repeating: 1, count: 45), styles: 10))
        XCTAssertEqual(ten.distinct, 1, accuracy: 1e-12)
        XCTAssertEqual(ten.official, 45.0 / 54.0, accuracy: 1e-12)
        XCTAssertEqual(
            try XCTUnwrap(Diversity.mean(styles: 10, rule: .official) { _, _ in 1 }),
            45.0 / 54.0, accuracy: 1e-12)
        XCTAssertNil(Diversity.both(distinctPairDistances: [], styles: 1))
    }

    func testEigenOfKnownMatrices() {
        // [[2, 1], [1, 2]]: eigenvalues 1 and 3, vectors (1, −1)/√2 and (1, 1)/√2.
        let e = SymmetricEigen([2, 1, 1, 2], order: 2)
        XCTAssertEqual(e.values[0], 1, accuracy: 1e-14)
        XCTAssertEqual(e.values[1], 3, accuracy: 1e-14)
        XCTAssertEqual(abs(e.vectors[2]), 0.5.squareRoot(), accuracy: 1e-14)
        XCTAssertEqual(e.vectors[2], e.vectors[3], accuracy: 1e-14)
        XCTAssertEqual(e.vectors[0], -e.vectors[1], accuracy: 1e-14)

        // A diagonal matrix: its diagonal, sorted, with unit vectors.
        let d = SymmetricEigen([3, 0, 0, 0, -1, 0, 0, 0, 2], order: 3)
        XCTAssertEqual(d.values, [-1, 2, 3])
        XCTAssertEqual(d.vectors.map(abs), [0, 1, 0, 0, 0, 1, 1, 0, 0])

        // Q diag(1…n) Qᵀ with the Householder reflection Q = I − 2vvᵀ/|v|²: eigenvalues
        // 1…n exactly (to rounding), whatever v.
        let n = 40
        let v = (0..<n).map { Double($0 % 7) - 2.5 }
        let vv = v.reduce(0) { $0 + $1 * $1 }
        var q = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n { q[i * n + j] = (i == j ? 1 : 0) - 2 * v[i] * v[j] / vv }
        }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += q[i * n + k] * Double(k + 1) * q[j * n + k] }
                a[i * n + j] = s
            }
        }
        let big = SymmetricEigen(a, order: n)
        for k in 0..<n { XCTAssertEqual(big.values[k], Double(k + 1), accuracy: 1e-11) }
        // A = V diag(λ) Vᵀ and V is orthogonal.
        let back = big.reconstructed { $0 }
        for i in 0..<(n * n) { XCTAssertEqual(back[i], a[i], accuracy: 1e-11) }
        let vt = big.vectors
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += vt[i * n + k] * vt[j * n + k] }
                XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
    }

    func testEigenOfARandomSymmetricMatrix() {
        // Indefinite, with a repeated block: A = V diag(λ) Vᵀ, V orthogonal, λ ascending.
        let n = 30
        var g = RandomGenerator(seed: 8)
        let r = g.normal([n, n]).scalars.map(Double.init)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { a[i * n + j] = r[i * n + j] + r[j * n + i] } }
        for i in 0..<5 { for j in 0..<5 { a[i * n + j] = i == j ? 2 : 0 } }
        let e = SymmetricEigen(a, order: n)
        XCTAssertEqual(e.values, e.values.sorted())
        XCTAssertLessThan(e.values[0], 0)
        let back = e.reconstructed { $0 }
        for i in 0..<(n * n) { XCTAssertEqual(back[i], a[i], accuracy: 1e-11) }
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += e.vectors[i * n + k] * e.vectors[j * n + k] }
                XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
        // The trace is the sum of the eigenvalues.
        let trace = (0..<n).reduce(0.0) { $0 + a[$1 * n + $1] }
        XCTAssertEqual(e.values.reduce(0, +), trace, accuracy: 1e-10)
    }

    func testEigenOfARankDeficientGradedMatrix() {
        // A = B Bᵀ with B [80, 10] of entries ~1000 (what S Σ S is for a Fréchet distance
        // over fewer images than features): 10 eigenvalues ~1e8, 70 zeros. The zeros must
        // not stall the QL iteration (they did with a test relative to neighbours only).
        let (n, r) = (80, 10)
        var g = RandomGenerator(seed: 17)
        let b = (g.normal([n, r]) * 1000).scalars.map(Double.init)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n { for k in 0..<r { a[i * n + j] += b[i * r + k] * b[j * r + k] } }
        }
        let e = SymmetricEigen(a, order: n)
        let scale = a.map(abs).max()!
        let back = e.reconstructed { $0 }
        for i in 0..<(n * n) { XCTAssertEqual(back[i], a[i], accuracy: 1e-12 * scale) }
        XCTAssertEqual(e.values.filter { $0 > e.roundingLevel }.count, r)
        // tr √A = Σ √λ(BᵀB), from the small well-conditioned Gram matrix.
        var small = [Double](repeating: 0, count: r * r)
        for i in 0..<r {
            for j in 0..<r { for k in 0..<n { small[i * r + j] += b[k * r + i] * b[k * r + j] } }
        }
        let want = SymmetricEigen(small, order: r).values.reduce(0) { $0 + $1.squareRoot() }
        XCTAssertEqual(e.traceOfSquareRoot, want, accuracy: 1e-9 * want)
    }

    func testSquareRoot() {
        // √[[2, 1], [1, 2]] = ½ [[√3 + 1, √3 − 1], [√3 − 1, √3 + 1]].
        let r = SymmetricEigen.squareRoot([2, 1, 1, 2], order: 2)
        let s3 = 3.0.squareRoot()
        let want = [(s3 + 1) / 2, (s3 - 1) / 2, (s3 - 1) / 2, (s3 + 1) / 2]
        for i in 0..<4 { XCTAssertEqual(r[i], want[i], accuracy: 1e-14) }
        // A singular covariance: [[1, 1], [1, 1]] = 2·uuᵀ, root √2·uuᵀ = [[1, 1], [1, 1]]/√2.
        let s = SymmetricEigen.squareRoot([1, 1, 1, 1], order: 2)
        for x in s { XCTAssertEqual(x, 0.5.squareRoot(), accuracy: 1e-14) }
        // Squared back on a random covariance.
        var g = RandomGenerator(seed: 4)
        let x = g.normal([30, 6]).scalars.map(Double.init)
        var c = [Double](repeating: 0, count: 36)
        for i in 0..<6 {
            for j in 0..<6 { for k in 0..<30 { c[i * 6 + j] += x[k * 6 + i] * x[k * 6 + j] / 30 } }
        }
        let root = SymmetricEigen.squareRoot(c, order: 6)
        let squared = SquareMatrix.product(root, root, order: 6)
        for i in 0..<36 { XCTAssertEqual(squared[i], c[i], accuracy: 1e-12) }
    }

    func testFeatureMomentsByHand() {
        // Rows (1, 2), (3, 2), (2, 5): mean (2, 3); unbiased covariance
        // [[1, 0], [0, 3]] (deviations (−1, −1), (1, −1), (0, 2)).
        var m = FeatureMoments(width: 2)
        m.add(Tensor(shape: [2, 2], [1, 2, 3, 2]))
        var other = FeatureMoments(width: 2)
        other.add(Tensor(shape: [1, 2], [2, 5]))
        m.merge(other)
        XCTAssertEqual(m.count, 3)
        XCTAssertEqual(m.mean, [2, 3])
        let c = m.covariance
        for (got, want) in zip(c, [1.0, 0, 0, 3]) { XCTAssertEqual(got, want, accuracy: 1e-12) }
    }

    func testFeatureMomentsKeepASmallSpreadOnALargeMean() {
        // Features 1000 + N(0, 0.01²·I) (as spatial means of a trunk can be: large and
        // close together): the covariance must match a two-pass computation, not drown in
        // the cancellation of Σ x xᵀ − N m mᵀ, and merging must not matter.
        var g = RandomGenerator(seed: 3)
        let x = g.normal([300, 3], std: 0.01) + 1000  // [300, 3]
        var whole = FeatureMoments(width: 3)
        var first = FeatureMoments(width: 3), second = FeatureMoments(width: 3)
        for lo in stride(from: 0, to: 300, by: 50) { whole.add(x.slice(0, lo..<(lo + 50))) }
        first.add(x.slice(0, 0..<120))
        second.add(x.slice(0, 120..<300) + 0)
        first.merge(second)
        let v = x.scalars.map(Double.init)
        let mean = (0..<3).map { j in (0..<300).reduce(0.0) { $0 + v[$1 * 3 + j] } / 300 }
        for m in [whole, first] {
            for j in 0..<3 { XCTAssertEqual(m.mean[j], mean[j], accuracy: 1e-9) }
            let c = m.covariance
            for j in 0..<3 {
                for k in 0..<3 {
                    var s = 0.0
                    for i in 0..<300 { s += (v[i * 3 + j] - mean[j]) * (v[i * 3 + k] - mean[k]) }
                    XCTAssertEqual(c[j * 3 + k], s / 299, accuracy: 1e-12)
                }
            }
        }
        // Identical sets: distance 0 to rounding, never below.
        let fd = FrechetReference(whole).distance(to: first)
        XCTAssertEqual(fd, 0, accuracy: 1e-9)
    }

    func testFrechetDistanceKnownCases() {
        // Equal Gaussians: 0.
        let c = [2.0, 1, 1, 2]
        XCTAssertEqual(
            FrechetReference.distance(mean: [1, 2], covariance: c, mean: [1, 2], covariance: c),
            0, accuracy: 1e-12)
        // Σ₁ = I, Σ₂ = [[2, 1], [1, 2]], μ apart by (3, 4): 25 + 2 + 4 − 2(√3 + 1).
        let d1 = FrechetReference.distance(
            mean: [0, 0], covariance: [1, 0, 0, 1], mean: [3, 4], covariance: c)
        XCTAssertEqual(d1, 25 + 6 - 2 * (3.0.squareRoot() + 1), accuracy: 1e-12)
        // Commuting diagonal covariances: Σ (√a − √b)².
        let d2 = FrechetReference.distance(
            mean: [0, 0, 0], covariance: [4, 0, 0, 0, 9, 0, 0, 0, 1], mean: [0, 0, 0],
            covariance: [1, 0, 0, 0, 1, 0, 0, 0, 16])
        XCTAssertEqual(d2, 1 + 4 + 9, accuracy: 1e-12)
        // Non-commuting: Σ₁ = [[2, 1], [1, 2]], Σ₂ = diag(1, 0); Σ₁Σ₂ = [[2, 0], [1, 0]] has
        // eigenvalues 2 and 0, so tr √(Σ₁Σ₂) = √2 and FD = 4 + 1 − 2√2. Symmetric in the
        // two arguments.
        let d3 = FrechetReference.distance(
            mean: [0, 0], covariance: c, mean: [0, 0], covariance: [1, 0, 0, 0])
        XCTAssertEqual(d3, 5 - 2 * 2.0.squareRoot(), accuracy: 1e-12)
        let d4 = FrechetReference.distance(
            mean: [0, 0], covariance: [1, 0, 0, 0], mean: [0, 0], covariance: c)
        XCTAssertEqual(d4, d3, accuracy: 1e-12)

        // From moments: the same as the formula on their mean and covariance.
        var a = FeatureMoments(width: 2), b = FeatureMoments(width: 2)
        a.add(Tensor(shape: [3, 2], [1, 2, 3, 2, 2, 5]))  // mean (2, 3), cov diag(1, 3)
        b.add(Tensor(shape: [2, 2], [0, 0, 2, 0]))  // mean (1, 0), cov diag(2, 0)
        let fd = FrechetReference(a).distance(to: b)
        // 1 + 9 + (1 + 3 + 2 + 0) − 2·√(1·2) (the second axis contributes √(3·0) = 0).
        XCTAssertEqual(fd, 16 - 2 * 2.0.squareRoot(), accuracy: 1e-9)
    }

    func testMeanStd() throws {
        let m = try XCTUnwrap(MeanStd([1, 2, 3, 4]))
        XCTAssertEqual(m.mean, 2.5)
        XCTAssertEqual(m.std, (5.0 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(MeanStd([7])).std, 0)
        XCTAssertNil(MeanStd([]))
    }
}
