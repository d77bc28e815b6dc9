import Foundation
import TensorCore

/// Writes PyTorch checkpoints in the zip format of `torch.save` (PyTorch ≥ 1.6), so that
/// results move back to the PyTorch world: a top-level dict of state dicts, each an
/// `OrderedDict` of float32 tensors.
///
/// The archive holds, under a top folder named after the file's stem:
/// `data.pkl` (pickle protocol 2), `byteorder` (`little`), `data/N` (one raw
/// little-endian float32 storage per tensor) and `version` (`3`). Entries are stored
/// uncompressed, and each storage starts 64-byte aligned (padding in a local `FB` extra
/// field, as PyTorch's writer does). The pickle uses only the globals
/// `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and `torch.FloatStorage`,
/// all on the allow-list of `torch.load(weights_only=True)`; each tensor is
/// `_rebuild_tensor_v2(persistent ('storage', FloatStorage, 'N', 'cpu', numel), 0, size,
/// stride, False, OrderedDict())`.
public enum TorchWriter {
    /// One entry of the top-level dict: its key and its state dict, in order.
    public typealias Entry = (name: String, stateDict: [(key: String, tensor: Tensor)])

    /// Writes `torch.save({name: OrderedDict(state dict), …})` to `url` atomically.
    ///
    /// - Throws: `FormatError` when the file cannot be written or would need ZIP64.
    public static func write(_ entries: [Entry], to url: URL) throws {
        let stem = url.deletingPathExtension().lastPathComponent
        let folder = stem.isEmpty ? "archive" : stem
        var storages: [Tensor] = []
        let pickle = self.pickle(entries) { t in
            storages.append(t.detached().contiguous())
            return storages.count - 1
        }
        var records: [(name: String, bytes: UnsafeRawBufferPointer)] = []
        let pickleBytes = pickle
        let order = Array("little".utf8), version = Array("3\n".utf8)
        try pickleBytes.withUnsafeBytes { pkl in
            try order.withUnsafeBytes { ord in
                try version.withUnsafeBytes { ver in
                    records.append((folder + "/data.pkl", pkl))
                    records.append((folder + "/byteorder", ord))
                    for (i, t) in storages.enumerated() {
                        records.append(
                            (
                                folder + "/data/\(i)",
                                UnsafeRawBufferPointer(start: t.pointer, count: t.count * 4)
                            ))
                    }
                    records.append((folder + "/version", ver))
                    try writeZip(records, to: url)
                }
            }
        }
        withExtendedLifetime(storages) {}
    }

    // MARK: Pickle

    /// The pickle of the top-level dict; `storage` registers a tensor's values and returns
    /// its record number.
    static func pickle(_ entries: [Entry], storage: (Tensor) -> Int) -> [UInt8] {
        var p = PickleWriter()
        p.bytes += [0x80, 2]  // PROTO 2
        p.bytes.append(0x7D)  // EMPTY_DICT
        if !entries.isEmpty {
            p.bytes.append(0x28)  // MARK
            for (name, dict) in entries {
                p.string(name)
                p.emptyOrderedDict()
                if !dict.isEmpty {
                    p.bytes.append(0x28)  // MARK
                    for (key, t) in dict {
                        p.string(key)
                        p.tensor(t, record: storage(t))
                    }
                    p.bytes.append(0x75)  // SETITEMS
                }
            }
            p.bytes.append(0x75)  // SETITEMS
        }
        p.bytes.append(0x2E)  // STOP
        return p.bytes
    }

    struct PickleWriter {
        var bytes: [UInt8] = []

        mutating func string(_ s: String) {
            let utf8 = Array(s.utf8)
            bytes.append(0x58)  // BINUNICODE
            bytes += withUnsafeBytes(of: UInt32(utf8.count).littleEndian, Array.init)
            bytes += utf8
        }

        mutating func global(_ module: String, _ name: String) {
            bytes.append(0x63)  // GLOBAL
            bytes += Array("\(module)\n\(name)\n".utf8)
        }

