import Formats
import Foundation
import Layers
import Models
import TensorCore
import TestSupport
import XCTest

@testable import Method

/// The training run loop on the tiny fixture generator (32 px, codes 8 × 64) with a
/// synthetic data set written by the test; every run here is a few steps long.
final class TrainingTests: XCTestCase {
    static var cachedGenerator: StyleGAN2Generator?

    func tinyGenerator() throws -> (StyleGAN2Generator, URL) {
        let url = try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt")
        if let g = Self.cachedGenerator { return (g, url) }
        let g = try GeneratorFile.loadStyleGAN2(url, key: "g_ema")
        Self.cachedGenerator = g
        return (g, url)
    }

    /// Settings as small as the official discriminator allows: batch 1, 8 px training size
    /// (its trunk starts 2^14/S wide, so its first block costs about 2.4 GMAC per image at
    /// any S; 8 px has one block), no perceptual network, a short warm-up. A step still
    /// takes about 2 s on two shared cores, hence the few steps per test.
    func settings(_ generatorURL: URL, data: URL, iterations: Int) -> TrainingSettings {
        var s = TrainingSettings(generator: generatorURL.path, data: data.path)
        s.attributes = ["Attr0", "Attr1"]
        s.iterations = iterations
        s.batch = 1
        s.trainingSize = 8
        s.discriminatorMaxWidth = 64
        s.discriminatorFirstWidth = 8
        s.perceptual = "none"
        s.objective.positiveWeights = nil
        s.warmupSteps = 1
        s.learningRate = 2e-3
        s.finalLearningRate = 1e-3
        s.logEvery = 1
        s.sampleEvery = 0
        s.saveEvery = 2
        s.keepCheckpoints = 0
        return s
    }

    func makeData(_ g: ImageGenerator, train: Int = 12, test: Int = 6) throws -> URL {
        let root = temporaryDirectory("isfgan-train-data")
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        try SyntheticTrainingData.write(to: root, generator: g, train: train, test: test)
        return root
    }

    /// A temporary folder for run folders, removed after the test.
    func runsFolder() -> URL {
        let out = temporaryDirectory("isfgan-train-runs")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        return out
    }

    /// A fresh trainer for `s` on `data` and its run folder under `out`.
    func startRun(
        _ s: TrainingSettings, data: TrainingDataset, generator g: StyleGAN2Generator, out: URL
    ) throws -> TrainingRun {
        try TrainingRun.start(
            try Trainer(settings: s, data: data, generator: g, perceptual: nil), out: out)
    }

    // MARK: Data

    func testDataLoaderReadsTheOfficialLayoutInNameOrder() throws {
        let (g, _) = try tinyGenerator()
        let root = try makeData(g, train: 5, test: 3)
        let data = try TrainingDataset.read(root)
        XCTAssertEqual(data.train.count, 5)
        XCTAssertEqual(data.test?.count, 3)
        XCTAssertEqual(data.attributeNames, ["Attr0", "Attr1"])
        XCTAssertEqual(data.train.codes.shape, [5, 8, 64])
        XCTAssertEqual(data.train.imageFiles.map(\.lastPathComponent).first, "000000.png")
        // Only the value 1 counts as 1; the synthetic labels are ±1.
        XCTAssertTrue(data.train.labels.scalars.allSatisfy { $0 == 0 || $0 == 1 })
        let x = try data.train.images([4, 0], size: 8)
        XCTAssertEqual(x.shape, [2, 3, 8, 8])
        XCTAssertLessThanOrEqual(x.abs().max().item, 1)
        XCTAssertNoThrow(try data.check(generator: g))
    }

