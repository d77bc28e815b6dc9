import Foundation
import Layers
import Models
import TensorCore

// Projection (GAN inversion by optimisation): find the code whose image matches a photo.
// The StyleGAN2 recipe follows the reference projectors (rosinality's and NVIDIA's
// projector.py): Adam from the average code, a learning rate that ramps up over the first
// 5 % of the steps and down (cosine) over the last 25 %, exploration noise on the code
// that decays to zero at 75 % of the run, and optimised noise maps held in check by the
// autocorrelation penalty of `NoiseRegularizer` and renormalised after every step.

/// What a projection optimises.
public enum ProjectionSpace: String, Codable, Sendable, CaseIterable {
    /// One StyleGAN2 w [1, D], repeated over every layer (the reference default).
    case w
    /// One StyleGAN2 w per layer, W+ [1, L, D]: closer fits, further from the generator's
    /// own codes.
    case wplus
    /// The input vector of a single-code generator (the DCGAN's z) [1, D].
    case z

    /// The spaces a generator can be projected into, the default first.
    public static func allowed(for generator: any ImageGenerator) -> [ProjectionSpace] {
        generator is StyleGAN2Generator ? [.w, .wplus] : [.z]
    }
}

/// Everything that decides a projection's result (written into the JSON sidecar and the
/// cache key). Keys are snake_case in JSON.
public struct ProjectionSettings: Codable, Equatable, Sendable {
    public var space: ProjectionSpace
    public var steps: Int = 1000
    /// Seeds the initial noise maps and the exploration noise.
    public var seed: UInt64 = 0
    /// Peak Adam learning rate.
    public var learningRate: Float = 0.1
    /// Fractions of the run over which the learning rate ramps up and down.
    public var rampUp: Float = 0.05
    public var rampDown: Float = 0.25
    /// Exploration noise on the code at step 0, as a fraction of the codes' spread
    /// (√E‖c − c̄‖², as the references measure it); it falls as (1 − t / ramp)².
    public var codeNoise: Float = 0.05
    public var codeNoiseRamp: Float = 0.75
    /// Weight of `NoiseRegularizer.penalty` (StyleGAN2 only).
    public var noiseWeight: Float = 1e5
    /// Weight of the pixel mean squared error (images in [−1, 1]): 0 for StyleGAN2, as in
    /// the references; 1 for z, where ST-LPIPS alone leaves the colours off.
    public var mseWeight: Float = 0
    /// The perceptual network's name (`stlpips-alex`, `stlpips-vgg`, `lpips:FILE`).
    public var perceptual: String = "stlpips-alex"
    /// For z: put z back on the sphere of radius √D after every step, where nearly all
    /// of N(0, I)'s mass lies, so that the code stays one the generator was trained on.
    public var zSphere: Bool = true
    /// Codes sampled to measure the average code and the spread.
    public var statisticsSamples: Int = 10_000

    enum CodingKeys: String, CodingKey {
        case space, steps, seed, perceptual
        case learningRate = "learning_rate"
        case rampUp = "lr_ramp_up"
        case rampDown = "lr_ramp_down"
        case codeNoise = "code_noise"
        case codeNoiseRamp = "code_noise_ramp"
        case noiseWeight = "noise_weight"
        case mseWeight = "mse_weight"
        case zSphere = "z_sphere"
        case statisticsSamples = "statistics_samples"
    }

    /// The defaults for `space`. StyleGAN2's are the references'; the DCGAN's z space
    /// keeps the same schedule, with the values measured on the face DCGAN (see
    /// docs/ARCHITECTURE.md, "Projection").
    public init(space: ProjectionSpace) {
        self.space = space
        if space == .z { mseWeight = 1 }
    }

    /// Checks the ranges; messages name the setting.
    public func validate() throws {
        func check(_ ok: Bool, _ what: String) throws {
            if !ok { throw ProjectionError.badSettings(what) }
        }
        try check(steps >= 1, "steps must be ≥ 1, got \(steps)")
        try check(learningRate > 0 && learningRate.isFinite, "learning rate must be > 0")
        try check(rampUp >= 0 && rampUp <= 1, "the ramp-up fraction must be in [0, 1]")
        try check(rampDown > 0 && rampDown <= 1, "the ramp-down fraction must be in (0, 1]")
        try check(codeNoise >= 0 && codeNoise.isFinite, "code noise must be ≥ 0")
        try check(codeNoiseRamp > 0, "the code-noise ramp must be > 0")
        try check(noiseWeight >= 0 && noiseWeight.isFinite, "noise weight must be ≥ 0")
        try check(mseWeight >= 0 && mseWeight.isFinite, "MSE weight must be ≥ 0")
        try check(statisticsSamples >= 2, "statistics samples must be ≥ 2")
    }

