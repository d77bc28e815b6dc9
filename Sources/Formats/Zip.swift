import CZlib
import Foundation

/// Bytes that belong to a `ByteBuffer` (which keeps them alive): a whole file, a stored zip
/// entry inside a mapped file, or an inflated entry.
public struct ByteSlice: @unchecked Sendable {
    public let owner: ByteBuffer
    public let bytes: UnsafeRawBufferPointer
    /// Name for error messages (file, or file plus entry).
    public let name: String

    public init(_ owner: ByteBuffer) {
        self.owner = owner
        self.bytes = owner.bytes
        self.name = owner.name
    }

    init(owner: ByteBuffer, bytes: UnsafeRawBufferPointer, name: String) {
        self.owner = owner
        self.bytes = bytes
        self.name = name
    }

    public var count: Int { bytes.count }
}

/// A read-only zip archive: the central directory, with stored and deflated entries and the
/// ZIP64 extensions (archives or entries over 4 GiB, or over 65,535 entries).
///
/// Every size and offset is checked against the file before use; an entry whose data would
/// reach past the end of the file, a CRC mismatch or a declared size that deflate cannot
/// reach from its compressed size is a `FormatError`.
public struct ZipArchive: @unchecked Sendable {
    /// One file inside the archive.
    public struct Entry: Sendable {
        public let name: String
        /// 0 = stored, 8 = deflated.
        public let method: UInt16
        public let flags: UInt16
        public let crc32: UInt32
        public let compressedSize: Int
        public let uncompressedSize: Int
        public let localHeaderOffset: Int
    }

    public let buffer: ByteBuffer
    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    /// Opens the zip file at `url`.
    public init(contentsOf url: URL) throws {
        try self.init(try ByteBuffer(contentsOf: url))
    }

