import Foundation
import Layers
import TensorCore

/// Settings of a rosinality-layout StyleGAN2 generator, all read off a state dict.
public struct StyleGAN2Config: Equatable, Codable, Sendable {
    public var size: Int
    public var styleDim: Int
    public var mlpLayers: Int
    /// Channels per resolution 4, 8, …, size.
    public var channels: [Int]
    public var lrMlp: Float = 0.01
    public var blurKernel: [Float] = [1, 3, 3, 1]

    public init(size: Int, styleDim: Int, mlpLayers: Int, channels: [Int]) {
        self.size = size
        self.styleDim = styleDim
        self.mlpLayers = mlpLayers
        self.channels = channels
    }

    /// The config-f table: 512 up to 64 px, then 256·m, 128·m, … (m = channel multiplier).
    public static func configF(
        size: Int, styleDim: Int = 512, mlpLayers: Int = 8, multiplier: Int = 2
    )
        -> StyleGAN2Config
    {
        let table: [Int: Int] = [
            4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * multiplier, 128: 128 * multiplier,
            256: 64 * multiplier, 512: 32 * multiplier, 1024: 16 * multiplier,
        ]
        let logSize = Int(log2(Double(size)))
        let ch = (2...logSize).map { table[1 << $0] ?? 16 * multiplier }
        return StyleGAN2Config(size: size, styleDim: styleDim, mlpLayers: mlpLayers, channels: ch)
    }

    public var logSize: Int { channels.count + 1 }
    /// W+ rows: 2·log2(size) − 2.
    public var nLatent: Int { logSize * 2 - 2 }
    /// Noise inputs: one per styled conv.
    public var noiseLayers: Int { (logSize - 2) * 2 + 1 }

    /// Channel multiplier, when the table is config-f's (nil for reduced tables).
    public var channelMultiplier: Int? {
        for m in 1...4
        where StyleGAN2Config.configF(
            size: size, styleDim: styleDim,
            mlpLayers: mlpLayers, multiplier: m
        ).channels == channels { return m }
        return nil
    }

    /// Reads size, style width, mapping depth and channel table off the keys and shapes.
    public static func infer(from state: [String: Tensor], source: String) throws
        -> StyleGAN2Config
    {
        func shape(_ key: String) throws -> [Int] {
            guard let t = state[key] else {
                throw ModelError.notRecognised(
                    source, "no key '\(key)': not a rosinality StyleGAN2 generator state dict")
            }
            return t.shape
        }
        let input = try shape("input.input")
        guard input.count == 4, input[0] == 1, input[2] == 4, input[3] == 4 else {
            throw ModelError.notRecognised(
                source, "input.input has shape \(describe(input)), expected [1, C, 4, 4]")
        }
        var mlp = 0
        while state["style.\(mlp + 1).weight"] != nil { mlp += 1 }
        guard mlp > 0 else {
            throw ModelError.notRecognised(source, "no mapping layers (style.1.weight)")
        }
        let styleDim = try shape("style.1.weight")[1]
        var channels = [input[1]]
        var i = 0
        while let w = state["convs.\(i).conv.weight"] {
            guard w.rank == 5 else {
                throw ModelError.notRecognised(
                    source, "convs.\(i).conv.weight has shape \(describe(w.shape))")
            }
            channels.append(w.shape[1])
            i += 2
        }
        let config = StyleGAN2Config(
            size: 4 << (channels.count - 1), styleDim: styleDim, mlpLayers: mlp, channels: channels)
        return config
    }

    public var description: String {
        var s = "StyleGAN2 generator, \(size) px, style \(styleDim), \(mlpLayers) mapping layers"
        if let m = channelMultiplier {
            s += ", channel multiplier \(m)"
        } else {
            s += ", channels \(channels.map(String.init).joined(separator: "/"))"
        }
        return s
    }
}

public enum ModelError: Error, CustomStringConvertible {
    case notRecognised(String, String)
    case badInput(String)

