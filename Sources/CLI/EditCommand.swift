import Formats
import Foundation
import Method
import Models
import TensorCore

/// What `edit`, `interpolate` and `sample` share: the generator, the ISF, the attribute
/// names and the selected source codes with their labels.
struct EditSession {
    let command: String
    let generator: any ImageGenerator
    let editor: Editor
    let names: AttributeNames
    /// Selected source codes `[N, layers, width]`.
    let codes: Tensor
    /// The rows of the latent file they came from.
    let indices: [Int]
    /// The number of codes in that file (a label file should have as many rows).
    let codeRows: Int
    let console: Console

    /// The source labels of the one input that `interpolate` and `sample` take.
    static let singleSourceOptions: [OptionSpec] = [
        .value(
            "source", "LIST",
            "source attributes, e.g. 1,1,0,0 (1 = what the training labels called 1) "
                + "(default: none)"),
        .value(
            "labels", "FILE",
            "CelebA-style attribute list; the input takes its data row (default: none)"),
    ]

    /// Options every editing command takes.
    static let commonOptions: [OptionSpec] =
        generatorOptions + [
            .value(
                "isf", "FILE",
                "ISF: official NNNNNN_nets_ema.ckpt / _nets.ckpt (mapnet entry) or an isfgan "
                    + ".safetensors ISF file"),
            .flag(
                "residual",
                "the official checkpoint was trained with --use_residual 1 (keys cannot show it; "
                    + "isfgan files record it) (default: off)"),
            .value(
                "attributes", "LIST",
                "attribute names in target order, e.g. Gender,Glasses,Age,Expression (default: "
                    + "the ISF file's names, else the official four for a 4-attribute ISF)"),
            .value(
                "latents", "FILE",
                "source codes .npy: (N, L, D), (N, 1, L, D), (L, D), or (N, D) with --space"),
            .value(
                "space", "NAME",
                "what a 2-D --latents holds: w (repeated over rows), z (mapped first), wplus "
                    + "(default: wplus for 3-D/4-D files; required for (N, D) unless the "
                    + "generator takes one code row, as the DCGAN does)"),
            .value("index", "LIST", "rows of --latents to use, e.g. 0,5,9 or 0-3 (default: all)"),
            .value(
                "truncation", "PSI",
                "truncate the source codes towards the mean w first (1 = none)", default: "1"),
            .value(
                "keep-layers", "MODE",
                "W+ rows copied back from the source after the edit: none, official (the "
                    + "authors' per-attribute rows; 18-layer generators only) or ranges such as "
                    + "0-3,8-17 (inclusive)", default: "none"),
            .value(
                "noise", "MODE", "noise inputs: const (stored maps), random or zero",
                default: "const"),
            .value("noise-seed", "N", "seed for --noise random", default: "0"),
            .value("batch", "N", "codes per generator run", default: "4"),
        ]

    /// Help paragraph on what attribute values mean, shown with each command's usage.
    static let valueNote =
        "Target values are 0 or 1 per attribute; what 1 means (e.g. male, old, smiling) is "
        + "whatever the training labels meant. Values in between are an extrapolation the "
        + "network was not trained for."

