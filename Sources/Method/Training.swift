import Formats
import Foundation
import Layers
import Models
import TensorCore

// MARK: - Settings

/// Every choice of a training run, fully resolved; written to the run's `settings.json`
/// and into every checkpoint and the final ISF file. Defaults are the released runs'.
public struct TrainingSettings: Codable, Equatable, Sendable {
    /// The generator file and its checkpoint entry (nil: the loader's default).
    public var generator: String
    public var generatorKey: String?
    /// What the generator file holds (`GeneratorKind`'s raw value).
    public var generatorKind: String = "stylegan2"
    /// Lower-case hex SHA-256 of the generator file's bytes.
    public var generatorSHA256: String = ""
    /// The data folder in the official layout.
    public var data: String
    /// The run's name (the part after the number of its folder).
    public var name: String = "isf"
    /// Attribute names, from the data's label file.
    public var attributes: [String] = []

    public var iterations: Int = 50_000
    public var batch: Int = 4
    public var seed: UInt64 = 0
    /// Side at which real and generated images meet (the discriminator's size).
    public var trainingSize: Int = 256

    /// Adam for both networks: peak learning rate, betas, L2 weight decay.
    public var learningRate: Double = 1e-5
    public var beta1: Float = 0
    public var beta2: Float = 0.99
    public var weightDecay: Float = 1e-5
    /// The cosine schedule: warm-up length and start, and the floor at the last step.
    public var warmupSteps: Int = 5000
    public var warmupStart: Double = 5e-7
    public var finalLearningRate: Double = 5e-6
    /// Gradient-norm clipping of both networks.
    public var clipNorm: Float = 1
    /// β of the ISF's exponential moving average.
    public var averageBeta: Float = 0.999

    /// The ISF's settings the data cannot give (layers and width come from the generator).
    public var randomWidth: Int = ISFConfig.officialRandomWidth
    public var preNorm: Bool = true
    public var normType: ISFNormType = .adaln
    public var residual: Bool = false
    /// Starts the ISF's last layer at zero (with `residual`: training starts from the
    /// identity). nil: off, as the official code.
    public var zeroOutputLayer: Bool? = nil
    /// Discriminator-only steps at the start of the run (counted in `iterations`): its
    /// attribute head learns the labelled real images (classification loss alone) before
    /// the adversarial phase, so that the ISF gets a useful attribute signal from its first
    /// step. nil: none, as the official code.
    public var discriminatorPretrainSteps: Int? = nil
    /// Constant learning rate of those steps (nil: 1e-3).
    public var discriminatorPretrainLearningRate: Double? = nil
    /// Real images per pre-training step (nil: `batch`).
    public var discriminatorPretrainBatch: Int? = nil
    /// Weight of the R1 penalty on the attribute output during pre-training (nil: none),
    /// as in the adversarial phase's discriminator loss: it keeps the head's input
    /// gradients, which the ISF follows, small.
    public var discriminatorPretrainR1: Float? = nil
    /// A training checkpoint (or run folder) whose discriminator a fresh run starts from.
    public var initialDiscriminator: String? = nil
    /// An ISF file, training checkpoint or run folder whose (averaged) ISF a fresh run
    /// starts from, for both the live and the averaged weights.
    public var initialISF: String? = nil
    /// Train the attribute head on the data's soft labels (`SPLIT/soft_labels.npy`) instead
    /// of the hard ones; nil (older runs) means no.
    public var softLabels: Bool? = nil
    /// The discriminator's `max_conv_dim`, first width (nil: the official `2^14 / size`)
    /// and initialisation.
    public var discriminatorMaxWidth: Int = 512
    public var discriminatorFirstWidth: Int?
    public var discriminatorInit: DiscriminatorInit = .pytorchDefault

    /// Loss weights and choices.
    public var objective = ObjectiveSettings()
    /// `stlpips-alex`, `stlpips-vgg`, `lpips:FILE` or `none`.
    public var perceptual: String = "stlpips-alex"
    /// Generator noise during training: `random` (official), `const` or `zero`.
    public var noise: String = "random"

    /// Every this many steps: a stats line, a sample grid, a checkpoint.
    public var logEvery: Int = 100
    public var sampleEvery: Int = 1000
    public var saveEvery: Int = 1000
    /// Training checkpoints kept (older ones are deleted); 0 keeps all.
    public var keepCheckpoints: Int = 3

