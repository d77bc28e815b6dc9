import Foundation

/// The wire type of one protobuf field (the low three bits of its key).
public enum ProtobufWireType: Int, Sendable {
    /// Base-128 varint: int32, int64, uint64, bool, enum.
    case varint = 0
    /// Eight little-endian bytes: fixed64, double.
    case fixed64 = 1
    /// A varint length followed by that many bytes: string, bytes, messages, packed fields.
    case lengthDelimited = 2
    /// Deprecated groups (start); never produced by ONNX writers.
    case startGroup = 3
    /// Deprecated groups (end).
    case endGroup = 4
    /// Four little-endian bytes: fixed32, float.
    case fixed32 = 5
}

/// One field read from a protobuf message: its number, wire type and payload.
public struct ProtobufField {
    /// The field number of the schema.
    public let number: Int
    /// How the payload is encoded.
    public let wireType: ProtobufWireType
    /// Offset of the field's key in the file (for messages).
    public let offset: Int
    /// The varint value (`.varint`), or the raw bits of a fixed32/fixed64 field.
    public let scalar: UInt64
    /// The payload of a length-delimited field (empty otherwise).
    public let payload: ProtobufReader
}

/// A bounds-checked reader of the protobuf wire format over a byte range.
///
/// Every length, varint and fixed-size read is checked against the end of the range, so
/// a truncated or corrupt file throws a `FormatError` naming the file and the byte offset;
/// nothing traps. Nested messages are readers over sub-ranges of the same buffer (no
/// copies); the buffer is kept alive by the reader.
public struct ProtobufReader {
    /// The bytes (kept alive while any reader over them exists).
    public let buffer: ByteBuffer
    /// Absolute offset of the next byte to read.
    public private(set) var position: Int
    /// Absolute offset one past the last byte of this message.
    public let end: Int
    /// What the range is (`"GraphProto"`, `"node 'conv1'"`), for error messages.
    public let context: String

    /// A reader over the whole buffer.
    public init(_ buffer: ByteBuffer, context: String = "message") {
        self.init(buffer: buffer, start: 0, end: buffer.count, context: context)
    }

    init(buffer: ByteBuffer, start: Int, end: Int, context: String) {
        self.buffer = buffer
        self.position = start
        self.end = end
        self.context = context
    }

    /// The bytes still to read.
    public var remaining: Int { end - position }
    /// True when the message has been read to its end.
    public var isAtEnd: Bool { position >= end }
    /// The same range under another name in error messages (the position is kept).
    public func named(_ context: String) -> ProtobufReader {
        ProtobufReader(buffer: buffer, start: position, end: end, context: context)
    }

    func error(_ kind: FormatError.Kind, at offset: Int, _ message: String) -> FormatError {
        FormatError(kind, file: buffer.name, at: "offset \(offset) (\(context))", message)
    }

    /// Reads a base-128 varint (at most 10 bytes).
    public mutating func readVarint() throws -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else {
                throw error(.truncated, at: start, "the message ends inside a varint")
            }
            let byte = buffer.bytes[position]
            position += 1
            if shift == 63 && byte > 1 {
                throw error(.corrupt, at: start, "a varint longer than 64 bits")
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            if shift > 63 {
                throw error(.corrupt, at: start, "a varint longer than 10 bytes")
            }
        }
    }

    /// Reads `count` raw little-endian bytes as an unsigned integer (4 or 8).
    mutating func readFixed(_ count: Int) throws -> UInt64 {
        guard remaining >= count else {
            throw error(
                .truncated, at: position,
                "the message ends inside a \(count * 8)-bit fixed field (\(remaining) bytes left)")
        }
        var v: UInt64 = 0
        for i in 0..<count {
            v |= UInt64(buffer.bytes[position + i]) << UInt64(8 * i)
        }
        position += count
        return v
    }

    /// Reads a varint length and returns a reader over that many following bytes,
    /// checking that they lie inside this message.
    mutating func readLengthDelimited(context inner: String) throws -> ProtobufReader {
        let at = position
        let length = try readVarint()
        guard length <= UInt64(remaining) else {
            throw error(
                .truncated, at: at,
                "a length-delimited field declares \(length) bytes but only \(remaining) "
                    + "remain in the enclosing message")
        }
        let start = position
        position += Int(length)
        return ProtobufReader(buffer: buffer, start: start, end: position, context: inner)
    }

    /// Reads the next field, or nil at the end of the message. Groups are refused.
    public mutating func nextField() throws -> ProtobufField? {
        guard !isAtEnd else { return nil }
        let at = position
        let key = try readVarint()
        let number = key >> 3
        guard number >= 1, number <= 536_870_911 else {
            throw error(.corrupt, at: at, "field number \(number) is out of range")
        }
        guard let type = ProtobufWireType(rawValue: Int(key & 7)) else {
            throw error(.corrupt, at: at, "unknown wire type \(key & 7) in field \(number)")
        }
        let inner = "\(context) field \(number)"
        switch type {
        case .varint:
            let v = try readVarint()
            return ProtobufField(
                number: Int(number), wireType: type, offset: at, scalar: v,
                payload: emptyReader(inner))
        case .fixed64:
            let v = try readFixed(8)
            return ProtobufField(
                number: Int(number), wireType: type, offset: at, scalar: v,
                payload: emptyReader(inner))
        case .fixed32:
            let v = try readFixed(4)
            return ProtobufField(
                number: Int(number), wireType: type, offset: at, scalar: v,
                payload: emptyReader(inner))
        case .lengthDelimited:
            let payload = try readLengthDelimited(context: inner)
            return ProtobufField(
                number: Int(number), wireType: type, offset: at, scalar: 0, payload: payload)
        case .startGroup, .endGroup:
            throw error(
                .unsupported, at: at,
                "field \(number) uses the deprecated group encoding, which ONNX never writes")
        }
    }

    private func emptyReader(_ context: String) -> ProtobufReader {
        ProtobufReader(buffer: buffer, start: position, end: position, context: context)
    }

    /// The bytes of the range (from the current position to the end).
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer.bytes[position..<end])
    }

    /// The range as UTF-8 text.
    public func string() throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw error(.corrupt, at: position, "a string field is not valid UTF-8")
        }
        return s
    }
}

