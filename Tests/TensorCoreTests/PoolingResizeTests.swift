import Foundation
import TensorCore
import TestSupport
import XCTest

/// Average pooling and resizing against hand-computed values and Double references.
final class PoolingResizeTests: XCTestCase {
    /// Double `F.avg_pool2d(x, k, s)` on [N, C, H, W].
    func avgPoolReference(_ x: [Double], _ shape: [Int], k: Int, s: Int) -> [Double] {
        let (p, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let oh = (h - k) / s + 1, ow = (w - k) / s + 1
        var out: [Double] = []
        for q in 0..<p {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var acc = 0.0
                    for a in 0..<k {
                        for b in 0..<k { acc += x[q * h * w + (oy * s + a) * w + ox * s + b] }
                    }
                    out.append(acc / Double(k * k))
                }
            }
        }
        return out
    }

    /// Double `F.adaptive_avg_pool2d` with PyTorch's window bounds.
    func adaptiveReference(_ x: [Double], _ shape: [Int], oh: Int, ow: Int) -> [Double] {
        let (p, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        var out: [Double] = []
        for q in 0..<p {
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh
                    let x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow
                    var acc = 0.0
                    for a in y0..<y1 { for b in x0..<x1 { acc += x[q * h * w + a * w + b] } }
                    out.append(acc / Double((y1 - y0) * (x1 - x0)))
                }
            }
        }
        return out
    }

    func testAvgPoolHandComputed() {
        let x = Tensor(shape: [1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(x.avgPool2d(kernelSize: 2).scalars, [3.5, 5.5])
        // Kernel 2, stride 1: windows at columns 0, 1, 2.
        XCTAssertEqual(x.avgPool2d(kernelSize: 2, stride: 1).scalars, [3.5, 4.5, 5.5])
    }

    /// Odd sizes (the last row/column dropped, as PyTorch), kernel 3 stride 2, against the
    /// Double reference (tolerance: 9 float32 terms of O(1), 1e-6); gradients against
    /// Double differences (linear objective: step 1e-3 is exact; 1e-5 for float sums).
    func testAvgPoolMatchesReferenceAndGradients() {
        for (k, s) in [(2, 2), (3, 2), (2, 1)] {
            let x = randomTensor([2, 2, 7, 6], seed: 30)
            let want = avgPoolReference(doubles(x), x.shape, k: k, s: s)
            let y = x.avgPool2d(kernelSize: k, stride: s)
            XCTAssertEqual(y.shape, [2, 2, (7 - k) / s + 1, (6 - k) / s + 1])
            assertClose(y, Tensor(shape: y.shape, doubles: want), atol: 1e-6, rtol: 1e-6)

            let w = randomTensor(y.shape, seed: 31)
            let wd = doubles(w)
            checkGradients(
                [x], eps: 1e-3, atol: 1e-5, rtol: 1e-5,
                reference: { xs in dot(wd, self.avgPoolReference(xs[0], [2, 2, 7, 6], k: k, s: s)) }
            ) { xs in (xs[0].avgPool2d(kernelSize: k, stride: s) * w).sum() }
        }
    }

    /// avg pool twice differentiable (the discriminator's R1): a quadratic objective with a
    /// leaky ReLU in between, so the Hessian is not trivial.
    func testAvgPoolSecondOrder() {
        let x = randomTensor([1, 2, 6, 6], seed: 32)
        let v = awayFromZero([1, 2, 6, 6], seed: 33)
        checkSecondOrder([x, v]) { xs in
            let h = (xs[0] * xs[1]).avgPool2d(kernelSize: 2).leakyRelu(slope: 0.2)
            return (h.squared() * 0.5).sum()
        }
    }

    /// 1024 → 256 adaptive pooling is avg pool with kernel 4 (integer ratio); a
    /// non-integer ratio (7 → 3, 10 → 4) follows PyTorch's overlapping windows.
    func testAdaptiveAvgPool() {
        let big = randomTensor([1, 3, 1024, 1024], seed: 34)
        let start = Date()
        let pooled = big.adaptiveAvgPool2d(height: 256, width: 256)
        let ms = Date().timeIntervalSince(start) * 1000
        print(String(format: "adaptiveAvgPool2d [1,3,1024,1024] -> 256: %.1f ms", ms))
        assertClose(pooled, big.avgPool2d(kernelSize: 4), atol: 1e-6, rtol: 1e-6)

        let x = randomTensor([2, 2, 7, 10], seed: 35)
        let y = x.adaptiveAvgPool2d(height: 3, width: 4)
        let want = adaptiveReference(doubles(x), x.shape, oh: 3, ow: 4)
        assertClose(y, Tensor(shape: [2, 2, 3, 4], doubles: want), atol: 1e-6, rtol: 1e-6)
        let w = randomTensor(y.shape, seed: 36)
        let wd = doubles(w)
        checkGradients(
            [x], eps: 1e-3, atol: 1e-5, rtol: 1e-5,
            reference: { xs in dot(wd, self.adaptiveReference(xs[0], [2, 2, 7, 10], oh: 3, ow: 4)) }
        ) { xs in (xs[0].adaptiveAvgPool2d(height: 3, width: 4) * w).sum() }
        assertBitIdentical(
            x.resizedArea(height: 3, width: 4), y, "area resize is adaptive pooling")
    }

    /// PyTorch values for `align_corners=False`: upsampling [0, 1] to 4 gives
    /// [0, 0.25, 0.75, 1]; downsampling by 2 averages neighbour pairs.
    func testBilinearHandComputed() {
        let row = Tensor(shape: [1, 1, 1, 2], [0, 1])
        XCTAssertEqual(row.resizedBilinear(height: 1, width: 4).scalars, [0, 0.25, 0.75, 1])
        let x = Tensor(shape: [1, 1, 2, 4], [1, 3, 5, 7, 2, 4, 6, 8])
        XCTAssertEqual(x.resizedBilinear(height: 1, width: 2).scalars, [2.5, 6.5])
        // 2 → 3: sources (o + 0.5)·2/3 − 0.5 = −1/6 (clamped to 0), 0.5, 7/6 (last sample).
        let col = Tensor(shape: [1, 1, 2, 1], [10, 20])
        assertClose(
            col.resizedBilinear(height: 3, width: 1), Tensor(shape: [1, 1, 3, 1], [10, 15, 20]),
            atol: 1e-5, rtol: 0)
    }

    /// Bilinear gradients against float differences (a linear map: the default tolerances
    /// leave ample room) and twice differentiable.
    func testBilinearGradients() {
        let x = randomTensor([1, 2, 5, 4], seed: 37)
        let w = randomTensor([1, 2, 7, 3], seed: 38)
        checkGradients([x]) { xs in (xs[0].resizedBilinear(height: 7, width: 3) * w).sum() }
        checkSecondOrder([x]) { xs in
            (xs[0].resizedBilinear(height: 7, width: 3).squared() * w).sum()
        }
    }

    func testNearestUpsample() {
        let x = Tensor(shape: [1, 1, 2, 2], [1, 2, 3, 4])
        XCTAssertEqual(
            x.upsampledNearest(factor: 2).scalars,
            [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        // Each input's gradient is the sum over its 2×2 block.
        let leaf = x.requiringGrad()
        let g = Tensor.arange(0, 16).reshaped([1, 1, 4, 4])
        let y = leaf.upsampledNearest(factor: 2)
        let grad = Tensor.gradients(of: y, withRespectTo: [leaf], seed: g)
        let blockSums: [Float] = [0 + 1 + 4 + 5, 2 + 3 + 6 + 7, 8 + 9 + 12 + 13, 10 + 11 + 14 + 15]
        XCTAssertEqual(grad[0].scalars, blockSums)
    }

    /// Pooling reads strided views correctly and handles an empty batch.
    func testNonContiguousAndEmpty() {
        let base = randomTensor([2, 6, 6, 3], seed: 39)
        let nchw = base.permute([0, 3, 1, 2])  // [2, 3, 6, 6], channels-last in memory
        XCTAssertFalse(nchw.isContiguous)
        assertBitIdentical(
            nchw.avgPool2d(kernelSize: 2), nchw.contiguous().avgPool2d(kernelSize: 2))
        XCTAssertEqual(Tensor.zeros([0, 3, 8, 8]).avgPool2d(kernelSize: 2).shape, [0, 3, 4, 4])
    }
}