    public init(generator: String, data: String) {
        self.generator = generator
        self.data = data
    }

    /// Discriminator-only steps before the adversarial phase.
    public var pretrainSteps: Int { discriminatorPretrainSteps ?? 0 }
    public var useSoftLabels: Bool { softLabels ?? false }
    /// Their learning rate.
    public var pretrainLearningRate: Double { discriminatorPretrainLearningRate ?? 1e-3 }
    /// Their batch.
    public var pretrainBatch: Int { discriminatorPretrainBatch ?? batch }

    /// The learning-rate schedule of the adversarial phase (its iterations count from 0).
    public var schedule: CosineSchedule {
        CosineSchedule(
            peak: learningRate, totalSteps: max(iterations - pretrainSteps, 1),
            floor: finalLearningRate,
            warmupStart: warmupStart, warmupSteps: warmupSteps)
    }

    /// The settings as one JSON object (sorted keys).
    public func json(pretty: Bool = false) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted] : [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Checks what a user can get wrong.
    ///
    /// - Throws: `TrainingError.badSettings` listing every problem.
    public func validate() throws {
        var problems: [String] = []
        func atLeast(_ name: String, _ v: Int, _ low: Int) {
            if v < low { problems.append("\(name) must be at least \(low), got \(v)") }
        }
        atLeast("iterations", iterations, 1)
        atLeast("batch", batch, 1)
        atLeast("warmupSteps", warmupSteps, 0)
        atLeast("logEvery", logEvery, 1)
        atLeast("sampleEvery", sampleEvery, 0)
        atLeast("saveEvery", saveEvery, 0)
        atLeast("keepCheckpoints", keepCheckpoints, 0)
        atLeast("discriminatorMaxWidth", discriminatorMaxWidth, 1)
        atLeast("randomWidth", randomWidth, 1)
        atLeast("discriminatorPretrainSteps", pretrainSteps, 0)
        atLeast("discriminatorPretrainBatch", pretrainBatch, 1)
        if pretrainSteps >= iterations {
            problems.append(
                "discriminatorPretrainSteps (\(pretrainSteps)) must be below iterations "
                    + "(\(iterations)): they are counted in it")
        }
        if !(pretrainLearningRate >= 0 && pretrainLearningRate.isFinite) {
            problems.append(
                "discriminatorPretrainLearningRate must be a finite number ≥ 0, got "
                    + "\(pretrainLearningRate)")
        }
        if zeroOutputLayer == true && !residual {
            problems.append(
                "zeroOutputLayer needs residual: without it the ISF would start by "
                    + "returning zero codes")
        }
        if trainingSize < 4 || trainingSize & (trainingSize - 1) != 0 {
            problems.append("trainingSize must be a power of two ≥ 4, got \(trainingSize)")
        }
        for (n, v) in [
            ("learningRate", learningRate), ("warmupStart", warmupStart),
            ("finalLearningRate", finalLearningRate),
        ] where !(v >= 0 && v.isFinite) {
            problems.append("\(n) must be a finite number ≥ 0, got \(v)")
        }
        if !(averageBeta >= 0 && averageBeta <= 1) {
            problems.append("averageBeta must be in [0, 1], got \(averageBeta)")
        }
        if !(clipNorm > 0) { problems.append("clipNorm must be positive, got \(clipNorm)") }
        if !["random", "const", "zero"].contains(noise) {
            problems.append("noise must be random, const or zero, got '\(noise)'")
        }
        if !problems.isEmpty {
            throw TrainingError.badSettings(problems.joined(separator: "; "))
        }
        try objective.validate(attributes: attributes.isEmpty ? 1 : attributes.count)
    }
}

/// Errors a user can cause when training.
public enum TrainingError: Error, CustomStringConvertible {
    case badSettings(String)
    case badRun(String)
    case badCheckpoint(String, String)
    case notAvailable(String)

    public var description: String {
        switch self {
        case .badSettings(let why): return "training settings: \(why)"
        case .badRun(let why): return why
        case .badCheckpoint(let file, let why): return "checkpoint \(file): \(why)"
        case .notAvailable(let why): return why
        }
    }
}

