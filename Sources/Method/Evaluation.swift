import Formats
import Foundation
import Models
import TensorCore

// `isfgan eval`: the paper's measurements of an editing method, for any generator, ISF
// and attribute classifier the project runs, and for the linear baseline on the same
// inputs, targets and classifier.
//
//     for each repeat r (seed + r):   N held-out test codes, their dataset labels
//       for each method m, attribute a, value v ∈ {1, 0}:          one "cell"
//         targets = source labels with a set to v;  flips: inputs whose a ≠ v
//         edit (K styles for the ISF, 1 for the linear method) → render → classify
//         accuracy     share of edits read as a = v                 (flips; no-ops apart)
//         preservation share of edits whose other attributes read as the source's
//         content      perceptual distance source ↔ edit
//         diversity    mean perceptual distance over pairs of an input's styles
//         realism      Fréchet distance of the edits' features to those of generated
//                      training images labelled a = v
//
// Cells are saved one by one (atomically) under OUT/.progress, so an interrupted run
// continues where it stopped when the same command is given again.

/// An evaluation that cannot be carried out as asked (data, settings, models).
public struct EvaluationError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The settings of one evaluation; all of them are recorded in the report.
public struct EvaluationSettings: Codable, Sendable, Equatable {
    /// Held-out inputs per repeat (at most the test split's size).
    public var inputs = 500
    /// Styles per input for the ISF.
    public var styles = 10
    /// Runs with seeds seed, seed + 1, …; figures are mean ± std over them.
    public var repeats = 1
    public var seed: UInt64 = 0
    /// The linear method's step along the unit normal (see ``LinearBoundaries/edit``).
    public var strength: Float = 3
    /// Generated training images per target value for the realism reference (at least
    /// twice the feature count keeps the covariance estimate usable).
    public var referenceImages = 1200
    /// Styles per input whose edits enter the realism figure. 1 gives every method the same
    /// number of edited images (the Fréchet distance is biased by set size, and the linear
    /// method has one output per input) and keeps the run short; the feature network is
    /// the slowest part of a cell.
    public var realismStyles = 1
    /// Images per generator, classifier and perceptual run.
    public var batch = 100
    /// Which diversity figure the table shows (both are recorded).
    public var diversityPairs: DiversityPairs = .distinct
    /// Method names in table order (`isf`, `linear`).
    public var methods: [String] = ["isf", "linear"]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case inputs, styles, repeats, seed, strength, batch, methods
        case referenceImages = "reference_images"
        case realismStyles = "realism_styles"
        case diversityPairs = "diversity_pairs"
    }
}

/// An editing method under evaluation.
public enum EvaluationMethod {
    case isf(ISFNetwork)
    case linear(LinearBoundaries)

    public var name: String {
        switch self {
        case .isf: return "isf"
        case .linear: return "linear"
        }
    }
}

/// Counts and sums over one subset (flips or no-ops) of one cell.
public struct SubsetTally: Codable, Sendable, Equatable {
    /// Inputs in the subset.
    public var inputs = 0
    /// Edited images (inputs × styles).
    public var images = 0
    /// Images the classifier reads with the target value of the edited attribute.
    public var targetRead = 0
    /// Images whose every other attribute reads as the source's label.
    public var othersKept = 0
    /// Σ perceptual distance source ↔ edit.
    public var contentSum = 0.0
    /// Σ over inputs of the mean distance over distinct style pairs.
    public var diversitySum = 0.0
    /// Σ over inputs of the official-rule mean.
    public var officialDiversitySum = 0.0

    enum CodingKeys: String, CodingKey {
        case inputs, images
        case targetRead = "target_read"
        case othersKept = "others_kept"
        case contentSum = "content_sum"
        case diversitySum = "diversity_sum"
        case officialDiversitySum = "official_diversity_sum"
    }

    public var accuracy: Double? { images > 0 ? Double(targetRead) / Double(images) : nil }
    public var preservation: Double? {
        images > 0 ? Double(othersKept) / Double(images) : nil
    }
    public var content: Double? { images > 0 ? contentSum / Double(images) : nil }
    /// The diversity figure; 0 for a method with one output per input.
    public func diversity(_ rule: DiversityPairs) -> Double? {
        guard inputs > 0 else { return nil }
        return (rule == .official ? officialDiversitySum : diversitySum) / Double(inputs)
    }
}

