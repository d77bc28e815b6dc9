import Foundation
import TensorCore
import TestSupport
import XCTest

/// upfirdn2d against a double-precision reference written from rosinality's
/// `upfirdn2d_native`, for the configurations StyleGAN2 uses (fixtures MANIFEST, "Native
/// op checks") and for odd ones (non-separable kernels, unequal axes, crops).
final class UpFirDnTests: XCTestCase {
    /// One StyleGAN2 use of upfirdn2d on an [2, 3, 8, 8] input.
    struct Case {
        let name: String
        let kernelScale: Float
        let up: Int, down: Int
        let pad: (Int, Int)
        let outSize: Int
    }

    /// The MANIFEST's six checks: name, kernel scale (factor² for upsampling), factors,
    /// pads, and the output size it lists.
    static let styleGANCases: [Case] = [
        Case(
            name: "Upsample (ToRGB skip)", kernelScale: 4, up: 2, down: 1, pad: (2, 1),
            outSize: 16),
        Case(
            name: "Blur after transposed conv", kernelScale: 4, up: 1, down: 1, pad: (1, 1),
            outSize: 7),
        Case(name: "Downsample", kernelScale: 1, up: 1, down: 2, pad: (1, 1), outSize: 4),
        Case(name: "ConvLayer blur 3x3", kernelScale: 1, up: 1, down: 1, pad: (2, 2), outSize: 9),
        Case(name: "ConvLayer blur 1x1", kernelScale: 1, up: 1, down: 1, pad: (1, 1), outSize: 7),
        Case(name: "negative pad crop", kernelScale: 1, up: 2, down: 2, pad: (-1, 2), outSize: 7),
    ]

    func reference(_ x: Tensor, _ k: Tensor, _ c: Case) -> Tensor {
        let (v, shape) = upfirdn2dReference(
            doubles(x), shape: x.shape, kernel: doubles(k), kh: k.shape[0], kw: k.shape[1],
            up: (c.up, c.up), down: (c.down, c.down), pad: (c.pad.0, c.pad.1, c.pad.0, c.pad.1))
        return Tensor(shape: shape, doubles: v)
    }

    /// Forward of every StyleGAN2 configuration, both kernels, against the Double reference.
    ///
    /// Tolerance: each output sums at most 16 float32 products of inputs |x| ≲ 4 and taps
    /// summing to ≤ 4, so rounding stays below 16 · 2⁻²⁴ · 16 ≈ 2e-5; we allow 2e-5.
    func testStyleGANConfigurationsMatchReference() {
        let x = randomTensor([2, 3, 8, 8], seed: 1)
        for c in Self.styleGANCases {
            let k = blurKernel(scale: c.kernelScale)
            let want = reference(x, k, c)
            XCTAssertEqual(want.shape, [2, 3, c.outSize, c.outSize], c.name)
            for impl in [UpFirDnImplementation.automatic, .direct] {
                let got = x.upfirdn2d(
                    kernel: k, up: c.up, down: c.down, pad: c.pad, implementation: impl)
                assertClose(got, want, atol: 2e-5, rtol: 0, "\(c.name) \(impl)")
            }
        }
    }

    /// Backward of every StyleGAN2 configuration against central differences of the
    /// Double reference (step 1e-3: the objective is linear, so the differences are exact
    /// to double rounding). The analytic gradient sums ≤ 16 float32 products of O(1)
    /// values, hence 1e-5.
    func testStyleGANConfigurationsGradients() {
        for (i, c) in Self.styleGANCases.enumerated() {
            let x = randomTensor([1, 2, 8, 8], seed: 10 + UInt64(i))
            let k = blurKernel(scale: c.kernelScale)
            let outShape = [1, 2, c.outSize, c.outSize]
            let w = randomTensor(outShape, seed: 20 + UInt64(i))
            let wd = doubles(w), kd = doubles(k)
            checkGradients(
                [x], eps: 1e-3, atol: 1e-5, rtol: 1e-5,
                reference: { xs in
                    let (y, _) = upfirdn2dReference(
                        xs[0], shape: [1, 2, 8, 8], kernel: kd, kh: 4, kw: 4,
                        up: (c.up, c.up), down: (c.down, c.down),
                        pad: (c.pad.0, c.pad.1, c.pad.0, c.pad.1))
                    return dot(wd, y)
                }
            ) { xs in
                (xs[0].upfirdn2d(kernel: k, up: c.up, down: c.down, pad: c.pad) * w).sum()
            }
        }
    }

