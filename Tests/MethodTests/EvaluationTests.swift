import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

@testable import Method

/// 8×8 images, tanh of a fixed mix of a [1, 4] code (cheap and code-dependent).
private final class MixGenerator: ImageGenerator {
    let mix = Tensor.randn([4, 192], seed: 21)  // [4, 3·8·8]
    var codeLayers: Int { 1 }
    var codeWidth: Int { 4 }
    var imageSize: Int { 8 }
    var summary: String { "evaluation test generator" }
    func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        generator.normal([count, 1, 4])
    }
    func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        let n = codes.shape[0]
        return codes.reshaped([n, 4]).matmul(mix).reshaped([n, 3, 8, 8]).tanh()
    }
}

/// P(male) from the red mean, expected age from the green mean.
private final class MeanLabeler: AttributeLabeler {
    func predict(_ images: Tensor) throws -> [AttributePrediction] {
        let v = images.mean(axes: [2, 3]).scalars  // [N, 3]
        return (0..<images.shape[0]).map {
            AttributePrediction(
                maleProbability: 0.5 + v[3 * $0], expectedAge: 35 + 40 * v[3 * $0 + 1])
        }
    }
}

/// Mean squared pixel difference; the "features" are the images.
private final class PixelMeter: PerceptualMeter {
    var meterName: String { "pixels" }
    func features(_ images: Tensor) throws -> [Tensor] { [images.contiguous()] }
    func distances(_ a: [Tensor], _ b: [Tensor]) throws -> Tensor {
        (a[0] - b[0]).squared().mean(axes: [1, 2, 3])
    }
}

/// Channel means and the mean absolute pixel: four numbers per image.
private final class MeanFeatures: RealismFeatures {
    var featureName: String { "channel means" }
    var featureWidth: Int { 4 }
    func realismFeatures(_ images: Tensor) throws -> Tensor {
        let m = images.mean(axes: [2, 3])  // [N, 3]
        let a = images.abs().mean(axes: [1, 2, 3]).reshaped([images.shape[0], 1])
        return Tensor.concat([m, a], axis: 1).contiguous()
    }
}

/// `EditEvaluation` on stand-in networks and a dataset made by `DatasetBuilder`.
final class EvaluationTests: XCTestCase {
    fileprivate let generator = MixGenerator()

    /// 80 samples: 60 train, 20 test, labelled gender and age by `MeanLabeler`.
    func makeData() throws -> TrainingDataset {
        let dir = temporaryDirectory("eval-data")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        var options = DatasetOptions(count: 80)
        options.testFraction = 0.25
        options.seed = 3
        options.chunkSize = 40
        let identity = DatasetGenerator(
            kind: "test", file: "test", sha256: String(repeating: "ef", count: 32),
            summary: "test")
        try DatasetBuilder(
            generator: generator, identity: identity, labeler: MeanLabeler(), options: options,
            output: dir
        ).build()
        return try TrainingDataset.read(dir)
    }

    func evaluation(
        _ data: TrainingDataset, methods: [EvaluationMethod], settings: EvaluationSettings,
        folder: URL? = nil
    ) throws -> EditEvaluation {
        try EditEvaluation(
            generator: generator, data: data, ageThreshold: 35, labeler: MeanLabeler(),
            perceptual: PixelMeter(), realism: MeanFeatures(), methods: methods,
            settings: settings, progressFolder: folder)
    }

    func linear(_ data: TrainingDataset) throws -> LinearBoundaries {
        var o = LinearFitOptions()
        o.iterations = 100
        return try LinearBoundaries.fit(
            codes: data.train.codes, labels: data.train.labels,
            attributes: data.attributeNames, options: o)
    }

