import Foundation
import TensorCore
import TestSupport
import XCTest

/// The Philox generator: reproducible for a seed whatever the thread count, and with the
/// right distribution.
final class RandomTests: XCTestCase {
    /// 200 000 numbers are split over both threads (4 096 blocks of 4 per piece).
    func testSameSeedSameNumbersForAnyThreadCount() {
        let one = withThreads(1) { Tensor.randn([200_000], seed: 7) }
        let two = withThreads(2) { Tensor.randn([200_000], seed: 7) }
        assertBitIdentical(one, two, "normal")
        let u1 = withThreads(1) { Tensor.rand([100_003], seed: 8) }
        let u2 = withThreads(2) { Tensor.rand([100_003], seed: 8) }
        assertBitIdentical(u1, u2, "uniform")
        XCTAssertNotEqual(Tensor.randn([8], seed: 7).scalars, Tensor.randn([8], seed: 9).scalars)
    }

    /// A generator's position makes consecutive draws continue the stream: two draws of
    /// 8 equal one draw of 16 (8 is a whole number of 4-word blocks).
    func testPositionContinuesTheStream() {
        var g = RandomGenerator(seed: 3)
        let a = g.normal([8]), b = g.normal([8])
        XCTAssertEqual(g.position, 4)
        XCTAssertEqual(a.scalars + b.scalars, Tensor.randn([16], seed: 3).scalars)
        var h = RandomGenerator(seed: 3, position: 2)
        XCTAssertEqual(h.normal([8]).scalars, b.scalars)
    }

    /// Mean and standard deviation of 2²⁰ normal draws within 5 standard errors
    /// (SE of the mean 1/1024 ≈ 1e-3; of the std ≈ 1/√(2n) ≈ 7e-4), and the same for
    /// uniform numbers (mean 1/2, std 1/√12); uniforms stay in [0, 1).
    func testDistributions() {
        let n = 1 << 20
        let z = doubles(Tensor.randn([n], seed: 11))
        let mean = z.reduce(0, +) / Double(n)
        let std = (z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 5e-3)
        XCTAssertEqual(std, 1, accuracy: 3.5e-3)
        XCTAssertTrue(z.allSatisfy(\.isFinite))
        // Tails: about 0.27 % of normals fall beyond 3σ (binomial SE ≈ 5e-5).
        let beyond3 = Double(z.filter { abs($0) > 3 }.count) / Double(n)
        XCTAssertEqual(beyond3, 0.0027, accuracy: 3e-4)

        let u = doubles(Tensor.rand([n], seed: 12))
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        let um = u.reduce(0, +) / Double(n)
        XCTAssertEqual(um, 0.5, accuracy: 5 * (1 / 12.0).squareRoot() / 1024)
        var g = RandomGenerator(seed: 13)
        let scaled = doubles(g.normal([n], mean: 3, std: 0.5))
        XCTAssertEqual(scaled.reduce(0, +) / Double(n), 3, accuracy: 2.5e-3)
    }

    func testPermutationAndIntegers() {
        var g = RandomGenerator(seed: 21)
        let p = g.permutation(50)
        XCTAssertEqual(p.sorted(), Array(0..<50))
        XCTAssertNotEqual(p, Array(0..<50))
        var counts = [Int](repeating: 0, count: 4)
        for _ in 0..<4000 { counts[g.int(below: 4)] += 1 }
        // Each bucket 1000 ± 5·√(4000·¼·¾) ≈ ± 137.
        XCTAssertTrue(counts.allSatisfy { abs($0 - 1000) < 140 }, "\(counts)")
    }
}
