import CDNNL
import Foundation

/// Which implementation the matrix-product and convolution ops run.
///
/// `.oneDNN` is the fast path; `.reference` runs the plain loops of `ConvReference` and
/// `MatmulReference` (slow; for debugging and as the tests' oracle). The default is
/// `.oneDNN` unless the environment sets `ISFGAN_KERNELS=reference`. Every op also takes
/// the implementation per call, and its backward uses the same one.
public enum KernelImplementation: Sendable, Equatable {
    case oneDNN
    case reference

    nonisolated(unsafe) public static var current: KernelImplementation =
        ProcessInfo.processInfo.environment["ISFGAN_KERNELS"] == "reference" ? .reference : .oneDNN

    /// Runs `body` with `current` set to `implementation`.
    public static func with<T>(_ implementation: KernelImplementation, _ body: () throws -> T)
        rethrows -> T
    {
        let saved = current
        current = implementation
        defer { current = saved }
        return try body()
    }
}

/// Stride, padding and groups of a 2-D convolution (PyTorch's `Conv2d` arguments; no
/// dilation).
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public var stride: (h: Int, w: Int)
    public var padding: (h: Int, w: Int)
    public var groups: Int

    public init(
        stride: (h: Int, w: Int) = (1, 1), padding: (h: Int, w: Int) = (0, 0),
        groups: Int = 1
    ) {
        self.stride = stride
        self.padding = padding
        self.groups = groups
    }

    public init(stride: Int, padding: Int, groups: Int = 1) {
        self.init(stride: (stride, stride), padding: (padding, padding), groups: groups)
    }

    public static func == (a: ConvGeometry, b: ConvGeometry) -> Bool {
        a.stride == b.stride && a.padding == b.padding && a.groups == b.groups
    }

    public func hash(into h: inout Hasher) {
        h.combine(stride.h); h.combine(stride.w)
        h.combine(padding.h); h.combine(padding.w)
        h.combine(groups)
    }

    public var description: String {
        "stride \(stride.h)x\(stride.w), padding \(padding.h)x\(padding.w), groups \(groups)"
    }

    /// Checks an input [N, C, H, W] and weight [O, C/groups, kh, kw] pair, naming `op`
    /// and both shapes when they do not fit, and returns the output shape [N, O, Ho, Wo].
    public func checkedOutputShape(input x: [Int], weight w: [Int], op: String) throws -> [Int] {
        let pair = "input \(describe(x)) and weight \(describe(w)) (\(self))"
        guard x.count == 4, w.count == 4 else {
            throw ShapeError(op: op, "expected 4-D input and weight, got \(pair)")
        }
        guard groups > 0, stride.h > 0, stride.w > 0, padding.h >= 0, padding.w >= 0 else {
            throw ShapeError(op: op, "bad settings: \(self)")
        }
        guard x[1] == w[1] * groups, w[0] % groups == 0 else {
            throw ShapeError(
                op: op,
                "channels do not match: \(pair) needs input channels = "
                    + "weight dim 1 × groups and output channels divisible by groups")
        }
        let ho = (x[2] + 2 * padding.h - w[2]) / stride.h + 1
        let wo = (x[3] + 2 * padding.w - w[3]) / stride.w + 1
        guard x[2] + 2 * padding.h >= w[2], x[3] + 2 * padding.w >= w[3], w[2] > 0, w[3] > 0
        else {
            throw ShapeError(op: op, "kernel larger than the padded input: \(pair)")
        }
        return [x[0], w[0], ho, wo]
    }

    /// Output shape [N, O, Ho, Wo] of a valid input/weight pair.
    func outputShape(input x: [Int], weight w: [Int]) -> [Int] {
        must { try checkedOutputShape(input: x, weight: w, op: "conv2d") }
    }

    /// Dims and strides of a weight [O, C/g, kh, kw] as oneDNN wants them: 5-D
    /// [g, O/g, C/g, kh, kw] when grouped.
    func dnnlWeight(_ shape: [Int], _ strides: [Int]) -> (dims: [Int], strides: [Int]) {
        if groups == 1 { return (shape, strides) }
        return (
            [groups, shape[0] / groups] + shape[1...],
            [strides[0] * (shape[0] / groups)] + strides
        )
    }
}