// MARK: - One step's record

/// What one iteration measured.
public struct TrainingStepRecord: Sendable {
    /// The 0-based iteration that ran.
    public var step: Int
    /// Every loss term of both steps under the official names (weighted), plus the
    /// gradient norms before clipping (`d_grad_norm`, `g_grad_norm`).
    public var values: [String: Float]
    /// The learning rate the iteration ran with.
    public var learningRate: Double
    public var seconds: Double
    /// Seconds spent in the generator's forward passes.
    public var generatorSeconds: Double
}

// MARK: - The trainer

/// The state of a training run and its iteration, in the official order:
///
/// ```
/// lr = schedule.rate(forIteration: i)             // f(i − 1); 5e-7 at i = 0
/// L_D = discriminator loss;  zero D grads;  backward;  clip ‖∇D‖ ≤ 1;  Adam step on D
/// L_F = ISF loss (fresh draws);  zero F grads;  backward;  clip ‖∇F‖ ≤ 1;  Adam step on F
/// avg ← 0.999·avg + 0.001·F
/// ```
///
/// Every random draw comes from a stream whose state is part of the checkpoint, so a
/// resumed run continues exactly as an uninterrupted one would.
public final class Trainer {
    public let settings: TrainingSettings
    public let data: TrainingDataset
    public let generator: ImageGenerator
    public let isf: ISFNetwork
    /// The moving average of the ISF's weights: what editing uses.
    public let average: ISFNetwork
    public let discriminator: Discriminator
    public let objective: ISFObjective
    public let isfOptimizer: Adam
    public let discriminatorOptimizer: Adam
    public let schedule: CosineSchedule
    /// Iterations done so far (the 0-based index of the next one).
    public internal(set) var step = 0
    public internal(set) var sampler: BatchSampler
    /// The stream of z vectors and noise seeds.
    public internal(set) var draws: RandomGenerator
    let timedGenerator: TimedGenerator

    /// A fresh run: the ISF and the discriminator initialised from the seed, or from the
    /// runs that `initialISF` and `initialDiscriminator` name. `warmStart` false skips
    /// those two (a resumed run: its checkpoint replaces them, and their files may be gone).
    ///
    /// - Throws: `TrainingError`/`ObjectiveError` for settings that do not fit the data or
    ///   the generator, `TrainingDataError` for codes of the wrong shape.
    public init(
        settings: TrainingSettings, data: TrainingDataset, generator: ImageGenerator,
        perceptual: PerceptualLoss?, warmStart: Bool = true
    ) throws {
        try settings.validate()
        try data.check(generator: generator)
        guard settings.attributes == data.attributeNames else {
            throw TrainingError.badSettings(
                "the settings name attributes \(settings.attributes), the data "
                    + "\(data.attributeNames)")
        }
        if settings.useSoftLabels && data.train.softLabels == nil {
            throw TrainingError.badSettings(
                "--soft-labels needs \(data.train.codeFile.deletingLastPathComponent().path)/"
                    + "\(TrainingSplit.softLabelFileName) (run `isfgan dataset` on the data "
                    + "folder again to write it)")
        }
        self.settings = settings
        self.data = data
        self.generator = generator
        let config = ISFConfig(
            layers: generator.codeLayers, randomWidth: settings.randomWidth,
            attributes: data.attributeNames.count, codeWidth: generator.codeWidth,
            preNorm: settings.preNorm, normType: settings.normType, residual: settings.residual)
        do {
            try config.validate()
        } catch {
            throw TrainingError.badSettings("\(error)")
        }
        isf = ISFNetwork(config, seed: settings.seed)
        if settings.zeroOutputLayer == true { isf.zeroOutputLayer() }
        if warmStart, let start = settings.initialISF {
            try TrainingCheckpoint.loadISF(isf, from: URL(fileURLWithPath: start))
        }
        average = ISFNetwork(config)
        average.setTrainable(false)
        for ((_, a), (_, p)) in zip(average.namedParameters(), isf.namedParameters()) {
            a.assign(p.value)
        }
        let dConfig = DiscriminatorConfig(
            imageSize: settings.trainingSize, attributes: config.attributes,
            maxWidth: settings.discriminatorMaxWidth, firstWidth: settings.discriminatorFirstWidth)
        try dConfig.validate()
        discriminator = Discriminator(
            dConfig, initialization: settings.discriminatorInit, seed: settings.seed &+ 1)
        if warmStart, let start = settings.initialDiscriminator {
            try TrainingCheckpoint.loadDiscriminator(
                discriminator, from: URL(fileURLWithPath: start))
        }
        timedGenerator = TimedGenerator(generator)
        objective = try ISFObjective(
            generator: timedGenerator, isf: isf, discriminator: discriminator,
            perceptual: perceptual, settings: settings.objective)
        if let m = generator as? Module { m.setTrainable(false) }
        isfOptimizer = Adam(
            isf.trainableParameters, learningRate: Float(settings.warmupStart),
            beta1: settings.beta1, beta2: settings.beta2, weightDecay: settings.weightDecay)
        discriminatorOptimizer = Adam(
            discriminator.trainableParameters, learningRate: Float(settings.warmupStart),
            beta1: settings.beta1, beta2: settings.beta2, weightDecay: settings.weightDecay)
        schedule = settings.schedule
        sampler = BatchSampler(count: data.train.count, seed: settings.seed &+ 2)
        draws = RandomGenerator(seed: settings.seed &+ 3)
    }

