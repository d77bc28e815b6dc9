import Formats
import Foundation
import TensorCore
import TestSupport
import XCTest

/// A minimal protobuf writer for building ONNX messages in tests.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func int(_ field: Int, _ v: Int64) {
        key(field, 0)
        varint(UInt64(bitPattern: v))
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5)
        bytes += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) {
        key(field, 2)
        varint(UInt64(b.count))
        bytes += b
    }
    mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        bytes(field, inner.bytes)
    }
}

/// ONNX builders (field numbers of onnx.proto).
enum ONNXBuild {
    static func attrInts(_ w: inout ProtoWriter, _ name: String, _ v: [Int64], packed: Bool) {
        w.message(5) { a in
            a.string(1, name)
            a.int(20, 7)
            if packed {
                var p = ProtoWriter()
                for x in v { p.varint(UInt64(bitPattern: x)) }
                a.bytes(8, p.bytes)
            } else {
                for x in v { a.int(8, x) }
            }
        }
    }

    /// A model: x [N, 2] → Gemm(W typed float_data [2, 3], b raw [3]) → Relu → y.
    static func tinyModel(op: String = "Relu", extraAttribute: Bool = false) -> [UInt8] {
        var m = ProtoWriter()
        m.int(1, 8)
        m.string(2, "isfgan-test")
        m.message(7) { g in
            g.message(1) { n in
                n.string(1, "x")
                n.string(1, "W")
                n.string(1, "b")
                n.string(2, "h")
                n.string(3, "fc")
                n.string(4, "Gemm")
                n.message(5) { a in
                    a.string(1, "alpha")
                    a.float(2, 1)
                    a.int(20, 1)
                }
                n.message(5) { a in
                    a.string(1, "transB")
                    a.int(3, 0)
                    a.int(20, 2)
                }
            }
            g.message(1) { n in
                n.string(1, "h")
                n.string(2, "y")
                n.string(3, "act")
                n.string(4, op)
                if extraAttribute { attrInts(&n, "perm", [1, 0], packed: true) }
            }
            g.string(2, "tiny")
            // W: float_data, unpacked (one fixed32 per value).
            g.message(5) { t in
                t.int(1, 2)
                t.int(1, 3)
                t.int(2, 1)
                for v: Float in [1, -2, 3, 0.5, 0.25, -1] { t.float(4, v) }
                t.string(8, "W")
            }
            // b: raw_data, with packed dims.
            g.message(5) { t in
                var dims = ProtoWriter()
                dims.varint(3)
                t.bytes(1, dims.bytes)
                t.int(2, 1)
                t.string(8, "b")
                var raw: [UInt8] = []
                for v: Float in [0.5, 1, -10] {
                    raw += withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
                }
                t.bytes(9, raw)
            }
            // pads: int64_data, packed.
            g.message(5) { t in
                t.int(1, 4)
                t.int(2, 7)
                var p = ProtoWriter()
                for v: Int64 in [0, -1, 5, 1 << 40] { p.varint(UInt64(bitPattern: v)) }
                t.bytes(7, p.bytes)
                t.string(8, "pads")
            }
            for (field, name) in [(11, "x"), (12, "y")] {
                g.message(field) { v in
                    v.string(1, name)
                    v.message(2) { tp in
                        tp.message(1) { tt in
                            tt.int(1, 1)
                            tt.message(2) { s in
                                s.message(1) { d in d.string(2, "N") }
                                s.message(1) { d in d.int(1, name == "x" ? 2 : 3) }
                            }
                        }
                    }
                }
            }
        }
        m.message(8) { o in
            o.string(1, "")
            o.int(2, 18)
        }
        return m.bytes
    }
}

