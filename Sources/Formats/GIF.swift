import Foundation

// An animated GIF (GIF89a) writer: median-cut palettes of up to 256 colours, one per frame
// or one shared by all frames, variable-width LZW, a NETSCAPE2.0 loop block, and an atomic
// write. Only what isfgan needs to show an interpolation; no transparency, no dithering.

/// Writes animated GIFs from RGB frames.
public enum GIF {
    /// Where each frame's colours come from.
    public enum PaletteMode: Sendable {
        /// One palette fitted to every frame's pixels, stored once (smaller files; colours
        /// stay put from frame to frame).
        case global
        /// A palette fitted to each frame, stored with the frame (closer colours).
        case perFrame
    }

    /// The GIF format's limit on palette entries and on LZW code width.
    static let maxColors = 256
    static let maxCodeWidth = 12

    /// Writes `frames` (RGB, all the same size) as an animated GIF at `url`, atomically.
    ///
    /// - Parameters:
    ///   - delay: time each frame is shown, in hundredths of a second (0...65535).
    ///   - loops: times to play; 0 loops forever.
    /// - Throws: `FormatError` (`.unsupported`) for no frames, frames that are not RGB or
    ///   differ in size, or a side over 65535; `.io` when the file cannot be written.
    public static func write(
        _ frames: [Image], to url: URL, delay: Int = 10, loops: Int = 0,
        palette: PaletteMode = .perFrame
    ) throws {
        let bytes = try encode(frames, delay: delay, loops: loops, palette: palette, name: url.path)
        try AtomicFile.write(bytes, to: url)
    }

    /// The bytes of an animated GIF; see ``write(_:to:delay:loops:palette:)``.
    public static func encode(
        _ frames: [Image], delay: Int = 10, loops: Int = 0, palette: PaletteMode = .perFrame,
        name: String = "GIF"
    ) throws -> [UInt8] {
        guard let first = frames.first else {
            throw FormatError(.unsupported, file: name, "a GIF needs at least one frame")
        }
        let (w, h) = (first.width, first.height)
        for (i, f) in frames.enumerated() {
            guard f.channels == 3 else {
                throw FormatError(
                    .unsupported, file: name, at: "frame \(i)",
                    "expected RGB (3 channels), got \(f.channels)")
            }
            guard f.width == w, f.height == h else {
                throw FormatError(
                    .unsupported, file: name, at: "frame \(i)",
                    "is \(f.width)×\(f.height), the first frame is \(w)×\(h)")
            }
        }
        guard (1...65535).contains(w), (1...65535).contains(h) else {
            throw FormatError(.unsupported, file: name, "GIF sides are 1...65535, got \(w)×\(h)")
        }
        guard (0...65535).contains(delay), (0...65535).contains(loops) else {
            throw FormatError(
                .unsupported, file: name,
                "delay and loop count must be in 0...65535, got \(delay) and \(loops)")
        }

        var out: [UInt8] = Array("GIF89a".utf8)
        let shared = palette == .global ? Palette.fit(frames.map(\.pixels)) : nil
        out.appendLE16(w)
        out.appendLE16(h)
        if let shared {
            // Global colour table present, 8 bits of colour resolution, table size field.
            out.append(0x80 | 0x70 | UInt8(shared.sizeField))
        } else {
            out.append(0x70)
        }
        out += [0, 0]  // background colour index, pixel aspect ratio
        if let shared { out += shared.tableBytes }

        // NETSCAPE2.0 application extension: the loop count.
        out += [0x21, 0xFF, 0x0B] + Array("NETSCAPE2.0".utf8) + [0x03, 0x01]
        out.appendLE16(loops)
        out.append(0)

        for frame in frames {
            // Graphic control extension: no disposal, no transparency, the delay.
            out += [0x21, 0xF9, 0x04, 0x04]
            out.appendLE16(delay)
            out += [0, 0]
            let table = shared ?? Palette.fit([frame.pixels])
            out.append(0x2C)  // image descriptor
            out.appendLE16(0)
            out.appendLE16(0)
            out.appendLE16(w)
            out.appendLE16(h)
            if shared == nil {
                out.append(0x80 | UInt8(table.sizeField))
                out += table.tableBytes
            } else {
                out.append(0)
            }
            let indices = table.indices(of: frame.pixels)
            let minCodeWidth = max(2, table.bits)
            out.append(UInt8(minCodeWidth))
            let data = lzwEncode(indices, minCodeWidth: minCodeWidth)
            // Data sub-blocks of at most 255 bytes, then an empty block.
            var start = 0
            while start < data.count {
                let n = min(255, data.count - start)
                out.append(UInt8(n))
                out += data[start..<(start + n)]
                start += n
            }
            out.append(0)
        }
        out.append(0x3B)  // trailer
        return out
    }