    /// The noise mode of the settings for one rendering (nil: drawn from the stream).
    var fixedNoise: NoiseMode? {
        switch settings.noise {
        case "const": return .constant
        case "zero": return .zero
        default: return nil
        }
    }

    /// The batch of iteration `step`, drawn from the sampler.
    func nextBatch(_ count: Int? = nil) throws -> TrainingBatch {
        let (sources, targets) = sampler.next(count ?? settings.batch)
        let train = data.train
        return TrainingBatch(
            images: try train.images(sources, size: settings.trainingSize),
            codes: train.codes(sources), sourceLabels: train.labels(sources),
            targetLabels: train.labels(targets),
            realTargets: settings.useSoftLabels ? train.softLabelRows(sources) : nil)
    }

    /// Runs one iteration (see the type's description) and returns what it measured.
    ///
    /// - Throws: `TrainingDataError`/`FormatError` for an image that cannot be read,
    ///   `TrainingError.badRun` when a loss is not finite.
    @discardableResult
    public func trainStep() throws -> TrainingStepRecord {
        if step < settings.pretrainSteps { return try pretrainStep() }
        let i = step
        // The adversarial phase counts its own iterations (schedule, diversity decay).
        let phaseStep = i - settings.pretrainSteps
        let lr = schedule.rate(forIteration: phaseStep)
        isfOptimizer.learningRate = Float(lr)
        discriminatorOptimizer.learningRate = Float(lr)
        timedGenerator.seconds = 0
        var values: [String: Float] = [:]
        let seconds = try measureSeconds {
            let batch = try nextBatch()
            let b = settings.batch, rnd = settings.randomWidth

            let dDraws = DiscriminatorDraws.sample(
                batch: b, randomWidth: rnd, generator: &draws, noise: fixedNoise)
            let dTerms = try objective.discriminatorLoss(batch, draws: dDraws)
            discriminatorOptimizer.zeroGrad()
            dTerms.total.backward()
            let dNorm = clipGradientNorm(
                discriminatorOptimizer.parameters, maxNorm: settings.clipNorm)
            discriminatorOptimizer.update()
            values.merge(dTerms.values) { a, _ in a }
            values["d_grad_norm"] = dNorm
            values.merge(
                accuracies(dTerms.realAttributes, batch.sourceLabels, prefix: "d_acc_real_")
            ) { a, _ in a }

            let gDraws = ISFDraws.sample(
                batch: b, randomWidth: rnd, generator: &draws, noise: fixedNoise)
            let gTerms = try objective.isfLoss(batch, draws: gDraws, step: phaseStep)
            isfOptimizer.zeroGrad()
            gTerms.total.backward()
            let gNorm = clipGradientNorm(isfOptimizer.parameters, maxNorm: settings.clipNorm)
            isfOptimizer.update()
            values.merge(gTerms.values) { a, _ in a }
            values["g_grad_norm"] = gNorm
            values.merge(
                accuracies(
                    gTerms.fakeAttributes.detached(), batch.targetLabels, prefix: "d_acc_edit_")
            ) { a, _ in a }

            updateMovingAverage(average, toward: isf, beta: settings.averageBeta)
        }
        step += 1
        try checkFinite(values, step: i, phase: "training")
        return TrainingStepRecord(
            step: i, values: values, learningRate: lr, seconds: seconds,
            generatorSeconds: timedGenerator.seconds)
    }