    public var description: String {
        switch self {
        case .notRecognised(let source, let why): return "\(source): \(why)"
        case .badInput(let why): return why
        }
    }
}

/// How a modulated convolution runs; both give the same result up to rounding.
public enum ModulationForm: Sendable {
    /// Per-sample weights, one grouped convolution (groups = batch), as rosinality runs it.
    case grouped
    /// Activations scaled by the style, one shared convolution, outputs scaled by the
    /// demodulation factors (NVIDIA's `fused_modconv=False`).
    case shared
    /// By measured speed: grouped for one image (at 1024 px it skips two passes over
    /// the largest activations: 1.06 s against 1.76 s), shared for batches (256 px,
    /// batch 4: 473 against 491 ms per image).
    case automatic

    /// The form a batch of `n` images runs with.
    public func resolved(batch n: Int) -> ModulationForm {
        self == .automatic ? (n == 1 ? .grouped : .shared) : self
    }
}

// MARK: - Layers

let leakySlope: Float = 0.2
let activationGain = Float(2).squareRoot()
let demodulationEpsilon: Float = 1e-8

/// Linear layer with equalised learning rate: `x·(W·scale)ᵀ + b·lrMul`, scale =
/// lrMul/√in, optionally followed by the fused leaky ReLU.
final class EqualLinear: Module {
    let weight: Parameter  // [out, in]
    let bias: Parameter  // [out]
    let scale: Float, lrMul: Float, activate: Bool

    init(
        _ inputs: Int, _ outputs: Int, biasInit: Float = 0, lrMul: Float = 1, activate: Bool = false
    ) {
        weight = Parameter(Tensor.zeros([outputs, inputs]))
        bias = Parameter(Tensor.full([outputs], biasInit))
        scale = 1 / Float(inputs).squareRoot() * lrMul
        self.lrMul = lrMul
        self.activate = activate
        super.init()
        register("weight", weight)
        register("bias", bias)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        let w = weight.value * scale
        if activate {
            return fusedLeakyRelu(x.linear(w, bias: nil), bias: bias.value * lrMul)
        }
        return x.linear(w, bias: bias.value * lrMul)
    }
}

/// `leaky_relu(x + b, 0.2)·√2` with `b` along dim 1 (rosinality's CPU path).
func fusedLeakyRelu(_ x: Tensor, bias: Tensor) -> Tensor {
    var shape = [Int](repeating: 1, count: x.rank)
    shape[1] = bias.count
    return (x + bias.reshaped(shape)).leakyRelu(slope: leakySlope) * activationGain
}

/// A FIR kernel from its 1-D taps: outer product, normalised to sum 1, times `gain`.
func makeBlurKernel(_ taps: [Float], gain: Float = 1) -> Tensor {
    let n = taps.count
    var k = [Float](repeating: 0, count: n * n)
    for i in 0..<n { for j in 0..<n { k[i * n + j] = taps[i] * taps[j] } }
    let total = k.reduce(0, +)
    return Tensor(shape: [n, n], k.map { $0 / total * gain })
}

/// A module holding one FIR kernel buffer under the key `kernel`.
final class FIRFilter: Module {
    let kernel: Parameter
    init(_ taps: [Float], gain: Float) {
        kernel = Parameter(makeBlurKernel(taps, gain: gain), buffer: true, rebuildable: true)
        super.init()
        register("kernel", kernel)
    }
}

/// Modulated (and optionally demodulated) convolution, optionally upsampling by 2 with a
/// stride-2 transposed convolution followed by the blur.
final class ModulatedConv2d: Module {
    let weight: Parameter  // [1, O, I, k, k]
    let modulation: EqualLinear
    let blur: FIRFilter?
    let inChannels: Int, outChannels: Int, kernelSize: Int
    let demodulate: Bool, upsample: Bool
    let scale: Float