/// The realism figure of one cell.
public struct RealismFigure: Codable, Sendable, Equatable {
    public var frechetDistance: Double
    public var editedImages: Int
    public var referenceImages: Int
    public var features: Int
    /// Fewer images than twice the feature count on either side: the covariance estimate
    /// is poor and the figure biased upwards.
    public var biased: Bool

    enum CodingKeys: String, CodingKey {
        case features, biased
        case frechetDistance = "frechet_distance"
        case editedImages = "edited_images"
        case referenceImages = "reference_images"
    }
}

/// What one (repeat, method, attribute, value) measured.
public struct EvaluationCell: Codable, Sendable, Equatable {
    public var repeatIndex: Int
    public var method: String
    public var attribute: String
    public var value: Int
    public var styles: Int
    public var flips: SubsetTally
    public var noOps: SubsetTally
    public var realism: RealismFigure?
    /// Seconds the cell took.
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case method, attribute, value, styles, flips, realism, seconds
        case repeatIndex = "repeat"
        case noOps = "no_ops"
    }

    var key: String { "r\(repeatIndex)-\(method)-\(attribute)-\(value)" }
}

/// Progress of a run, for a progress bar.
public struct EvaluationProgress: Sendable {
    /// Images done out of `total` (edited and reference images).
    public var done: Int
    public var total: Int
    public var stage: String
}

/// Runs the measurements.
public final class EditEvaluation {
    public let generator: any ImageGenerator
    public let data: TrainingDataset
    /// The attributes the classifier reads, in the data's column order.
    public let attributes: [DatasetAttribute]
    public let ageThreshold: Float
    public let labeler: AttributeLabeler
    public let perceptual: PerceptualMeter
    public let realism: RealismFeatures?
    public let methods: [EvaluationMethod]
    public let settings: EvaluationSettings
    /// Where partial results live (nil: keep nothing).
    public let progressFolder: URL?
    /// What else decides the numbers (file checksums, network names): recorded with the
    /// settings in the progress folder, and a continued run must match it.
    public var identity: [String: String] = [:]

    var test: TrainingSplit

    /// Checks that the pieces fit: a test split, attributes the classifier can read, codes
    /// of the generator's shape, ISFs and boundaries for the data's attributes.
    ///
    /// - Throws: `EvaluationError` naming what does not fit.
    public init(
        generator: any ImageGenerator, data: TrainingDataset, ageThreshold: Float,
        labeler: AttributeLabeler, perceptual: PerceptualMeter, realism: RealismFeatures?,
        methods: [EvaluationMethod], settings: EvaluationSettings, progressFolder: URL?
    ) throws {
        guard let test = data.test else {
            throw EvaluationError(
                "\(data.root.path) has no test split; evaluation edits held-out codes "
                    + "(ROOT/test/ and list_attr_celeba-test.txt)")
        }
        try data.check(generator: generator)
        var attributes: [DatasetAttribute] = []
        for name in data.attributeNames {
            guard let a = DatasetAttribute(rawValue: name.lowercased()) else {
                throw EvaluationError(
                    "the data's attribute '\(name)' is not one the classifiers read ("
                        + DatasetAttribute.allCases.map(\.rawValue).joined(separator: ", ")
                        + ")")
            }
            attributes.append(a)
        }
        for m in methods {
            switch m {
            case .isf(let net):
                guard net.config.attributes == attributes.count else {
                    throw EvaluationError(
                        "the ISF edits \(net.config.attributes) attributes, the data has "
                            + "\(attributes.count) (\(data.attributeNames))")
                }
                _ = try Editor(generator: generator, isf: net)
            case .linear(let b):
                guard
                    b.attributes.map({ $0.lowercased() })
                        == data.attributeNames.map({ $0.lowercased() })
                else {
                    throw EvaluationError(
                        "the linear boundaries are for \(b.attributes), the data's attributes "
                            + "are \(data.attributeNames)")
                }
                guard b.codeShape == [generator.codeLayers, generator.codeWidth] else {
                    throw EvaluationError(
                        "the linear boundaries are for codes \(b.codeShape), the generator's "
                            + "are \([generator.codeLayers, generator.codeWidth])")
                }
            }
        }
        guard settings.inputs >= 1, settings.styles >= 1, settings.repeats >= 1,
            settings.batch >= 1
        else { throw EvaluationError("inputs, styles, repeats and batch must be ≥ 1") }
        self.generator = generator
        self.data = data
        self.test = test
        self.attributes = attributes
        self.ageThreshold = ageThreshold
        self.labeler = labeler
        self.perceptual = perceptual
        self.realism = realism
        self.methods = methods
        self.settings = settings
        self.progressFolder = progressFolder
    }