    /// Loads the generator, the ISF and the codes, and checks that they fit together;
    /// `photo` gives the codes instead of `--latents` (`edit --image`).
    static func open(
        _ args: ParsedArguments, command: String, console: Console,
        photo: ((any ImageGenerator, URL) throws -> Tensor)? = nil
    ) throws -> EditSession {
        let generatorPath = try args.required("generator")
        let isfPath = try args.required("isf")
        let latentsPath = photo == nil ? try args.required("latents") : "the photo"
        _ = try args.int("batch", range: 1...4096)
        _ = try args.choice("noise", ["const", "random", "zero"])
        let psi = Float(try args.double("truncation")!)
        guard psi >= 0 else { throw UsageError("isfgan \(command): --truncation must be ≥ 0") }

        let (generator, generatorURL) = try loadGenerator(args, console: console)
        let isf = try LoadedISF.load(URL(fileURLWithPath: isfPath), residual: args.flag("residual"))
        console.err("isf: \(isf.network.config)")
        if let trained = isf.generatorSHA256 {
            let used = try SHA256.hexDigest(ofFile: generatorURL)
            if used != trained {
                console.warn(
                    "the ISF was trained with the generator of SHA-256 \(trained); "
                        + "\(generatorPath) has SHA-256 \(used). Edits may not keep what they "
                        + "should")
            }
        }
        let editor = try Editor(generator: generator, isf: isf.network)
        let given = args.string("attributes").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let names = try AttributeNames.resolve(
            given: given, recorded: isf.recordedAttributes, count: isf.network.config.attributes)

        var all: Tensor
        if let photo {
            all = try photo(generator, generatorURL)
        } else {
            let raw = try NumPy.readTensor(URL(fileURLWithPath: latentsPath))
            let space = try args.choice("space", ["w", "z", "wplus"])
            all = try LatentFile.codes(raw, space: space, generator: generator, file: latentsPath)
        }
        let count = all.shape[0]
        guard count > 0 else {
            throw UsageError("isfgan \(command): \(latentsPath) holds no codes")
        }
        var indices = Array(0..<count)
        if let text = args.string("index") {
            indices = try parseIntList(text, flag: "index", command: command)
            if let bad = indices.first(where: { $0 < 0 || $0 >= count }) {
                throw UsageError(
                    "isfgan \(command): --index \(bad) is out of range; \(latentsPath) has "
                        + "\(count) code\(count == 1 ? "" : "s") (0-\(count - 1))")
            }
        }
        guard !indices.isEmpty else { throw UsageError("isfgan \(command): --index is empty") }
        if psi != 1 {
            guard let sg = generator as? StyleGAN2Generator else {
                throw UsageError(
                    "isfgan \(command): --truncation needs a StyleGAN2 generator")
            }
            let center = sg.latentAverage ?? GradMode.withoutGradients { sg.meanLatent() }
            if sg.latentAverage == nil {
                console.warn(
                    "the checkpoint has no latent_avg; truncating towards the mean "
                        + "of 10 000 mapped z (seed 0)")
            }
            all = sg.truncate(all, psi: psi, center: center)
        }
        let codes = all.indexSelect(indices)  // [N, L, D]
        return EditSession(
            command: command, generator: generator, editor: editor, names: names,
            codes: codes, indices: indices, codeRows: all.shape[0], console: console)
    }

    var inputs: Int { codes.shape[0] }
    var attributeCount: Int { names.names.count }

    func noise(_ args: ParsedArguments) throws -> NoiseMode {
        switch try args.choice("noise", ["const", "random", "zero"])! {
        case "random": return .random(seed: UInt64(try args.int("noise-seed", range: 0...Int.max)!))
        case "zero": return .zero
        default: return .constant
        }
    }

    /// Source labels `[N, D]` from `--source` (one vector for all inputs) or `--labels`
    /// (each input's row); nil when neither is given.
    func sourceLabels(_ args: ParsedArguments) throws -> Tensor? {
        if args.has("source") && args.has("labels") {
            throw UsageError("isfgan \(command): give --source or --labels, not both")
        }
        if let text = args.string("source") {
            let parts = text.split(separator: ",").map {
                Float($0.trimmingCharacters(in: .whitespaces))
            }
            guard parts.count == attributeCount, parts.allSatisfy({ $0?.isFinite == true })
            else {
                throw UsageError(
                    "isfgan \(command): --source '\(text)': expected \(attributeCount) "
                        + "comma-separated values (\(names.names.joined(separator: ", ")))")
            }
            let row = parts.map { $0! }
            return Tensor(
                shape: [inputs, attributeCount], Array(repeating: row, count: inputs).flatMap { $0 }
            )
        }
        if let path = args.string("labels") {
            let file = try AttributeLabelFile(contentsOf: URL(fileURLWithPath: path))
            if file.rows.count != codeRows {
                // Rows are matched by position: a different count usually means the label
                // file of another split (train against test codes).
                console.warn(
                    "\(path) has \(file.rows.count) label rows for \(codeRows) codes; rows are "
                        + "matched to codes by position")
            }
            return try file.labels(rows: indices, attributes: names, file: path)
        }
        return nil
    }

