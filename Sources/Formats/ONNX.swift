import Foundation
import TensorCore

// The ONNX model format (onnx.proto, IR version 3 and later), read with the protobuf
// wire-format reader of `Protobuf.swift`. Only the parts an inference executor needs are
// kept: the model header, the opset imports, the graph with its nodes, attributes,
// initializers, inputs and outputs. Unknown fields are skipped, as protobuf requires.

/// An ONNX element type (`TensorProto.DataType`).
public struct ONNXDataType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let float = ONNXDataType(rawValue: 1)
    public static let uint8 = ONNXDataType(rawValue: 2)
    public static let int8 = ONNXDataType(rawValue: 3)
    public static let int32 = ONNXDataType(rawValue: 6)
    public static let int64 = ONNXDataType(rawValue: 7)
    public static let double = ONNXDataType(rawValue: 11)

    static let names = [
        0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32",
        7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32",
        13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16",
    ]

    public var description: String { Self.names[rawValue] ?? "type \(rawValue)" }
}

/// A tensor stored in the model (an initializer or a tensor attribute): its values stay in
/// the file's bytes until asked for.
public struct ONNXTensor {
    /// The tensor's name (initializers are referenced by name).
    public let name: String
    /// The dimensions (empty for a scalar).
    public let dims: [Int]
    /// The element type.
    public let dataType: ONNXDataType
    /// `raw_data` when present: little-endian values, `count · size` bytes.
    let raw: ProtobufReader?
    /// The typed fields (`float_data`, `int64_data`, `int32_data`, `double_data`).
    let floatData: [Float]
    let int64Data: [Int64]
    let int32Data: [Int64]
    let doubleData: [Double]
    /// True when the tensor's values live in an external file (not supported).
    public let isExternal: Bool
    /// The file, for error messages.
    let file: String

    /// The number of elements (product of `dims`, checked when the tensor was read).
    public let count: Int

    func fail(_ kind: FormatError.Kind, _ message: String) -> FormatError {
        FormatError(kind, file: file, at: "tensor '\(name)'", message)
    }

    private func checkStorage() throws {
        if isExternal {
            throw fail(
                .unsupported,
                "the values are stored in an external data file, which isfgan does not read")
        }
    }

    /// The values as float32: FLOAT from `raw_data` or `float_data`.
    ///
    /// - Throws: `FormatError` when the type is not FLOAT or the stored number of values
    ///   does not match the dimensions.
    public func floats() throws -> [Float] {
        try checkStorage()
        guard dataType == .float else {
            throw fail(.unsupported, "expected FLOAT values, the tensor holds \(dataType)")
        }
        if let raw {
            guard raw.remaining == count * 4 else {
                throw fail(
                    .corrupt,
                    "raw_data has \(raw.remaining) bytes; dims \(dims) need \(count * 4)")
            }
            let bytes = raw.bytes
            return (0..<count).map {
                Float(
                    bitPattern: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)
                        .littleEndian)
            }
        }
        guard floatData.count == count else {
            throw fail(
                .corrupt, "float_data has \(floatData.count) values; dims \(dims) need \(count)")
        }
        return floatData
    }

    /// The values as int64: INT64 from `raw_data` or `int64_data`, INT32 from `raw_data`
    /// or `int32_data`.
    public func int64s() throws -> [Int64] {
        try checkStorage()
        switch dataType {
        case .int64:
            if let raw {
                guard raw.remaining == count * 8 else {
                    throw fail(
                        .corrupt,
                        "raw_data has \(raw.remaining) bytes; dims \(dims) need \(count * 8)")
                }
                let bytes = raw.bytes
                return (0..<count).map {
                    Int64(
                        littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
                }
            }
            guard int64Data.count == count else {
                throw fail(
                    .corrupt,
                    "int64_data has \(int64Data.count) values; dims \(dims) need \(count)")
            }
            return int64Data
        case .int32:
            if let raw {
                guard raw.remaining == count * 4 else {
                    throw fail(
                        .corrupt,
                        "raw_data has \(raw.remaining) bytes; dims \(dims) need \(count * 4)")
                }
                let bytes = raw.bytes
                return (0..<count).map {
                    Int64(
                        Int32(
                            littleEndian: bytes.loadUnaligned(
                                fromByteOffset: 4 * $0, as: Int32.self)))
                }
            }
            guard int32Data.count == count else {
                throw fail(
                    .corrupt,
                    "int32_data has \(int32Data.count) values; dims \(dims) need \(count)")
            }
            return int32Data
        default:
            throw fail(.unsupported, "expected INT64 or INT32 values, the tensor holds \(dataType)")
        }
    }

    /// A float32 tensor of shape `dims`.
    public func tensor() throws -> Tensor {
        Tensor(shape: dims, try floats())
    }

    /// Reads a `TensorProto`.
    static func read(_ message: ProtobufReader, file: String) throws -> ONNXTensor {
        var r = message
        var name = "", dims: [Int64] = [], dataType = 0
        var raw: ProtobufReader?
        var floats: [Float] = [], int64s: [Int64] = [], int32s: [Int64] = []
        var doubles: [Double] = []
        var external = false, location = 0
        while let f = try r.nextField() {
            switch f.number {
            case 1: try f.appendInt64s(to: &dims)
            case 2: dataType = try f.int()
            case 3:
                throw f.fail(.unsupported, "segmented tensors are not supported")
            case 4: try f.appendFloats(to: &floats)
            case 5: try f.appendInt64s(to: &int32s)
            case 7: try f.appendInt64s(to: &int64s)
            case 8: name = try f.string()
            case 9: raw = try f.message()
            case 10: try f.appendDoubles(to: &doubles)
            case 13: external = true
            case 14: location = try f.int()
            default: break
            }
        }
        let where_ = name.isEmpty ? "an unnamed tensor" : "tensor '\(name)'"
        var count = 1
        for d in dims {
            guard d >= 0, d <= Int64(Int32.max) else {
                throw FormatError(
                    .invalidShape, file: file, at: where_, "dimension \(d) in \(dims)")
            }
            let (p, o) = count.multipliedReportingOverflow(by: Int(d))
            guard !o, p <= 1 << 40 else {
                throw FormatError(.tooLarge, file: file, at: where_, "dims \(dims) are too large")
            }
            count = p
        }
        return ONNXTensor(
            name: name, dims: dims.map { Int($0) }, dataType: ONNXDataType(rawValue: dataType),
            raw: raw, floatData: floats, int64Data: int64s, int32Data: int32s,
            doubleData: doubles, isExternal: external || location == 1, file: file,
            count: count)
    }
}

