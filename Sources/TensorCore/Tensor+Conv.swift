/// 2-D convolution and transposed convolution with PyTorch's semantics and weight
/// layouts, differentiable to any order.
///
/// The family is three ops that are each other's derivatives. With the bilinear form
/// `B(x, w, gy) = ⟨conv2d(x, w), gy⟩`:
///
///     conv2d(x, w)                    = ∂B/∂gy
///     conv2dInputGradient(gy, w)      = ∂B/∂x    (also the transposed convolution)
///     conv2dWeightGradient(x, gy)     = ∂B/∂w
///
/// so the backward of each is written with the other two, and gradients of gradients
/// (the R1 penalty) need nothing more. Weight gradients are skipped when the weight does
/// not need one (a frozen network costs only its input gradients).
extension Tensor {
    /// 2-D convolution (PyTorch's `F.conv2d`, no dilation).
    ///
    /// x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O] → [N, O, Ho, Wo] with
    /// `Ho = (H + 2·padding − kh) / stride + 1`. With `groups = N` and x reshaped to
    /// [1, N·C, H, W], each sample gets its own weights (StyleGAN2's modulated conv).
    ///
    /// - Parameter implementation: `.oneDNN` or the `.reference` loops; the backward
    ///   uses the same.
    public func conv2d(
        _ weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
        groups: Int = 1, implementation: KernelImplementation = .current
    ) -> Tensor {
        conv2d(
            weight, bias: bias,
            geometry: ConvGeometry(
                stride: stride, padding: padding,
                groups: groups),
            implementation: implementation)
    }

    /// 2-D convolution with separate vertical and horizontal settings.
    public func conv2d(
        _ weight: Tensor, bias: Tensor? = nil, geometry: ConvGeometry,
        implementation: KernelImplementation = .current
    ) -> Tensor {
        let yShape = must {
            try geometry.checkedOutputShape(input: shape, weight: weight.shape, op: "conv2d")
        }
        if let bias {
            precondition(
                bias.shape == [weight.shape[0]],
                "conv2d: bias \(describe(bias.shape)) does not match weight "
                    + "\(describe(weight.shape)) (want [\(weight.shape[0])])")
        }
        let out = ConvKernels.forward(
            self, weight: weight, bias: bias, geometry: geometry, implementation: implementation)
        assert(out.shape == yShape)
        let x = self, xShape = shape, wShape = weight.shape
        let inputs = [x, weight] + (bias.map { [$0] } ?? [])
        return Tensor.recorded(out, op: "conv2d", inputs: inputs) { g, needs in
            // g [N, O, Ho, Wo]
            var grads: [Tensor?] = [
                needs[0]
                    ? Tensor.conv2dInputGradient(
                        g, weight: weight, inputShape: xShape, geometry: geometry,
                        implementation: implementation) : nil,
                needs[1]
                    ? Tensor.conv2dWeightGradient(
                        x, outputGradient: g, weightShape: wShape, geometry: geometry,
                        implementation: implementation) : nil,
            ]
            if bias != nil { grads.append(needs[2] ? g.sum(axes: [0, 2, 3]) : nil) }
            return grads
        }
    }

    /// The gradient of a convolution's input: `∂⟨conv2d(x, weight), gy⟩/∂x` for x of
    /// shape `inputShape` (PyTorch's `torch.nn.grad.conv2d_input`).
    ///
    /// gy [N, O, Ho, Wo], weight [O, C/groups, kh, kw] → [N, C, H, W]. This is also the
    /// transposed convolution of gy (see `convTranspose2d`).
    public static func conv2dInputGradient(
        _ gy: Tensor, weight: Tensor, inputShape: [Int], geometry: ConvGeometry,
        implementation: KernelImplementation = .current
    ) -> Tensor {
        let out = ConvKernels.inputGradient(
            gy, weight: weight, inputShape: inputShape, geometry: geometry,
            implementation: implementation)
        let wShape = weight.shape
        return Tensor.recorded(out, op: "conv2dInputGradient", inputs: [gy, weight]) {
            h, needs in
            // h [N, C, H, W]: the gradient flowing back into this op's output.
            [
                needs[0]
                    ? h.conv2d(weight, geometry: geometry, implementation: implementation)
                    : nil,
                needs[1]
                    ? Tensor.conv2dWeightGradient(
                        h, outputGradient: gy, weightShape: wShape, geometry: geometry,
                        implementation: implementation) : nil,
            ]
        }
    }

