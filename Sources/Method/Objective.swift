import Foundation
import Layers
import Models
import TensorCore

// MARK: - Settings

/// The weights of every loss term and the choices of the official objective
/// (`train_mmuit.py` / `train.sh`), with the released runs' values as defaults.
public struct ObjectiveSettings: Codable, Equatable, Sendable {
    /// `lambda_cls`: attribute classification, in both steps.
    public var classification: Float = 2
    /// `lambda_r1`: the R1 penalty of the discriminator step.
    public var r1: Float = 1
    /// Which discriminator output R1 differentiates (official: the attribute logits).
    public var r1Target: R1Target = .attributes
    /// `lambda_lat_cyc`: mean |F(F(w, z1, d), z2, a) − w|.
    public var latentCycle: Float = 1
    /// `lambda_src_cyc`: mean |G(w_cyc) − x|.
    public var imageCycle: Float = 1
    /// `lambda_ds`: the diversity-sensitive term, subtracted from the ISF loss.
    public var diversity: Float = 2
    /// When set, the diversity weight falls linearly to zero over this many steps (as in
    /// StarGAN v2); nil keeps it constant (the official ISF-GAN code ignores `ds_iter`).
    public var diversityDecaySteps: Int? = nil
    /// When set, each sample's diversity distance counts only up to this value (a hinge,
    /// `min(mean|x' − x''|, cap)`), so the term stops buying pixel distance beyond it; nil:
    /// unbounded, as in the official code.
    public var diversityCap: Float? = nil
    /// How many views of the edited image the ISF's classification term averages over:
    /// 1 (the official code) scores x' alone; each further view is x' circularly shifted by
    /// up to `viewShift` pixels, every other one also mirrored, so that the edit must change
    /// what the attribute head reads in every view rather than a pattern it reads in one.
    public var classificationViews: Int = 1
    /// The largest shift, in pixels, of the classification term's extra views.
    public var viewShift: Int = 4
    /// `lambda_nb`: the neighbouring constraint, mean over the batch of ‖w − w'‖_F.
    public var neighbour: Float = 0.01
    /// `lambda_lpips`: perceptual distance between the edited and the source image.
    public var perceptual: Float = 1
    /// `lambda_lpips_cyc`: perceptual distance between the cycled and the source image.
    public var perceptualCycle: Float = 1
    /// `pos_weight` of the attribute cross-entropy, one per attribute; nil weighs every
    /// positive label 1 (`use_posweight` off).
    public var positiveWeights: [Float]? = ObjectiveSettings.ffhqPositiveWeights
    /// `pos_weight` of the discriminator's attribute loss on real images (its adversarial
    /// step and pre-training); nil: `positiveWeights`, as the official code. Lets the
    /// discriminator learn a rare class that the ISF's term should not be tilted towards.
    public var discriminatorPositiveWeights: [Float]? = nil

    /// The official `pos_weight` for FFHQ's Gender, Glasses, Age, Expression.
    public static let ffhqPositiveWeights: [Float] = [1.256508, 5.306164, 6.656235, 0.37233]

    public init() {}

    /// The official option names (`train_mmuit.py`), so a run's settings read like the
    /// reference's arguments.
    enum CodingKeys: String, CodingKey {
        case classification = "lambda_cls"
        case r1 = "lambda_r1"
        case r1Target = "r1_target"
        case latentCycle = "lambda_lat_cyc"
        case imageCycle = "lambda_src_cyc"
        case diversity = "lambda_ds"
        case diversityDecaySteps = "ds_iter"
        case diversityCap = "ds_cap"
        case classificationViews = "cls_views"
        case viewShift = "view_shift"
        case neighbour = "lambda_nb"
        case perceptual = "lambda_lpips"
        case perceptualCycle = "lambda_lpips_cyc"
        case positiveWeights = "pos_weight"
        case discriminatorPositiveWeights = "d_pos_weight"
    }

