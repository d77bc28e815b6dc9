import CJPEGShim
import CPNG
import Foundation
import TensorCore

/// An 8-bit image: `height × width × channels` bytes, row-major, channels interleaved
/// (1 = gray, 3 = RGB, 4 = RGBA).
public struct Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    /// `height * width * channels` bytes, top row first.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(
            width >= 0 && height >= 0 && [1, 3, 4].contains(channels),
            "Image: \(width)x\(height) with \(channels) channels")
        precondition(
            pixels.count == width * height * channels,
            "Image: \(pixels.count) bytes for \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The image as a `[1, C, H, W]` tensor in [-1, 1] (`p / 127.5 − 1`), the convention of
    /// every model here.
    public func tensor() -> Tensor {
        let t = Tensor(uninitializedShape: [1, channels, height, width])  // [1, C, H, W]
        let plane = width * height
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<plane {
                for c in 0..<channels {
                    t.pointer[c * plane + i] = Float(p[i * channels + c]) / 127.5 - 1
                }
            }
        }
        return t
    }

    /// Quantises a `[C, H, W]` or `[1, C, H, W]` tensor in [-1, 1] to 8 bits:
    /// `round(clamp(x · 0.5 + 0.5, 0, 1) · 255)`, as torchvision's `save_image` does.
    public init(tensor: Tensor) {
        var x = tensor
        if x.rank == 4 {
            precondition(x.shape[0] == 1, "Image(tensor:): batch \(x.shape[0]); use a grid")
            x = x.reshaped(Array(x.shape.dropFirst()))
        }
        precondition(
            x.rank == 3 && [1, 3, 4].contains(x.shape[0]),
            "Image(tensor:): expected [C, H, W] with C in {1, 3, 4}, got \(describe(x.shape))")
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let values = x.scalars  // [C, H, W]
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        let plane = h * w
        for i in 0..<plane {
            for k in 0..<c {
                let v = values[k * plane + i] * 0.5 + 0.5
                let q = (v.isNaN ? 0 : min(max(v, 0), 1)) * 255 + 0.5
                pixels[i * c + k] = UInt8(q)
            }
        }
        self.init(width: w, height: h, channels: c, pixels: pixels)
    }

    /// Tiles `[N, C, H, W]` images into one `[C, H', W']` grid, `columns` per row, with
    /// `padding` pixels of `padValue` around every tile (torchvision's `make_grid`).
    public static func grid(
        _ images: Tensor, columns: Int = 8, padding: Int = 2, padValue: Float = 1
    ) -> Tensor {
        precondition(images.rank == 4, "grid: expected [N, C, H, W], got \(describe(images.shape))")
        precondition(columns > 0 && padding >= 0, "grid: columns > 0 and padding >= 0")
        let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
        let cols = min(columns, max(n, 1))
        let rows = (n + cols - 1) / cols
        let gh = rows * (h + padding) + padding, gw = cols * (w + padding) + padding
        let out = Tensor(
            storage: TensorStorage(count: c * gh * gw, repeating: padValue),
            shape: [c, gh, gw], strides: Shape.contiguousStrides([c, gh, gw]))  // [C, H', W']
        let src = images.contiguous()
        for k in 0..<n {
            let top = (k / cols) * (h + padding) + padding
            let left = (k % cols) * (w + padding) + padding
            for ch in 0..<c {
                for y in 0..<h {
                    let from = src.pointer + ((k * c + ch) * h + y) * w
                    let to = out.pointer + (ch * gh + top + y) * gw + left
                    to.update(from: from, count: w)
                }
            }
        }
        return out
    }
}

/// PNG (libpng's simplified API) and JPEG (libjpeg-turbo through a setjmp-owning shim).
public enum ImageIO {
    /// Reads a PNG or JPEG, recognised by its first bytes.
    public static func read(_ url: URL) throws -> Image {
        let buffer = try ByteBuffer(contentsOf: url)
        let b = buffer.bytes
        if b.count >= 8, b[0] == 0x89, b[1] == 0x50, b[2] == 0x4E, b[3] == 0x47 {
            return try decodePNG(ByteSlice(buffer))
        }
        if b.count >= 3, b[0] == 0xFF, b[1] == 0xD8, b[2] == 0xFF {
            return try decodeJPEG(ByteSlice(buffer))
        }
        throw FormatError(
            b.isEmpty ? .truncated : .badMagic, file: buffer.name,
            b.isEmpty ? "the file is empty" : "not a PNG or JPEG image")
    }

    /// Writes `image` as PNG or JPEG by the file extension (`.png`, `.jpg`, `.jpeg`).
    public static func write(_ image: Image, to url: URL, quality: Int = 95) throws {
        switch url.pathExtension.lowercased() {
        case "png": try writePNG(image, to: url)
        case "jpg", "jpeg": try writeJPEG(image, to: url, quality: quality)
        default:
            throw FormatError(
                .unsupported, file: url.path,
                "unknown image extension '\(url.pathExtension)' (use .png, .jpg or .jpeg)")
        }
    }

    // MARK: - PNG

    /// The simplified-API format code for 8-bit gray, RGB or RGBA.
    static func pngFormat(channels: Int) -> UInt32 {
        let color = UInt32(PNG_FORMAT_FLAG_COLOR), alpha = UInt32(PNG_FORMAT_FLAG_ALPHA)
        switch channels {
        case 4: return color | alpha
        case 3: return color
        default: return 0  // PNG_FORMAT_GRAY
        }
    }