        mutating func int(_ v: Int) {
            if v >= 0 && v < 256 {
                bytes += [0x4B, UInt8(v)]  // BININT1
            } else if v >= 0 && v < 65536 {
                bytes.append(0x4D)  // BININT2
                bytes += withUnsafeBytes(of: UInt16(v).littleEndian, Array.init)
            } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
                bytes.append(0x4A)  // BININT
                bytes += withUnsafeBytes(of: Int32(v).littleEndian, Array.init)
            } else {
                bytes += [0x8A, 8]  // LONG1, 8 bytes two's complement
                bytes += withUnsafeBytes(of: Int64(v).littleEndian, Array.init)
            }
        }

        mutating func tuple(_ values: [Int]) {
            bytes.append(0x28)  // MARK
            for v in values { int(v) }
            bytes.append(0x74)  // TUPLE
        }

        /// `collections.OrderedDict()`.
        mutating func emptyOrderedDict() {
            global("collections", "OrderedDict")
            bytes.append(0x29)  // EMPTY_TUPLE
            bytes.append(0x52)  // REDUCE
        }

        mutating func tensor(_ t: Tensor, record: Int) {
            global("torch._utils", "_rebuild_tensor_v2")
            bytes.append(0x28)  // MARK (the argument tuple)
            bytes.append(0x28)  // MARK (the persistent id)
            string("storage")
            global("torch", "FloatStorage")
            string(String(record))
            string("cpu")
            int(t.count)
            bytes.append(0x74)  // TUPLE
            bytes.append(0x51)  // BINPERSID
            int(0)  // storage offset
            tuple(t.shape)
            tuple(Shape.contiguousStrides(t.shape))
            bytes.append(0x89)  // NEWFALSE: requires_grad
            emptyOrderedDict()  // backward hooks
            bytes.append(0x74)  // TUPLE
            bytes.append(0x52)  // REDUCE
        }
    }

    // MARK: Zip

    /// Writes stored (uncompressed) records with 64-byte aligned data, no ZIP64.
    static func writeZip(_ records: [(name: String, bytes: UnsafeRawBufferPointer)], to url: URL)
        throws
    {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        var directory: [UInt8] = []
        var offset = 0
        try AtomicFile.write(to: url) { w in
            for (name, data) in records {
                let nameBytes = Array(name.utf8)
                let crc = Inflate.crc32(data)
                // Local header is 30 bytes + name + extra; pad the extra so data is aligned.
                let headerEnd = offset + 30 + nameBytes.count
                let pad = (64 - (headerEnd + 4) % 64) % 64
                let extra: [UInt8]
                if headerEnd % 64 == 0 {
                    extra = []
                } else {
                    extra = [0x46, 0x42] + le16(pad) + [UInt8](repeating: 0x5A, count: pad)
                }
                guard offset + 30 + nameBytes.count + extra.count + data.count < 0xFFFF_FFFF
                else {
                    throw FormatError(
                        .unsupported, file: url.path, "torch zips over 4 GiB are not written")
                }
                var common = le16(20) + le16(0x0800) + le16(0)  // version, UTF-8 names, stored
                common += le16(0) + le16(0x21)  // time, date (1980-01-01)
                common += le32(crc) + le32(UInt32(data.count)) + le32(UInt32(data.count))
                let local = le32(0x0403_4B50) + common + le16(nameBytes.count) + le16(extra.count)
                try w.write(local + nameBytes + extra)
                try w.write(data)
                directory += le32(0x0201_4B50) + le16(20) + common + le16(nameBytes.count)
                directory += le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(UInt32(offset))
                directory += nameBytes
                offset += local.count + nameBytes.count + extra.count + data.count
            }
            var end = le32(0x0605_4B50) + le16(0) + le16(0)
            end += le16(records.count) + le16(records.count)
            end += le32(UInt32(directory.count)) + le32(UInt32(offset)) + le16(0)
            try w.write(directory + end)
        }
    }
}
