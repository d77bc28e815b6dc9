/// Whether ops record the autodiff graph.
///
/// Recording is on by default. `GradMode.withoutGradients { }` is the inference mode:
/// nothing is recorded, so every intermediate is freed as soon as its last use ends.
/// Recording happens on the thread that runs the ops; the kernels' worker threads never
/// record.
public enum GradMode {
    nonisolated(unsafe) public private(set) static var isEnabled = true

    /// Runs `body` with recording off (PyTorch's `torch.no_grad()`).
    public static func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
        let saved = isEnabled
        isEnabled = false
        defer { isEnabled = saved }
        return try body()
    }

    /// Runs `body` with recording set to `enabled`.
    public static func with<T>(enabled: Bool, _ body: () throws -> T) rethrows -> T {
        let saved = isEnabled
        isEnabled = enabled
        defer { isEnabled = saved }
        return try body()
    }
}

/// One recorded op: its inputs' nodes and how to turn the output's gradient into theirs.
///
/// Backward functions are written with tensor ops, so when they run with recording on
/// (`createGraph: true`) the gradients they return are themselves differentiable.
public final class GradNode {
    /// Maps the output gradient to one gradient per input (nil where `needs` is false).
    public typealias Backward = (_ gradient: Tensor, _ needs: [Bool]) -> [Tensor?]

    nonisolated(unsafe) private static var counter = 0

    /// Creation order; an op's node is always newer than its inputs' nodes.
    let id: Int
    let parents: [GradNode?]
    let backward: Backward?
    let shape: [Int]
    let name: String
    /// Accumulated gradient of a leaf.
    public internal(set) var grad: Tensor?

    init(leafShape: [Int]) {
        GradNode.counter += 1
        id = GradNode.counter
        parents = []
        backward = nil
        shape = leafShape
        name = "leaf"
    }

    init(name: String, parents: [GradNode?], shape: [Int], backward: @escaping Backward) {
        GradNode.counter += 1
        id = GradNode.counter
        self.parents = parents
        self.backward = backward
        self.shape = shape
        self.name = name
    }

    var isLeaf: Bool { backward == nil }
}

extension Tensor {
    /// Attaches an autodiff record to an op's output when recording is on and any input
    /// requires gradients; returns `output` unchanged otherwise.
    public static func recorded(
        _ output: Tensor, op: String, inputs: [Tensor], backward: @escaping GradNode.Backward
    ) -> Tensor {
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else {
            return output
        }
        var out = output
        out.node = GradNode(
            name: op, parents: inputs.map { $0.node }, shape: output.shape, backward: backward)
        return out
    }

    /// Accumulates d(self)/d(leaf) into every leaf's `grad`; `self` must be one element.
    ///
    /// Gradients add up across calls (as in PyTorch) until `zeroGrad()`.
    public func backward(createGraph: Bool = false) {
        precondition(count == 1, "backward: output of shape \(describe(shape)) is not scalar")
        guard let root = node else { return }
        let seed = Tensor.ones(shape)
        let found = Tensor.propagate(
            from: root, seed: seed, targets: nil, createGraph: createGraph)
        for (leaf, g) in found {
            leaf.grad = leaf.grad.map { $0 + g } ?? g
        }
    }

    /// The gradients of `output` (one element, or weighted by `seed`) with respect to each
    /// tensor in `inputs`, without touching any leaf's `grad`.
    ///
    /// With `createGraph`, the result records its own graph, so it can be differentiated
    /// again (the R1 penalty needs this). An input that `output` does not depend on gets
    /// zeros.
    public static func gradients(
        of output: Tensor, withRespectTo inputs: [Tensor], seed: Tensor? = nil,
        createGraph: Bool = false
    ) -> [Tensor] {
        let seed = seed ?? Tensor.ones(output.shape)
        precondition(
            seed.shape == output.shape,
            "gradients: seed \(describe(seed.shape)) differs from output \(describe(output.shape))")
        guard let root = output.node else {
            return inputs.map { Tensor.zeros($0.shape) }
        }
        let targets = Set(inputs.compactMap { $0.node.map(ObjectIdentifier.init) })
        let found = propagate(from: root, seed: seed, targets: targets, createGraph: createGraph)
        var byNode: [ObjectIdentifier: Tensor] = [:]
        for (n, g) in found { byNode[ObjectIdentifier(n)] = g }
        return inputs.map { x in
            x.node.flatMap { byNode[ObjectIdentifier($0)] } ?? Tensor.zeros(x.shape)
        }
    }

    /// Reverse-mode sweep. With `targets` nil, collects the gradient of every leaf;
    /// otherwise the gradient of every target node (leaf or not), pruning branches that
    /// reach no target.
    private static func propagate(
        from root: GradNode, seed: Tensor, targets: Set<ObjectIdentifier>?, createGraph: Bool
    ) -> [(GradNode, Tensor)] {
        // Topological order: node ids grow with creation, so newest first is valid.
        var nodes: [GradNode] = []
        var seen = Set<ObjectIdentifier>()
        var stack = [root]
        while let n = stack.popLast() {
            guard seen.insert(ObjectIdentifier(n)).inserted else { continue }
            nodes.append(n)
            for p in n.parents { if let p { stack.append(p) } }
        }
        nodes.sort { $0.id > $1.id }

        // A node is relevant when a wanted node is reachable from it (itself included).
        var relevant = Set<ObjectIdentifier>()
        for n in nodes.reversed() {
            let key = ObjectIdentifier(n)
            let wanted = targets.map { $0.contains(key) } ?? n.isLeaf
            if wanted
                || n.parents.contains(where: {
                    $0.map { relevant.contains(ObjectIdentifier($0)) } ?? false
                })
            {
                relevant.insert(key)
            }
        }

        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        var found: [(GradNode, Tensor)] = []
        GradMode.with(enabled: createGraph) {
            for n in nodes {
                let key = ObjectIdentifier(n)
                guard relevant.contains(key), let g = pending.removeValue(forKey: key) else {
                    continue
                }
                if targets?.contains(key) ?? n.isLeaf { found.append((n, g)) }
                guard let backward = n.backward else { continue }
                let needs = n.parents.map { p in
                    p.map { relevant.contains(ObjectIdentifier($0)) } ?? false
                }
                guard needs.contains(true) else { continue }
                let grads = backward(g, needs)
                for (i, p) in n.parents.enumerated() where needs[i] {
                    guard let p, let gi = grads[i] else { continue }
                    precondition(
                        gi.shape == p.shape,
                        "\(n.name) backward: gradient \(describe(gi.shape)) for input \(i) "
                            + "of shape \(describe(p.shape))")
                    let pk = ObjectIdentifier(p)
                    pending[pk] = pending[pk].map { $0 + gi } ?? gi
                }
            }
        }
        return found
    }
}