/// The three kernels of the convolution family, on plain tensors without autodiff:
/// forward, input gradient (which is also the transposed convolution) and weight
/// gradient. Results are new contiguous tensors; inputs may be strided views.
public enum ConvKernels {
    /// y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C/g, kh, kw]) + bias [O].
    public static func forward(
        _ x: Tensor, weight w: Tensor, bias: Tensor?, geometry: ConvGeometry,
        implementation: KernelImplementation
    ) -> Tensor {
        let yShape = geometry.outputShape(input: x.shape, weight: w.shape)
        if implementation == .reference || Shape.count(yShape) == 0 || x.shape[1] == 0 {
            let y = ConvReference.forward(
                x.scalars, shape: x.shape, weight: w.scalars, shape: w.shape,
                bias: bias?.scalars, geometry: geometry)
            return Tensor(shape: yShape, y)
        }
        let y = Tensor(uninitializedShape: yShape)
        ConvPlan.execute(.forward, x: x, w: w, y: y, bias: bias, geometry: geometry)
        return y
    }

    /// gx [N, C, H, W] = ∂⟨conv(x, w), gy⟩/∂x for an input of shape `inputShape`.
    public static func inputGradient(
        _ gy: Tensor, weight w: Tensor, inputShape: [Int], geometry: ConvGeometry,
        implementation: KernelImplementation
    ) -> Tensor {
        let yShape = geometry.outputShape(input: inputShape, weight: w.shape)
        precondition(
            yShape == gy.shape,
            "conv2d input gradient: output gradient \(describe(gy.shape)) does not match "
                + "\(describe(yShape)) from input \(describe(inputShape)) and weight "
                + "\(describe(w.shape))")
        if implementation == .reference || Shape.count(yShape) == 0
            || Shape.count(inputShape) == 0
        {
            let gx = ConvReference.inputGradient(
                gy.scalars, weight: w.scalars, shape: w.shape, inputShape: inputShape,
                geometry: geometry)
            return Tensor(shape: inputShape, gx)
        }
        let gx = Tensor(uninitializedShape: inputShape)
        ConvPlan.execute(.inputGradient, x: gx, w: w, y: gy, bias: nil, geometry: geometry)
        return gx
    }

    /// gw [O, C/g, kh, kw] = ∂⟨conv(x, w), gy⟩/∂w for a weight of shape `weightShape`.
    public static func weightGradient(
        _ x: Tensor, outputGradient gy: Tensor, weightShape: [Int], geometry: ConvGeometry,
        implementation: KernelImplementation
    ) -> Tensor {
        let yShape = geometry.outputShape(input: x.shape, weight: weightShape)
        precondition(
            yShape == gy.shape,
            "conv2d weight gradient: output gradient \(describe(gy.shape)) does not match "
                + "\(describe(yShape)) from input \(describe(x.shape)) and weight "
                + "\(describe(weightShape))")
        if implementation == .reference || Shape.count(yShape) == 0 || x.count == 0 {
            let gw = ConvReference.weightGradient(
                x.scalars, shape: x.shape, outputGradient: gy.scalars,
                weightShape: weightShape, geometry: geometry)
            return Tensor(shape: weightShape, gw)
        }
        let gw = Tensor(uninitializedShape: weightShape)
        ConvPlan.execute(.weightGradient, x: x, w: gw, y: gy, bias: nil, geometry: geometry)
        return gw
    }
}

/// A cached oneDNN convolution primitive with the reorders between the caller's strided
/// NCHW tensors and the blocked layouts the primitive chose (`format_tag_any`).
final class ConvPlan: @unchecked Sendable {
    enum Kind: String {
        case forward, inputGradient, weightGradient
    }

    static let cache = DNNL.Cache<ConvPlan>()

    let primitive: DNNL.Primitive
    /// Inputs in call order, then the output.
    let inputs: [(id: Int32, argument: DNNLArgument)]
    let output: (id: Int32, argument: DNNLArgument)

    private init(
        primitive: DNNL.Primitive, inputs: [(Int32, DNNLArgument)],
        output: (Int32, DNNLArgument)
    ) {
        self.primitive = primitive
        self.inputs = inputs.map { (id: $0.0, argument: $0.1) }
        self.output = (id: output.0, argument: output.1)
    }

    /// Strides oneDNN can take directly: the tensor's own, unless a broadcast (zero)
    /// stride would alias elements, where a contiguous copy is used instead.
    static func usable(_ t: Tensor) -> Tensor {
        let aliased = zip(t.shape, t.strides).contains { $0 > 1 && $1 <= 0 }
        return aliased ? t.contiguousValues() : t
    }

    /// Below this many input and output channels per group, a grouped convolution runs
    /// as one grouped oneDNN primitive; from it on, as one ungrouped primitive per group
    /// on channel slices. Measured at 512 channels per group (StyleGAN2's per-sample
    /// weights, batch 4, 2 threads): the ungrouped kernels ran 1.3× (data) to 1.8×
    /// (weights) faster than oneDNN 2.6's grouped ones. A heuristic: the cut-off is a
    /// guess between depthwise (1 per group, must stay grouped) and that measurement.
    static let splitGroupsFrom = 32

