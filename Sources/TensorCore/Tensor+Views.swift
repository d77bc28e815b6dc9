/// Views (no copy where the layout allows), copies into new layouts, and joining.
/// Every op here is differentiable; its backward is another op of this file.
extension Tensor {
    // MARK: - Raw views (no autodiff record)

    /// Same storage, dims reordered (no record; see `permute`).
    func permuted(_ order: [Int]) -> Tensor {
        Tensor(
            storage: storage, shape: order.map { shape[$0] }, strides: order.map { strides[$0] },
            offset: offset)
    }

    /// Contiguous values: `self` when already contiguous, else a copy (no record).
    func contiguousValues() -> Tensor {
        var t = isContiguous ? self : ElementwiseKernels.contiguousCopy(self)
        t.node = nil
        return t
    }

    // MARK: - Layout

    /// A contiguous tensor with the same values (no copy when already contiguous).
    public func contiguous() -> Tensor {
        if isContiguous { return self }
        let out = ElementwiseKernels.contiguousCopy(self)
        return Tensor.recorded(out, op: "contiguous", inputs: [self]) { g, _ in [g] }
    }

    /// Same values in a new shape; one dim may be -1. A view when `self` is contiguous.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let target = must { try Tensor.resolveReshape(shape, newShape) }
        if target == shape { return self }
        let base = isContiguous ? self : ElementwiseKernels.contiguousCopy(self)
        let out = Tensor(
            storage: base.storage, shape: target, strides: Shape.contiguousStrides(target),
            offset: base.offset)
        let inShape = shape
        return Tensor.recorded(out, op: "reshape", inputs: [self]) { g, _ in
            [g.reshaped(inShape)]
        }
    }

    /// Resolves a -1 in a reshape target, or explains why the counts do not match.
    public static func resolveReshape(_ from: [Int], _ to: [Int]) throws -> [Int] {
        let n = Shape.count(from)
        var target = to
        let holes = to.indices.filter { to[$0] == -1 }
        guard holes.count <= 1, to.allSatisfy({ $0 >= -1 }) else {
            throw ShapeError(op: "reshape", "bad target \(describe(to))")
        }
        if let h = holes.first {
            let known = to.enumerated().reduce(1) { $1.offset == h ? $0 : $0 * $1.element }
            guard known > 0, n % known == 0 else {
                throw ShapeError(
                    op: "reshape", "cannot reshape \(describe(from)) into \(describe(to))")
            }
            target[h] = n / known
        }
        guard Shape.count(target) == n else {
            throw ShapeError(op: "reshape", "cannot reshape \(describe(from)) into \(describe(to))")
        }
        return target
    }

    /// Collapses dims `from...to` into one.
    public func flattened(from start: Int = 0, to end: Int = -1) -> Tensor {
        let s = must { try Shape.axis(start, rank: rank, op: "flatten") }
        let e = must { try Shape.axis(end, rank: rank, op: "flatten") }
        if rank == 0 { return reshaped([1]) }
        let merged = shape[s...e].reduce(1, *)
        return reshaped(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Dims reordered: result dim i is input dim `order[i]`. A view.
    public func permute(_ order: [Int]) -> Tensor {
        precondition(
            order.sorted() == Array(0..<rank),
            "permute: \(order) is not a permutation of the dims of \(describe(shape))")
        let out = permuted(order)
        var inverse = [Int](repeating: 0, count: order.count)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return Tensor.recorded(out, op: "permute", inputs: [self]) { g, _ in
            [g.permute(inverse)]
        }
    }

    /// Swaps two dims. A view.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        let i = must { try Shape.axis(a, rank: rank, op: "transpose") }
        let j = must { try Shape.axis(b, rank: rank, op: "transpose") }
        var order = Array(0..<rank)
        order.swapAt(i, j)
        return permute(order)
    }

    /// Inserts a dim of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = must {
            try Shape.axis(axis < 0 ? axis + rank + 1 : axis, rank: rank + 1, op: "unsqueeze")
        }
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes a dim of size 1 at `axis`.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "squeeze") }
        precondition(shape[a] == 1, "squeeze: dim \(axis) of \(describe(shape)) is not 1")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Broadcasts to `newShape` without copying (stride 0 along repeated dims).
    public func expanded(to newShape: [Int]) -> Tensor {
        let b = must { try Shape.broadcast(shape, newShape, op: "expand") }
        precondition(
            b == newShape, "expand: \(describe(shape)) cannot be expanded to \(describe(newShape))")
        if newShape == shape { return self }
        let out = Tensor(
            storage: storage, shape: newShape,
            strides: ElementwiseKernels.broadcastStrides(self, to: newShape), offset: offset)
        let inShape = shape
        return Tensor.recorded(out, op: "expand", inputs: [self]) { g, _ in
            [g.summed(toShape: inShape)]
        }
    }

    // MARK: - Slicing

    /// Elements `range` (with `step`) along `axis`. A view.
    public func slice(_ axis: Int, _ range: Range<Int>, step: Int = 1) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "slice") }
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[a] && step > 0,
            "slice: range \(range) (step \(step)) out of dim \(axis) of \(describe(shape))")
        var s = shape, st = strides
        s[a] = (range.count + step - 1) / step
        st[a] = strides[a] * step
        let out = Tensor(
            storage: storage, shape: s, strides: st, offset: offset + range.lowerBound * strides[a])
        let inShape = shape
        return Tensor.recorded(out, op: "slice", inputs: [self]) { g, _ in
            [g.unsliced(into: inShape, axis: a, range: range, step: step)]
        }
    }

    /// Shifted by `k` positions along `axis` with wrap-around (`torch.roll(x, k, axis)`): a
    /// positive `k` brings the last `k` slices first.
    public func rolled(by k: Int, axis: Int) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "rolled") }
        let n = shape[a]
        guard n > 1 else { return self }
        let s = ((k % n) + n) % n
        guard s != 0 else { return self }
        return Tensor.concat([slice(a, (n - s)..<n), slice(a, 0..<(n - s))], axis: a)
    }

    /// Reversed along `axis` (`torch.flip(x, [axis])`); a copy.
    public func flipped(axis: Int) -> Tensor {
        let a = must { try Shape.axis(axis, rank: rank, op: "flipped") }
        // indexSelect works on axis 0: bring `a` there and back.
        var order = Array(0..<rank)
        order.swapAt(0, a)
        return permute(order).indexSelect(Array((0..<shape[a]).reversed())).permute(order)
    }

    /// The inverse of `slice` for gradients: zeros of `shape` with `self` placed at
    /// `range` (with `step`) along `axis`.
    func unsliced(into fullShape: [Int], axis: Int, range: Range<Int>, step: Int) -> Tensor {
        let out = Tensor.zeros(fullShape)
        let window = out.detached().rawSlice(axis, range, step: step)
        ElementwiseKernels.copy(self, into: window)
        return Tensor.recorded(out, op: "unslice", inputs: [self]) { g, _ in
            [g.slice(axis, range, step: step)]
        }
    }

    /// Slice without a record (for writing into fresh outputs).
    func rawSlice(_ a: Int, _ range: Range<Int>, step: Int = 1) -> Tensor {
        var s = shape, st = strides
        s[a] = (range.count + step - 1) / step
        st[a] = strides[a] * step
        return Tensor(
            storage: storage, shape: s, strides: st, offset: offset + range.lowerBound * strides[a])
    }

    /// Rows `indices` along axis 0 (PyTorch `index_select(0, ...)`).
    public func indexSelect(_ indices: [Int]) -> Tensor {
        precondition(rank >= 1, "indexSelect: scalar tensor")
        let n = shape[0]
        for i in indices {
            precondition(i >= 0 && i < n, "indexSelect: index \(i) out of range 0..<\(n)")
        }
        let rowShape = Array(shape.dropFirst())
        let out = Tensor(uninitializedShape: [indices.count] + rowShape)
        let rowCount = Shape.count(rowShape)
        for (k, i) in indices.enumerated() {
            let dst = Tensor(
                storage: out.storage, shape: rowShape, strides: Shape.contiguousStrides(rowShape),
                offset: k * rowCount)
            ElementwiseKernels.copy(
                detached().rawSlice(0, i..<(i + 1)).reshapedRaw(rowShape), into: dst)
        }
        return Tensor.recorded(out, op: "indexSelect", inputs: [self]) { g, _ in
            [g.indexAdded(indices, rows: n)]
        }
    }

    /// Sums rows of `self` into a zero tensor of `rows` rows at `indices` (the backward of
    /// `indexSelect`).
    func indexAdded(_ indices: [Int], rows: Int) -> Tensor {
        let rowShape = Array(shape.dropFirst())
        var acc = [Tensor?](repeating: nil, count: rows)
        for (k, i) in indices.enumerated() {
            let r = slice(0, k..<(k + 1))
            acc[i] = acc[i].map { $0 + r } ?? r
        }
        let pieces = acc.map { $0 ?? Tensor.zeros([1] + rowShape) }
        return Tensor.concat(pieces, axis: 0)
    }

    /// A view with a new shape of a contiguous tensor (no record).
    func reshapedRaw(_ s: [Int]) -> Tensor {
        if isContiguous {
            return Tensor(
                storage: storage, shape: s, strides: Shape.contiguousStrides(s), offset: offset)
        }
        return ElementwiseKernels.contiguousCopy(self).reshapedRaw(s)
    }

    // MARK: - Joining and splitting

    /// Joins tensors along `axis`; all other dims must match.
    public static func concat(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "concat: no tensors")
        let first = parts[0]
        let a = must { try Shape.axis(axis, rank: first.rank, op: "concat") }
        for p in parts {
            precondition(
                p.rank == first.rank
                    && (0..<p.rank).allSatisfy { $0 == a || p.shape[$0] == first.shape[$0] },
                "concat: shapes \(describe(first.shape)) and \(describe(p.shape)) differ "
                    + "outside axis \(axis)")
        }
        var shape = first.shape
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(uninitializedShape: shape)
        var at = 0
        var ranges: [Range<Int>] = []
        for p in parts {
            let r = at..<(at + p.shape[a])
            ElementwiseKernels.copy(p, into: out.rawSlice(a, r))
            ranges.append(r)
            at = r.upperBound
        }
        return Tensor.recorded(out, op: "concat", inputs: parts) { g, needs in
            ranges.enumerated().map { i, r in needs[i] ? g.slice(a, r) : nil }
        }
    }

    /// Joins tensors of one shape along a new axis.
    public static func stack(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "stack: no tensors")
        return concat(parts.map { $0.unsqueezed(axis) }, axis: axis)
    }

    /// Pieces of the given sizes along `axis` (views).
    public func split(_ sizes: [Int], axis: Int = 0) -> [Tensor] {
        let a = must { try Shape.axis(axis, rank: rank, op: "split") }
        precondition(
            sizes.reduce(0, +) == shape[a],
            "split: sizes \(sizes) do not add up to dim \(axis) of \(describe(shape))")
        var at = 0
        return sizes.map { n in
            defer { at += n }
            return slice(a, at..<(at + n))
        }
    }

    /// `count` pieces of equal size along `axis` (the last may be smaller), as PyTorch.
    public func chunk(_ count: Int, axis: Int = 0) -> [Tensor] {
        let a = must { try Shape.axis(axis, rank: rank, op: "chunk") }
        let size = (shape[a] + count - 1) / count
        var sizes: [Int] = []
        var left = shape[a]
        while left > 0 {
            sizes.append(Swift.min(size, left))
            left -= size
        }
        return split(sizes, axis: a)
    }
}

extension ElementwiseKernels {
    /// Copies `src` into the view `dst` (same shape; `dst` is written in place).
    public static func copy(_ src: Tensor, into dst: Tensor) {
        precondition(
            src.shape == dst.shape,
            "copy: source \(describe(src.shape)) and target \(describe(dst.shape)) differ")
        let n = src.count
        guard n > 0 else { return }
        let layout = StridedLayout(shape: src.shape, strides: [src.strides, dst.strides])
        let ps = src.pointer, pd = dst.pointer
        let ss = layout.strides[0].last!, sd = layout.strides[1].last!
        Threads.parallelFor(n, grain: elementwiseGrain) { range in
            layout.forEachSpan(in: range) { o, inner in
                let s = ps + o[0], d = pd + o[1]
                if ss == 1 && sd == 1 {
                    d.update(from: s, count: inner)
                } else {
                    for i in 0..<inner { d[i * sd] = s[i * ss] }
                }
            }
        }
    }
}