    /// The learning rate at step `i` of `steps`: 0 at the start, the peak after the
    /// ramp-up, then a half cosine down to 0 over the last `rampDown` of the run.
    public func learningRate(step i: Int) -> Float {
        let t = Double(i) / Double(steps)
        var ramp = min(1, (1 - t) / Double(rampDown))
        ramp = 0.5 - 0.5 * cos(ramp * Double.pi)
        if rampUp > 0 { ramp *= min(1, t / Double(rampUp)) }
        return Float(Double(learningRate) * ramp)
    }

    /// The standard deviation of the exploration noise at step `i`, for codes of spread
    /// `spread`.
    public func codeNoise(step i: Int, spread: Float) -> Float {
        let t = Float(i) / Float(steps)
        let left = max(0, 1 - t / codeNoiseRamp)
        return spread * codeNoise * left * left
    }
}

public enum ProjectionError: Error, CustomStringConvertible {
    case badSettings(String)
    case badTarget(String)

    public var description: String {
        switch self {
        case .badSettings(let s): return "projection: \(s)"
        case .badTarget(let s): return s
        }
    }
}

/// One step as the progress callback sees it.
public struct ProjectionStep: Sendable {
    /// Steps done (1-based), of `steps`.
    public var step: Int
    public var steps: Int
    /// The total loss and its perceptual part (at the noisy code).
    public var loss: Float
    public var perceptual: Float
    public var learningRate: Float
}

/// What a projection found.
public struct ProjectionResult {
    /// The code as written to files: [1, D] for w and z, [1, L, D] for W+.
    public var code: Tensor
    /// The same code in the generator's editing space, [1, codeLayers, codeWidth].
    public var codes: Tensor
    /// The optimised noise maps (StyleGAN2), [1, 1, r, r] each; nil for other generators.
    public var noise: [Tensor]?
    /// The reconstruction [1, 3, S, S], unclamped.
    public var reconstruction: Tensor
    /// Perceptual distance and PSNR (dB, images in [0, 1]) between the photo and the
    /// reconstruction.
    public var distance: Float
    public var psnr: Double
    /// The perceptual term at every step (measured at the noisy code).
    public var history: [Float]
    public var seconds: Double

    /// How `render` should fill the noise inputs to give `reconstruction` again.
    public var noiseMode: NoiseMode { noise.map { .explicit($0) } ?? .constant }
}

/// Peak signal-to-noise ratio in dB of two image batches in [−1, 1] (compared in [0, 1];
/// `a` is clamped first, as a saved image would be). Infinite for equal images.
public func peakSignalToNoiseRatio(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "PSNR: \(describe(a.shape)) vs \(describe(b.shape))")
    let x = a.contiguous().scalars, y = b.contiguous().scalars
    var sum = 0.0
    for i in x.indices {
        let d = (Double(min(max(x[i], -1), 1)) - Double(y[i])) / 2
        sum += d * d
    }
    let mse = sum / Double(max(x.count, 1))
    return mse == 0 ? .infinity : 10 * log10(1 / mse)
}

/// Finds the code (and for StyleGAN2 the noise maps) whose image matches a target.
///
/// ```
/// c ← c̄ (the average code); noise maps ← N(0, 1)
/// for i in 0..<steps:
///     x = G(c + σ_i·ε, noise)
///     loss = P(x, target) + λ_mse·MSE(x, target) + λ_noise·R(noise maps)
///     Adam step with lr_i on c and the maps; maps ← zero mean, unit variance
///     (z space: c ← √D · c / ‖c‖)
/// ```
///
/// Images larger than 256 px are compared at 256 px (area filter), as in the references;
/// images smaller than the perceptual network's minimum are enlarged for it (bilinear).
public final class Projector {
    public let generator: any ImageGenerator
    public let perceptual: any PerceptualLoss
    public let settings: ProjectionSettings

