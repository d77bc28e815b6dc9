import TensorCore
import TestSupport
import XCTest

/// conv2d and convTranspose2d: oneDNN against the plain loops for all three kernels of
/// the family, grouped and per-sample (groups = batch) convolution, strided views,
/// empty batches, finite differences of first and second order, the primitive cache, and
/// thread-count independence.
///
/// Tolerances for oneDNN against the loops: both sum at most a few hundred float32
/// products of unit normals in different orders (oneDNN also blocks channels), which
/// moves results by about 1e-6·√terms; atol = rtol = 1e-4 leaves a wide margin while a
/// wrong index or padding shows up as O(1) errors.
final class ConvTests: XCTestCase {
    struct Case {
        var x: [Int]
        var o: Int
        var k: (Int, Int)
        var stride: Int
        var padding: Int
        var groups: Int
    }

    /// Shapes that exercise strides, paddings, groups, odd and non-square sizes.
    let cases: [Case] = [
        Case(x: [2, 3, 7, 7], o: 4, k: (3, 3), stride: 1, padding: 1, groups: 1),
        Case(x: [1, 4, 6, 9], o: 6, k: (1, 1), stride: 1, padding: 0, groups: 2),
        Case(x: [2, 4, 9, 8], o: 4, k: (3, 3), stride: 2, padding: 0, groups: 1),
        Case(x: [1, 6, 10, 7], o: 6, k: (4, 4), stride: 2, padding: 1, groups: 3),
        Case(x: [2, 4, 8, 8], o: 4, k: (3, 3), stride: 1, padding: 1, groups: 4),  // depthwise
        Case(x: [1, 2, 11, 9], o: 3, k: (5, 3), stride: 3, padding: 2, groups: 1),
        Case(x: [3, 16, 5, 5], o: 32, k: (3, 3), stride: 1, padding: 1, groups: 1),
        // Enough channels per group that the kernels run one ungrouped primitive per group.
        Case(x: [2, 64, 5, 4], o: 96, k: (3, 3), stride: 2, padding: 1, groups: 2),
    ]

    func randn(_ shape: [Int], _ seed: UInt64) -> Tensor { Tensor.randn(shape, seed: seed) }

    func weightShape(_ c: Case) -> [Int] { [c.o, c.x[1] / c.groups, c.k.0, c.k.1] }

    func testForwardMatchesReference() {
        for (i, c) in cases.enumerated() {
            let x = randn(c.x, UInt64(i)), w = randn(weightShape(c), UInt64(100 + i))
            let b = randn([c.o], UInt64(200 + i))
            let fast = x.conv2d(
                w, bias: b, stride: c.stride, padding: c.padding,
                groups: c.groups, implementation: .oneDNN)
            let slow = x.conv2d(
                w, bias: b, stride: c.stride, padding: c.padding,
                groups: c.groups, implementation: .reference)
            assertClose(fast, slow, atol: 1e-4, rtol: 1e-4, "case \(i)")
        }
    }

    func testGradientKernelsMatchReference() {
        for (i, c) in cases.enumerated() {
            let g = ConvGeometry(stride: c.stride, padding: c.padding, groups: c.groups)
            let wShape = weightShape(c)
            let x = randn(c.x, UInt64(i)), w = randn(wShape, UInt64(100 + i))
            let yShape = try! g.checkedOutputShape(input: c.x, weight: wShape, op: "test")
            let gy = randn(yShape, UInt64(300 + i))
            for impl in [KernelImplementation.oneDNN] {
                let gx = Tensor.conv2dInputGradient(
                    gy, weight: w, inputShape: c.x, geometry: g, implementation: impl)
                let gxRef = Tensor.conv2dInputGradient(
                    gy, weight: w, inputShape: c.x, geometry: g, implementation: .reference)
                assertClose(gx, gxRef, atol: 1e-4, rtol: 1e-4, "input gradient, case \(i)")
                let gw = Tensor.conv2dWeightGradient(
                    x, outputGradient: gy, weightShape: wShape, geometry: g,
                    implementation: impl)
                let gwRef = Tensor.conv2dWeightGradient(
                    x, outputGradient: gy, weightShape: wShape, geometry: g,
                    implementation: .reference)
                assertClose(gw, gwRef, atol: 1e-4, rtol: 1e-4, "weight gradient, case \(i)")
            }
        }
    }

