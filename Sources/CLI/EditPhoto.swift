import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan edit --image`: the photo's code comes from a projection (kept in a cache, so
/// that editing the same photo again with the same generator and settings starts at
/// once), and the grid gains two columns in front: the photo, then its reconstruction.
final class EditPhoto {
    static let options: [OptionSpec] =
        [
            .value(
                "image", "FILE",
                "a photo to edit instead of --latents: its code is found as 'isfgan invert' "
                    + "does (--invert-* options) or taken from the cache (default: none)"),
            .value(
                "invert-cache", "DIR",
                "where projections are kept, keyed by the SHA-256 of the photo, the generator "
                    + "and the settings; 'none' keeps nothing (default: "
                    + "$ISFGAN_HOME/projections)"),
        ] + projectionOptions(prefix: "invert-")

    let args: ParsedArguments
    let console: Console
    /// The prepared photo [1, 3, S, S] and the noise maps of its projection, once `codes`
    /// has run.
    private(set) var photo: Tensor?
    private(set) var noise: [Tensor]?

    init(_ args: ParsedArguments, console: Console) throws {
        if args.has("latents") {
            throw UsageError("isfgan \(args.command): give --latents or --image, not both")
        }
        self.args = args
        self.console = console
    }

    /// The photo's code [1, L, D] in the generator's editing space.
    func codes(generator: any ImageGenerator, url: URL) throws -> Tensor {
        let command = args.command
        let imagePath = try args.required("image")
        let settings = try projectionSettings(args, prefix: "invert-", generator: generator)
        let prepared = try ProjectionPhoto.load(
            URL(fileURLWithPath: imagePath), side: generator.imageSize)
        photo = prepared.tensor

        let cacheName = args.string("invert-cache")
        let cache =
            cacheName == "none"
            ? nil
            : ProjectionCache(
                directory: cacheName.map { URL(fileURLWithPath: $0) }
                    ?? ProjectionCache.defaultDirectory)
        let generatorSHA256 = try SHA256.hexDigest(ofFile: url)
        let generatorKey = generator is StyleGAN2Generator ? args.string("key") : nil
        let key = try ProjectionCache.key(
            imageSHA256: prepared.sha256, generatorSHA256: generatorSHA256,
            generatorKey: generatorKey, settings: settings)
        if let cache, let entry = cache.lookup(key, generator: generator) {
            console.err(
                "photo: the projection of \(imagePath) from the cache ("
                    + cache.directory.appendingPathComponent(key).path + ".npy; "
                    + String(format: "perceptual distance %.4f)", entry.record.perceptualDistance))
            noise = entry.noise
            return entry.codes
        }

        let perceptual = try loadPerceptualNetwork(
            settings.perceptual, flag: "invert-perceptual", command: command)
        console.warn(alignmentWarning(generator))
        if let note = prepared.cropNote { console.warn(note) }
        console.err(
            "photo: projecting \(imagePath) (\(prepared.width)×\(prepared.height); space "
                + "\(settings.space.rawValue), \(settings.steps) steps, "
                + "\(perceptual.perceptualName))")
        let projector = try Projector(
            generator: generator, perceptual: perceptual, settings: settings)
        let result = try runProjection(projector, photo: prepared.tensor, console: console)
        console.err(
            String(
                format: "photo: perceptual distance %.4f, PSNR %.2f dB", result.distance,
                result.psnr))
        if let cache {
            let record = ProjectionRecord(
                photo: prepared, image: imagePath, generator: try args.required("generator"),
                generatorSHA256: generatorSHA256, generatorKey: generatorKey,
                generatorSummary: generator.summary, settings: settings, result: result,
                codeFile: "", noiseFile: nil)
            try cache.store(key, result: result, record: record)
        }
        noise = result.noise
        return result.codes
    }

    /// How the edits render: with the photo's noise maps (StyleGAN2), unless `--noise`
    /// was given; nil leaves it to `--noise`.
    func noiseMode() -> NoiseMode? {
        guard let noise, !args.has("noise") else { return nil }
        return .explicit(noise)
    }

    /// Images [N, 1 + S, 3, H, W] (reconstruction, then the styles) with the photo put
    /// in front: [N, 2 + S, 3, H, W].
    func withPhotoColumn(_ images: Tensor) -> Tensor {
        guard let photo else { return images }
        let n = images.shape[0]
        let column = photo.unsqueezed(1).expanded(to: [n, 1] + Array(photo.shape.dropFirst()))
        return Tensor.concat([column, images], axis: 1)
    }
}