    var inputCount: Int { min(settings.inputs, test.count) }

    func styles(_ m: EvaluationMethod) -> Int {
        if case .isf = m { return settings.styles }
        return 1
    }

    /// The test rows of repeat r: the first N of a permutation seeded by seed + r.
    public func inputIndices(repeat r: Int) -> [Int] {
        var g = RandomGenerator(seed: settings.seed &+ UInt64(r), position: 0x696E_7075 << 32)
        return Array(g.permutation(test.count).prefix(inputCount))
    }

    /// Labels the classifier gives images [N, 3, H, W], per attribute (the dataset rule).
    func read(_ images: Tensor) throws -> [[Int]] {
        try labeler.predict(images).map { p in
            attributes.map { $0.label(p, ageThreshold: ageThreshold) }
        }
    }

    /// Renders codes [M, L, C] in batches, clamped to [−1, 1] as saved images are.
    func render(_ codes: Tensor) -> Tensor {
        var parts: [Tensor] = []
        let m = codes.shape[0]
        for start in stride(from: 0, to: m, by: settings.batch) {
            let end = min(m, start + settings.batch)
            parts.append(
                GradMode.withoutGradients {
                    generator.render(codes.slice(0, start..<end).contiguous(), noise: .constant)
                }.clamped(min: -1, max: 1))
        }
        return Tensor.concat(parts)
    }

    /// Edited codes [b, S, L, C] of sources [b, L, C] towards targets [b, A].
    func edit(
        _ m: EvaluationMethod, sources: Tensor, targets: Tensor, attribute a: Int, value v: Int,
        z: Tensor?
    ) throws -> Tensor {
        let b = sources.shape[0]
        let (l, c) = (generator.codeLayers, generator.codeWidth)
        switch m {
        case .linear(let boundaries):
            let out = boundaries.edit(
                codes: sources, attribute: a, values: [Int](repeating: v, count: b),
                strength: settings.strength)
            return out.reshaped([b, 1, l, c])
        case .isf(let net):
            let z = z!  // [b, S, rnd]
            let s = z.shape[1]
            let d = targets.shape[1]
            let tt = targets.unsqueezed(1).expanded(to: [b, s, d]).reshaped([b * s, d])
            let zz = z.reshaped([b * s, z.shape[2]]).contiguous()
            let src = sources.unsqueezed(1).expanded(to: [b, s, l, c])
            return try GradMode.withoutGradients {
                if net.config.latentType == .wp {
                    let out = try net(
                        codes: src.reshaped([b * s, l, c]).contiguous(), z: zz,
                        targets: tt.contiguous())
                    return out.reshaped([b, s, l, c])
                }
                if l == 1 {
                    let out = try net(
                        codes: src.reshaped([b * s, c]).contiguous(), z: zz,
                        targets: tt.contiguous())
                    return out.reshaped([b, s, 1, c])
                }
                // A single-code ISF on W+ codes: the editor checks that the rows agree.
                let editor = try Editor(generator: generator, isf: net)
                let rows = try (0..<b).map { i in
                    try editor.editCodes(
                        source: sources.slice(0, i..<(i + 1)).reshaped([l, c]),
                        z: z.slice(0, i..<(i + 1)).reshaped([s, z.shape[2]]),
                        target: targets.slice(0, i..<(i + 1)).reshaped([d]))
                }
                return Tensor.stack(rows)
            }
        }
    }

    /// The random vectors of a cell [N, K, rnd]: one stream per (repeat, attribute,
    /// value), the same for every run.
    func randomVectors(repeat r: Int, attribute a: Int, value v: Int, width: Int) -> Tensor {
        var g = RandomGenerator(
            seed: settings.seed &+ UInt64(r), position: UInt64(1 + 2 * a + v) << 40)
        return g.normal([inputCount, settings.styles, width])
    }

    // MARK: Running

