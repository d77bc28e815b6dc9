/// Image resizing of [N, C, H, W] tensors, as PyTorch's `F.interpolate`. Every mode is a
/// separable resampling (`ResampleTable`), differentiable to any order.
extension Tensor {
    /// Bilinear resize to `height`×`width` with `align_corners=False` and no antialiasing
    /// (`F.interpolate(x, size, mode='bilinear')`).
    public func resizedBilinear(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "resizedBilinear: input \(describe(shape)) is not 4-D")
        precondition(height >= 1 && width >= 1, "resizedBilinear: empty output size")
        return resampled(
            rows: .bilinear(from: shape[2], to: height),
            columns: .bilinear(from: shape[3], to: width), op: "resizedBilinear")
    }

    /// Area resize (`F.interpolate(x, size, mode='area')`): the average of each output
    /// cell's adaptive-pooling window; the same as `adaptiveAvgPool2d`.
    public func resizedArea(height: Int, width: Int) -> Tensor {
        adaptiveAvgPool2d(height: height, width: width)
    }

    /// Nearest-neighbour upsampling by an integer `factor` (each pixel becomes a
    /// `factor`×`factor` block, as `F.interpolate(x, scale_factor=factor)`).
    public func upsampledNearest(factor: Int) -> Tensor {
        precondition(rank == 4, "upsampledNearest: input \(describe(shape)) is not 4-D")
        precondition(factor >= 1, "upsampledNearest: factor \(factor) must be ≥ 1")
        return resampled(
            rows: .nearest(from: shape[2], factor: factor),
            columns: .nearest(from: shape[3], factor: factor), op: "upsampledNearest")
    }
}