    /// Warns once when targets are not all 0 or 1.
    func checkTargetValues(_ targets: Tensor, console: Console) {
        if targets.scalars.contains(where: { $0 != 0 && $0 != 1 }) {
            console.warn(
                "some target values are not 0 or 1: an extrapolation the ISF was not trained for")
        }
    }

    /// Random vectors `[N, S, rnd]` from `--z` or drawn from `--seed`.
    func randomVectors(_ args: ParsedArguments, inputs n: Int, styles: Int?) throws -> Tensor {
        let rnd = editor.isf.config.randomWidth
        if let path = args.string("z") {
            let raw = try NumPy.readTensor(URL(fileURLWithPath: path))
            return try LatentFile.randomVectors(
                raw, inputs: n, styles: args.has("styles") ? styles : nil, width: rnd, file: path)
        }
        let seed = UInt64(try args.int("seed", range: 0...Int.max)!)
        var rng = RandomGenerator(seed: seed)
        return rng.normal([n, styles ?? 1, rnd])  // [N, S, rnd]
    }

    /// The kept rows for each input, given which attributes each input's edit changes.
    func keptRows(_ args: ParsedArguments, sources: Tensor?, targets: Tensor) throws -> [[Int]] {
        let keep: KeepLayers
        do {
            keep = try KeepLayers.parse(try args.required("keep-layers"))
            try keep.validate(layers: generator.codeLayers, attributes: names)
        } catch let e as EditError {
            throw UsageError("isfgan \(command): \(e.message)")
        }
        let n = targets.shape[0]
        if keep == .official && sources == nil {
            throw UsageError(
                "isfgan \(command): --keep-layers official needs the source labels (--source "
                    + "or --labels) to know which attributes an edit changes")
        }
        let d = attributeCount
        let t = targets.scalars
        let s = sources?.scalars
        return (0..<n).map { i in
            let changed = (0..<d).filter { k in s.map { $0[i * d + k] != t[i * d + k] } ?? true }
            return keep.keptRows(changed: changed, layers: generator.codeLayers, attributes: names)
        }
    }
}

