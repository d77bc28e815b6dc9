import Foundation
import TensorCore

@testable import Formats

/// Writes pickles opcode by opcode, so tests can build exactly the (possibly hostile)
/// checkpoints they need without Python.
struct PickleBuilder {
    var bytes: [UInt8] = [0x80, 2]  // PROTO 2

    static func le32(_ v: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian, Array.init)
    }

    mutating func op(_ code: UInt8) { bytes.append(code) }
    mutating func mark() { op(0x28) }
    mutating func tuple() { op(0x74) }
    mutating func emptyDict() { op(0x7D) }
    mutating func emptyTuple() { op(0x29) }
    mutating func emptyList() { op(0x5D) }
    mutating func setItems() { op(0x75) }
    mutating func appends() { op(0x65) }
    mutating func reduce() { op(0x52) }
    mutating func persistentID() { op(0x51) }
    mutating func newFalse() { op(0x89) }
    mutating func newTrue() { op(0x88) }
    mutating func none() { op(0x4E) }
    mutating func stop() { op(0x2E) }

    mutating func string(_ s: String) { rawString(Array(s.utf8)) }
    /// BINUNICODE with arbitrary bytes (e.g. invalid UTF-8).
    mutating func rawString(_ b: [UInt8]) { bytes += [0x58] + Self.le32(b.count) + b }
    mutating func global(_ module: String, _ name: String) {
        bytes += [0x63] + Array(module.utf8) + [0x0A] + Array(name.utf8) + [0x0A]
    }
    /// LONG1 with 8 bytes: any Int.
    mutating func int(_ v: Int) {
        bytes += [0x8A, 8] + withUnsafeBytes(of: Int64(v).littleEndian, Array.init)
    }
    mutating func ints(_ vs: [Int]) {
        mark()
        for v in vs { int(v) }
        tuple()
    }

    /// `_rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size,
    /// stride, False, OrderedDict())`.
    mutating func tensor(
        storage key: String, type: String = "FloatStorage", numel: Int, offset: Int = 0,
        shape: [Int], stride: [Int]
    ) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark()
        string("storage")
        global("torch", type)
        string(key)
        string("cpu")
        int(numel)
        tuple()
        persistentID()
        int(offset)
        ints(shape)
        ints(stride)
        newFalse()
        global("collections", "OrderedDict")
        emptyTuple()
        reduce()
        tuple()
        reduce()
    }

    /// A dict of named tensors: `{key: tensor(...)}`.
    static func stateDict(
        _ items: [(
            key: String, storage: String, type: String, numel: Int, offset: Int,
            shape: [Int], stride: [Int]
        )]
    ) -> PickleBuilder {
        var p = PickleBuilder()
        p.emptyDict()
        p.mark()
        for i in items {
            p.string(i.key)
            p.tensor(
                storage: i.storage, type: i.type, numel: i.numel, offset: i.offset,
                shape: i.shape, stride: i.stride)
        }
        p.setItems()
        p.stop()
        return p
    }
}

/// A torch-zip checkpoint: `<prefix>/data.pkl`, `<prefix>/byteorder`, `<prefix>/data/<k>`.
func torchZip(
    pickle: [UInt8], storages: [(String, [UInt8])], prefix: String = "archive",
    deflate: Bool = false
) throws -> [UInt8] {
    var zip = ZipWriter()
    try zip.add("\(prefix)/data.pkl", pickle, deflate: deflate)
    try zip.add("\(prefix)/byteorder", Array("little".utf8))
    for (k, b) in storages { try zip.add("\(prefix)/data/\(k)", b, deflate: deflate) }
    try zip.add("\(prefix)/version", Array("3\n".utf8))
    return zip.finished()
}

func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

/// A PNG built chunk by chunk (zlib-wrapped IDAT), for bit depths and colour types that
/// isfgan never writes itself.
func makePNG(
    width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
    palette: [UInt8]? = nil
) throws -> [UInt8] {
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        let crc = body.withUnsafeBytes { Inflate.crc32($0) }
        return withUnsafeBytes(of: UInt32(data.count).bigEndian, Array.init) + body
            + withUnsafeBytes(of: crc.bigEndian, Array.init)
    }
    var ihdr = withUnsafeBytes(of: UInt32(width).bigEndian, Array.init)
    ihdr += withUnsafeBytes(of: UInt32(height).bigEndian, Array.init)
    ihdr += [bitDepth, colorType, 0, 0, 0]
    var raw: [UInt8] = []
    for r in rows { raw += [0] + r }  // filter type 0 on every row
    var a: UInt32 = 1, b: UInt32 = 0
    for x in raw {
        a = (a + UInt32(x)) % 65_521
        b = (b + a) % 65_521
    }
    let zlib =
        [0x78, 0x9C] + (try Inflate.deflateRaw(raw))
        + withUnsafeBytes(of: (b << 16 | a).bigEndian, Array.init)
    var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    out += chunk("IHDR", ihdr)
    if let palette { out += chunk("PLTE", palette) }
    out += chunk("IDAT", zlib)
    out += chunk("IEND", [])
    return out
}
