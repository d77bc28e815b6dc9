import Formats
import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Method

/// The linear baseline: fitting separates a separable set, edits flip the boundary's
/// reading, conditional directions leave the other boundaries alone, files round-trip.
final class LinearBoundariesTests: XCTestCase {
    /// 200 codes [N, 2, 3] (6 numbers flattened); attribute 0 is the sign of
    /// x₀ + x₃ − 0.5 with a margin of 0.3 enforced (codes inside the margin are pushed
    /// out), attribute 1 the sign of x₁ − x₂, kept only outside a margin too. Imbalanced:
    /// attribute 0 is 1 for about a third of the codes.
    func separableSet() -> (codes: Tensor, labels: Tensor) {
        var g = RandomGenerator(seed: 12)
        var x = g.normal([200, 6]).scalars
        var labels: [Float] = []
        for i in 0..<200 {
            var s0 = x[i * 6] + x[i * 6 + 3] - 0.5
            if abs(s0) < 0.3 {
                let push = (s0 >= 0 ? 0.3 : -0.3) - s0
                x[i * 6] += push
                s0 += push
            }
            var s1 = x[i * 6 + 1] - x[i * 6 + 2]
            if abs(s1) < 0.3 {
                let push = (s1 >= 0 ? 0.3 : -0.3) - s1
                x[i * 6 + 1] += push
                s1 += push
            }
            labels += [s0 > 0 ? 1 : 0, s1 > 0 ? 1 : 0]
        }
        return (Tensor(shape: [200, 2, 3], x), Tensor(shape: [200, 2], labels))
    }

    func testFitSeparatesASeparableSetAndEditsFlipIt() throws {
        let (codes, labels) = separableSet()
        var options = LinearFitOptions()
        options.iterations = 2000
        let b = try LinearBoundaries.fit(
            codes: codes, labels: labels, attributes: ["a", "b"], options: options)
        XCTAssertEqual(b.codeShape, [2, 3])
        XCTAssertEqual(b.trainingAccuracy, [1, 1])
        let read = b.classify(codes)
        let truth = labels.scalars.map { Int($0) }
        XCTAssertEqual(read.flatMap { $0 }, truth, "every training code on its label's side")
        // Unit normals, close to the generating directions (x₀ + x₃)/√2 and (x₁ − x₂)/√2.
        let n = b.normals.scalars
        for a in 0..<2 {
            let row = Array(n[(a * 6)..<(a * 6 + 6)])
            XCTAssertEqual(row.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-5)
        }
        let cos0 = (n[0] + n[3]) / Float(2).squareRoot()
        let cos1 = (n[7] - n[8]) / Float(2).squareRoot()
        XCTAssertGreaterThan(cos0, 0.9)
        XCTAssertGreaterThan(cos1, 0.9)

        // Moving every code towards 1, then towards 0, by more than its distance to the
        // boundary flips the boundary's reading of attribute 0 for every code.
        let maxDistance = b.signedDistances(codes).abs().max().item
        for v in [1, 0] {
            let edited = b.edit(
                codes: codes, attribute: 0, values: [Int](repeating: v, count: 200),
                strength: maxDistance + 0.01)
            XCTAssertEqual(edited.shape, [200, 2, 3])
            XCTAssertTrue(b.classify(edited).allSatisfy { $0[0] == v })
            // The step is exactly strength along the unit normal.
            let moved = (edited - codes).reshaped([200, 6]).slice(0, 0..<1).scalars
            for k in 0..<6 {
                XCTAssertEqual(
                    moved[k], Float(v == 1 ? 1 : -1) * (maxDistance + 0.01) * n[k],
                    accuracy: 1e-5)
            }
        }
    }

    func testConditionalDirectionsKeepTheOtherBoundary() throws {
        let (codes, labels) = separableSet()
        var options = LinearFitOptions()
        options.conditional = true
        options.iterations = 300
        let b = try LinearBoundaries.fit(
            codes: codes, labels: labels, attributes: ["a", "b"], options: options)
        let u = try XCTUnwrap(b.directions).scalars
        let n = b.normals.scalars
        // u₀ ⟂ n₁ and u₁ ⟂ n₀, both unit.
        var d01: Float = 0, d10: Float = 0, l0: Float = 0
        for k in 0..<6 {
            d01 += u[k] * n[6 + k]
            d10 += u[6 + k] * n[k]
            l0 += u[k] * u[k]
        }
        XCTAssertEqual(d01, 0, accuracy: 1e-5)
        XCTAssertEqual(d10, 0, accuracy: 1e-5)
        XCTAssertEqual(l0, 1, accuracy: 1e-5)
        // So an edit of attribute 0 leaves every code's distance to boundary 1 unchanged.
        let before = b.signedDistances(codes).slice(1, 1..<2)
        let edited = b.edit(
            codes: codes, attribute: 0, values: [Int](repeating: 1, count: 200), strength: 3)
        assertClose(b.signedDistances(edited).slice(1, 1..<2), before, atol: 1e-4)
    }

    func testOneClassIsRefused() {
        let codes = Tensor.randn([10, 1, 4], seed: 1)
        XCTAssertThrowsError(
            try LinearBoundaries.fit(
                codes: codes, labels: Tensor.ones([10, 1]), attributes: ["old"])
        ) { error in
            XCTAssertTrue("\(error)".contains("'old' has only one class"), "\(error)")
        }
    }

    func testFileRoundTrip() throws {
        let (codes, labels) = separableSet()
        var options = LinearFitOptions()
        options.conditional = true
        options.iterations = 50
        let b = try LinearBoundaries.fit(
            codes: codes, labels: labels, attributes: ["a", "b"], options: options,
            generatorSHA256: String(repeating: "cd", count: 32))
        let dir = temporaryDirectory("linear")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("linear.safetensors")
        try b.write(to: url)
        let back = try LinearBoundaries.read(url)
        XCTAssertEqual(back.attributes, ["a", "b"])
        XCTAssertEqual(back.codeShape, [2, 3])
        XCTAssertEqual(back.normals.scalars, b.normals.scalars)
        XCTAssertEqual(back.offsets, b.offsets)
        XCTAssertEqual(back.directions?.scalars, b.directions?.scalars)
        XCTAssertEqual(back.generatorSHA256, b.generatorSHA256)
        XCTAssertEqual(back.options, options)
        XCTAssertEqual(back.samples, 200)

        // Another safetensors file is refused by name.
        let other = dir.appendingPathComponent("other.safetensors")
        try Safetensors.write([("x", Tensor.zeros([2]))], to: other)
        XCTAssertThrowsError(try LinearBoundaries.read(other)) { error in
            XCTAssertTrue("\(error)".contains("not a linear baseline file"), "\(error)")
        }
    }
}