/// `isfgan edit`: set attributes of source codes with an ISF, several styles per input.
struct EditCommand: Subcommand {
    static let name = "edit"
    static let summary = "edit attributes of codes with a trained ISF, several styles per input"
    static let usage = """
        --generator G.pt --isf 050000_nets_ema.ckpt --latents codes.npy [--index 0,5,9]
                   ( (--source 1,1,0,0 | --labels list_attr.txt) --set gender=0 [--set …]
                   | --targets targets.npy ) [--styles 4] [--seed 7] [--z z.npy]
                   [--keep-layers none|official|RANGES] --out edits.png

        Writes a grid with one row per input: the source image, then one column per style.
        With --image photo.png instead of --latents, the photo's code is found first (as
        'isfgan invert' does, or from the cache) and the grid starts with the photo and its
        reconstruction.
        \(EditSession.valueNote)
        """
    static let options: [OptionSpec] =
        EditSession.commonOptions + [
            .value(
                "source", "LIST",
                "source attributes for every input, e.g. 1,1,0,0 (1 = what the training "
                    + "labels called 1) (default: none)"),
            .value(
                "labels", "FILE",
                "CelebA-style attribute list (count line, names, 'file v…' with ±1 or 0/1); "
                    + "input k takes data row k (default: none)"),
            .repeated(
                "set", "NAME=V",
                "change attribute NAME of every source vector to V (0 or 1) to make its "
                    + "target; names are case-insensitive (default: none)"),
            .value(
                "targets", "FILE",
                "full target vectors .npy, inputs × attributes, instead of --set "
                    + "(default: none)"),
            .value("styles", "N", "random styles (outputs) per input", default: "4"),
            .value("seed", "N", "seed for the random style vectors", default: "0"),
            .value(
                "z", "FILE",
                "random vectors .npy: inputs × styles × rnd (rows in --index order) or "
                    + "styles × rnd for every input (default: drawn from --seed)"),
            .value("out", "PATH", "grid image (.png/.jpg) or a folder of PNGs"),
            .value(
                "save-latents", "FILE",
                "write edited codes, inputs × styles × layers × width .npy (default: none)"),
            .value(
                "save-raw", "FILE",
                "write unclamped images, inputs × (1 + styles) × 3 × H × W .npy, source "
                    + "first (default: none)"),
        ] + LinearEdit.options + EditPhoto.options

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        if try LinearEdit.chosen(args) { return try LinearEdit.run(args, console) }
        let out = try checkOutput(args.required("out"), command: name, kind: .imageOrFolder)
        // The side files too, before any rendering.
        let latentsOut = try args.string("save-latents").map {
            try checkOutput($0, flag: "save-latents", command: name, kind: .file(["npy"]))
        }
        let rawOut = try args.string("save-raw").map {
            try checkOutput($0, flag: "save-raw", command: name, kind: .file(["npy"]))
        }
        let styles = try args.int("styles", range: 1...4096)!
        let batch = try args.int("batch", range: 1...4096)!
        if args.has("targets") && !args.strings("set").isEmpty {
            throw UsageError("isfgan edit: give --set or --targets, not both")
        }
        if !args.has("targets") && args.strings("set").isEmpty {
            throw UsageError("isfgan edit: say what to change with --set NAME=V or --targets FILE")
        }
        let photo = args.has("image") ? try EditPhoto(args, console: console) : nil
        let session = try EditSession.open(
            args, command: name, console: console, photo: photo?.codes(generator:url:))
        let n = session.inputs
        let d = session.attributeCount
        let sources = try session.sourceLabels(args)

        let targets: Tensor
        if let path = args.string("targets") {
            let t = try NumPy.readTensor(URL(fileURLWithPath: path))
            guard t.shape == [n, d] else {
                throw UsageError(
                    "isfgan edit: --targets \(path) has shape \(describe(t.shape)); expected "
                        + "(\(n), \(d)): one row per selected input, one column per attribute "
                        + "(\(session.names.names.joined(separator: ", ")))")
            }
            targets = t
        } else {
            guard let sources else {
                throw UsageError(
                    "isfgan edit: --set changes a source vector: give --source or --labels")
            }
            let sets: [(index: Int, value: Float)]
            do {
                sets = try session.names.assignments(args.strings("set"))
            } catch let e as EditError {
                throw UsageError("isfgan edit: \(e.message)")
            }
            var values = sources.scalars
            for i in 0..<n { for (k, v) in sets { values[i * d + k] = v } }
            targets = Tensor(shape: [n, d], values)
        }
        session.checkTargetValues(targets, console: console)
        let kept = try session.keptRows(args, sources: sources, targets: targets)
        let z = try session.randomVectors(args, inputs: n, styles: styles)

        let progress = ProgressLine(console: console)
        let result = try session.editor.edit(
            sources: session.codes, targets: targets, z: z, keptRows: kept, batch: batch,
            noise: try photo?.noiseMode() ?? session.noise(args), progress: progress.update)
        progress.finish()

        let s = z.shape[1]
        let images = result.images
        let shown = photo?.withPhotoColumn(images) ?? images  // [N, columns, 3, H, W]
        let flat = shown.reshaped([n * shown.shape[1]] + Array(images.shape.dropFirst(2)))
        if let latentsOut { try NumPy.write(result.codes, to: latentsOut) }
        if let rawOut { try NumPy.write(images, to: rawOut) }
        try writeImages(flat, to: out, grid: true, columns: shown.shape[1])
        console.err(
            "wrote \(n) input\(n == 1 ? "" : "s") × \(s) style\(s == 1 ? "" : "s") to \(out.path)")
    }
}