    /// Reads the central directory of a zip held in `buffer`.
    public init(_ buffer: ByteBuffer) throws {
        self.buffer = buffer
        let name = buffer.name
        let b = buffer.bytes
        let n = b.count
        func fail(_ kind: FormatError.Kind, _ message: String, at offset: Int? = nil)
            -> FormatError
        {
            FormatError(kind, file: name, at: offset.map { "offset \($0)" }, message)
        }
        guard n >= 22 else {
            throw fail(
                n == 0 ? .truncated : .badMagic,
                "a zip archive needs at least 22 bytes (its end record), the file has \(n)")
        }
        // The end-of-central-directory record sits within the last 22 + 65,535 bytes.
        var eocd = -1
        var p = n - 22
        let lowest = max(0, n - 22 - 65_535)
        while p >= lowest {
            if b[p] == 0x50, b[p + 1] == 0x4B, b[p + 2] == 0x05, b[p + 3] == 0x06 {
                eocd = p
                break
            }
            p -= 1
        }
        guard eocd >= 0 else {
            throw fail(
                .badMagic,
                "no zip end-of-central-directory record (not a zip, or "
                    + "truncated)")
        }
        var r = ByteReader(b, source: name)
        r.position = eocd + 4
        let disk = try r.le(UInt16.self)
        _ = try r.le(UInt16.self)
        _ = try r.le(UInt16.self)
        var count = Int(try r.le(UInt16.self))
        var cdSize = Int(try r.le(UInt32.self))
        var cdOffset = Int(try r.le(UInt32.self))
        guard disk == 0 || disk == 0xFFFF else {
            throw fail(.unsupported, "multi-disk zip archives are not supported", at: eocd)
        }
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the end record points at the ZIP64 end record.
            let locator = eocd - 20
            guard locator >= 0 else {
                throw fail(.corrupt, "ZIP64 sizes but no room for a ZIP64 locator", at: eocd)
            }
            r.position = locator
            guard try r.le(UInt32.self) == 0x0706_4B50 else {
                throw fail(.corrupt, "ZIP64 sizes but no ZIP64 locator", at: locator)
            }
            _ = try r.le(UInt32.self)
            let record64 = try r.le(UInt64.self)
            guard n >= 56, record64 <= UInt64(n - 56) else {
                throw fail(
                    .truncated, "ZIP64 end record offset \(record64) is past the end",
                    at: locator)
            }
            r.position = Int(record64)
            guard try r.le(UInt32.self) == 0x0606_4B50 else {
                throw fail(.corrupt, "bad ZIP64 end record signature", at: Int(record64))
            }
            r.position += 8 + 2 + 2 + 4 + 4 + 8
            let total = try r.le(UInt64.self)
            let size = try r.le(UInt64.self)
            let offset = try r.le(UInt64.self)
            guard total <= UInt64(n), size <= UInt64(n), offset <= UInt64(n) else {
                throw fail(
                    .truncated, "ZIP64 end record declares sizes past the end of file",
                    at: Int(record64))
            }
            count = Int(total)
            cdSize = Int(size)
            cdOffset = Int(offset)
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw fail(
                .truncated,
                "central directory (offset \(cdOffset), \(cdSize) bytes) reaches past the end "
                    + "of the \(n)-byte file", at: eocd)
        }
        // Each directory record is at least 46 bytes: this bounds the allocation below.
        guard count <= cdSize / 46 else {
            throw fail(
                .corrupt, "\(count) entries cannot fit in a \(cdSize)-byte directory",
                at: eocd)
        }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var index: [String: Int] = [:]
        var d = ByteReader(
            UnsafeRawBufferPointer(rebasing: b[cdOffset..<cdOffset + cdSize]), source: name,
            base: cdOffset)
        for _ in 0..<count {
            let at = d.position
            guard try d.le(UInt32.self, "a directory record") == 0x0201_4B50 else {
                throw d.error(.corrupt, "bad central directory record signature", at: at)
            }
            _ = try d.le(UInt16.self)
            _ = try d.le(UInt16.self)
            let flags = try d.le(UInt16.self)
            let method = try d.le(UInt16.self)
            _ = try d.le(UInt32.self)
            let crc = try d.le(UInt32.self)
            var compressed = UInt64(try d.le(UInt32.self))
            var uncompressed = UInt64(try d.le(UInt32.self))
            let nameLength = Int(try d.le(UInt16.self))
            let extraLength = Int(try d.le(UInt16.self))
            let commentLength = Int(try d.le(UInt16.self))
            _ = try d.le(UInt16.self)
            _ = try d.le(UInt16.self)
            _ = try d.le(UInt32.self)
            var local = UInt64(try d.le(UInt32.self))
            let nameBytes = try d.take(nameLength, "an entry name")
            var extra = ByteReader(try d.take(extraLength, "an extra field"), source: name)
            _ = try d.take(commentLength, "an entry comment")
            while extra.remaining >= 4 {
                let id = try extra.le(UInt16.self)
                let size = Int(try extra.le(UInt16.self))
                var field = ByteReader(try extra.take(size, "an extra field"), source: name)
                guard id == 0x0001 else { continue }
                // ZIP64 extra: only the fields whose 32-bit value was saturated, in order.
                if uncompressed == 0xFFFF_FFFF { uncompressed = try field.le(UInt64.self) }
                if compressed == 0xFFFF_FFFF { compressed = try field.le(UInt64.self) }
                if local == 0xFFFF_FFFF { local = try field.le(UInt64.self) }
            }
            let entryName = String(decoding: nameBytes, as: UTF8.self)
            guard compressed <= UInt64(n), local <= UInt64(n),
                uncompressed <= UInt64(Int.max / 2)
            else {
                throw FormatError(
                    .truncated, file: name, at: "entry '\(entryName)'",
                    "declared sizes or offset reach past the end of the \(n)-byte file")
            }
            index[entryName] = entries.count
            entries.append(
                Entry(
                    name: entryName, method: method, flags: flags, crc32: crc,
                    compressedSize: Int(compressed), uncompressedSize: Int(uncompressed),
                    localHeaderOffset: Int(local)))
        }
        self.entries = entries
        self.index = index
    }

    /// The entry called `name`, if any.
    public func entry(named name: String) -> Entry? {
        index[name].map { entries[$0] }
    }

    /// The uncompressed bytes of `entry`: a view into the file for stored entries, a new
    /// buffer for deflated ones. Verifies the CRC-32.
    public func contents(of entry: Entry) throws -> ByteSlice {
        let b = buffer.bytes
        let name = buffer.name
        let location = "entry '\(entry.name)'"
        func fail(_ kind: FormatError.Kind, _ message: String) -> FormatError {
            FormatError(kind, file: name, at: location, message)
        }
        guard entry.flags & 1 == 0 else {
            throw fail(
                .unsupported,
                "encrypted entries are not "
                    + "supported")
        }
        var r = ByteReader(b, source: name)
        r.position = entry.localHeaderOffset
        guard try r.le(UInt32.self, "a local header") == 0x0403_4B50 else {
            throw fail(
                .corrupt,
                "bad local header signature at offset "
                    + "\(entry.localHeaderOffset)")
        }
        r.position += 22
        let nameLength = Int(try r.le(UInt16.self, "a local header"))
        let extraLength = Int(try r.le(UInt16.self, "a local header"))
        let start = r.position + nameLength + extraLength
        guard start <= b.count, entry.compressedSize <= b.count - start else {
            throw fail(
                .truncated,
                "data (\(entry.compressedSize) bytes at offset \(start)) reaches past the end "
                    + "of the \(b.count)-byte file")
        }
        let raw = UnsafeRawBufferPointer(rebasing: b[start..<start + entry.compressedSize])
        let out: ByteSlice
        switch entry.method {
        case 0:
            guard entry.uncompressedSize == entry.compressedSize else {
                throw fail(
                    .corrupt,
                    "stored entry with different compressed (\(entry.compressedSize)) "
                        + "and uncompressed (\(entry.uncompressedSize)) sizes")
            }
            out = ByteSlice(owner: buffer, bytes: raw, name: "\(name) (\(location))")
        case 8:
            // Deflate expands at most about 1032:1; a larger claim is a zip bomb or corrupt.
            let limit = entry.compressedSize.multipliedReportingOverflow(by: 1032)
            guard !limit.overflow, entry.uncompressedSize <= limit.partialValue + 64 else {
                throw fail(
                    .tooLarge,
                    "declares \(entry.uncompressedSize) bytes from "
                        + "\(entry.compressedSize) compressed bytes, more than deflate can produce")
            }
            let inflated = try Inflate.raw(raw, expected: entry.uncompressedSize) {
                fail(.corrupt, $0)
            }
            out = ByteSlice(
                owner: inflated, bytes: inflated.bytes, name: "\(name) (\(location))")
        default:
            throw fail(
                .unsupported,
                "compression method \(entry.method) (only stored and "
                    + "deflated are read)")
        }
        let crc = Inflate.crc32(out.bytes)
        guard crc == entry.crc32 else {
            throw fail(
                .corrupt,
                String(
                    format: "CRC-32 mismatch: header says %08x, data gives "
                        + "%08x", entry.crc32, crc))
        }
        return out
    }

    /// The contents of the entry called `name`, or a `.missingKey` error.
    public func contents(named name: String) throws -> ByteSlice {
        guard let e = entry(named: name) else {
            throw FormatError(.missingKey, file: buffer.name, "the archive has no entry '\(name)'")
        }
        return try contents(of: e)
    }
}

