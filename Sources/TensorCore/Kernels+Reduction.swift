/// Reductions over any set of axes. The reduced axes are moved last so that each output
/// element reduces one contiguous row; rows are cut into fixed blocks whose partial
/// results are combined in order, so results do not depend on the thread count.
public enum ReductionKernels {
    public enum Kind { case sum, max, min }

    /// Elements per block of a row (fixed, so that the summation order is fixed).
    static let block = 8192

    /// Reduces `x` over `axes` (already normalised, distinct). Output shape drops them.
    public static func reduce(_ x: Tensor, axes: [Int], kind: Kind) -> Tensor {
        let kept = (0..<x.rank).filter { !axes.contains($0) }
        let outShape = kept.map { x.shape[$0] }
        let rowLength = axes.reduce(1) { $0 * x.shape[$1] }
        let rows = Shape.count(outShape)
        let out = Tensor(uninitializedShape: outShape)
        if rows == 0 { return out }
        if rowLength == 0 {
            precondition(kind == .sum, "max/min over an empty axis of \(describe(x.shape))")
            out.pointer.initialize(repeating: 0, count: rows)
            return out
        }
        let ordered = x.permuted(kept + axes.sorted()).contiguousValues()
        let src = ordered.pointer
        let blocks = (rowLength + block - 1) / block
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: rows * blocks)
        defer { partial.deallocate() }
        Threads.parallelFor(rows * blocks, grain: max(1, 32768 / min(rowLength, block))) { r in
            for job in r {
                let row = job / blocks, b = job % blocks
                let lo = b * block, hi = min(rowLength, lo + block)
                partial[job] = reduceSpan(src + row * rowLength + lo, hi - lo, kind)
            }
        }
        for row in 0..<rows {
            var acc = partial[row * blocks]
            for b in 1..<max(blocks, 1) {
                let v = partial[row * blocks + b]
                switch kind {
                case .sum: acc += v
                case .max: acc = Swift.max(acc, v)
                case .min: acc = Swift.min(acc, v)
                }
            }
            out.pointer[row] = acc
        }
        return out
    }

    /// Sum, max or min of `n` contiguous floats, eight lanes then lane order.
    @inline(__always)
    static func reduceSpan(_ p: UnsafePointer<Float>, _ n: Int, _ kind: Kind) -> Float {
        switch kind {
        case .sum:
            var acc = SIMD8<Float>(repeating: 0)
            var i = 0
            while i + 8 <= n {
                acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
                i += 8
            }
            var s = acc.sum()
            while i < n { s += p[i]; i += 1 }
            return s
        case .max:
            var m = p[0]
            for i in 1..<Swift.max(n, 1) where p[i] > m || p[i].isNaN { m = p[i] }
            return m
        case .min:
            var m = p[0]
            for i in 1..<Swift.max(n, 1) where p[i] < m || p[i].isNaN { m = p[i] }
            return m
        }
    }
}
