import Formats
import Foundation
import TestSupport
import XCTest

/// The GIF writer, checked by a small independent decoder written here (block structure
/// and LZW per the GIF89a specification).
final class GIFTests: XCTestCase {
    struct Decoded {
        var width = 0, height = 0
        var globalTable: [UInt8]?
        var loops: Int?
        var delays: [Int] = []
        /// Each frame as RGB bytes (looked up in its local or the global table).
        var frames: [[UInt8]] = []
        var localTables = 0
    }

    /// Decodes what ``GIF/encode`` writes; fails the test on any structural problem.
    func decode(_ b: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws
        -> Decoded
    {
        var d = Decoded()
        XCTAssertEqual(Array(b[0..<6]), Array("GIF89a".utf8), file: file, line: line)
        func u16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        d.width = u16(6)
        d.height = u16(8)
        var p = 13
        if b[10] & 0x80 != 0 {
            let n = 3 << (Int(b[10] & 7) + 1)
            d.globalTable = Array(b[p..<(p + n)])
            p += n
        }
        var delay = 0
        while p < b.count {
            switch b[p] {
            case 0x21:
                let label = b[p + 1]
                p += 2
                if label == 0xF9 { delay = u16(p + 2) }
                if label == 0xFF, Array(b[(p + 1)..<(p + 12)]) == Array("NETSCAPE2.0".utf8) {
                    d.loops = u16(p + 14)
                }
                while b[p] != 0 { p += Int(b[p]) + 1 }
                p += 1
            case 0x2C:
                let (w, h) = (u16(p + 5), u16(p + 7))
                let flags = b[p + 9]
                p += 10
                var table = d.globalTable ?? []
                if flags & 0x80 != 0 {
                    let n = 3 << (Int(flags & 7) + 1)
                    table = Array(b[p..<(p + n)])
                    p += n
                    d.localTables += 1
                }
                let minWidth = Int(b[p])
                p += 1
                var data: [UInt8] = []
                while b[p] != 0 {
                    data += b[(p + 1)...(p + Int(b[p]))]
                    p += Int(b[p]) + 1
                }
                p += 1
                let indices = lzwDecode(data, minCodeWidth: minWidth)
                XCTAssertEqual(indices.count, w * h, "pixel count", file: file, line: line)
                d.frames.append(indices.flatMap { Array(table[(3 * Int($0))..<(3 * Int($0) + 3)]) })
                d.delays.append(delay)
            case 0x3B:
                XCTAssertEqual(p, b.count - 1, "bytes after the trailer", file: file, line: line)
                return d
            default:
                XCTFail(
                    "unexpected block 0x\(String(b[p], radix: 16)) at \(p)", file: file, line: line)
                return d
            }
        }
        XCTFail("no trailer", file: file, line: line)
        return d
    }

    /// A textbook LZW decoder: the table grows by one entry per code after the first,
    /// and the code width grows as soon as the entry the next code will make (the pending
    /// one) no longer fits the current width, as GIF decoders do.
    func lzwDecode(_ data: [UInt8], minCodeWidth: Int) -> [UInt8] {
        let clear = 1 << minCodeWidth, end = clear + 1
        var table: [[UInt8]] = []
        func reset() {
            table = (0..<clear).map { [UInt8($0)] } + [[], []]
        }
        reset()
        var width = minCodeWidth + 1
        var bitPos = 0
        var out: [UInt8] = []
        var previous: [UInt8]?
        while bitPos + width <= data.count * 8 {
            var code = 0
            for k in 0..<width {
                let bit = Int(data[(bitPos + k) / 8] >> UInt8((bitPos + k) % 8)) & 1
                code |= bit << k
            }
            bitPos += width
            if code == clear {
                reset()
                width = minCodeWidth + 1
                previous = nil
                continue
            }
            if code == end { break }
            let entry: [UInt8]
            if code < table.count {
                entry = table[code]
            } else {
                guard let prev = previous, code == table.count else {
                    XCTFail("bad LZW code \(code) with table \(table.count)")
                    return out
                }
                entry = prev + [prev[0]]
            }
            out += entry
            if let prev = previous, table.count < 4096 {
                table.append(prev + [entry[0]])
            }
            if table.count + 1 == 1 << width && width < 12 { width += 1 }
            previous = entry
        }
        return out
    }

    func randomImage(width: Int, height: Int, colors: Int, seed: UInt64) -> Image {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let palette = (0..<colors).map { _ in
            [UInt8(next() & 255), UInt8(next() & 255), UInt8(next() & 255)]
        }
        let pixels = (0..<(width * height)).flatMap { _ in palette[Int(next() % UInt64(colors))] }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// Up to 256 colours in all frames (150 + 56 + 1 here) round-trip exactly, with either
    /// palette mode; a 160×160 frame of noise overflows the 4096-entry LZW table several
    /// times, which exercises the clear-code restart.
    func testFewColoursRoundTripExactlyInBothPaletteModes() throws {
        let frames = [
            randomImage(width: 160, height: 160, colors: 150, seed: 1),
            randomImage(width: 160, height: 160, colors: 56, seed: 2),
            randomImage(width: 160, height: 160, colors: 1, seed: 3),
        ]
        for mode in [GIF.PaletteMode.global, .perFrame] {
            let bytes = try GIF.encode(frames, delay: 7, loops: 0, palette: mode)
            let d = try decode(bytes)
            XCTAssertEqual(d.width, 160)
            XCTAssertEqual(d.height, 160)
            XCTAssertEqual(d.loops, 0)
            XCTAssertEqual(d.delays, [7, 7, 7])
            XCTAssertEqual(d.frames.count, 3)
            XCTAssertEqual(d.localTables, mode == .global ? 0 : 3)
            XCTAssertEqual(d.globalTable != nil, mode == .global)
            for (k, f) in frames.enumerated() {
                XCTAssertEqual(d.frames[k], f.pixels, "frame \(k), \(mode)")
            }
        }
    }

    /// More than 256 colours are quantised: each channel stays close on a smooth ramp.
    func testManyColoursAreQuantisedClosely() throws {
        let (w, h) = (64, 64)
        var pixels: [UInt8] = []
        for y in 0..<h {
            for x in 0..<w { pixels += [UInt8(x * 4), UInt8(y * 4), UInt8((x + y) * 2)] }
        }
        let image = Image(width: w, height: h, channels: 3, pixels: pixels)
        let d = try decode(try GIF.encode([image, image]))
        let worst = zip(d.frames[1], pixels).map { abs(Int($0) - Int($1)) }.max()!
        // 4096 colours in 256 boxes: boxes of about 16 colours, a few steps of 4 wide.
        XCTAssertLessThanOrEqual(worst, 24)
    }

    /// Short and empty inputs: a 1×1 frame, and a frame whose single index stream has
    /// one pixel.
    func testTinyFrames() throws {
        let one = Image(width: 1, height: 1, channels: 3, pixels: [9, 8, 7])
        let d = try decode(try GIF.encode([one]))
        XCTAssertEqual(d.frames, [[9, 8, 7]])
    }

    func testBadInputsThrowAndLeaveNoFile() throws {
        let dir = temporaryDirectory("gif")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("a.gif")
        XCTAssertThrowsError(try GIF.write([], to: url))
        let a = Image(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 1, count: 12))
        let b = Image(width: 3, height: 2, channels: 3, pixels: [UInt8](repeating: 1, count: 18))
        XCTAssertThrowsError(try GIF.write([a, b], to: url)) { error in
            XCTAssertTrue("\(error)".contains("frame 1"), "\(error)")
        }
        let gray = Image(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4])
        XCTAssertThrowsError(try GIF.write([gray], to: url))
        XCTAssertThrowsError(try GIF.write([a], to: url, delay: 70_000))
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])

        try GIF.write([a, a], to: url, delay: 5, loops: 3)
        let d = try decode(Array(try Data(contentsOf: url)))
        XCTAssertEqual(d.loops, 3)
        XCTAssertEqual(d.frames.count, 2)
    }
}