    func testDataLoaderErrorsNameTheFileAndTheCounts() throws {
        let (g, _) = try tinyGenerator()
        let root = try makeData(g, train: 4, test: 0)
        let train = root.appendingPathComponent("train")
        let labels = root.appendingPathComponent("list_attr_celeba-train.txt")

        // Codes for 3 images but 4 images.
        let codes = try NumPy.readTensor(train.appendingPathComponent("wp.npy"))
        try NumPy.write(
            codes.slice(0, 0..<3).contiguous(), to: train.appendingPathComponent("wp.npy"))
        XCTAssertThrowsError(try TrainingDataset.read(root)) { e in
            XCTAssertTrue("\(e)".contains("wp.npy has 3 codes"), "\(e)")
            XCTAssertTrue("\(e)".contains("4 images"), "\(e)")
        }
        try NumPy.write(codes, to: train.appendingPathComponent("wp.npy"))

        // A label file that lists 3 images.
        let good = try String(contentsOf: labels, encoding: .utf8)
        var lines = good.split(separator: "\n").map(String.init)
        try (["3"] + lines[1..<5]).joined(separator: "\n").write(
            to: labels, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingDataset.read(root)) { e in
            XCTAssertTrue("\(e)".contains("labels 3 images"), "\(e)")
        }
        // A line with a missing value.
        lines[3] = "000001.png 1"
        try lines.joined(separator: "\n").write(to: labels, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TrainingDataset.read(root)) { e in
            XCTAssertTrue("\(e)".contains("line 4 has 1 values, expected 2"), "\(e)")
        }
        // A missing label file, a missing code file, a missing folder.
        try FileManager.default.removeItem(at: labels)
        XCTAssertThrowsError(try TrainingDataset.read(root)) { e in
            XCTAssertTrue("\(e)".contains("list_attr_celeba-train.txt is missing"), "\(e)")
        }
        try FileManager.default.removeItem(at: train.appendingPathComponent("wp.npy"))
        XCTAssertThrowsError(try TrainingDataset.read(root)) { e in
            XCTAssertTrue("\(e)".contains("no code file"), "\(e)")
        }
        XCTAssertThrowsError(try TrainingDataset.read(root.appendingPathComponent("nope"))) { e in
            XCTAssertTrue("\(e)".contains("is missing"), "\(e)")
        }
    }

    func testBatchSamplerIsSeededCoversEpochsAndRestores() {
        var a = BatchSampler(count: 5, seed: 3)
        var b = BatchSampler(count: 5, seed: 3)
        var c = BatchSampler(count: 5, seed: 4)
        var firstEpoch: [Int] = []
        var differs = false
        for _ in 0..<5 {
            let x = a.next(2), y = b.next(2), z = c.next(2)
            XCTAssertEqual(x.sources, y.sources)
            XCTAssertEqual(x.targets, y.targets)
            if x.sources != z.sources || x.targets != z.targets { differs = true }
            firstEpoch += x.sources
        }
        XCTAssertTrue(differs, "another seed should draw other batches")
        // Every sample once per epoch: the first 10 draws are two full epochs.
        XCTAssertEqual(firstEpoch.prefix(5).sorted(), [0, 1, 2, 3, 4])
        XCTAssertEqual(firstEpoch.suffix(5).sorted(), [0, 1, 2, 3, 4])
        // A sampler rebuilt from a saved state continues identically.
        var restored = BatchSampler(count: 5, restoring: a.state)
        for _ in 0..<4 {
            let x = a.next(3), y = restored.next(3)
            XCTAssertEqual(x.sources, y.sources)
            XCTAssertEqual(x.targets, y.targets)
        }
    }

    // MARK: Training

