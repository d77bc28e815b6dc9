import Foundation
import Method
import Models
import TensorCore

/// The options that set a projection: `isfgan invert` takes them as `--steps …`,
/// `isfgan edit --image` as `--invert-steps …` (its `--seed` and `--space` mean other
/// things there).
func projectionOptions(prefix p: String = "") -> [OptionSpec] {
    let d = ProjectionSettings(space: .w)
    return [
        .value(
            p + "space", "NAME",
            "code to find: w (one w for every layer), wplus (one per layer) for StyleGAN2; z "
                + "for the DCGAN (default: w for StyleGAN2, z for the DCGAN)"),
        .value(p + "steps", "N", "optimisation steps", default: "\(d.steps)"),
        .value(
            p + "seed", "N", "seed of the starting noise maps and the exploration noise",
            default: "\(d.seed)"),
        .value(p + "lr", "X", "peak Adam learning rate", default: "\(d.learningRate)"),
        .value(
            p + "perceptual", "NET",
            "perceptual distance: stlpips-alex, stlpips-vgg, lpips:FILE or "
                + "lpips:BACKBONE,HEADS", default: d.perceptual),
        .value(
            p + "mse-weight", "X",
            "weight of the pixel mean squared error (default: 0 for StyleGAN2, as in the "
                + "reference projectors; 1 for the DCGAN's z)"),
        .value(
            p + "noise-weight", "X", "weight of the noise-map regulariser (StyleGAN2)",
            default: "100000"),
        .value(
            p + "code-noise", "X",
            "exploration noise on the code at the start, × the codes' spread (falls to 0 at "
                + "75 % of the steps)", default: "\(d.codeNoise)"),
        .value(
            p + "z-prior", "NAME",
            "z space: sphere (z is put back on the sphere of radius √D, where N(0, I) puts "
                + "its samples, after every step) or none", default: "sphere"),
    ]
}

/// The settings the `projectionOptions(prefix:)` give for `generator`.
func projectionSettings(
    _ args: ParsedArguments, prefix p: String = "", generator: any ImageGenerator
) throws -> ProjectionSettings {
    let command = args.command
    let allowed = ProjectionSpace.allowed(for: generator)
    var space = allowed[0]
    if let name = args.string(p + "space") {
        guard let s = ProjectionSpace(rawValue: name), allowed.contains(s) else {
            throw UsageError(
                "isfgan \(command): --\(p)space \(name) does not fit this generator "
                    + "(\(generator.summary)); choose "
                    + allowed.map(\.rawValue).joined(separator: " or "))
        }
        space = s
    }
    var s = ProjectionSettings(space: space)
    s.steps = try args.int(p + "steps", range: 1...1_000_000)!
    s.seed = UInt64(try args.int(p + "seed", range: 0...Int.max)!)
    func number(_ name: String, positive: Bool = false) throws -> Float {
        let v = Float(try args.double(p + name)!)
        guard positive ? v > 0 : v >= 0 else {
            throw UsageError(
                "isfgan \(command): --\(p)\(name) must be \(positive ? ">" : "≥") 0, got \(v)")
        }
        return v
    }
    s.learningRate = try number("lr", positive: true)
    if args.has(p + "mse-weight") { s.mseWeight = try number("mse-weight") }
    s.noiseWeight = try number("noise-weight")
    s.codeNoise = try number("code-noise")
    s.perceptual = try args.required(p + "perceptual")
    s.zSphere = try args.choice(p + "z-prior", ["sphere", "none"]) == "sphere"
    return s
}

/// The perceptual network named by `--perceptual` (`stlpips-alex`, `stlpips-vgg`,
/// `lpips:FILE`, `lpips:BACKBONE,HEADS`).
func loadPerceptualNetwork(_ name: String, flag: String, command: String) throws
    -> any PerceptualLoss
{
    switch name {
    case "stlpips-alex", "stlpips-vgg":
        let backbone: STLPIPSBackbone = name == "stlpips-alex" ? .alex : .vgg
        do {
            return try STLPIPS.load(backbone)
        } catch {
            throw UsageError(
                "isfgan \(command): --\(flag) \(name): the ST-LPIPS weights are not available "
                    + "(\(error)); run scripts/fetch-models or give lpips:FILE")
        }
    case let n where n.hasPrefix("lpips:"):
        let files = n.dropFirst(6).split(separator: ",").map { URL(fileURLWithPath: String($0)) }
        switch files.count {
        case 1: return try LPIPS.load(contentsOf: files[0])
        case 2: return try LPIPS.load(backbone: files[0], heads: files[1])
        default: break
        }
    default: break
    }
    throw UsageError(
        "isfgan \(command): --\(flag) must be stlpips-alex, stlpips-vgg, lpips:FILE or "
            + "lpips:BACKBONE,HEADS, got '\(name)'")
}

/// Runs a projection with a progress line (about 100 updates a run) and returns it.
func runProjection(_ projector: Projector, photo: Tensor, console: Console) throws
    -> ProjectionResult
{
    let progress = ProgressLine(console: console)
    let every = max(1, projector.settings.steps / 100)
    let start = DispatchTime.now().uptimeNanoseconds
    let result = try projector.project(photo) { s in
        guard s.step % every == 0 || s.step == s.steps else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let left = elapsed / Double(s.step) * Double(s.steps - s.step)
        progress.update(
            "projecting: step \(s.step)/\(s.steps)  "
                + String(
                    format: "loss %.4f  perceptual %.4f  lr %.4f  %.0f s, %.0f s left",
                    s.loss, s.perceptual, s.learningRate, elapsed, left))
    }
    progress.finish()
    return result
}

/// The warning every projection of a photo prints.
func alignmentWarning(_ generator: any ImageGenerator) -> String {
    "the photo is only centre-cropped and scaled to \(generator.imageSize) px; a face fits "
        + "only when it is framed and aligned the way the generator's training images were"
}
