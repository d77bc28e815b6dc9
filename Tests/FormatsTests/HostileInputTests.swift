import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

/// Broken and hostile files, built here. Each must end in a thrown `FormatError` of the
/// right kind whose message names the problem: never a crash, trap, hang or huge
/// allocation.
final class HostileInputTests: XCTestCase {
    var folder: URL!

    override func setUp() { folder = temporaryDirectory("hostile") }
    override func tearDown() { try? FileManager.default.removeItem(at: folder) }

    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let u = folder.appendingPathComponent(name)
        try Data(bytes).write(to: u)
        return u
    }

    /// Asserts that `body` throws a `FormatError` of `kind` whose text contains `words`.
    func expect(
        _ kind: FormatError.Kind, _ words: [String], file: StaticString = #filePath,
        line: UInt = #line, _ body: () throws -> Void
    ) {
        do {
            try body()
            XCTFail("expected a \(kind) error, nothing was thrown", file: file, line: line)
        } catch let e as FormatError {
            XCTAssertEqual(e.kind, kind, "\(e)", file: file, line: line)
            for w in words {
                XCTAssertTrue(
                    e.description.contains(w), "'\(w)' not in: \(e)", file: file,
                    line: line)
            }
        } catch {
            XCTFail("expected FormatError, got \(error)", file: file, line: line)
        }
    }

    func goodCheckpoint() throws -> [UInt8] {
        let p = PickleBuilder.stateDict([("w", "0", "FloatStorage", 4, 0, [2, 2], [2, 1])])
        return try torchZip(pickle: p.bytes, storages: [("0", floatBytes([1, 2, 3, 4]))])
    }

    func load(_ bytes: [UInt8], _ name: String = "x.pt") throws {
        _ = try TorchCheckpoint(contentsOf: try write(name, bytes)).stateDict()
    }

    func testTheGoodCheckpointLoads() throws {
        let s = try TorchCheckpoint(contentsOf: try write("ok.pt", goodCheckpoint())).stateDict()
        XCTAssertEqual(s["w"]?.scalars, [1, 2, 3, 4])
    }

    func testTruncatedZipAtEveryLength() throws {
        let good = try goodCheckpoint()
        // Every prefix: none may crash; all but the full file must throw.
        for n in stride(from: 0, to: good.count, by: 7) {
            XCTAssertThrowsError(try load(Array(good.prefix(n)), "t\(n).pt"), "prefix \(n)")
        }
        expect(.badMagic, ["end-of-central-directory"]) {
            try self.load(Array(good.prefix(good.count / 2)))
        }
    }

    func testWrongMagicAndEmptyFile() throws {
        expect(.badMagic, ["not a PyTorch checkpoint"]) { try self.load(Array("GIF89a...".utf8)) }
        expect(.truncated, ["empty"]) { try self.load([], "empty.pt") }
        expect(.truncated, ["at least 10 bytes"]) {
            _ = try NumPy.readArray(try self.write("e.npy", []))
        }
        expect(.badMagic, ["magic"]) {
            _ = try NumPy.readArray(try self.write("m.npy", Array("NOTNUMPY!!!!".utf8)))
        }
        expect(.truncated, ["8-byte header length"]) {
            _ = try SafetensorsFile(contentsOf: try self.write("e.safetensors", []))
        }
        expect(.truncated, ["empty"]) { _ = try ImageIO.read(try self.write("e.png", [])) }
    }

    func testDirectoryGivenAsFile() {
        expect(.io, ["directory"]) { _ = try TorchCheckpoint(contentsOf: self.folder) }
        expect(.io, ["directory"]) { _ = try NumPy.readArray(self.folder) }
        expect(.io, ["cannot open"]) {
            _ = try NumPy.readArray(self.folder.appendingPathComponent("missing.npy"))
        }
    }

    func testZipEntryPointingPastTheEnd() throws {
        var z = try goodCheckpoint()
        // Find the data.pkl central record and raise its compressed size.
        let sig: [UInt8] = [0x50, 0x4B, 0x01, 0x02]
        let at = (0..<(z.count - 4)).first { Array(z[$0..<$0 + 4]) == sig }!
        z[at + 20] = 0xFF
        z[at + 21] = 0xFF
        z[at + 22] = 0xFF
        z[at + 23] = 0x7F
        expect(.truncated, ["data.pkl", "past the end"]) { try self.load(z) }
        // A local header offset past the end.
        var y = try goodCheckpoint()
        y[at + 42] = 0xFF
        y[at + 43] = 0xFF
        y[at + 44] = 0xFF
        y[at + 45] = 0x0F
        XCTAssertThrowsError(try load(y))
    }

    func testCorruptedDataFailsTheCRC() throws {
        var z = try goodCheckpoint()
        // The first storage byte follows "archive/data/0" in its local header.
        let name = Array("archive/data/0".utf8)
        let at = (0..<(z.count - name.count)).first { Array(z[$0..<$0 + name.count]) == name }!
        z[at + name.count] ^= 0xFF
        expect(.corrupt, ["CRC-32", "archive/data/0"]) { try self.load(z) }
    }

    func forbidden(_ module: String, _ name: String) throws {
        var p = PickleBuilder()
        p.global(module, name)
        p.string("echo pwned")
        p.op(0x85)  // TUPLE1
        p.reduce()
        p.stop()
        let z = try torchZip(pickle: p.bytes, storages: [])
        expect(.forbidden, ["'\(module).\(name)'", "nothing was run"]) { try self.load(z) }
    }

    func testForbiddenGlobals() throws {
        try forbidden("os", "system")
        try forbidden("posix", "system")
        try forbidden("builtins", "eval")
        try forbidden("__builtin__", "eval")
        try forbidden("subprocess", "Popen")
        try forbidden("torch", "load")
        // STACK_GLOBAL spelling, and INST.
        var p = PickleBuilder()
        p.string("builtins")
        p.string("exec")
        p.op(0x93)
        p.stop()
        expect(.forbidden, ["'builtins.exec'"]) {
            try self.load(try torchZip(pickle: p.bytes, storages: []))
        }
        var q = PickleBuilder()
        q.mark()
        q.bytes += Array("ios\nsystem\n".utf8)
        q.stop()
        expect(.forbidden, ["nothing was run"]) {
            try self.load(try torchZip(pickle: q.bytes, storages: []))
        }
    }

    func testHugeDeclaredStorage() throws {
        let p = PickleBuilder.stateDict([
            ("w", "0", "FloatStorage", 1 << 40, 0, [1 << 20, 1 << 20], [1 << 20, 1])
        ])
        let z = try torchZip(pickle: p.bytes, storages: [("0", floatBytes([1, 2]))])
        expect(.tooLarge, ["storage '0'", "8 bytes"]) { try self.load(z) }
        let overflow = PickleBuilder.stateDict([
            ("w", "0", "DoubleStorage", Int.max / 2, 0, [1], [1])
        ])
        let z2 = try torchZip(pickle: overflow.bytes, storages: [("0", floatBytes([1, 2]))])
        expect(.tooLarge, ["storage '0'"]) { try self.load(z2) }
    }

    func testNegativeAndOverflowingShapes() throws {
        let neg = PickleBuilder.stateDict([("w", "0", "FloatStorage", 4, 0, [-1, 4], [4, 1])])
        expect(.invalidShape, ["negative"]) {
            try self.load(
                try torchZip(pickle: neg.bytes, storages: [("0", floatBytes([1, 2, 3, 4]))]))
        }
        let big = PickleBuilder.stateDict([
            ("w", "0", "FloatStorage", 4, 0, [1 << 32, 1 << 32, 1 << 32], [0, 0, 0])
        ])
        expect(.invalidShape, ["overflows"]) {
            try self.load(
                try torchZip(pickle: big.bytes, storages: [("0", floatBytes([1, 2, 3, 4]))]))
        }
        let strideOverflow = PickleBuilder.stateDict([
            ("w", "0", "FloatStorage", 4, 0, [2, 2], [Int.max / 2, 1])
        ])
        expect(.invalidShape, []) {
            try self.load(
                try torchZip(
                    pickle: strideOverflow.bytes, storages: [("0", floatBytes([1, 2, 3, 4]))]))
        }
        // npy with a negative or overflowing shape.
        func npy(_ shape: String) -> [UInt8] {
            let h = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }\n".utf8)
            return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0]
                + withUnsafeBytes(of: UInt16(h.count).littleEndian, Array.init) + h + [0, 0, 0, 0]
        }
        expect(.corrupt, ["negative dimension"]) {
            _ = try NumPy.readArray(try self.write("n.npy", npy("(-1, 4)")))
        }
        expect(.invalidShape, ["overflows"]) {
            _ = try NumPy.readArray(
                try self.write("o.npy", npy("(4294967296, 4294967296, 4294967296)")))
        }
        expect(.truncated, ["needs 400 bytes"]) {
            _ = try NumPy.readArray(try self.write("t.npy", npy("(10, 10)")))
        }
    }

    func testStrideReachingPastItsStorage() throws {
        let p = PickleBuilder.stateDict([("w", "0", "FloatStorage", 4, 1, [2, 2], [2, 1])])
        let z = try torchZip(pickle: p.bytes, storages: [("0", floatBytes([1, 2, 3, 4]))])
        expect(.invalidShape, ["reaches element 4", "holds 4"]) { try self.load(z) }
    }

    func testNonUTF8Key() throws {
        var p = PickleBuilder()
        p.emptyDict()
        p.rawString([0x77, 0xFF, 0xFE])
        p.int(1)
        p.op(0x73)  // SETITEM
        p.stop()
        expect(.corrupt, ["not valid UTF-8"]) {
            try self.load(try torchZip(pickle: p.bytes, storages: []))
        }
    }

    func testMalformedPickles() throws {
        // Unknown opcode, stack underflow, missing STOP, memo miss, self-referencing list.
        let bodies: [[UInt8]] = [
            [0x80, 2, 0xFF], [0x80, 2, 0x2E], [0x80, 2, 0x4B, 1], [0x80, 2, 0x68, 9, 0x2E],
            [0x80, 2, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E],  // l = []; l.append(l)
            [0x80, 2, 0x58, 0xFF, 0xFF, 0xFF, 0xFF],  // string longer than the file
        ]
        for b in bodies {
            XCTAssertThrowsError(try load(try torchZip(pickle: b, storages: []))) {
                XCTAssertTrue($0 is FormatError, "\($0)")
            }
        }
        // Billion laughs: each list holds the previous one ten times.
        var p = PickleBuilder()
        p.emptyList()
        p.op(0x71); p.bytes.append(0)
        for i in 0..<30 {
            p.emptyList()
            p.mark()
            for _ in 0..<10 { p.op(0x68); p.bytes.append(UInt8(i)) }
            p.appends()
            p.op(0x71); p.bytes.append(UInt8(i + 1))
        }
        p.stop()
        expect(.tooLarge, ["larger than the file"]) {
            try self.load(try torchZip(pickle: p.bytes, storages: []))
        }
    }

    func testLegacyFileWithHugeStorage() throws {
        var magic = PickleBuilder()
        magic.bytes += [0x8A, 10] + TorchCheckpoint.legacyMagic
        magic.stop()
        var proto = PickleBuilder()
        proto.int(1001)
        proto.stop()
        var info = PickleBuilder()
        info.emptyDict()
        info.stop()
        let object = PickleBuilder.stateDict([("w", "1", "FloatStorage", 1 << 50, 0, [1], [1])])
        var keys = PickleBuilder()
        keys.emptyList()
        keys.string("1")
        keys.op(0x61)
        keys.stop()
        var out = magic.bytes + proto.bytes + info.bytes + object.bytes + keys.bytes
        out += withUnsafeBytes(of: Int64(1 << 50).littleEndian, Array.init) + [0, 0, 0, 0]
        expect(.tooLarge, ["storage '1'"]) { try self.load(out, "legacy.pth") }
        // A pickle that is not a torch.save file.
        var other = PickleBuilder()
        other.int(5)
        other.stop()
        expect(.badMagic, ["legacy magic"]) { try self.load(other.bytes, "other.pth") }
    }

    func testSafetensorsHostileHeaders() throws {
        func file(_ json: String, data: Int = 8) -> [UInt8] {
            let h = Array(json.utf8)
            return withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h
                + [UInt8](repeating: 0, count: data)
        }
        let cases: [(String, FormatError.Kind)] = [
            ("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,80]}}", .truncated),
            ("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", .invalidShape),
            ("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", .invalidShape),
            (
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                    + "\"data_offsets\":[0,8]}}", .invalidShape
            ),
            ("{\"a\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,8]}}", .unsupported),
            ("{\"a\":", .corrupt),
        ]
        for (json, kind) in cases {
            expect(kind, []) {
                _ = try SafetensorsFile(contentsOf: try self.write("h.safetensors", file(json)))
            }
        }
        var huge = file("{}")
        huge.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        expect(.truncated, ["exceeds the file"]) {
            _ = try SafetensorsFile(contentsOf: try self.write("big.safetensors", huge))
        }
    }

    func testPNGWithABadChunk() throws {
        let image = Image(
            width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: 90, count: 48))
        var png = try ImageIO.encodePNG(image)
        // Corrupt the IDAT payload (its CRC no longer matches).
        let idat = Array("IDAT".utf8)
        let at = (0..<(png.count - 4)).first { Array(png[$0..<$0 + 4]) == idat }!
        png[at + 6] ^= 0x5A
        expect(.corrupt, ["PNG", "libpng says"]) {
            _ = try ImageIO.read(try self.write("bad.png", png))
        }
        // A header that claims 2^31 x 2^31 pixels.
        let bomb = try makePNG(
            width: 0x7FFF_FFFF, height: 0x7FFF_FFFF, bitDepth: 8,
            colorType: 2, rows: [[0, 0, 0]])
        XCTAssertThrowsError(try ImageIO.read(try write("bomb.png", bomb)))
        // Cut in half.
        let full = try ImageIO.encodePNG(image)
        XCTAssertThrowsError(
            try ImageIO.read(try write("half.png", Array(full.prefix(full.count / 2)))))
    }

    func testJPEGCutInHalf() throws {
        var pixels: [UInt8] = []
        for i in 0..<(64 * 64) { pixels += [UInt8(i % 256), UInt8(i / 64 * 4), 7] }
        let image = Image(width: 64, height: 64, channels: 3, pixels: pixels)
        let jpeg = try ImageIO.encodeJPEG(image, quality: 90)
        XCTAssertNoThrow(try ImageIO.read(try write("ok.jpg", jpeg)))
        expect(.truncated, ["JPEG"]) {
            _ = try ImageIO.read(try self.write("half.jpg", Array(jpeg.prefix(jpeg.count / 2))))
        }
        for n in [3, 10, 100, 300] {
            XCTAssertThrowsError(try ImageIO.read(try write("p\(n).jpg", Array(jpeg.prefix(n)))))
        }
        var garbage = jpeg
        for i in stride(from: 20, to: 200, by: 3) { garbage[i] = 0xFF }
        XCTAssertThrowsError(try ImageIO.read(try write("g.jpg", garbage)))
    }

    /// Random byte flips in a valid checkpoint, npy and safetensors file: every outcome is
    /// a value or a FormatError (a trap would end the test process).
    func testRandomCorruptionNeverTraps() throws {
        var rng = Xorshift(seed: 12_345)
        let ckpt = try goodCheckpoint()
        let npy = NumPy.encode(RawArray(Tensor.randn([3, 5], seed: 1)))
        for round in 0..<400 {
            for (base, parse) in [
                (ckpt, { (b: ByteBuffer) in _ = try TorchCheckpoint(b).stateDict() }),
                (npy, { (b: ByteBuffer) in _ = try NumPy.parse(ByteSlice(b)) }),
            ] as [([UInt8], (ByteBuffer) throws -> Void)] {
                var b = base
                for _ in 0..<(1 + round % 4) {
                    b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                do { try parse(ByteBuffer(copying: b, name: "fuzz")) } catch is FormatError {}
            }
        }
    }
}