    /// Decodes; a missing key keeps its official default (`pos_weight: null` turns the
    /// positive weights off).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        let d = ObjectiveSettings()
        classification = try value(.classification, d.classification)
        r1 = try value(.r1, d.r1)
        r1Target = try value(.r1Target, d.r1Target)
        latentCycle = try value(.latentCycle, d.latentCycle)
        imageCycle = try value(.imageCycle, d.imageCycle)
        diversity = try value(.diversity, d.diversity)
        diversityDecaySteps = try c.decodeIfPresent(Int.self, forKey: .diversityDecaySteps)
        diversityCap = try c.decodeIfPresent(Float.self, forKey: .diversityCap)
        classificationViews = try value(.classificationViews, d.classificationViews)
        viewShift = try value(.viewShift, d.viewShift)
        neighbour = try value(.neighbour, d.neighbour)
        perceptual = try value(.perceptual, d.perceptual)
        perceptualCycle = try value(.perceptualCycle, d.perceptualCycle)
        if c.contains(.positiveWeights) {
            positiveWeights = try c.decodeIfPresent([Float].self, forKey: .positiveWeights)
        }
        discriminatorPositiveWeights = try c.decodeIfPresent(
            [Float].self, forKey: .discriminatorPositiveWeights)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(classification, forKey: .classification)
        try c.encode(r1, forKey: .r1)
        try c.encode(r1Target, forKey: .r1Target)
        try c.encode(latentCycle, forKey: .latentCycle)
        try c.encode(imageCycle, forKey: .imageCycle)
        try c.encode(diversity, forKey: .diversity)
        try c.encode(diversityDecaySteps, forKey: .diversityDecaySteps)  // null: constant
        try c.encodeIfPresent(diversityCap, forKey: .diversityCap)
        if classificationViews != 1 {  // older runs' settings read the same
            try c.encode(classificationViews, forKey: .classificationViews)
            try c.encode(viewShift, forKey: .viewShift)
        }
        try c.encode(neighbour, forKey: .neighbour)
        try c.encode(perceptual, forKey: .perceptual)
        try c.encode(perceptualCycle, forKey: .perceptualCycle)
        try c.encode(positiveWeights, forKey: .positiveWeights)  // null: no pos_weight
        try c.encodeIfPresent(
            discriminatorPositiveWeights, forKey: .discriminatorPositiveWeights)
    }

    /// The diversity weight at 0-based iteration `step`: `diversity` when no decay is set,
    /// else `diversity · max(0, 1 − step / diversityDecaySteps)`.
    public func diversityWeight(step: Int) -> Float {
        guard let n = diversityDecaySteps, n > 0 else { return diversity }
        return diversity * max(0, 1 - Float(step) / Float(n))
    }

    /// Checks the settings against the number of attributes.
    ///
    /// - Throws: `ObjectiveError.badSettings` naming the setting and what was expected.
    public func validate(attributes: Int) throws {
        var problems: [String] = []
        for (name, weights) in [
            ("positiveWeights", positiveWeights),
            ("discriminatorPositiveWeights", discriminatorPositiveWeights),
        ] {
            guard let w = weights else { continue }
            if w.count != attributes {
                problems.append(
                    "\(name) has \(w.count) values, expected one per attribute (\(attributes))")
            }
            if w.contains(where: { !($0 > 0) || !$0.isFinite }) {
                problems.append("\(name) must be finite and positive, got \(w)")
            }
        }
        if let n = diversityDecaySteps, n < 1 {
            problems.append("diversityDecaySteps must be at least 1 (or unset), got \(n)")
        }
        if let cap = diversityCap, !(cap > 0 && cap.isFinite) {
            problems.append("diversityCap must be finite and positive (or unset), got \(cap)")
        }
        if !(1...8).contains(classificationViews) {
            problems.append("classificationViews must be 1…8, got \(classificationViews)")
        }
        if !(0...16).contains(viewShift) {
            problems.append("viewShift must be 0…16 pixels, got \(viewShift)")
        }
        let weights: [(String, Float)] = [
            ("classification", classification), ("r1", r1), ("latentCycle", latentCycle),
            ("imageCycle", imageCycle), ("diversity", diversity), ("neighbour", neighbour),
            ("perceptual", perceptual), ("perceptualCycle", perceptualCycle),
        ]
        for (name, w) in weights where !w.isFinite {
            problems.append("\(name) must be finite, got \(w)")
        }
        if !problems.isEmpty {
            throw ObjectiveError.badSettings(problems.joined(separator: "; "))
        }
    }
}

