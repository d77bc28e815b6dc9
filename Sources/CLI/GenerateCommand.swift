import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan generate`: images from seeds or latent files with a StyleGAN2 checkpoint.
struct GenerateCommand: Subcommand {
    static let name = "generate"
    static let summary = "render images from seeds or codes (StyleGAN2 or DCGAN)"
    static let usage =
        "--generator G.pt (--seeds 0-7 | --latents codes.npy [--space z|w|wplus]) --out DIR_OR_PNG"
    static let options: [OptionSpec] =
        generatorOptions + [
            .value("seeds", "LIST", "z seeds, e.g. 0-7 or 1,5,9 (one image each)"),
            .value("latents", "FILE", "codes: z or w (N, D), W+ (N, L, D) or (N, 1, L, D)"),
            .value("space", "NAME", "what --latents holds: z, w or wplus (required for 2-D files)"),
            .flag("broadcast", "repeat a w (N, D) over all layers (same as --space w)"),
            .value(
                "truncation", "PSI", "truncation ψ towards the mean w (1 = none)", default: "1"),
            .value(
                "truncation-center", "FILE",
                "the centre as (D) or (1, D) .npy instead of latent_avg"),
            .value("truncation-cutoff", "N", "truncate only the first N W+ rows (default: all)"),
            .value(
                "noise", "MODE", "noise inputs: const (stored maps), random or zero",
                default: "const"),
            .value("seed", "N", "seed for --noise random", default: "0"),
            .value("batch", "N", "images per generator run", default: "4"),
            .value(
                "out", "PATH", "a folder (000000.png, …) or one .png/.jpg (a grid when N > 1)"),
            .flag("grid", "with a folder --out, also write grid.png"),
            .value(
                "save-latents", "FILE",
                "write the codes used (W+ for StyleGAN2), N × L × D .npy"),
            .value("save-raw", "FILE", "write the unclamped float32 NCHW images .npy"),
        ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        _ = try args.required("generator")  // checked before anything loads
        let out = try checkOutput(args.required("out"), command: name, kind: .imageOrFolder)
        let psi = Float(try args.double("truncation")!)
        guard psi >= 0 else { throw UsageError("isfgan generate: --truncation must be ≥ 0") }
        let batch = try args.int("batch", range: 1...4096)!
        let noiseName = try args.required("noise")
        let noiseFile = noiseName.hasSuffix(".npz") ? noiseName : nil
        if noiseFile == nil { _ = try args.choice("noise", ["const", "random", "zero"]) }
        let noiseSeed = UInt64(try args.int("seed", range: 0...Int.max)!)
        if args.has("seeds") == args.has("latents") {
            throw UsageError("isfgan generate: give exactly one of --seeds and --latents")
        }

        let (loaded, _) = try loadGenerator(args, console: console)
        let styleGAN = loaded as? StyleGAN2Generator

        // Codes [N, layers, width] in the generator's editing space (W+ for StyleGAN2).
        var codes: Tensor = try GradMode.withoutGradients {
            if let seedText = args.string("seeds") {
                let seeds = try parseIntList(
                    seedText, flag: "seeds", command: name, maxCount: 100_000)
                let z = Tensor.concat(
                    seeds.map { Tensor.randn([1, loaded.codeWidth], seed: UInt64($0)) })
                if let g = styleGAN { return g.broadcast(g.map(z)) }
                return z.reshaped([seeds.count, 1, loaded.codeWidth])
            }
            let path = try args.required("latents")
            let raw = try NumPy.readTensor(URL(fileURLWithPath: path))
            var space = try args.choice("space", ["z", "w", "wplus"])
            if args.flag("broadcast") {
                if space == nil { space = "w" }
                guard space == "w" else {
                    throw UsageError(
                        "isfgan generate: --broadcast applies to w codes, not --space \(space!)")
                }
            }
            return try LatentFile.codes(raw, space: space, generator: loaded, file: path)
        }

        if psi != 1 {
            guard let g = styleGAN else {
                throw UsageError("isfgan generate: --truncation needs a StyleGAN2 generator")
            }
            let center: Tensor
            if let c = args.string("truncation-center") {
                let t = try NumPy.readTensor(URL(fileURLWithPath: c))
                guard t.count == g.codeWidth, t.rank <= 2 else {
                    throw UsageError(
                        "isfgan generate: --truncation-center \(c) has shape \(describe(t.shape)); "
                            + "expected (\(g.codeWidth)) or (1, \(g.codeWidth))")
                }
                center = t
            } else if let avg = g.latentAverage {
                center = avg
            } else {
                console.warn(
                    "the checkpoint has no latent_avg; truncating towards the mean of "
                        + "10 000 mapped z (seed 0)"
                )
                center = g.meanLatent()
            }
            let truncated = g.truncate(codes, psi: psi, center: center)
            if let cut = try args.int("truncation-cutoff", range: 0...g.codeLayers),
                cut < g.codeLayers
            {
                codes = g.mix(truncated, codes, crossover: cut)
            } else {
                codes = truncated
            }
        }

        let n = codes.shape[0]
        let explicitNoise = try noiseFile.map {
            try readNoiseMaps($0, generator: styleGAN, images: n)
        }
        var images: [Tensor] = []
        let progress = ProgressLine(console: console)
        for start in stride(from: 0, to: n, by: batch) {
            let end = min(n, start + batch)
            progress.update("rendering \(start)–\(end - 1) of \(n)")
            var mode: NoiseMode
            switch noiseName {
            case "random": mode = .random(seed: noiseSeed &+ UInt64(start))
            case "zero": mode = .zero
            default: mode = .constant
            }
            if let maps = explicitNoise {
                mode = .explicit(maps.map { $0.shape[0] == 1 ? $0 : $0.slice(0, start..<end) })
            }
            images.append(
                GradMode.withoutGradients {
                    loaded.render(codes.slice(0, start..<end), noise: mode)
                })
        }
        progress.finish()
        let all = Tensor.concat(images)  // [N, 3, S, S]

        if let p = args.string("save-latents") {
            try NumPy.write(codes, to: URL(fileURLWithPath: p))
        }
        if let p = args.string("save-raw") { try NumPy.write(all, to: URL(fileURLWithPath: p)) }
        try writeImages(all, to: out, grid: args.flag("grid"))
        console.err("wrote \(n) image\(n == 1 ? "" : "s") to \(out.path)")
    }
}

/// Reads explicit noise maps `noise_0` … from an `.npz`, checking each against the
/// generator's noise inputs: [1 or `images`, 1, H, W].
func readNoiseMaps(_ path: String, generator: StyleGAN2Generator?, images n: Int) throws -> [Tensor]
{
    guard let g = generator else {
        throw UsageError("isfgan generate: --noise \(path): noise maps need a StyleGAN2 generator")
    }
    var byName: [String: Tensor] = [:]
    for (name, array) in try NumPy.readArchive(URL(fileURLWithPath: path)) {
        byName[name] = array.tensor()
    }
    return try g.noiseShapes.enumerated().map { i, shape in
        let key = "noise_\(i)"
        guard let t = byName[key] else {
            throw UsageError(
                "isfgan generate: --noise \(path) has no '\(key)' (this generator takes "
                    + "noise_0 … noise_\(g.noiseShapes.count - 1))")
        }
        guard t.rank == 4, t.shape[0] == 1 || t.shape[0] == n,
            Array(t.shape.dropFirst()) == Array(shape.dropFirst())
        else {
            throw UsageError(
                "isfgan generate: --noise \(path): '\(key)' has shape \(describe(t.shape)); "
                    + "expected [1 or \(n), \(shape[1]), \(shape[2]), \(shape[3])]")
        }
        return t
    }
}

/// Writes images [N, 3, H, W]: a folder of 000000.png … (and grid.png when asked), or
/// one image file (a grid when N > 1).
func writeImages(_ images: Tensor, to out: URL, grid: Bool, columns: Int = 8) throws {
    let ext = out.pathExtension.lowercased()
    if ["png", "jpg", "jpeg"].contains(ext) {
        let single =
            images.shape[0] == 1
            ? images.reshaped(Array(images.shape.dropFirst()))
            : Image.grid(images, columns: columns, padding: 2, padValue: 1)
        try ImageIO.write(Image(tensor: single), to: out)
        return
    }
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    for i in 0..<images.shape[0] {
        let name = String(format: "%06d.png", i)
        try ImageIO.write(
            Image(tensor: images.slice(0, i..<(i + 1))), to: out.appendingPathComponent(name))
    }
    if grid {
        try ImageIO.write(
            Image(tensor: Image.grid(images, columns: columns)),
            to: out.appendingPathComponent("grid.png"))
    }
}
