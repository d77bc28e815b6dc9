/// Reductions over any set of axes, with `keepDims` as PyTorch's `keepdim`.
extension Tensor {
    /// Normalised, sorted, distinct axes; all axes when `axes` is nil.
    func reductionAxes(_ axes: [Int]?, op: String) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let norm = axes.map { a in must { try Shape.axis(a, rank: rank, op: op) } }
        precondition(Set(norm).count == norm.count, "\(op): repeated axis in \(axes)")
        return norm.sorted()
    }

    /// Shape after reducing `axes`, keeping them as 1s when `keepDims`.
    func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
        keepDims
            ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
            : shape.enumerated().filter { !axes.contains($0.offset) }.map { $0.element }
    }

    /// Sum over `axes` (all when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "sum")
        let raw = ReductionKernels.reduce(self, axes: ax, kind: .sum)
        let outShape = reducedShape(ax, keepDims: keepDims)
        let out = raw.reshapedRaw(outShape)
        let inShape = shape
        let keptShape = reducedShape(ax, keepDims: true)
        return Tensor.recorded(out, op: "sum", inputs: [self]) { g, _ in
            [g.reshaped(keptShape).expanded(to: inShape)]
        }
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor {
        sum(axes: [axis], keepDims: keepDims)
    }

    /// Mean over `axes` (all when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = reductionAxes(axes, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(n))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
        mean(axes: [axis], keepDims: keepDims)
    }

    /// Largest value over `axes`; ties share the gradient equally (PyTorch's `amax`).
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extreme(axes: axes, keepDims: keepDims, kind: .max)
    }

    /// Smallest value over `axes`; ties share the gradient equally (PyTorch's `amin`).
    public func min(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        extreme(axes: axes, keepDims: keepDims, kind: .min)
    }

    private func extreme(axes: [Int]?, keepDims: Bool, kind: ReductionKernels.Kind) -> Tensor {
        let ax = reductionAxes(axes, op: "max")
        let raw = ReductionKernels.reduce(self, axes: ax, kind: kind)
        let keptShape = reducedShape(ax, keepDims: true)
        let out = raw.reshapedRaw(reducedShape(ax, keepDims: keepDims))
        let kept = raw.reshapedRaw(keptShape)
        let inShape = shape
        return Tensor.recorded(out, op: "max", inputs: [self]) { g, _ in
            let hit = ElementwiseKernels.zip(self.detached(), kept, EqualF(), op: "max")
            let share = hit / hit.sum(axes: ax, keepDims: true)
            return [g.reshaped(keptShape).expanded(to: inShape) * share]
        }
    }

    /// Variance over `axes`; `unbiased` divides by n − 1 (PyTorch's default for `var`).
    public func variance(axes: [Int]? = nil, unbiased: Bool = true, keepDims: Bool = false)
        -> Tensor
    {
        let ax = reductionAxes(axes, op: "variance")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centred = self - mean(axes: ax, keepDims: true)
        let ss = centred.squared().sum(axes: ax, keepDims: keepDims)
        return ss * (1 / Float(unbiased ? n - 1 : n))
    }

    /// Euclidean norm over `axes` (all when nil).
    public func norm(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        // An op of its own rather than sqrt(sum(x²)): through sqrt, a zero vector's gradient
        // is 0/0 (NaN). PyTorch gives it the subgradient 0 (an ISF that starts as the
        // identity has ‖w − w'‖ = 0), and so does this.
        let (out, kept) = GradMode.withoutGradients {
            let squares = squared()
            return (
                squares.sum(axes: axes, keepDims: keepDims).sqrt(),
                squares.sum(axes: axes, keepDims: true).sqrt()
            )
        }
        return Tensor.recorded(out, op: "norm", inputs: [self]) { g, _ in
            let n = GradMode.isEnabled ? self.norm(axes: axes, keepDims: true) : kept
            // 1 where the norm is 0, so that the quotient there is 0 / 1.
            let zeros = Tensor(shape: kept.shape, kept.contiguous().scalars.map { $0 == 0 ? 1 : 0 })
            return [g.reshaped(kept.shape) * self / (n + zeros)]
        }
    }

    /// Sums broadcast dims away so that the result has `target` shape (the backward of
    /// broadcasting).
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        precondition(lead >= 0, "summed(toShape:): \(describe(shape)) → \(describe(target))")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 {
            axes.append(lead + i)
        }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }
}
