import Formats
import Foundation
import Method
import Models
import TensorCore

/// Set by SIGINT; the training loop stops after the current step when it is set.
nonisolated(unsafe) private var interruptRequested: Int32 = 0

/// `isfgan train`: trains an ISF (and its discriminator) on a frozen generator.
struct TrainCommand: Subcommand {
    static let name = "train"
    static let summary = "train an implicit style function on a generator and labelled codes"
    static let usage = """
        --generator G.pt --data DATA_DIR [--out runs] [--name NAME] [--iters 50000]
                    [--batch 4] [--lr 1e-5] [--lambda-cls 2 ...] [--seed 0]
                    | --resume runs/00003-NAME        [--dry-run]

        DATA_DIR is the official layout: DATA_DIR/{train,test}/*.png (name order),
        DATA_DIR/{train,test}/wp.npy (row i for the i-th image; w.npy or z.npy for
        single-code generators) and DATA_DIR/list_attr_celeba-{train,test}.txt (count,
        attribute names, then 'file v1 v2 ...'; only 1 counts as 1). Each run writes
        OUT/NNNNN-NAME/ (settings.json, log.txt, stats.jsonl, samples/, checkpoints/,
        final.safetensors). Ctrl-C stops after the current step and writes a checkpoint.
        """

    /// Options that change the experiment; `--resume` refuses them (the run's own apply).
    static let experimentOptions: [OptionSpec] =
        generatorOptions + [
            .value("data", "DIR", "training data in the official layout (see above)"),
            .value("name", "NAME", "run name, the folder's suffix", default: "isf"),
            .value("iters", "N", "training iterations", default: "50000"),
            .value("batch", "N", "batch size", default: "4"),
            .value("seed", "N", "seed of every random stream", default: "0"),
            .value(
                "training-size", "PX",
                "side where real and generated images meet (the discriminator's size) "
                    + "(default: 256, or the generator's size when smaller)"),
            .value("lr", "X", "peak learning rate of both networks", default: "1e-5"),
            .value("weight-decay", "X", "Adam's L2 weight decay", default: "1e-5"),
            .value("warmup", "N", "linear warm-up steps", default: "5000"),
            .value("warmup-lr", "X", "learning rate at the start of the warm-up", default: "5e-7"),
            .value("final-lr", "X", "learning rate the cosine reaches at the end", default: "5e-6"),
            .value("clip", "X", "gradient-norm clipping of both networks", default: "1"),
            .value("ema", "BETA", "moving-average β of the ISF weights", default: "0.999"),
            .value(
                "beta1", "X",
                "Adam's β1 for both networks (the official 0 follows each step's gradient; "
                    + "0.9 averages noisy ones)", default: "0"),
            .value("lambda-cls", "X", "attribute classification weight", default: "2"),
            .value("lambda-r1", "X", "R1 penalty weight", default: "1"),
            .value(
                "r1-target", "OUT",
                "output R1 differentiates: attributes (official) or realism (StarGAN v2)",
                default: "attributes"),
            .value("lambda-lat-cyc", "X", "latent cycle weight", default: "1"),
            .value("lambda-src-cyc", "X", "image cycle weight", default: "1"),
            .value("lambda-ds", "X", "diversity-sensitive weight (subtracted)", default: "2"),
            .value(
                "ds-decay", "N",
                "decay the diversity weight linearly to 0 over N steps (default: constant, as "
                    + "the official code)"),
            .value(
                "ds-cap", "X",
                "count each sample's diversity pixel distance only up to X (default: "
                    + "unbounded, as the official code)"),
            .value(
                "cls-views", "N",
                "average the ISF's classification term over N views of the edit: itself, "
                    + "its mirror, shifted copies (1: official)", default: "1"),
            .value("view-shift", "PX", "largest shift of those views", default: "4"),
            .value("lambda-nb", "X", "neighbouring constraint weight", default: "0.01"),
            .value("lambda-lpips", "X", "perceptual content weight", default: "1"),
            .value("lambda-lpips-cyc", "X", "perceptual cycle weight", default: "1"),
            .value(
                "pos-weight", "LIST",
                "BCE pos_weight per attribute: comma-separated numbers, ffhq or none (default: "
                    + "DATA/dataset.json's when present, else "
                    + "ffhq for 4 attributes, else none)"),
            .value(
                "d-pos-weight", "LIST",
                "pos_weight of the discriminator's attribute loss on real images: as "
                    + "--pos-weight, or data for DATA/dataset.json's (default: --pos-weight)"),
            .value(
                "perceptual", "NET",
                "perceptual network: stlpips-alex, stlpips-vgg, lpips:FILE, "
                    + "lpips:BACKBONE,HEADS or none (default: stlpips-alex when fetched, else none)"
            ),
            .value(
                "noise", "MODE", "generator noise: random (official), const or zero",
                default: "random"),
            .value("rnd-dim", "N", "width of the ISF's random style vector", default: "64"),
            .value("pre-norm", "0|1", "ISF LayerNorm before each Linear", default: "1"),
            .value("norm-type", "NAME", "ISF norm: adaln, adain or none", default: "adaln"),
            .flag("residual", "ISF adds the source code to its output (default: off)"),
            .flag(
                "zero-last-layer",
                "ISF's last layer starts at zero, so with --residual training starts from the "
                    + "identity (default: off)"),
            .value(
                "d-pretrain", "N",
                "first N of the iterations train only the discriminator's attribute head on the "
                    + "labelled images (default: 0)"),
            .value(
                "d-pretrain-lr", "X", "constant learning rate of those steps", default: "1e-3"),
            .value("d-pretrain-batch", "N", "real images per pre-training step (default: --batch)"),
            .value(
                "d-pretrain-r1", "X",
                "R1 penalty weight on the attribute output during the --d-pretrain steps",
                default: "0"),
            .flag(
                "soft-labels",
                "the attribute head learns the data's soft labels (SPLIT/soft_labels.npy: the "
                    + "classifiers' confidence) instead of the hard ones (default: off)"),
            .value(
                "d-from", "RUN",
                "start the discriminator from a training checkpoint or run folder's last one"),
            .value(
                "isf-from", "FILE",
                "start the ISF from an ISF file, or the averaged ISF of a training checkpoint "
                    + "or run folder's last one (its settings must match this run's)"),
            .value("d-max-width", "N", "discriminator max_conv_dim", default: "512"),
            .value(
                "d-first-width", "N",
                "discriminator's first width (default: the official 2^14 / training size)"),
            .value("d-init", "NAME", "discriminator init: pytorch or he", default: "pytorch"),
            .value(
                "log-every", "N", "steps between stats lines (and plain status lines)",
                default: "100"),
            .value(
                "sample-every", "N", "steps between sample grids (0: only at the end)",
                default: "1000"),
            .value(
                "save-every", "N", "steps between checkpoints (0: only at the end)", default: "1000"
            ),
            .value("keep-checkpoints", "N", "checkpoints kept (0: all)", default: "3"),
        ]

