import CDNNL

/// Batched matrix products through oneDNN's `dnnl_sgemm` (row-major), on plain tensors
/// without autodiff.
///
/// A matrix view whose last two dims have a unit stride on either side is passed as is,
/// with sgemm's transpose flag and leading dimension, so `x.transposed()` costs no copy;
/// only views with no unit stride are copied. Batch dims broadcast as in NumPy (a zero
/// stride simply repeats a matrix). When one weight matrix multiplies a whole contiguous
/// batch, the batch is folded into the rows and runs as one large sgemm.
public enum MatmulKernels {
    /// How sgemm reads one operand: transposed or not, and its leading dimension.
    struct Operand {
        var transposed: Bool
        var ld: Int
    }

    /// The sgemm view of a [rows, cols] matrix with strides (sr, sc), or nil when neither
    /// stride is a unit stride.
    static func operand(rows: Int, cols: Int, rowStride sr: Int, colStride sc: Int)
        -> Operand?
    {
        if cols == 1 || sc == 1 {
            let ld = rows == 1 ? Swift.max(cols, 1) : sr
            if ld >= Swift.max(cols, 1) { return Operand(transposed: false, ld: ld) }
        }
        if rows == 1 || sr == 1 {
            let ld = cols == 1 ? Swift.max(rows, 1) : sc
            if ld >= Swift.max(rows, 1) { return Operand(transposed: true, ld: ld) }
        }
        return nil
    }

    /// Checks shapes for `matmul`, naming both, and returns (batch shape, M, K, N).
    public static func checkedShapes(_ a: [Int], _ b: [Int]) throws
        -> (batch: [Int], m: Int, k: Int, n: Int)
    {
        guard a.count >= 2, b.count >= 2 else {
            throw ShapeError(
                op: "matmul",
                "needs operands of rank 2 or more, got \(describe(a)) and "
                    + "\(describe(b))")
        }
        let (m, k, k2, n) = (a[a.count - 2], a[a.count - 1], b[b.count - 2], b[b.count - 1])
        guard k == k2 else {
            throw ShapeError(
                op: "matmul", "inner dims differ: \(describe(a)) × \(describe(b))")
        }
        let batch = try Shape.broadcast(
            Array(a.dropLast(2)), Array(b.dropLast(2)),
            op: "matmul batch dims of "
                + "\(describe(a)) × \(describe(b))")
        return (batch, m, k, n)
    }

    /// c [..., M, N] = a [..., M, K] · b [..., K, N] (+ bias [N] on every row).
    public static func matmul(
        _ a: Tensor, _ b: Tensor, bias: Tensor? = nil, implementation: KernelImplementation
    ) -> Tensor {
        let (batch, m, k, n) = must { try checkedShapes(a.shape, b.shape) }
        if let bias {
            precondition(bias.shape == [n], "matmul: bias \(describe(bias.shape)) is not [\(n)]")
        }
        let outShape = batch + [m, n]
        let batchCount = Shape.count(batch)
        let ae = a.broadcastRaw(to: batch + [m, k])
        let be = b.broadcastRaw(to: batch + [k, n])

        if implementation == .reference {
            var c = MatmulReference.matmul(
                ae.scalars, be.scalars, batch: batchCount, m: m, k: k, n: n)
            if let bias {
                let bv = bias.scalars
                for i in c.indices { c[i] += bv[i % n] }
            }
            return Tensor(shape: outShape, c)
        }

        let c = Tensor(uninitializedShape: outShape)
        guard c.count > 0 else { return c }
        // C is pre-filled with the bias (or zeros when K = 0) and sgemm adds to it.
        var beta: Float = 0
        if let bias {
            ElementwiseKernels.copy(bias.broadcastRaw(to: outShape), into: c)
            beta = 1
        } else if k == 0 {
            c.pointer.initialize(repeating: 0, count: c.count)
            return c
        }

        let aOp = operandOrCopy(ae, rows: m, cols: k)
        let bOp = operandOrCopy(be, rows: k, cols: n)
        DNNL.prepareThreads()

        // One weight matrix for a whole contiguous batch: fold the batch into the rows.
        let bShared = bOp.tensor.strides.dropLast(2).allSatisfy { $0 == 0 }
        if batchCount > 1, bShared, aOp.tensor.isContiguous, !aOp.operand.transposed {
            sgemm(
                aOp.operand, aOp.tensor.pointer, bOp.operand, bOp.tensor.pointer,
                m: batchCount * m, n: n, k: k, beta: beta, c: c.pointer)
            return c
        }

        let aBatchStrides = Array(aOp.tensor.strides.dropLast(2))
        let bBatchStrides = Array(bOp.tensor.strides.dropLast(2))
        var index = [Int](repeating: 0, count: batch.count)
        for p in 0..<batchCount {
            var ao = 0, bo = 0
            for d in 0..<batch.count {
                ao += index[d] * aBatchStrides[d]
                bo += index[d] * bBatchStrides[d]
            }
            sgemm(
                aOp.operand, aOp.tensor.pointer + ao, bOp.operand, bOp.tensor.pointer + bo,
                m: m, n: n, k: k, beta: beta, c: c.pointer + p * m * n)
            // Odometer over the batch dims.
            var d = batch.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < batch[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        withExtendedLifetime((aOp.tensor, bOp.tensor)) {}
        return c
    }

    /// The sgemm view of `t`'s matrices, copying `t` when its strides allow none.
    private static func operandOrCopy(_ t: Tensor, rows: Int, cols: Int)
        -> (tensor: Tensor, operand: Operand)
    {
        let r = t.rank
        if let op = operand(
            rows: rows, cols: cols, rowStride: t.strides[r - 2], colStride: t.strides[r - 1])
        {
            return (t, op)
        }
        let c = t.contiguousValues()
        return (c, Operand(transposed: false, ld: Swift.max(cols, 1)))
    }

    /// C [m, n] (row-major, ld n) = op(A) · op(B) + beta · C.
    @inline(__always)
    private static func sgemm(
        _ a: Operand, _ pa: UnsafeMutablePointer<Float>, _ b: Operand,
        _ pb: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, beta: Float,
        c: UnsafeMutablePointer<Float>
    ) {
        DNNL.check(
            dnnl_sgemm(
                a.transposed ? CChar(UInt8(ascii: "T")) : CChar(UInt8(ascii: "N")),
                b.transposed ? CChar(UInt8(ascii: "T")) : CChar(UInt8(ascii: "N")),
                Int64(m), Int64(n), Int64(k), 1, pa, Int64(a.ld), pb, Int64(b.ld), beta, c,
                Int64(Swift.max(n, 1))),
            "sgemm \(m)x\(k)x\(n)")
    }
}

extension Tensor {
    /// A raw (unrecorded) broadcast view to `target`, which must have rank ≥ `rank`.
    func broadcastRaw(to target: [Int]) -> Tensor {
        if target == shape { return self }
        return Tensor(
            storage: storage, shape: target,
            strides: ElementwiseKernels.broadcastStrides(self, to: target), offset: offset)
    }
}