final class ONNXReaderTests: XCTestCase {
    func testTinyModelFieldsAndTensorForms() throws {
        let model = try ONNXModel(bytes: ONNXBuild.tinyModel(), name: "tiny.onnx")
        XCTAssertEqual(model.irVersion, 8)
        XCTAssertEqual(model.producerName, "isfgan-test")
        XCTAssertEqual(model.defaultOpset, 18)
        let g = model.graph
        XCTAssertEqual(g.name, "tiny")
        XCTAssertEqual(g.nodes.map(\.opType), ["Gemm", "Relu"])
        XCTAssertEqual(g.nodes[0].inputs, ["x", "W", "b"])
        XCTAssertEqual(g.nodes[0].name, "fc")
        guard case .float(let alpha) = g.nodes[0].attribute("alpha")?.value,
            case .int(let transB) = g.nodes[0].attribute("transB")?.value
        else { return XCTFail("attributes not read") }
        XCTAssertEqual(alpha, 1)
        XCTAssertEqual(transB, 0)
        // Typed float_data, raw_data and int64_data (with a negative and a > 32-bit value).
        XCTAssertEqual(try g.initializer("W")!.floats(), [1, -2, 3, 0.5, 0.25, -1])
        XCTAssertEqual(g.initializer("W")!.dims, [2, 3])
        XCTAssertEqual(try g.initializer("b")!.tensor().scalars, [0.5, 1, -10])
        XCTAssertEqual(g.initializer("b")!.dims, [3])
        XCTAssertEqual(try g.initializer("pads")!.int64s(), [0, -1, 5, 1 << 40])
        XCTAssertEqual(g.inputs.first?.dims, [.parameter("N"), .value(2)])
        XCTAssertEqual(g.outputs.first?.name, "y")
    }

    func testPackedAndUnpackedIntsAgree() throws {
        for packed in [true, false] {
            var w = ProtoWriter()
            w.string(1, "n")
            w.string(4, "Conv")
            ONNXBuild.attrInts(&w, "pads", [1, 2, 3, 4], packed: packed)
            var m = ProtoWriter()
            m.int(1, 8)
            m.message(7) { g in g.bytes(1, w.bytes) }
            m.message(8) { o in o.int(2, 18) }
            let model = try ONNXModel(bytes: m.bytes, name: "p.onnx")
            guard case .ints(let v) = model.graph.nodes[0].attribute("pads")?.value else {
                return XCTFail("pads not read (packed \(packed))")
            }
            XCTAssertEqual(v, [1, 2, 3, 4])
        }
    }

    /// Every prefix of a valid model either fails with a FormatError or (when the cut
    /// falls between top-level fields before the graph) is refused for lacking the graph;
    /// none traps or succeeds.
    func testEveryTruncationIsAClearError() throws {
        let bytes = ONNXBuild.tinyModel()
        for cut in 0..<bytes.count {
            do {
                _ = try ONNXModel(bytes: bytes[0..<cut], name: "cut.onnx")
                XCTFail("a model cut at \(cut) of \(bytes.count) bytes was accepted")
            } catch let e as FormatError {
                XCTAssertTrue(e.description.hasPrefix("cut.onnx"), e.description)
            }
        }
    }

