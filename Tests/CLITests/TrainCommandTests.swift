import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import CLI
@testable import Formats
@testable import Method
@testable import Models

/// `isfgan train` and `isfgan export` end to end on the tiny fixture generator and a
/// synthetic data set (runs of a few steps).
final class TrainCommandTests: XCTestCase {
    func setUpRun() throws -> (generator: String, data: URL, out: URL) {
        let g = try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt")
        let generator = try GeneratorFile.loadStyleGAN2(g, key: "g_ema")
        let dir = temporaryDirectory("isfgan-train-cli")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        try SyntheticTrainingData.write(to: data, generator: generator, train: 4, test: 2)
        return (g.path, data, dir.appendingPathComponent("runs"))
    }

    func smallRun(
        _ p: (generator: String, data: URL, out: URL), iters: Int, perceptual: String = "none"
    ) -> [String] {
        [
            "train", "--generator", p.generator, "--data", p.data.path, "--out", p.out.path,
            "--name", "cli", "--iters", "\(iters)", "--batch", "1", "--training-size", "8",
            "--d-max-width", "32", "--d-first-width", "8", "--perceptual", perceptual, "--warmup",
            "1", "--log-every", "1",
            "--save-every", "2", "--sample-every", "0", "--threads", "2",
        ]
    }

