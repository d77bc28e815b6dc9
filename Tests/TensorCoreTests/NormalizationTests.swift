import Foundation
import TensorCore
import TestSupport
import XCTest

/// Normalisations against Double references of PyTorch's definitions (biased variance).
///
/// Tolerances: forwards 1e-5 (a handful of float32 roundings on O(1) values, amplified
/// by at most 1/σ ≈ 1). Gradients are checked against Double central differences with
/// step 1e-3 (truncation ~1e-6 relative); the analytic gradient subtracts row means of
/// O(1) terms in float32, so 1e-4 absolute, 1e-3 relative.
final class NormalizationTests: XCTestCase {
    /// Standardises consecutive groups of `n` values (biased variance), Double.
    func standardizeRows(_ x: [Double], n: Int, eps: Double) -> [Double] {
        var out: [Double] = []
        for r in 0..<(x.count / n) {
            let row = x[(r * n)..<((r + 1) * n)]
            let mean = row.reduce(0, +) / Double(n)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            out += row.map { ($0 - mean) / (variance + eps).squareRoot() }
        }
        return out
    }

    func layerNormReference(_ all: [[Double]], c: Int) -> [Double] {
        let y = standardizeRows(all[0], n: c, eps: 1e-5)
        return y.indices.map { y[$0] * all[1][$0 % c] + all[2][$0 % c] }
    }

    func testLayerNormForwardAndGradients() {
        let x = randomTensor([3, 2, 8], seed: 40, scale: 2)
        let weight = randomTensor([8], seed: 41)
        let bias = randomTensor([8], seed: 42)
        let y = x.layerNorm(weight: weight, bias: bias)
        let want = layerNormReference([doubles(x), doubles(weight), doubles(bias)], c: 8)
        assertClose(y, Tensor(shape: y.shape, doubles: want), atol: 1e-5, rtol: 1e-5)
        // Without affine: rows have mean 0 and biased variance 1 − eps/(var + eps) ≈ 1.
        let plain = x.layerNorm()
        assertClose(plain.mean(axes: [-1]), Tensor.zeros([3, 2]), atol: 1e-6, rtol: 0)
        assertClose(
            plain.variance(axes: [-1], unbiased: false), Tensor.ones([3, 2]), atol: 1e-4,
            rtol: 0)

        let w = randomTensor(y.shape, seed: 43)
        let wd = doubles(w)
        checkGradients(
            [x, weight, bias], eps: 1e-3, atol: 1e-4, rtol: 1e-3,
            reference: { all in dot(wd, self.layerNormReference(all, c: 8)) }
        ) { xs in (xs[0].layerNorm(weight: xs[1], bias: xs[2]) * w).sum() }
    }

    func testLayerNormSecondOrder() {
        let x = randomTensor([2, 5], seed: 44)
        let w = randomTensor([2, 5], seed: 45)
        checkSecondOrder([x]) { xs in (xs[0].layerNorm() * w).sum() }
    }

    /// Each (sample, channel) plane standardised over H·W, then the per-channel affine.
    func testInstanceNorm2d() {
        let x = randomTensor([2, 3, 4, 5], seed: 46)
        let weight = Tensor(shape: [3], [1, 2, -1]), bias = Tensor(shape: [3], [0, 1, 0.5])
        let z = standardizeRows(doubles(x), n: 20, eps: 1e-5)
        let want = z.indices.map { i -> Double in
            let ch = (i / 20) % 3
            return z[i] * Double(weight.scalars[ch]) + Double(bias.scalars[ch])
        }
        assertClose(
            x.instanceNorm2d(weight: weight, bias: bias), Tensor(shape: x.shape, doubles: want),
            atol: 1e-5, rtol: 1e-5)

        let w = randomTensor(x.shape, seed: 47)
        let wd = doubles(w)
        checkGradients(
            [x], eps: 1e-3, atol: 1e-4, rtol: 1e-3,
            reference: { all in dot(wd, self.standardizeRows(all[0], n: 20, eps: 1e-5)) }
        ) { xs in (xs[0].instanceNorm2d() * w).sum() }
    }

    /// `nn.InstanceNorm1d` on [B, L, C] normalises every row over the last axis (it reads
    /// the input as [N, C', L'] with C' = L): ISF's "adain" variant.
    func testInstanceNorm1dNormalisesRows() {
        let x = randomTensor([2, 3, 16], seed: 48, scale: 3)
        let want = standardizeRows(doubles(x), n: 16, eps: 1e-5)
        assertClose(
            x.instanceNorm1d(), Tensor(shape: x.shape, doubles: want), atol: 1e-5, rtol: 1e-5)
        assertBitIdentical(x.instanceNorm1d(), x.layerNorm(), "no-affine layer norm")
    }

    /// Evaluation mode uses the running statistics: hand-computed values.
    func testBatchNormInference() {
        let x = Tensor(shape: [1, 2, 1, 2], [1, 2, 3, 5])
        let y = x.batchNormInference(
            runningMean: Tensor(shape: [2], [1, 3]), runningVariance: Tensor(shape: [2], [4, 1]),
            weight: Tensor(shape: [2], [2, 1]), bias: Tensor(shape: [2], [0, -1]), eps: 0)
        // Channel 0: (x − 1)/2·2 + 0; channel 1: (x − 3)/1 − 1.
        XCTAssertEqual(y.scalars, [0, 1, -1, 1])
        let x2 = randomTensor([3, 4], seed: 49)
        checkGradients([x2]) { xs in
            xs[0].batchNormInference(
                runningMean: Tensor.full([4], 0.5), runningVariance: Tensor.full([4], 2)
            ).squared().sum()
        }
    }

    /// `x · rsqrt(mean(x², axis 1) + 1e-8)`: unit mean square along the channels.
    func testPixelNorm() {
        let x = randomTensor([2, 6, 3, 3], seed: 50, scale: 5)
        let y = x.pixelNorm()
        assertClose(y.squared().mean(axes: [1]), Tensor.ones([2, 3, 3]), atol: 1e-5, rtol: 0)
        let v = doubles(x)
        var want = [Double](repeating: 0, count: v.count)
        for n in 0..<2 {
            for p in 0..<9 {
                let idx = (0..<6).map { n * 54 + $0 * 9 + p }
                let ms = idx.reduce(0) { $0 + v[$1] * v[$1] } / 6
                for i in idx { want[i] = v[i] / (ms + 1e-8).squareRoot() }
            }
        }
        assertClose(y, Tensor(shape: x.shape, doubles: want), atol: 1e-5, rtol: 1e-5)
        let w = randomTensor([1, 4], seed: 51)
        checkGradients([randomTensor([3, 4], seed: 52)]) { xs in (xs[0].pixelNorm() * w).sum() }
    }
}