    /// The reference loops themselves against a hand-computed case.
    func testReferenceAgainstHandComputedValues() {
        // x = 1…9 in a 3×3 image, a 2×2 kernel [[1, 0], [0, -1]], stride 1, no padding:
        // y[i][j] = x[i][j] − x[i+1][j+1] = −4 everywhere.
        let x = Tensor(shape: [1, 1, 3, 3], (1...9).map(Float.init))
        let w = Tensor(shape: [1, 1, 2, 2], [1, 0, 0, -1])
        XCTAssertEqual(x.conv2d(w, implementation: .reference).scalars, [-4, -4, -4, -4])
        XCTAssertEqual(x.conv2d(w, implementation: .oneDNN).scalars, [-4, -4, -4, -4])
        // Padding 1, stride 2: corners see one tap each. y[0][0] = −x[0][0] = −1,
        // y[0][1] = −x[0][2] = −3, y[1][0] = −x[2][0] = −7, y[1][1] = x[1][1] − x[2][2] = −4.
        let y = x.conv2d(w, bias: Tensor(shape: [1], [0.5]), stride: 2, padding: 1)
        XCTAssertEqual(y.scalars, [-0.5, -2.5, -6.5, -3.5])
    }

    func testNonContiguousInputs() {
        // x as an NHWC tensor permuted to NCHW, weight read through a transposed view,
        // and a strided slice: all must match the same values made contiguous.
        let nhwc = randn([2, 6, 5, 4], 1)
        let x = nhwc.permute([0, 3, 1, 2])  // [2, 4, 6, 5]
        let w = randn([4, 5, 3, 3], 2).transposed(0, 1)  // [5, 4, 3, 3]
        XCTAssertFalse(x.isContiguous)
        XCTAssertFalse(w.isContiguous)
        let y = x.conv2d(w, stride: 1, padding: 1)
        let yc = x.contiguous().conv2d(
            w.contiguous(), stride: 1, padding: 1,
            implementation: .reference)
        assertClose(y, yc, atol: 1e-4, rtol: 1e-4, "permuted input and weight")
        let sliced = randn([2, 4, 12, 10], 3).slice(2, 0..<12, step: 2)  // [2, 4, 6, 10]
        assertClose(
            sliced.conv2d(w, padding: 1),
            sliced.contiguous().conv2d(
                w.contiguous(), padding: 1,
                implementation: .reference),
            atol: 1e-4, rtol: 1e-4, "sliced input")
        // A size-1 dim with an unusual stride (a one-sample slice of a permuted batch).
        let one = randn([4, 2, 6, 5], 5).permute([1, 0, 2, 3]).slice(0, 1..<2)  // [1, 4, 6, 5]
        assertClose(
            one.conv2d(w, padding: 1),
            one.contiguous().conv2d(w.contiguous(), padding: 1, implementation: .reference),
            atol: 1e-4, rtol: 1e-4, "one-sample slice")
        // A broadcast (expanded) input has zero strides; the kernel copies it first.
        let expanded = randn([1, 4, 6, 5], 4).expanded(to: [3, 4, 6, 5])
        assertClose(
            expanded.conv2d(w, padding: 1),
            expanded.contiguous().conv2d(
                w.contiguous(), padding: 1,
                implementation: .reference),
            atol: 1e-4, rtol: 1e-4, "expanded input")
    }

    func testZeroSizeBatch() {
        let x = Tensor.zeros([0, 3, 8, 8]).requiringGrad()
        let w = randn([4, 3, 3, 3], 1).requiringGrad()
        let y = x.conv2d(w, padding: 1)
        XCTAssertEqual(y.shape, [0, 4, 8, 8])
        let grads = Tensor.gradients(of: y.sum(), withRespectTo: [x, w])
        XCTAssertEqual(grads[0].shape, [0, 3, 8, 8])
        XCTAssertEqual(grads[1].scalars, [Float](repeating: 0, count: 4 * 3 * 9))
        let t = Tensor.zeros([0, 4, 5, 5]).convTranspose2d(randn([4, 2, 3, 3], 2), stride: 2)
        XCTAssertEqual(t.shape, [0, 2, 11, 11])
    }

