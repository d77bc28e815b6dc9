import Foundation
import TensorCore
import TestSupport
import XCTest

/// The tape: accumulation, zeroing, detach, inference mode, frozen inputs, and gradients
/// of gradients for the ops the R1 penalty needs (leaky ReLU, sums, products).
final class AutodiffTests: XCTestCase {
    func testBackwardAccumulatesUntilZeroed() {
        let x = Tensor(shape: [2], [1, 2]).requiringGrad()
        (x * x).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [2, 4])
        (x * 3).sum().backward()
        XCTAssertEqual(x.grad?.scalars, [5, 7])
        x.zeroGrad()
        XCTAssertNil(x.grad)
        x.sum().backward()
        XCTAssertEqual(x.grad?.scalars, [1, 1])
    }

    /// A value used twice collects both contributions (the tape adds, not overwrites).
    func testFanOutAddsContributions() {
        let x = Tensor(shape: [1], [3]).requiringGrad()
        let y = x * x * x + x.exp()  // dy/dx = 3x² + eˣ
        let g = Tensor.gradients(of: y.sum(), withRespectTo: [x])[0]
        XCTAssertEqual(Double(g.item), 27 + exp(3.0), accuracy: 1e-4)
    }

    func testDetachAndInferenceModeRecordNothing() {
        let x = Tensor(shape: [2], [1, 2]).requiringGrad()
        let y = (x.detached() * x).sum()  // only the second factor is differentiated
        XCTAssertEqual(Tensor.gradients(of: y, withRespectTo: [x])[0].scalars, [1, 2])
        let z = GradMode.withoutGradients { (x * x).sum() }
        XCTAssertFalse(z.requiresGrad)
        XCTAssertTrue(GradMode.isEnabled)
        // An input the output does not depend on gets zeros.
        let unrelated = Tensor.ones([3]).requiringGrad()
        XCTAssertEqual(Tensor.gradients(of: y, withRespectTo: [unrelated])[0].scalars, [0, 0, 0])
    }

    /// Asking for the gradient of the input only never asks a backward for the weight's
    /// (how the frozen generator's weight gradients are skipped).
    func testFrozenInputsAreNotDifferentiated() {
        let x = randomTensor([2, 3], seed: 150).requiringGrad()
        let w = randomTensor([2, 3], seed: 151).requiringGrad()
        var asked: [[Bool]] = []
        let product = x * w
        let probe = Tensor.recorded(product.detached(), op: "probe", inputs: [x, w]) { g, needs in
            asked.append(needs)
            return [needs[0] ? g * w : nil, needs[1] ? g * x : nil]
        }
        let g = Tensor.gradients(of: probe.sum(), withRespectTo: [x])[0]
        XCTAssertEqual(asked, [[true, false]])
        assertClose(g, w.detached(), atol: 0, rtol: 0)
        // A weight that never required gradients is not asked for either.
        let frozen = w.detached()
        let y = (x * frozen).leakyRelu(slope: 0.2).sum()
        XCTAssertEqual(Tensor.gradients(of: y, withRespectTo: [x])[0].shape, [2, 3])
    }

    /// d/dx of (d/dx Σx³)·v = 6x·v, by hand, through `createGraph`.
    func testGradientOfGradientByHand() {
        let x = Tensor(shape: [3], [1, -2, 0.5]).requiringGrad()
        let v = Tensor(shape: [3], [1, 2, 3])
        let g = Tensor.gradients(of: x.pow(3).sum(), withRespectTo: [x], createGraph: true)[0]
        XCTAssertTrue(g.requiresGrad)
        let h = Tensor.gradients(of: (g * v).sum(), withRespectTo: [x])[0]
        XCTAssertEqual(h.scalars, [6, -24, 9])
        // Without createGraph the gradient is a constant.
        let plain = Tensor.gradients(of: x.pow(3).sum(), withRespectTo: [x])[0]
        XCTAssertFalse(plain.requiresGrad)
    }

    /// Second derivatives (differentiated gradients against float differences of the
    /// first gradients, the default 2e-3/2e-2: step 1e-2 of smooth O(1) functions) for
    /// the ops in an R1 penalty: a leaky-ReLU layer with products and sums, its input
    /// gradient differentiated with respect to input and weight.
    func testSecondOrderLeakyReluProductsSums() {
        let x = awayFromZero([2, 4], seed: 152, gap: 0.3)
        let w = awayFromZero([1, 4], seed: 153, gap: 0.3)
        checkSecondOrder([x, w]) { xs in
            let h = (xs[0] * xs[1]).leakyRelu(slope: 0.2)  // [2, 4], never near the kink
            return (h * h * xs[1]).sum(axes: [1]).mean()
        }
        checkSecondOrder([x]) { xs in (xs[0].sum(axes: [0]) * xs[0].sum(axes: [0])).sum() }
        let d = awayFromZero([2, 4], seed: 154, gap: 0.5)
        checkSecondOrder([x, d]) { xs in (xs[0] / xs[1]).squared().mean() }
        checkSecondOrder([x]) { xs in (xs[0].tanh() * xs[0].sigmoid() + xs[0].softplus()).sum() }
    }

    /// The R1 shape of computation: penalty = ‖∂D(x)/∂x‖², then its gradient for the
    /// weights, against float differences of the penalty itself.
    func testR1StylePenaltyGradient() {
        let x = awayFromZero([2, 3], seed: 155, gap: 0.3)
        let w = awayFromZero([1, 3], seed: 156, gap: 0.3)
        checkGradients([w], atol: 2e-3, rtol: 2e-2) { ws in
            let leaf = x.requiringGrad()
            let d = ((leaf * ws[0]).leakyRelu(slope: 0.2) * ws[0]).sum()
            let g = Tensor.gradients(of: d, withRespectTo: [leaf], createGraph: true)[0]
            return g.squared().sum()
        }
    }
}