/// The value of a node attribute.
public enum ONNXAttributeValue {
    case float(Float)
    case int(Int64)
    case string(String)
    case tensor(ONNXTensor)
    case floats([Float])
    case ints([Int64])
    case strings([String])
    /// A kind isfgan does not read (graphs, sparse tensors, type protos), by its name.
    case unsupported(String)
}

/// One attribute of a node.
public struct ONNXAttribute {
    /// The attribute's name (`"kernel_shape"`).
    public let name: String
    /// Its value.
    public let value: ONNXAttributeValue

    /// A short rendering for messages (`[3, 3]`, `1.0`, `"constant"`).
    public var valueDescription: String {
        switch value {
        case .float(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .string(let v): return "\"\(v)\""
        case .tensor(let t): return "a tensor \(t.dims)"
        case .floats(let v): return "\(v)"
        case .ints(let v): return "\(v)"
        case .strings(let v): return "\(v)"
        case .unsupported(let kind): return "a \(kind) value"
        }
    }

    static let typeNames = [
        0: "UNDEFINED", 1: "FLOAT", 2: "INT", 3: "STRING", 4: "TENSOR", 5: "GRAPH", 6: "FLOATS",
        7: "INTS", 8: "STRINGS", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR",
        12: "SPARSE_TENSORS", 13: "TYPE_PROTO", 14: "TYPE_PROTOS",
    ]

    /// Reads an `AttributeProto`.
    static func read(_ message: ProtobufReader, file: String, node: String) throws
        -> ONNXAttribute
    {
        var r = message
        var name = "", type = 0
        var f32: Float?, i64: Int64?, s: String?, t: ONNXTensor?
        var floats: [Float] = [], ints: [Int64] = [], strings: [String] = []
        var seen = Set<Int>()
        while let f = try r.nextField() {
            seen.insert(f.number)
            switch f.number {
            case 1: name = try f.string()
            case 20: type = try f.int()
            case 2: f32 = try f.float()
            case 3: i64 = try f.int64()
            case 4: s = String(decoding: try f.message().bytes, as: UTF8.self)
            case 5: t = try ONNXTensor.read(try f.message("attribute tensor"), file: file)
            case 7: try f.appendFloats(to: &floats)
            case 8: try f.appendInt64s(to: &ints)
            case 9: strings.append(String(decoding: try f.message().bytes, as: UTF8.self))
            default: break
            }
        }
        if type == 0 {
            // IR < 3 files may omit the type: infer it from the field that is set.
            let order = [(2, 1), (3, 2), (4, 3), (5, 4), (7, 6), (8, 7), (9, 8), (6, 5)]
            type = order.first { seen.contains($0.0) }?.1 ?? 0
        }
        let value: ONNXAttributeValue
        switch type {
        case 1: value = .float(f32 ?? 0)
        case 2: value = .int(i64 ?? 0)
        case 3: value = .string(s ?? "")
        case 4:
            guard let t else {
                throw FormatError(
                    .corrupt, file: file, at: "node '\(node)' attribute '\(name)'",
                    "a TENSOR attribute without a tensor")
            }
            value = .tensor(t)
        case 6: value = .floats(floats)
        case 7: value = .ints(ints)
        case 8: value = .strings(strings)
        default: value = .unsupported(typeNames[type] ?? "type \(type)")
        }
        return ONNXAttribute(name: name, value: value)
    }
}

/// One node of the graph: an operator applied to named inputs, giving named outputs.
public struct ONNXNode {
    /// The node's name (may be empty in some files; messages then use the first output).
    public let name: String
    /// The operator (`"Conv"`).
    public let opType: String
    /// The operator's domain (`""` is the default `ai.onnx`).
    public let domain: String
    /// Input value names; an empty name is an omitted optional input.
    public let inputs: [String]
    /// Output value names.
    public let outputs: [String]
    /// The attributes, in file order.
    public let attributes: [ONNXAttribute]