    init(
        _ inChannels: Int, _ outChannels: Int, kernelSize: Int, styleDim: Int,
        demodulate: Bool = true, upsample: Bool = false, blurTaps: [Float] = [1, 3, 3, 1]
    ) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.demodulate = demodulate
        self.upsample = upsample
        scale = 1 / Float(inChannels * kernelSize * kernelSize).squareRoot()
        weight = Parameter(Tensor.zeros([1, outChannels, inChannels, kernelSize, kernelSize]))
        modulation = EqualLinear(styleDim, inChannels, biasInit: 1)
        blur = upsample ? FIRFilter(blurTaps, gain: 4) : nil
        super.init()
        register("weight", weight)
        if let blur { register("blur", blur) }
        register("modulation", modulation)
    }

    /// x [N, I, H, W], w [N, styleDim] → [N, O, H', W'].
    func callAsFunction(_ x: Tensor, _ w: Tensor, form: ModulationForm) -> Tensor {
        let (out, d) = forward(x, w, form: form)
        return d.map { out * $0.reshaped([out.shape[0], outChannels, 1, 1]) } ?? out
    }

    /// The convolution with the demodulation factors d [N, O] still to apply (nil when
    /// they are already in the weights), so that a caller can fold them into its
    /// epilogue. Blurring commutes with the per-channel factor, so it happens first.
    func forward(_ x: Tensor, _ w: Tensor, form: ModulationForm) -> (Tensor, Tensor?) {
        let n = x.shape[0], h = x.shape[2], wd = x.shape[3]
        let (i, o, k) = (inChannels, outChannels, kernelSize)
        let style = modulation(w)  // [N, I]
        var out: Tensor
        var demod: Tensor?
        if k == 1 && !upsample {
            // A 1×1 modulated conv (to-RGB) is a per-sample matrix product: fold the style
            // into the small [O, I] weight instead of scaling the large activations.
            // [N, O, I]
            var wt = weight.value.reshaped([1, o, i]) * scale * style.reshaped([n, 1, i])
            if demodulate {
                wt = wt * (wt.squared().sum(axis: 2, keepDims: true) + demodulationEpsilon).rsqrt()
            }
            let y = Tensor.matmul(wt, x.reshaped([n, i, h * wd]))  // [N, O, H·W]
            return (y.reshaped([n, o, h, wd]), nil)
        }
        switch form {
        case .grouped:
            var wt = weight.value * scale * style.reshaped([n, 1, i, 1, 1])  // [N, O, I, k, k]
            if demodulate {
                let d = (wt.squared().sum(axes: [2, 3, 4]) + demodulationEpsilon).rsqrt()  // [N, O]
                wt = wt * d.reshaped([n, o, 1, 1, 1])
            }
            let xg = x.reshaped([1, n * i, h, wd])
            if upsample {
                let wtT = wt.transposed(1, 2).reshaped([n * i, o, k, k])  // [N·I, O, k, k]
                out = xg.convTranspose2d(wtT, stride: 2, padding: 0, groups: n)
                out = out.reshaped([n, o, out.shape[2], out.shape[3]])
            } else {
                out = xg.conv2d(wt.reshaped([n * o, i, k, k]), padding: k / 2, groups: n)
                    .reshaped([n, o, h, wd])
            }
        case .shared, .automatic:
            let ws = weight.value.reshaped([o, i, k, k]) * scale  // [O, I, k, k]
            let xs = x * style.reshaped([n, i, 1, 1])
            if upsample {
                out = xs.convTranspose2d(ws.transposed(0, 1), stride: 2, padding: 0, groups: 1)
            } else {
                out = xs.conv2d(ws, padding: k / 2, groups: 1)
            }
            if demodulate {
                let wsq = ws.squared().sum(axes: [2, 3])  // [O, I]
                demod = (Tensor.matmul(style.squared(), wsq.transposed(0, 1)) + demodulationEpsilon)
                    .rsqrt()  // [N, O]
            }
        }
        if let blur {
            out = out.upfirdn2d(kernel: blur.kernel.value, pad: (1, 1))
        }
        return (out, demod)
    }
}