    /// Runs every cell not already saved, then returns all cells (repeat, method,
    /// attribute, value order).
    ///
    /// - Parameters:
    ///   - progress: called as images are done.
    ///   - stopAfterCells: stop after computing this many cells in this run (what an
    ///     interruption leaves); nil runs to the end.
    /// - Returns: the cells, or nil when stopped early.
    public func run(
        progress: (EvaluationProgress) -> Void = { _ in }, stopAfterCells: Int? = nil
    ) throws -> [EvaluationCell]? {
        if let folder = progressFolder {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try checkOrWriteState(folder)
        }
        let n = inputCount
        var total = 0
        for m in methods { total += settings.repeats * attributes.count * 2 * n * styles(m) }
        let refTotal = realism == nil ? 0 : attributes.count * 2 * settings.referenceImages
        total += refTotal
        var done = 0
        var references: [String: FrechetReference] = [:]
        if let realism {
            for (a, attribute) in attributes.enumerated() {
                for v in [1, 0] {
                    progress(
                        EvaluationProgress(
                            done: done, total: total, stage: "reference \(attribute.rawValue)=\(v)")
                    )
                    references["\(a)-\(v)"] = try reference(
                        attribute: a, value: v, features: realism)
                    done += settings.referenceImages
                }
            }
        }

        var cells: [EvaluationCell] = []
        var made = 0
        for r in 0..<settings.repeats {
            let indices = inputIndices(repeat: r)
            let sources = test.codes(indices)  // [N, L, C]
            let labels = test.labels(indices)  // [N, A]
            for m in methods {
                for (a, attribute) in attributes.enumerated() {
                    for v in [1, 0] {
                        let key = "r\(r)-\(m.name)-\(attribute.rawValue)-\(v)"
                        if let saved = loadCell(key) {
                            cells.append(saved)
                            done += n * styles(m)
                            continue
                        }
                        if let stop = stopAfterCells, made >= stop { return nil }
                        let base = done
                        let cell = try measure(
                            m, repeat: r, sources: sources, labels: labels, attribute: a,
                            value: v, reference: references["\(a)-\(v)"]
                        ) { imagesDone in
                            progress(
                                EvaluationProgress(
                                    done: base + imagesDone, total: total,
                                    stage: "repeat \(r + 1)/\(settings.repeats) \(m.name) "
                                        + "\(attribute.rawValue)=\(v)"))
                        }
                        try saveCell(cell)
                        cells.append(cell)
                        done += n * styles(m)
                        made += 1
                    }
                }
            }
        }
        progress(EvaluationProgress(done: total, total: total, stage: "done"))
        return cells
    }