extension ProtobufField {
    func fail(_ kind: FormatError.Kind, _ message: String) -> FormatError {
        payload.error(kind, at: offset, message)
    }

    /// The field as a signed 64-bit integer (int64/int32 varint: two's complement).
    public func int64() throws -> Int64 {
        guard wireType == .varint else {
            throw fail(.corrupt, "field \(number): expected a varint, found \(wireType)")
        }
        return Int64(bitPattern: scalar)
    }

    /// The field as an `Int` (int32/int64 varint; the value must fit `Int`).
    public func int() throws -> Int {
        Int(try int64())
    }

    /// The field as a float32 (fixed32 wire type).
    public func float() throws -> Float {
        guard wireType == .fixed32 else {
            throw fail(.corrupt, "field \(number): expected a 32-bit float, found \(wireType)")
        }
        return Float(bitPattern: UInt32(truncatingIfNeeded: scalar))
    }

    /// The field as a length-delimited payload (a message, a string or bytes).
    public func message(_ context: String? = nil) throws -> ProtobufReader {
        guard wireType == .lengthDelimited else {
            throw fail(
                .corrupt, "field \(number): expected a length-delimited field, found \(wireType)")
        }
        return context.map { payload.named($0) } ?? payload
    }

    /// The field as UTF-8 text.
    public func string() throws -> String {
        try message().string()
    }

    /// A repeated int64 field, packed (one length-delimited run of varints) or not (one
    /// varint): appends its values.
    public func appendInt64s(to values: inout [Int64]) throws {
        switch wireType {
        case .varint:
            values.append(Int64(bitPattern: scalar))
        case .lengthDelimited:
            var r = payload
            while !r.isAtEnd { values.append(Int64(bitPattern: try r.readVarint())) }
        default:
            throw fail(.corrupt, "field \(number): expected int64 values, found \(wireType)")
        }
    }

    /// A repeated float field, packed (a run of fixed32) or not: appends its values.
    public func appendFloats(to values: inout [Float]) throws {
        switch wireType {
        case .fixed32:
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: scalar)))
        case .lengthDelimited:
            let n = payload.remaining
            guard n % 4 == 0 else {
                throw fail(.corrupt, "field \(number): packed floats of \(n) bytes (not 4·k)")
            }
            let raw = payload.bytes
            values.reserveCapacity(values.count + n / 4)
            for i in 0..<(n / 4) {
                values.append(
                    Float(
                        bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                            .littleEndian))
            }
        default:
            throw fail(.corrupt, "field \(number): expected float values, found \(wireType)")
        }
    }

    /// A repeated double field, packed or not: appends its values.
    public func appendDoubles(to values: inout [Double]) throws {
        switch wireType {
        case .fixed64:
            values.append(Double(bitPattern: scalar))
        case .lengthDelimited:
            let n = payload.remaining
            guard n % 8 == 0 else {
                throw fail(.corrupt, "field \(number): packed doubles of \(n) bytes (not 8·k)")
            }
            let raw = payload.bytes
            for i in 0..<(n / 8) {
                values.append(
                    Double(
                        bitPattern: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                            .littleEndian))
            }
        default:
            throw fail(.corrupt, "field \(number): expected double values, found \(wireType)")
        }
    }
}
