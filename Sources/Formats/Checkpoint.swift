import Foundation
import TensorCore

/// A tensor read from a file, with the element type it had there (its values are float32
/// now).
public struct StoredTensor: @unchecked Sendable {
    public let tensor: Tensor
    /// The element type in the file.
    public let dtype: DType
}

/// The data tree of a checkpoint: Python containers and scalars with tensors at the leaves.
public indirect enum CheckpointValue: @unchecked Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([CheckpointValue])
    case tuple([CheckpointValue])
    /// A dict or OrderedDict, in insertion order.
    case dict(CheckpointDict)
    case tensor(StoredTensor)
    /// Anything else a pickle may hold, described: an integer beyond 64 bits, a torch dtype
    /// (`torch.float16`), an allow-listed class reference.
    case other(String)

    /// The dict, if this is one.
    public var dict: CheckpointDict? {
        if case .dict(let d) = self { return d }
        return nil
    }

    /// The value under a string key of a dict, else nil.
    public subscript(key: String) -> CheckpointValue? {
        dict?[key]
    }

    /// A short name of the kind of value, for messages and `inspect`.
    public var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .tensor: return "tensor"
        case .other(let s): return s
        }
    }
}

/// An insertion-ordered dict whose keys are checkpoint values (almost always strings).
public struct CheckpointDict: @unchecked Sendable {
    public private(set) var keys: [CheckpointValue] = []
    public private(set) var values: [CheckpointValue] = []
    private var stringIndex: [String: Int] = [:]

    public init() {}

    mutating func append(_ key: CheckpointValue, _ value: CheckpointValue) {
        if case .string(let s) = key { stringIndex[s] = keys.count }
        keys.append(key)
        values.append(value)
    }

    /// The value under a string key.
    public subscript(key: String) -> CheckpointValue? {
        stringIndex[key].map { values[$0] }
    }

    public var count: Int { keys.count }

    /// The string keys, in order (other keys are skipped).
    public var stringKeys: [String] {
        keys.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
    }

    /// (key, value) pairs in order, keys described as strings.
    public var entries: [(key: String, value: CheckpointValue)] {
        zip(keys, values).map { (CheckpointDict.describeKey($0.0), $0.1) }
    }

    static func describeKey(_ k: CheckpointValue) -> String {
        switch k {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        case .float(let f): return String(f)
        case .none: return "None"
        default: return "<\(k.kindName)>"
        }
    }
}

/// A flat, ordered `key → tensor` map (a PyTorch `state_dict`).
public struct StateDict: @unchecked Sendable {
    /// Keys and tensors in the file's order.
    public let entries: [(key: String, tensor: Tensor)]
    /// The same tensors by key (for `Module.load`).
    public let tensors: [String: Tensor]
    /// The element type of each key in the file.
    public let dtypes: [String: DType]

    public init(_ entries: [(key: String, tensor: Tensor)], dtypes: [String: DType] = [:]) {
        self.entries = entries
        var t: [String: Tensor] = [:]
        for (k, v) in entries { t[k] = v }
        self.tensors = t
        self.dtypes = dtypes
    }

    public var keys: [String] { entries.map(\.key) }
    public subscript(key: String) -> Tensor? { tensors[key] }
    public var count: Int { entries.count }
}

/// A PyTorch checkpoint read without Python: the zip format of `torch.save` (PyTorch ≥ 1.6)
/// and the legacy format before it. Only allow-listed globals may appear in its pickle (see
/// `Unpickler.allowedGlobals`); half, bfloat16, double and integer storages become float32
/// tensors, each remembering its file dtype.
public struct TorchCheckpoint: @unchecked Sendable {
    /// Which container the file used.
    public enum Format: String, Sendable, Codable {
        case zip = "PyTorch zip"
        case legacy = "PyTorch legacy"
    }

    public let format: Format
    /// The unpickled object.
    public let root: CheckpointValue
    /// The file, for messages.
    public let source: String