    /// The gradient of a convolution's weight: `∂⟨conv2d(x, w), gy⟩/∂w` for w of shape
    /// `weightShape` (PyTorch's `torch.nn.grad.conv2d_weight`).
    ///
    /// x [N, C, H, W], gy [N, O, Ho, Wo] → [O, C/groups, kh, kw].
    public static func conv2dWeightGradient(
        _ x: Tensor, outputGradient gy: Tensor, weightShape: [Int], geometry: ConvGeometry,
        implementation: KernelImplementation = .current
    ) -> Tensor {
        let out = ConvKernels.weightGradient(
            x, outputGradient: gy, weightShape: weightShape, geometry: geometry,
            implementation: implementation)
        let xShape = x.shape
        return Tensor.recorded(out, op: "conv2dWeightGradient", inputs: [x, gy]) {
            h, needs in
            // h [O, C/groups, kh, kw]
            [
                needs[0]
                    ? Tensor.conv2dInputGradient(
                        gy, weight: h, inputShape: xShape, geometry: geometry,
                        implementation: implementation) : nil,
                needs[1]
                    ? x.conv2d(h, geometry: geometry, implementation: implementation) : nil,
            ]
        }
    }

    /// Transposed 2-D convolution (PyTorch's `F.conv_transpose2d`, no dilation).
    ///
    /// x [N, C, H, W], weight [C, O/groups, kh, kw] (PyTorch's layout), bias [O] →
    /// [N, O, Ho, Wo] with `Ho = (H − 1)·stride − 2·padding + kh + outputPadding`.
    /// StyleGAN2 upsamples with 3×3, stride 2, padding 0 (16×16 → 33×33).
    public func convTranspose2d(
        _ weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0,
        outputPadding: Int = 0, groups: Int = 1,
        implementation: KernelImplementation = .current
    ) -> Tensor {
        let outShape = must {
            try Tensor.convTranspose2dShape(
                input: shape, weight: weight.shape, stride: stride, padding: padding,
                outputPadding: outputPadding, groups: groups)
        }
        // Seen from the convolution whose input gradient this is: its input is our
        // output, its output our input, and its weight [C, O/groups, kh, kw] is ours.
        let geometry = ConvGeometry(stride: stride, padding: padding, groups: groups)
        let y = Tensor.conv2dInputGradient(
            self, weight: weight, inputShape: outShape, geometry: geometry,
            implementation: implementation)
        guard let bias else { return y }
        precondition(
            bias.shape == [outShape[1]],
            "convTranspose2d: bias \(describe(bias.shape)) does not match "
                + "\(outShape[1]) output channels")
        return y + bias.reshaped([1, outShape[1], 1, 1])
    }

    /// Output shape of `convTranspose2d`, or an error naming the op and both shapes.
    public static func convTranspose2dShape(
        input x: [Int], weight w: [Int], stride: Int, padding: Int, outputPadding: Int,
        groups: Int
    ) throws -> [Int] {
        let pair = "input \(describe(x)) and weight \(describe(w))"
        guard x.count == 4, w.count == 4 else {
            throw ShapeError(op: "convTranspose2d", "expected 4-D \(pair)")
        }
        guard groups > 0, stride > 0, padding >= 0, outputPadding >= 0,
            outputPadding < stride
        else {
            throw ShapeError(
                op: "convTranspose2d",
                "bad settings stride \(stride), padding \(padding), outputPadding "
                    + "\(outputPadding) (must be below stride), groups \(groups)")
        }
        guard x[1] == w[0], w[0] % groups == 0 else {
            throw ShapeError(
                op: "convTranspose2d",
                "\(pair): input channels must equal weight dim 0 and divide by groups "
                    + "\(groups)")
        }
        let ho = (x[2] - 1) * stride - 2 * padding + w[2] + outputPadding
        let wo = (x[3] - 1) * stride - 2 * padding + w[3] + outputPadding
        guard ho > 0, wo > 0, x[2] > 0, x[3] > 0 else {
            throw ShapeError(op: "convTranspose2d", "\(pair) give an empty output")
        }
        return [x[0], w[1] * groups, ho, wo]
    }
}
