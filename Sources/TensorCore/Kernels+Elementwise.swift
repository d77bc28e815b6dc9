/// Elementwise kernels over strided, broadcast operands. Results are always new
/// contiguous tensors. Each output element depends on its inputs only, so results are
/// bit-identical for any thread count.

public protocol UnaryFunction {
    func callAsFunction(_ x: Float) -> Float
}

public protocol BinaryFunction {
    func callAsFunction(_ a: Float, _ b: Float) -> Float
}

/// A strided walk: dims with every operand's stride, merged where memory allows.
@usableFromInline
struct StridedLayout {
    @usableFromInline var shape: [Int]
    @usableFromInline var strides: [[Int]]

    /// Drops size-1 dims and merges neighbours that are contiguous for every operand.
    init(shape: [Int], strides: [[Int]]) {
        var sh: [Int] = []
        var st: [[Int]] = strides.map { _ in [] }
        for i in 0..<shape.count where shape[i] != 1 {
            if !sh.isEmpty,
                strides.indices.allSatisfy({ k in st[k].last! == strides[k][i] * shape[i] })
            {
                sh[sh.count - 1] *= shape[i]
                for k in strides.indices { st[k][st[k].count - 1] = strides[k][i] }
            } else {
                sh.append(shape[i])
                for k in strides.indices { st[k].append(strides[k][i]) }
            }
        }
        if sh.isEmpty {
            sh = [1]
            st = strides.map { _ in [1] }
        }
        self.shape = sh
        self.strides = st
    }

    var inner: Int { shape[shape.count - 1] }
    var outerCount: Int { Shape.count(Array(shape.dropLast())) }

    /// Calls `body(offsets, length)` for each run of consecutive inner elements in
    /// `elements` (numbered in row-major order over the whole shape); `offsets` holds each
    /// operand's offset of the run's first element.
    @inline(__always)
    func forEachSpan(in elements: Range<Int>, _ body: ([Int], Int) -> Void) {
        let outerRank = shape.count - 1
        let n = inner
        var row = elements.lowerBound / n
        var col = elements.lowerBound % n
        var index = [Int](repeating: 0, count: max(outerRank, 0))
        var rem = row
        for d in stride(from: outerRank - 1, through: 0, by: -1) {
            index[d] = rem % shape[d]
            rem /= shape[d]
        }
        var offsets = strides.map { s in
            var o = 0
            for d in 0..<outerRank { o += index[d] * s[d] }
            return o
        }
        var left = elements.count
        while left > 0 {
            let len = min(n - col, left)
            if col == 0 {
                body(offsets, len)
            } else {
                body(offsets.indices.map { offsets[$0] + col * strides[$0][outerRank] }, len)
            }
            left -= len
            col = 0
            row += 1
            // Advance the outer index like an odometer.
            var d = outerRank - 1
            while d >= 0 {
                index[d] += 1
                for k in offsets.indices { offsets[k] += strides[k][d] }
                if index[d] < shape[d] { break }
                for k in offsets.indices { offsets[k] -= strides[k][d] * shape[d] }
                index[d] = 0
                d -= 1
            }
        }
    }
}

/// Items below which a kernel stays on the calling thread.
@usableFromInline let elementwiseGrain = 1 << 15

public enum ElementwiseKernels {
    /// Copies any view into a new contiguous tensor.
    public static func contiguousCopy(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let n = x.count
        guard n > 0 else { return out }
        let layout = StridedLayout(shape: x.shape, strides: [x.strides, out.strides])
        let src = x.pointer, dst = out.pointer
        let si = layout.strides[0].last!
        Threads.parallelFor(n, grain: elementwiseGrain) { range in
            layout.forEachSpan(in: range) { o, inner in
                let s = src + o[0], d = dst + o[1]
                if si == 1 {
                    d.update(from: s, count: inner)
                } else {
                    for i in 0..<inner { d[i] = s[i * si] }
                }
            }
        }
        return out
    }

    /// `f(x)` for every element.
    public static func map<F: UnaryFunction>(_ x: Tensor, _ f: F) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let n = x.count
        guard n > 0 else { return out }
        let layout = StridedLayout(shape: x.shape, strides: [x.strides, out.strides])
        let src = x.pointer, dst = out.pointer
        let si = layout.strides[0].last!
        Threads.parallelFor(n, grain: elementwiseGrain) { range in
            layout.forEachSpan(in: range) { o, inner in
                let s = src + o[0], d = dst + o[1]
                if si == 1 {
                    for i in 0..<inner { d[i] = f(s[i]) }
                } else {
                    for i in 0..<inner { d[i] = f(s[i * si]) }
                }
            }
        }
        return out
    }

    /// `f(a, b)` with NumPy broadcasting; traps with both shapes when they do not broadcast.
    public static func zip<F: BinaryFunction>(
        _ a: Tensor, _ b: Tensor, _ f: F, op: String
    ) -> Tensor {
        let shape = must { try Shape.broadcast(a.shape, b.shape, op: op) }
        let out = Tensor(uninitializedShape: shape)
        let n = out.count
        guard n > 0 else { return out }
        let layout = StridedLayout(
            shape: shape,
            strides: [
                broadcastStrides(a, to: shape), broadcastStrides(b, to: shape), out.strides,
            ])
        let pa = a.pointer, pb = b.pointer, po = out.pointer
        let sa = layout.strides[0].last!, sb = layout.strides[1].last!
        Threads.parallelFor(n, grain: elementwiseGrain) { range in
            layout.forEachSpan(in: range) { o, inner in
                let x = pa + o[0], y = pb + o[1], d = po + o[2]
                switch (sa, sb) {
                case (1, 1): for i in 0..<inner { d[i] = f(x[i], y[i]) }
                case (1, 0): let v = y[0]; for i in 0..<inner { d[i] = f(x[i], v) }
                case (0, 1): let v = x[0]; for i in 0..<inner { d[i] = f(v, y[i]) }
                default: for i in 0..<inner { d[i] = f(x[i * sa], y[i * sb]) }
                }
            }
        }
        return out
    }

    /// `f(a, b, c)` with broadcasting, for three-operand ops (lerp, masked selects).
    public static func zip3(
        _ a: Tensor, _ b: Tensor, _ c: Tensor, op: String,
        _ f: (Float, Float, Float) -> Float
    ) -> Tensor {
        let ab = must { try Shape.broadcast(a.shape, b.shape, op: op) }
        let shape = must { try Shape.broadcast(ab, c.shape, op: op) }
        let out = Tensor(uninitializedShape: shape)
        let n = out.count
        guard n > 0 else { return out }
        let layout = StridedLayout(
            shape: shape,
            strides: [
                broadcastStrides(a, to: shape), broadcastStrides(b, to: shape),
                broadcastStrides(c, to: shape), out.strides,
            ])
        let pa = a.pointer, pb = b.pointer, pc = c.pointer, po = out.pointer
        let s = layout.strides.map { $0.last! }
        Threads.parallelFor(n, grain: elementwiseGrain) { range in
            layout.forEachSpan(in: range) { o, inner in
                for i in 0..<inner {
                    po[o[3] + i] = f(pa[o[0] + i * s[0]], pb[o[1] + i * s[1]], pc[o[2] + i * s[2]])
                }
            }
        }
        return out
    }

    /// Strides that read `x` as if it had `shape` (0 along broadcast dims).
    static func broadcastStrides(_ x: Tensor, to shape: [Int]) -> [Int] {
        let pad = shape.count - x.rank
        return (0..<shape.count).map { i in
            i < pad || x.shape[i - pad] == 1 ? 0 : x.strides[i - pad]
        }
    }
}