    func testCorruptLengthsAndJunkAreClearErrors() throws {
        var bytes = ONNXBuild.tinyModel()
        // The graph's length varint follows the key 0x3A (field 7, wire type 2).
        let at = bytes.firstIndex(of: 0x3A)!
        var big = ProtoWriter()
        big.varint(1 << 40)
        bytes.replaceSubrange((at + 1)...(at + 2), with: big.bytes)
        XCTAssertThrowsError(try ONNXModel(bytes: bytes, name: "big.onnx")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("big.onnx") && text.contains("declares"), text)
        }
        // A varint that never ends.
        XCTAssertThrowsError(
            try ONNXModel(bytes: [0x08] + [UInt8](repeating: 0xFF, count: 12), name: "v.onnx")
        ) { e in XCTAssertTrue("\(e)".contains("varint"), "\(e)") }
        // Not protobuf at all (a PNG signature): a wire-type or field error, not a trap.
        XCTAssertThrowsError(
            try ONNXModel(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], name: "x.png"))
        XCTAssertThrowsError(try ONNXModel(bytes: [UInt8](), name: "empty.onnx")) { e in
            XCTAssertTrue("\(e)".contains("empty"), "\(e)")
        }
        // Random bytes, many seeds: only FormatErrors.
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let junk = (0..<Int.random(in: 1...64, using: &rng)).map { _ in
                UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try ONNXModel(bytes: junk, name: "junk") } catch is FormatError {}
        }
    }

    func testTensorSizeMismatchIsAnError() throws {
        var m = ProtoWriter()
        m.int(1, 8)
        m.message(7) { g in
            g.message(5) { t in
                t.int(1, 4)
                t.int(2, 1)
                t.string(8, "short")
                t.bytes(9, [0, 0, 128, 63])  // one float for dims [4]
            }
        }
        m.message(8) { o in o.int(2, 18) }
        let model = try ONNXModel(bytes: m.bytes, name: "s.onnx")
        XCTAssertThrowsError(try model.graph.initializer("short")!.floats()) { e in
            XCTAssertTrue("\(e)".contains("'short'") && "\(e)".contains("16"), "\(e)")
        }
    }

    // MARK: - The real graphs

    struct Summary: Decodable {
        struct Node: Decodable {
            let op: String
            let name: String
            let inputs: [String]
            let outputs: [String]
        }
        struct Initializer: Decodable {
            let name: String
            let dtype: String
            let shape: [Int]
            let value: [Double]?
        }
        let node_count: Int
        let initializer_count: Int
        let nodes: [Node]
        let initializers: [Initializer]
    }

    struct Meta: Decodable {
        struct Graph: Decodable { let summary: Summary }
        let graphs: [String: Graph]
    }

    func summary(_ graph: String) throws -> Summary {
        let url = try Fixtures.url("real/age-gender-onnx/meta.json")
        let meta = try JSONDecoder().decode(Meta.self, from: Data(contentsOf: url))
        return try XCTUnwrap(meta.graphs[graph]?.summary)
    }

    /// The two graphs read as the fixture's summary (made with the onnx package) lists
    /// them: nodes, attributes, initializer shapes and dtypes, the int64 pads.
    func testRealGraphsMatchTheFixtureSummary() throws {
        for (graph, file) in [("gender", "gender-v1.onnx"), ("age", "age-v1.onnx")] {
            let expected = try summary(graph)
            let model = try ONNXModel(contentsOf: ModelFiles.url("age-gender/\(file)"))
            XCTAssertEqual(model.irVersion, 10)
            XCTAssertEqual(model.defaultOpset, 18)
            let g = model.graph
            XCTAssertEqual(g.nodes.count, expected.node_count, graph)
            XCTAssertEqual(g.nodes.map(\.opType), expected.nodes.map(\.op), graph)
            XCTAssertEqual(g.nodes.map(\.name), expected.nodes.map(\.name), graph)
            XCTAssertEqual(g.nodes.map(\.inputs), expected.nodes.map(\.inputs), graph)
            XCTAssertEqual(g.initializers.count, expected.initializer_count, graph)
            for (t, e) in zip(g.initializers, expected.initializers) {
                XCTAssertEqual(t.name, e.name)
                XCTAssertEqual(t.dims, e.shape, e.name)
                XCTAssertEqual(t.dataType == .float ? "float32" : "int64", e.dtype, e.name)
                if let v = e.value {
                    if e.dtype == "int64" {
                        XCTAssertEqual(try t.int64s().map(Double.init), v, e.name)
                    } else {
                        XCTAssertEqual(try t.floats().map(Double.init), v, e.name)
                    }
                }
                if e.dtype == "float32" { XCTAssertEqual(try t.floats().count, t.count) }
            }
            let conv = g.nodes.first { $0.opType == "Conv" }!
            guard case .ints(let k) = conv.attribute("kernel_shape")?.value else {
                return XCTFail("no kernel_shape")
            }
            XCTAssertEqual(k, graph == "gender" ? [3, 3] : [7, 7])
        }
    }

    /// Cutting the real gender graph anywhere gives a FormatError that names the file.
    func testTruncatedRealModelIsAClearError() throws {
        let url = try ModelFiles.url("age-gender/gender-v1.onnx")
        let bytes = [UInt8](try Data(contentsOf: url))
        for cut in stride(from: 0, to: bytes.count, by: 997) + [bytes.count - 1] {
            XCTAssertThrowsError(try ONNXModel(bytes: bytes[0..<cut], name: "gender-cut.onnx")) {
                XCTAssertTrue("\($0)".contains("gender-cut.onnx"), "\($0)")
            }
        }
    }
}