    /// One discriminator-only step of the pre-training phase: the attribute head's
    /// classification loss on the batch's real images, at a constant learning rate.
    func pretrainStep() throws -> TrainingStepRecord {
        let i = step
        let lr = settings.pretrainLearningRate
        discriminatorOptimizer.learningRate = Float(lr)
        // Plain supervised learning: Adam with momentum (β1 0.9) learns the attributes
        // several times faster than the adversarial phase's β1 = 0. The moments carry over;
        // with β1 = 0 the first one is simply replaced at the next step.
        discriminatorOptimizer.beta1 = 0.9
        defer { discriminatorOptimizer.beta1 = settings.beta1 }
        var values: [String: Float] = [:]
        let seconds = try measureSeconds {
            let batch = try nextBatch(settings.pretrainBatch)
            let r1Weight = settings.discriminatorPretrainR1 ?? 0
            var images = batch.images.detached()  // [B, 3, S, S]
            if r1Weight > 0 { images = images.requiringGrad() }
            let logits = try discriminator(images).attributes  // [B, A]
            var loss = objective.classificationLoss(
                logits, batch.realTargets ?? batch.sourceLabels, realImages: true)
            values["d_pre_cls"] = loss.item
            if r1Weight > 0 {
                let r1 = Discriminator.r1Penalty(output: logits, input: images) * r1Weight
                values["d_pre_r1"] = r1.item
                loss = loss + r1
            }
            discriminatorOptimizer.zeroGrad()
            loss.backward()
            let norm = clipGradientNorm(
                discriminatorOptimizer.parameters, maxNorm: settings.clipNorm)
            discriminatorOptimizer.update()
            values["d_grad_norm"] = norm
            values.merge(
                accuracies(logits.detached(), batch.sourceLabels, prefix: "d_acc_real_")
            ) { a, _ in a }
        }
        step += 1
        try checkFinite(values, step: i, phase: "discriminator pre-training")
        return TrainingStepRecord(
            step: i, values: values, learningRate: lr, seconds: seconds, generatorSeconds: 0)
    }

    /// - Throws: `TrainingError.badRun` naming the first value of `values` that is not finite.
    func checkFinite(_ values: [String: Float], step i: Int, phase: String) throws {
        guard let bad = values.first(where: { !$0.value.isFinite }) else { return }
        throw TrainingError.badRun(
            "\(phase) diverged at step \(i): \(bad.key) is \(bad.value)")
    }

    /// Per attribute, the share of rows whose logit falls on the side of its 0/1 label:
    /// `prefix + name` → accuracy. `logits` and `labels`: [B, A].
    func accuracies(_ logits: Tensor, _ labels: Tensor, prefix: String) -> [String: Float] {
        let l = logits.contiguous().scalars, t = labels.contiguous().scalars
        let a = data.attributeNames.count
        let rows = a > 0 ? l.count / a : 0
        var out: [String: Float] = [:]
        guard rows > 0, t.count == l.count else { return out }
        for (j, name) in data.attributeNames.enumerated() {
            var right = 0
            for r in 0..<rows where (l[r * a + j] > 0) == (t[r * a + j] > 0.5) { right += 1 }
            out[prefix + name] = Float(right) / Float(rows)
        }
        return out
    }

    // MARK: Evaluation

