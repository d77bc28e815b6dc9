/// A dense float32 tensor: a view (shape, strides, offset) of a shared storage, plus the
/// autodiff record that produced it.
///
/// `Tensor` is a value; the graph lives in reference-typed `GradNode`s that are freed when
/// no tensor can reach them. A tensor has a node when it requires gradients: a leaf made
/// with `requiringGrad()`, or the result of an op on such tensors while `GradMode` is on.
public struct Tensor: @unchecked Sendable {
    public let storage: TensorStorage
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public internal(set) var node: GradNode?

    public init(storage: TensorStorage, shape: [Int], strides: [Int], offset: Int = 0) {
        precondition(shape.count == strides.count, "shape and strides differ in rank")
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.node = nil
    }

    /// A new contiguous tensor with uninitialised contents.
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(describe(shape))")
        self.init(
            storage: TensorStorage(count: Shape.count(shape)), shape: shape,
            strides: Shape.contiguousStrides(shape))
    }

    /// A tensor with the given shape and row-major values.
    public init(shape: [Int], _ values: [Float]) {
        precondition(
            Shape.count(shape) == values.count,
            "Tensor(shape:): \(values.count) values do not fill shape \(describe(shape))")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { src in
            storage.pointer.update(from: src.baseAddress!, count: values.count)
        }
    }

    /// A tensor of `Double` values, rounded to float32 (handy in tests).
    public init(shape: [Int], doubles values: [Double]) {
        self.init(shape: shape, values.map { Float($0) })
    }

    /// A rank-0 tensor.
    public init(_ scalar: Float) {
        self.init(shape: [], [scalar])
    }

    // MARK: - Geometry

    public var rank: Int { shape.count }
    public var count: Int { Shape.count(shape) }

    /// True when the elements sit in row-major order without gaps.
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: rank - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// Pointer to the first element (valid while `self` lives).
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer + offset }

    /// The tensor's elements in row-major order.
    public var scalars: [Float] {
        let c = contiguous()
        return Array(UnsafeBufferPointer(start: c.pointer, count: c.count))
    }

    /// The only element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(describe(shape)) is not one element")
        return contiguous().pointer[0]
    }

    /// Element at a multi-index (slow; for tests and small bookkeeping).
    public subscript(_ index: Int...) -> Float {
        precondition(index.count == rank, "subscript: \(index.count) indices for rank \(rank)")
        var at = offset
        for (i, j) in index.enumerated() {
            precondition(j >= 0 && j < shape[i], "subscript: index \(j) out of \(shape[i])")
            at += j * strides[i]
        }
        return storage.pointer[at]
    }

    // MARK: - Autodiff state

    /// Whether gradients flow back through this tensor.
    public var requiresGrad: Bool { node != nil }

    /// A leaf that accumulates gradients (like `requires_grad_()` in PyTorch).
    public func requiringGrad() -> Tensor {
        var t = self
        t.node = GradNode(leafShape: shape)
        return t
    }

    /// The same values with no autodiff record.
    public func detached() -> Tensor {
        var t = self
        t.node = nil
        return t
    }

    /// Accumulated gradient of a leaf after `backward()`.
    public var grad: Tensor? {
        get { node?.grad }
        nonmutating set { node?.grad = newValue }
    }

    /// Clears the accumulated gradient of a leaf.
    public func zeroGrad() { node?.grad = nil }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let values = count <= 16 ? scalars.map { "\($0)" }.joined(separator: ", ") : "…"
        return "Tensor(\(describe(shape)): \(values))"
    }
}