    /// Training must make edits reach their targets: the classification loss of the edited
    /// held-out images, judged by the final discriminator, drops from the initial ISF to
    /// the trained one (a test that fails when the ISF does not learn).
    func testShortRunLowersHeldOutClassificationLoss() throws {
        let (g, url) = try tinyGenerator()
        let data = try TrainingDataset.read(try makeData(g, train: 16, test: 8))
        var s = settings(url, data: data.root, iterations: 32)
        s.discriminatorFirstWidth = 32
        s.batch = 2
        s.learningRate = 3e-3
        s.averageBeta = 0.5
        s.objective.diversity = 0  // the tiny images hardly vary; keep the signal clean
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let initial = ISFNetwork(trainer.isf.config, seed: s.seed)
        let generatorBefore = g.stateDict().map { $0.tensor.scalars }
        var first: Float = 0, last: Float = 0
        for i in 0..<s.iterations {
            let r = try trainer.trainStep()
            if i == 0 { first = r.values["cls"]! }
            last = r.values["cls"]!
            // Iteration i runs with f(i − 1), and with the warm-up start at i = 0.
            XCTAssertEqual(r.learningRate, s.schedule.rate(forIteration: i))
            XCTAssertEqual(trainer.isfOptimizer.learningRate, Float(r.learningRate))
        }
        XCTAssertEqual(trainer.isfOptimizer.step, s.iterations)
        XCTAssertEqual(trainer.discriminatorOptimizer.step, s.iterations)
        XCTAssertTrue(
            zip(generatorBefore, g.stateDict().map { $0.tensor.scalars }).allSatisfy { $0 == $1 },
            "the generator changed during training")
        let before = try trainer.heldOutClassificationLoss(isf: initial, count: 8)
        let after = try trainer.heldOutClassificationLoss(isf: trainer.isf, count: 8)
        print("held-out cls: initial ISF \(before), trained \(after)")
        print("train cls: \(first) at the start, \(last) at the end")
        XCTAssertLessThan(after, before * 0.8, "held-out classification loss did not drop")
    }

