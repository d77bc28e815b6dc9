import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan demo`: the shipped ISF editing fixed DCGAN faces, with the classifiers' readings.
struct DemoCommand: Subcommand {
    static let name = "demo"
    static let summary = "edit sample faces with the shipped ISF (gender, age, both) and report"
    static let usage = """
        [--out demo] [--inputs 6] [--styles 3] [--isf models/dcgan-faces-isf.safetensors]

        Loads the DCGAN face generator and the age/gender classifiers (running
        scripts/fetch-models when they are missing) and the ISF shipped in the repository,
        edits a fixed set of faces towards the other gender, the other age group and both,
        and writes OUT/edits.png (per row: the input, then STYLES columns per edit),
        OUT/interpolation.png and .gif (the first face turning into its gender flip) and
        OUT/report.txt (what the classifiers read in every image).
        """
    static let options: [OptionSpec] = [
        .value("out", "DIR", "output folder (created if missing)", default: "demo"),
        .value("inputs", "N", "sample faces", default: "6"),
        .value("styles", "N", "styles per edit", default: "3"),
        .value(
            "isf", "FILE",
            "the ISF (default: models/\(shippedISF) here or next to the isfgan build)"),
        .value("scale", "K", "enlarge the images K times for viewing (nearest)", default: "2"),
    ]
    /// The file name of the shipped ISF under `models/`.
    static let shippedISF = "dcgan-faces-isf.safetensors"

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let started = Date()
        let out = try checkOutput(args.required("out"), command: name, kind: .folder)
        let inputs = try args.int("inputs", range: 1...1000)!
        let styles = try args.int("styles", range: 1...64)!
        let scale = try args.int("scale", range: 1...16)!
        let isfURL = try locateISF(args.string("isf"))

        try ensureModels(near: isfURL, console)
        let store = ModelStore()
        let generatorURL = try store.locate(.dcganFace)
        let generator = try GeneratorLoader.load(
            kind: .dcgan, url: generatorURL, key: nil, warn: console.warn)
        let loaded = try LoadedISF.load(isfURL)
        if let recorded = loaded.generatorSHA256 {
            let actual = try SHA256.hexDigest(ofFile: generatorURL)
            if recorded != actual {
                console.warn(
                    "\(isfURL.path) was trained with the generator of SHA-256 \(recorded); "
                        + "\(generatorURL.path) has \(actual)")
            }
        }
        let names = loaded.recordedAttributes ?? ["gender", "age"]
        guard names.map({ $0.lowercased() }) == ["gender", "age"] else {
            throw UsageError(
                "isfgan demo: \(isfURL.path) edits \(names.joined(separator: ", ")); the demo "
                    + "needs an ISF over gender, age (in that order)")
        }
        let classifier = try AttributeClassifiers(store: store)
        console.err("generator: \(generator.summary)")
        console.err("ISF: \(isfURL.path) (\(loaded.network.config))")

        let result = try Demo.run(
            generator: generator, isf: loaded.network, classifier: classifier, inputs: inputs,
            styles: styles
        ) { console.err($0) }

        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        func enlarged(_ x: Tensor) -> Tensor { scale > 1 ? x.upsampledNearest(factor: scale) : x }
        let (n, columns) = (result.images.shape[0], result.images.shape[1])
        let flat = result.images.reshaped([n * columns] + Array(result.images.shape.dropFirst(2)))
        let gridURL = out.appendingPathComponent("edits.png")
        try ImageIO.write(
            Image(tensor: Image.grid(enlarged(flat), columns: columns)), to: gridURL)
        let stripURL = out.appendingPathComponent("interpolation.png")
        let strip = enlarged(result.strip)
        try ImageIO.write(
            Image(tensor: Image.grid(strip, columns: strip.shape[0])), to: stripURL)
        let gifURL = out.appendingPathComponent("interpolation.gif")
        let frames = (0..<strip.shape[0]).map {
            Image(tensor: strip.slice(0, $0..<($0 + 1)).reshaped(Array(strip.shape.dropFirst())))
        }
        // There and back again, so that the loop does not jump.
        try GIF.write(frames + frames.reversed().dropFirst().dropLast(), to: gifURL, delay: 15)
        let reportURL = out.appendingPathComponent("report.txt")
        let report = result.report(attributeNames: names)
        try AtomicFile.write(Array(report.utf8), to: reportURL)

        let groups = DemoResult.edits.map(\.name).joined(separator: ", ")
        console.out(
            "edits:         \(gridURL.path)  (per row: the input, then \(styles) "
                + "style\(styles == 1 ? "" : "s") each of: \(groups))")
        console.out("interpolation: \(stripURL.path), \(gifURL.path)")
        console.out("report:        \(reportURL.path)")
        for (e, edit) in DemoResult.edits.enumerated() {
            let (hits, total) = result.flipCounts[e]
            console.out("  \(edit.name): \(hits)/\(total) outputs read as flipped")
        }
        console.out(String(format: "done in %.1f s", Date().timeIntervalSince(started)))
    }

    /// The ISF named by `--isf`, else the shipped one in `./models/` or in the `models/`
    /// folder of the checkout the running executable was built in (`.build/release/`).
    static func locateISF(_ given: String?) throws -> URL {
        if let given {
            let url = URL(fileURLWithPath: given)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw UsageError("isfgan demo: --isf \(given) does not exist")
            }
            return url
        }
        var candidates = [URL(fileURLWithPath: "models/\(shippedISF)")]
        if let exe = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<4 {
                dir = dir.deletingLastPathComponent()
                candidates.append(dir.appendingPathComponent("models/\(shippedISF)"))
            }
        }
        guard
            let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0.path) })
        else {
            throw UsageError(
                "isfgan demo: the ISF models/\(shippedISF) is not in the current folder or "
                    + "next to the isfgan build; run it from the repository, or give --isf "
                    + "FILE (the repository ships it; scripts/train-demo trains another)")
        }
        return found
    }

    /// Runs the repository's `scripts/fetch-models` when the generator or the classifiers
    /// are missing from the model store.
    static func ensureModels(near isf: URL, _ console: Console) throws {
        let store = ModelStore()
        let needed: [ModelFile] = [.dcganFace, .genderONNX, .ageONNX, .ageGenderManifest]
        guard needed.contains(where: { !store.contains($0) }) else { return }
        let repo = isf.deletingLastPathComponent().deletingLastPathComponent()
        let script = repo.appendingPathComponent("scripts/fetch-models")
        guard FileManager.default.isExecutableFile(atPath: script.path) else {
            throw UsageError(
                "isfgan demo: the DCGAN and the age/gender classifiers are not in "
                    + "\(store.modelsDirectory.path); run scripts/fetch-models first")
        }
        console.err("fetching the models with \(script.path)…")
        let process = Process()
        process.executableURL = script
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, needed.allSatisfy(store.contains) else {
            throw UsageError(
                "isfgan demo: \(script.path) failed (status \(process.terminationStatus)); "
                    + "the models are still missing from \(store.modelsDirectory.path)")
        }
    }
}