    /// StyleGAN2's modulated convolution: per-sample weights run as one grouped conv
    /// with groups = batch must equal a separate conv per sample.
    func testGroupsEqualBatchMatchesPerSampleConvolution() {
        let (n, c, o, h) = (3, 4, 5, 6)
        let x = randn([n, c, h, h], 10)
        let w = randn([n, o, c, 3, 3], 11)  // one weight per sample
        let grouped = x.reshaped([1, n * c, h, h])
            .conv2d(w.reshaped([n * o, c, 3, 3]), padding: 1, groups: n)
            .reshaped([n, o, h, h])
        for s in 0..<n {
            let xs = x.slice(0, s..<(s + 1))
            let ws = w.slice(0, s..<(s + 1)).reshaped([o, c, 3, 3])
            assertClose(
                grouped.slice(0, s..<(s + 1)),
                xs.conv2d(ws, padding: 1, implementation: .reference),
                atol: 1e-4, rtol: 1e-4, "sample \(s)")
        }
        // The transposed conv of StyleGAN2's upsampling layer, per-sample weights
        // [N·C, O, 3, 3] with groups = N.
        let wt = randn([n * c, o, 3, 3], 12)
        let up = x.reshaped([1, n * c, h, h]).convTranspose2d(wt, stride: 2, groups: n)
        XCTAssertEqual(up.shape, [1, n * o, 2 * h + 1, 2 * h + 1])
        for s in 0..<n {
            let xs = x.slice(0, s..<(s + 1))
            let ws = wt.slice(0, (s * c)..<((s + 1) * c))
            assertClose(
                up.slice(1, (s * o)..<((s + 1) * o)),
                Self.scatterTransposed(
                    xs, ws, bias: nil, stride: 2, padding: 0,
                    outputPadding: 0, groups: 1),
                atol: 1e-4, rtol: 1e-4, "transposed, sample \(s)")
        }
    }

    /// PyTorch's definition of conv_transpose2d written as a scatter, independent of
    /// `ConvReference`: each input pixel adds `x · w` into a kh×kw window of the output.
    static func scatterTransposed(
        _ x: Tensor, _ w: Tensor, bias: Tensor?, stride: Int, padding: Int,
        outputPadding: Int, groups: Int
    ) -> Tensor {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (og, kh, kw) = (w.shape[1], w.shape[2], w.shape[3])
        let o = og * groups
        let ho = (h - 1) * stride - 2 * padding + kh + outputPadding
        let wo = (wd - 1) * stride - 2 * padding + kw + outputPadding
        let xv = x.scalars, wv = w.scalars
        var y = [Float](repeating: 0, count: n * o * ho * wo)
        let cg = c / groups
        for b in 0..<n {
            for ic in 0..<c {
                let g = ic / cg
                for i in 0..<h {
                    for j in 0..<wd {
                        let v = xv[((b * c + ic) * h + i) * wd + j]
                        for oc in 0..<og {
                            for p in 0..<kh {
                                let oy = i * stride - padding + p
                                if oy < 0 || oy >= ho { continue }
                                for q in 0..<kw {
                                    let ox = j * stride - padding + q
                                    if ox < 0 || ox >= wo { continue }
                                    let out = g * og + oc
                                    y[((b * o + out) * ho + oy) * wo + ox] +=
                                        v * wv[((ic * og + oc) * kh + p) * kw + q]
                                }
                            }
                        }
                    }
                }
            }
        }
        var t = Tensor(shape: [n, o, ho, wo], y)
        if let bias { t = t + bias.reshaped([1, o, 1, 1]) }
        return t
    }

    func testConvTranspose2dMatchesDefinition() {
        let settings: [(x: [Int], o: Int, k: Int, stride: Int, padding: Int, op: Int, g: Int)] = [
            ([2, 4, 16, 16], 3, 3, 2, 0, 0, 1),  // StyleGAN2: 16×16 → 33×33
            ([1, 4, 5, 6], 4, 4, 2, 1, 0, 2),
            ([2, 3, 4, 4], 2, 3, 2, 1, 1, 1),  // output padding
            ([1, 6, 3, 5], 6, 3, 1, 1, 0, 3),
            ([1, 2, 4, 3], 5, 5, 3, 2, 2, 1),
            ([2, 64, 4, 4], 64, 3, 2, 0, 0, 2),  // split into one primitive per group
        ]
        for (i, s) in settings.enumerated() {
            let x = randn(s.x, UInt64(20 + i))
            let w = randn([s.x[1], s.o / s.g, s.k, s.k], UInt64(40 + i))
            let b = randn([s.o], UInt64(60 + i))
            let expected = Self.scatterTransposed(
                x, w, bias: b, stride: s.stride, padding: s.padding, outputPadding: s.op,
                groups: s.g)
            for impl in [KernelImplementation.oneDNN, .reference] {
                let y = x.convTranspose2d(
                    w, bias: b, stride: s.stride, padding: s.padding, outputPadding: s.op,
                    groups: s.g, implementation: impl)
                assertClose(y, expected, atol: 1e-4, rtol: 1e-4, "case \(i), \(impl)")
            }
        }
    }

