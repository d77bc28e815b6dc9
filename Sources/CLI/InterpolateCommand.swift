import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan interpolate`: frames between the positive and the negative edit of one
/// attribute, as PNGs and an animated GIF.
struct InterpolateCommand: Subcommand {
    static let name = "interpolate"
    static let summary =
        "frames from the positive towards the negative edit of one attribute (+ GIF)"
    static let usage = """
        --generator G.pt --isf 050000_nets_ema.ckpt --latents codes.npy [--index 3]
                   (--source 1,1,0,0 | --labels list_attr.txt) --attribute gender
                   [--steps 20] [--seed 7 | --z z.npy] --out frames/

        Frame k shows (1 − α)·F(w, z, d⁺) + α·F(w, z, d⁻) with α = k/steps, where
        d⁺ and d⁻ are the source labels with the attribute set to 1 and to 0. As in the
        paper's figures, α stops at (steps − 1)/steps: the last frame is one step short
        of d⁻.
        \(EditSession.valueNote)
        """
    static let options: [OptionSpec] =
        EditSession.commonOptions + EditSession.singleSourceOptions + [
            .value("attribute", "NAME", "the attribute to sweep (name or 0-based index)"),
            .value("steps", "N", "frames", default: "20"),
            .value("seed", "N", "seed for the random style vector", default: "0"),
            .value("z", "FILE", "the style vector .npy, (rnd) or (1, rnd) (default: from --seed)"),
            .value("delay", "CS", "GIF frame time in hundredths of a second", default: "10"),
            .value(
                "out", "DIR",
                "folder for 000000.png … and interpolation.gif (created if missing)"),
            .value(
                "gif", "FILE", "where to write the GIF (default: OUT/interpolation.gif)"),
            .value(
                "save-latents", "FILE",
                "write the frames' codes, steps × layers × width .npy "
                    + "(default: none)"),
        ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let out = try checkOutput(args.required("out"), command: name, kind: .folder)
        let gifPath = try args.string("gif").map {
            try checkOutput($0, flag: "gif", command: name, kind: .file(["gif"]))
        }
        let steps = try args.int("steps", range: 1...10_000)!
        let delay = try args.int("delay", range: 0...65535)!
        let batch = try args.int("batch", range: 1...4096)!
        let attributeName = try args.required("attribute")
        let session = try EditSession.open(args, command: name, console: console)
        guard session.inputs == 1 else {
            throw UsageError(
                "isfgan interpolate: interpolates one input; select it with --index "
                    + "(\(session.inputs) selected)")
        }
        guard let labels = try session.sourceLabels(args) else {
            throw UsageError("isfgan interpolate: give the source labels with --source or --labels")
        }
        let attribute: Int
        do {
            attribute = try session.names.index(of: attributeName)
        } catch let e as EditError {
            throw UsageError("isfgan interpolate: \(e.message)")
        }
        let d = session.attributeCount
        var both = labels.scalars + labels.scalars
        both[attribute] = 1
        both[d + attribute] = 0
        let ends = Tensor(shape: [2, d], both)
        let kept = try session.keptRows(args, sources: labels.expanded(to: [2, d]), targets: ends)
        let rnd = session.editor.isf.config.randomWidth
        var z: Tensor
        if let path = args.string("z") {
            z = try NumPy.readTensor(URL(fileURLWithPath: path))
            guard z.count == rnd, z.rank <= 2 else {
                throw UsageError(
                    "isfgan interpolate: --z \(path) has shape \(describe(z.shape)); expected "
                        + "(\(rnd)) or (1, \(rnd))")
            }
        } else {
            var rng = RandomGenerator(seed: UInt64(try args.int("seed", range: 0...Int.max)!))
            z = rng.normal([rnd])
        }
        let source = session.codes.reshaped(Array(session.codes.shape.dropFirst()))  // [L, C]
        let codes = try session.editor.interpolation(
            source: source, labels: labels.reshaped([d]), attribute: attribute,
            z: z.reshaped([rnd]), steps: steps, keptRows: kept[0])

        let progress = ProgressLine(console: console)
        let images = session.editor.render(
            codes, batch: batch, noise: try session.noise(args)
        ) { done, total in progress.update("rendering \(done) of \(total)") }
        progress.finish()

        let frames = (0..<steps).map { Image(tensor: images.slice(0, $0..<($0 + 1))) }
        let gif = gifPath ?? out.appendingPathComponent("interpolation.gif")
        let gifBytes = try GIF.encode(frames, delay: delay, name: gif.path)
        if let p = args.string("save-latents") {
            try NumPy.write(codes, to: URL(fileURLWithPath: p))
        }
        try writeImages(images, to: out, grid: false)
        try AtomicFile.write(gifBytes, to: gif)
        console.err("wrote \(steps) frames and \(gif.lastPathComponent) to \(out.path)")
    }
}
