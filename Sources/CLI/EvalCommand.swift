import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan eval`: measure editing quality as the paper does (attribute accuracy,
/// preservation, content distance, diversity, realism) for an ISF and the linear
/// baseline on the same held-out inputs, targets and classifier.
struct EvalCommand: Subcommand {
    static let name = "eval"
    static let summary = "measure an ISF's edits against the linear baseline (accuracy, content…)"
    static let usage = """
        --generator dcgan --isf RUN/final.safetensors --data DATA --out reports/X
                   [--methods isf,linear] [--linear linear.safetensors] [--inputs 500]
                   [--styles 10] [--repeats 3] [--official-pairs] [--perceptual stlpips-alex]

        For N held-out codes of DATA's test split, each attribute and each target value
        (set to 1, set to 0), each method edits every input (the ISF with K styles, the
        linear method once) and the classifiers read the edits with the rule that labelled
        DATA (DATA/dataset.json). Accuracy, preservation, content distance and diversity are
        taken over the flips (inputs whose source value differs from the target); the no-op
        cases are reported apart in report.json. Realism is the Fréchet distance between
        ST-LPIPS VGG features (last tap, spatial mean: 512 numbers) of the edits and of
        generated training images labelled with the target value: "FD over ST-LPIPS VGG
        features", not FID. Without --linear the baseline is fitted on DATA's train split
        and saved as OUT/linear.safetensors.

        Writes OUT/report.json (every number, the settings, SHA-256 checksums), OUT/report.svg
        (accuracy against content distance) and OUT/grid.png (a few inputs edited by each
        method), and prints the table. Interrupted runs continue from OUT/.progress when the
        same command is given again; a finished run removes it.
        """
    static let options: [OptionSpec] =
        generatorOptions + [
            .value("isf", "FILE", "ISF file (.safetensors) or official checkpoint (for isf)"),
            .flag("residual", "the official ISF checkpoint was trained with --use_residual 1"),
            .value("data", "DIR", "dataset folder made by isfgan dataset (test split required)"),
            .value("methods", "LIST", "methods to measure: isf, linear", default: "isf,linear"),
            .value(
                "linear", "FILE",
                "linear boundaries from isfgan baseline fit (default: fit on DATA's train "
                    + "split, saved as OUT/linear.safetensors)"),
            .flag("conditional", "fit the conditional linear baseline (when fitting here)"),
            .value(
                "strength", "S",
                "linear method: step length along the unit normal, in code units (for N(0, I) "
                    + "codes such as the DCGAN's z: standard deviations of the signed distance "
                    + "to the boundary)", default: "3"),
            .value("inputs", "N", "held-out inputs per repeat", default: "500"),
            .value("styles", "K", "ISF styles per input", default: "10"),
            .value(
                "repeats", "R", "repeats with seeds seed…seed+R-1 (mean ± std)", default: "1"),
            .value("seed", "N", "seed of the input choice and the style vectors", default: "0"),
            .flag(
                "official-pairs",
                "show diversity by the official script's rule (54 pairs for K = 10, 9 of them "
                    + "an image with itself) instead of the mean over distinct pairs"),
            .value(
                "perceptual", "NET",
                "content and diversity distance: stlpips-alex, stlpips-vgg or lpips:FILE",
                default: "stlpips-alex"),
            .value(
                "realism", "NET", "realism features: stlpips-vgg or none",
                default: "stlpips-vgg"),
            .value(
                "reference", "N", "generated training images per target value for realism",
                default: "1200"),
            .value(
                "realism-styles", "N",
                "ISF styles per input whose edits enter realism (1: as many images as the "
                    + "linear method, whose one output per input gives N; FD depends on set "
                    + "size)", default: "1"),
            .value(
                "batch", "N", "images per generator, classifier and perceptual run",
                default: "100"),
            .value("grid", "N", "inputs shown in OUT/grid.png (0: none)", default: "4"),
            .value("out", "DIR", "report folder"),
        ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let out = try checkOutput(args.required("out"), command: name, kind: .folder)
        let dataURL = URL(fileURLWithPath: try args.required("data"))
        var settings = EvaluationSettings()
        settings.inputs = try args.int("inputs", range: 1...1_000_000)!
        settings.styles = try args.int("styles", range: 1...1000)!
        settings.repeats = try args.int("repeats", range: 1...1000)!
        settings.seed = UInt64(try args.int("seed", range: 0...Int.max)!)
        settings.strength = Float(try args.double("strength")!)
        settings.referenceImages = try args.int("reference", range: 2...10_000_000)!
        settings.batch = try args.int("batch", range: 1...100_000)!
        settings.realismStyles = try args.int("realism-styles", range: 1...1000)!
        settings.diversityPairs = args.flag("official-pairs") ? .official : .distinct
        let methods = (args.string("methods") ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        guard !methods.isEmpty, Set(methods).count == methods.count,
            methods.allSatisfy({ ["isf", "linear"].contains($0) })
        else {
            throw UsageError(
                "isfgan eval: --methods must list isf and/or linear once each, got "
                    + "'\(args.string("methods") ?? "")'")
        }
        settings.methods = methods
        if methods.contains("isf") && !args.has("isf") {
            throw UsageError("isfgan eval: --isf is required for the isf method")
        }
        for (flag, method) in [("isf", "isf"), ("linear", "linear"), ("strength", "linear")]
        where args.has(flag) && !methods.contains(method) {
            console.warn("--\(flag) is ignored: --methods does not include \(method)")
        }
        let gridCount = try args.int("grid", range: 0...64)!
        let perceptualChoice = args.string("perceptual")!
        let realismChoice = try args.choice("realism", ["stlpips-vgg", "none"])!

        let started = Date()
        let (generator, generatorURL) = try loadGenerator(args, console: console)
        let generatorSHA = try SHA256.hexDigest(ofFile: generatorURL)
        let data = try TrainingDataset.read(dataURL)
        let summaryURL = dataURL.appendingPathComponent("dataset.json")
        let summary: DatasetSummary
        do {
            summary = try JSONDecoder().decode(
                DatasetSummary.self, from: Data(contentsOf: summaryURL))
        } catch {
            throw EvaluationError(
                "\(summaryURL.path) cannot be read (\(error)); eval reads edits with the rule "
                    + "that labelled the data, which isfgan dataset records there")
        }
        if let held = data.test?.count, held < settings.inputs {
            // The report records what was measured, not what was asked for.
            console.warn(
                "\(dataURL.path) holds \(held) held-out inputs; evaluating those, not "
                    + "--inputs \(settings.inputs)")
            settings.inputs = held
        }
        if summary.generator.sha256 != generatorSHA {
            console.warn(
                "\(dataURL.path) was made with the generator of SHA-256 "
                    + "\(summary.generator.sha256), not \(generatorSHA)")
        }
        var inputs: [String: String] = [
            "generator": generatorURL.path, "generator_sha256": generatorSHA,
            "data": dataURL.path,
            "data_sha256": try SHA256.hexDigest(ofFile: summaryURL),
            "age_threshold": String(summary.ageThreshold),
        ]

        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var evaluationMethods: [EvaluationMethod] = []
        for m in methods {
            switch m {
            case "isf":
                let url = URL(fileURLWithPath: try args.required("isf"))
                let isf = try LoadedISF.load(url, residual: args.flag("residual"))
                console.err("isf: \(isf.network.config)")
                if let trained = isf.generatorSHA256, trained != generatorSHA {
                    console.warn(
                        "the ISF was trained with the generator of SHA-256 \(trained), "
                            + "not \(generatorSHA)")
                }
                if let names = isf.recordedAttributes,
                    names.map({ $0.lowercased() }) != data.attributeNames.map({ $0.lowercased() })
                {
                    throw EvaluationError(
                        "the ISF was trained for attributes \(names), the data's are "
                            + "\(data.attributeNames)")
                }
                inputs["isf"] = url.path
                inputs["isf_sha256"] = try SHA256.hexDigest(ofFile: url)
                evaluationMethods.append(.isf(isf.network))
            default:
                let (boundaries, url) = try linearBoundaries(
                    args, data: data, out: out, generatorSHA: generatorSHA, console: console)
                inputs["linear"] = url.path
                inputs["linear_sha256"] = try SHA256.hexDigest(ofFile: url)
                inputs["linear_conditional"] = String(boundaries.directions != nil)
                evaluationMethods.append(.linear(boundaries))
            }
        }

        let perceptual = try perceptualMeter(perceptualChoice)
        let realism: RealismFeatures? =
            realismChoice == "none"
            ? nil : STLPIPSRealismFeatures(try STLPIPS.load(.vgg))
        let classifiers = try AttributeClassifiers()
        let evaluation = try EditEvaluation(
            generator: generator, data: data, ageThreshold: summary.ageThreshold,
            labeler: classifiers, perceptual: perceptual, realism: realism,
            methods: evaluationMethods, settings: settings,
            progressFolder: out.appendingPathComponent(".progress"))
        evaluation.identity = inputs.filter { $0.key.hasSuffix("sha256") }
        console.err(
            "eval: \(min(settings.inputs, data.test?.count ?? 0)) inputs × "
                + "\(data.attributeNames.count) attributes × 2 targets; methods "
                + methods.joined(separator: ", ") + "; \(settings.repeats) repeat(s)")

        let progress = ProgressLine(console: console)
        let runStart = Date()
        let cells = try evaluation.run { p in
            let fraction = Double(p.done) / Double(max(p.total, 1))
            let elapsed = Date().timeIntervalSince(runStart)
            let left =
                fraction > 0.01 ? TrainCommand.duration(elapsed / fraction - elapsed) : "…"
            progress.update(
                String(format: "%5.1f%%  ", 100 * fraction) + "\(p.stage)  "
                    + "\(p.done)/\(p.total) images  left \(left)")
        }!
        progress.finish()

        let realismName =
            realism.map { "FD over \($0.featureName)" } ?? "not measured (--realism none)"
        let report = EvaluationReport(
            settings: settings, inputs: inputs, perceptual: perceptual.meterName,
            realism: realismName, cells: cells, seconds: Date().timeIntervalSince(started))
        try AtomicFile.write(try report.json(), to: out.appendingPathComponent("report.json"))
        try AtomicFile.write(
            Array(report.svg().utf8), to: out.appendingPathComponent("report.svg"))
        if gridCount > 0 {
            let (images, columns) = try evaluation.gridImages(count: gridCount)
            try writeImages(
                images, to: out.appendingPathComponent("grid.png"), grid: true,
                columns: columns.count)
            console.err("grid.png columns: " + columns.joined(separator: " | "))
        }
        // The report holds every number: the cells are only for continuing an interrupted
        // run, and left behind they would refuse a rerun with other settings into OUT.
        try? FileManager.default.removeItem(at: out.appendingPathComponent(".progress"))
        console.out(report.table())
        console.err(
            "wrote report.json, report.svg\(gridCount > 0 ? ", grid.png" : "") to \(out.path) "
                + "in \(TrainCommand.duration(Date().timeIntervalSince(started)))")
    }

    /// The perceptual distance `--perceptual` names.
    static func perceptualMeter(_ choice: String) throws -> PerceptualMeter {
        switch choice {
        case "stlpips-alex": return try STLPIPS.load(.alex)
        case "stlpips-vgg": return try STLPIPS.load(.vgg)
        case let c where c.hasPrefix("lpips:") && c.count > 6:
            return LPIPSMeter(
                try LPIPS.load(contentsOf: URL(fileURLWithPath: String(c.dropFirst(6)))))
        default:
            throw UsageError(
                "isfgan eval: --perceptual must be stlpips-alex, stlpips-vgg or lpips:FILE, "
                    + "got '\(choice)'")
        }
    }

    /// `--linear FILE`, or boundaries fitted on the train split (kept in OUT and reused
    /// when they were fitted for the same generator and settings).
    static func linearBoundaries(
        _ args: ParsedArguments, data: TrainingDataset, out: URL, generatorSHA: String,
        console: Console
    ) throws -> (LinearBoundaries, URL) {
        if let path = args.string("linear") {
            let url = URL(fileURLWithPath: path)
            let b = try LinearBoundaries.read(url)
            if let sha = b.generatorSHA256, sha != generatorSHA {
                console.warn("\(path) was fitted to codes of the generator of SHA-256 \(sha)")
            }
            return (b, url)
        }
        var options = LinearFitOptions()
        options.conditional = args.flag("conditional")
        let url = out.appendingPathComponent("linear.safetensors")
        if let b = try? LinearBoundaries.read(url), b.generatorSHA256 == generatorSHA,
            b.options == options, b.samples == data.train.count
        {
            console.err("linear: reusing \(url.path)")
            return (b, url)
        }
        let b = try BaselineCommand.fit(
            data: data, options: options, generatorSHA: generatorSHA, console: console)
        try b.write(to: url)
        return (b, url)
    }
}