/// Errors a user can cause when setting up the objective.
public enum ObjectiveError: Error, CustomStringConvertible {
    case badSettings(String)
    case badInput(String)

    public var description: String {
        switch self {
        case .badSettings(let why): return "objective settings: \(why)"
        case .badInput(let why): return "objective inputs: \(why)"
        }
    }
}

// MARK: - Inputs

/// One training batch: real images with their codes and labels, and target labels.
public struct TrainingBatch {
    /// Real images at the training resolution, [B, 3, S, S] in [−1, 1].
    public var images: Tensor
    /// Their codes, [B, L, C].
    public var codes: Tensor
    /// Their attribute labels a, [B, D] (0 or 1).
    public var sourceLabels: Tensor
    /// Target labels d (another sample's labels in the official code), [B, D].
    public var targetLabels: Tensor
    /// What the attribute head learns on the real images, [B, D] in [0, 1]: the soft
    /// labels with `--soft-labels`, else nil (the hard `sourceLabels`, as officially).
    public var realTargets: Tensor?

    public init(
        images: Tensor, codes: Tensor, sourceLabels: Tensor, targetLabels: Tensor,
        realTargets: Tensor? = nil
    ) {
        self.images = images
        self.codes = codes
        self.sourceLabels = sourceLabels
        self.targetLabels = targetLabels
        self.realTargets = realTargets
    }

    public var count: Int { codes.shape.first ?? 0 }
}

/// The random draws of one discriminator step, passed in so that a run can be replayed.
public struct DiscriminatorDraws {
    /// z of the fake images, [B, rnd].
    public var z: Tensor
    /// The generator's noise for the fake images.
    public var noise: NoiseMode

    public init(z: Tensor, noise: NoiseMode) {
        self.z = z
        self.noise = noise
    }

    /// Fresh draws in the official order; noise is random (as in the official code)
    /// unless `noise` is given.
    public static func sample(
        batch: Int, randomWidth: Int, generator rng: inout RandomGenerator,
        noise: NoiseMode? = nil
    ) -> DiscriminatorDraws {
        let z = rng.normal([batch, randomWidth])
        return DiscriminatorDraws(
            z: z, noise: noise ?? .random(seed: UInt64(rng.int(below: Int.max))))
    }
}

/// The random draws of one ISF step: three style vectors and the generator's noise for
/// each of its three renderings.
public struct ISFDraws {
    /// z1 (edit), z2 (cycle back), z3 (second edit for the diversity term), each [B, rnd].
    public var z: [Tensor]
    /// Noise of the renderings of w', w_cyc and w''.
    public var noise: [NoiseMode]

    public init(z: [Tensor], noise: [NoiseMode]) {
        precondition(z.count == 3 && noise.count == 3, "ISFDraws: three z and three noises")
        self.z = z
        self.noise = noise
    }

    /// Fresh draws in the official order (z1, z2, z3); noise random unless `noise` is given.
    public static func sample(
        batch: Int, randomWidth: Int, generator rng: inout RandomGenerator,
        noise: NoiseMode? = nil
    ) -> ISFDraws {
        var zs: [Tensor] = []
        var noises: [NoiseMode] = []
        for _ in 0..<3 {
            zs.append(rng.normal([batch, randomWidth]))
            noises.append(noise ?? .random(seed: UInt64(rng.int(below: Int.max))))
        }
        return ISFDraws(z: zs, noise: noises)
    }
}

// MARK: - Outputs