    /// The attribute named `name`, if present.
    public func attribute(_ name: String) -> ONNXAttribute? {
        attributes.first { $0.name == name }
    }

    /// The name to show in messages.
    public var displayName: String {
        name.isEmpty ? "(unnamed, output '\(outputs.first ?? "?")')" : name
    }

    static func read(_ message: ProtobufReader, file: String, index: Int) throws -> ONNXNode {
        var r = message
        var name = "", op = "", domain = ""
        var inputs: [String] = [], outputs: [String] = []
        var attributeMessages: [ProtobufReader] = []
        while let f = try r.nextField() {
            switch f.number {
            case 1: inputs.append(try f.string())
            case 2: outputs.append(try f.string())
            case 3: name = try f.string()
            case 4: op = try f.string()
            case 5: attributeMessages.append(try f.message("attribute of node \(index)"))
            case 7: domain = try f.string()
            default: break
            }
        }
        let shown = name.isEmpty ? "#\(index)" : name
        let attributes = try attributeMessages.map {
            try ONNXAttribute.read($0, file: file, node: shown)
        }
        guard !op.isEmpty else {
            throw FormatError(.corrupt, file: file, at: "node \(shown)", "the node has no op_type")
        }
        return ONNXNode(
            name: name, opType: op, domain: domain, inputs: inputs, outputs: outputs,
            attributes: attributes)
    }
}

/// A graph input or output: name, element type and dimensions as declared.
public struct ONNXValueInfo {
    /// One declared dimension.
    public enum Dimension: Equatable, CustomStringConvertible {
        case value(Int)
        case parameter(String)
        case unknown

        public var description: String {
            switch self {
            case .value(let v): return "\(v)"
            case .parameter(let p): return p
            case .unknown: return "?"
            }
        }
    }

    public let name: String
    /// The element type (UNDEFINED when not declared).
    public let elementType: ONNXDataType
    /// The dimensions, or nil when the shape is not declared.
    public let dims: [Dimension]?

    static func read(_ message: ProtobufReader) throws -> ONNXValueInfo {
        var r = message
        var name = "", elem = 0
        var dims: [Dimension]?
        while let f = try r.nextField() {
            switch f.number {
            case 1: name = try f.string()
            case 2:
                // TypeProto: tensor_type = 1 → elem_type = 1, shape = 2 → dim = 1.
                var type = try f.message()
                while let tf = try type.nextField() {
                    guard tf.number == 1 else { continue }
                    var tensor = try tf.message()
                    while let g = try tensor.nextField() {
                        if g.number == 1 { elem = try g.int() }
                        guard g.number == 2 else { continue }
                        var shape = try g.message()
                        var list: [Dimension] = []
                        while let d = try shape.nextField() {
                            guard d.number == 1 else { continue }
                            var dim = try d.message()
                            var value = Dimension.unknown
                            while let x = try dim.nextField() {
                                if x.number == 1 { value = .value(try x.int()) }
                                if x.number == 2 { value = .parameter(try x.string()) }
                            }
                            list.append(value)
                        }
                        dims = list
                    }
                }
            default: break
            }
        }
        return ONNXValueInfo(name: name, elementType: ONNXDataType(rawValue: elem), dims: dims)
    }
}

/// The computation graph: nodes in topological order, initializers, inputs and outputs.
public struct ONNXGraph {
    public let name: String
    public let nodes: [ONNXNode]
    /// Stored tensors, in file order.
    public let initializers: [ONNXTensor]
    /// The graph's inputs (initializers may also be listed here in IR < 4 files).
    public let inputs: [ONNXValueInfo]
    public let outputs: [ONNXValueInfo]

    /// The initializer named `name`, if any.
    public func initializer(_ name: String) -> ONNXTensor? {
        initializers.first { $0.name == name }
    }