    /// The largest side the perceptual network sees.
    public static let perceptualSide = 256

    /// - Throws: `ProjectionError.badSettings` when the settings are out of range or the
    ///   space does not fit the generator.
    public init(
        generator: any ImageGenerator, perceptual: any PerceptualLoss,
        settings: ProjectionSettings
    ) throws {
        try settings.validate()
        let allowed = ProjectionSpace.allowed(for: generator)
        guard allowed.contains(settings.space) else {
            throw ProjectionError.badSettings(
                "space \(settings.space.rawValue) does not fit \(generator.summary); use "
                    + allowed.map(\.rawValue).joined(separator: " or "))
        }
        self.generator = generator
        self.perceptual = perceptual
        self.settings = settings
    }

    /// The average code [1, D] and the spread √(E‖c − c̄‖²) of the generator's own codes
    /// (first row of `sampleCodes`), from `statisticsSamples` draws of seed 0.
    public func codeStatistics() -> (mean: Tensor, spread: Float) {
        let n = settings.statisticsSamples, d = generator.codeWidth
        var rng = RandomGenerator(seed: 0)
        var sum = [Double](repeating: 0, count: d)
        var squares = 0.0
        var left = n
        GradMode.withoutGradients {
            while left > 0 {
                let k = min(left, 1000)
                // [k, D]: the first row (all rows are equal for w; z has one).
                let rows = generator.sampleCodes(count: k, generator: &rng).slice(1, 0..<1)
                    .contiguous().scalars
                for (i, v) in rows.enumerated() {
                    sum[i % d] += Double(v)
                    squares += Double(v) * Double(v)
                }
                left -= k
            }
        }
        let mean = sum.map { $0 / Double(n) }
        let meanSquare = mean.reduce(0) { $0 + $1 * $1 }
        let spread = max(0, squares / Double(n) - meanSquare).squareRoot()
        return (Tensor(shape: [1, d], mean.map(Float.init)), Float(spread))
    }

    /// The side at which images are compared, and how a [N, 3, S, S] image gets there.
    func perceptualInput(_ x: Tensor) -> Tensor {
        let s = x.shape[2]
        if s > Projector.perceptualSide {
            return x.resizedArea(height: Projector.perceptualSide, width: Projector.perceptualSide)
        }
        let minimum = perceptualMinimumSide(perceptual)
        if s < minimum { return x.resizedBilinear(height: minimum, width: minimum) }
        return x
    }

    func editingCodes(_ code: Tensor) -> Tensor {
        Projector.editingCodes(code, space: settings.space, generator: generator)
    }

    /// The editing-space codes [1, L, D] of a code of `space` ([1, D] or [1, L, D]).
    public static func editingCodes(
        _ code: Tensor, space: ProjectionSpace, generator: any ImageGenerator
    ) -> Tensor {
        let (l, d) = (generator.codeLayers, generator.codeWidth)
        switch space {
        case .w: return code.unsqueezed(1).expanded(to: [1, l, d])
        case .wplus: return code
        case .z: return code.reshaped([1, 1, d])
        }
    }