    /// GIF's variable-width LZW: codes start `minCodeWidth + 1` bits wide, grow when the
    /// next free code needs another bit, stop at 12 bits, where a clear code restarts the
    /// table; packed least significant bit first.
    static func lzwEncode(_ indices: [UInt8], minCodeWidth: Int) -> [UInt8] {
        let clear = 1 << minCodeWidth
        let end = clear + 1
        let tableLimit = 1 << maxCodeWidth
        // child[prefix * 256 + byte] = code of prefix+byte, or 0 when absent (0 is never a
        // multi-byte string's code, since codes below `clear` are single bytes).
        var child = [UInt16](repeating: 0, count: tableLimit * 256)
        var next = end + 1
        var width = minCodeWidth + 1
        var bits = BitWriter()

        // The check sits before each emission, so the width grows one code after the
        // entry that needs it was made: in step with the decoder, which adds its entries
        // one code late.
        func emit(_ code: Int) {
            if next == (1 << width) && width < maxCodeWidth { width += 1 }
            bits.append(code, width: width)
        }

        emit(clear)
        guard var prefix = indices.first.map(Int.init) else {
            emit(end)
            return bits.finish()
        }
        var touched: [Int] = []
        for byte in indices.dropFirst() {
            let key = prefix << 8 | Int(byte)
            let code = Int(child[key])
            if code != 0 {
                prefix = code
                continue
            }
            emit(prefix)
            if next < tableLimit {
                child[key] = UInt16(next)
                touched.append(key)
                next += 1
            } else {
                emit(clear)
                for k in touched { child[k] = 0 }
                touched.removeAll(keepingCapacity: true)
                next = end + 1
                width = minCodeWidth + 1
            }
            prefix = Int(byte)
        }
        emit(prefix)
        emit(end)
        return bits.finish()
    }
}

/// Bits packed least significant first, as GIF's LZW stream wants them.
struct BitWriter {
    private(set) var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var count = 0

    mutating func append(_ code: Int, width: Int) {
        buffer |= UInt64(code) << UInt64(count)
        count += width
        while count >= 8 {
            bytes.append(UInt8(truncatingIfNeeded: buffer))
            buffer >>= 8
            count -= 8
        }
    }

    mutating func finish() -> [UInt8] {
        if count > 0 { bytes.append(UInt8(truncatingIfNeeded: buffer)) }
        buffer = 0
        count = 0
        return bytes
    }
}

/// A colour table fitted by median cut, with a cached nearest-colour lookup.
struct Palette {
    /// RGB entries, at most 256.
    let colors: [(UInt8, UInt8, UInt8)]

    /// Bits per index: the table is stored with 2^bits entries (GIF needs a power of two).
    var bits: Int {
        var b = 1
        while (1 << b) < colors.count { b += 1 }
        return b
    }

    /// The 3-bit "size of colour table" field: 2^(field + 1) entries.
    var sizeField: Int { bits - 1 }

    /// The table padded with black to 2^bits entries.
    var tableBytes: [UInt8] {
        var out: [UInt8] = []
        for c in colors { out += [c.0, c.1, c.2] }
        out += [UInt8](repeating: 0, count: ((1 << bits) - colors.count) * 3)
        return out
    }

