/// upfirdn2d: upsample, FIR filter, downsample (StyleGAN2's resampling op).
///
/// Semantics are those of rosinality/stylegan2-pytorch's `upfirdn2d_native`:
///
/// 1. upsample each [H, W] plane by inserting `up − 1` zeros after every sample;
/// 2. pad with zeros (`pad0` before, `pad1` after; a negative pad crops);
/// 3. convolve with `kernel` in the true sense (the kernel is flipped), valid region only;
/// 4. keep every `down`-th sample, starting with the first.
///
/// Along one axis of length `L` this gives `⌊(L·up + pad0 + pad1 − k) / down⌋ + 1` samples.
///
/// ## Backward
///
/// Along one axis the forward reads upsampled position `m = o·down + a − pad0` with weight
/// `kernel[k − 1 − a]`, so input sample `i` (at `m = i·up`) collects from output `o` the
/// weight `kernel[o·down − i·up + k − 1 − pad0]`. An upfirdn with `up' = down`,
/// `down' = up`, the flipped kernel and `pad0' = k − 1 − pad0` computes exactly
/// `Σ_o g[o] · kernel[o·down − j + k − 1 − pad0]` at position `j = i·up`; the after-pad
/// `pad1' = L·up − O·down + pad0 − up + 1` makes its output `L` samples long. That op is
/// recorded with its own backward (the same rule, which maps it back to the forward), so
/// gradients of gradients work (the R1 penalty differentiates through the blurs).

/// Which kernel runs an upfirdn2d.
public enum UpFirDnImplementation: Sendable {
    /// Two 1-D passes when the kernel is an outer product (StyleGAN2's always is), else
    /// direct summation.
    case automatic
    /// Direct summation over the 2-D kernel: the reference path.
    case direct
}

extension Tensor {
    /// upfirdn2d with the same factors and pads on both axes, as rosinality's
    /// `upfirdn2d(input, kernel, up, down, pad=(pad0, pad1))`.
    ///
    /// - Parameters:
    ///   - kernel: the FIR filter [kh, kw]; a constant (no gradient flows into it).
    ///   - up: upsampling factor (≥ 1).
    ///   - down: downsampling factor (≥ 1).
    ///   - pad: zeros added before and after each spatial axis; negative values crop.
    /// - Returns: [N, C, Ho, Wo] for `self` [N, C, H, W].
    public func upfirdn2d(
        kernel: Tensor, up: Int = 1, down: Int = 1, pad: (Int, Int),
        implementation: UpFirDnImplementation = .automatic
    ) -> Tensor {
        let axis = UpFirDnAxis(up: up, down: down, pad0: pad.0, pad1: pad.1)
        return upfirdn2d(kernel: kernel, x: axis, y: axis, implementation: implementation)
    }

    /// upfirdn2d with separate pads per axis, in rosinality's order `(x0, x1, y0, y1)`
    /// (x is the width axis).
    public func upfirdn2d(
        kernel: Tensor, up: Int = 1, down: Int = 1, pad: (Int, Int, Int, Int),
        implementation: UpFirDnImplementation = .automatic
    ) -> Tensor {
        upfirdn2d(
            kernel: kernel, x: UpFirDnAxis(up: up, down: down, pad0: pad.0, pad1: pad.1),
            y: UpFirDnAxis(up: up, down: down, pad0: pad.2, pad1: pad.3),
            implementation: implementation)
    }

    /// upfirdn2d with each axis described separately (`x` = width, `y` = height).
    public func upfirdn2d(
        kernel: Tensor, x xAxis: UpFirDnAxis, y yAxis: UpFirDnAxis,
        implementation: UpFirDnImplementation = .automatic
    ) -> Tensor {
        precondition(rank == 4, "upfirdn2d: input \(describe(shape)) is not [N, C, H, W]")
        precondition(kernel.rank == 2, "upfirdn2d: kernel \(describe(kernel.shape)) is not 2-D")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let (kh, kw) = (kernel.shape[0], kernel.shape[1])
        precondition(kh > 0 && kw > 0, "upfirdn2d: empty kernel \(describe(kernel.shape))")
        let k = kernel.scalars
        let planes = contiguousValues().reshapedRaw([n * c, h, w])  // [N·C, H, W]

        let raw: Tensor
        if implementation == .automatic, let (col, row) = Tensor.outerFactors(k, kh, kw) {
            raw = ResampleKernels.separable(
                planes, rows: .upFirDn(length: h, kernel: col, axis: yAxis),
                columns: .upFirDn(length: w, kernel: row, axis: xAxis))
        } else {
            raw = ResampleKernels.upFirDnDirect(
                planes, kernel: k, kernelHeight: kh, kernelWidth: kw, x: xAxis, y: yAxis)
        }
        let out = raw.reshapedRaw([n, c, raw.shape[1], raw.shape[2]])  // [N, C, Ho, Wo]

        let flipped = Tensor(shape: [kh, kw], Array(k.reversed()))
        let gx = xAxis.adjoint(length: w, kernelLength: kw)
        let gy = yAxis.adjoint(length: h, kernelLength: kh)
        return Tensor.recorded(out, op: "upfirdn2d", inputs: [self]) { g, _ in
            [g.upfirdn2d(kernel: flipped, x: gx, y: gy, implementation: implementation)]
        }
    }

    /// `(column, row)` with `kernel[i][j] == column[i] · row[j]` to float32 rounding, or
    /// nil when the kernel is not an outer product.
    static func outerFactors(_ k: [Float], _ kh: Int, _ kw: Int) -> ([Float], [Float])? {
        var peak = 0
        for i in k.indices where Swift.abs(k[i]) > Swift.abs(k[peak]) { peak = i }
        let m = k[peak]
        if m == 0 {
            return ([Float](repeating: 0, count: kh), [Float](repeating: 0, count: kw))
        }
        let (pi, pj) = (peak / kw, peak % kw)
        let row = Array(k[(pi * kw)..<(pi * kw + kw)])
        let column = (0..<kh).map { k[$0 * kw + pj] / m }
        // A few ulps of the largest tap: the two paths then agree to float32 rounding.
        let tolerance = 4 * Float.ulpOfOne * Swift.abs(m)
        for i in 0..<kh {
            for j in 0..<kw where Swift.abs(k[i * kw + j] - column[i] * row[j]) > tolerance {
                return nil
            }
        }
        return (column, row)
    }
}