/// The discriminator loss of one step and its terms, each already multiplied by its
/// weight (the official `all_losses`).
public struct DiscriminatorLossTerms {
    /// `cls + adv_real + adv_fake + r1`: one element, differentiable in D's weights.
    public var total: Tensor
    /// `lambda_cls · BCE(D_cls(x), a; pos_weight)`.
    public var classification: Tensor
    /// `BCE(D_src(x), 1)`.
    public var realismReal: Tensor
    /// `BCE(D_src(G(F(w, z, d))), 0)`.
    public var realismFake: Tensor
    /// `lambda_r1 · R1`.
    public var r1: Tensor
    /// The attribute logits on the real images: [B, A] (for accuracy logs).
    public var realAttributes: Tensor

    /// Every term under the official name, for logs.
    public var values: [String: Float] {
        [
            "d_total": total.item, "d_cls": classification.item,
            "d_adv_real": realismReal.item, "d_adv_fake": realismFake.item, "d_r1": r1.item,
        ]
    }
}

/// The ISF loss of one step, its weighted terms and what it computed on the way.
public struct ISFLossTerms {
    /// `cls + adv + lat_cyc + src_cyc + nb − ds + lpips + lpips_cyc`: one element.
    public var total: Tensor
    public var classification: Tensor
    public var adversarial: Tensor
    public var latentCycle: Tensor
    public var imageCycle: Tensor
    public var neighbour: Tensor
    /// The diversity term as a positive number (it enters the total with a minus sign).
    public var diversity: Tensor
    /// Zero when there is no perceptual network.
    public var perceptual: Tensor
    public var perceptualCycle: Tensor

    /// w' = F(w, z1, d), w_cyc = F(w', z2, a), w'' = F(w, z3, d): [B, L, C] each.
    public var editedCodes: Tensor
    public var cycleCodes: Tensor
    public var secondCodes: Tensor
    /// x' = G(w'), x_cyc = G(w_cyc), x'' = G(w''): [B, 3, S, S] at the training size.
    public var editedImages: Tensor
    public var cycleImages: Tensor
    public var secondImages: Tensor
    /// D(x'): attribute logits [B, D] and realism logits [B].
    public var fakeAttributes: Tensor
    public var fakeRealism: Tensor

    /// Every term under the official name, for logs.
    public var values: [String: Float] {
        [
            "g_total": total.item, "cls": classification.item, "adv": adversarial.item,
            "lat_cyc": latentCycle.item, "src_cyc": imageCycle.item, "nb": neighbour.item,
            "ds": diversity.item, "lpips": perceptual.item, "lpips_cyc": perceptualCycle.item,
        ]
    }
}

// MARK: - The objective

/// The official ISF-GAN objective (`compute_d_loss` and `compute_g_loss` of
/// `styleganv2/core/solver.py`) over a frozen generator, a trainable ISF and a
/// discriminator.
///
/// Discriminator step:
/// ```
/// L_D = λ_cls·BCE(D_cls(x), a; pw) + BCE(D_src(x), 1) + BCE(D_src(G(F(w, z, d))), 0)
///     + λ_r1 · ½·mean_n Σ (∂ Σ D_cls(x) / ∂x_n)²
/// ```
/// ISF step (see ``isfLoss(_:draws:step:)``):
/// `L_F = cls + adv + lat_cyc + src_cyc + nb − ds + lpips + lpips_cyc`.
///
/// Generated images meet real ones at the discriminator's size through adaptive average
/// pooling of the generator's output, as the official wrapper does.
public final class ISFObjective {
    public let generator: ImageGenerator
    public let isf: ISFNetwork
    public let discriminator: Discriminator
    public let perceptualLoss: PerceptualLoss?
    public var settings: ObjectiveSettings

