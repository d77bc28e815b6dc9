import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

/// Writers and readers agree. Float data round-trips bit-exactly (tolerance zero: nothing
/// is computed, only copied); JPEG is lossy and gets a stated tolerance.
final class RoundTripTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = temporaryDirectory("formats")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    func testNpyFloatRoundTripIncludingScalarsAndEmpty() throws {
        for shape in [[2, 3, 4], [], [0, 5], [7]] {
            let t = Tensor.randn(shape, seed: 3)
            try NumPy.write(t, to: url("a.npy"))
            let back = try NumPy.readTensor(url("a.npy"))
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(back.scalars, t.scalars)
            // NumPy pads the header so the data starts on a 64-byte boundary.
            let bytes = try Data(contentsOf: url("a.npy"))
            XCTAssertEqual((bytes.count - t.count * 4) % 64, 0)
        }
    }

    func testNpyKeepsIntegersAndBools() throws {
        let ints = RawArray(int64: [Int64.min, -1, 0, 1 << 40, Int64.max], shape: [5])
        try NumPy.write(ints, to: url("i.npy"))
        let back = try NumPy.readArray(url("i.npy"))
        XCTAssertEqual(back, ints)
        XCTAssertEqual(back.int64Values, [Int64.min, -1, 0, 1 << 40, Int64.max])
        let bools = RawArray(bools: [true, false, true, true], shape: [2, 2])
        try NumPy.write(bools, to: url("b.npy"))
        XCTAssertEqual(try NumPy.readArray(url("b.npy")).boolValues, [true, false, true, true])
    }

    /// Hand-built headers: Fortran order, other dtypes, versions 2 and 3.
    func testNpyFortranOrderDtypesAndVersions() throws {
        func npy(_ header: String, version: UInt8 = 1, _ data: [UInt8]) -> [UInt8] {
            let h = Array(header.utf8) + [0x0A]
            var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, version, 0]
            if version == 1 {
                out += withUnsafeBytes(of: UInt16(h.count).littleEndian, Array.init)
            } else {
                out += withUnsafeBytes(of: UInt32(h.count).littleEndian, Array.init)
            }
            return out + h + data
        }
        // [[0, 1, 2], [3, 4, 5]] stored column-major: 0 3 1 4 2 5.
        let fortran = npy(
            "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
            [0, 3, 1, 4, 2, 5].flatMap { withUnsafeBytes(of: Int32($0).littleEndian, Array.init) })
        let a = try NumPy.parse(ByteSlice(ByteBuffer(copying: fortran, name: "f.npy")))
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.int64Values, [0, 1, 2, 3, 4, 5])
        let halves: [Float16] = [1.5, -2, 65504]
        let f2 = npy(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", version: 2,
            halves.withUnsafeBytes { Array($0) })
        let b = try NumPy.parse(ByteSlice(ByteBuffer(copying: f2, name: "h.npy")))
        XCTAssertEqual(b.tensor().scalars, [1.5, -2, 65504])
        let doubles: [Double] = [0.1, 1e300]
        let f8 = npy(
            "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2L,)}",
            version: 3, doubles.withUnsafeBytes { Array($0) })
        let c = try NumPy.parse(ByteSlice(ByteBuffer(copying: f8, name: "d.npy")))
        XCTAssertEqual(c.tensor().scalars, [Float(0.1), .infinity])
    }

    func testNpzStoredAndDeflated() throws {
        let x = Tensor.randn([3, 4], seed: 1)
        let n = RawArray(int64: [1, 2, 3], shape: [3])
        for compressed in [false, true] {
            try NumPy.writeArchive(
                [("x", RawArray(x)), ("n", n)], compressed: compressed,
                to: url("a.npz"))
            let back = try NumPy.readArchive(url("a.npz"))
            XCTAssertEqual(back.map(\.name), ["x", "n"])
            XCTAssertEqual(back[0].array.tensor().scalars, x.scalars)
            XCTAssertEqual(back[1].array, n)
        }
    }

    func testSafetensorsRoundTripWithMetadataAndOrder() throws {
        let a = Tensor.randn([4, 3], seed: 7)
        let b = Tensor.randn([2, 2, 2], seed: 8).transposed(0, 2)  // non-contiguous input
        let metadata = ["architecture": "mapnet \"wp\"\n", "step": "1200", "ü": "ok"]
        try Safetensors.write(
            [("z.last", a), ("a.first", b)], metadata: metadata,
            to: url("m.safetensors"))
        let file = try SafetensorsFile(contentsOf: url("m.safetensors"))
        XCTAssertEqual(file.metadata, metadata)
        let s = file.stateDict()
        XCTAssertEqual(s.keys, ["z.last", "a.first"], "file order kept")
        XCTAssertEqual(s["z.last"]?.scalars, a.scalars)
        XCTAssertEqual(s["a.first"]?.shape, b.shape)
        XCTAssertEqual(s["a.first"]?.scalars, b.scalars)
        // Other dtypes keep their exact bytes.
        let ids = RawArray(int64: [5, -6], shape: [2])
        try Safetensors.write(arrays: [("ids", ids)], to: url("i.safetensors"))
        XCTAssertEqual(try SafetensorsFile(contentsOf: url("i.safetensors")).array("ids"), ids)
    }

    func testPNGRoundTripIsExact() throws {
        for channels in [1, 3, 4] {
            var rng = SystemRandomNumberGenerator()
            let pixels = (0..<(5 * 7 * channels)).map { _ in UInt8.random(in: 0...255, using: &rng)
            }
            let image = Image(width: 7, height: 5, channels: channels, pixels: pixels)
            try ImageIO.write(image, to: url("i.png"))
            let back = try ImageIO.read(url("i.png"))
            XCTAssertEqual(back, image, "\(channels) channels")
            // Through a tensor in [-1, 1] and back: the same bytes.
            XCTAssertEqual(Image(tensor: image.tensor()), image)
        }
    }

    func testTensorQuantisation() {
        let t = Tensor(shape: [1, 1, 1, 5], [-2, -1, 0, 0.999, 3])
        // clamp(x/2 + 1/2) · 255, rounded: 0, 0, 128 (127.5 rounds up), 255, 255.
        XCTAssertEqual(Image(tensor: t).pixels, [0, 0, 128, 255, 255])
    }

    func testPNG16BitGrayAndPaletteDecode() throws {
        // 16-bit gray, 2x1: 0x0000 and 0xFFFF become 0 and 255; 0x8080 becomes 128.
        let gray16 = try makePNG(
            width: 3, height: 1, bitDepth: 16, colorType: 0,
            rows: [[0, 0, 0xFF, 0xFF, 0x80, 0x80]])
        let g = try ImageIO.decodePNG(ByteSlice(ByteBuffer(copying: gray16, name: "g16.png")))
        XCTAssertEqual(g.channels, 1)
        XCTAssertEqual(g.pixels, [0, 255, 128])
        // 16-bit RGB.
        let rgb16 = try makePNG(
            width: 1, height: 1, bitDepth: 16, colorType: 2,
            rows: [[0xFF, 0xFF, 0, 0, 0x80, 0x80]])
        let c = try ImageIO.decodePNG(ByteSlice(ByteBuffer(copying: rgb16, name: "c16.png")))
        XCTAssertEqual(c.pixels, [255, 0, 128])
        // Palette: indices 0, 1 -> red, blue.
        let pal = try makePNG(
            width: 2, height: 1, bitDepth: 8, colorType: 3, rows: [[0, 1]],
            palette: [255, 0, 0, 0, 0, 255])
        let p = try ImageIO.decodePNG(ByteSlice(ByteBuffer(copying: pal, name: "p.png")))
        XCTAssertEqual(p.channels, 3)
        XCTAssertEqual(p.pixels, [255, 0, 0, 0, 0, 255])
    }

    /// A smooth image through JPEG at quality 95: baseline JPEG with 4:2:0 chroma
    /// subsampling, so colour edges blur; on this smooth gradient the mean error stays
    /// under 1.5 levels and the worst pixel under 12 levels of 255.
    func testJPEGRoundTripWithinTolerance() throws {
        let w = 32, h = 24
        var pixels: [UInt8] = []
        for y in 0..<h {
            for x in 0..<w {
                pixels += [UInt8(x * 255 / (w - 1)), UInt8(y * 255 / (h - 1)), 128]
            }
        }
        let image = Image(width: w, height: h, channels: 3, pixels: pixels)
        try ImageIO.write(image, to: url("i.jpg"), quality: 95)
        let back = try ImageIO.read(url("i.jpg"))
        XCTAssertEqual([back.width, back.height, back.channels], [w, h, 3])
        let diffs = zip(back.pixels, image.pixels).map { abs(Int($0) - Int($1)) }
        let mean = Double(diffs.reduce(0, +)) / Double(diffs.count)
        XCTAssertLessThan(mean, 1.5)
        XCTAssertLessThanOrEqual(diffs.max()!, 12)
        // Gray stays gray.
        let gray = Image(width: 8, height: 8, channels: 1, pixels: (0..<64).map { UInt8($0 * 4) })
        try ImageIO.write(gray, to: url("g.jpeg"))
        XCTAssertEqual(try ImageIO.read(url("g.jpeg")).channels, 1)
    }

    func testGridLayout() {
        // Three 1x2x2 images, two per row, padding 1 filled with -1.
        let images = Tensor(shape: [3, 1, 2, 2], (0..<12).map(Float.init))
        let g = Image.grid(images, columns: 2, padding: 1, padValue: -1)
        XCTAssertEqual(g.shape, [1, 2 * 3 + 1, 2 * 3 + 1])
        XCTAssertEqual(g[0, 1, 1], 0)
        XCTAssertEqual(g[0, 1, 4], 4)  // second image, top-left
        XCTAssertEqual(g[0, 5, 2], 11)  // third image, bottom-right
        XCTAssertEqual(g[0, 0, 0], -1)
        XCTAssertEqual(g[0, 4, 5], -1)  // empty fourth slot stays padding
    }

    func testAtomicWriteLeavesNothingOnFailure() throws {
        let target = url("keep.bin")
        try AtomicFile.write([1, 2, 3], to: target)
        struct Boom: Error {}
        XCTAssertThrowsError(
            try AtomicFile.write(to: target) { w in
                try w.write([9, 9, 9, 9])
                throw Boom()
            })
        XCTAssertEqual(try Data(contentsOf: target), Data([1, 2, 3]), "old file untouched")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertEqual(left, ["keep.bin"], "no temporary file left behind")
        // A missing folder is a clear error, not a crash.
        XCTAssertThrowsError(try AtomicFile.write([1], to: url("no/such/dir/x.bin"))) {
            XCTAssertEqual(($0 as? FormatError)?.kind, .io)
        }
    }

    /// A legacy (pre-1.6) torch.save file, built here byte by byte: magic, protocol,
    /// system info, the object pickle, the storage keys, then raw storages. One float
    /// storage is viewed twice (a transposed view shares it); a half storage becomes
    /// float32.
    func testLegacyCheckpoint() throws {
        var out: [UInt8] = []
        var magic = PickleBuilder()
        magic.bytes += [0x8A, 10] + TorchCheckpoint.legacyMagic
        magic.stop()
        var proto = PickleBuilder()
        proto.int(1001)
        proto.stop()
        var info = PickleBuilder()
        info.emptyDict()
        info.mark()
        info.string("protocol_version"); info.int(1001)
        info.string("little_endian"); info.newTrue()
        info.setItems()
        info.stop()
        let object = PickleBuilder.stateDict([
            ("w", "10", "FloatStorage", 6, 0, [2, 3], [3, 1]),
            ("wt", "10", "FloatStorage", 6, 0, [3, 2], [1, 3]),
            ("tail", "10", "FloatStorage", 6, 4, [2], [1]),
            ("h", "11", "HalfStorage", 2, 0, [2], [1]),
        ])
        var keys = PickleBuilder()
        keys.emptyList()
        keys.mark()
        keys.string("10")
        keys.string("11")
        keys.appends()
        keys.stop()
        out = magic.bytes + proto.bytes + info.bytes + object.bytes + keys.bytes
        out += withUnsafeBytes(of: Int64(6).littleEndian, Array.init)
        out += floatBytes([0, 1, 2, 3, 4, 5])
        out += withUnsafeBytes(of: Int64(2).littleEndian, Array.init)
        out += ([Float16(0.5), Float16(-3)] as [Float16]).withUnsafeBytes { Array($0) }
        try Data(out).write(to: url("legacy.pth"))
        let ckpt = try TorchCheckpoint(contentsOf: url("legacy.pth"))
        XCTAssertEqual(ckpt.format, .legacy)
        let s = try ckpt.stateDict()
        XCTAssertEqual(s.keys, ["w", "wt", "tail", "h"])
        XCTAssertEqual(s["w"]?.scalars, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(s["wt"]?.scalars, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(s["tail"]?.scalars, [4, 5])
        XCTAssertEqual(s["h"]?.scalars, [0.5, -3])
        XCTAssertEqual(s.dtypes["h"], .float16)
        XCTAssertTrue(s["w"]!.storage === s["wt"]!.storage)
    }

    /// The same kind of dict in a zip checkpoint with deflated records, a double storage
    /// and a nested path.
    func testZipCheckpointDeflatedAndNested() throws {
        var p = PickleBuilder()
        p.emptyDict()
        p.mark()
        p.string("net")
        p.emptyDict()
        p.mark()
        p.string("d")
        p.tensor(storage: "0", type: "DoubleStorage", numel: 3, shape: [3], stride: [1])
        p.string("n")
        p.tensor(storage: "1", type: "LongStorage", numel: 1, shape: [], stride: [])
        p.setItems()
        p.string("step")
        p.int(42)
        p.setItems()
        p.stop()
        let doubles: [Double] = [0.25, -1, 3]
        let zip = try torchZip(
            pickle: p.bytes,
            storages: [
                ("0", doubles.withUnsafeBytes { Array($0) }),
                ("1", withUnsafeBytes(of: Int64(7).littleEndian, Array.init)),
            ],
            prefix: "my_model", deflate: true)
        try Data(zip).write(to: url("c.pt"))
        let ckpt = try TorchCheckpoint(contentsOf: url("c.pt"))
        let net = try ckpt.stateDict("net")
        XCTAssertEqual(net["d"]?.scalars, [0.25, -1, 3])
        XCTAssertEqual(net["n"]?.shape, [])
        XCTAssertEqual(net["n"]?.item, 7)
        XCTAssertEqual(net.dtypes["n"], .int64)
        guard case .int(42)? = ckpt.root["step"] else { return XCTFail("step") }
        XCTAssertThrowsError(try ckpt.stateDict("nope")) {
            XCTAssertEqual(($0 as? FormatError)?.kind, .missingKey)
            XCTAssertTrue("\($0)".contains("nope"))
        }
    }
}
