/// Matrix products and linear layers, differentiable to any order: each backward is
/// written with `matmul` itself on transposed views (which cost no copy).
extension Tensor {
    /// The batched matrix product `a · b`: a [..., M, K] × b [..., K, N] → [..., M, N].
    ///
    /// Batch dims broadcast as in NumPy (`[B, M, K] × [K, N]` multiplies every batch
    /// entry by the same matrix). Both operands need rank 2 or more; a shape mismatch
    /// traps with a message naming both shapes (check first with
    /// `MatmulKernels.checkedShapes` where shapes come from the user).
    ///
    /// - Parameter implementation: `.oneDNN` (sgemm) or the `.reference` loops; the
    ///   backward uses the same.
    public static func matmul(
        _ a: Tensor, _ b: Tensor, implementation: KernelImplementation = .current
    ) -> Tensor {
        let out = MatmulKernels.matmul(a, b, implementation: implementation)
        let aShape = a.shape, bShape = b.shape
        return Tensor.recorded(out, op: "matmul", inputs: [a, b]) { g, needs in
            // g [..., M, N]; gradients sum over the batch dims an operand was broadcast on.
            [
                needs[0]
                    ? Tensor.matmul(g, b.transposed(), implementation: implementation)
                        .summed(toShape: aShape) : nil,
                needs[1]
                    ? Tensor.matmul(a.transposed(), g, implementation: implementation)
                        .summed(toShape: bShape) : nil,
            ]
        }
    }

    /// `self · other` (see `Tensor.matmul(_:_:)`).
    public func matmul(_ other: Tensor, implementation: KernelImplementation = .current)
        -> Tensor
    {
        Tensor.matmul(self, other, implementation: implementation)
    }

    /// A linear layer as PyTorch's `F.linear`: `x · weightᵀ + bias`.
    ///
    /// x [..., in], weight [out, in], bias [out] → [..., out]. Leading dims are folded
    /// into one sgemm; the bias is added inside it.
    public func linear(
        _ weight: Tensor, bias: Tensor? = nil,
        implementation: KernelImplementation = .current
    ) -> Tensor {
        precondition(
            rank >= 1 && weight.rank == 2 && shape[rank - 1] == weight.shape[1]
                && (bias.map { $0.shape == [weight.shape[0]] } ?? true),
            "linear: input \(describe(shape)), weight \(describe(weight.shape)) and bias "
                + "\(bias.map { describe($0.shape) } ?? "none") do not fit "
                + "(want [..., in], [out, in], [out])")
        let leading = Array(shape.dropLast())
        let x = reshaped([-1, shape[rank - 1]])  // [rows, in]
        let y = Tensor.linear2D(x, weight, bias, implementation)  // [rows, out]
        return y.reshaped(leading + [weight.shape[0]])
    }

    /// The linear op on x [rows, in]; its own record, so the bias add and the transposed
    /// weight cost nothing extra.
    private static func linear2D(
        _ x: Tensor, _ w: Tensor, _ b: Tensor?, _ implementation: KernelImplementation
    ) -> Tensor {
        let out = MatmulKernels.matmul(
            x, w.detached().permuted([1, 0]), bias: b, implementation: implementation)
        let inputs = [x, w] + (b.map { [$0] } ?? [])
        return Tensor.recorded(out, op: "linear", inputs: inputs) { g, needs in
            // g [rows, out]
            var grads: [Tensor?] = [
                needs[0] ? Tensor.matmul(g, w, implementation: implementation) : nil,
                needs[1]
                    ? Tensor.matmul(g.transposed(), x, implementation: implementation)
                    : nil,
            ]
            if b != nil { grads.append(needs[2] ? g.sum(axes: [0]) : nil) }
            return grads
        }
    }
}
