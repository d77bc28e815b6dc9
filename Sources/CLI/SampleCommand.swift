import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan sample`: several styles for each of several targets of one input, in one grid.
struct SampleCommand: Subcommand {
    static let name = "sample"
    static let summary = "several styles for each of several targets of one input, as a grid"
    static let usage = """
        --generator G.pt --isf 050000_nets_ema.ckpt --latents codes.npy [--index 3]
                   (--source 1,1,0,0 | --labels list_attr.txt)
                   --target gender=0 --target gender=0,age=1 … | --targets targets.npy
                   [--styles 8] [--seed 7] --out samples.png

        One grid row per target: the source image, then one column per style.
        \(EditSession.valueNote)
        """
    static let options: [OptionSpec] =
        EditSession.commonOptions + EditSession.singleSourceOptions + [
            .repeated(
                "target", "NAME=V,…",
                "one target: the source vector with these attributes changed (0 or 1); "
                    + "repeat for more rows (default: none)"),
            .value(
                "targets", "FILE",
                "full target vectors .npy, targets × attributes, instead of --target "
                    + "(default: none)"),
            .value("styles", "N", "random styles per target", default: "8"),
            .value("seed", "N", "seed for the random style vectors", default: "0"),
            .value(
                "z", "FILE",
                "random vectors .npy: targets × styles × rnd or styles × rnd for every "
                    + "target (default: drawn from --seed)"),
            .value("out", "PATH", "grid image (.png/.jpg) or a folder of PNGs"),
            .value(
                "save-latents", "FILE",
                "write edited codes, targets × styles × layers × width .npy (default: none)"),
            .value(
                "save-raw", "FILE",
                "write unclamped images, targets × (1 + styles) × 3 × H × W .npy "
                    + "(default: none)"),
        ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let out = try checkOutput(args.required("out"), command: name, kind: .imageOrFolder)
        let styles = try args.int("styles", range: 1...4096)!
        let batch = try args.int("batch", range: 1...4096)!
        let targetTexts = args.strings("target")
        if args.has("targets") == !targetTexts.isEmpty {
            throw UsageError("isfgan sample: give --target (one or more) or --targets, one of them")
        }
        let session = try EditSession.open(args, command: name, console: console)
        guard session.inputs == 1 else {
            throw UsageError(
                "isfgan sample: samples one input; select it with --index "
                    + "(\(session.inputs) selected)")
        }
        let d = session.attributeCount
        let labels = try session.sourceLabels(args)

        let targets: Tensor
        if let path = args.string("targets") {
            let t = try NumPy.readTensor(URL(fileURLWithPath: path))
            guard t.rank == 2, t.shape[1] == d, t.shape[0] >= 1 else {
                throw UsageError(
                    "isfgan sample: --targets \(path) has shape \(describe(t.shape)); expected "
                        + "(T, \(d)), one column per attribute")
            }
            targets = t
        } else {
            guard let labels else {
                throw UsageError(
                    "isfgan sample: --target changes the source labels: give "
                        + "--source or --labels")
            }
            var rows: [Float] = []
            for text in targetTexts {
                var row = labels.scalars
                guard text.contains(where: { !$0.isWhitespace && $0 != "," }) else {
                    throw UsageError("isfgan sample: --target '\(text)' sets nothing")
                }
                do {
                    for (k, v) in try session.names.assignments(
                        text.split(separator: ",").map(String.init), flag: "--target")
                    {
                        row[k] = v
                    }
                } catch let e as EditError {
                    throw UsageError("isfgan sample: \(e.message)")
                }
                rows += row
            }
            targets = Tensor(shape: [targetTexts.count, d], rows)
        }
        let t = targets.shape[0]
        session.checkTargetValues(targets, console: console)
        let sources = labels.map { $0.expanded(to: [t, d]).contiguous() }
        let kept = try session.keptRows(args, sources: sources, targets: targets)
        let z = try session.randomVectors(args, inputs: t, styles: styles)
        let codes = session.codes.expanded(to: [t] + Array(session.codes.shape.dropFirst()))

        let progress = ProgressLine(console: console)
        let result = try session.editor.edit(
            sources: codes.contiguous(), targets: targets, z: z, keptRows: kept, batch: batch,
            noise: try session.noise(args), progress: progress.update)
        progress.finish()

        let s = z.shape[1]
        let flat = result.images.reshaped([t * (1 + s)] + Array(result.images.shape.dropFirst(2)))
        if let p = args.string("save-latents") {
            try NumPy.write(result.codes, to: URL(fileURLWithPath: p))
        }
        if let p = args.string("save-raw") {
            try NumPy.write(result.images, to: URL(fileURLWithPath: p))
        }
        try writeImages(flat, to: out, grid: true, columns: 1 + s)
        console.err(
            "wrote \(t) target\(t == 1 ? "" : "s") × \(s) style\(s == 1 ? "" : "s") to "
                + out.path)
    }
}