/// Adds `weight · noise` (one learned strength per layer).
final class NoiseInjection: Module {
    let weight = Parameter(Tensor.zeros([1]))
    override init() {
        super.init()
        register("weight", weight)
    }
}

final class StyledConv: Module {
    let conv: ModulatedConv2d
    let noise = NoiseInjection()
    let activateBias: Parameter

    init(_ inChannels: Int, _ outChannels: Int, styleDim: Int, upsample: Bool, blurTaps: [Float]) {
        conv = ModulatedConv2d(
            inChannels, outChannels, kernelSize: 3, styleDim: styleDim, upsample: upsample,
            blurTaps: blurTaps)
        activateBias = Parameter(Tensor.zeros([outChannels]))
        super.init()
        register("conv", conv)
        register("noise", noise)
        let activate = Module()
        activate.register("bias", activateBias)
        register("activate", activate)
    }

    func callAsFunction(_ x: Tensor, _ w: Tensor, noise map: Tensor?, form: ModulationForm)
        -> Tensor
    {
        let (out, demod) = conv.forward(x, w, form: form)
        return Tensor.scaledNoisyLeakyRelu(
            out, scale: demod, noise: map, noiseWeight: map == nil ? nil : noise.weight.value,
            bias: activateBias.value, slope: leakySlope, gain: activationGain)
    }
}

final class ToRGB: Module {
    let bias = Parameter(Tensor.zeros([1, 3, 1, 1]))
    let upsample: FIRFilter?
    let conv: ModulatedConv2d

    init(_ inChannels: Int, styleDim: Int, upsample: Bool, blurTaps: [Float]) {
        self.upsample = upsample ? FIRFilter(blurTaps, gain: 4) : nil
        conv = ModulatedConv2d(inChannels, 3, kernelSize: 1, styleDim: styleDim, demodulate: false)
        super.init()
        register("bias", bias)
        if let u = self.upsample { register("upsample", u) }
        register("conv", conv)
    }

    func callAsFunction(_ x: Tensor, _ w: Tensor, skip: Tensor?, form: ModulationForm) -> Tensor {
        var out = conv(x, w, form: form) + bias.value
        if let skip, let upsample {
            out = out + skip.upfirdn2d(kernel: upsample.kernel.value, up: 2, pad: (2, 1))
        }
        return out
    }
}

// MARK: - Generator

/// rosinality's StyleGAN2 generator (the layout of `stylegan2-ffhq-config-f.pt`).
public final class StyleGAN2Generator: Module, ImageGenerator {
    public let config: StyleGAN2Config
    let mapping: [EqualLinear]
    let constantInput: Parameter  // [1, C, 4, 4]
    let conv1: StyledConv
    let toRGB1: ToRGB
    let convs: [StyledConv]
    let toRGBs: [ToRGB]
    let noises: [Parameter]  // noise_i: [1, 1, 2^r, 2^r]
    /// The mean w used for truncation (from the checkpoint's `latent_avg`, or computed).
    public var latentAverage: Tensor?
    /// How modulated convolutions run (by measured speed unless set; both are tested).
    public var modulationForm: ModulationForm = .automatic