    static let options: [OptionSpec] =
        experimentOptions + [
            .value("out", "DIR", "folder of the numbered run folders", default: "runs"),
            .value("resume", "RUN", "continue this run folder from its last checkpoint"),
            .flag("dry-run", "print the resolved settings, parameter counts and step time"),
        ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let perceptualGiven = args.has("perceptual")
        var settings: TrainingSettings
        var resumeFolder: URL?
        if let resume = args.string("resume") {
            let given = experimentOptions.filter { args.has($0.name) }.map { "--" + $0.name }
            guard given.isEmpty else {
                throw UsageError(
                    "isfgan train: --resume continues a run with its recorded settings; "
                        + "\(given.joined(separator: ", ")) cannot be changed")
            }
            let folder = URL(fileURLWithPath: resume)
            settings = try TrainingRun.settings(ofRun: folder)
            resumeFolder = folder
        } else {
            settings = try resolveSettings(args)
        }

        let generatorURL = URL(fileURLWithPath: settings.generator)
        guard FileManager.default.fileExists(atPath: generatorURL.path) else {
            throw TrainingError.badRun("generator file \(generatorURL.path) does not exist")
        }
        let checksum = try SHA256.hexDigest(ofFile: generatorURL)
        if resumeFolder != nil, !settings.generatorSHA256.isEmpty,
            settings.generatorSHA256 != checksum
        {
            throw TrainingError.badRun(
                "the run was trained with the generator of SHA-256 \(settings.generatorSHA256); "
                    + "\(generatorURL.path) now has SHA-256 \(checksum)")
        }
        settings.generatorSHA256 = checksum
        let generator = try GeneratorLoader.load(
            kind: try generatorKind(settings.generatorKind),
            url: generatorURL, key: settings.generatorKey, warn: console.warn)
        console.err("generator: \(generator.summary)")
        let data = try TrainingDataset.read(URL(fileURLWithPath: settings.data))
        try data.check(generator: generator)

        if resumeFolder == nil {
            try resolveAgainstData(&settings, args, data: data, generator: generator, console)
        }
        let perceptual = try loadPerceptual(
            &settings, explicit: perceptualGiven || resumeFolder != nil, console: console)
        let trainer = try Trainer(
            settings: settings, data: data, generator: generator, perceptual: perceptual,
            warmStart: resumeFolder == nil)

        if args.flag("dry-run") {
            try dryRun(trainer, console)
            return
        }

        let run: TrainingRun
        if let folder = resumeFolder {
            run = try TrainingRun.resume(trainer, folder: folder)
            console.err("resuming \(folder.path) at step \(trainer.step)")
        } else {
            run = try TrainingRun.start(
                trainer, out: checkOutput(args.required("out"), command: name, kind: .folder))
            console.err("run folder: \(run.folder.path)")
        }

        interruptRequested = 0
        let previous = signal(SIGINT) { _ in
            // A second Ctrl-C ends the process at once.
            if interruptRequested != 0 { _exit(130) }
            interruptRequested = 1
        }
        defer { signal(SIGINT, previous) }

        let progress = ProgressLine(console: console)
        let outcome = try run.run(
            shouldStop: { interruptRequested != 0 },
            progress: { p in
                let line = statusLine(p)
                if console.isTerminal {
                    progress.update(line)
                } else if p.done % settings.logEvery == 0 || p.done == p.total || p.done == 1 {
                    console.err(line)
                }
            })
        progress.finish()
        switch outcome {
        case .finished:
            console.out("finished \(settings.iterations) iterations: \(run.finalURL.path)")
        case .stopped(let step):
            console.out(
                "stopped at step \(step); continue with: isfgan train --resume \(run.folder.path)")
            // Not 0: a script that runs `train && export` must not go on with half a run.
            throw ExitStatus(code: 130)
        }
    }

