import Formats
import Foundation
import Layers
import Models
import TensorCore

/// Writes a small training data folder in the official layout from a generator: images
/// G(w) of sampled codes, and labels read off the images themselves (attribute k is 1 when
/// the mean of colour channel k mod 3, plus 0.25·k of the brightness, is above the median
/// over the set), so that a discriminator can learn them and an ISF can reach them.
/// For tests and benchmarks.
public enum SyntheticTrainingData {
    /// Writes `ROOT/{train,test}` with `train` and `test` samples and `attributes` labels.
    ///
    /// - Throws: `FormatError` when a file cannot be written.
    public static func write(
        to root: URL, generator: ImageGenerator, train: Int, test: Int, attributes: Int = 2,
        seed: UInt64 = 1, batch: Int = 8
    ) throws {
        var rng = RandomGenerator(seed: seed)
        for (name, count) in [("train", train), ("test", test)] where count > 0 {
            let folder = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let codes = generator.sampleCodes(count: count, generator: &rng)  // [N, L, C]
            var features: [[Float]] = []
            var start = 0
            while start < count {
                let end = min(count, start + batch)
                let x = GradMode.withoutGradients {
                    generator.render(codes.slice(0, start..<end).contiguous(), noise: .constant)
                }.clamped(min: -1, max: 1)  // [B, 3, S, S]
                let means = x.mean(axes: [2, 3]).scalars  // [B, 3]
                for i in 0..<(end - start) {
                    let file = folder.appendingPathComponent(String(format: "%06d.png", start + i))
                    try ImageIO.writePNG(Image(tensor: x.slice(0, i..<(i + 1))), to: file)
                    let m = Array(means[(3 * i)..<(3 * i + 3)])
                    let brightness = m.reduce(0, +) / 3
                    features.append(
                        (0..<attributes).map { k in m[k % 3] + 0.25 * Float(k) * brightness })
                }
                start = end
            }
            try NumPy.write(codes, to: folder.appendingPathComponent("wp.npy"))
            var lines = ["\(count)", (0..<attributes).map { "Attr\($0)" }.joined(separator: " ")]
            let medians = (0..<attributes).map { k -> Float in
                let v = features.map { $0[k] }.sorted()
                return v[v.count / 2]
            }
            for (i, f) in features.enumerated() {
                let values = (0..<attributes).map { f[$0] >= medians[$0] ? "1" : "-1" }
                lines.append(String(format: "%06d.png ", i) + values.joined(separator: " "))
            }
            try AtomicFile.write(
                Array((lines.joined(separator: "\n") + "\n").utf8),
                to: root.appendingPathComponent("list_attr_celeba-\(name).txt"))
        }
    }
}

/// One row of `isfgan bench train`.
public struct TrainingBenchmarkRow: Sendable {
    public var name: String
    public var batch: Int
    /// Best of the timed full steps (discriminator step, ISF step, moving average).
    public var secondsPerStep: Double
    /// Seconds of that step in the generator's forward passes (measured inside the step).
    public var generatorForwardSeconds: Double
    /// Seconds of the generator's forward and backward passes as the step runs them (one
    /// forward without gradients, three with), measured on the generator alone.
    public var generatorEstimateSeconds: Double
    public var perceptual: String
    public var peakResidentBytes: Int?
}

/// The configurations `isfgan bench train` times.
public enum TrainingBenchmarkCase: String, CaseIterable, Sendable {
    /// The `losses-small` fixture's shapes: a reduced 256 px generator (channels 32…16,
    /// 14 W+ rows of 512), discriminator 256 px with max width 64, batch 2, LPIPS (alex).
    case lossesSmall = "losses-small"
    /// A config-f 256 px generator, the released discriminator (max width 512), batch 4,
    /// ST-LPIPS (alex) when its weights are fetched.
    case configF256 = "config-f-256"
}

/// Times one full training step (both networks) on random weights and synthetic data.
///
/// The first step is a warm-up (oneDNN builds its primitives); the best of `repeats`
/// steps is reported. The generator share is given two ways: its forward passes timed
/// inside the step, and an estimate that adds the backward passes (the generator alone,
/// run as the step runs it: one forward without gradients and three forward+backward).
public func benchmarkTrainingStep(
    _ which: TrainingBenchmarkCase, repeats: Int = 2, progress: (String) -> Void = { _ in }
) throws -> TrainingBenchmarkRow {
    let generator: StyleGAN2Generator
    var settings: TrainingSettings
    let perceptual: PerceptualLoss?
    var perceptualName: String
    switch which {
    case .lossesSmall:
        generator = StyleGAN2Generator.randomlyInitialised(
            StyleGAN2Config(
                size: 256, styleDim: 512, mlpLayers: 2, channels: [32, 32, 32, 32, 32, 16, 16]),
            seed: 1)
        settings = TrainingSettings(generator: "", data: "")
        settings.batch = 2
        settings.discriminatorMaxWidth = 64
        perceptual = LPIPS(backbone: .alex)
        perceptualName = "lpips alex (untrained weights, same cost)"
    case .configF256:
        generator = StyleGAN2Generator.randomlyInitialised(.configF(size: 256), seed: 1)
        settings = TrainingSettings(generator: "", data: "")
        settings.batch = 4
        if let m = try? STLPIPS.load(.alex) {
            perceptual = m
            perceptualName = "stlpips-alex"
        } else {
            perceptual = nil
            perceptualName = "none (ST-LPIPS weights not fetched)"
        }
    }
    let root = FileManager.default.temporaryDirectory
        .appendingPathComponent("isfgan-bench-train-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: root) }
    progress("\(which.rawValue): writing synthetic data")
    try SyntheticTrainingData.write(
        to: root, generator: generator, train: settings.batch * 2, test: 0, attributes: 4)
    let data = try TrainingDataset.read(root)
    settings.attributes = data.attributeNames
    settings.trainingSize = min(256, generator.imageSize)
    settings.perceptual = perceptualName
    let trainer = try Trainer(
        settings: settings, data: data, generator: generator, perceptual: perceptual)

    progress("\(which.rawValue): warm-up step")
    try trainer.trainStep()
    var best: TrainingStepRecord?
    for r in 0..<repeats {
        progress("\(which.rawValue): step \(r + 1)/\(repeats)")
        let rec = try trainer.trainStep()
        if best == nil || rec.seconds < best!.seconds { best = rec }
    }

    progress("\(which.rawValue): generator alone")
    var rng = RandomGenerator(seed: 9)
    let codes = rng.normal([settings.batch, generator.codeLayers, generator.codeWidth])
    var generatorBest = Double.infinity
    for _ in 0..<max(1, repeats) {
        let t = measureSeconds {
            GradMode.withoutGradients { _ = generator.render(codes, noise: .random(seed: 1)) }
            for k in 0..<3 {
                let c = codes.detached().requiringGrad()
                generator.render(c, noise: .random(seed: UInt64(k))).sum().backward()
            }
        }
        generatorBest = min(generatorBest, t)
    }
    return TrainingBenchmarkRow(
        name: which.rawValue, batch: settings.batch, secondsPerStep: best!.seconds,
        generatorForwardSeconds: best!.generatorSeconds, generatorEstimateSeconds: generatorBest,
        perceptual: perceptualName, peakResidentBytes: peakResidentBytes())
}