    /// - Throws: `ObjectiveError` when the networks or settings do not fit together.
    public init(
        generator: ImageGenerator, isf: ISFNetwork, discriminator: Discriminator,
        perceptual: PerceptualLoss?, settings: ObjectiveSettings = ObjectiveSettings()
    ) throws {
        var problems: [String] = []
        if isf.config.layers != generator.codeLayers
            || isf.config.codeWidth
                != generator.codeWidth
        {
            problems.append(
                "the ISF edits codes of \(isf.config.layers)×\(isf.config.codeWidth) but the "
                    + "generator takes \(generator.codeLayers)×\(generator.codeWidth)")
        }
        if isf.config.latentType != .wp {
            problems.append("training needs an ISF on [B, L, C] codes (latent type wp)")
        }
        if isf.config.attributes != discriminator.config.attributes {
            problems.append(
                "the ISF has \(isf.config.attributes) attributes, the discriminator "
                    + "\(discriminator.config.attributes)")
        }
        if !problems.isEmpty { throw ObjectiveError.badSettings(problems.joined(separator: "; ")) }
        try settings.validate(attributes: isf.config.attributes)
        // The generator never trains: its weights record no graph and get no gradient,
        // while gradients still flow through it into the codes.
        (generator as? Module)?.setTrainable(false)
        self.generator = generator
        self.isf = isf
        self.discriminator = discriminator
        self.perceptualLoss = perceptual
        self.settings = settings
    }

    /// Side of the images the discriminator sees.
    public var trainingSize: Int { discriminator.config.imageSize }

