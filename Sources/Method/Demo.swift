import Foundation
import Models
import TensorCore

// The demo behind `isfgan demo`: a fixed set of faces from the DCGAN, edited by the shipped
// ISF towards the other gender, the other age group and both, several styles each, and
// the attribute classifiers' readings of every output.

/// What one demo run produced: images and the classifiers' readings.
public struct DemoResult {
    /// The edit kinds in column order: each flips these attribute indices.
    public static let edits: [(name: String, flips: [Int])] = [
        ("gender flip", [0]), ("age flip", [1]), ("both", [0, 1]),
    ]

    /// Rows of the grid: per input, its image then `edits.count × styles` edits:
    /// `[N, 1 + 3·S, 3, H, W]`, unclamped.
    public var images: Tensor
    /// The first input morphing into its gender flip (first style), `[frames, 3, H, W]`.
    public var strip: Tensor
    /// Classifier readings, `[N][1 + 3·S]`, in the order of `images`.
    public var readings: [[AttributePrediction]]
    /// The source labels the classifier gave each input (gender, age), 0 or 1.
    public var sourceLabels: [[Int]]
    public var styles: Int
    /// The age threshold that turns an expected age into a label.
    public var ageThreshold: Float

    /// The label an output reads as: [gender, age].
    public func labels(_ p: AttributePrediction) -> [Int] {
        [p.gender, p.age(threshold: ageThreshold)]
    }

    /// Whether style `s` of edit kind `e` of input `i` reads with every attribute the edit
    /// flips on the other side of its source label.
    public func isFlipped(input i: Int, edit e: Int, style s: Int) -> Bool {
        let read = labels(readings[i][1 + e * styles + s])
        return Self.edits[e].flips.allSatisfy { read[$0] == 1 - sourceLabels[i][$0] }
    }

    /// For each edit kind: outputs read as flipped, and outputs of that kind.
    public var flipCounts: [(hits: Int, total: Int)] {
        Self.edits.indices.map { e in
            let hits = readings.indices.reduce(0) { sum, i in
                sum + (0..<styles).filter { isFlipped(input: i, edit: e, style: $0) }.count
            }
            return (hits, readings.count * styles)
        }
    }

    /// The text report: one line per output with its readings, then the flip counts.
    public func report(attributeNames: [String]) -> String {
        var lines = [
            "isfgan demo: classifier readings (P(male), expected age; label after the arrow; "
                + "age label 1 above \(Int(ageThreshold)) years)", "",
        ]
        func describe(_ p: AttributePrediction) -> String {
            let l = labels(p)
            return String(format: "P(male) %.2f  age %4.1f", p.maleProbability, p.expectedAge)
                + "  → \(l[0] == 1 ? "male" : "female"), \(l[1] == 1 ? "old" : "young")"
        }
        for (i, row) in readings.enumerated() {
            lines.append("input \(i): \(describe(row[0]))")
            for (e, edit) in Self.edits.enumerated() {
                for s in 0..<styles {
                    let p = row[1 + e * styles + s]
                    let ok = isFlipped(input: i, edit: e, style: s)
                    let name = edit.name.padding(toLength: 11, withPad: " ", startingAt: 0)
                    lines.append(
                        "  \(name) style \(s): \(describe(p))  \(ok ? "flipped" : "NOT flipped")")
                }
            }
        }
        lines.append("")
        for (e, edit) in Self.edits.enumerated() {
            let (hits, total) = flipCounts[e]
            let names = edit.flips.map { attributeNames[$0] }.joined(separator: " and ")
            lines.append(
                "\(edit.name): \(hits) of \(total) outputs read with \(names) flipped")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Runs the demo's edits for a generator, an ISF over (gender, age) and the classifiers.
public enum Demo {
    /// The seed of the demo's sample faces and style vectors.
    public static let seed: UInt64 = 2026

    /// Edits `inputs` fixed faces with `styles` styles per edit kind and reads every output.
    ///
    /// - Throws: `EditError` when the ISF does not fit the generator or does not edit two
    ///   attributes; errors of the classifiers.
    public static func run(
        generator: any ImageGenerator, isf: ISFNetwork, classifier: any AttributeLabeler,
        inputs: Int, styles: Int, frames: Int = 8, ageThreshold: Float = 35,
        progress: (String) -> Void = { _ in }
    ) throws -> DemoResult {
        precondition(inputs >= 1 && styles >= 1 && frames >= 2, "Demo.run: bad counts")
        guard isf.config.attributes == 2 else {
            throw EditError(
                "the demo edits gender and age: the ISF has \(isf.config.attributes) "
                    + "attributes, expected 2")
        }
        let editor = try Editor(generator: generator, isf: isf)
        var rng = RandomGenerator(seed: seed)
        let sources = generator.sampleCodes(count: inputs, generator: &rng)  // [N, L, C]
        let z = rng.normal([styles, isf.config.randomWidth])  // the same styles for all
        let (layers, width) = (generator.codeLayers, generator.codeWidth)

        progress("reading the \(inputs) input faces")
        let sourceImages = editor.render(sources, batch: 16, noise: .constant)  // [N, 3, H, W]
        let sourceReadings = try classifier.predict(sourceImages)
        let sourceLabels = sourceReadings.map { [$0.gender, $0.age(threshold: ageThreshold)] }

        progress("editing")
        let k = DemoResult.edits.count * styles
        var codes: [Tensor] = []
        for i in 0..<inputs {
            let source = sources.slice(0, i..<(i + 1)).reshaped([layers, width])
            var targets: [Float] = []
            for edit in DemoResult.edits {
                var t = sourceLabels[i].map(Float.init)
                for a in edit.flips { t[a] = 1 - t[a] }
                for _ in 0..<styles { targets += t }
            }
            let zz = Tensor.concat(Array(repeating: z, count: DemoResult.edits.count))
            codes.append(sources.slice(0, i..<(i + 1)))
            codes.append(
                try editor.editCodes(
                    source: source, z: zz, target: Tensor(shape: [k, 2], targets)))
        }
        progress("rendering \(inputs * (1 + k)) images")
        let images = editor.render(Tensor.concat(codes), batch: 16, noise: .constant)
        let readings = try classifier.predict(images)

        progress("interpolating")
        // From the first input's own code to its first-style gender flip, both ends included:
        // w(α) = (1 − α)·w + α·F(w, z₁, d_flip).
        let first = sources.slice(0, 0..<1)  // [1, L, C]
        let flipped = codes[1].slice(0, 0..<1)  // [1, L, C]
        let frameCodes = Tensor.concat(
            (0..<frames).map { f -> Tensor in
                let alpha = Float(f) / Float(frames - 1)
                return first * (1 - alpha) + flipped * alpha
            })  // [frames, L, C]
        let strip = editor.render(frameCodes, batch: 16, noise: .constant)

        let (c, h, w) = (images.shape[1], images.shape[2], images.shape[3])
        return DemoResult(
            images: images.reshaped([inputs, 1 + k, c, h, w]), strip: strip,
            readings: (0..<inputs).map { Array(readings[($0 * (1 + k))..<(($0 + 1) * (1 + k))]) },
            sourceLabels: sourceLabels, styles: styles, ageThreshold: ageThreshold)
    }
}
