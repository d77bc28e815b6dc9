import Foundation

/// A storage named by a pickle's persistent id; its bytes are found later (in the zip's
/// `data/<key>` record, or after the pickles of a legacy file). Tensors that share a
/// storage share this object.
final class StorageRef {
    let key: String
    let dtype: DType
    /// Declared number of elements.
    let count: Int
    /// For legacy storage views: the element offset into the root storage.
    let viewOffset: Int

    init(key: String, dtype: DType, count: Int, viewOffset: Int = 0) {
        self.key = key
        self.dtype = dtype
        self.count = count
        self.viewOffset = viewOffset
    }
}

/// A tensor as a pickle describes it: a view of a storage.
struct TensorRef {
    let storage: StorageRef
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A tuple. A class (not an array in the enum) so that `release` can empty it: see there.
final class PyTuple {
    var items: [PyObject]
    init(_ items: [PyObject] = []) { self.items = items }
}

final class PyList {
    var items: [PyObject]
    init(_ items: [PyObject] = []) { self.items = items }
}

/// A Python dict (insertion-ordered, like every dict since Python 3.7).
final class PyDict {
    var keys: [PyObject] = []
    var values: [PyObject] = []
    var index: [PyKey: Int] = [:]
    /// An `argparse.Namespace`: BUILD state becomes entries.
    var isNamespace = false