    func testShapeErrorsNameOpAndShapes() {
        let g = ConvGeometry(stride: 1, padding: 0, groups: 2)
        XCTAssertThrowsError(
            try g.checkedOutputShape(input: [1, 3, 8, 8], weight: [4, 2, 3, 3], op: "conv2d")
        ) { error in
            let text = "\(error)"
            XCTAssertTrue(
                text.contains("conv2d") && text.contains("[1, 3, 8, 8]")
                    && text.contains("[4, 2, 3, 3]"), text)
        }
        XCTAssertThrowsError(
            try ConvGeometry().checkedOutputShape(
                input: [1, 3, 2, 2], weight: [4, 3, 3, 3], op: "conv2d"))
        XCTAssertThrowsError(
            try Tensor.convTranspose2dShape(
                input: [1, 4, 5, 5], weight: [3, 2, 3, 3], stride: 2, padding: 0,
                outputPadding: 0, groups: 1)
        ) { error in
            XCTAssertTrue("\(error)".contains("convTranspose2d"), "\(error)")
        }
        XCTAssertThrowsError(
            try Tensor.convTranspose2dShape(
                input: [1, 4, 5, 5], weight: [4, 2, 3, 3], stride: 2, padding: 0,
                outputPadding: 2, groups: 1), "output padding must be below the stride")
    }

    // MARK: - Gradients

    /// Σ r ⊙ conv(x, w, b)² in Double, from the reference loops.
    static func squaredConvReference(
        _ xs: [[Double]], xShape: [Int], wShape: [Int], r: [Double], geometry: ConvGeometry
    ) -> Double {
        let y = ConvReference.forward(
            xs[0], shape: xShape, weight: xs[1], shape: wShape, bias: xs.count > 2 ? xs[2] : nil,
            geometry: geometry)
        return zip(y, r).reduce(0) { $0 + $1.1 * $1.0 * $1.0 }
    }

    func testConv2dGradientsAgainstDoubleFiniteDifferences() {
        let settings = [
            (x: [2, 4, 5, 5], w: [6, 2, 3, 3], g: ConvGeometry(stride: 2, padding: 1, groups: 2)),
            (x: [1, 3, 4, 6], w: [2, 3, 2, 3], g: ConvGeometry(stride: 1, padding: 0)),
        ]
        for (i, s) in settings.enumerated() {
            let x = randn(s.x, UInt64(80 + i)), w = randn(s.w, UInt64(90 + i))
            let b = randn([s.w[0]], UInt64(95 + i))
            let yShape = try! s.g.checkedOutputShape(input: s.x, weight: s.w, op: "test")
            let r = randn(yShape, UInt64(99 + i))
            let rd = r.scalars.map(Double.init)
            // Differenced in Double: only float32 rounding of the analytic gradient
            // remains (sums of ~50 terms of order 10), well inside 1e-3 relative.
            checkGradients(
                [x, w, b], eps: 1e-4, atol: 1e-3, rtol: 1e-3,
                reference: { xs in
                    Self.squaredConvReference(xs, xShape: s.x, wShape: s.w, r: rd, geometry: s.g)
                }
            ) { xs in
                (xs[0].conv2d(xs[1], bias: xs[2], geometry: s.g).squared() * r).sum()
            }
        }
    }

    func testConvTranspose2dGradientsAgainstDoubleFiniteDifferences() {
        let x = randn([2, 4, 3, 3], 110), w = randn([4, 3, 3, 3], 111)
        let outShape = [2, 6, 8, 8]  // stride 2, padding 0, output padding 1, groups 2
        let g = ConvGeometry(stride: 2, padding: 0, groups: 2)
        let r = randn(outShape, 112)
        let rd = r.scalars.map(Double.init)
        checkGradients(
            [x, w], eps: 1e-4, atol: 1e-3, rtol: 1e-3,
            reference: { xs in
                let y = ConvReference.inputGradient(
                    xs[0], weight: xs[1], shape: [4, 3, 3, 3], inputShape: outShape, geometry: g)
                return zip(y, rd).reduce(0) { $0 + $1.1 * $1.0 * $1.0 }
            }
        ) { xs in
            let y = xs[0].convTranspose2d(xs[1], stride: 2, outputPadding: 1, groups: 2)
            return (y.squared() * r).sum()
        }
    }

    func testConv2dSecondOrder() {
        let x = randn([2, 2, 5, 5], 120), w = randn([4, 1, 3, 3], 121)
        let b = randn([4], 122)
        let r = randn([2, 4, 3, 3], 123)
        // float32 differences of first gradients with eps = 1e-2 (the helper's default
        // 2e-3 absolute, 2e-2 relative tolerances).
        checkSecondOrder([x, w, b]) { xs in
            let y = xs[0].conv2d(xs[1], bias: xs[2], stride: 2, padding: 1, groups: 2)
            return (y.squared() * r).sum()
        }
    }