    static func read(_ message: ProtobufReader, file: String) throws -> ONNXGraph {
        var r = message
        var name = ""
        var nodes: [ONNXNode] = [], initializers: [ONNXTensor] = []
        var inputs: [ONNXValueInfo] = [], outputs: [ONNXValueInfo] = []
        while let f = try r.nextField() {
            switch f.number {
            case 1:
                nodes.append(
                    try ONNXNode.read(
                        try f.message("node \(nodes.count)"), file: file, index: nodes.count))
            case 2: name = try f.string()
            case 5:
                initializers.append(
                    try ONNXTensor.read(
                        try f.message("initializer \(initializers.count)"), file: file))
            case 11: inputs.append(try ONNXValueInfo.read(try f.message("graph input")))
            case 12: outputs.append(try ONNXValueInfo.read(try f.message("graph output")))
            case 15:
                throw f.fail(.unsupported, "the graph has sparse initializers")
            default: break
            }
        }
        return ONNXGraph(
            name: name, nodes: nodes, initializers: initializers, inputs: inputs,
            outputs: outputs)
    }
}

/// An ONNX model file (`ModelProto`).
///
///     let model = try ONNXModel(contentsOf: url)
///     model.graph.nodes.map(\.opType)   // ["Conv", "Mul", "Add", "Relu", …]
public struct ONNXModel {
    /// The file (or in-memory source) name, for messages.
    public let file: String
    public let irVersion: Int
    public let producerName: String
    public let producerVersion: String
    /// Operator set imports: domain (`""` = ai.onnx) and version.
    public let opsetImports: [(domain: String, version: Int)]
    public let graph: ONNXGraph
    /// `metadata_props` key/value pairs.
    public let metadata: [String: String]
    /// Keeps the file mapped while tensors refer to its bytes.
    let buffer: ByteBuffer

    /// The version of the default operator set (`""` or `"ai.onnx"`), if imported.
    public var defaultOpset: Int? {
        opsetImports.first { $0.domain == "" || $0.domain == "ai.onnx" }?.version
    }

    /// Reads the model at `url`.
    ///
    /// - Throws: `FormatError` naming the file and the byte offset when the file is
    ///   truncated, corrupt or not an ONNX model.
    public init(contentsOf url: URL) throws {
        try self.init(buffer: try ByteBuffer(contentsOf: url))
    }

    /// Reads a model from bytes in memory; `name` appears in error messages.
    public init<C: Collection>(bytes: C, name: String) throws where C.Element == UInt8 {
        try self.init(buffer: ByteBuffer(copying: bytes, name: name))
    }

    /// Reads a model from a buffer.
    public init(buffer: ByteBuffer) throws {
        let file = buffer.name
        guard buffer.count > 0 else {
            throw FormatError(.truncated, file: file, "the file is empty; expected an ONNX model")
        }
        var r = ProtobufReader(buffer, context: "ModelProto")
        var ir: Int?, producer = "", producerVersion = ""
        var opsets: [(String, Int)] = []
        var graph: ONNXGraph?
        var metadata: [String: String] = [:]
        while let f = try r.nextField() {
            switch f.number {
            case 1: ir = try f.int()
            case 2: producer = try f.string()
            case 3: producerVersion = try f.string()
            case 7: graph = try ONNXGraph.read(try f.message("GraphProto"), file: file)
            case 8:
                var m = try f.message("opset_import")
                var domain = "", version = 0
                while let g = try m.nextField() {
                    if g.number == 1 { domain = try g.string() }
                    if g.number == 2 { version = try g.int() }
                }
                opsets.append((domain, version))
            case 14:
                var m = try f.message("metadata_props")
                var key = "", value = ""
                while let g = try m.nextField() {
                    if g.number == 1 { key = try g.string() }
                    if g.number == 2 { value = try g.string() }
                }
                metadata[key] = value
            case 20, 25:
                break  // training info, functions: not needed for inference
            default: break
            }
        }
        guard let ir else {
            throw FormatError(
                .badMagic, file: file, "no ir_version field: not an ONNX model (or truncated)")
        }
        guard let graph else {
            throw FormatError(
                .truncated, file: file,
                "no graph in the model (IR version \(ir)): the file is truncated or not an "
                    + "ONNX model")
        }
        guard !opsets.isEmpty else {
            throw FormatError(
                .truncated, file: file,
                "no opset_import after the graph: the file is truncated or not an ONNX model")
        }
        self.file = file
        self.irVersion = ir
        self.producerName = producer
        self.producerVersion = producerVersion
        self.opsetImports = opsets.map { (domain: $0.0, version: $0.1) }
        self.graph = graph
        self.metadata = metadata
        self.buffer = buffer
    }
}