    /// Projects `target` [1, 3, S, S] (S = the generator's side, values in [−1, 1]).
    ///
    /// - Throws: `ProjectionError.badTarget` for a target of the wrong shape; the
    ///   perceptual network's errors.
    public func project(_ target: Tensor, progress: (ProjectionStep) -> Void = { _ in }) throws
        -> ProjectionResult
    {
        let side = generator.imageSize
        guard target.shape == [1, 3, side, side] else {
            throw ProjectionError.badTarget(
                "projection: the target has shape \(describe(target.shape)); the generator "
                    + "makes [1, 3, \(side), \(side)]")
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let s = settings
        // The backward of the shared modulated-conv form scales activations; the grouped
        // form's needs the gradient of per-sample weights, a second convolution's worth
        // (config-f 256 px, one image: render + backward 3.8 s shared, 5.5 s grouped).
        // The reconstruction is rendered with the caller's form, as `generate` renders it.
        let styleGAN = generator as? StyleGAN2Generator
        let form = styleGAN?.modulationForm
        if form == .automatic { styleGAN?.modulationForm = .shared }
        defer { if let form { styleGAN?.modulationForm = form } }
        let (mean, spread) = codeStatistics()
        let (l, d) = (generator.codeLayers, generator.codeWidth)
        let initial = s.space == .wplus ? mean.unsqueezed(1).expanded(to: [1, l, d]) : mean
        let code = Parameter(initial.contiguous())
        var rng = RandomGenerator(seed: s.seed)
        let maps = (styleGAN?.noiseShapes ?? []).map { Parameter(rng.normal($0)) }
        let adam = Adam([code] + maps, learningRate: s.learningRate)
        let distance = try PerceptualTarget(
            perceptual, target: GradMode.withoutGradients { perceptualInput(target) })
        let sphereRadius = Float(d).squareRoot()

        var history: [Float] = []
        history.reserveCapacity(s.steps)
        for i in 0..<s.steps {
            adam.learningRate = s.learningRate(step: i)
            var c = code.value
            let sigma = s.codeNoise(step: i, spread: spread)
            if sigma > 0 { c = c + rng.normal(c.shape) * sigma }
            let noise: NoiseMode = maps.isEmpty ? .zero : .explicit(maps.map(\.value))
            let image = generator.render(editingCodes(c), noise: noise)  // [1, 3, S, S]
            let p = try distance(perceptualInput(image))
            var loss = p
            if s.mseWeight > 0 { loss = loss + Loss.mse(image, target) * s.mseWeight }
            if !maps.isEmpty && s.noiseWeight > 0 {
                loss = loss + NoiseRegularizer.penalty(maps.map(\.value)) * s.noiseWeight
            }
            loss.backward()
            adam.update()
            adam.zeroGrad()
            GradMode.withoutGradients {
                for m in maps { m.assign(NoiseRegularizer.normalized(m.value)) }
                if s.space == .z && s.zSphere {
                    let norm = code.value.norm().item
                    if norm > 0 { code.assign(code.value * (sphereRadius / norm)) }
                }
            }
            let pv = p.item
            history.append(pv)
            progress(
                ProjectionStep(
                    step: i + 1, steps: s.steps, loss: loss.item, perceptual: pv,
                    learningRate: adam.learningRate))
        }

        if let form { styleGAN?.modulationForm = form }
        return try GradMode.withoutGradients {
            let final = code.value.detached()
            let codes = editingCodes(final).contiguous()
            let noise = maps.isEmpty ? nil : maps.map { $0.value.detached() }
            let image = generator.render(
                codes, noise: noise.map { NoiseMode.explicit($0) } ?? .zero)
            let d = try distance(perceptualInput(image)).item
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return ProjectionResult(
                code: final, codes: codes, noise: noise, reconstruction: image,
                distance: d, psnr: peakSignalToNoiseRatio(image, target),
                history: history, seconds: seconds)
        }
    }
}

/// The perceptual distance to one fixed target, whose features are computed once where
/// the network allows it (ST-LPIPS: a third of the network's work per step); the same
/// value as `perceptualLoss(x, target)`.
struct PerceptualTarget {
    let network: any PerceptualLoss
    let target: Tensor
    /// ST-LPIPS's unit taps of the target.
    let unitTaps: [Tensor]?

    init(_ network: any PerceptualLoss, target: Tensor) throws {
        self.network = network
        self.target = target
        if let st = network as? STLPIPS {
            unitTaps = try GradMode.withoutGradients { st.unitTaps(try st.taps(target)) }
        } else {
            unitTaps = nil
        }
    }

    /// The distance of x [1, 3, H, W] (the target's shape) to the target: one element.
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        guard let st = network as? STLPIPS, let unitTaps else {
            return try network.perceptualLoss(x, target)
        }
        precondition(x.shape == target.shape, "PerceptualTarget: \(describe(x.shape))")
        let perLayer = st.layerDistances(unitTaps: st.unitTaps(try st.taps(x)), unitTaps)
        var total = perLayer[0]
        for k in 1..<perLayer.count { total = total + perLayer[k] }
        return total.mean()
    }
}

/// The smallest square side a perceptual network accepts.
func perceptualMinimumSide(_ p: any PerceptualLoss) -> Int {
    if let st = p as? STLPIPS { return st.minimumSide }
    // LPIPS checks these sides itself (LPIPS.features); AlexNet's 11×11 stride-4 stem
    // and three 3×3 pools need 31 px, VGG's four 2×2 pools 16.
    if let lp = p as? LPIPS { return lp.backbone == .alex ? 31 : 16 }
    return 1
}