    static func generatorKind(_ name: String) throws -> GeneratorKind {
        guard let kind = GeneratorKind(rawValue: name) else {
            throw TrainingError.badSettings(
                "generator kind '\(name)' is not one of "
                    + GeneratorKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return kind
    }

    /// `step 120/50000  2.31 it/s  left 6h01m  D 3.12  F 5.40  cls 1.21  lr 1.2e-06`
    static func statusLine(_ p: TrainingProgress) -> String {
        let v = p.record.values
        func f(_ k: String) -> String { String(format: "%.3f", v[k] ?? .nan) }
        // Attribute accuracies of the discriminator on the batch's real images.
        let accuracy = v.keys.filter { $0.hasPrefix("d_acc_real_") }.sorted()
            .map { "\($0.dropFirst("d_acc_real_".count)) \(String(format: "%.2f", v[$0]!))" }
            .joined(separator: " ")
        let losses =
            v["d_pre_cls"] != nil
            ? "D pre-training: cls \(f("d_pre_cls"))"
            : "D \(f("d_total"))  F \(f("g_total"))  cls \(f("cls"))  adv \(f("adv"))"
        return "step \(p.done)/\(p.total)  "
            + String(format: "%.2f it/s", p.stepsPerSecond) + "  left \(duration(p.secondsLeft))  "
            + losses + (accuracy.isEmpty ? "" : "  D acc " + accuracy) + "  "
            + String(format: "lr %.2e", p.record.learningRate)
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        if t >= 3600 { return String(format: "%dh%02dm", t / 3600, t % 3600 / 60) }
        if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return "\(t)s"
    }

    /// The settings the command line gives (before the data and generator are known).
    static func resolveSettings(_ args: ParsedArguments) throws -> TrainingSettings {
        var generator = try args.required("generator")
        if generator == "dcgan" {
            // The fetched face generator; the run records its path, so resume finds it.
            generator = try ModelStore().locate(.dcganFace).path
        }
        var s = TrainingSettings(generator: generator, data: try args.required("data"))
        s.generatorKey = args.string("key")
        s.generatorKind = try args.choice(
            "generator-kind", GeneratorKind.allCases.map(\.rawValue))!
        s.perceptual = args.string("perceptual") ?? "stlpips-alex"
        guard
            ["none", "stlpips-alex", "stlpips-vgg"].contains(s.perceptual)
                || (s.perceptual.hasPrefix("lpips:") && s.perceptual.count > 6)
        else {
            throw UsageError(
                "isfgan train: --perceptual must be stlpips-alex, stlpips-vgg, lpips:FILE, "
                    + "lpips:BACKBONE,HEADS or none, got '\(s.perceptual)'")
        }
        s.name = try args.required("name")
        guard !s.name.isEmpty, !s.name.contains("/") else {
            throw UsageError("isfgan train: --name must be a non-empty name without '/'")
        }
        s.iterations = try args.int("iters", range: 1...100_000_000)!
        s.batch = try args.int("batch", range: 1...4096)!
        guard let seed = UInt64(try args.required("seed")) else {
            throw UsageError("isfgan train: --seed expects a non-negative integer")
        }
        s.seed = seed
        func number(_ name: String, min: Double = 0) throws -> Double {
            let v = try args.double(name)!
            guard v >= min else {
                throw UsageError("isfgan train: --\(name) must be at least \(min), got \(v)")
            }
            // Weights and rates are stored as Float: 1e300 would become infinity.
            guard Float(v).isFinite else {
                let most = Float.greatestFiniteMagnitude
                throw UsageError("isfgan train: --\(name) \(v) is too large (at most \(most))")
            }
            return v
        }
        s.learningRate = try number("lr")
        s.weightDecay = Float(try number("weight-decay"))
        s.warmupSteps = try args.int("warmup", range: 0...100_000_000)!
        s.warmupStart = try number("warmup-lr")
        s.finalLearningRate = try number("final-lr")
        s.clipNorm = Float(try number("clip"))
        guard s.clipNorm > 0 else { throw UsageError("isfgan train: --clip must be positive") }
        s.averageBeta = Float(try number("ema"))
        guard s.averageBeta <= 1 else { throw UsageError("isfgan train: --ema must be in 0...1") }
        s.beta1 = Float(try number("beta1"))
        guard s.beta1 < 1 else { throw UsageError("isfgan train: --beta1 must be in 0..<1") }
        var o = ObjectiveSettings()
        o.classification = Float(try number("lambda-cls"))
        o.r1 = Float(try number("lambda-r1"))
        o.r1Target =
            try args.choice("r1-target", ["attributes", "realism"]) == "realism"
            ? .realism : .attributes
        o.latentCycle = Float(try number("lambda-lat-cyc"))
        o.imageCycle = Float(try number("lambda-src-cyc"))
        o.diversity = Float(try number("lambda-ds"))
        o.diversityDecaySteps = try args.int("ds-decay", range: 1...100_000_000)
        if let cap = try args.double("ds-cap") {
            guard Float(cap) > 0, Float(cap).isFinite else {
                throw UsageError(
                    "isfgan train: --ds-cap must be a finite number above 0, got \(cap)")
            }
            o.diversityCap = Float(cap)
        }
        o.classificationViews = try args.int("cls-views", range: 1...8)!
        o.viewShift = try args.int("view-shift", range: 0...16)!
        o.neighbour = Float(try number("lambda-nb"))
        o.perceptual = Float(try number("lambda-lpips"))
        o.perceptualCycle = Float(try number("lambda-lpips-cyc"))
        s.objective = o
        s.noise = try args.choice("noise", ["random", "const", "zero"])!
        s.randomWidth = try args.int("rnd-dim", range: 1...65536)!
        s.preNorm = try args.choice("pre-norm", ["0", "1"]) == "1"
        s.normType = ISFNormType(
            rawValue: try args.choice("norm-type", ["adaln", "adain", "none"])!)!
        s.residual = args.flag("residual")
        if args.flag("zero-last-layer") { s.zeroOutputLayer = true }
        s.initialDiscriminator = args.string("d-from")
        s.initialISF = args.string("isf-from")
        if args.flag("soft-labels") { s.softLabels = true }
        if let n = try args.int("d-pretrain", range: 0...100_000_000), n > 0 {
            guard n < s.iterations else {
                throw UsageError(
                    "isfgan train: --d-pretrain (\(n)) must be below --iters (\(s.iterations)): "
                        + "the pre-training steps are the first of the run's iterations")
            }
            s.discriminatorPretrainSteps = n
            s.discriminatorPretrainLearningRate = try number("d-pretrain-lr")
            s.discriminatorPretrainBatch = try args.int("d-pretrain-batch", range: 1...4096)
            let r1 = try number("d-pretrain-r1")
            if r1 > 0 { s.discriminatorPretrainR1 = Float(r1) }
        }
        s.discriminatorMaxWidth = try args.int("d-max-width", range: 1...65536)!
        s.discriminatorFirstWidth = try args.int("d-first-width", range: 1...65536)
        s.discriminatorInit =
            try args.choice("d-init", ["pytorch", "he"]) == "he" ? .he : .pytorchDefault
        s.logEvery = try args.int("log-every", range: 1...100_000_000)!
        s.sampleEvery = try args.int("sample-every", range: 0...100_000_000)!
        s.saveEvery = try args.int("save-every", range: 0...100_000_000)!
        s.keepCheckpoints = try args.int("keep-checkpoints", range: 0...1_000_000)!
        return s
    }

    /// The `pos_weight` that `isfgan dataset` wrote into `DATA/dataset.json`, in the order
    /// of `attributes`; nil when the file is absent or has none of them. An attribute it
    /// has no ratio for (one class only in the split) weighs 1, with a warning.
    static func datasetPositiveWeights(
        data: TrainingDataset, attributes: [String], _ console: Console
    ) throws -> [Float]? {
        guard let found = try recordedPositiveWeights(data: data, attributes: attributes),
            found.contains(where: { $0 != nil })
        else { return nil }
        let missing = zip(attributes, found).filter { $0.1 == nil }.map(\.0)
        if !missing.isEmpty {
            console.warn(
                "\(data.root.path)/dataset.json has no pos_weight for "
                    + missing.joined(separator: ", ")
                    + " (one class only in its training split): it weighs 1")
        }
        return found.map { $0 ?? 1 }
    }

    /// Each attribute's recorded `pos_weight` (nil where none is recorded); nil when
    /// `DATA/dataset.json` is absent.
    static func recordedPositiveWeights(data: TrainingDataset, attributes: [String]) throws
        -> [Float?]?
    {
        let url = data.root.appendingPathComponent("dataset.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let summary: DatasetSummary
        do {
            summary = try JSONDecoder().decode(DatasetSummary.self, from: Data(contentsOf: url))
        } catch {
            throw UsageError(
                "isfgan train: \(url.path) is not a dataset summary: \(describeDecoding(error))")
        }
        return attributes.map { name in
            guard let w = summary.posWeight[name] ?? nil, w > 0, Float(w).isFinite else {
                return nil
            }
            return Float(w)
        }
    }

    /// One positive number per attribute from `--FLAG a,b,…`.
    static func weightList(
        _ text: String, flag: String, _ attributes: [String], or others: String = "ffhq or none"
    ) throws -> [Float] {
        let parts = text.split(separator: ",").map {
            Float($0.trimmingCharacters(in: .whitespaces))
        }
        guard parts.count == attributes.count,
            parts.allSatisfy({ $0 != nil && $0! > 0 && $0!.isFinite })
        else {
            throw UsageError(
                "isfgan train: --\(flag) expects \(attributes.count) positive numbers (one per "
                    + "attribute: \(attributes.joined(separator: ", "))), \(others); got "
                    + "'\(text)'")
        }
        return parts.map { $0! }
    }

    /// What depends on the data and the generator: attributes, pos_weight, training size.
    static func resolveAgainstData(
        _ s: inout TrainingSettings, _ args: ParsedArguments, data: TrainingDataset,
        generator: ImageGenerator, _ console: Console
    ) throws {
        s.attributes = data.attributeNames
        let d = s.attributes.count
        switch args.string("pos-weight") {
        case nil:
            if let fromData = try datasetPositiveWeights(
                data: data, attributes: s.attributes, console)
            {
                // What `isfgan dataset` measured on this data's training split.
                s.objective.positiveWeights = fromData
                console.err(
                    "pos_weight from dataset.json: "
                        + zip(s.attributes, fromData).map { "\($0) \($1)" }.joined(separator: ", "))
            } else if d == ObjectiveSettings.ffhqPositiveWeights.count {
                s.objective.positiveWeights = ObjectiveSettings.ffhqPositiveWeights
            } else {
                s.objective.positiveWeights = nil
                console.warn(
                    "\(d) attributes: the official FFHQ pos_weight does not apply; every "
                        + "positive label weighs 1 (set --pos-weight to change)")
            }
        case "ffhq"?:
            s.objective.positiveWeights = ObjectiveSettings.ffhqPositiveWeights
        case "none"?:
            s.objective.positiveWeights = nil
        case let text?:
            s.objective.positiveWeights = try weightList(text, flag: "pos-weight", s.attributes)
        }
        switch args.string("d-pos-weight") {
        case nil: break
        case "data"?:
            guard
                let fromData = try datasetPositiveWeights(
                    data: data, attributes: s.attributes, console)
            else {
                throw UsageError(
                    "isfgan train: --d-pos-weight data: \(data.root.path)/dataset.json is "
                        + "missing or records no pos_weight for "
                        + s.attributes.joined(separator: ", "))
            }
            s.objective.discriminatorPositiveWeights = fromData
        case "ffhq"?:
            s.objective.discriminatorPositiveWeights = ObjectiveSettings.ffhqPositiveWeights
        case "none"?:
            s.objective.discriminatorPositiveWeights = [Float](repeating: 1, count: d)
        case let text?:
            s.objective.discriminatorPositiveWeights = try weightList(
                text, flag: "d-pos-weight", s.attributes, or: "ffhq, data or none")
        }
        if let size = try args.int("training-size", range: 4...16384) {
            guard size & (size - 1) == 0 else {
                throw UsageError(
                    "isfgan train: --training-size must be a power of two, got \(size)")
            }
            s.trainingSize = size
        } else {
            s.trainingSize = min(256, generator.imageSize)
        }
        try s.validate()
    }

    /// Builds the perceptual network the settings name; an ST-LPIPS default whose weights
    /// are not fetched falls back to `none` with a warning (an explicit choice fails).
    static func loadPerceptual(
        _ s: inout TrainingSettings, explicit: Bool, console: Console
    ) throws -> PerceptualLoss? {
        let choice = s.perceptual
        let net: PerceptualLoss?
        var side: Int?
        switch choice {
        case "none":
            return nil
        case "stlpips-alex", "stlpips-vgg":
            let backbone: STLPIPSBackbone = choice == "stlpips-alex" ? .alex : .vgg
            do {
                let m = try STLPIPS.load(backbone)
                side = m.minimumSide
                net = m
            } catch {
                if !explicit {
                    console.warn(
                        "ST-LPIPS (\(choice)) is not available (\(error)); training without "
                            + "the two perceptual terms (--perceptual none). Run "
                            + "scripts/fetch-models, or give --perceptual lpips:FILE")
                    s.perceptual = "none"
                    return nil
                }
                throw TrainingError.notAvailable(
                    "--perceptual \(choice): the ST-LPIPS weights are not available: \(error). "
                        + "Run scripts/fetch-models, or choose lpips:FILE or none")
            }
        case let c where c.hasPrefix("lpips:"):
            let files = c.dropFirst(6).split(separator: ",").map {
                URL(fileURLWithPath: String($0))
            }
            switch files.count {
            case 1: net = try LPIPS.load(contentsOf: files[0])
            case 2: net = try LPIPS.load(backbone: files[0], heads: files[1])
            default:
                throw UsageError("isfgan train: --perceptual lpips: takes FILE or BACKBONE,HEADS")
            }
        default:
            throw UsageError(
                "isfgan train: --perceptual must be stlpips-alex, stlpips-vgg, lpips:FILE or "
                    + "none, got '\(choice)'")
        }
        if let side, s.trainingSize < side {
            throw TrainingError.badSettings(
                "--perceptual \(choice) needs images of at least \(side) px, the training size "
                    + "is \(s.trainingSize); choose --perceptual none or a larger --training-size")
        }
        return net
    }

    /// `--dry-run`: the settings, the parameter counts and one timed step (thrown away).
    static func dryRun(_ trainer: Trainer, _ console: Console) throws {
        console.out(trainer.settings.json(pretty: true))
        let counts = trainer.parameterCounts
        console.out("ISF parameters: \(counts.isf) (\(trainer.isf.config))")
        console.out(
            "discriminator parameters: \(counts.discriminator) (\(trainer.discriminator.config))")
        if let g = counts.generator {
            console.out("generator parameters: \(g) (frozen; \(trainer.generator.summary))")
        }
        console.out(
            "training data: \(trainer.data.train.count) training samples, "
                + "\(trainer.data.test?.count ?? 0) held-out; attributes "
                + trainer.settings.attributes.joined(separator: ", "))
        console.err("timing one step (not saved)…")
        _ = try trainer.trainStep()  // the first step builds oneDNN's primitives
        let r = try trainer.trainStep()
        let total = r.seconds * Double(trainer.settings.iterations)
        console.out(
            String(
                format: "estimated step time: %.2f s (generator forward %.0f%%); ", r.seconds,
                100 * r.generatorSeconds / max(r.seconds, 1e-9))
                + "\(trainer.settings.iterations) iterations ≈ \(duration(total))")
    }
}