    public init(_ config: StyleGAN2Config) {
        self.config = config
        let taps = config.blurKernel
        mapping = (0..<config.mlpLayers).map { _ in
            EqualLinear(config.styleDim, config.styleDim, lrMul: config.lrMlp, activate: true)
        }
        let c4 = config.channels[0]
        constantInput = Parameter(Tensor.zeros([1, c4, 4, 4]))
        conv1 = StyledConv(c4, c4, styleDim: config.styleDim, upsample: false, blurTaps: taps)
        toRGB1 = ToRGB(c4, styleDim: config.styleDim, upsample: false, blurTaps: taps)
        var convs: [StyledConv] = [], rgbs: [ToRGB] = []
        var inCh = c4
        for outCh in config.channels.dropFirst() {
            convs.append(
                StyledConv(inCh, outCh, styleDim: config.styleDim, upsample: true, blurTaps: taps))
            convs.append(
                StyledConv(outCh, outCh, styleDim: config.styleDim, upsample: false, blurTaps: taps)
            )
            rgbs.append(ToRGB(outCh, styleDim: config.styleDim, upsample: true, blurTaps: taps))
            inCh = outCh
        }
        self.convs = convs
        toRGBs = rgbs
        var g = RandomGenerator(seed: 0)
        noises = (0..<config.noiseLayers).map { i in
            let r = 1 << ((i + 5) / 2)
            return Parameter(g.normal([1, 1, r, r]), buffer: true, rebuildable: true)
        }
        super.init()
        let style = Module()
        for (i, layer) in mapping.enumerated() { style.register("\(i + 1)", layer) }
        register("style", style)
        let input = Module()
        input.register("input", constantInput)
        register("input", input)
        register("conv1", conv1)
        register("to_rgb1", toRGB1)
        let convList = Module()
        for (i, c) in convs.enumerated() { convList.register("\(i)", c) }
        register("convs", convList)
        let rgbList = Module()
        for (i, c) in rgbs.enumerated() { rgbList.register("\(i)", c) }
        register("to_rgbs", rgbList)
        let noiseList = Module()
        for (i, p) in noises.enumerated() { noiseList.register("noise_\(i)", p) }
        register("noises", noiseList)
        setTrainable(false)
    }

    public var codeLayers: Int { config.nLatent }
    public var codeWidth: Int { config.styleDim }
    public var imageSize: Int { config.size }
    public var summary: String { config.description }

    /// The mapping network: z [N, D] → w [N, D].
    public func map(_ z: Tensor) -> Tensor {
        var x = z * (z.squared().mean(axis: 1, keepDims: true) + 1e-8).rsqrt()
        for layer in mapping { x = layer(x) }
        return x
    }

