import Foundation

#if canImport(Glibc)
    import Glibc
    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    import Darwin
    private let systemWrite = Darwin.write
#endif

/// Read-only bytes that stay valid as long as this object lives: a memory-mapped file or
/// an owned heap block (an inflated zip entry, bytes built in memory).
public final class ByteBuffer: @unchecked Sendable {
    /// The bytes.
    public let bytes: UnsafeRawBufferPointer
    /// A name for error messages: the path, or a description of the in-memory source.
    public let name: String
    private let release: () -> Void

    init(bytes: UnsafeRawBufferPointer, name: String, release: @escaping () -> Void) {
        self.bytes = bytes
        self.name = name
        self.release = release
    }

    /// A copy of `data`, named `name` in error messages.
    public convenience init<C: Collection>(copying data: C, name: String)
    where C.Element == UInt8 {
        let n = data.count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer(start: raw, count: n)
        buffer.copyBytes(from: data)
        self.init(bytes: UnsafeRawBufferPointer(buffer), name: name) { raw.deallocate() }
    }

    /// Memory-maps the file at `url` (read-only). Empty files give an empty buffer.
    ///
    /// - Throws: `FormatError` (`.io`) when the path is missing, unreadable or a directory.
    public convenience init(contentsOf url: URL) throws {
        let path = url.path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw FormatError(.io, file: path, "cannot open for reading: \(reason)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw FormatError(.io, file: path, "cannot stat the file")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            let what = (info.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "not a regular file"
            throw FormatError(.io, file: path, "expected a regular file, found \(what)")
        }
        let size = Int(info.st_size)
        if size == 0 {
            close(fd)
            self.init(bytes: UnsafeRawBufferPointer(start: nil, count: 0), name: path) {}
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED
        else {
            close(fd)
            throw FormatError(.io, file: path, "cannot map \(size) bytes into memory")
        }
        close(fd)
        self.init(bytes: UnsafeRawBufferPointer(start: base, count: size), name: path) {
            munmap(base, size)
        }
    }

    deinit { release() }

    public var count: Int { bytes.count }
}

/// A bounds-checked little-endian cursor over a byte range; every read past the end throws
/// `.truncated` naming the source and the offset.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let source: String
    /// Added to positions in messages (the range's offset inside its file).
    let base: Int
    var position: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, source: String, base: Int = 0) {
        self.bytes = bytes
        self.source = source
        self.base = base
    }

    var remaining: Int { bytes.count - position }
    var isAtEnd: Bool { position >= bytes.count }

    func error(_ kind: FormatError.Kind, _ message: String, at offset: Int? = nil)
        -> FormatError
    {
        FormatError(kind, file: source, at: "offset \(base + (offset ?? position))", message)
    }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw error(
                .truncated,
                "expected \(n) bytes of \(what), but only \(remaining) remain")
        }
    }

    mutating func u8(_ what: String = "data") throws -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return bytes[position]
    }

    mutating func le<T: FixedWidthInteger>(_ type: T.Type, _ what: String = "data") throws -> T {
        let n = MemoryLayout<T>.size
        try need(n, what)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[position..<position + n]))
        }
        position += n
        return T(littleEndian: v)
    }

    mutating func take(_ n: Int, _ what: String = "data") throws -> UnsafeRawBufferPointer {
        try need(n, what)
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + n])
    }

    /// Bytes up to (not including) the next `\n`; the newline is consumed.
    mutating func line(_ what: String) throws -> UnsafeRawBufferPointer {
        var end = position
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else {
            throw error(.truncated, "\(what) has no terminating newline")
        }
        defer { position = end + 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<end])
    }
}

/// Writes files atomically: the bytes go to a temporary file in the destination's folder,
/// which is flushed and renamed over the destination only when everything succeeded. A
/// failed write leaves neither a partial destination nor the temporary file behind.
public enum AtomicFile {
    /// A sink for the bytes of one atomic write.
    public final class Writer {
        fileprivate let fd: Int32
        fileprivate let path: String
        /// Bytes written so far.
        public private(set) var bytesWritten = 0

        fileprivate init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        /// Appends raw bytes.
        public func write(_ buffer: UnsafeRawBufferPointer) throws {
            var done = 0
            while done < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    let reason = String(cString: strerror(errno))
                    throw FormatError(.io, file: path, "write failed: \(reason)")
                }
                done += n
            }
            bytesWritten += done
        }

        /// Appends the bytes of a collection.
        public func write<C: Collection>(_ bytes: C) throws where C.Element == UInt8 {
            if let done = try bytes.withContiguousStorageIfAvailable({
                try write(UnsafeRawBufferPointer($0))
            }) {
                return done
            }
            try Array(bytes).withUnsafeBytes { try write($0) }
        }

        /// Appends the UTF-8 bytes of a string.
        public func write(_ text: String) throws {
            try write(Array(text.utf8))
        }
    }

    /// Runs `body` with a writer on a temporary file next to `url`, then renames it to
    /// `url`. If `body` or any file operation throws, the temporary file is removed and the
    /// error is rethrown; an existing file at `url` is untouched.
    public static func write(to url: URL, _ body: (Writer) throws -> Void) throws {
        let path = url.path
        let folder = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw FormatError(.io, file: path, "expected a file path, found a directory")
        }
        let temp =
            folder + "/." + url.lastPathComponent + ".tmp-"
            + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw FormatError(
                .io, file: path,
                "cannot create a temporary file in \(folder): "
                    + reason)
        }
        var closed = false
        do {
            try body(Writer(fd: fd, path: path))
            guard fsync(fd) == 0 else {
                throw FormatError(.io, file: path, "cannot flush the file to disk")
            }
            closed = true
            guard close(fd) == 0 else {
                throw FormatError(.io, file: path, "cannot close the temporary file")
            }
            guard rename(temp, path) == 0 else {
                let reason = String(cString: strerror(errno))
                throw FormatError(.io, file: path, "cannot rename the temporary file: \(reason)")
            }
        } catch {
            if !closed { close(fd) }
            unlink(temp)
            throw error
        }
    }

    /// Writes `bytes` to `url` atomically.
    public static func write<C: Collection>(_ bytes: C, to url: URL) throws
    where C.Element == UInt8 {
        try write(to: url) { try $0.write(bytes) }
    }
}
