import Layers
import TensorCore
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// Adam with β = (0, 0.99) and L2 weight decay, three steps, against values worked out
    /// by hand from PyTorch's update rule in double precision (float32 rounding: 1e-6).
    func testAdamMatchesPyTorchRule() {
        let p = Parameter(Tensor(shape: [2], [1.0, -2.0]))
        let adam = Adam(
            [p], learningRate: 0.1, beta1: 0, beta2: 0.99, epsilon: 1e-8, weightDecay: 0.01)
        var x: [Double] = [1, -2]
        var v: [Double] = [0, 0]
        let grads: [[Double]] = [[0.5, -1], [0.25, 2], [-1, 0.1]]
        for (t, g) in grads.enumerated() {
            p.value.grad = Tensor(shape: [2], g.map { Float($0) })
            adam.update()
            for j in 0..<2 {
                let gj = g[j] + 0.01 * x[j]
                let m = gj  // β₁ = 0
                v[j] = 0.99 * v[j] + 0.01 * gj * gj
                let bc2 = 1 - pow(0.99, Double(t + 1))
                x[j] -= 0.1 * m / (v[j].squareRoot() / bc2.squareRoot() + 1e-8)
            }
            assertClose(p.value, Tensor(shape: [2], x.map { Float($0) }), atol: 1e-6, rtol: 1e-6)
        }
    }

    func testClipGradientNormScalesToMaxNorm() {
        let a = Parameter(Tensor(shape: [2], [0, 0])), b = Parameter(Tensor(shape: [1], [0]))
        a.value.grad = Tensor(shape: [2], [3, 0])
        b.value.grad = Tensor(shape: [1], [4])
        let norm = clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        // coefficient 1 / (5 + 1e-6)
        XCTAssertEqual(a.grad!.scalars[0], 3 / (5 + 1e-6), accuracy: 1e-6)
        XCTAssertEqual(b.grad!.scalars[0], 4 / (5 + 1e-6), accuracy: 1e-6)
        // Below the limit nothing changes.
        a.value.grad = Tensor(shape: [2], [0.3, 0])
        b.value.grad = Tensor(shape: [1], [0.4])
        clipGradientNorm([a, b], maxNorm: 1)
        XCTAssertEqual(a.grad!.scalars[0], 0.3, accuracy: 1e-7)
    }

    func testCosineScheduleMatchesSpecFormula() {
        let s = CosineSchedule(peak: 1e-5, totalSteps: 50_000)
        XCTAssertEqual(s.rate(forIteration: 0), 5e-7)
        XCTAssertEqual(s.rate(forIteration: 1), 5e-7, accuracy: 1e-15)  // f(0)
        XCTAssertEqual(s.value(at: 2500), 5e-7 + 2500 * (1e-5 - 5e-7) / 5000, accuracy: 1e-15)
        XCTAssertEqual(
            s.value(at: 5000), 5e-6 + 0.5 * (1e-5 - 5e-6) * (1 + cos(Double.pi * 0.1)),
            accuracy: 1e-15)
        XCTAssertEqual(s.value(at: 50_000), 5e-6, accuracy: 1e-15)
        // No warm-up: the first iteration already runs at the peak.
        let direct = CosineSchedule(peak: 1e-3, totalSteps: 100, warmupSteps: 0)
        XCTAssertEqual(direct.rate(forIteration: 0), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(direct.rate(forIteration: 1), 1e-3, accuracy: 1e-15)
    }

    func testMovingAverageUsesLerpTowardAverage() {
        let live = Module(), avg = Module()
        let p = live.register("w", Parameter(Tensor(shape: [1], [1])))
        let a = avg.register("w", Parameter(Tensor(shape: [1], [0])))
        updateMovingAverage(avg, toward: live, beta: 0.999)
        XCTAssertEqual(a.value.item, 0.001, accuracy: 1e-7)
        _ = p
    }

    func testStateDictBindingReportsEveryProblem() {
        let m = Module()
        m.register("a", Parameter(Tensor.zeros([2, 3])))
        m.register("b", Parameter(Tensor.zeros([4])))
        m.register("noise", Parameter(Tensor.zeros([1]), buffer: true, rebuildable: true))
        let state: [String: Tensor] = ["a": Tensor.zeros([3, 2]), "c": Tensor.zeros([1])]
        XCTAssertThrowsError(try m.load(state, source: "x.pt")) { error in
            let text = "\(error)"
            XCTAssertTrue(
                text.contains("key 'a': file has shape [3, 2], model expects [2, 3]"), text)
            XCTAssertTrue(text.contains("missing key 'b'"), text)
            XCTAssertTrue(text.contains("unexpected key 'c'"), text)
            XCTAssertFalse(text.contains("noise"), text)
        }
        let ok: [String: Tensor] = ["a": Tensor.ones([2, 3]), "b": Tensor.ones([4])]
        let warnings = try! m.load(ok, source: "y.pt")
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("noise"))
        XCTAssertEqual(m.namedParameters()[0].parameter.value.scalars, [1, 1, 1, 1, 1, 1])
    }
}
