/// Average pooling. Both ops are separable resamplings (`ResampleTable`), so their
/// backward is the transposed resampling and is differentiable again (the discriminator's
/// R1 penalty differentiates through `avgPool2d` twice).
extension Tensor {
    /// Average over `kernelSize`×`kernelSize` windows moved by `stride` (default: the
    /// kernel size), without padding: PyTorch's `F.avg_pool2d(x, k, s)`.
    ///
    /// - Returns: [N, C, ⌊(H − k)/s⌋ + 1, ⌊(W − k)/s⌋ + 1] for `self` [N, C, H, W].
    public func avgPool2d(kernelSize k: Int, stride: Int? = nil) -> Tensor {
        let s = stride ?? k
        precondition(rank == 4, "avgPool2d: input \(describe(shape)) is not [N, C, H, W]")
        precondition(k >= 1 && s >= 1, "avgPool2d: kernel \(k) and stride \(s) must be ≥ 1")
        precondition(
            shape[2] >= k && shape[3] >= k,
            "avgPool2d: kernel \(k) is larger than the input \(describe(shape))")
        func table(_ length: Int) -> ResampleTable {
            let out = (length - k) / s + 1
            let w = 1 / Float(k)
            return ResampleTable(inputCount: length, outputCount: out) { o in
                (0..<k).map { (o * s + $0, w) }
            }
        }
        return resampled(rows: table(shape[2]), columns: table(shape[3]), op: "avgPool2d")
    }

    /// PyTorch's `F.adaptive_avg_pool2d(x, (height, width))`: output cell `o` averages
    /// input `⌊o·H/height⌋ ..< ⌈(o+1)·H/height⌉` (and likewise along W). For integer ratios
    /// (1024 → 256) this is `avgPool2d` with kernel and stride H/height.
    public func adaptiveAvgPool2d(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "adaptiveAvgPool2d: input \(describe(shape)) is not 4-D")
        precondition(height >= 1 && width >= 1, "adaptiveAvgPool2d: empty output size")
        return resampled(
            rows: .area(from: shape[2], to: height), columns: .area(from: shape[3], to: width),
            op: "adaptiveAvgPool2d")
    }

    /// Applies a row table along H and a column table along W of [N, C, H, W]; the
    /// backward applies the transposed tables.
    func resampled(rows: ResampleTable, columns: ResampleTable, op: String) -> Tensor {
        precondition(rank == 4, "\(op): input \(describe(shape)) is not [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        precondition(
            h == rows.inputCount && w == columns.inputCount,
            "\(op): tables for \(rows.inputCount)×\(columns.inputCount), "
                + "input \(describe(shape))")
        let planes = contiguousValues().reshapedRaw([n * c, h, w])  // [N·C, H, W]
        let out = ResampleKernels.separable(planes, rows: rows, columns: columns)
            .reshapedRaw([n, c, rows.outputCount, columns.outputCount])  // [N, C, Ho, Wo]
        return Tensor.recorded(out, op: op, inputs: [self]) { g, _ in
            [g.resampled(rows: rows.transposed(), columns: columns.transposed(), op: op + "'")]
        }
    }
}