    func testAnEditThatChangesNothingScoresAsNoEdit() throws {
        let data = try makeData()
        var settings = EvaluationSettings()
        settings.inputs = 12
        settings.strength = 0
        settings.referenceImages = 30
        settings.batch = 7
        let e = try evaluation(data, methods: [.linear(try linear(data))], settings: settings)
        let cells = try XCTUnwrap(try e.run())
        XCTAssertEqual(cells.count, 4)
        let indices = e.inputIndices(repeat: 0)
        XCTAssertEqual(indices.count, 12)
        XCTAssertEqual(Set(indices).count, 12)
        let labels = data.test!.labels.scalars
        for c in cells {
            let a = c.attribute == "gender" ? 0 : 1
            let flips = indices.filter { Int(labels[$0 * 2 + a]) != c.value }.count
            XCTAssertEqual(c.flips.inputs, flips, c.key)
            XCTAssertEqual(c.noOps.inputs, 12 - flips, c.key)
            XCTAssertEqual(c.flips.images + c.noOps.images, 12)
            // The classifier reads the unchanged images as their dataset labels: no flip
            // succeeds, every no-op does, the other attribute always keeps its value, and
            // the content distance is exactly 0.
            XCTAssertEqual(c.flips.targetRead, 0, c.key)
            XCTAssertEqual(c.noOps.targetRead, c.noOps.images, c.key)
            XCTAssertEqual(c.flips.othersKept, c.flips.images, c.key)
            XCTAssertEqual(c.noOps.othersKept, c.noOps.images, c.key)
            XCTAssertEqual(c.flips.contentSum, 0)
            XCTAssertEqual(c.flips.diversitySum, 0, "one output per input")
            let realism = try XCTUnwrap(c.realism)
            XCTAssertEqual(realism.editedImages, 12)
            XCTAssertTrue(realism.frechetDistance.isFinite)
            XCTAssertFalse(realism.biased, "12 edited and 30 reference images for 4 features")
        }

        let report = EvaluationReport(
            settings: settings, inputs: [:], perceptual: "pixels",
            realism: "FD over channel means", cells: cells, seconds: 1)
        XCTAssertEqual(report.rows.count, 4)
        XCTAssertEqual(report.rows[0].flips.accuracy?.mean, 0)
        let table = report.table()
        XCTAssertTrue(table.contains("0 (1 output)"), table)
        XCTAssertTrue(table.contains("realism: FD over channel means"), table)
        XCTAssertTrue(report.svg().hasPrefix("<svg"))
        let json = try JSONSerialization.jsonObject(with: try report.json()) as! [String: Any]
        XCTAssertEqual((json["rows"] as? [Any])?.count, 4)
    }

    func testISFStylesAndThePairRules() throws {
        let data = try makeData()
        let config = ISFConfig(
            layers: 1, randomWidth: 4, attributes: 2, codeWidth: 4, innerWidth: 8)
        let isf = ISFNetwork(config, seed: 2)
        var settings = EvaluationSettings()
        settings.inputs = 6
        settings.styles = 4
        settings.referenceImages = 20
        settings.realismStyles = 2
        let e = try evaluation(data, methods: [.isf(isf)], settings: settings)
        let cells = try XCTUnwrap(try e.run())
        for c in cells {
            XCTAssertEqual(c.styles, 4)
            XCTAssertEqual(c.flips.images, 4 * c.flips.inputs)
            XCTAssertEqual(c.noOps.images, 4 * c.noOps.inputs)
            XCTAssertEqual(c.realism?.editedImages, 12, "2 styles of 6 inputs")
            let all = [c.flips, c.noOps]
            let distinct = all.reduce(0) { $0 + $1.diversitySum }
            let official = all.reduce(0) { $0 + $1.officialDiversitySum }
            XCTAssertGreaterThan(distinct, 0, "random styles differ")
            // K = 4: 6 distinct pairs; the official rule averages the same sum over 9.
            XCTAssertEqual(official, distinct * 6 / 9, accuracy: 1e-9 * distinct)
        }
        // Cell 0 (gender → 1) recomputed by hand: each input's four edits, rendered one
        // by one, their six pair distances averaged, summed over the inputs.
        let indices = e.inputIndices(repeat: 0)
        let z = e.randomVectors(repeat: 0, attribute: 0, value: 1, width: 4)  // [6, 4, 4]
        var expected = 0.0
        for (row, index) in indices.enumerated() {
            var target = data.test!.labels([index]).scalars
            target[0] = 1
            let edited = try e.edit(
                .isf(isf), sources: data.test!.codes([index]),
                targets: Tensor(shape: [1, 2], target), attribute: 0, value: 1,
                z: z.slice(0, row..<(row + 1)).contiguous())  // [1, 4, 1, 4]
            let images = (0..<4).map { k in
                generator.render(edited.slice(1, k..<(k + 1)).reshaped([1, 1, 4]), noise: .zero)
                    .clamped(min: -1, max: 1)
            }
            var sum = 0.0
            for (i, j) in DiversityPairs.distinct.pairs(styles: 4) {
                sum += Double((images[i] - images[j]).squared().mean().item)
            }
            expected += sum / 6
        }
        let first = cells[0]
        XCTAssertEqual(first.attribute, "gender")
        XCTAssertEqual(first.value, 1)
        XCTAssertEqual(
            first.flips.diversitySum + first.noOps.diversitySum, expected,
            accuracy: 1e-4 * expected)
    }