    /// Median cut over the pixels of all `images` (RGB bytes): split the box with the
    /// widest channel range at the median of that channel until there are 256 boxes or
    /// none can split; each entry is its box's mean. Images with at most 256 distinct
    /// colours get exactly those colours.
    static func fit(_ images: [[UInt8]]) -> Palette {
        // Count distinct colours; small sets are taken as they are (exact round trip).
        var counts: [UInt32: Int] = [:]
        for pixels in images {
            var i = 0
            while i + 2 < pixels.count {
                let key =
                    UInt32(pixels[i]) << 16 | UInt32(pixels[i + 1]) << 8
                    | UInt32(pixels[i + 2])
                counts[key, default: 0] += 1
                i += 3
            }
        }
        if counts.isEmpty { return Palette(colors: [(0, 0, 0), (0, 0, 0)]) }
        let distinct = counts.keys.sorted()
        if distinct.count <= GIF.maxColors {
            var colors = distinct.map { k in
                (UInt8(k >> 16 & 0xFF), UInt8(k >> 8 & 0xFF), UInt8(k & 0xFF))
            }
            if colors.count == 1 { colors.append((0, 0, 0)) }
            return Palette(colors: colors)
        }

        // Boxes of (colour, weight) entries.
        let entries = distinct.map { k -> (rgb: [Int], weight: Int) in
            ([Int(k >> 16 & 0xFF), Int(k >> 8 & 0xFF), Int(k & 0xFF)], counts[k]!)
        }
        var boxes: [ArraySlice<(rgb: [Int], weight: Int)>] = [entries[...]]
        func widest(_ box: ArraySlice<(rgb: [Int], weight: Int)>) -> (channel: Int, range: Int) {
            var best = (channel: 0, range: -1)
            for c in 0..<3 {
                var lo = 255, hi = 0
                for e in box {
                    lo = min(lo, e.rgb[c])
                    hi = max(hi, e.rgb[c])
                }
                if hi - lo > best.range { best = (c, hi - lo) }
            }
            return best
        }
        while boxes.count < GIF.maxColors {
            // The box with the widest range that still holds two colours.
            var pick = -1
            var pickRange = 0
            var pickChannel = 0
            for (i, box) in boxes.enumerated() where box.count > 1 {
                let (c, r) = widest(box)
                if r > pickRange {
                    pick = i
                    pickRange = r
                    pickChannel = c
                }
            }
            if pick < 0 { break }
            let sorted = boxes[pick].sorted { $0.rgb[pickChannel] < $1.rgb[pickChannel] }
            // Split at the weighted median so that busy colours get their own entries.
            let total = sorted.reduce(0) { $0 + $1.weight }
            var acc = 0
            var cut = 1
            for (i, e) in sorted.enumerated() {
                acc += e.weight
                if acc * 2 >= total {
                    cut = i + 1
                    break
                }
            }
            cut = min(max(cut, 1), sorted.count - 1)
            let all = Array(sorted)
            boxes[pick] = all[0..<cut]
            boxes.append(all[cut...])
        }
        let colors = boxes.map { box -> (UInt8, UInt8, UInt8) in
            var sum = [0, 0, 0]
            var weight = 0
            for e in box {
                for c in 0..<3 { sum[c] += e.rgb[c] * e.weight }
                weight += e.weight
            }
            func mean(_ c: Int) -> UInt8 { UInt8((sum[c] + weight / 2) / weight) }
            return (mean(0), mean(1), mean(2))
        }
        return Palette(colors: colors)
    }

    /// The nearest entry (squared RGB distance) for each pixel of RGB bytes.
    func indices(of pixels: [UInt8]) -> [UInt8] {
        var cache: [UInt32: UInt8] = [:]
        var out = [UInt8](repeating: 0, count: pixels.count / 3)
        for p in 0..<out.count {
            let (r, g, b) = (Int(pixels[3 * p]), Int(pixels[3 * p + 1]), Int(pixels[3 * p + 2]))
            let key = UInt32(r << 16 | g << 8 | b)
            if let hit = cache[key] {
                out[p] = hit
                continue
            }
            var best = 0
            var bestDistance = Int.max
            for (i, c) in colors.enumerated() {
                let dr = r - Int(c.0), dg = g - Int(c.1), db = b - Int(c.2)
                let d = dr * dr + dg * dg + db * db
                if d < bestDistance {
                    bestDistance = d
                    best = i
                }
            }
            cache[key] = UInt8(best)
            out[p] = UInt8(best)
        }
        return out
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func appendLE16(_ v: Int) {
        append(UInt8(v & 0xFF))
        append(UInt8(v >> 8 & 0xFF))
    }
}
