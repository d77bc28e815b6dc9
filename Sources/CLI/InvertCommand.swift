import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan invert`: find the code of a photo (projection), so that it can be edited.
struct InvertCommand: Subcommand {
    static let name = "invert"
    static let summary = "find the code whose image matches a photo (projection)"
    static let usage = """
        --generator G --image photo.png [--space w|wplus|z] [--steps 1000] [--seed 0]
                   --out photo.npy [--save-reconstruction rec.png] [--save-noise noise.npz]

        Optimises the code (and StyleGAN2's noise maps) to minimise a perceptual distance to
        the photo, as the StyleGAN2 projector does. Writes the code ((1, D) for w and z,
        (1, L, D) for wplus), and a JSON sidecar next to it (photo.json) with the settings,
        the checksums, the final perceptual distance and the PSNR. Edit the code with
        'isfgan edit --latents photo.npy' (--space w or z for (1, D) codes) and
        '--noise noise.npz' for generate; or let 'isfgan edit --image' do both steps.
        """
    static let options: [OptionSpec] =
        generatorOptions + [
            .value("image", "FILE", "the photo: PNG (8/16 bit, gray, RGB, RGBA) or JPEG"),
            .value(
                "out", "FILE",
                "where the code goes (.npy); the JSON sidecar takes the same name with .json"),
            .value(
                "save-reconstruction", "FILE",
                "write the reconstruction (.png/.jpg) (default: none)"),
            .value(
                "save-noise", "FILE",
                "write StyleGAN2's optimised noise maps (.npz, for generate --noise) "
                    + "(default: none)"),
        ] + projectionOptions()

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let imagePath = try args.required("image")
        let out = try checkOutput(args.required("out"), command: name, kind: .file(["npy"]))
        guard out.pathExtension.lowercased() == "npy" else {
            throw UsageError("isfgan invert: --out must name a .npy file, got '\(out.path)'")
        }
        let (generator, generatorURL) = try loadGenerator(args, console: console)
        let settings = try projectionSettings(args, generator: generator)
        let noiseURL = args.string("save-noise").map { URL(fileURLWithPath: $0) }
        if noiseURL != nil && !(generator is StyleGAN2Generator) {
            throw UsageError(
                "isfgan invert: --save-noise needs a StyleGAN2 generator (\(generator.summary) "
                    + "has no noise inputs)")
        }
        let perceptual = try loadPerceptualNetwork(
            settings.perceptual, flag: "perceptual", command: name)
        let photo = try ProjectionPhoto.load(
            URL(fileURLWithPath: imagePath), side: generator.imageSize)
        console.warn(alignmentWarning(generator))
        if let note = photo.cropNote { console.warn(note) }
        console.err(
            "photo: \(photo.width)×\(photo.height), \(photo.channels) channel"
                + "\(photo.channels == 1 ? "" : "s"); space \(settings.space.rawValue), "
                + "\(settings.steps) steps, \(perceptual.perceptualName)")

        let projector = try Projector(
            generator: generator, perceptual: perceptual, settings: settings)
        let result = try runProjection(projector, photo: photo.tensor, console: console)

        let sidecar = ProjectionFiles.sidecarURL(for: out)
        let record = ProjectionRecord(
            photo: photo, image: imagePath, generator: try args.required("generator"),
            generatorSHA256: try SHA256.hexDigest(ofFile: generatorURL),
            generatorKey: generator is StyleGAN2Generator ? args.string("key") : nil,
            generatorSummary: generator.summary, settings: settings, result: result,
            codeFile: out.lastPathComponent,
            noiseFile: noiseURL.map { relativePath($0, from: sidecar) })
        try ProjectionFiles.write(
            result, record: record, code: out, noise: noiseURL, sidecar: sidecar)
        if let p = args.string("save-reconstruction") {
            try writeImages(result.reconstruction, to: URL(fileURLWithPath: p), grid: false)
        }
        let psnr = result.psnr.isFinite ? String(format: "%.2f", result.psnr) : "inf"
        console.out(
            String(format: "perceptual distance %.4f", result.distance)
                + " (\(perceptual.perceptualName); "
                + String(format: "%.4f at the start", result.history.first ?? .nan)
                + "), PSNR \(psnr) dB")
        console.err(
            "wrote \(out.path) and \(sidecar.path) "
                + String(format: "(%.1f s)", result.seconds))
    }

    /// `file`'s path as seen from the folder of `anchor` when it lies in that folder,
    /// else its full path.
    static func relativePath(_ file: URL, from anchor: URL) -> String {
        let folder = anchor.deletingLastPathComponent().standardizedFileURL.path
        let path = file.standardizedFileURL.path
        return file.deletingLastPathComponent().standardizedFileURL.path == folder
            ? file.lastPathComponent : path
    }
}