    /// Reads the checkpoint at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(try ByteBuffer(contentsOf: url))
    }

    /// Reads a checkpoint held in `buffer`.
    public init(_ buffer: ByteBuffer) throws {
        source = buffer.name
        let b = buffer.bytes
        if b.count >= 4, b[0] == 0x50, b[1] == 0x4B, b[2] == 0x03, b[3] == 0x04 {
            format = .zip
            root = try TorchCheckpoint.readZip(try ZipArchive(buffer))
        } else if b.count >= 2, b[0] == 0x80, b[1] <= 5 {
            format = .legacy
            root = try TorchCheckpoint.readLegacy(buffer)
        } else {
            let kind: FormatError.Kind = b.isEmpty ? .truncated : .badMagic
            throw FormatError(
                kind, file: buffer.name,
                b.isEmpty
                    ? "the file is empty"
                    : "not a PyTorch checkpoint: expected a zip archive ('PK') or a legacy "
                        + "torch.save pickle (0x80)")
        }
    }

    /// The tensors of the dict at `path` (e.g. `["g_ema"]`; `[]` for the top level), in
    /// order. Non-tensor entries are skipped; a missing key or a non-dict is an error.
    public func stateDict(_ path: String...) throws -> StateDict {
        try stateDict(path: path)
    }

    /// As `stateDict(_:)`, with the path as an array.
    public func stateDict(path: [String]) throws -> StateDict {
        var v = root
        var walked: [String] = []
        for k in path {
            guard let d = v.dict else {
                throw FormatError(
                    .missingKey, file: source, at: "key '\(walked.joined(separator: "."))'",
                    "expected a dict, found a \(v.kindName)")
            }
            guard let next = d[k] else {
                let have = d.entries.map(\.key).prefix(20).joined(separator: ", ")
                throw FormatError(
                    .missingKey, file: source, at: "key '\((walked + [k]).joined(separator: "."))'",
                    "no such key; the dict has: \(have)")
            }
            walked.append(k)
            v = next
        }
        guard let d = v.dict else {
            throw FormatError(
                .missingKey, file: source, at: "key '\(walked.joined(separator: "."))'",
                "expected a dict of tensors, found a \(v.kindName)")
        }
        var entries: [(key: String, tensor: Tensor)] = []
        var dtypes: [String: DType] = [:]
        for (k, value) in d.entries {
            if case .tensor(let t) = value {
                entries.append((k, t.tensor))
                dtypes[k] = t.dtype
            }
        }
        return StateDict(entries, dtypes: dtypes)
    }

    // MARK: - Zip format

    static func readZip(_ zip: ZipArchive) throws -> CheckpointValue {
        let name = zip.buffer.name
        // `<any top folder>/data.pkl`; the folder is the saved file's stem.
        guard
            let pkl = zip.entries.first(where: {
                $0.name.hasSuffix("/data.pkl") && $0.name.split(separator: "/").count == 2
            }) ?? zip.entries.first(where: { $0.name == "data.pkl" })
        else {
            throw FormatError(
                .badMagic, file: name,
                "a zip archive without '<folder>/data.pkl' is not a PyTorch checkpoint")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        if let order = zip.entry(named: prefix + "byteorder") {
            let text = String(decoding: try zip.contents(of: order).bytes, as: UTF8.self)
            guard text == "little" else {
                throw FormatError(
                    .unsupported, file: name, at: "entry '\(order.name)'",
                    "byte order '\(text)' (only little-endian checkpoints are read)")
            }
        }
        let pickle = try zip.contents(of: pkl)
        var u = Unpickler(pickle.bytes, source: name)
        let result = try u.load { u, pid in
            let s = try Unpickler.torchPersistentLoad(&u, pid)
            // Check the declared size against the record before anything is allocated.
            guard case .storage(let ref) = s else { return s }
            let record = prefix + "data/" + ref.key
            guard let entry = zip.entry(named: record) else {
                throw u.fail(.missingKey, "storage record '\(record)' is missing")
            }
            let need = ref.count.multipliedReportingOverflow(by: ref.dtype.size)
            let rootNeed = (u.storages[ref.key]?.count ?? 0)
                .multipliedReportingOverflow(by: ref.dtype.size)
            guard !need.overflow, !rootNeed.overflow,
                rootNeed.partialValue <= entry.uncompressedSize
            else {
                throw u.fail(
                    .tooLarge,
                    "storage '\(ref.key)' declares \(ref.count) elements of \(ref.dtype) "
                        + "(\(rootNeed.partialValue) bytes), but its record holds "
                        + "\(entry.uncompressedSize) bytes")
            }
            return s
        }
        defer { u.release(result) }
        var cache: [String: TensorStorage] = [:]
        var converter = TreeConverter(source: name, budget: max(pickle.count * 4, 1 << 20)) {
            ref in
            if let s = cache[ref.key] { return s }
            let record = try zip.contents(named: prefix + "data/" + ref.key)
            let s = try convertStorage(record.bytes, ref.dtype, root: u.storages[ref.key] ?? ref)
            cache[ref.key] = s
            return s
        }
        return try converter.convert(result, depth: 0)
    }

    /// Converts a root storage's bytes to float32.
    static func convertStorage(_ bytes: UnsafeRawBufferPointer, _ dtype: DType, root: StorageRef)
        throws -> TensorStorage
    {
        let n = root.count
        precondition(n * dtype.size <= bytes.count, "storage size was checked at load")
        let s = TensorStorage(count: n)
        if n > 0 { dtype.convert(bytes.baseAddress!, count: n, into: s.pointer) }
        return s
    }

    // MARK: - Legacy format

    /// The magic number that opens a legacy file, as LONG1 bytes (0x1950a86a20f9469cfc6c).
    static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    static func readLegacy(_ buffer: ByteBuffer) throws -> CheckpointValue {
        let name = buffer.name
        let b = buffer.bytes
        var position = 0
        func next(
            _ persistent: ((inout Unpickler, PyObject) throws -> PyObject)? = nil,
            storages: [String: StorageRef] = [:]
        ) throws -> (PyObject, Unpickler) {
            var u = Unpickler(
                UnsafeRawBufferPointer(rebasing: b[position...]), source: name, base: position,
                storages: storages)
            let v = try u.load { u, pid in
                guard let persistent else {
                    throw u.fail(.corrupt, "unexpected persistent id in a legacy header pickle")
                }
                return try persistent(&u, pid)
            }
            position += u.position
            // The caller frees the graph with `u.release(v)` once done with `v`.
            return (v, u)
        }
        var (magic, magicPickle) = try next()
        defer { magicPickle.release(magic) }
        guard case .bigInt(let m) = magic, m == legacyMagic else {
            throw FormatError(
                .badMagic, file: name,
                "a pickle, but not a torch.save file (no legacy magic number)")
        }
        var (protocolVersion, protocolVersionPickle) = try next()
        defer { protocolVersionPickle.release(protocolVersion) }
        guard case .int(1001) = protocolVersion else {
            throw FormatError(
                .unsupported, file: name,
                "legacy torch.save protocol \(protocolVersion.typeName) (only 1001 is read)")
        }
        var (info, infoPickle) = try next()
        defer { infoPickle.release(info) }
        if case .dict(let d) = info, let i = d.index[.string("little_endian")],
            case .bool(false) = d.values[i]
        {
            throw FormatError(.unsupported, file: name, "big-endian legacy checkpoint")
        }
        var (object, objectPickle) = try next(Unpickler.torchPersistentLoad)
        defer { objectPickle.release(object) }
        var (keysObject, keysObjectPickle) = try next()
        defer { keysObjectPickle.release(keysObject) }
        guard case .list(let keyList) = keysObject else {
            throw FormatError(
                .corrupt, file: name, at: "offset \(position)",
                "expected the list of storage keys")
        }
        // Raw storages follow, in the key list's order: int64 element count, then data.
        var data: [String: UnsafeRawBufferPointer] = [:]
        var r = ByteReader(b, source: name)
        r.position = position
        for k in keyList.items {
            guard case .string(let key) = k else {
                throw FormatError(.corrupt, file: name, "a storage key is not a string")
            }
            guard let ref = objectPickle.storages[key] else {
                throw FormatError(.corrupt, file: name, "storage '\(key)' is listed but unused")
            }
            let at = r.position
            let count = try r.le(Int64.self, "a storage size")
            guard count >= 0, count == Int64(ref.count) else {
                throw r.error(
                    .corrupt,
                    "storage '\(key)' has \(count) elements here, the pickle declared "
                        + "\(ref.count)", at: at)
            }
            let (bytes, o) = ref.count.multipliedReportingOverflow(by: ref.dtype.size)
            guard !o, bytes <= r.remaining else {
                throw r.error(
                    .tooLarge,
                    "storage '\(key)' declares \(ref.count) elements of "
                        + "\(ref.dtype), more than the \(r.remaining) bytes left in the file",
                    at: at)
            }
            data[key] = try r.take(bytes)
        }
        var cache: [String: TensorStorage] = [:]
        var converter = TreeConverter(source: name, budget: max(b.count * 4, 1 << 20)) { ref in
            if let s = cache[ref.key] { return s }
            guard let bytes = data[ref.key], let root = objectPickle.storages[ref.key] else {
                throw FormatError(
                    .missingKey, file: name,
                    "storage '\(ref.key)' is not in the file's storage list")
            }
            let s = try convertStorage(bytes, ref.dtype, root: root)
            cache[ref.key] = s
            return s
        }
        return try converter.convert(object, depth: 0)
    }
}

