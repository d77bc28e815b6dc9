import Foundation
import TensorCore

/// NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) and `.npz` archives.
///
/// Reads `<f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1` in C or Fortran order; writes C order,
/// version 1.0 (2.0 when the header needs it), with the header padded to 64 bytes as NumPy
/// does. Big-endian and structured dtypes are refused with a `.unsupported` error.
public enum NumPy {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    /// Reads an `.npy` file, keeping its element type.
    public static func readArray(_ url: URL) throws -> RawArray {
        try parse(ByteSlice(try ByteBuffer(contentsOf: url)))
    }

    /// Reads an `.npy` file as a float32 tensor.
    public static func readTensor(_ url: URL) throws -> Tensor {
        try readArray(url).tensor()
    }

    /// Parses `.npy` bytes.
    public static func parse(_ slice: ByteSlice) throws -> RawArray {
        var r = ByteReader(slice.bytes, source: slice.name)
        guard slice.count >= 10 else {
            throw r.error(
                slice.count == 0 ? .truncated : .badMagic,
                "an .npy file needs at least 10 bytes, this one has \(slice.count)", at: 0)
        }
        guard Array(try r.take(6)) == magic else {
            throw r.error(.badMagic, "expected the .npy magic '\\x93NUMPY'", at: 0)
        }
        let major = try r.u8()
        _ = try r.u8()
        let headerLength: Int
        switch major {
        case 1: headerLength = Int(try r.le(UInt16.self, "the header length"))
        case 2, 3: headerLength = Int(try r.le(UInt32.self, "the header length"))
        default:
            throw r.error(
                .unsupported, "format version \(major) (only 1, 2 and 3 are read)",
                at: 6)
        }
        let headerStart = r.position
        let headerBytes = try r.take(headerLength, "the header")
        guard let header = String(validating: headerBytes, as: UTF8.self) else {
            throw r.error(.corrupt, "the header is not valid UTF-8", at: headerStart)
        }
        let (descr, fortran, shape) = try parseHeader(header) {
            r.error(.corrupt, "header \(header.debugDescription): \($0)", at: headerStart)
        }
        guard let dtype = DType(numpyDescr: descr) else {
            throw r.error(
                .unsupported,
                "dtype '\(descr)' (read: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 |b1)", at: headerStart)
        }
        let count = try Checked.count(
            shape, r.error(.invalidShape, "shape \(describe(shape)) is negative or overflows"))
        let byteCount = try Checked.multiply(
            count, dtype.size, r.error(.tooLarge, "shape \(describe(shape)) overflows"))
        guard byteCount <= r.remaining else {
            throw r.error(
                .truncated,
                "shape \(describe(shape)) of \(descr) needs \(byteCount) bytes of data, only "
                    + "\(r.remaining) remain")
        }
        let data = try r.take(byteCount)
        var bytes = [UInt8](data)
        if fortran && shape.count > 1 {
            bytes = fortranToC(bytes, shape: shape, itemSize: dtype.size)
        }
        return RawArray(dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Reorders column-major bytes into row-major order.
    static func fortranToC(_ src: [UInt8], shape: [Int], itemSize: Int) -> [UInt8] {
        let rank = shape.count
        var fStrides = [Int](repeating: 1, count: rank)
        for i in 1..<rank { fStrides[i] = fStrides[i - 1] * shape[i - 1] }
        var out = [UInt8](repeating: 0, count: src.count)
        let count = Shape.count(shape)
        var index = [Int](repeating: 0, count: rank)
        var from = 0
        for i in 0..<count {
            for k in 0..<itemSize { out[i * itemSize + k] = src[from * itemSize + k] }
            // Advance the C-order multi-index and the matching Fortran offset.
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                from += fStrides[axis]
                if index[axis] < shape[axis] { break }
                from -= fStrides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
        return out
    }

    /// Parses the Python dict literal of an `.npy` header.
    static func parseHeader(_ text: String, _ fail: (String) -> FormatError) throws
        -> (descr: String, fortran: Bool, shape: [Int])
    {
        let s = Array(text.utf8)
        var i = 0
        func skip() { while i < s.count, s[i] == 0x20 || s[i] == 0x0A || s[i] == 0x09 { i += 1 } }
        func expect(_ c: UInt8) throws {
            skip()
            guard i < s.count, s[i] == c else {
                throw fail("expected '\(Character(UnicodeScalar(c)))' at character \(i)")
            }
            i += 1
        }
        func string() throws -> String {
            skip()
            guard i < s.count, s[i] == 0x27 || s[i] == 0x22 else {
                throw fail("expected a quoted string at character \(i)")
            }
            let q = s[i]
            i += 1
            let start = i
            while i < s.count, s[i] != q { i += 1 }
            guard i < s.count else { throw fail("unterminated string") }
            defer { i += 1 }
            return String(decoding: s[start..<i], as: UTF8.self)
        }
        func word() -> String {
            skip()
            let start = i
            while i < s.count, (s[i] >= 0x41 && s[i] <= 0x5A) || (s[i] >= 0x61 && s[i] <= 0x7A) {
                i += 1
            }
            return String(decoding: s[start..<i], as: UTF8.self)
        }
        func integer() throws -> Int {
            skip()
            let start = i
            if i < s.count, s[i] == 0x2D { i += 1 }
            while i < s.count, s[i] >= 0x30 && s[i] <= 0x39 { i += 1 }
            guard let v = Int(String(decoding: s[start..<i], as: UTF8.self)) else {
                throw fail("expected an integer dimension at character \(start)")
            }
            if i < s.count, s[i] == 0x4C { i += 1 }  // Python 2 long suffix: 3L
            return v
        }
        var descr: String?
        var fortran: Bool?
        var shape: [Int]?
        try expect(0x7B)  // {
        while true {
            skip()
            if i < s.count, s[i] == 0x7D { i += 1; break }  // }
            let key = try string()
            try expect(0x3A)  // :
            switch key {
            case "descr":
                skip()
                guard i < s.count, s[i] == 0x27 || s[i] == 0x22 else {
                    throw fail(
                        "descr is not a simple type string (structured dtypes are not "
                            + "supported)")
                }
                descr = try string()
            case "fortran_order":
                switch word() {
                case "True": fortran = true
                case "False": fortran = false
                default: throw fail("fortran_order must be True or False")
                }
            case "shape":
                try expect(0x28)  // (
                var dims: [Int] = []
                while true {
                    skip()
                    if i < s.count, s[i] == 0x29 { i += 1; break }  // )
                    dims.append(try integer())
                    guard dims.count <= 64 else { throw fail("more than 64 dimensions") }
                    skip()
                    if i < s.count, s[i] == 0x2C { i += 1 }  // ,
                }
                shape = dims
            default:
                throw fail("unexpected key '\(key)'")
            }
            skip()
            if i < s.count, s[i] == 0x2C { i += 1 }
        }
        guard let descr, let fortran, let shape else {
            throw fail("the header must give descr, fortran_order and shape")
        }
        for d in shape where d < 0 { throw fail("negative dimension \(d)") }
        return (descr, fortran, shape)
    }

    /// The bytes of an `.npy` file holding `array`.
    public static func encode(_ array: RawArray) -> [UInt8] {
        guard let descr = array.dtype.numpyDescr else {
            preconditionFailure("NumPy has no \(array.dtype) type; convert to float32 first")
        }
        let dims = array.shape.map(String.init).joined(separator: ", ")
        let shape = array.shape.count == 1 ? "(\(dims),)" : "(\(dims))"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        // Pad with spaces so that magic + version + length + header + "\n" is a multiple
        // of 64 (NumPy's alignment), switching to version 2.0 only for huge headers.
        let small = 10 + header.utf8.count + 1 <= 65_535
        let prefix = small ? 10 : 12
        let total = (prefix + header.utf8.count + 1 + 63) / 64 * 64
        header += String(repeating: " ", count: total - prefix - header.utf8.count - 1) + "\n"
        var out = magic
        out.reserveCapacity(total + array.bytes.count)
        if small {
            out += [1, 0]
            out += withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian, Array.init)
        } else {
            out += [2, 0]
            out += withUnsafeBytes(of: UInt32(header.utf8.count).littleEndian, Array.init)
        }
        out += Array(header.utf8)
        out += array.bytes
        return out
    }

    /// Writes `array` to `url` atomically.
    public static func write(_ array: RawArray, to url: URL) throws {
        try AtomicFile.write(encode(array), to: url)
    }

    /// Writes a float32 tensor to `url` atomically (`<f4`, C order).
    public static func write(_ tensor: Tensor, to url: URL) throws {
        try write(RawArray(tensor), to: url)
    }

    /// Reads every `.npy` in an `.npz` archive (stored or deflated), in archive order,
    /// keyed by the entry name without its `.npy` suffix.
    public static func readArchive(_ url: URL) throws -> [(name: String, array: RawArray)] {
        let zip = try ZipArchive(contentsOf: url)
        var out: [(name: String, array: RawArray)] = []
        for entry in zip.entries where entry.name.hasSuffix(".npy") {
            let bytes = try zip.contents(of: entry)
            out.append((String(entry.name.dropLast(4)), try parse(bytes)))
        }
        return out
    }
}