    /// A kernel that is not an outer product, different factors per axis and crops on
    /// both sides: forward and backward against the reference, same tolerances as above.
    func testNonSeparableKernelUnequalAxes() {
        let k = Tensor(shape: [3, 2], [0.5, -1, 2, 0.25, 1.5, -0.75])
        let xAxis = UpFirDnAxis(up: 2, down: 1, pad0: 1, pad1: -2)
        let yAxis = UpFirDnAxis(up: 1, down: 3, pad0: 2, pad1: -1)
        let x = randomTensor([2, 2, 7, 5], seed: 3)
        let (v, shape) = upfirdn2dReference(
            doubles(x), shape: x.shape, kernel: doubles(k), kh: 3, kw: 2,
            up: (2, 1), down: (1, 3), pad: (1, -2, 2, -1))
        let got = x.upfirdn2d(kernel: k, x: xAxis, y: yAxis)
        XCTAssertEqual(got.shape, shape)
        XCTAssertEqual(got.shape, [2, 2, 2, 8])
        assertClose(got, Tensor(shape: shape, doubles: v), atol: 2e-5, rtol: 0)

        let w = randomTensor(shape, seed: 4)
        let wd = doubles(w), kd = doubles(k)
        checkGradients(
            [x], eps: 1e-3, atol: 1e-5, rtol: 1e-5,
            reference: { xs in
                dot(
                    wd,
                    upfirdn2dReference(
                        xs[0], shape: [2, 2, 7, 5], kernel: kd, kh: 3, kw: 2,
                        up: (2, 1), down: (1, 3), pad: (1, -2, 2, -1)
                    ).0)
            }
        ) { xs in (xs[0].upfirdn2d(kernel: k, x: xAxis, y: yAxis) * w).sum() }
    }