    /// Runs one kernel of the family: reads two of `x` [N, C, H, W], `w` [O, C/g, kh, kw]
    /// and `y` [N, O, Ho, Wo] and writes the third (x for `.inputGradient`, w for
    /// `.weightGradient`, y for `.forward`), which may be a strided view.
    static func execute(
        _ kind: Kind, x: Tensor, w: Tensor, y: Tensor, bias: Tensor?, geometry g: ConvGeometry
    ) {
        let (groups, og, cg) = (g.groups, w.shape[0] / g.groups, w.shape[1])
        if groups > 1, og >= splitGroupsFrom, cg >= splitGroupsFrom {
            var single = g
            single.groups = 1
            for i in 0..<groups {
                let oRange = (i * og)..<((i + 1) * og), cRange = (i * cg)..<((i + 1) * cg)
                execute(
                    kind, x: x.rawSlice(1, cRange), w: w.rawSlice(0, oRange),
                    y: y.rawSlice(1, oRange), bias: bias?.rawSlice(0, oRange), geometry: single)
            }
            return
        }
        let xs = usable(x), ws = usable(w), ys = usable(y)
        let key =
            "\(kind.rawValue) x\(xs.shape):\(xs.strides) w\(ws.shape):\(ws.strides) "
            + "y\(ys.shape):\(ys.strides) bias \(bias != nil) \(g) threads \(Threads.count)"
        let plan = cache.value(key) {
            build(
                kind, xShape: xs.shape, xStrides: xs.strides, wShape: ws.shape,
                wStrides: ws.strides, yShape: ys.shape, yStrides: ys.strides,
                hasBias: bias != nil, geometry: g)
        }
        switch kind {
        case .forward:
            // The plan describes the bias as dense [O].
            plan.run(inputs: [xs, ws] + (bias.map { [$0.contiguousValues()] } ?? []), output: y)
        case .inputGradient:
            plan.run(inputs: [ys, ws], output: x)
        case .weightGradient:
            plan.run(inputs: [xs, ys], output: w)
        }
    }