    func testInterruptedRunContinuesToTheSameCells() throws {
        let data = try makeData()
        let boundaries = try linear(data)
        let isf = ISFNetwork(
            ISFConfig(layers: 1, randomWidth: 4, attributes: 2, codeWidth: 4, innerWidth: 8),
            seed: 9)
        var settings = EvaluationSettings()
        settings.inputs = 5
        settings.styles = 3
        settings.repeats = 2
        settings.referenceImages = 20
        let methods: [EvaluationMethod] = [.isf(isf), .linear(boundaries)]
        let dir = temporaryDirectory("eval-resume")
        defer { try? FileManager.default.removeItem(at: dir) }

        let whole = try XCTUnwrap(
            try evaluation(data, methods: methods, settings: settings).run())
        XCTAssertEqual(whole.count, 2 * 2 * 2 * 2)
        XCTAssertTrue(whole.allSatisfy { $0.realism?.biased == true }, "5 images, 4 features")
        let folder = dir.appendingPathComponent(".progress")
        XCTAssertNil(
            try evaluation(data, methods: methods, settings: settings, folder: folder)
                .run(stopAfterCells: 5))
        let saved = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        XCTAssertEqual(saved.filter { $0.hasPrefix("cell-") }.count, 5)
        var calls = 0
        let resumed = try XCTUnwrap(
            try evaluation(data, methods: methods, settings: settings, folder: folder)
                .run(progress: { _ in calls += 1 }))
        func strip(_ cells: [EvaluationCell]) -> [EvaluationCell] {
            cells.map {
                var c = $0; c.seconds = 0; return c
            }
        }
        XCTAssertEqual(strip(resumed), strip(whole))
        XCTAssertGreaterThan(calls, 0)

        // Other settings in the same folder are refused, naming the difference.
        settings.styles = 4
        XCTAssertThrowsError(
            try evaluation(data, methods: methods, settings: settings, folder: folder).run()
        ) { error in
            XCTAssertTrue("\(error)".contains("styles: 3"), "\(error)")
        }
    }

    /// The ST-LPIPS meter (unit taps once per image, pairs by Gram products) against the
    /// network's own distances on the same images (needs the fetched weights).
    func testSTLPIPSMeterMatchesTheNetwork() throws {
        _ = try ModelFiles.url("stlpips/alex_shift_tolerant.pth")
        _ = try ModelFiles.url("stlpips/vgg_shift_tolerant.pth")
        let net = try STLPIPS.load(.alex)
        let images = Tensor.rand([4, 3, 64, 64], seed: 6) * 2 - 1  // [4, 3, 64, 64]
        let features = try net.features(images)
        let pairs = DiversityPairs.distinct.pairs(styles: 4)
        let left = images.indexSelect(pairs.map(\.0)), right = images.indexSelect(pairs.map(\.1))
        let direct = try GradMode.withoutGradients { try net(left, right) }.scalars  // [6]
        let viaFeatures = try net.distances(
            features.rows(pairs.map(\.0)), features.rows(pairs.map(\.1))
        ).scalars
        let gram = try net.pairwiseDistances(features).scalars  // [4, 4]
        for (p, (i, j)) in pairs.enumerated() {
            XCTAssertEqual(viaFeatures[p], direct[p], accuracy: 1e-6 + 1e-5 * direct[p])
            // Float32 Gram entries of ~H·W terms: a few 1e-6 of cancellation.
            XCTAssertEqual(gram[i * 4 + j], direct[p], accuracy: 1e-5 + 1e-4 * direct[p])
            XCTAssertEqual(gram[j * 4 + i], gram[i * 4 + j])
        }
        for i in 0..<4 { XCTAssertEqual(gram[i * 5], 0) }

        let vgg = STLPIPSRealismFeatures(try STLPIPS.load(.vgg))
        XCTAssertEqual(vgg.featureWidth, 512)
        let f = try vgg.realismFeatures(images)
        XCTAssertEqual(f.shape, [4, 512])
        let last = try GradMode.withoutGradients { try vgg.network.taps(images).last! }
        assertClose(f, last.mean(axes: [2, 3]), atol: 1e-6)
    }

    func testDataTheClassifierCannotReadIsRefused() throws {
        let g = try GeneratorFile.loadStyleGAN2(
            try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt"), key: "g_ema")
        let dir = temporaryDirectory("eval-synthetic")
        defer { try? FileManager.default.removeItem(at: dir) }
        try SyntheticTrainingData.write(to: dir, generator: g, train: 4, test: 2)
        let data = try TrainingDataset.read(dir)
        XCTAssertThrowsError(
            try EditEvaluation(
                generator: g, data: data, ageThreshold: 35, labeler: MeanLabeler(),
                perceptual: PixelMeter(), realism: nil, methods: [], settings: .init(),
                progressFolder: nil)
        ) { error in
            XCTAssertTrue(
                "\(error)".contains("'Attr0' is not one the classifiers read"), "\(error)")
        }
    }
}