    func set(_ key: PyObject, _ value: PyObject, _ fail: (String) -> FormatError) throws {
        guard let k = PyKey(key) else {
            throw fail("a dict key of an unhashable type (\(key.typeName))")
        }
        if let i = index[k] {
            values[i] = value
        } else {
            index[k] = keys.count
            keys.append(key)
            values.append(value)
        }
    }
}

/// Hashable form of the Python values that can be dict keys.
indirect enum PyKey: Hashable {
    case none, bool(Bool), int(Int), big([UInt8]), float(UInt64), string(String)
    case bytes([UInt8]), tuple([PyKey]), global(String)

    init?(_ o: PyObject, depth: Int = 0) {
        guard depth < 32 else { return nil }  // deeper tuples are not accepted as keys
        switch o {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .bigInt(let b): self = .big(b)
        case .float(let f): self = .float(f.bitPattern)
        case .string(let s): self = .string(s)
        case .bytes(let b): self = .bytes(b)
        case .global(let g): self = .global(g)
        case .tuple(let t):
            var ks: [PyKey] = []
            for x in t.items {
                guard let k = PyKey(x, depth: depth + 1) else { return nil }
                ks.append(k)
            }
            self = .tuple(ks)
        default: return nil
        }
    }
}

/// The values a pickle can build here. Nothing in this enum can run code.
indirect enum PyObject {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer wider than 64 bits: little-endian two's complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list(PyList)
    case dict(PyDict)
    case tuple(PyTuple)
    /// A reference to an allow-listed global (a class, function or dtype), by full name.
    case global(String)
    case storage(StorageRef)
    case tensor(TensorRef)

    var typeName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .dict: return "dict"
        case .tuple: return "tuple"
        case .global(let g): return g
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A pickle (protocols 2–5, plus the protocol-0/1 opcodes that those still emit) read
/// without running anything: globals must be on an allow-list, and "calling" one only
/// builds data (a dict, a tensor description). This is the same guarantee as PyTorch's
/// `weights_only=True` loading.
struct Unpickler {
    /// Globals a pickle may name. Anything else stops the load.
    static let allowedGlobals: Set<String> = {
        var s: Set<String> = [
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
            "torch._tensor._rebuild_from_type_v2",
            "torch.Tensor",
            "torch.nn.parameter.Parameter",
            "torch.Size",
            "torch.device",
            "torch.UntypedStorage",
            "argparse.Namespace",
        ]
        for name in storageTypes.keys { s.insert("torch." + name) }
        for name in [
            "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64",
            "long", "int32", "int", "int16", "short", "int8", "uint8", "bool",
        ] {
            s.insert("torch." + name)
        }
        return s
    }()

    /// The element type of each legacy storage class.
    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "DoubleStorage": .float64, "HalfStorage": .float16,
        "BFloat16Storage": .bfloat16, "LongStorage": .int64, "IntStorage": .int32,
        "ShortStorage": .int16, "CharStorage": .int8, "ByteStorage": .uint8,
        "BoolStorage": .bool, "UntypedStorage": .uint8,
    ]

    let bytes: UnsafeRawBufferPointer
    let source: String
    /// Offset of these bytes in their file, for messages.
    let base: Int
    var position = 0
    var stack: [PyObject] = []
    var marks: [Int] = []
    var memo: [Int: PyObject] = [:]
    /// Storages by key, so that every tensor of one storage shares one `StorageRef`.
    var storages: [String: StorageRef]

    init(
        _ bytes: UnsafeRawBufferPointer, source: String, base: Int = 0,
        storages: [String: StorageRef] = [:]
    ) {
        self.bytes = bytes
        self.source = source
        self.base = base
        self.storages = storages
    }

    func fail(_ kind: FormatError.Kind, _ message: String, at: Int? = nil) -> FormatError {
        FormatError(kind, file: source, at: "pickle offset \(base + (at ?? position))", message)
    }

    // MARK: - Reading primitives

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else {
            throw fail(
                .truncated,
                "the pickle ends inside an operand (needs \(n) bytes, "
                    + "\(bytes.count - position) remain)")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
    }

    mutating func u8() throws -> Int { Int(try take(1)[0]) }

    mutating func le<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let b = try take(MemoryLayout<T>.size)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: b) }
        return T(littleEndian: v)
    }

    /// A length operand, checked against what is left of the pickle.
    mutating func length<T: FixedWidthInteger>(_: T.Type) throws -> Int {
        let n = try le(T.self)
        guard n >= 0, UInt64(n) <= UInt64(bytes.count - position) else {
            throw fail(.truncated, "declared length \(n) reaches past the end of the pickle")
        }
        return Int(n)
    }

    mutating func line() throws -> String {
        var end = position
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw fail(.truncated, "unterminated text operand") }
        defer { position = end + 1 }
        return String(decoding: bytes[position..<end], as: UTF8.self)
    }

    mutating func utf8(_ n: Int) throws -> String {
        let at = position
        let b = try take(n)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw fail(.corrupt, "a string that is not valid UTF-8", at: at)
        }
        return s
    }

    // MARK: - Stack

    mutating func pop() throws -> PyObject {
        guard let v = stack.popLast() else { throw fail(.corrupt, "pop from an empty stack") }
        if let m = marks.last, stack.count < m {
            throw fail(.corrupt, "the stack was popped below a MARK")
        }
        return v
    }

    mutating func top() throws -> PyObject {
        guard let v = stack.last else { throw fail(.corrupt, "the stack is empty") }
        return v
    }

    mutating func popMark() throws -> [PyObject] {
        guard let m = marks.popLast() else { throw fail(.corrupt, "no MARK on the stack") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    mutating func global(_ module: String, _ name: String, at: Int) throws -> PyObject {
        let full = module + "." + name
        guard Unpickler.allowedGlobals.contains(full) else {
            throw fail(
                .forbidden,
                "the pickle names the global '\(full)', which is not on the allow-list of "
                    + "tensor and container types; the load was stopped and nothing was run",
                at: at)
        }
        return .global(full)
    }

    // MARK: - The machine

    /// Runs the pickle to its STOP and returns the result. `persistentLoad` turns a
    /// persistent id (torch's storage tuples) into an object.
    mutating func load(persistentLoad: (inout Unpickler, PyObject) throws -> PyObject)
        throws -> PyObject
    {
        do {
            return try run(persistentLoad: persistentLoad)
        } catch {
            release()
            throw error
        }
    }

    /// Drops the stack and memo (and `result`) without recursion: a hostile pickle can nest
    /// containers a million deep, and Swift would release such a graph recursively and
    /// overflow the thread's stack. Every container is emptied (cycles included), so that
    /// whoever drops the last reference to one frees a single level.
    mutating func release(_ result: PyObject? = nil) {
        var roots = stack + Array(memo.values)
        if let result { roots.append(result) }
        stack = []
        memo = [:]
        Unpickler.dismantle(roots)
    }

    /// Empties every container reachable from `roots`, iteratively (see `release`).
    static func dismantle(_ roots: [PyObject]) {
        var work = roots
        while let x = work.popLast() {
            switch x {
            case .tuple(let t):
                work.append(contentsOf: t.items)
                t.items = []
            case .list(let l):
                work.append(contentsOf: l.items)
                l.items = []
            case .dict(let d):
                work.append(contentsOf: d.keys)
                work.append(contentsOf: d.values)
                d.keys = []
                d.values = []
                d.index = [:]
            default:
                break
            }
        }
    }

    mutating func run(persistentLoad: (inout Unpickler, PyObject) throws -> PyObject)
        throws -> PyObject
    {
        while true {
            let at = position
            guard position < bytes.count else {
                throw fail(.truncated, "the pickle ends without a STOP opcode")
            }
            let op = try u8()
            switch op {
            case 0x80:  // PROTO
                let v = try u8()
                guard v <= 5 else { throw fail(.unsupported, "pickle protocol \(v)", at: at) }
            case 0x95:  // FRAME: a length hint only
                _ = try le(UInt64.self)
            case 0x2E:  // STOP
                let v = try pop()
                return v
            case 0x28: marks.append(stack.count)  // MARK
            case 0x7D: stack.append(.dict(PyDict()))  // EMPTY_DICT
            case 0x5D: stack.append(.list(PyList()))  // EMPTY_LIST
            case 0x29: stack.append(.tuple(PyTuple()))  // EMPTY_TUPLE
            case 0x8F: stack.append(.list(PyList()))  // EMPTY_SET (kept as a list)
            case 0x74: stack.append(.tuple(PyTuple(try popMark())))  // TUPLE
            case 0x85: stack.append(.tuple(PyTuple([try pop()])))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple(PyTuple([a, b])))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple(PyTuple([a, b, c])))
            case 0x6C: stack.append(.list(PyList(try popMark())))  // LIST
            case 0x64:  // DICT
                let items = try popMark()
                let d = PyDict()
                try fill(d, items)
                stack.append(.dict(d))
            case 0x91: stack.append(.tuple(PyTuple(try popMark())))  // FROZENSET (kept as a tuple)
            case 0x61:  // APPEND
                let v = try pop()
                guard case .list(let l) = try top() else {
                    throw fail(.corrupt, "APPEND to a \(try top().typeName)", at: at)
                }
                l.items.append(v)
            case 0x65, 0x90:  // APPENDS, ADDITEMS
                let items = try popMark()
                guard case .list(let l) = try top() else {
                    throw fail(.corrupt, "APPENDS to a \(try top().typeName)", at: at)
                }
                l.items += items
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = try top() else {
                    throw fail(.corrupt, "SETITEM on a \(try top().typeName)", at: at)
                }
                try d.set(k, v) { fail(.corrupt, $0, at: at) }
            case 0x75:  // SETITEMS
                let items = try popMark()
                guard case .dict(let d) = try top() else {
                    throw fail(.corrupt, "SETITEMS on a \(try top().typeName)", at: at)
                }
                try fill(d, items)
            case 0x4A: stack.append(.int(Int(try le(Int32.self))))  // BININT
            case 0x4B: stack.append(.int(try u8()))  // BININT1
            case 0x4D: stack.append(.int(Int(try le(UInt16.self))))  // BININT2
            case 0x8A: stack.append(try long(try u8()))  // LONG1
            case 0x8B: stack.append(try long(try length(Int32.self)))  // LONG4
            case 0x49:  // INT (text); "00"/"01" are False/True in protocol 0
                let s = try line()
                if s == "00" {
                    stack.append(.bool(false))
                } else if s == "01" {
                    stack.append(.bool(true))
                } else if let v = Int(s) {
                    stack.append(.int(v))
                } else {
                    throw fail(.corrupt, "bad INT operand '\(s.prefix(40))'", at: at)
                }
            case 0x4C:  // LONG (text)
                var s = try line()
                if s.hasSuffix("L") { s.removeLast() }
                guard let v = Int(s) else {
                    throw fail(.unsupported, "text LONG beyond 64 bits", at: at)
                }
                stack.append(.int(v))
            case 0x47:  // BINFLOAT, big-endian
                let b = try take(8)
                var bits: UInt64 = 0
                for x in b { bits = bits << 8 | UInt64(x) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x46:  // FLOAT (text)
                let s = try line()
                guard let v = Double(s) else {
                    throw fail(.corrupt, "bad FLOAT operand '\(s.prefix(40))'", at: at)
                }
                stack.append(.float(v))
            case 0x58: stack.append(.string(try utf8(try length(UInt32.self))))  // BINUNICODE
            case 0x8C: stack.append(.string(try utf8(try u8())))  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try utf8(try length(UInt64.self))))  // BINUNICODE8
            case 0x54:  // BINSTRING (Python 2 str): read as Latin-1 text
                let b = try take(try length(Int32.self))
                stack.append(.string(String(b.map { Character(UnicodeScalar($0)) })))
            case 0x55:  // SHORT_BINSTRING
                let b = try take(try u8())
                stack.append(.string(String(b.map { Character(UnicodeScalar($0)) })))
            case 0x42: stack.append(.bytes(Array(try take(try length(UInt32.self)))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(try u8()))))  // SHORT_BINBYTES
            case 0x8E, 0x96:  // BINBYTES8, BYTEARRAY8
                stack.append(.bytes(Array(try take(try length(UInt64.self)))))
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                stack.append(try global(module, name, at: at))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail(.corrupt, "STACK_GLOBAL needs two strings", at: at)
                }
                stack.append(try global(m, n, at: at))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args, at: at))
            case 0x81:  // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, args, at: at))
            case 0x92:  // NEWOBJ_EX
                _ = try pop()
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, args, at: at))
            case 0x62:  // BUILD
                let state = try pop()
                try build(try top(), state)
            case 0x51:  // BINPERSID
                let pid = try pop()
                stack.append(try persistentLoad(&self, pid))
            case 0x50:  // PERSID (text id)
                stack.append(try persistentLoad(&self, .string(try line())))
            case 0x71: memo[try u8()] = try top()  // BINPUT
            case 0x72: memo[Int(try le(UInt32.self))] = try top()  // LONG_BINPUT
            case 0x70:  // PUT
                let s = try line()
                guard let i = Int(s) else { throw fail(.corrupt, "bad PUT index", at: at) }
                memo[i] = try top()
            case 0x94: memo[memo.count] = try top()  // MEMOIZE
            case 0x68: stack.append(try memoGet(try u8(), at))  // BINGET
            case 0x6A: stack.append(try memoGet(Int(try le(UInt32.self)), at))  // LONG_BINGET
            case 0x67:  // GET
                let s = try line()
                guard let i = Int(s) else { throw fail(.corrupt, "bad GET index", at: at) }
                stack.append(try memoGet(i, at))
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: stack.append(try top())  // DUP
            case 0x69, 0x6F:  // INST, OBJ: instantiate a class
                throw fail(
                    .forbidden,
                    "the pickle instantiates an object with INST/OBJ, which "
                        + "is not allowed; the load was stopped and nothing was run", at: at)
            case 0x82, 0x83, 0x84:  // EXT1, EXT2, EXT4: registry globals
                throw fail(
                    .forbidden,
                    "the pickle names a global through the extension "
                        + "registry, which is not allowed; the load was stopped and nothing was "
                        + "run", at: at)
            case 0x97, 0x98:  // NEXT_BUFFER, READONLY_BUFFER
                throw fail(.unsupported, "out-of-band buffers (pickle protocol 5)", at: at)
            default:
                throw fail(.corrupt, String(format: "unknown pickle opcode 0x%02x", op), at: at)
            }
        }
    }

    mutating func memoGet(_ i: Int, _ at: Int) throws -> PyObject {
        guard let v = memo[i] else { throw fail(.corrupt, "memo entry \(i) is unset", at: at) }
        return v
    }

    mutating func fill(_ d: PyDict, _ items: [PyObject]) throws {
        guard items.count % 2 == 0 else {
            throw fail(.corrupt, "odd number of items for a dict")
        }
        for i in stride(from: 0, to: items.count, by: 2) {
            try d.set(items[i], items[i + 1]) { fail(.corrupt, $0) }
        }
    }

    /// A little-endian two's complement integer of `n` bytes.
    mutating func long(_ n: Int) throws -> PyObject {
        let b = Array(try take(n))
        if n == 0 { return .int(0) }
        if n <= 8 {
            var v: UInt64 = b.last! >= 0x80 ? UInt64.max : 0
            for (i, x) in b.enumerated() {
                v &= ~(UInt64(0xFF) << (8 * UInt64(i)))
                v |= UInt64(x) << (8 * UInt64(i))
            }
            return .int(Int(Int64(bitPattern: v)))
        }
        return .bigInt(b)
    }

    // MARK: - What allow-listed globals do when "called"

    func call(_ callable: PyObject, _ args: PyObject, at: Int) throws -> PyObject {
        guard case .global(let name) = callable else {
            throw fail(.corrupt, "REDUCE on a \(callable.typeName), not an allowed global", at: at)
        }
        guard case .tuple(let argsTuple) = args else {
            throw fail(.corrupt, "arguments of \(name) are a \(args.typeName), not a tuple", at: at)
        }
        let a = argsTuple.items
        switch name {
        case "collections.OrderedDict":
            let d = PyDict()
            if let first = a.first {
                // OrderedDict([(k, v), ...])
                guard case .list(let pairs) = first else {
                    throw fail(.corrupt, "OrderedDict needs a list of pairs", at: at)
                }
                for p in pairs.items {
                    guard case .tuple(let pair) = p, pair.items.count == 2 else {
                        throw fail(.corrupt, "OrderedDict item is not a pair", at: at)
                    }
                    try d.set(pair.items[0], pair.items[1]) { fail(.corrupt, $0, at: at) }
                }
            }
            return .dict(d)
        case "argparse.Namespace":
            let d = PyDict()
            d.isNamespace = true
            return .dict(d)
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard a.count >= 4 else {
                throw fail(.corrupt, "\(name) needs at least 4 arguments, got \(a.count)", at: at)
            }
            return try rebuildTensor(a[0], a[1], a[2], a[3], at: at)
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let data = a.first, case .tensor = data else {
                throw fail(.corrupt, "\(name) needs a tensor as its first argument", at: at)
            }
            return data
        case "torch._tensor._rebuild_from_type_v2":
            // (func, type, args, state): apply func to args; the subclass type is dropped.
            guard a.count >= 3 else {
                throw fail(.corrupt, "\(name) needs 3 or 4 arguments", at: at)
            }
            if case .global(name) = a[0] {
                throw fail(.corrupt, "\(name) applied to itself", at: at)
            }
            return try call(a[0], a[2], at: at)
        case "torch.Size":
            guard let first = a.first else { return .tuple(PyTuple()) }
            if case .tuple = first { return first }
            if case .list(let l) = first { return .tuple(PyTuple(l.items)) }
            throw fail(.corrupt, "torch.Size needs a tuple", at: at)
        case "torch.device":
            let parts = a.compactMap { v -> String? in
                switch v {
                case .string(let s): return s
                case .int(let i): return String(i)
                default: return nil
                }
            }
            return .string(parts.joined(separator: ":"))
        default:
            throw fail(
                .forbidden,
                "the pickle calls '\(name)', which may be named but not "
                    + "called; the load was stopped and nothing was run", at: at)
        }
    }

    func build(_ target: PyObject, _ state: PyObject) throws {
        switch target {
        case .dict(let d):
            // An OrderedDict's BUILD attaches `_metadata` (ignored); a Namespace's holds
            // its fields.
            if d.isNamespace, case .dict(let s) = state {
                for (k, v) in zip(s.keys, s.values) { try d.set(k, v) { fail(.corrupt, $0) } }
            }
        case .tensor, .list:
            break
        default:
            throw fail(
                .forbidden,
                "BUILD on a \(target.typeName) is not allowed; the load "
                    + "was stopped and nothing was run")
        }
    }

    func int(_ v: PyObject, _ what: String, at: Int) throws -> Int {
        switch v {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: throw fail(.corrupt, "\(what) is a \(v.typeName), expected an int", at: at)
        }
    }

    func ints(_ v: PyObject, _ what: String, at: Int) throws -> [Int] {
        let items: [PyObject]
        switch v {
        case .tuple(let t): items = t.items
        case .list(let l): items = l.items
        default: throw fail(.corrupt, "\(what) is a \(v.typeName), expected a tuple", at: at)
        }
        guard items.count <= 64 else {
            throw fail(.invalidShape, "\(what) has \(items.count) dimensions (at most 64)", at: at)
        }
        return try items.map { try int($0, what, at: at) }
    }

    /// Checks a tensor view against its storage before anything is allocated.
    func rebuildTensor(
        _ storage: PyObject, _ offset: PyObject, _ size: PyObject, _ stride: PyObject, at: Int
    ) throws -> PyObject {
        guard case .storage(let s) = storage else {
            throw fail(.corrupt, "tensor storage is a \(storage.typeName)", at: at)
        }
        let off = try int(offset, "storage offset", at: at)
        let shape = try ints(size, "size", at: at)
        let strides = try ints(stride, "stride", at: at)
        guard shape.count == strides.count else {
            throw fail(.invalidShape, "size \(shape) and stride \(strides) differ in rank", at: at)
        }
        guard off >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw fail(
                .invalidShape,
                "negative offset \(off), size \(shape) or stride "
                    + "\(strides)", at: at)
        }
        _ = try Checked.count(
            shape, fail(.invalidShape, "size \(shape) overflows", at: at))
        // The last element the view touches must lie inside the storage.
        if !shape.contains(0) {
            var last = off
            for (d, st) in zip(shape, strides) {
                let (m, o1) = (d - 1).multipliedReportingOverflow(by: st)
                let (sum, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else {
                    throw fail(
                        .invalidShape, "size \(shape) with stride \(strides) overflows",
                        at: at)
                }
                last = sum
            }
            guard last < s.count else {
                throw fail(
                    .invalidShape,
                    "a tensor of size \(shape), stride \(strides) at offset \(off) reaches "
                        + "element \(last) of storage '\(s.key)', which holds \(s.count)",
                    at: at)
            }
        }
        return .tensor(TensorRef(storage: s, offset: off, shape: shape, strides: strides))
    }

    /// torch's persistent ids: `('storage', StorageType, key, location, numel[, view])`.
    static func torchPersistentLoad(_ u: inout Unpickler, _ pid: PyObject) throws -> PyObject {
        guard case .tuple(let pidTuple) = pid, pidTuple.items.count >= 5,
            case .string("storage") = pidTuple.items[0]
        else {
            throw u.fail(.corrupt, "unrecognised persistent id (expected a torch storage tuple)")
        }
        let t = pidTuple.items
        guard case .global(let typeName) = t[1],
            let dtype = storageTypes[String(typeName.dropFirst("torch.".count))]
        else {
            throw u.fail(.unsupported, "storage type \(t[1].typeName)")
        }
        let key: String
        switch t[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw u.fail(.corrupt, "storage key is a \(t[2].typeName)")
        }
        let count = try u.int(t[4], "storage size", at: u.position)
        guard count >= 0 else { throw u.fail(.invalidShape, "negative storage size \(count)") }
        var root: StorageRef
        if let known = u.storages[key] {
            guard known.dtype == dtype else {
                throw u.fail(.corrupt, "storage '\(key)' is named with two element types")
            }
            root = known
        } else {
            root = StorageRef(key: key, dtype: dtype, count: count)
            u.storages[key] = root
        }
        // Legacy storage views: (view_key, offset, view_size).
        if t.count >= 6, case .tuple(let viewTuple) = t[5], viewTuple.items.count == 3 {
            let view = viewTuple.items
            let viewOffset = try u.int(view[1], "view offset", at: u.position)
            let viewSize = try u.int(view[2], "view size", at: u.position)
            guard viewOffset >= 0, viewSize >= 0, viewOffset <= root.count,
                viewSize <= root.count - viewOffset
            else {
                throw u.fail(.invalidShape, "storage view reaches past storage '\(key)'")
            }
            root = StorageRef(key: key, dtype: dtype, count: viewSize, viewOffset: viewOffset)
        }
        return .storage(root)
    }
}
