import TensorCore

/// A trainable weight or a buffer, shared by reference so that optimisers and loaders
/// update it in place.
///
/// A trainable parameter's `value` is a leaf that requires gradients while
/// `isTrainable`; buffers (noise maps, blur kernels, running statistics) never do.
public final class Parameter {
    public private(set) var value: Tensor
    public let isBuffer: Bool
    /// A buffer that may be missing from a checkpoint because it can be rebuilt
    /// (StyleGAN2 noise maps and blur kernels); loading keeps the built value and warns.
    public let isRebuildable: Bool
    public private(set) var isTrainable: Bool

    public init(_ value: Tensor, buffer: Bool = false, rebuildable: Bool = false) {
        self.isBuffer = buffer
        self.isRebuildable = rebuildable
        self.isTrainable = !buffer
        self.value = buffer ? value.detached() : value.detached().requiringGrad()
    }

    public var shape: [Int] { value.shape }
    public var grad: Tensor? { value.grad }

    /// Replaces the values (shape must match), keeping trainability.
    public func assign(_ newValue: Tensor) {
        precondition(
            newValue.shape == value.shape,
            "assign: \(describe(newValue.shape)) into a parameter of \(describe(value.shape))")
        let copy = newValue.detached().contiguous()
        value = isTrainable ? copy.requiringGrad() : copy
    }

    /// Freezes or unfreezes: a frozen parameter records no graph and gets no gradient.
    public func setTrainable(_ trainable: Bool) {
        guard !isBuffer, trainable != isTrainable else { return }
        isTrainable = trainable
        value = trainable ? value.detached().requiringGrad() : value.detached()
    }

    public func zeroGrad() { value.zeroGrad() }
}

/// A node of a model: parameters and child modules under their PyTorch keys.
///
/// Subclasses create their parameters and children in `init`, then `register` each under
/// the key the PyTorch state dict uses, so that binding and saving walk the declaration.
open class Module {
    public enum Entry {
        case parameter(Parameter)
        case module(Module)
    }

    public private(set) var entries: [(key: String, entry: Entry)] = []

    public init() {}

    @discardableResult
    public func register(_ key: String, _ p: Parameter) -> Parameter {
        entries.append((key, .parameter(p)))
        return p
    }

    @discardableResult
    public func register<M: Module>(_ key: String, _ m: M) -> M {
        entries.append((key, .module(m)))
        return m
    }

    /// Every parameter and buffer under its full dotted key, in declaration order.
    public func namedParameters(prefix: String = "") -> [(key: String, parameter: Parameter)] {
        var out: [(String, Parameter)] = []
        for (k, e) in entries {
            let key = prefix.isEmpty ? k : prefix + "." + k
            switch e {
            case .parameter(let p): out.append((key, p))
            case .module(let m): out += m.namedParameters(prefix: key)
            }
        }
        return out
    }

    /// The trainable parameters (not buffers, not frozen).
    public var trainableParameters: [Parameter] {
        namedParameters().map(\.parameter).filter(\.isTrainable)
    }

    /// Number of values in trainable (or all non-buffer) parameters.
    public var parameterCount: Int {
        namedParameters().filter { !$0.parameter.isBuffer }.reduce(0) {
            $0 + $1.parameter.value.count
        }
    }

    /// Freezes or unfreezes every parameter.
    public func setTrainable(_ trainable: Bool) {
        for (_, p) in namedParameters() { p.setTrainable(trainable) }
    }

    public func zeroGrad() {
        for (_, p) in namedParameters() { p.zeroGrad() }
    }

    /// The state dict, as PyTorch's `state_dict()` would list it (parameters and buffers).
    public func stateDict(prefix: String = "") -> [(key: String, tensor: Tensor)] {
        namedParameters(prefix: prefix).map { ($0.key, $0.parameter.value.detached()) }
    }

    /// Binds a state dict strictly: every missing key, unexpected key and shape mismatch is
    /// collected and thrown together. Rebuildable buffers that are missing keep their
    /// built values; the returned warnings say so.
    @discardableResult
    public func load(
        _ state: [String: Tensor], prefix: String = "", source: String = "state dict"
    ) throws -> [String] {
        var problems: [String] = []
        var warnings: [String] = []
        var used = Set<String>()
        for (key, p) in namedParameters() {
            let full = prefix + key
            guard let t = state[full] else {
                if p.isRebuildable {
                    warnings.append("\(source): '\(full)' is missing; rebuilt it")
                } else {
                    problems.append("missing key '\(full)' (expected shape \(describe(p.shape)))")
                }
                continue
            }
            used.insert(full)
            if t.shape != p.shape {
                problems.append(
                    "key '\(full)': file has shape \(describe(t.shape)), "
                        + "model expects \(describe(p.shape))")
            }
        }
        for key in state.keys.sorted() where key.hasPrefix(prefix) && !used.contains(key) {
            problems.append("unexpected key '\(key)' (shape \(describe(state[key]!.shape)))")
        }
        if !problems.isEmpty {
            throw StateDictError(source: source, problems: problems)
        }
        for (key, p) in namedParameters() {
            if let t = state[prefix + key] { p.assign(t) }
        }
        return warnings
    }
}

/// A state dict that does not fit a model: every problem, one per line.
public struct StateDictError: Error, CustomStringConvertible {
    public let source: String
    public let problems: [String]
    public var description: String {
        "\(source) does not fit the model (\(problems.count) problem"
            + (problems.count == 1 ? "" : "s") + "):\n  " + problems.joined(separator: "\n  ")
    }
}
