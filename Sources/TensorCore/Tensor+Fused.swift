import Foundation

/// Fused elementwise epilogues of the model layers: one pass over the activations instead
/// of four (StyleGAN2's styled convolution spends as long on these passes as on the
/// convolution at high resolution, where the activations are large and the channels few).
extension Tensor {
    /// `leakyRelu(x·scale[n,c] + noiseWeight·noise[n,0,h,w] + bias[c], slope) · gain`.
    ///
    /// x [N, C, H, W]; scale [N, C] or nil (1); noise [1 or N, 1, H, W] or nil (0),
    /// noiseWeight [1]; bias [C]. StyleGAN2's demodulation, noise injection and fused
    /// leaky ReLU in one op; differentiable in every input (first order; the backward is
    /// written in tensor ops, so it differentiates again too).
    public static func scaledNoisyLeakyRelu(
        _ x: Tensor, scale: Tensor?, noise: Tensor?, noiseWeight: Tensor?, bias: Tensor,
        slope: Float, gain: Float
    ) -> Tensor {
        precondition(x.rank == 4, "scaledNoisyLeakyRelu: x \(describe(x.shape)) is not NCHW")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        precondition(
            bias.count == c, "scaledNoisyLeakyRelu: bias \(describe(bias.shape)) for \(c) channels")
        if let scale {
            precondition(
                scale.shape == [n, c],
                "scaledNoisyLeakyRelu: scale \(describe(scale.shape)), want [\(n), \(c)]")
        }
        if let noise {
            precondition(
                noise.rank == 4 && (noise.shape[0] == 1 || noise.shape[0] == n)
                    && noise.shape[1] == 1
                    && noise.shape[2] == h && noise.shape[3] == w && noiseWeight?.count == 1,
                "scaledNoisyLeakyRelu: noise \(describe(noise.shape)) for x \(describe(x.shape))")
        }
        let xc = x.contiguousValues()
        let sc = scale?.contiguousValues(), nc = noise?.contiguousValues()
        let bc = bias.contiguousValues()
        let nw: Float = noiseWeight?.contiguousValues().pointer[0] ?? 0
        let out = Tensor(uninitializedShape: x.shape)
        let plane = h * w
        let px = xc.pointer, po = out.pointer, pb = bc.pointer
        let ps = sc?.pointer, pn = nc?.pointer
        let noiseBatch = noise?.shape[0] ?? 1
        Threads.parallelFor(n * c, grain: Swift.max(1, 16384 / Swift.max(plane, 1))) { planes in
            for p in planes {
                let (b, ch) = (p / c, p % c)
                let s = ps?[p] ?? 1, bb = pb[ch]
                let src = px + p * plane, dst = po + p * plane
                if let pn {
                    let nz = pn + (noiseBatch == 1 ? 0 : b) * plane
                    for i in 0..<plane {
                        let v = src[i] * s + nw * nz[i] + bb
                        dst[i] = (v > 0 ? v : v * slope) * gain
                    }
                } else {
                    for i in 0..<plane {
                        let v = src[i] * s + bb
                        dst[i] = (v > 0 ? v : v * slope) * gain
                    }
                }
            }
        }
        var inputs = [x, bias]
        if let scale { inputs.append(scale) }
        if let noise, let noiseWeight { inputs += [noise, noiseWeight] }
        return Tensor.recorded(out, op: "scaledNoisyLeakyRelu", inputs: inputs) { g, needs in
            // Rebuild the pre-activation with ops so that this backward differentiates too.
            var pre = scale.map { x * $0.reshaped([n, c, 1, 1]) } ?? x
            if let noise, let noiseWeight { pre = pre + noise * noiseWeight }
            pre = pre + bias.reshaped([1, c, 1, 1])
            let gy =
                g * ElementwiseKernels.map(pre.detached(), LeakyReluSlopeF(slope: slope)) * gain
            var grads: [Tensor?] = [
                needs[0] ? (scale.map { gy * $0.reshaped([n, c, 1, 1]) } ?? gy) : nil,
                needs[1] ? gy.sum(axes: [0, 2, 3]).reshaped(bias.shape) : nil,
            ]
            if let scale {
                grads.append(needs[2] ? (gy * x).sum(axes: [2, 3]).reshaped(scale.shape) : nil)
            }
            if let noise, let noiseWeight {
                let k = grads.count
                grads.append(
                    needs[k]
                        ? (gy.sum(axis: 1, keepDims: true) * noiseWeight).summed(
                            toShape: noise.shape) : nil)
                grads.append(needs[k + 1] ? (gy * noise).sum().reshaped(noiseWeight.shape) : nil)
            }
            return grads
        }
    }
}
