import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan baseline fit`: the linear baseline (InterFaceGAN): one logistic-regression
/// boundary per attribute in the generator's code space, from a dataset's train split.
struct BaselineCommand: Subcommand {
    static let name = "baseline"
    static let summary = "fit the linear baseline (InterFaceGAN boundaries) to a dataset's codes"
    static let usage = """
        fit --generator dcgan --data DATA --out linear.safetensors [--conditional]

        Fits one boundary per attribute of DATA (its train split's codes, flattened, and
        labels) by L2-regularised logistic regression (deterministic full-batch descent),
        and writes the unit normals [A, L·C], the offsets [A], the attribute names, the
        generator's SHA-256 and the training accuracy. --conditional also stores, per
        attribute, the normal with the other attributes' normals projected out, which edits
        then move along. Use with isfgan edit --method linear or isfgan eval --linear.
        """
    static let options: [OptionSpec] =
        generatorOptions + [
            .value("data", "DIR", "dataset folder (train split: images, codes, labels)"),
            .value("out", "FILE", "boundaries file (.safetensors)"),
            .flag("conditional", "also store conditional edit directions"),
            .value("l2", "X", "L2 penalty on the normal", default: "0.0001"),
            .value("iterations", "N", "gradient steps per attribute", default: "500"),
        ]
    static let positionalCount = 1

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        guard args.positional == ["fit"] else {
            throw UsageError(
                "isfgan baseline: say 'fit' (isfgan baseline fit --data … --out …)")
        }
        let out = try checkOutput(
            args.required("out"), command: name + " fit", kind: .file(["safetensors"]))
        let data = try TrainingDataset.read(URL(fileURLWithPath: try args.required("data")))
        var options = LinearFitOptions()
        options.conditional = args.flag("conditional")
        options.l2 = try args.double("l2")!
        guard options.l2 >= 0 else { throw UsageError("isfgan baseline: --l2 must be ≥ 0") }
        options.iterations = try args.int("iterations", range: 1...1_000_000)!
        let (generator, url) = try loadGenerator(args, console: console)
        try data.check(generator: generator)
        let b = try fit(
            data: data, options: options, generatorSHA: try SHA256.hexDigest(ofFile: url),
            console: console)
        try b.write(to: out)
        console.out("wrote \(out.path)")
    }

    /// Fits on the train split, reporting each attribute's training accuracy.
    static func fit(
        data: TrainingDataset, options: LinearFitOptions, generatorSHA: String, console: Console
    ) throws -> LinearBoundaries {
        let split = data.train
        console.err(
            "linear: fitting \(split.attributeNames.count) boundaries to \(split.count) codes "
                + "of \(split.codes.shape.dropFirst().map(String.init).joined(separator: "×"))"
                + (options.conditional ? " (conditional)" : ""))
        let start = Date()
        let b = try LinearBoundaries.fit(
            codes: split.codes, labels: split.labels, attributes: split.attributeNames,
            options: options, generatorSHA256: generatorSHA)
        for (name, acc) in zip(b.attributes, b.trainingAccuracy) {
            console.err(String(format: "linear: %@ training accuracy %.3f", name, acc))
        }
        console.err(String(format: "linear: fitted in %.1f s", Date().timeIntervalSince(start)))
        return b
    }
}