/// zlib's raw inflate and CRC-32.
enum Inflate {
    /// Inflates raw deflate data that must produce exactly `expected` bytes.
    static func raw(
        _ input: UnsafeRawBufferPointer, expected: Int, fail: (String) -> FormatError
    ) throws -> ByteBuffer {
        let out = UnsafeMutableRawPointer.allocate(byteCount: max(expected, 1), alignment: 64)
        var ok = false
        defer { if !ok { out.deallocate() } }
        var stream = z_stream()
        guard
            inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
                == Z_OK
        else { throw fail("zlib could not start inflating") }
        defer { inflateEnd(&stream) }
        var consumed = 0
        var produced = 0
        let chunk = 1 << 30  // zlib counts in 32 bits: feed large entries piecewise
        var status = Z_OK
        while status == Z_OK {
            if stream.avail_in == 0 && consumed < input.count {
                let n = min(chunk, input.count - consumed)
                stream.next_in = UnsafeMutablePointer(
                    mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self) + consumed)
                stream.avail_in = uInt(n)
                consumed += n
            }
            // One spare byte of room lets us notice output beyond the declared size.
            let room = min(chunk, expected + 1 - produced)
            var spare: UInt8 = 0
            if room > 0 && produced < expected {
                stream.next_out = out.assumingMemoryBound(to: Bytef.self) + produced
                stream.avail_out = uInt(min(room, expected - produced))
            } else {
                stream.next_out = withUnsafeMutablePointer(to: &spare) { $0 }
                stream.avail_out = 1
            }
            let before = stream.avail_out
            let inBefore = stream.avail_in
            status = inflate(&stream, Z_NO_FLUSH)
            let wrote = Int(before - stream.avail_out)
            if produced >= expected && wrote > 0 {
                throw fail("inflates to more than the declared \(expected) bytes")
            }
            produced += wrote
            if status == Z_BUF_ERROR && wrote == 0 && inBefore == stream.avail_in {
                if consumed >= input.count { throw fail("deflate data ends early (truncated)") }
                status = Z_OK
            }
        }
        guard status == Z_STREAM_END else {
            throw fail("invalid deflate data (zlib status \(status))")
        }
        guard produced == expected else {
            throw fail("inflates to \(produced) bytes, the header declares \(expected)")
        }
        ok = true
        let bytes = UnsafeRawBufferPointer(start: out, count: expected)
        return ByteBuffer(bytes: bytes, name: "inflated") { out.deallocate() }
    }

    /// CRC-32 as zip uses it.
    static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: uLong = CZlib.crc32(0, nil, 0)
        var done = 0
        while done < bytes.count {
            let n = min(1 << 30, bytes.count - done)
            crc = CZlib.crc32(
                crc, bytes.baseAddress!.assumingMemoryBound(to: Bytef.self) + done, uInt(n))
            done += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}

