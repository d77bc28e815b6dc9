import Formats
import Foundation
import Models
import TensorCore

/// A photo prepared as a projection target: the centre square of the image, scaled to the
/// generator's side.
///
/// Any PNG or JPEG that `ImageIO` reads works: 8- or 16-bit PNGs (16 bits are scaled to 8
/// by libpng), gray (repeated into R, G and B), RGB, and images with alpha (the alpha
/// channel is ignored). The square is cut from the middle of the longer side, as NVIDIA's
/// projector does, then shrunk with the area filter (the average of each output pixel's
/// footprint) or, for a photo smaller than the generator's images, enlarged bilinearly.
/// Nothing aligns the face: a projection only fits faces framed the way the generator's
/// training images were.
public struct ProjectionPhoto {
    /// [1, 3, S, S] in [−1, 1].
    public var tensor: Tensor
    /// The file's size in pixels and its channels (1 gray, 3 RGB, 4 RGBA).
    public var width: Int
    public var height: Int
    public var channels: Int
    /// Lower-case hex SHA-256 of the file's bytes.
    public var sha256: String

    /// For a photo that is not square, a line saying which part of it is projected (nil
    /// for a square one): a face off the centre of a wide photo is cut.
    public var cropNote: String? {
        guard width != height else { return nil }
        let s = min(width, height)
        let cut = (max(width, height) - s)
        let sides = width > height ? "left and right" : "top and bottom"
        return "the photo is \(width)×\(height) and not square: only its centre \(s)×\(s) "
            + "square is used (\(cut) px cut in all, split between the \(sides)); crop it "
            + "to the face first to choose the square"
    }

    /// Reads `url` and prepares it for a generator of side `side`.
    ///
    /// - Throws: `FormatError` naming the file when it is not a PNG or JPEG or cannot be
    ///   decoded; `ProjectionError.badTarget` for an empty image.
    public static func load(_ url: URL, side: Int) throws -> ProjectionPhoto {
        let image = try ImageIO.read(url)
        guard image.width > 0, image.height > 0 else {
            throw ProjectionError.badTarget("\(url.path): the image has no pixels")
        }
        return ProjectionPhoto(
            tensor: prepare(image, side: side), width: image.width, height: image.height,
            channels: image.channels, sha256: try SHA256.hexDigest(ofFile: url))
    }

    /// The centre square of `image`, as RGB [1, 3, side, side] in [−1, 1].
    public static func prepare(_ image: Image, side: Int) -> Tensor {
        GradMode.withoutGradients {
            var x = image.tensor()  // [1, C, H, W]
            switch image.channels {
            case 1: x = x.expanded(to: [1, 3, image.height, image.width])
            case 4: x = x.slice(1, 0..<3)
            default: break
            }
            let s = min(image.width, image.height)
            let top = (image.height - s) / 2, left = (image.width - s) / 2
            // [1, 3, s, s]
            x = x.slice(2, top..<(top + s)).slice(3, left..<(left + s)).contiguous()
            if s > side {
                x = x.resizedArea(height: side, width: side)
            } else if s < side {
                x = x.resizedBilinear(height: side, width: side)
            }
            return x.contiguous()
        }
    }
}