    private static func build(
        _ kind: Kind, xShape: [Int], xStrides: [Int], wShape: [Int], wStrides: [Int],
        yShape: [Int], yStrides: [Int], hasBias: Bool, geometry g: ConvGeometry
    ) -> ConvPlan {
        let (wDims, wDnnlStrides) = g.dnnlWeight(wShape, wStrides)
        let xUser = DNNL.descriptor(xShape, strides: xStrides)
        let wUser = DNNL.descriptor(wDims, strides: wDnnlStrides)
        let yUser = DNNL.descriptor(yShape, strides: yStrides)
        var xAny = DNNL.anyDescriptor(xShape)
        var wAny = DNNL.anyDescriptor(wDims)
        var yAny = DNNL.anyDescriptor(yShape)
        var bias = DNNL.descriptor([wShape[0]], strides: [1])
        let strides: [Int64] = [Int64(g.stride.h), Int64(g.stride.w)]
        let padL: [Int64] = [Int64(g.padding.h), Int64(g.padding.w)]
        // Right padding that makes oneDNN's size formula give exactly Ho, Wo (it may be
        // smaller than the left padding when the last rows of the input are not read).
        let padR: [Int64] = [
            Int64((yShape[2] - 1) * g.stride.h + wShape[2] - xShape[2] - g.padding.h),
            Int64((yShape[3] - 1) * g.stride.w + wShape[3] - xShape[3] - g.padding.w),
        ]

        // The forward descriptor: the primitive itself for `.forward`, the layout hint
        // that oneDNN requires for the two backward primitives.
        var forwardDesc = dnnl_convolution_desc_t()
        let withBias = kind == .forward && hasBias
        let status = withUnsafePointer(to: &bias) { b in
            dnnl_convolution_forward_desc_init(
                &forwardDesc, dnnl_forward_training, dnnl_convolution_direct, &xAny, &wAny,
                withBias ? b : nil, &yAny, strides, padL, padR)
        }
        DNNL.check(status, "convolution_forward_desc_init x\(xShape) w\(wDims) y\(yShape) \(g)")
        var forwardPD: dnnl_primitive_desc_t?
        DNNL.check(
            dnnl_primitive_desc_create(&forwardPD, &forwardDesc, nil, DNNL.engine, nil),
            "primitive_desc_create (convolution forward)")

        switch kind {
        case .forward:
            let pd = forwardPD!
            var inputs: [(Int32, DNNLArgument)] = [
                (
                    DNNL_ARG_SRC,
                    DNNLArgument(
                        user: xUser, chosen: DNNL.query(pd, dnnl_query_src_md), isOutput: false)
                ),
                (
                    DNNL_ARG_WEIGHTS,
                    DNNLArgument(
                        user: wUser, chosen: DNNL.query(pd, dnnl_query_weights_md),
                        isOutput: false)
                ),
            ]
            if hasBias {
                inputs.append(
                    (
                        DNNL_ARG_BIAS,
                        DNNLArgument(
                            user: bias, chosen: DNNL.query(pd, dnnl_query_weights_md, index: 1),
                            isOutput: false)
                    ))
            }
            let out = DNNLArgument(
                user: yUser, chosen: DNNL.query(pd, dnnl_query_dst_md), isOutput: true)
            return ConvPlan(
                primitive: DNNL.Primitive(pd), inputs: inputs,
                output: (DNNL_ARG_DST, out))

        case .inputGradient:
            defer { dnnl_primitive_desc_destroy(forwardPD) }
            var desc = dnnl_convolution_desc_t()
            DNNL.check(
                dnnl_convolution_backward_data_desc_init(
                    &desc, dnnl_convolution_direct, &xAny, &wAny, &yAny, strides, padL, padR),
                "convolution_backward_data_desc_init")
            var pd: dnnl_primitive_desc_t?
            DNNL.check(
                dnnl_primitive_desc_create(&pd, &desc, nil, DNNL.engine, forwardPD),
                "primitive_desc_create (convolution backward data)")
            let inputs: [(Int32, DNNLArgument)] = [
                (
                    DNNL_ARG_DIFF_DST,
                    DNNLArgument(
                        user: yUser, chosen: DNNL.query(pd!, dnnl_query_diff_dst_md),
                        isOutput: false)
                ),
                (
                    DNNL_ARG_WEIGHTS,
                    DNNLArgument(
                        user: wUser, chosen: DNNL.query(pd!, dnnl_query_weights_md),
                        isOutput: false)
                ),
            ]
            let out = DNNLArgument(
                user: xUser, chosen: DNNL.query(pd!, dnnl_query_diff_src_md), isOutput: true)
            return ConvPlan(
                primitive: DNNL.Primitive(pd!), inputs: inputs,
                output: (DNNL_ARG_DIFF_SRC, out))

        case .weightGradient:
            defer { dnnl_primitive_desc_destroy(forwardPD) }
            var desc = dnnl_convolution_desc_t()
            DNNL.check(
                dnnl_convolution_backward_weights_desc_init(
                    &desc, dnnl_convolution_direct, &xAny, &wAny, nil, &yAny, strides, padL,
                    padR),
                "convolution_backward_weights_desc_init")
            var pd: dnnl_primitive_desc_t?
            DNNL.check(
                dnnl_primitive_desc_create(&pd, &desc, nil, DNNL.engine, forwardPD),
                "primitive_desc_create (convolution backward weights)")
            let inputs: [(Int32, DNNLArgument)] = [
                (
                    DNNL_ARG_SRC,
                    DNNLArgument(
                        user: xUser, chosen: DNNL.query(pd!, dnnl_query_src_md), isOutput: false)
                ),
                (
                    DNNL_ARG_DIFF_DST,
                    DNNLArgument(
                        user: yUser, chosen: DNNL.query(pd!, dnnl_query_diff_dst_md),
                        isOutput: false)
                ),
            ]
            let out = DNNLArgument(
                user: wUser, chosen: DNNL.query(pd!, dnnl_query_diff_weights_md),
                isOutput: true)
            return ConvPlan(
                primitive: DNNL.Primitive(pd!), inputs: inputs,
                output: (DNNL_ARG_DIFF_WEIGHTS, out))
        }
    }

    /// Runs the plan: reorders `inputs` (in plan order, with the strides the plan was
    /// made for) into the chosen layouts where needed, runs the primitive, and leaves the
    /// result in `output` (a view with the strides the plan was made for).
    func run(inputs tensors: [Tensor], output: Tensor) {
        precondition(tensors.count == inputs.count)
        var keep: [TensorStorage] = []
        var args: [(Int32, dnnl_memory_desc_t, UnsafeMutableRawPointer)] = []
        for (t, input) in zip(tensors, inputs) {
            let p = input.argument.input(t.pointer, keep: &keep)
            args.append((input.id, input.argument.chosen, p))
        }
        let o = self.output.argument.output(output.pointer, keep: &keep)
        args.append((self.output.id, self.output.argument.chosen, o))
        primitive.execute(args)
        self.output.argument.finishOutput(o, into: output.pointer)
        withExtendedLifetime((tensors, output)) {}
    }
}