    func testConvTranspose2dSecondOrder() {
        let x = randn([1, 2, 3, 3], 130), w = randn([2, 3, 3, 3], 131)
        let r = randn([1, 3, 7, 7], 132)
        checkSecondOrder([x, w]) { xs in
            (xs[0].convTranspose2d(xs[1], stride: 2).squared() * r).sum()
        }
    }

    /// The R1 penalty's pattern: the gradient of a discriminator-like function with
    /// respect to its input, squared and summed, differentiated with respect to the
    /// weights. Compared against finite differences of the penalty itself.
    func testGradientPenaltyWeightGradient() {
        let x = randn([1, 2, 4, 4], 140)
        let w1 = randn([3, 2, 3, 3], 141), w2 = randn([1, 3, 3, 3], 142)
        func penalty(_ ws: [Tensor]) -> Tensor {
            let xi = x.requiringGrad()
            // A smooth activation: leaky ReLU's kinks would break the finite differences
            // whenever a step of eps moves a pre-activation across zero.
            let a = xi.conv2d(ws[0], padding: 1)
            let h = a + 0.1 * a.squared()
            let d = h.conv2d(ws[1], stride: 2, padding: 1).sum()
            let gx = Tensor.gradients(of: d, withRespectTo: [xi], createGraph: true)[0]
            return gx.squared().sum()
        }
        checkGradients([w1, w2], eps: 1e-2, atol: 2e-3, rtol: 2e-2) { penalty($0) }
    }

    // MARK: - Frozen weights, cache, threads

    func testFrozenWeightSkipsWeightGradient() {
        // A shape no other test uses, so each backward's new plans can be counted.
        let x = randn([1, 5, 7, 6], 150).requiringGrad()
        let w = randn([3, 5, 3, 3], 151)
        let before = OneDNNStatus.cachedConvolutionPlans
        let y = x.conv2d(w, padding: 1)
        _ = Tensor.gradients(of: y.sum(), withRespectTo: [x])
        // The forward plan and the input-gradient plan; no weight-gradient plan.
        XCTAssertEqual(OneDNNStatus.cachedConvolutionPlans - before, 2)
        let wt = w.requiringGrad()
        _ = Tensor.gradients(of: x.conv2d(wt, padding: 1).sum(), withRespectTo: [x, wt])
        XCTAssertEqual(
            OneDNNStatus.cachedConvolutionPlans - before, 3,
            "a trainable weight adds the weight-gradient plan")
        // Running again reuses every plan.
        _ = Tensor.gradients(of: x.conv2d(wt, padding: 1).sum(), withRespectTo: [x, wt])
        XCTAssertEqual(OneDNNStatus.cachedConvolutionPlans - before, 3)
    }

    func testThreadCountDoesNotChangeResults() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = randn([2, 32, 12, 12], 160), w = randn([32, 32, 3, 3], 161)
        let g = ConvGeometry(stride: 1, padding: 1)
        let gy = randn([2, 32, 12, 12], 162)
        func run() -> [Tensor] {
            [
                x.conv2d(w, geometry: g),
                Tensor.conv2dInputGradient(gy, weight: w, inputShape: x.shape, geometry: g),
                Tensor.conv2dWeightGradient(
                    x, outputGradient: gy, weightShape: w.shape,
                    geometry: g),
            ]
        }
        Threads.count = 1
        XCTAssertEqual(OneDNNStatus.threadCount, 1)
        let one = run()
        Threads.count = 2
        XCTAssertEqual(OneDNNStatus.threadCount, 2)
        let two = run()
        for (a, b) in zip(one, two) {
            // 1e-6 of the largest magnitude: only the summation order may differ.
            let scale = b.abs().max().item
            XCTAssertLessThanOrEqual(maxAbsDifference(a, b), 1e-6 * scale)
        }
    }

    func testQuickBenchmarkFillsEveryRow() {
        let rows = OpBenchmarks.run(repeats: 1, size: .quick)
        XCTAssertEqual(rows.count, 11, "copy, sgemm ×2, four convolutions ×2")
        for r in rows {
            XCTAssertTrue(r.milliseconds > 0 && r.gigabytesPerSecond > 0, "\(r)")
        }
        let table = OpBenchmarks.table(rows)
        XCTAssertTrue(table.contains("GFLOP/s"))
        if ProcessInfo.processInfo.environment["ISFGAN_BENCH"] == "1" {
            print(OpBenchmarks.table(OpBenchmarks.run(repeats: 5, size: .full)))
        }
    }
}