    /// G(codes) at the training size: [B, 3, S, S].
    public func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        let x = generator.render(codes, noise: noise)  // [B, 3, G, G]
        let s = trainingSize
        if x.shape[2] == s && x.shape[3] == s { return x }
        return x.adaptiveAvgPool2d(height: s, width: s)
    }

    /// Checks a batch's shapes.
    ///
    /// - Throws: `ObjectiveError.badInput` naming the tensor, its shape and the expected one.
    public func check(_ batch: TrainingBatch, randomVectors: [Tensor]) throws {
        let b = batch.count
        let d = isf.config.attributes
        let s = trainingSize
        var problems: [String] = []
        func expect(_ name: String, _ t: Tensor, _ shape: [Int]) {
            if t.shape != shape {
                problems.append(
                    "\(name) has shape \(describe(t.shape)), expected \(describe(shape))")
            }
        }
        expect("codes", batch.codes, isf.config.codeShape(batch: b))
        expect("images", batch.images, [b, 3, s, s])
        expect("source labels", batch.sourceLabels, [b, d])
        expect("target labels", batch.targetLabels, [b, d])
        if let t = batch.realTargets { expect("soft labels", t, [b, d]) }
        for (i, z) in randomVectors.enumerated() {
            expect("z\(i + 1)", z, [b, isf.config.randomWidth])
        }
        if !problems.isEmpty { throw ObjectiveError.badInput(problems.joined(separator: "; ")) }
    }

    /// `BCEWithLogits(logits, labels; pos_weight)`, mean over every element; `realImages`
    /// takes the discriminator's own weights (the loss on labelled real images).
    func classificationLoss(_ logits: Tensor, _ labels: Tensor, realImages: Bool = false)
        -> Tensor
    {
        let weights =
            realImages
            ? settings.discriminatorPositiveWeights ?? settings.positiveWeights
            : settings.positiveWeights
        return Loss.binaryCrossEntropyWithLogits(
            logits, targets: labels, posWeight: weights.map { Tensor(shape: [$0.count], $0) })
    }

    /// `BCEWithLogits(logits, target)` against a constant target, mean.
    func adversarialLoss(_ logits: Tensor, target: Float) -> Tensor {
        Loss.binaryCrossEntropyWithLogits(logits, targets: Tensor.full(logits.shape, target))
    }

    // MARK: Discriminator step

    /// The discriminator loss of one step (official `compute_d_loss`): gradients reach
    /// the discriminator's weights only; the ISF and the generator run without recording.
    ///
    /// - Throws: `ObjectiveError.badInput` for shapes that do not fit, `ModelError` from
    ///   the networks.
    public func discriminatorLoss(
        _ batch: TrainingBatch, draws: DiscriminatorDraws
    ) throws -> DiscriminatorLossTerms {
        try check(batch, randomVectors: [draws.z])
        let real = batch.images.detached().requiringGrad()  // [B, 3, S, S]
        let (realAttributes, realRealism) = try discriminator(real)
        let realismReal = adversarialLoss(realRealism, target: 1)
        let classification =
            classificationLoss(
                realAttributes, batch.realTargets ?? batch.sourceLabels, realImages: true)
            * settings.classification
        let r1Output = settings.r1Target == .attributes ? realAttributes : realRealism
        let r1 = Discriminator.r1Penalty(output: r1Output, input: real) * settings.r1

        let fake = try GradMode.withoutGradients {
            let edited = try isf(codes: batch.codes, z: draws.z, targets: batch.targetLabels)
            return render(edited, noise: draws.noise)  // [B, 3, S, S]
        }
        let realismFake = adversarialLoss(try discriminator(fake).realism, target: 0)
        let total = classification + realismReal + realismFake + r1
        return DiscriminatorLossTerms(
            total: total, classification: classification, realismReal: realismReal,
            realismFake: realismFake, r1: r1, realAttributes: realAttributes.detached())
    }

    // MARK: ISF step

    /// The ISF loss of one step (official `compute_g_loss`), in its order:
    ///
    /// ```
    /// w'  = F(w, z1, d);  x' = G(w')
    /// nb  = λ_nb · mean_b ‖w − w'‖_F
    /// cls = λ_cls · BCE(D_cls(x'), d; pw);  adv = BCE(D_src(x'), 1)
    /// w_cyc = F(w', z2, a);  lat_cyc = λ·mean|w_cyc − w|;  src_cyc = λ·mean|G(w_cyc) − x|
    /// w'' = F(w, z3, d);  ds = λ_ds(step)·mean|x' − G(w'')|
    /// lpips_cyc = λ·P(G(w_cyc), x);  lpips = λ·P(x', x)
    /// ```
    ///
    /// Gradients flow through the frozen generator into the codes and through the
    /// discriminator into its inputs, but reach neither network's weights (the
    /// discriminator is frozen while the graph is built): only the ISF learns.
    ///
    /// - Parameter step: 0-based iteration, for the diversity weight's optional decay.
    /// - Throws: `ObjectiveError.badInput` for shapes that do not fit, `ModelError` from
    ///   the networks.
    public func isfLoss(_ batch: TrainingBatch, draws: ISFDraws, step: Int = 0) throws
        -> ISFLossTerms
    {
        try check(batch, randomVectors: draws.z)
        let frozen = discriminator.trainableParameters
        for p in frozen { p.setTrainable(false) }
        defer { for p in frozen { p.setTrainable(true) } }

        let w = batch.codes.detached()  // [B, L, C]
        let x = batch.images.detached()  // [B, 3, S, S]
        let b = batch.count

        let edited = try isf(codes: w, z: draws.z[0], targets: batch.targetLabels)
        let editedImages = render(edited, noise: draws.noise[0])
        let neighbour = (w - edited).reshaped([b, -1]).norm(axes: [1]).mean() * settings.neighbour
        let (fakeAttributes, fakeRealism) = try discriminator(editedImages)
        var classification = classificationLoss(fakeAttributes, batch.targetLabels)
        for view in 1..<settings.classificationViews {
            let image = Self.view(
                editedImages, index: view, step: step, maxShift: settings.viewShift)
            let logits = try discriminator(image).attributes
            classification = classification + classificationLoss(logits, batch.targetLabels)
        }
        // The mean over the views (λ/1 = λ exactly: one view is the official term).
        classification =
            classification * (settings.classification / Float(settings.classificationViews))
        let adversarial = adversarialLoss(fakeRealism, target: 1)

        let cycle = try isf(codes: edited, z: draws.z[1], targets: batch.sourceLabels)
        let latentCycle = Loss.l1(cycle, w) * settings.latentCycle
        let cycleImages = render(cycle, noise: draws.noise[1])
        let imageCycle = Loss.l1(cycleImages, x) * settings.imageCycle

        let second = try isf(codes: w, z: draws.z[2], targets: batch.targetLabels)
        let secondImages = render(second, noise: draws.noise[2])
        let diversity =
            Self.diversityDistance(editedImages, secondImages, cap: settings.diversityCap)
            * settings.diversityWeight(step: step)

        var perceptualCycle = Tensor.zeros([])
        var perceptual = Tensor.zeros([])
        if let p = perceptualLoss {
            // One call, so that the source image's features are computed once.
            let values = try p.perceptualLosses([cycleImages, editedImages], x)
            perceptualCycle = values[0] * settings.perceptualCycle
            perceptual = values[1] * settings.perceptual
        }
        let total =
            classification + adversarial + latentCycle + imageCycle + neighbour - diversity
            + perceptualCycle + perceptual
        return ISFLossTerms(
            total: total, classification: classification, adversarial: adversarial,
            latentCycle: latentCycle, imageCycle: imageCycle, neighbour: neighbour,
            diversity: diversity, perceptual: perceptual, perceptualCycle: perceptualCycle,
            editedCodes: edited, cycleCodes: cycle, secondCodes: second,
            editedImages: editedImages, cycleImages: cycleImages, secondImages: secondImages,
            fakeAttributes: fakeAttributes, fakeRealism: fakeRealism)
    }
}

