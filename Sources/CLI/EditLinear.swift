import Formats
import Foundation
import Method
import Models
import TensorCore

/// `isfgan edit --method linear`: move codes along the linear baseline's boundary normals
/// (InterFaceGAN) instead of running an ISF. One output per input (no styles).
enum LinearEdit {
    static let options: [OptionSpec] = [
        .value("method", "NAME", "isf, or linear (the baseline; needs --linear)", default: "isf"),
        .value(
            "linear", "FILE",
            "linear boundaries from isfgan baseline fit, for --method linear (default: none)"),
        .value(
            "strength", "S",
            "--method linear: each --set NAME=V moves the code S along NAME's unit normal, "
                + "towards the side labelled V (+ for 1, − for 0); S is a length in code units "
                + "(for N(0, I) codes such as the DCGAN's z, standard deviations of the signed "
                + "distance to the boundary; InterFaceGAN edits in [-3, 3])", default: "3"),
    ]

    /// True for `--method linear`.
    static func chosen(_ args: ParsedArguments) throws -> Bool {
        try args.choice("method", ["isf", "linear"]) == "linear"
    }

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        let out = try checkOutput(args.required("out"), command: "edit", kind: .imageOrFolder)
        let latentsOut = try args.string("save-latents").map {
            try checkOutput($0, flag: "save-latents", command: "edit", kind: .file(["npy"]))
        }
        let linearPath = try args.required("linear")
        let latentsPath = try args.required("latents")
        let strength = Float(try args.double("strength")!)
        for flag in ["isf", "targets", "z", "save-raw"] where args.has(flag) {
            throw UsageError("isfgan edit: --\(flag) does not apply to --method linear")
        }
        let sets = args.strings("set")
        guard !sets.isEmpty else {
            throw UsageError("isfgan edit: --method linear needs --set NAME=V (0 or 1)")
        }
        let boundaries = try LinearBoundaries.read(URL(fileURLWithPath: linearPath))
        let (generator, generatorURL) = try loadGenerator(args, console: console)
        if let sha = boundaries.generatorSHA256,
            sha != (try SHA256.hexDigest(ofFile: generatorURL))
        {
            console.warn("\(linearPath) was fitted to codes of the generator of SHA-256 \(sha)")
        }
        guard boundaries.codeShape == [generator.codeLayers, generator.codeWidth] else {
            throw UsageError(
                "isfgan edit: \(linearPath) holds boundaries for codes \(boundaries.codeShape), "
                    + "the generator's are \([generator.codeLayers, generator.codeWidth])")
        }
        var moves: [(attribute: Int, value: Int)] = []
        for text in sets {
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2,
                let a = boundaries.attributes.firstIndex(where: {
                    $0.lowercased() == parts[0].lowercased()
                }),
                let v = Int(parts[1]), v == 0 || v == 1
            else {
                throw UsageError(
                    "isfgan edit: --set '\(text)': expected NAME=0 or NAME=1 with NAME one of "
                        + boundaries.attributes.joined(separator: ", "))
            }
            moves.append((a, v))
        }

        let raw = try NumPy.readTensor(URL(fileURLWithPath: latentsPath))
        let space = try args.choice("space", ["w", "z", "wplus"])
        let all = try LatentFile.codes(
            raw, space: space, generator: generator, file: latentsPath)
        var indices = Array(0..<all.shape[0])
        if let text = args.string("index") {
            indices = try parseIntList(text, flag: "index", command: "edit")
            if let bad = indices.first(where: { $0 < 0 || $0 >= all.shape[0] }) {
                throw UsageError(
                    "isfgan edit: --index \(bad) is out of range; \(latentsPath) has "
                        + "\(all.shape[0]) codes")
            }
        }
        let codes = all.indexSelect(indices)  // [N, L, C]
        let n = codes.shape[0]
        var edited = codes
        for (a, v) in moves {
            edited = boundaries.edit(
                codes: edited, attribute: a, values: [Int](repeating: v, count: n),
                strength: strength)
        }
        let batch = try args.int("batch", range: 1...4096)!
        let stream = Tensor.concat(
            (0..<n).flatMap { i in
                [codes.slice(0, i..<(i + 1)), edited.slice(0, i..<(i + 1))]
            })  // [2N, L, C]: source, edit per input
        var parts: [Tensor] = []
        for start in stride(from: 0, to: 2 * n, by: batch) {
            parts.append(
                GradMode.withoutGradients {
                    generator.render(
                        stream.slice(0, start..<min(2 * n, start + batch)).contiguous(),
                        noise: .constant)
                })
        }
        if let latentsOut {
            let shape = [n, 1] + Array(codes.shape.dropFirst())
            try NumPy.write(edited.reshaped(shape), to: latentsOut)
        }
        try writeImages(Tensor.concat(parts), to: out, grid: true, columns: 2)
        console.err(
            "wrote \(n) input\(n == 1 ? "" : "s") (source, linear edit) to \(out.path)")
    }
}