    /// Decodes PNG bytes (8 or 16 bit; gray, gray+alpha, RGB, RGBA or palette) to 8 bits:
    /// gray stays 1 channel, colour becomes RGB, anything with alpha RGBA. 16-bit values
    /// without gamma information are taken as sRGB and scaled to 8 bits.
    public static func decodePNG(_ slice: ByteSlice) throws -> Image {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        func fail(_ what: String) -> FormatError {
            let reason = withUnsafeBytes(of: image.message) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            png_image_free(&image)
            return FormatError(.corrupt, file: slice.name, "\(what): libpng says '\(reason)'")
        }
        guard slice.count > 0 else {
            throw FormatError(.truncated, file: slice.name, "the PNG data is empty")
        }
        guard
            png_image_begin_read_from_memory(&image, slice.bytes.baseAddress, slice.count)
                != 0
        else { throw fail("cannot read the PNG header") }
        let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        let isColor = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let channels = hasAlpha ? 4 : (isColor ? 3 : 1)
        image.format = pngFormat(channels: channels)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let w = Int(image.width), h = Int(image.height)
        // zlib expands at most ~1032:1; a larger claim is a decompression bomb.
        let (n, o) = (w * h).multipliedReportingOverflow(by: channels)
        guard !o, n <= 1032 * slice.count + (1 << 20), n <= 1 << 31 else {
            png_image_free(&image)
            throw FormatError(
                .tooLarge, file: slice.name,
                "the PNG header declares \(w)x\(h) pixels, more than the file can hold")
        }
        var pixels = [UInt8](repeating: 0, count: n)
        let ok = pixels.withUnsafeMutableBytes {
            png_image_finish_read(&image, nil, $0.baseAddress, Int32(w * channels), nil)
        }
        guard ok != 0 else { throw fail("cannot decode the PNG") }
        png_image_free(&image)
        return Image(width: w, height: h, channels: channels, pixels: pixels)
    }

    /// PNG bytes of an 8-bit image.
    public static func encodePNG(_ image: Image) throws -> [UInt8] {
        var info = png_image()
        info.version = UInt32(PNG_IMAGE_VERSION)
        info.width = UInt32(image.width)
        info.height = UInt32(image.height)
        info.format = pngFormat(channels: image.channels)
        var size = 0
        let stride = Int32(image.width * image.channels)
        let sized = image.pixels.withUnsafeBytes {
            png_image_write_to_memory(&info, nil, &size, 0, $0.baseAddress, stride, nil)
        }
        guard sized != 0, size > 0 else {
            png_image_free(&info)
            throw FormatError(.io, file: "PNG encoder", "libpng could not size the PNG")
        }
        var out = [UInt8](repeating: 0, count: size)
        let ok = out.withUnsafeMutableBytes { o in
            image.pixels.withUnsafeBytes {
                png_image_write_to_memory(
                    &info, o.baseAddress, &size, 0, $0.baseAddress, stride,
                    nil)
            }
        }
        png_image_free(&info)
        guard ok != 0 else { throw FormatError(.io, file: "PNG encoder", "libpng failed") }
        return Array(out.prefix(size))
    }

    /// Writes a PNG atomically.
    public static func writePNG(_ image: Image, to url: URL) throws {
        try AtomicFile.write(try encodePNG(image), to: url)
    }

    // MARK: - JPEG

    /// Decodes JPEG bytes to RGB (or gray for gray JPEGs). A stream that ends early is an
    /// error, not a grey-filled image.
    public static func decodeJPEG(_ slice: ByteSlice) throws -> Image {
        var pixels: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = isf_jpeg_decode(
            slice.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), slice.count, &pixels,
            &w, &h, &c, &message, message.count)
        guard status == 0, let pixels else {
            let text = String(cString: message)
            throw FormatError(
                status == 2 ? .truncated : .corrupt, file: slice.name,
                "cannot decode the JPEG: \(text)")
        }
        defer { free(pixels) }
        let n = Int(w) * Int(h) * Int(c)
        return Image(
            width: Int(w), height: Int(h), channels: Int(c),
            pixels: Array(UnsafeBufferPointer(start: pixels, count: n)))
    }

    /// JPEG bytes of an RGB or gray image (alpha is dropped), at `quality` 1–100.
    public static func encodeJPEG(_ image: Image, quality: Int = 95) throws -> [UInt8] {
        var img = image
        if image.channels == 4 {
            var rgb = [UInt8](repeating: 0, count: image.width * image.height * 3)
            for i in 0..<(image.width * image.height) {
                for k in 0..<3 { rgb[3 * i + k] = image.pixels[4 * i + k] }
            }
            img = Image(width: image.width, height: image.height, channels: 3, pixels: rgb)
        }
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = img.pixels.withUnsafeBufferPointer {
            isf_jpeg_encode(
                $0.baseAddress, Int32(img.width), Int32(img.height), Int32(img.channels),
                Int32(min(max(quality, 1), 100)), &out, &size, &message, message.count)
        }
        guard status == 0, let out else {
            throw FormatError(.io, file: "JPEG encoder", String(cString: message))
        }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Writes a JPEG atomically.
    public static func writeJPEG(_ image: Image, to url: URL, quality: Int = 95) throws {
        try AtomicFile.write(try encodeJPEG(image, quality: quality), to: url)
    }
}