    func testDryRunPrintsSettingsCountsAndStepTime() throws {
        let p = try setUpRun()
        let r = runCLI(smallRun(p, iters: 10) + ["--dry-run"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("\"iterations\" : 10"), r.out)
        XCTAssertTrue(r.out.contains("ISF parameters:"), r.out)
        XCTAssertTrue(r.out.contains("discriminator parameters:"), r.out)
        XCTAssertTrue(r.out.contains("estimated step time:"), r.out)
        XCTAssertTrue(r.out.contains("\"attributes\" : [\n    \"Attr0\""), r.out)
        XCTAssertFalse(FileManager.default.fileExists(atPath: p.out.path), "dry run wrote files")

        // The training levers land in the settings.
        try NumPy.write(
            Tensor.full([4, 2], 0.5), to: p.data.appendingPathComponent("train/soft_labels.npy"))
        let levers = runCLI(
            smallRun(p, iters: 10) + [
                "--dry-run", "--beta1", "0.9", "--soft-labels", "--d-pretrain", "3",
                "--d-pretrain-r1", "2", "--d-pos-weight", "2,3", "--ds-cap", "0.07",
                "--cls-views", "4", "--view-shift", "3",
            ])
        XCTAssertEqual(levers.status, 0, levers.err)
        for line in [
            "\"beta1\" : 0.9", "\"softLabels\" : true", "\"discriminatorPretrainR1\" : 2",
            "\"d_pos_weight\" : [\n      2,\n      3\n    ]", "\"ds_cap\" : 0.07",
            "\"cls_views\" : 4", "\"view_shift\" : 3",
        ] {
            XCTAssertTrue(levers.out.contains(line), "\(line) missing from:\n\(levers.out)")
        }
        let badBeta = runCLI(smallRun(p, iters: 10) + ["--dry-run", "--beta1", "1"])
        XCTAssertEqual(badBeta.status, 2)
        XCTAssertTrue(badBeta.err.contains("--beta1 must be in 0..<1"), badBeta.err)
        for (flag, value, message) in [
            ("--ds-cap", "0", "--ds-cap must be a finite number above 0"),
            ("--ds-cap", "1e300", "--ds-cap must be a finite number above 0"),
            ("--lambda-ds", "1e300", "--lambda-ds 1e+300 is too large"),
            ("--lr", "1e39", "--lr 1e+39 is too large"),
            ("--d-pretrain", "10", "--d-pretrain (10) must be below --iters (10)"),
            ("--cls-views", "9", "--cls-views"), ("--view-shift", "-1", "--view-shift"),
        ] {
            let bad = runCLI(smallRun(p, iters: 10) + ["--dry-run", flag, value])
            XCTAssertEqual(bad.status, 2, "\(flag) \(value)")
            XCTAssertTrue(bad.err.contains(message), bad.err)
        }
        let badWeights = runCLI(smallRun(p, iters: 10) + ["--dry-run", "--d-pos-weight", "2"])
        XCTAssertEqual(badWeights.status, 2)
        XCTAssertTrue(
            badWeights.err.contains("--d-pos-weight expects 2 positive numbers"), badWeights.err)
        let unweighted = runCLI(smallRun(p, iters: 10) + ["--dry-run", "--d-pos-weight", "none"])
        XCTAssertEqual(unweighted.status, 0, unweighted.err)
        XCTAssertTrue(
            unweighted.out.contains("\"d_pos_weight\" : [\n      1,\n      1\n    ]"),
            unweighted.out)
        let noISF = p.out.appendingPathComponent("no-such-run").path
        let badStart = runCLI(smallRun(p, iters: 10) + ["--dry-run", "--isf-from", noISF])
        XCTAssertNotEqual(badStart.status, 0)
        XCTAssertTrue(badStart.err.contains(noISF), badStart.err)
    }

    /// `dataset.json` with no ratio for one attribute (one class only): the others keep
    /// theirs and that one weighs 1, with a warning naming it.
    func testDatasetPositiveWeightsWithAOneClassAttribute() throws {
        let p = try setUpRun()
        let summary = """
            {"age_threshold": 35, "attributes": ["Attr0", "Attr1"], "chunk_size": 100,
             "code_shape": [1, 4], "codes": "z.npy", "count": 6, "format": "isfgan-dataset",
             "generator": {"file": "g", "kind": "dcgan", "sha256": "0", "summary": "g"},
             "label_rules": {}, "pos_weight": {"Attr0": 1.5, "Attr1": null}, "seed": 0,
             "test": {"count": 2, "positive_fraction": {}, "positives": {}},
             "test_fraction": 0.3,
             "train": {"count": 4, "positive_fraction": {}, "positives": {}}, "version": 1}
            """
        try Data(summary.utf8).write(to: p.data.appendingPathComponent("dataset.json"))
        let r = runCLI(smallRun(p, iters: 10) + ["--dry-run", "--d-pos-weight", "data"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("no pos_weight for Attr1"), r.err)
        XCTAssertTrue(r.out.contains("\"pos_weight\" : [\n      1.5,\n      1\n    ]"), r.out)
        XCTAssertTrue(r.out.contains("\"d_pos_weight\" : [\n      1.5,\n      1\n    ]"), r.out)
    }

    /// A run that diverges stops with the value that went bad, says whether a checkpoint
    /// exists to restart from, and keeps the event in log.txt.
    func testDivergenceIsReportedAndLogged() throws {
        let p = try setUpRun()
        let r = runCLI(smallRun(p, iters: 6) + ["--lr", "1e30"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("diverged at step"), r.err)
        XCTAssertTrue(
            r.err.contains("no checkpoint was saved before it")
                || r.err.contains("the last checkpoint, step"), r.err)
        let run = p.out.appendingPathComponent("00000-cli")
        let log = try String(contentsOf: run.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(log.contains("diverged at step"), log)
    }

    func testTrainResumeAndExport() throws {
        let p = try setUpRun()
        let r = runCLI(smallRun(p, iters: 2))
        XCTAssertEqual(r.status, 0, r.err)
        let folder = p.out.appendingPathComponent("00000-cli")
        XCTAssertTrue(r.out.contains("finished 2 iterations"), r.out)
        // Off a terminal: one plain status line per --log-every steps.
        XCTAssertTrue(r.err.contains("step 2/2"), r.err)
        XCTAssertTrue(r.err.contains("it/s"), r.err)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        for n in [
            "checkpoints", "final.safetensors", "log.txt", "samples", "settings.json",
            "stats.jsonl",
        ] {
            XCTAssertTrue(names.contains(n), "\(n) missing from \(names)")
        }
        let settings = try TrainingRun.settings(ofRun: folder)
        XCTAssertEqual(
            settings.generatorSHA256,
            try SHA256.hexDigest(ofFile: URL(fileURLWithPath: p.generator)))
        XCTAssertNil(
            settings.objective.positiveWeights, "2 attributes: FFHQ pos_weight must not apply")

        // Resuming a finished run only rewrites the final file; changing settings is refused.
        let again = runCLI(["train", "--resume", folder.path])
        XCTAssertEqual(again.status, 0, again.err)
        let refused = runCLI(["train", "--resume", folder.path, "--lr", "1"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.err.contains("--lr cannot be changed"), refused.err)

        let export = runCLI(["export", "--format", "torch", folder.path])
        XCTAssertEqual(export.status, 0, export.err)
        let ckpt = folder.appendingPathComponent("export/000002_nets_ema.ckpt")
        XCTAssertTrue(export.out.contains(ckpt.path), export.out)
        // The attribute names do not survive in the official files: export says how to give them.
        XCTAssertTrue(export.err.contains("isfgan edit --isf FILE --attributes "), export.err)
        let file = try TorchCheckpoint(contentsOf: ckpt)
        XCTAssertNotNil(file.root["mapnet"])
        XCTAssertNotNil(file.root["discriminator"])
        // What edit takes: the official checkpoint and the final ISF file both load.
        XCTAssertNoThrow(try LoadedISF.load(ckpt))
        XCTAssertNoThrow(try LoadedISF.load(folder.appendingPathComponent("final.safetensors")))
    }

    func testErrorsNameTheProblem() throws {
        let p = try setUpRun()
        try FileManager.default.removeItem(at: p.data.appendingPathComponent("test/000001.png"))
        let r = runCLI(smallRun(p, iters: 2))
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("test/wp.npy has 2 codes"), r.err)

        let missing = runCLI(["train", "--data", p.data.path])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("--generator is required"), missing.err)

        let badPerceptual = runCLI(smallRun(p, iters: 2, perceptual: "alexnet"))
        XCTAssertEqual(badPerceptual.status, 2)
        XCTAssertTrue(badPerceptual.err.contains("--perceptual must be"), badPerceptual.err)
    }
}
