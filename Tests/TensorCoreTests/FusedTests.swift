import TensorCore
import TestSupport
import XCTest

final class FusedTests: XCTestCase {
    /// The fused epilogue equals the composed ops it replaces (float rounding: 1e-6), with
    /// per-sample and shared noise, and without scale or noise.
    func testScaledNoisyLeakyReluMatchesComposedOps() {
        var rng = RandomGenerator(seed: 1)
        let x = rng.normal([2, 3, 4, 5]), s = rng.normal([2, 3]), b = rng.normal([3])
        let nw = Tensor(shape: [1], [0.7])
        for noise in [rng.normal([1, 1, 4, 5]), rng.normal([2, 1, 4, 5])] {
            let fused = Tensor.scaledNoisyLeakyRelu(
                x, scale: s, noise: noise, noiseWeight: nw, bias: b, slope: 0.2, gain: 1.5)
            let composed =
                ((x * s.reshaped([2, 3, 1, 1]) + noise * nw + b.reshaped([1, 3, 1, 1]))
                    .leakyRelu(slope: 0.2)) * 1.5
            assertClose(fused, composed, atol: 1e-6, rtol: 1e-6)
        }
        let plain = Tensor.scaledNoisyLeakyRelu(
            x, scale: nil, noise: nil, noiseWeight: nil, bias: b, slope: 0.2, gain: 2)
        assertClose(
            plain, (x + b.reshaped([1, 3, 1, 1])).leakyRelu(slope: 0.2) * 2, atol: 1e-6, rtol: 1e-6)
    }

    /// Gradients of every input against central differences (float32, eps 1e-2: 1e-2
    /// relative; inputs are kept away from the kink at 0 by the random draw's seed).
    func testScaledNoisyLeakyReluGradients() {
        var rng = RandomGenerator(seed: 2)
        let x = rng.normal([2, 2, 3, 3]), s = rng.normal([2, 2]), b = rng.normal([2])
        let noise = rng.normal([2, 1, 3, 3]), nw = Tensor(shape: [1], [0.4])
        let weights = rng.normal([2, 2, 3, 3])
        checkGradients([x, s, noise, nw, b], eps: 1e-3, atol: 2e-2, rtol: 2e-2) { v in
            (Tensor.scaledNoisyLeakyRelu(
                v[0], scale: v[1], noise: v[2], noiseWeight: v[3], bias: v[4], slope: 0.2,
                gain: 1.4) * weights).sum()
        }
    }
}