struct Xorshift {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

extension HostileInputTests {
    /// A million nested tuples, and a million nested lists: refused (too deep) without
    /// overflowing the stack, neither while converting nor while freeing the graph.
    func testMillionDeepNesting() throws {
        let n = 1_000_000
        var tuples = PickleBuilder()
        tuples.none()
        tuples.bytes += [UInt8](repeating: 0x85, count: n)  // TUPLE1
        tuples.stop()
        expect(.corrupt, ["deeper than 200"]) {
            try self.load(try torchZip(pickle: tuples.bytes, storages: []))
        }
        var lists = PickleBuilder()
        lists.bytes += [UInt8](repeating: 0x28, count: n)  // MARK
        lists.none()
        lists.bytes += [UInt8](repeating: 0x6C, count: n)  // LIST
        lists.stop()
        expect(.corrupt, ["deeper than 200"]) {
            try self.load(try torchZip(pickle: lists.bytes, storages: []))
        }
        // The same nesting, then an error: the half-built graph is freed safely too.
        var broken = PickleBuilder()
        broken.none()
        broken.bytes += [UInt8](repeating: 0x85, count: n)
        broken.bytes.append(0xFF)
        expect(.corrupt, ["unknown pickle opcode"]) {
            try self.load(try torchZip(pickle: broken.bytes, storages: []))
        }
    }
}