    /// One cell.
    func measure(
        _ m: EvaluationMethod, repeat r: Int, sources: Tensor, labels: Tensor, attribute a: Int,
        value v: Int, reference: FrechetReference?, progress: (Int) -> Void
    ) throws -> EvaluationCell {
        let start = Date()
        let n = sources.shape[0]
        let d = attributes.count
        let s = styles(m)
        let sourceLabels = labels.scalars.map { $0 == 1 ? 1 : 0 }
        var z: Tensor?
        if case .isf(let net) = m {
            z = randomVectors(repeat: r, attribute: a, value: v, width: net.config.randomWidth)
        }
        var flips = SubsetTally(), noOps = SubsetTally()
        var moments = realism.map { FeatureMoments(width: $0.featureWidth) }
        let pairs = DiversityPairs.distinct.pairs(styles: s)
        let chunk = max(1, settings.batch / (1 + s))

        for lo in stride(from: 0, to: n, by: chunk) {
            let hi = min(n, lo + chunk)
            let b = hi - lo
            let src = sources.slice(0, lo..<hi).contiguous()  // [b, L, C]
            var targetValues: [Float] = []
            for i in lo..<hi {
                for k in 0..<d { targetValues.append(Float(k == a ? v : sourceLabels[i * d + k])) }
            }
            let targets = Tensor(shape: [b, d], targetValues)
            let edited = try edit(
                m, sources: src, targets: targets, attribute: a, value: v,
                z: z.map { $0.slice(0, lo..<hi).contiguous() })  // [b, S, L, C]
            let (l, c) = (generator.codeLayers, generator.codeWidth)
            // Sources first, then the edits input by input: one stream of b(1 + S) codes.
            let all = Tensor.concat([src, edited.reshaped([b * s, l, c])])
            let images = render(all)  // [b(1+S), 3, H, W]
            let editImages = images.slice(0, b..<(b + b * s)).contiguous()
            let read = try self.read(editImages)
            let features = try perceptual.features(images)
            let editRows = Array(b..<(b + b * s))
            let sourceRows = (0..<b).flatMap { [Int](repeating: $0, count: s) }
            let content = try perceptual.distances(
                features.rows(editRows), features.rows(sourceRows)
            ).scalars
            var pairDistances: [Float] = []  // [b, pairs], distinct-pair order
            if !pairs.isEmpty {
                for i in 0..<b {
                    let group = features.map { $0.slice(0, (b + i * s)..<(b + (i + 1) * s)) }
                    let all = try perceptual.pairwiseDistances(group).scalars  // [S, S]
                    pairDistances += pairs.map { all[$0.0 * s + $0.1] }
                }
            }
            if let realism {
                // The first `realismStyles` styles of every input.
                let kept = min(s, settings.realismStyles)
                let rows = (0..<b).flatMap { i in (0..<kept).map { i * s + $0 } }
                let chosen = kept == s ? editImages : editImages.indexSelect(rows)
                moments!.add(try realism.realismFeatures(chosen))
            }

            for i in 0..<b {
                let row = lo + i
                let flip = sourceLabels[row * d + a] != v
                var tally = flip ? flips : noOps
                tally.inputs += 1
                for k in 0..<s {
                    let got = read[i * s + k]
                    tally.images += 1
                    if got[a] == v { tally.targetRead += 1 }
                    if (0..<d).allSatisfy({ $0 == a || got[$0] == sourceLabels[row * d + $0] }) {
                        tally.othersKept += 1
                    }
                    tally.contentSum += Double(content[i * s + k])
                }
                let mine = (0..<pairs.count).map { Double(pairDistances[i * pairs.count + $0]) }
                if let both = Diversity.both(distinctPairDistances: mine, styles: s) {
                    tally.diversitySum += both.distinct
                    tally.officialDiversitySum += both.official
                }
                if flip { flips = tally } else { noOps = tally }
            }
            progress(hi * s)
        }

        var figure: RealismFigure?
        if let realism, let reference, let moments, moments.count >= 2 {
            let fd = reference.distance(to: moments)
            let w = realism.featureWidth
            figure = RealismFigure(
                frechetDistance: fd, editedImages: moments.count,
                referenceImages: reference.count, features: w,
                biased: moments.count < 2 * w || reference.count < 2 * w)
        }
        return EvaluationCell(
            repeatIndex: r, method: m.name, attribute: attributes[a].rawValue, value: v,
            styles: s, flips: flips, noOps: noOps, realism: figure,
            seconds: Date().timeIntervalSince(start))
    }

    /// The realism reference for attribute a = v: generated training images whose dataset
    /// label is v (the first `referenceImages` of a permutation seeded by the settings'
    /// seed), rendered from their codes; cached under the progress folder.
    func reference(attribute a: Int, value v: Int, features: RealismFeatures) throws
        -> FrechetReference
    {
        let url = progressFolder?.appendingPathComponent(
            "reference-\(attributes[a].rawValue)-\(v).json")
        if let url, let data = try? Data(contentsOf: url),
            let moments = try? JSONDecoder().decode(FeatureMoments.self, from: data),
            moments.width == features.featureWidth
        {
            return FrechetReference(moments)
        }
        let train = data.train
        let labels = train.labels.scalars
        let d = attributes.count
        var g = RandomGenerator(seed: settings.seed, position: 0x7265_6665 << 32)
        let chosen = g.permutation(train.count).filter { Int(labels[$0 * d + a]) == v }
            .prefix(settings.referenceImages)
        var moments = FeatureMoments(width: features.featureWidth)
        let order = Array(chosen)
        for lo in stride(from: 0, to: order.count, by: settings.batch) {
            let rows = Array(order[lo..<min(order.count, lo + settings.batch)])
            moments.add(try features.realismFeatures(render(train.codes(rows))))
        }
        guard moments.count >= 2 else {
            throw EvaluationError(
                "realism: the training split has \(moments.count) image(s) labelled "
                    + "\(attributes[a].rawValue) = \(v); the reference needs at least 2")
        }
        if let url { try AtomicFile.write(try JSONEncoder().encode(moments), to: url) }
        return FrechetReference(moments)
    }

