import Formats
import Foundation
import Method
import Models
import TensorCore
import TestSupport
import XCTest

/// A cheap stand-in generator: 8×8 images whose pixels are tanh of a fixed mix of the
/// code, so that different codes give different images.
private final class TinyGenerator: ImageGenerator {
    let layers: Int
    init(layers: Int = 1) { self.layers = layers }
    var codeLayers: Int { layers }
    var codeWidth: Int { 4 }
    var imageSize: Int { 8 }
    var summary: String { "tiny test generator" }
    func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        generator.normal([count, layers, 4])
    }
    func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        let n = codes.shape[0]
        let mix = Tensor.randn([layers * 4, 192], seed: 1)  // [L·4, 3·8·8]
        return codes.reshaped([n, layers * 4]).matmul(mix).reshaped([n, 3, 8, 8]).tanh()
    }
}

/// A stand-in labeler: P(male) from the red mean, expected age from the green mean.
private final class TinyLabeler: AttributeLabeler {
    var calls = 0
    func predict(_ images: Tensor) throws -> [AttributePrediction] {
        calls += images.shape[0]
        let m = images.mean(axes: [2, 3])  // [N, 3]
        let v = m.scalars
        return (0..<images.shape[0]).map {
            AttributePrediction(
                maleProbability: 0.5 + v[3 * $0], expectedAge: 35 + 40 * v[3 * $0 + 1])
        }
    }
}

final class DatasetTests: XCTestCase {
    let identity = DatasetGenerator(
        kind: "tiny", file: "tiny", sha256: String(repeating: "ab", count: 32), summary: "tiny")

    func options(_ count: Int = 23) -> DatasetOptions {
        var o = DatasetOptions(count: count)
        o.chunkSize = 5
        o.testFraction = 0.2
        o.seed = 7
        return o
    }

    fileprivate func builder(
        _ out: URL, options: DatasetOptions? = nil, labeler: TinyLabeler = TinyLabeler(),
        layers: Int = 1
    ) -> DatasetBuilder {
        let b = DatasetBuilder(
            generator: TinyGenerator(layers: layers), identity: identity, labeler: labeler,
            options: options ?? self.options(), output: out)
        b.batchSize = 3
        return b
    }