// MARK: - Views and the diversity hinge

extension ISFObjective {
    /// `mean|a − b|` over everything (official), or with a cap, the mean over the batch of
    /// each sample's `min(mean|a_i − b_i|, cap)`: a sample past the cap adds no gradient.
    static func diversityDistance(_ a: Tensor, _ b: Tensor, cap: Float?) -> Tensor {
        guard let cap else { return Loss.l1(a, b) }
        let n = a.shape[0]
        let perSample = (a - b).abs().reshaped([n, -1]).mean(axes: [1])  // [B]
        return (perSample - (perSample - cap).relu()).mean()
    }

    /// View `index` (≥ 1) of images [B, C, H, W]: odd views mirror left to right, and every
    /// view is rolled by a shift of at most `maxShift` pixels on each axis, drawn from
    /// (step, index) so that a run replays exactly.
    static func view(_ images: Tensor, index: Int, step: Int, maxShift: Int) -> Tensor {
        let image = index % 2 == 1 ? images.flipped(axis: 3) : images
        guard maxShift > 0 else { return image }
        var rng = RandomGenerator(seed: UInt64(step), position: UInt64(index) << 32)
        let span = 2 * maxShift + 1
        let dy = rng.int(below: span) - maxShift
        let dx = rng.int(below: span) - maxShift
        return image.rolled(by: dy, axis: 2).rolled(by: dx, axis: 3)
    }
}

// MARK: - Timing

/// Seconds of one discriminator step and one ISF step (loss, then backward; no optimiser
/// update), as `bench train` reports them.
public struct ObjectiveStepTiming: Codable, Sendable {
    public var discriminatorSeconds: Double
    public var isfSeconds: Double
    public var totalSeconds: Double { discriminatorSeconds + isfSeconds }
}

extension ISFObjective {
    /// Runs and times one discriminator step and one ISF step on `batch` with fresh draws
    /// from `rng`, leaving the gradients in the networks' parameters.
    public func timeStep(_ batch: TrainingBatch, generator rng: inout RandomGenerator)
        throws -> ObjectiveStepTiming
    {
        let b = batch.count, rnd = isf.config.randomWidth
        let dDraws = DiscriminatorDraws.sample(batch: b, randomWidth: rnd, generator: &rng)
        let isfDraws = ISFDraws.sample(batch: b, randomWidth: rnd, generator: &rng)
        var start = Date()
        discriminator.zeroGrad()
        try discriminatorLoss(batch, draws: dDraws).total.backward()
        let dSeconds = Date().timeIntervalSince(start)
        start = Date()
        isf.zeroGrad()
        try isfLoss(batch, draws: isfDraws).total.backward()
        return ObjectiveStepTiming(
            discriminatorSeconds: dSeconds, isfSeconds: Date().timeIntervalSince(start))
    }
}