    /// What the saved cells were measured with; the method list, the repeat count and the
    /// diversity rule shown may change between runs (cells are kept per method and repeat,
    /// and both diversity figures are recorded).
    var state: [String: String] {
        var s = identity
        // Version 2: realism from shifted double-precision moments and the norm-deflated
        // eigensolver; cells saved by version 1 hold wrong Fréchet distances.
        s["cells_version"] = "2"
        s["inputs"] = String(inputCount)
        s["styles"] = String(settings.styles)
        s["seed"] = String(settings.seed)
        s["strength"] = String(settings.strength)
        s["reference_images"] = String(settings.referenceImages)
        s["realism_styles"] = String(settings.realismStyles)
        s["perceptual"] = perceptual.meterName
        s["realism"] = realism?.featureName ?? "none"
        s["age_threshold"] = String(ageThreshold)
        return s
    }

    func checkOrWriteState(_ folder: URL) throws {
        let url = folder.appendingPathComponent("settings.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? Data(contentsOf: url),
            let old = try? JSONDecoder().decode([String: String].self, from: data)
        {
            let keys = Set(old.keys).union(state.keys).sorted()
            let diffs = keys.filter { old[$0] != state[$0] }
            guard diffs.isEmpty else {
                throw EvaluationError(
                    "\(folder.deletingLastPathComponent().path) holds results measured with "
                        + "other settings ("
                        + diffs.map { "\($0): \(old[$0] ?? "none")" }.joined(separator: ", ")
                        + "); give the same settings to continue, or choose another --out")
            }
            return
        }
        try AtomicFile.write(try encoder.encode(state), to: url)
    }

    func cellURL(_ key: String) -> URL? {
        progressFolder?.appendingPathComponent("cell-\(key).json")
    }

    func loadCell(_ key: String) -> EvaluationCell? {
        guard let url = cellURL(key), let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(EvaluationCell.self, from: data)
    }

    func saveCell(_ cell: EvaluationCell) throws {
        guard let url = cellURL(cell.key) else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(cell), to: url)
    }

    // MARK: Pictures

    /// A grid of the first `count` inputs of repeat 0: per row the source, then for each
    /// method and attribute the flip of that attribute (up to `stylesShown` styles).
    /// Returns images [rows·columns, 3, H, W] and the column count with their titles.
    public func gridImages(count: Int = 4, stylesShown: Int = 3) throws -> (
        images: Tensor, columns: [String]
    ) {
        let indices = Array(inputIndices(repeat: 0).prefix(count))
        let sources = test.codes(indices)
        let labels = test.labels(indices).scalars.map { $0 == 1 ? 1 : 0 }
        let d = attributes.count
        let (l, c) = (generator.codeLayers, generator.codeWidth)
        var columns = ["source"]
        var perColumn: [Tensor] = [sources]  // each [rows, L, C]
        for m in methods {
            for (a, attribute) in attributes.enumerated() {
                var edits: [Tensor] = []
                for (i, _) in indices.enumerated() {
                    let v = 1 - labels[i * d + a]
                    var t = (0..<d).map { Float(labels[i * d + $0]) }
                    t[a] = Float(v)
                    var z: Tensor?
                    if case .isf(let net) = m {
                        z = randomVectors(
                            repeat: 0, attribute: a, value: v, width: net.config.randomWidth
                        ).slice(0, i..<(i + 1)).contiguous()
                    }
                    edits.append(
                        try edit(
                            m, sources: sources.slice(0, i..<(i + 1)).contiguous(),
                            targets: Tensor(shape: [1, d], t), attribute: a, value: v, z: z))
                }
                let e = Tensor.concat(edits)  // [rows, S, L, C]
                for k in 0..<min(stylesShown, styles(m)) {
                    perColumn.append(e.slice(1, k..<(k + 1)).reshaped([indices.count, l, c]))
                    columns.append(
                        "\(m.name) \(attribute.rawValue) flip"
                            + (styles(m) > 1 ? " style \(k)" : ""))
                }
            }
        }
        // Row-major grid: input by input, column by column.
        let rows = (0..<indices.count).flatMap { i in
            perColumn.map { $0.slice(0, i..<(i + 1)) }
        }
        return (render(Tensor.concat(rows)), columns)
    }
}