/// Turns the unpickled object graph into a `CheckpointValue` tree, with limits: a pickle can
/// share one list many times (a tree exponentially larger than the file) or make a cycle,
/// so nodes are counted against a budget proportional to the file and depth is capped.
struct TreeConverter {
    let source: String
    var budget: Int
    let storage: (StorageRef) throws -> TensorStorage

    init(source: String, budget: Int, storage: @escaping (StorageRef) throws -> TensorStorage) {
        self.source = source
        self.budget = budget
        self.storage = storage
    }

    mutating func convert(_ o: PyObject, depth: Int) throws -> CheckpointValue {
        budget -= 1
        guard budget >= 0 else {
            throw FormatError(
                .tooLarge, file: source,
                "the pickle's object tree is far larger than the file (shared or cyclic "
                    + "references)")
        }
        guard depth < 200 else {
            throw FormatError(
                .corrupt, file: source,
                "the pickle nests deeper than 200 levels "
                    + "(or refers to itself)")
        }
        switch o {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let b):
            return .other("int(0x" + b.reversed().map { String(format: "%02x", $0) }.joined() + ")")
        case .float(let f): return .float(f)
        case .string(let s): return .string(s)
        case .bytes(let b): return .bytes(b)
        case .list(let l): return .list(try l.items.map { try convert($0, depth: depth + 1) })
        case .tuple(let t): return .tuple(try t.items.map { try convert($0, depth: depth + 1) })
        case .dict(let d):
            var out = CheckpointDict()
            for (k, v) in zip(d.keys, d.values) {
                out.append(try convert(k, depth: depth + 1), try convert(v, depth: depth + 1))
            }
            return .dict(out)
        case .global(let g): return .other(g)
        case .storage(let s): return .other("storage '\(s.key)' (\(s.dtype), \(s.count))")
        case .tensor(let t):
            let s = try storage(t.storage)
            let tensor = Tensor(
                storage: s, shape: t.shape, strides: t.strides,
                offset: t.storage.viewOffset + t.offset)
            return .tensor(StoredTensor(tensor: tensor, dtype: t.storage.dtype))
        }
    }
}