/// Builds a small zip archive in memory (stored or deflated entries, no ZIP64): used to
/// write `.npz` files.
struct ZipWriter {
    private(set) var bytes: [UInt8] = []
    private var directory: [UInt8] = []
    private var count = 0

    private static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    private static func le32(_ v: UInt32) -> [UInt8] {
        withUnsafeBytes(of: v.littleEndian, Array.init)
    }

    /// Appends an entry; `deflate` compresses it with zlib at the default level.
    mutating func add(_ name: String, _ data: [UInt8], deflate: Bool = false) throws {
        let crc = data.withUnsafeBytes { Inflate.crc32($0) }
        let payload = deflate ? try Inflate.deflateRaw(data) : data
        guard payload.count < 0xFFFF_FFFF, data.count < 0xFFFF_FFFF,
            bytes.count < 0xFFFF_FFFF
        else {
            throw FormatError(.unsupported, file: name, "zip entries over 4 GiB are not written")
        }
        let nameBytes = Array(name.utf8)
        let offset = UInt32(bytes.count)
        let method = deflate ? 8 : 0
        var common: [UInt8] = Self.le16(20) + Self.le16(0x0800) + Self.le16(method)
        common += Self.le16(0) + Self.le16(0x21)  // time, date (1980-01-01)
        common += Self.le32(crc) + Self.le32(UInt32(payload.count)) + Self.le32(UInt32(data.count))
        common += Self.le16(nameBytes.count) + Self.le16(0)
        bytes += Self.le32(0x0403_4B50) + common + nameBytes + payload
        directory += Self.le32(0x0201_4B50) + Self.le16(20) + common
        directory += Self.le16(0) + Self.le16(0) + Self.le16(0) + Self.le32(0) + Self.le32(offset)
        directory += nameBytes
        count += 1
    }

    /// The finished archive.
    func finished() -> [UInt8] {
        var out = bytes + directory
        out += Self.le32(0x0605_4B50) + Self.le16(0) + Self.le16(0)
        out += Self.le16(count) + Self.le16(count)
        out += Self.le32(UInt32(directory.count)) + Self.le32(UInt32(bytes.count)) + Self.le16(0)
        return out
    }
}

extension Inflate {
    /// Raw deflate (no zlib header), as zip stores it.
    static func deflateRaw(_ input: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw FormatError(.io, file: "deflate", "zlib could not start compressing") }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 16)
        let status = input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                stream.next_in = UnsafeMutablePointer(mutating: i.baseAddress)
                stream.avail_in = uInt(i.count)
                stream.next_out = o.baseAddress
                stream.avail_out = uInt(o.count)
                return CZlib.deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else {
            throw FormatError(.io, file: "deflate", "zlib failed (status \(status))")
        }
        return Array(out.prefix(Int(stream.total_out)))
    }
}

extension NumPy {
    /// Writes arrays as an `.npz` archive (`name.npy` entries, deflated when `compressed`,
    /// like `np.savez_compressed`) atomically.
    public static func writeArchive(
        _ arrays: [(name: String, array: RawArray)], compressed: Bool = false, to url: URL
    ) throws {
        var zip = ZipWriter()
        for (name, array) in arrays {
            try zip.add(name + ".npy", encode(array), deflate: compressed)
        }
        try AtomicFile.write(zip.finished(), to: url)
    }
}