    /// All files under `dir`, relative path → bytes.
    func contents(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)!
        for case let url as URL in e {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            if isDir.boolValue { continue }
            let rel = String(url.path.dropFirst(dir.path.count))
            out[rel] = try Data(contentsOf: url)
        }
        return out
    }

    func testLayoutLabelsCodesAndSummary() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = try XCTUnwrap(try builder(dir).build())
        // 23 samples, 20% test → round(4.6) = 5 test, 18 train.
        XCTAssertEqual(summary.train.count, 18)
        XCTAssertEqual(summary.test.count, 5)
        let fm = FileManager.default
        for i in 0..<18 {
            XCTAssertTrue(fm.fileExists(atPath: dir.path + String(format: "/train/%06d.png", i)))
        }
        XCTAssertFalse(fm.fileExists(atPath: dir.path + "/train/000018.png"))
        XCTAssertTrue(fm.fileExists(atPath: dir.path + "/test/000004.png"))
        XCTAssertFalse(fm.fileExists(atPath: dir.path + "/test/000005.png"))

        // Codes: the train file holds samples 0..<18 in order, drawn per chunk.
        let z = try NumPy.readTensor(dir.appendingPathComponent("train/z.npy"))
        XCTAssertEqual(z.shape, [18, 1, 4])
        var rng = RandomGenerator(seed: 7, position: 1 << 32)
        let chunk1 = rng.normal([5, 1, 4])
        XCTAssertEqual(z.slice(0, 5..<10).scalars, chunk1.scalars)
        let zt = try NumPy.readTensor(dir.appendingPathComponent("test/z.npy"))
        XCTAssertEqual(zt.shape, [5, 1, 4])

        // The images are the generator's renders of those codes (8-bit PNG quantisation).
        let g = TinyGenerator()
        let img5 = try ImageIO.read(dir.appendingPathComponent("train/000005.png"))
        XCTAssertEqual(img5, Image(tensor: g.render(chunk1.slice(0, 0..<1), noise: .zero)))

        // Labels: the list parses with the editing code's reader and matches the rules.
        let list = try AttributeLabelFile(
            contentsOf: dir.appendingPathComponent("list_attr_celeba-train.txt"))
        XCTAssertEqual(list.columns, ["gender", "age"])
        XCTAssertEqual(list.rows.count, 18)
        XCTAssertEqual(list.rows[3].file, "000003.png")
        let text = try String(
            contentsOf: dir.appendingPathComponent("list_attr_celeba-test.txt"), encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("5\ngender age\n000000.png "), text)
        XCTAssertFalse(text.contains(" 0"), "values are 1 / -1")
        let all = try TinyLabeler().predict(g.render(z, noise: .zero))
        for (i, p) in all.enumerated() {
            XCTAssertEqual(list.rows[i].values, [Float(p.gender), Float(p.age(threshold: 35))])
        }

        // Summary: counts, balance and pos_weight = negatives / positives over train.
        let json = try JSONDecoder().decode(
            DatasetSummary.self, from: Data(contentsOf: dir.appendingPathComponent("dataset.json")))
        XCTAssertEqual(json, summary)
        XCTAssertEqual(json.codes, "z.npy")
        XCTAssertEqual(json.generator.sha256, identity.sha256)
        for (j, a) in ["gender", "age"].enumerated() {
            let pos = list.rows.filter { $0.values[j] == 1 }.count
            XCTAssertEqual(json.train.positives[a], pos)
            XCTAssertEqual(json.train.positiveFraction[a]!, Double(pos) / 18, accuracy: 1e-12)
            if pos > 0 && pos < 18 {
                XCTAssertEqual(json.posWeight[a]!!, Double(18 - pos) / Double(pos), accuracy: 1e-12)
            } else {
                XCTAssertNil(json.posWeight[a]!, "one class only: no ratio")
            }
        }
        XCTAssertEqual(json.labelRules["age"]?.contains("35"), true)

        // The training loader reads the folder as written.
        let split = try TrainingSplit.read(root: dir, name: "train")
        XCTAssertEqual(split.count, 18)
        XCTAssertEqual(split.attributeNames, ["gender", "age"])
        XCTAssertEqual(split.codes.scalars, z.scalars)
        XCTAssertEqual(split.labels.scalars, list.rows.flatMap(\.values))
        XCTAssertEqual(try TrainingSplit.read(root: dir, name: "test").count, 5)

        // Soft labels: P(male) and σ((age − 35) / 2), on the side of 0.5 the hard label is.
        let soft = try XCTUnwrap(split.softLabels)
        XCTAssertEqual(soft.shape, [18, 2])
        for (i, p) in all.enumerated() {
            let (g, a) = (soft.scalars[2 * i], soft.scalars[2 * i + 1])
            XCTAssertEqual(g, p.maleProbability, accuracy: 1e-6)
            XCTAssertEqual(a, 1 / (1 + exp(-(p.expectedAge - 35) / 2)), accuracy: 1e-6)
            XCTAssertEqual(g > 0.5, list.rows[i].values[0] == 1)
            XCTAssertEqual(a > 0.5, list.rows[i].values[1] == 1)
        }
        XCTAssertEqual(
            split.softLabelRows([3, 0])?.scalars,
            Array(soft.scalars[6..<8] + soft.scalars[0..<2]))
        XCTAssertEqual(json.softLabelRules?["gender"], "P(male)")

        // A soft-label file of the wrong shape is refused, naming it.
        try NumPy.write(
            Tensor.zeros([18, 3]), to: dir.appendingPathComponent("train/soft_labels.npy"))
        XCTAssertThrowsError(try TrainingSplit.read(root: dir, name: "train")) { error in
            XCTAssertTrue("\(error)".contains("soft_labels.npy has shape [18, 3]"), "\(error)")
        }
    }

    /// Interrupted after 2 of 5 chunks, then resumed: the same files as one uninterrupted
    /// run, and only the missing chunks are labelled again.
    func testResumeAfterInterruptionGivesTheSameFiles() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        try builder(a).build()
        XCTAssertNil(try builder(b).build(stopAfterChunks: 2))
        XCTAssertFalse(FileManager.default.fileExists(atPath: b.path + "/dataset.json"))
        // What a kill inside an atomic write leaves: removed by the resumed run.
        try Data([1, 2]).write(to: b.appendingPathComponent("train/.000011.png.tmp-x1"))
        let labeler = TinyLabeler()
        var seen: [DatasetProgress] = []
        try builder(b, labeler: labeler).build(progress: { seen.append($0) })
        XCTAssertEqual(labeler.calls, 13, "chunks 2–4 only (5 + 5 + 3 samples)")
        XCTAssertEqual(seen.first?.resumed, 10)
        XCTAssertEqual(seen.last?.done, 23)
        XCTAssertEqual(try contents(a), try contents(b))
    }

    /// Deleting the tail (the last images and a chunk's record, as a crash mid-chunk
    /// leaves them) and rerunning restores exactly the same files.
    func testDeletedTailIsRedoneIdentically() throws {
        let a = temporaryDirectory(), b = temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: a)
            try? FileManager.default.removeItem(at: b)
        }
        try builder(a).build()
        try builder(b).build()
        let fm = FileManager.default
        for name in [
            "test/000003.png", "test/000004.png", "list_attr_celeba-test.txt",
            "dataset.json", "test/z.npy", ".progress/chunk-000003-labels.npy",
        ] {
            try fm.removeItem(at: b.appendingPathComponent(name))
        }
        let labeler = TinyLabeler()
        try builder(b, labeler: labeler).build()
        XCTAssertEqual(labeler.calls, 8, "chunks 3 (record gone) and 4 (images gone)")
        XCTAssertEqual(try contents(a), try contents(b))
    }

    func testOtherSettingsAreRefusedButLabelsMayChange() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertNil(try builder(dir).build(stopAfterChunks: 1))
        var other = options()
        other.seed = 8
        XCTAssertThrowsError(try builder(dir, options: other).build()) { e in
            XCTAssertTrue("\(e)".contains("seed 7") && "\(e)".contains(dir.path), "\(e)")
        }
        var relabel = options()
        relabel.attributes = [.age]
        relabel.ageThreshold = 20
        let s = try XCTUnwrap(try builder(dir, options: relabel).build())
        XCTAssertEqual(s.attributes, ["age"])
        let text = try String(
            contentsOf: dir.appendingPathComponent("list_attr_celeba-train.txt"), encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("18\nage\n"), text)
    }

    func testWPlusCodesGoToWpNpy() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var o = options(6)
        o.testFraction = 0
        let s = try XCTUnwrap(try builder(dir, options: o, layers: 3).build())
        XCTAssertEqual(s.codes, "wp.npy")
        XCTAssertEqual(s.test.count, 0)
        let wp = try NumPy.readTensor(dir.appendingPathComponent("train/wp.npy"))
        XCTAssertEqual(wp.shape, [6, 3, 4])
        let empty = try NumPy.readTensor(dir.appendingPathComponent("test/wp.npy"))
        XCTAssertEqual(empty.shape, [0, 3, 4])
    }

    func testBadOptionsAreErrors() {
        var o = options()
        o.testFraction = 1.5
        XCTAssertThrowsError(try o.validate())
        o = options()
        o.attributes = [.age, .age]
        XCTAssertThrowsError(try o.validate())
    }
}