    /// A run stopped without a checkpoint at the stop (as by SIGKILL) and resumed from its
    /// last checkpoint reaches the same weights as an uninterrupted run. Same machine and
    /// thread count, so the values agree exactly; 1e-6 allows for nothing but noise.
    func testResumedRunMatchesUninterruptedRun() throws {
        let (g, url) = try tinyGenerator()
        let dataURL = try makeData(g, train: 6, test: 2)
        let data = try TrainingDataset.read(dataURL)
        let s = settings(url, data: dataURL, iterations: 4)
        let out = runsFolder()

        let full = try startRun(s, data: data, generator: g, out: out)
        XCTAssertEqual(try full.run(), .finished)

        let killed = try startRun(s, data: data, generator: g, out: out)
        XCTAssertEqual(try killed.run(until: 3, checkpointOnStop: false), .stopped(3))
        XCTAssertEqual(TrainingRun.checkpoints(in: killed.folder).map(\.step), [2])
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.finalURL.path))

        let resumedTrainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let resumed = try TrainingRun.resume(resumedTrainer, folder: killed.folder)
        XCTAssertEqual(resumedTrainer.step, 2)
        XCTAssertEqual(try resumed.run(), .finished)
        XCTAssertEqual(resumedTrainer.step, 4)

        func compare(_ a: Module, _ b: Module, _ what: String) {
            for ((k, p), (_, q)) in zip(a.namedParameters(), b.namedParameters()) {
                XCTAssertLessThanOrEqual(
                    maxAbsDifference(p.value, q.value), 1e-6, "\(what) \(k) differs")
            }
        }
        compare(full.trainer.isf, resumedTrainer.isf, "ISF")
        compare(full.trainer.average, resumedTrainer.average, "average")
        compare(full.trainer.discriminator, resumedTrainer.discriminator, "discriminator")
        XCTAssertEqual(full.trainer.draws, resumedTrainer.draws)
        XCTAssertEqual(full.trainer.sampler.state, resumedTrainer.sampler.state)
        // The weights must have moved, or the comparison proves nothing.
        let start = ISFNetwork(full.trainer.isf.config, seed: s.seed)
        XCTAssertGreaterThan(
            maxAbsDifference(
                start.namedParameters()[0].parameter.value,
                full.trainer.isf.namedParameters()[0].parameter.value), 1e-5)

        // The resumed run's stats hold each step once, in order.
        let steps = try String(contentsOf: resumed.statsURL, encoding: .utf8)
            .split(separator: "\n").map {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["step"]
                    as! Int
            }
        XCTAssertEqual(steps, Array(0..<4))
    }

    func testRunFolderFilesAndFinalISF() throws {
        let (g, url) = try tinyGenerator()
        let dataURL = try makeData(g, train: 4, test: 2)
        let data = try TrainingDataset.read(dataURL)
        var s = settings(url, data: dataURL, iterations: 2)
        s.generatorSHA256 = try SHA256.hexDigest(ofFile: url)
        s.sampleEvery = 1
        s.keepCheckpoints = 1
        s.name = "tiny"
        let out = runsFolder()
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let run = try TrainingRun.start(trainer, out: out)
        XCTAssertEqual(run.folder.lastPathComponent, "00000-tiny")
        XCTAssertEqual(try TrainingRun.nextFolder(out: out, name: "x").lastPathComponent, "00001-x")
        XCTAssertEqual(try run.run(), .finished)

        let fm = FileManager.default
        XCTAssertEqual(try TrainingRun.settings(ofRun: run.folder), s)
        XCTAssertTrue(try String(contentsOf: run.logURL, encoding: .utf8).contains("checkpoint"))
        XCTAssertEqual(
            try String(contentsOf: run.statsURL, encoding: .utf8).split(separator: "\n").count, 2)
        XCTAssertEqual(
            try fm.contentsOfDirectory(atPath: run.samplesURL.path).sorted(),
            ["step-000001.png", "step-000002.png"])
        // keepCheckpoints 1: only the last survives.
        XCTAssertEqual(TrainingRun.checkpoints(in: run.folder).map(\.step), [2])
        XCTAssertFalse(
            try fm.contentsOfDirectory(atPath: run.folder.path).contains { $0.hasPrefix(".") },
            "a temporary file was left behind")

        let final = try ISFFile.read(run.finalURL)
        XCTAssertEqual(final.attributes, ["Attr0", "Attr1"])
        XCTAssertEqual(final.generatorSHA256, s.generatorSHA256)
        let recorded = try JSONDecoder().decode(
            TrainingSettings.self, from: Data(final.trainingSettings!.utf8))
        XCTAssertEqual(recorded, s)
        for ((k, p), (_, q)) in zip(
            final.network.namedParameters(), trainer.average.namedParameters())
        {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "final \(k) is not the average")
        }
    }

    func testExportWritesTheOfficialTorchLayout() throws {
        let (g, url) = try tinyGenerator()
        let dataURL = try makeData(g, train: 4, test: 0)
        let data = try TrainingDataset.read(dataURL)
        let s = settings(url, data: dataURL, iterations: 1)
        let out = runsFolder()
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let run = try TrainingRun.start(trainer, out: out)
        XCTAssertEqual(try run.run(), .finished)

        let files = try TrainingExport.torch(from: run.folder, to: out.appendingPathComponent("x"))
        XCTAssertEqual(
            files.map(\.lastPathComponent), ["000001_nets_ema.ckpt", "000001_nets.ckpt"])
        let ema = try TorchCheckpoint(contentsOf: files[0])
        let live = try TorchCheckpoint(contentsOf: files[1])
        XCTAssertEqual(ema.format, .zip)
        let mapnet = try ISFNetwork.load(checkpoint: files[0])
        for ((k, p), (_, q)) in zip(mapnet.namedParameters(), trainer.average.namedParameters()) {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "exported EMA \(k)")
        }
        let liveMapnet = try live.stateDict("mapnet")
        XCTAssertEqual(liveMapnet.keys, trainer.isf.stateDict().map(\.key))
        for (k, t) in trainer.isf.stateDict() {
            XCTAssertEqual(liveMapnet[k]?.scalars, t.scalars, "exported live \(k)")
        }
        let d = try Discriminator.load(checkpoint: files[0])
        // Max width is read back as the widest block (any larger value builds the same net).
        XCTAssertEqual(d.config.firstWidth, trainer.discriminator.config.firstWidth)
        XCTAssertEqual(
            d.config.blockWidths.map(\.output),
            trainer.discriminator.config.blockWidths.map(\.output))
        for ((k, p), (_, q)) in zip(d.namedParameters(), trainer.discriminator.namedParameters()) {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "exported discriminator \(k)")
        }
        // The final ISF file exports its mapnet alone.
        let fromFinal = try TrainingExport.torch(
            from: run.finalURL, to: out.appendingPathComponent("y"))
        XCTAssertEqual(fromFinal.map(\.lastPathComponent), ["000001_nets_ema.ckpt"])
        XCTAssertNil(try TorchCheckpoint(contentsOf: fromFinal[0]).root["discriminator"])
    }

    /// The isfgan remedies: `zeroOutputLayer` with `residual` starts the ISF (and its
    /// average) as the identity, the neighbour term's gradient there is 0 rather than NaN,
    /// and `discriminatorPretrainSteps` first trains only the discriminator (ISF untouched,
    /// accuracies logged) before the adversarial phase starts its own schedule at 0.
    func testPretrainingPhaseAndIdentityStart() throws {
        let (g, url) = try tinyGenerator()
        let data = try TrainingDataset.read(try makeData(g, train: 8, test: 2))
        var s = settings(url, data: data.root, iterations: 5)
        s.residual = true
        s.zeroOutputLayer = true
        s.discriminatorPretrainSteps = 3
        s.discriminatorPretrainLearningRate = 1e-3
        s.discriminatorPretrainBatch = 2
        s.warmupSteps = 2
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let codes = data.train.codes([0, 1])  // [2, L, C]
        let z = Tensor.randn([2, s.randomWidth], seed: 3)
        let targets = Tensor(shape: [2, 2], [1, 0, 0, 1])
        for net in [trainer.isf, trainer.average] {
            let out = try GradMode.withoutGradients {
                try net(codes: codes, z: z, targets: targets)
            }
            XCTAssertEqual(out.scalars, codes.scalars, "a zero last layer is not the identity")
        }
        let isfBefore = trainer.isf.stateDict().map { $0.tensor.scalars }
        let dBefore = trainer.discriminator.stateDict().map { $0.tensor.scalars }
        for i in 0..<3 {
            let r = try trainer.trainStep()
            XCTAssertEqual(r.learningRate, 1e-3)
            XCTAssertNotNil(r.values["d_pre_cls"])
            XCTAssertNil(r.values["g_total"], "step \(i) of pre-training ran the ISF")
            for name in ["Attr0", "Attr1"] {
                let a = try XCTUnwrap(r.values["d_acc_real_" + name])
                XCTAssertTrue([0, 0.5, 1].contains(a), "accuracy of 2 images is \(a)")
            }
        }
        XCTAssertEqual(trainer.isf.stateDict().map { $0.tensor.scalars }, isfBefore)
        XCTAssertNotEqual(trainer.discriminator.stateDict().map { $0.tensor.scalars }, dBefore)
        XCTAssertEqual(trainer.sampler.state.offset, 6, "pre-training batches are not 2 images")
        XCTAssertEqual(trainer.discriminatorOptimizer.beta1, s.beta1)
        // The adversarial phase counts from 0 (its warm-up start) and the identity's
        // neighbour gradient is finite.
        for i in 0..<2 {
            let r = try trainer.trainStep()
            XCTAssertEqual(r.learningRate, s.schedule.rate(forIteration: i))
            XCTAssertTrue(r.values["g_grad_norm"]!.isFinite)
            XCTAssertNotNil(r.values["d_acc_edit_Attr0"])
        }
        XCTAssertEqual(s.schedule.totalSteps, 2)
        XCTAssertNotEqual(trainer.isf.stateDict().map { $0.tensor.scalars }, isfBefore)

        var bad = s
        bad.residual = false
        XCTAssertThrowsError(try bad.validate()) {
            XCTAssertTrue("\($0)".contains("zeroOutputLayer needs residual"), "\($0)")
        }
        bad = s
        bad.discriminatorPretrainSteps = 5
        XCTAssertThrowsError(try bad.validate()) {
            XCTAssertTrue("\($0)".contains("must be below iterations"), "\($0)")
        }
    }

    /// `softLabels`: the attribute head learns `SPLIT/soft_labels.npy` (pre-training and
    /// the discriminator step), a run without the file is refused, and the held-out
    /// accuracies land in stats.jsonl when pre-training ends.
    func testSoftLabelsAndHeldOutAccuracy() throws {
        let (g, url) = try tinyGenerator()
        let root = try makeData(g, train: 8, test: 4)
        var s = settings(url, data: root, iterations: 3)
        s.softLabels = true
        s.discriminatorPretrainSteps = 1
        s.discriminatorPretrainBatch = 4
        s.discriminatorPretrainLearningRate = 1e-3
        s.discriminatorPretrainR1 = 3
        s.beta1 = 0.5
        XCTAssertThrowsError(
            try Trainer(
                settings: s, data: try TrainingDataset.read(root), generator: g,
                perceptual: nil)
        ) { XCTAssertTrue("\($0)".contains("soft_labels.npy"), "\($0)") }

        let soft = Tensor(shape: [8, 2], (0..<16).map { Float($0 % 5) / 4 })  // 0 … 1
        try NumPy.write(soft, to: root.appendingPathComponent("train/soft_labels.npy"))
        let data = try TrainingDataset.read(root)
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        var sampler = trainer.sampler
        let rows = sampler.next(4).sources
        let images = try data.train.images(rows, size: s.trainingSize)
        let logits = try GradMode.withoutGradients {
            try trainer.discriminator(images).attributes
        }  // [4, 2]
        let want = Loss.binaryCrossEntropyWithLogits(
            logits, targets: soft.indexSelect(rows).contiguous()
        ).item
        let hard = Loss.binaryCrossEntropyWithLogits(logits, targets: data.train.labels(rows)).item
        let input = images.requiringGrad()
        let r1 = Discriminator.r1Penalty(
            output: try trainer.discriminator(input).attributes, input: input
        ).item
        XCTAssertNotEqual(want, hard, accuracy: 1e-4, "soft and hard targets give one loss")

        let run = try TrainingRun.start(trainer, out: runsFolder())
        _ = try run.run(until: 1)
        let line = try String(contentsOf: run.statsURL, encoding: .utf8)
        let stats = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        XCTAssertEqual(stats["d_pre_cls"] as! Double, Double(want), accuracy: 1e-5)
        // The R1 term of pre-training: 3 · ½·mean Σ|∂ΣD_cls/∂x|², recorded on its own.
        XCTAssertEqual(stats["d_pre_r1"] as! Double, Double(r1) * 3, accuracy: 1e-6)
        XCTAssertEqual(trainer.isfOptimizer.beta1, 0.5)
        XCTAssertEqual(trainer.discriminatorOptimizer.beta1, 0.5, "pre-training left β1 at 0.9")
        for name in ["Attr0", "Attr1"] {
            let a = try XCTUnwrap(stats["d_acc_test_" + name] as? Double)
            XCTAssertTrue([0, 0.25, 0.5, 0.75, 1].contains(a), "accuracy of 4 images is \(a)")
        }
        // The adversarial step also takes the soft targets: its real batch carries them.
        let batch = try trainer.nextBatch()
        XCTAssertEqual(batch.realTargets?.shape, [1, 2])
    }

    /// A run stopped early exports its averaged ISF as an ISF file with the step recorded.
    func testExportAsISFFileFromAStoppedRun() throws {
        let (g, url) = try tinyGenerator()
        let dataURL = try makeData(g, train: 4, test: 0)
        let data = try TrainingDataset.read(dataURL)
        let s = settings(url, data: dataURL, iterations: 4)
        let out = runsFolder()
        let trainer = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        let run = try TrainingRun.start(trainer, out: out)
        XCTAssertEqual(try run.run(until: 2), .stopped(2))
        let (step, file) = try TrainingExport.isf(from: run.folder)
        XCTAssertEqual(step, 2)
        XCTAssertEqual(file.lastPathComponent, "isf-step-000002.safetensors")
        let isf = try ISFFile.read(file)
        XCTAssertEqual(isf.attributes, ["Attr0", "Attr1"])
        for ((k, p), (_, q)) in zip(
            isf.network.namedParameters(), trainer.average.namedParameters())
        {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "exported \(k)")
        }
        let recorded =
            try JSONSerialization.jsonObject(
                with: Data(isf.trainingSettings!.utf8)) as! [String: Any]
        XCTAssertEqual(recorded["stoppedAtStep"] as? Int, 2)
        // A named file in a folder that does not exist yet.
        let named = out.appendingPathComponent("new/folder/isf.safetensors")
        XCTAssertEqual(try TrainingExport.isf(from: run.folder, to: named).url, named)
        XCTAssertEqual(try ISFFile.read(named).attributes, ["Attr0", "Attr1"])
        XCTAssertThrowsError(try TrainingExport.isf(from: dataURL)) {
            XCTAssertTrue("\($0)".contains("no checkpoints"), "\($0)")
        }

        // A fresh run can start from this run's discriminator (`--d-from`).
        var next = s
        next.initialDiscriminator = run.folder.path
        let warm = try Trainer(settings: next, data: data, generator: g, perceptual: nil)
        for ((k, p), (_, q)) in zip(
            warm.discriminator.namedParameters(), trainer.discriminator.namedParameters())
        {
            XCTAssertEqual(p.value.scalars, q.value.scalars, "discriminator \(k) not loaded")
        }
        next.initialDiscriminator = dataURL.path
        XCTAssertThrowsError(
            try Trainer(settings: next, data: data, generator: g, perceptual: nil))

        // ... and from its averaged ISF (`--isf-from`), a run folder or an exported file.
        for source in [run.folder, named] {
            var cont = s
            cont.initialISF = source.path
            let t = try Trainer(settings: cont, data: data, generator: g, perceptual: nil)
            for ((k, p), ((_, a), (_, q))) in zip(
                t.isf.namedParameters(),
                zip(t.average.namedParameters(), trainer.average.namedParameters()))
            {
                XCTAssertEqual(p.value.scalars, q.value.scalars, "ISF \(k) from \(source)")
                XCTAssertEqual(a.value.scalars, q.value.scalars, "average \(k) from \(source)")
            }
        }
        var other = s
        other.initialISF = named.path
        other.residual = !s.residual
        XCTAssertThrowsError(
            try Trainer(settings: other, data: data, generator: g, perceptual: nil)
        ) {
            XCTAssertTrue("\($0)".contains(named.path) && "\($0)".contains("residual"), "\($0)")
        }
        other = s
        other.initialISF = dataURL.appendingPathComponent("dataset.json").path
        XCTAssertThrowsError(
            try Trainer(settings: other, data: data, generator: g, perceptual: nil))
        // A resumed run skips them: its checkpoint replaces them, and they may be gone.
        other.initialISF = out.appendingPathComponent("gone").path
        other.initialDiscriminator = other.initialISF
        XCTAssertThrowsError(
            try Trainer(settings: other, data: data, generator: g, perceptual: nil))
        XCTAssertNoThrow(
            try Trainer(
                settings: other, data: data, generator: g, perceptual: nil, warmStart: false))
    }

    func testCorruptCheckpointIsSkippedOnResumeAndBadSettingsAreNamed() throws {
        let (g, url) = try tinyGenerator()
        let dataURL = try makeData(g, train: 4, test: 0)
        let data = try TrainingDataset.read(dataURL)
        let s = settings(url, data: dataURL, iterations: 4)
        let out = runsFolder()
        let run = try startRun(s, data: data, generator: g, out: out)
        // Stopped by `until` (a hard stop): no checkpoint at the stop.
        XCTAssertEqual(try run.run(until: 3), .stopped(3))
        XCTAssertEqual(TrainingRun.checkpoints(in: run.folder).map(\.step), [2])
        // A truncated newer checkpoint (not something atomic writes leave, but a disk can).
        try Data([1, 2, 3]).write(
            to: run.checkpointsURL.appendingPathComponent(TrainingRun.checkpointName(step: 3)))
        let t = try Trainer(settings: s, data: data, generator: g, perceptual: nil)
        _ = try TrainingRun.resume(t, folder: run.folder)
        XCTAssertEqual(t.step, 2)

        var bad = s
        bad.batch = 0
        bad.trainingSize = 12
        XCTAssertThrowsError(try Trainer(settings: bad, data: data, generator: g, perceptual: nil))
        {
            XCTAssertTrue("\($0)".contains("batch must be at least 1"), "\($0)")
            XCTAssertTrue("\($0)".contains("trainingSize must be a power of two"), "\($0)")
        }
    }
}
