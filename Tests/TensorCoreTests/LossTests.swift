import Foundation
import TensorCore
import TestSupport
import XCTest

/// Losses and softmax against Double formulas and hand-computed values.
final class LossTests: XCTestCase {
    /// PyTorch's per-element BCE-with-logits in Double, through log1p for stability.
    func bce(_ x: Double, _ y: Double, _ pw: Double) -> Double {
        let softplusNeg = max(-x, 0) + log1p(exp(-abs(x)))
        return (1 - y) * x + (1 + (pw - 1) * y) * softplusNeg
    }

    /// Forward against the Double formula (float32 softplus: 1e-6 relative), including
    /// logits far beyond where σ rounds to 0 or 1, and the per-class `posWeight`.
    func testBinaryCrossEntropyWithLogits() {
        let logits = Tensor(shape: [2, 3], [-120, -3, 0.5, 2, 40, 0])
        let targets = Tensor(shape: [2, 3], [1, 0, 1, 0.25, 0, 1])
        let posWeight = Tensor(shape: [3], [2, 0.5, 3])
        let l = doubles(logits), t = doubles(targets), p = doubles(posWeight)
        let each = (0..<6).map { bce(l[$0], t[$0], p[$0 % 3]) }
        let got = Loss.binaryCrossEntropyWithLogits(
            logits, targets: targets, posWeight: posWeight, reduction: .none)
        assertClose(got, Tensor(shape: [2, 3], doubles: each), atol: 1e-6, rtol: 1e-6)
        XCTAssertTrue(got.scalars.allSatisfy(\.isFinite))
        let mean = Loss.binaryCrossEntropyWithLogits(logits, targets: targets, posWeight: posWeight)
        XCTAssertEqual(Double(mean.item), each.reduce(0, +) / 6, accuracy: 1e-4)
        let sum = Loss.binaryCrossEntropyWithLogits(logits, targets: targets, reduction: .sum)
        let plain = (0..<6).map { bce(l[$0], t[$0], 1) }.reduce(0, +)
        XCTAssertEqual(Double(sum.item), plain, accuracy: 1e-4)
        // Hand value: x = 0, y = 1 → log 2.
        let half = Loss.binaryCrossEntropyWithLogits(
            Tensor(shape: [1], [0]), targets: Tensor(shape: [1], [1]))
        XCTAssertEqual(half.item, Float(M_LN2), accuracy: 1e-7)
    }

    /// Gradients against Double differences (step 1e-3; the loss is smooth): 1e-5.
    func testBinaryCrossEntropyWithLogitsGradients() {
        let logits = randomTensor([3, 4], seed: 60, scale: 2)
        let targets = Tensor.rand([3, 4], seed: 61)
        let posWeight = Tensor(shape: [4], [1, 2, 0.5, 4])
        let t = doubles(targets), p = doubles(posWeight)
        checkGradients(
            [logits], eps: 1e-3, atol: 1e-5, rtol: 1e-4,
            reference: { all in
                all[0].indices.reduce(0) { $0 + self.bce(all[0][$1], t[$1], p[$1 % 4]) } / 12
            }
        ) { xs in Loss.binaryCrossEntropyWithLogits(xs[0], targets: targets, posWeight: posWeight) }
        checkSecondOrder([logits]) { xs in
            Loss.binaryCrossEntropyWithLogits(xs[0], targets: targets, posWeight: posWeight)
        }
    }

    func testBinaryCrossEntropyOnProbabilities() {
        let p = Tensor(shape: [3], [0.25, 0.5, 1])
        let y = Tensor(shape: [3], [1, 0, 0])
        let got = Loss.binaryCrossEntropy(p, targets: y, reduction: .none).scalars
        XCTAssertEqual(got[0], -Float(log(0.25)), accuracy: 1e-6)
        XCTAssertEqual(got[1], -Float(log(0.5)), accuracy: 1e-6)
        XCTAssertEqual(got[2], 100, "log(0) clamps at −100 as PyTorch")
    }

    func testL1AndMSE() {
        let a = Tensor(shape: [2, 2], [1, -2, 3, 0.5])
        let b = Tensor(shape: [2, 2], [0, 1, 3, -0.5])
        XCTAssertEqual(Loss.l1(a, b).item, (1 + 3 + 0 + 1) / 4)
        XCTAssertEqual(Loss.mse(a, b).item, (1 + 9 + 0 + 1) / 4)
        XCTAssertEqual(Loss.mse(a, b, reduction: .sum).item, 11)
        XCTAssertEqual(Loss.l1(a, b, reduction: .none).scalars, [1, 3, 0, 1])
        let x = awayFromZero([3, 3], seed: 62), target = Tensor.zeros([3, 3])
        checkGradients([x]) { xs in Loss.l1(xs[0], target) + Loss.mse(xs[0], target) }
    }

    /// Softmax rows sum to one and survive logits of 1000 (no overflow); log-softmax
    /// equals the log of softmax; both match Double within 1e-6.
    func testSoftmaxAndLogSoftmax() {
        let x = Tensor(shape: [2, 3], [1, 2, 3, 1000, 1000, 990])
        let s = x.softmax(axis: 1)
        let ls = x.logSoftmax(axis: -1)
        var want: [Double] = []
        for r in 0..<2 {
            let row = (0..<3).map { Double(x.scalars[r * 3 + $0]) }
            let m = row.max()!
            let z = row.reduce(0) { $0 + exp($1 - m) }
            want += row.map { $0 - m - log(z) }
        }
        assertClose(ls, Tensor(shape: [2, 3], doubles: want), atol: 1e-6, rtol: 1e-6)
        assertClose(s, Tensor(shape: [2, 3], doubles: want.map(exp)), atol: 1e-6, rtol: 1e-6)
        assertClose(s.sum(axes: [1]), Tensor.ones([2]), atol: 1e-6, rtol: 0)

        let v = randomTensor([2, 5], seed: 63)
        let w = randomTensor([2, 5], seed: 64)
        checkGradients([v]) { xs in (xs[0].softmax(axis: 1) * w).sum() }
        checkGradients([v]) { xs in (xs[0].logSoftmax(axis: 0) * w).sum() }
        checkSecondOrder([v]) { xs in (xs[0].logSoftmax(axis: 1) * w).sum() }
    }
}