    /// The discriminator's attribute accuracy on the first `count` held-out images against
    /// their hard labels, `d_acc_test_NAME` → share right: whether the attribute signal the
    /// ISF learns from generalises (the training batches' accuracies can be memorised).
    public func heldOutAccuracies(count: Int = 256) throws -> [String: Float] {
        let split = data.test ?? data.train
        let n = min(count, split.count)
        guard n > 0 else { return [:] }
        var right = [Int](repeating: 0, count: data.attributeNames.count)
        try GradMode.withoutGradients {
            for start in stride(from: 0, to: n, by: 32) {
                let rows = Array(start..<min(n, start + 32))
                let logits = try discriminator(
                    try split.images(rows, size: settings.trainingSize)
                ).attributes.contiguous().scalars  // [b, A]
                let labels = split.labels(rows).scalars
                for i in 0..<logits.count where (logits[i] > 0) == (labels[i] > 0.5) {
                    right[i % right.count] += 1
                }
            }
        }
        var out: [String: Float] = [:]
        for (j, name) in data.attributeNames.enumerated() {
            out["d_acc_test_" + name] = Float(right[j]) / Float(n)
        }
        return out
    }

    /// The weighted classification loss `λ_cls·BCE(D_cls(G(F(w, z, d))), d; pw)` of `isf`
    /// on held-out inputs with the targets of other held-out samples, with fixed draws
    /// (seeded by `seed`) and constant noise: a measure of how well edits reach their
    /// targets, comparable between steps and between networks.
    public func heldOutClassificationLoss(
        isf network: ISFNetwork? = nil, count: Int = 8, seed: UInt64 = 7
    ) throws -> Float {
        let split = data.test ?? data.train
        let n = min(count, split.count)
        var rng = RandomGenerator(seed: seed)
        let sources = Array(0..<n)
        let targets = sources.map {
            ($0 + 1 + rng.int(below: max(split.count - 1, 1))) % split.count
        }
        let z = rng.normal([n, settings.randomWidth])
        let net = network ?? isf
        return try GradMode.withoutGradients {
            let edited = try net(
                codes: split.codes(sources), z: z, targets: split.labels(targets))
            let x = objective.render(edited, noise: .constant)
            let logits = try discriminator(x).attributes
            return objective.classificationLoss(logits, split.labels(targets)).item
                * settings.objective.classification
        }
    }

    /// A grid of edits by the averaged ISF on fixed held-out inputs: per row, the source
    /// image, then for each attribute two styles with that attribute flipped.
    /// Returns [3, H, W] at the training size.
    public func sampleGrid(inputs: Int = 4, stylesPerAttribute: Int = 2) throws -> Tensor {
        let split = data.test ?? data.train
        let n = min(inputs, split.count)
        let d = split.attributeNames.count
        var rng = RandomGenerator(seed: settings.seed &+ 4)
        let s = d * stylesPerAttribute
        let z = rng.normal([s, settings.randomWidth])  // the same styles for every row
        var tiles: [Tensor] = []
        try GradMode.withoutGradients {
            for i in 0..<n {
                let code = split.codes([i])  // [1, L, C]
                let labels = split.labels([i]).scalars
                var targets: [Float] = []
                for a in 0..<d {
                    for _ in 0..<stylesPerAttribute {
                        var t = labels
                        t[a] = 1 - t[a]
                        targets += t
                    }
                }
                let codes = code.expanded(to: [s] + Array(code.shape.dropFirst())).contiguous()
                let edited = try average(
                    codes: codes, z: z, targets: Tensor(shape: [s, d], targets))
                let all = Tensor.concat([code, edited], axis: 0)  // [1 + S, L, C]
                tiles.append(objective.render(all, noise: .constant))
            }
        }
        return Image.grid(Tensor.concat(tiles, axis: 0), columns: 1 + s)
    }

    /// Parameter counts: ISF, discriminator, generator (frozen).
    public var parameterCounts: (isf: Int, discriminator: Int, generator: Int?) {
        (isf.parameterCount, discriminator.parameterCount, (generator as? Module)?.parameterCount)
    }
}

/// Wraps a generator to time its forward passes (for the share of time in the generator).
final class TimedGenerator: ImageGenerator {
    let base: ImageGenerator
    var seconds: Double = 0
    init(_ base: ImageGenerator) { self.base = base }
    var codeLayers: Int { base.codeLayers }
    var codeWidth: Int { base.codeWidth }
    var imageSize: Int { base.imageSize }
    var summary: String { base.summary }
    func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        base.sampleCodes(count: count, generator: &generator)
    }
    func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        var out: Tensor?
        seconds += measureSeconds { out = base.render(codes, noise: noise) }
        return out!
    }
}
