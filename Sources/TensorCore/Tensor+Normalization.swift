/// Normalisation layers' arithmetic, as PyTorch defines it. All are written with
/// differentiable tensor ops, so they differentiate to any order. Variances are biased
/// (divided by n), as PyTorch's normalisation layers use.
extension Tensor {
    /// PyTorch's default epsilon of LayerNorm, InstanceNorm and BatchNorm.
    public static let normalizationEpsilon: Float = 1e-5

    /// PixelNorm's epsilon in StyleGAN2 (rosinality's `PixelNorm`).
    public static let pixelNormEpsilon: Float = 1e-8

    /// `(x − mean) / sqrt(var + eps)` over `axes`, with the biased variance.
    public func standardized(axes: [Int], eps: Float) -> Tensor {
        let centred = self - mean(axes: axes, keepDims: true)
        let variance = centred.squared().mean(axes: axes, keepDims: true)
        return centred * (variance + eps).rsqrt()
    }

    /// `nn.LayerNorm(C)` over the last axis: standardise each row, then
    /// `· weight + bias` when given (each [C]).
    public func layerNorm(
        weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = normalizationEpsilon
    ) -> Tensor {
        precondition(rank >= 1, "layerNorm: scalar input")
        let c = shape[rank - 1]
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let p {
                precondition(p.shape == [c], "layerNorm: \(name) \(describe(p.shape)), want [\(c)]")
            }
        }
        var y = standardized(axes: [rank - 1], eps: eps)
        if let weight { y = y * weight }
        if let bias { y = y + bias }
        return y
    }

    /// `nn.InstanceNorm2d`: each sample's channel standardised over H and W of
    /// [N, C, H, W], then `· weight + bias` per channel when given (each [C]).
    public func instanceNorm2d(
        weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = normalizationEpsilon
    ) -> Tensor {
        precondition(rank == 4, "instanceNorm2d: input \(describe(shape)) is not 4-D")
        return standardized(axes: [2, 3], eps: eps)
            .channelAffine(weight: weight, bias: bias, op: "instanceNorm2d")
    }

    /// `nn.InstanceNorm1d` (no affine): each row standardised over the last axis.
    ///
    /// InstanceNorm1d reads its input as [N, C, L] and normalises over L; ISF-GAN's
    /// "adain" variant feeds it codes [B, layers, 512], so every 512-number code row is
    /// standardised on its own. Unbatched [C, L] input works the same way.
    public func instanceNorm1d(eps: Float = normalizationEpsilon) -> Tensor {
        precondition(
            rank == 2 || rank == 3, "instanceNorm1d: input \(describe(shape)) is not 2-D or 3-D")
        return standardized(axes: [rank - 1], eps: eps)
    }

    /// `nn.BatchNorm{1,2}d` in evaluation mode: `(x − runningMean) / sqrt(runningVar + eps)
    /// · weight + bias` with every parameter [C] along axis 1 of [N, C, …].
    public func batchNormInference(
        runningMean: Tensor, runningVariance: Tensor, weight: Tensor? = nil, bias: Tensor? = nil,
        eps: Float = normalizationEpsilon
    ) -> Tensor {
        precondition(rank >= 2, "batchNorm: input \(describe(shape)) has no channel axis")
        let c = shape[1]
        for (name, p) in [("runningMean", runningMean), ("runningVariance", runningVariance)] {
            precondition(p.shape == [c], "batchNorm: \(name) \(describe(p.shape)), want [\(c)]")
        }
        let view = [1, c] + [Int](repeating: 1, count: rank - 2)
        let scale = (runningVariance.reshaped(view) + eps).rsqrt()
        let y = (self - runningMean.reshaped(view)) * scale
        return y.channelAffine(weight: weight, bias: bias, op: "batchNorm")
    }

    /// StyleGAN2's PixelNorm: `x · rsqrt(mean(x², axis 1) + 1e-8)`, normalising each
    /// position's feature vector along the channel axis of [N, C, …].
    public func pixelNorm(eps: Float = pixelNormEpsilon) -> Tensor {
        precondition(rank >= 2, "pixelNorm: input \(describe(shape)) has no channel axis")
        return self * (squared().mean(axes: [1], keepDims: true) + eps).rsqrt()
    }

    /// `· weight + bias` per channel (axis 1) when given.
    private func channelAffine(weight: Tensor?, bias: Tensor?, op: String) -> Tensor {
        let c = shape[1]
        let view = [1, c] + [Int](repeating: 1, count: rank - 2)
        var y = self
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let p {
                precondition(p.shape == [c], "\(op): \(name) \(describe(p.shape)), want [\(c)]")
            }
        }
        if let weight { y = y * weight.reshaped(view) }
        if let bias { y = y + bias.reshaped(view) }
        return y
    }
}