    /// Mean of `count` mapped z drawn from `seed` (when the checkpoint has no latent_avg).
    public func meanLatent(count: Int = 10_000, seed: UInt64 = 0) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return GradMode.withoutGradients {
            var sum = Tensor.zeros([1, config.styleDim])
            var left = count
            while left > 0 {
                let n = min(left, 1000)
                sum = sum + map(g.normal([n, config.styleDim])).sum(axis: 0, keepDims: true)
                left -= n
            }
            return sum / Float(count)
        }
    }

    public func sampleCodes(count: Int, generator: inout RandomGenerator) -> Tensor {
        let z = generator.normal([count, config.styleDim])
        return broadcast(GradMode.withoutGradients { map(z) })
    }

    /// w [N, D] repeated over all layers: [N, n_latent, D].
    public func broadcast(_ w: Tensor) -> Tensor {
        w.unsqueezed(1).expanded(to: [w.shape[0], config.nLatent, config.styleDim]).contiguous()
    }

    /// Truncation towards `center` [1, D] (or [D]): center + ψ·(w − center).
    public func truncate(_ codes: Tensor, psi: Float, center: Tensor) -> Tensor {
        let c = center.reshaped([1, 1, config.styleDim])
        return c + (codes - c) * psi
    }

    /// Style mixing: rows before `crossover` from `a`, the rest from `b` (both W+).
    public func mix(_ a: Tensor, _ b: Tensor, crossover: Int) -> Tensor {
        precondition(crossover >= 0 && crossover <= config.nLatent, "mix: crossover \(crossover)")
        if crossover == 0 { return b }
        if crossover == config.nLatent { return a }
        return Tensor.concat(
            [a.slice(1, 0..<crossover), b.slice(1, crossover..<config.nLatent)], axis: 1)
    }

    /// Shapes of the noise inputs, `noise_0` … (each [1, 1, r, r]).
    public var noiseShapes: [[Int]] { noises.map(\.shape) }

    /// The noise maps a render uses.
    func noiseMaps(_ mode: NoiseMode, batch: Int) -> [Tensor?] {
        switch mode {
        case .constant: return noises.map { $0.value }
        case .zero: return noises.map { _ in nil }
        case .explicit(let maps):
            precondition(
                maps.count == noises.count,
                "explicit noise: \(maps.count) maps for \(noises.count) layers")
            return maps
        case .random(let seed):
            var g = RandomGenerator(seed: seed)
            return noises.map { g.normal([batch, 1, $0.shape[2], $0.shape[3]]) }
        }
    }

    /// Images [N, 3, size, size] from W+ codes [N, n_latent, D].
    public func render(_ codes: Tensor, noise: NoiseMode) -> Tensor {
        precondition(
            codes.rank == 3 && codes.shape[1] == config.nLatent
                && codes.shape[2] == config.styleDim,
            "render: codes \(describe(codes.shape)) do not fit W+ "
                + "[N, \(config.nLatent), \(config.styleDim)]"
        )
        let n = codes.shape[0]
        let maps = noiseMaps(noise, batch: n)
        let form = modulationForm.resolved(batch: n)
        func row(_ i: Int) -> Tensor { codes.slice(1, i..<(i + 1)).reshaped([n, config.styleDim]) }

        var x = constantInput.value.expanded(to: [n, config.channels[0], 4, 4])
        x = conv1(x, row(0), noise: maps[0], form: form)
        var skip = toRGB1(x, row(1), skip: nil, form: form)
        var i = 1
        for (j, rgb) in toRGBs.enumerated() {
            x = convs[2 * j](x, row(i), noise: maps[2 * j + 1], form: form)
            x = convs[2 * j + 1](x, row(i + 1), noise: maps[2 * j + 2], form: form)
            skip = rgb(x, row(i + 2), skip: skip, form: form)
            i += 2
        }
        return skip
    }

    /// Builds a generator from a state dict (e.g. a checkpoint's `g_ema`), inferring its
    /// settings; `latentAverage` is taken from `latent_avg` when given.
    public static func load(
        _ state: [String: Tensor], latentAverage: Tensor? = nil, source: String
    ) throws -> (StyleGAN2Generator, warnings: [String]) {
        let config = try StyleGAN2Config.infer(from: state, source: source)
        let g = StyleGAN2Generator(config)
        let warnings = try g.load(state, source: source)
        g.setTrainable(false)
        g.latentAverage = latentAverage?.reshaped([1, config.styleDim])
        return (g, warnings)
    }
}

extension StyleGAN2Generator {
    /// A generator with rosinality's initialisation (normal weights, modulation biases 1,
    /// mapping weights N(0, 1)/lrMul), drawn from `seed`: for tests and benchmarks.
    public static func randomlyInitialised(_ config: StyleGAN2Config, seed: UInt64)
        -> StyleGAN2Generator
    {
        let g = StyleGAN2Generator(config)
        var rng = RandomGenerator(seed: seed)
        for (key, p) in g.namedParameters() where !p.isBuffer {
            if key.hasSuffix("modulation.bias") {
                p.assign(Tensor.ones(p.shape))
            } else if key.hasSuffix(".weight") && p.shape.count >= 2 {
                let scale: Float = key.hasPrefix("style.") ? 1 / config.lrMlp : 1
                p.assign(rng.normal(p.shape) * scale)
            } else if key == "input.input" {
                p.assign(rng.normal(p.shape))
            } else {
                p.assign(Tensor.zeros(p.shape))
            }
        }
        g.setTrainable(false)
        return g
    }

    /// Multiply-adds of every convolution for one image (modulation and mapping excluded).
    public var convolutionMACs: Int {
        var total = 0
        var res = 4
        let ch = config.channels
        total += ch[0] * ch[0] * 9 * res * res + ch[0] * 3 * res * res  // conv1, to_rgb1
        for j in 1..<ch.count {
            let (i, o) = (ch[j - 1], ch[j])
            // Transposed conv: every input pixel scatters a 3×3 kernel.
            total += i * o * 9 * res * res
            res *= 2
            total += o * o * 9 * res * res + o * 3 * res * res
        }
        return total
    }
}