    /// The backward is upfirdn2d itself: flipped kernel, up and down swapped, pads
    /// `k − 1 − pad0` and `L·up − O·down + pad0 − up + 1`. Checked directly on the
    /// gradient of a non-symmetric kernel with a crop (bitwise: the same kernel runs).
    func testBackwardIsFlippedUpFirDn() {
        let k = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 7])
        let x = randomTensor([1, 1, 6, 5], seed: 5).requiringGrad()
        let y = x.upfirdn2d(
            kernel: k, up: 2, down: 3, pad: (2, -1, 1, 0), implementation: .direct)
        let g = randomTensor(y.shape, seed: 6)
        let grad = Tensor.gradients(of: y, withRespectTo: [x], seed: g)[0]
        let flipped = Tensor(shape: [2, 3], [7, 5, 4, 3, 2, 1])
        // x axis: L 5, O from y, pad0 2; y axis: L 6, pad0 1.
        let (ow, oh) = (y.shape[3], y.shape[2])
        let gx = UpFirDnAxis(up: 3, down: 2, pad0: 3 - 1 - 2, pad1: 5 * 2 - ow * 3 + 2 - 2 + 1)
        let gy = UpFirDnAxis(up: 3, down: 2, pad0: 2 - 1 - 1, pad1: 6 * 2 - oh * 3 + 1 - 2 + 1)
        let byFormula = g.upfirdn2d(kernel: flipped, x: gx, y: gy, implementation: .direct)
        assertBitIdentical(grad, byFormula, "gradient vs formula")
    }

    /// Gradients of gradients (R1 through the blurs): the Hessian-vector product of
    /// `Σ w · upfirdn(x)²` against float32 differences of the first gradient (which is
    /// linear in x, so the default 2e-3/2e-2 tolerances are loose).
    func testSecondOrder() {
        for c in [Self.styleGANCases[0], Self.styleGANCases[2], Self.styleGANCases[5]] {
            let k = blurKernel(scale: c.kernelScale)
            let x = randomTensor([1, 1, 5, 5], seed: 7)
            let probe = x.upfirdn2d(kernel: k, up: c.up, down: c.down, pad: c.pad)
            let w = randomTensor(probe.shape, seed: 8)
            checkSecondOrder([x]) { xs in
                let y = xs[0].upfirdn2d(kernel: k, up: c.up, down: c.down, pad: c.pad)
                return (y.squared() * w).sum()
            }
        }
    }

    /// The separable fast path and the direct path agree on StyleGAN2's kernel to float32
    /// rounding (different summation order only: 1e-5 for O(1) values).
    func testSeparableAgreesWithDirect() {
        let x = randomTensor([2, 4, 13, 11], seed: 9)
        let k = blurKernel(scale: 4)
        for (up, down, pad) in [(2, 1, (2, 1)), (1, 2, (1, 1)), (1, 1, (1, 1)), (2, 2, (-1, 2))] {
            let a = x.upfirdn2d(kernel: k, up: up, down: down, pad: pad)
            let b = x.upfirdn2d(kernel: k, up: up, down: down, pad: pad, implementation: .direct)
            assertClose(a, b, atol: 1e-5, rtol: 1e-6, "up \(up) down \(down)")
        }
    }

    /// Up then down with StyleGAN2's kernels keeps a constant image constant away from the
    /// borders (each output's taps sum to 1).
    func testConstantImageIsPreservedInside() {
        let x = Tensor.full([1, 2, 8, 8], 3)
        let up = x.upfirdn2d(kernel: blurKernel(scale: 4), up: 2, pad: (2, 1))  // [1, 2, 16, 16]
        let down = up.upfirdn2d(kernel: blurKernel(), down: 2, pad: (1, 1))  // [1, 2, 8, 8]
        XCTAssertEqual(down.shape, [1, 2, 8, 8])
        let inside = down.slice(2, 2..<6).slice(3, 2..<6)
        assertClose(inside, Tensor.full(inside.shape, 3), atol: 1e-6, rtol: 0)
    }

    /// Strided views (a transpose) and empty batches go through like contiguous inputs.
    func testNonContiguousAndEmptyInputs() {
        let base = randomTensor([2, 3, 6, 7], seed: 11)
        let view = base.transposed(2, 3)  // [2, 3, 7, 6], not contiguous
        XCTAssertFalse(view.isContiguous)
        let k = blurKernel()
        assertBitIdentical(
            view.upfirdn2d(kernel: k, down: 2, pad: (1, 1)),
            view.contiguous().upfirdn2d(kernel: k, down: 2, pad: (1, 1)), "transposed input")

        let empty = Tensor.zeros([0, 3, 8, 8]).upfirdn2d(kernel: k, up: 2, pad: (2, 1))
        XCTAssertEqual(empty.shape, [0, 3, 16, 16])
    }

    /// Same output for 1 and 2 threads, bit for bit (each plane is one thread's work).
    func testThreadCountDoesNotChangeResults() {
        let x = randomTensor([2, 8, 33, 33], seed: 12)
        let k = blurKernel(scale: 4)
        let one = withThreads(1) { x.upfirdn2d(kernel: k, up: 2, pad: (2, 1)) }
        let two = withThreads(2) { x.upfirdn2d(kernel: k, up: 2, pad: (2, 1)) }
        assertBitIdentical(one, two, "threads 1 vs 2")
    }

    /// StyleGAN2's 1024-px layer: the blur after the transposed conv on
    /// [1, 32, 1025, 1025] gives [1, 32, 1024, 1024], and a constant plane stays constant
    /// inside (the kernel sums to 4 with the upsampling gain; away from the border every
    /// output sees the whole kernel). Speed is `isfgan bench generator`'s business.
    func testLargePlane() {
        let x = Tensor.full([1, 32, 1025, 1025], 0.5)
        let k = blurKernel(scale: 4)
        let y = x.upfirdn2d(kernel: k, pad: (1, 1))
        XCTAssertEqual(y.shape, [1, 32, 1024, 1024])
        let total = k.scalars.reduce(0, +)
        XCTAssertEqual(y[0, 31, 512, 512], 0.5 * total, accuracy: 1e-5)
        XCTAssertEqual(y[0, 0, 1, 700], 0.5 * total, accuracy: 1e-5)
    }
}
