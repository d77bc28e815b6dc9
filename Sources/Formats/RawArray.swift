import Foundation
import TensorCore

/// The element types isfgan reads from files. Tensors are float32 in memory; the other
/// types are converted on load (and kept by `RawArray` when the exact values matter).
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32, float64, float16, bfloat16
    case int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// The NumPy type string (little-endian), or nil when NumPy has none (bfloat16).
    public var numpyDescr: String? {
        switch self {
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .float16: return "<f2"
        case .bfloat16: return nil
        case .int64: return "<i8"
        case .int32: return "<i4"
        case .int16: return "<i2"
        case .int8: return "|i1"
        case .uint8: return "|u1"
        case .bool: return "|b1"
        }
    }

    /// Parses a NumPy type string; `=` and `<` both mean little-endian here.
    init?(numpyDescr s: String) {
        var t = s
        if let c = t.first, c == "<" || c == "|" || c == "=" { t.removeFirst() }
        switch t {
        case "f4": self = .float32
        case "f8": self = .float64
        case "f2": self = .float16
        case "i8": self = .int64
        case "i4": self = .int32
        case "i2": self = .int16
        case "i1": self = .int8
        case "u1": self = .uint8
        case "b1", "?": self = .bool
        default: return nil
        }
    }

    /// The safetensors type name (`F32`, `BF16`, `I64`, `BOOL`, …).
    public var safetensorsName: String {
        switch self {
        case .float32: return "F32"
        case .float64: return "F64"
        case .float16: return "F16"
        case .bfloat16: return "BF16"
        case .int64: return "I64"
        case .int32: return "I32"
        case .int16: return "I16"
        case .int8: return "I8"
        case .uint8: return "U8"
        case .bool: return "BOOL"
        }
    }

    init?(safetensorsName s: String) {
        guard let d = DType.allCases.first(where: { $0.safetensorsName == s }) else {
            return nil
        }
        self = d
    }

    /// Reads element `i` of little-endian data of this type as a Float.
    @inline(__always)
    func load(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        switch self {
        case .float32:
            return Float(
                bitPattern: UInt32(
                    littleEndian: p.loadUnaligned(
                        fromByteOffset: 4 * i, as: UInt32.self)))
        case .float64:
            return Float(
                Double(
                    bitPattern: UInt64(
                        littleEndian: p.loadUnaligned(
                            fromByteOffset: 8 * i, as: UInt64.self))))
        case .float16:
            let bits = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            return Float(Float16(bitPattern: bits))
        case .bfloat16:
            let bits = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            return Float(bitPattern: UInt32(bits) << 16)
        case .int64:
            return Float(
                Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
        case .int32:
            return Float(
                Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .int16:
            return Float(
                Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .int8:
            return Float(p.load(fromByteOffset: i, as: Int8.self))
        case .uint8:
            return Float(p.load(fromByteOffset: i, as: UInt8.self))
        case .bool:
            return p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
        }
    }

    /// Converts `count` little-endian elements at `src` to float32 at `dst`.
    func convert(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        if self == .float32 {
            // Little-endian host (x86-64, arm64): a plain copy.
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * count)
            return
        }
        for i in 0..<count { dst[i] = load(src, i) }
    }
}

/// An n-dimensional array exactly as a file stores it: element type, shape and C-order
/// little-endian bytes. Use it when integer or boolean values must survive unchanged;
/// `tensor()` gives the float32 `Tensor`.
public struct RawArray: Equatable, Sendable {
    public let dtype: DType
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// `count * dtype.size` bytes in C (row-major) order, little-endian.
    public let bytes: [UInt8]

    /// An array from its bytes; `bytes.count` must match the shape (a programmer error).
    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(
            shape.allSatisfy { $0 >= 0 } && Shape.count(shape) * dtype.size == bytes.count,
            "RawArray: \(bytes.count) bytes do not hold \(describe(shape)) of \(dtype)")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// The float32 contents of a tensor.
    public init(_ tensor: Tensor) {
        let values = tensor.scalars
        self.init(
            dtype: .float32, shape: tensor.shape,
            bytes: values.withUnsafeBytes { Array($0) })
    }

    /// Signed 64-bit integers.
    public init(int64 values: [Int64], shape: [Int]) {
        self.init(
            dtype: .int64, shape: shape,
            bytes: values.map { $0.littleEndian }.withUnsafeBytes { Array($0) })
    }

    /// Booleans, one byte each.
    public init(bools values: [Bool], shape: [Int]) {
        self.init(dtype: .bool, shape: shape, bytes: values.map { $0 ? 1 : 0 })
    }

    public var count: Int { Shape.count(shape) }

    /// The values as float32 (integers beyond 2^24 round, like `tensor.float()`).
    public func tensor() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        bytes.withUnsafeBytes { dtype.convert($0.baseAddress!, count: count, into: t.pointer) }
        return t
    }

    /// The values as Int64 (exact for every integer type), or nil for floating point.
    public var int64Values: [Int64]? {
        bytes.withUnsafeBytes { p -> [Int64]? in
            let n = count
            switch dtype {
            case .float32, .float64, .float16, .bfloat16:
                return nil
            case .int64:
                return (0..<n).map {
                    Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
                }
            case .int32:
                return (0..<n).map {
                    Int64(
                        Int32(
                            littleEndian: p.loadUnaligned(
                                fromByteOffset: 4 * $0, as: Int32.self)))
                }
            case .int16, .int8, .uint8, .bool:
                // Exact: these fit in a Float's 24-bit significand.
                return (0..<n).map { Int64(dtype.load(p.baseAddress!, $0)) }
            }
        }
    }

    /// The values as booleans (non-zero is true).
    public var boolValues: [Bool] {
        tensor().scalars.map { $0 != 0 }
    }
}
