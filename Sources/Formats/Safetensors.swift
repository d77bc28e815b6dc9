import Foundation
import TensorCore

/// The safetensors format, isfgan's own format for everything it saves: an 8-byte
/// little-endian header length, a JSON header mapping each name to its dtype, shape and
/// byte range, an optional `__metadata__` string map, then the raw little-endian data.
///
/// Reading checks every range against the file and every shape against its range before
/// anything is allocated; names keep the order of their data in the file.
public struct SafetensorsFile: @unchecked Sendable {
    /// One tensor's header entry.
    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the data section.
        let begin: Int
        let end: Int
    }

    public let buffer: ByteBuffer
    /// Entries in data order.
    public let entries: [Entry]
    /// The `__metadata__` map (empty when absent).
    public let metadata: [String: String]
    let dataStart: Int

    /// Opens the safetensors file at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(try ByteBuffer(contentsOf: url))
    }

    /// Parses the header of safetensors bytes.
    public init(_ buffer: ByteBuffer) throws {
        self.buffer = buffer
        let name = buffer.name
        var r = ByteReader(buffer.bytes, source: name)
        guard buffer.count >= 8 else {
            throw r.error(
                .truncated,
                "a safetensors file needs an 8-byte header length, the "
                    + "file has \(buffer.count) bytes", at: 0)
        }
        let n = try r.le(UInt64.self)
        guard n <= UInt64(r.remaining), n <= 100_000_000 else {
            throw r.error(
                .truncated,
                "header length \(n) exceeds the file (\(r.remaining) bytes "
                    + "after the length) or 100 MB", at: 0)
        }
        let headerBytes = try r.take(Int(n))
        guard headerBytes.first == 0x7B else {
            throw r.error(
                .badMagic, "not a safetensors file: the header is not a JSON object",
                at: 8)
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw r.error(.corrupt, "the JSON header does not parse", at: 8)
        }
        guard let header = json as? [String: Any] else {
            throw r.error(.corrupt, "the JSON header is not an object", at: 8)
        }
        dataStart = r.position
        let dataSize = r.remaining
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        for (key, value) in header {
            func fail(_ kind: FormatError.Kind, _ message: String) -> FormatError {
                FormatError(kind, file: name, at: "key '\(key)'", message)
            }
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw fail(.corrupt, "__metadata__ must be an object of strings")
                }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw fail(.corrupt, "__metadata__ value '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any], let dtypeName = info["dtype"] as? String,
                let shapeAny = info["shape"] as? [Any],
                let offsetsAny = info["data_offsets"]
                    as? [Any], offsetsAny.count == 2
            else {
                throw fail(.corrupt, "expected {dtype, shape, data_offsets: [begin, end]}")
            }
            guard let dtype = DType(safetensorsName: dtypeName) else {
                throw fail(.unsupported, "dtype '\(dtypeName)'")
            }
            // Exact non-negative integers only (NSNumber bridging refuses 1.5 and 1e20).
            func integer(_ v: Any) -> Int? {
                guard let i = v as? Int, i >= 0 else { return nil }
                return i
            }
            let shape = shapeAny.compactMap(integer)
            let offsets = offsetsAny.compactMap(integer)
            guard shape.count == shapeAny.count, shape.count <= 64 else {
                throw fail(.invalidShape, "shape must be at most 64 non-negative integers")
            }
            guard offsets.count == 2, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
                throw fail(
                    .truncated,
                    "data_offsets \(offsetsAny) reach outside the "
                        + "\(dataSize)-byte data section")
            }
            let count = try Checked.count(shape, fail(.invalidShape, "shape \(shape) overflows"))
            let bytes = try Checked.multiply(
                count, dtype.size, fail(.invalidShape, "shape \(shape) overflows"))
            guard bytes == offsets[1] - offsets[0] else {
                throw fail(
                    .invalidShape,
                    "shape \(describe(shape)) of \(dtypeName) needs \(bytes) "
                        + "bytes, data_offsets give \(offsets[1] - offsets[0])")
            }
            entries.append(
                Entry(name: key, dtype: dtype, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        entries.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
        self.entries = entries
        self.metadata = metadata
    }

    /// The entry called `name`.
    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    func bytes(of e: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(
            rebasing: buffer.bytes[(dataStart + e.begin)..<(dataStart + e.end)])
    }

    /// The tensor called `name` as float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entry(name) else {
            throw FormatError(
                .missingKey, file: buffer.name, at: "key '\(name)'",
                "no such tensor")
        }
        return tensor(e)
    }

    func tensor(_ e: Entry) -> Tensor {
        let t = Tensor(uninitializedShape: e.shape)
        let b = bytes(of: e)
        if t.count > 0 { e.dtype.convert(b.baseAddress!, count: t.count, into: t.pointer) }
        return t
    }

    /// The entry called `name` with its exact bytes and dtype.
    public func array(_ name: String) throws -> RawArray {
        guard let e = entry(name) else {
            throw FormatError(
                .missingKey, file: buffer.name, at: "key '\(name)'",
                "no such tensor")
        }
        return RawArray(dtype: e.dtype, shape: e.shape, bytes: Array(bytes(of: e)))
    }

    /// Every tensor as float32, in data order.
    public func stateDict() -> StateDict {
        var dtypes: [String: DType] = [:]
        for e in entries { dtypes[e.name] = e.dtype }
        return StateDict(entries.map { ($0.name, tensor($0)) }, dtypes: dtypes)
    }
}

public enum Safetensors {
    /// Writes float32 tensors (in the given order) and metadata to `url` atomically.
    public static func write(
        _ tensors: [(key: String, tensor: Tensor)], metadata: [String: String] = [:],
        to url: URL
    ) throws {
        try write(
            arrays: tensors.map { ($0.key, RawArray($0.tensor)) }, metadata: metadata,
            to: url)
    }

    /// Writes arrays of any dtype (in the given order) and metadata to `url` atomically.
    public static func write(
        arrays: [(key: String, array: RawArray)], metadata: [String: String] = [:], to url: URL
    ) throws {
        var seen = Set<String>()
        for (k, _) in arrays {
            precondition(
                k != "__metadata__" && seen.insert(k).inserted,
                "safetensors: duplicate or reserved tensor name '\(k)'")
        }
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{" + m.joined(separator: ",") + "}")
        }
        var offset = 0
        for (k, a) in arrays {
            let end = offset + a.bytes.count
            parts.append(
                "\(jsonString(k)):{\"dtype\":\"\(a.dtype.safetensorsName)\",\"shape\":["
                    + a.shape.map(String.init).joined(separator: ",")
                    + "],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while header.count % 8 != 0 { header.append(0x20) }
        try AtomicFile.write(to: url) { w in
            try w.write(withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init))
            try w.write(header)
            for (_, a) in arrays { try w.write(a.bytes) }
        }
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
