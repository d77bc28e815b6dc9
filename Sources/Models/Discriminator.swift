import Formats
import Foundation
import Layers
import TensorCore

// MARK: - Settings

/// The settings of the ISF-GAN discriminator (the authors' StarGAN-v2-style
/// `core.model.Discriminator(img_size, num_domains, max_conv_dim)`).
public struct DiscriminatorConfig: Equatable, Codable, Sendable, CustomStringConvertible {
    /// Side of the square input image, a power of two (256 in the released runs).
    public var imageSize: Int
    /// Number of attribute logits (`num_domains`; 4 for FFHQ).
    public var attributes: Int
    /// Largest channel count of the trunk (`max_conv_dim`; 512 in the released runs).
    public var maxWidth: Int
    /// The first convolution's width when not the official `2^14 / imageSize` (an
    /// isfgan setting: the official formula gives 256 channels at 64 px, too heavy for a
    /// CPU; nil keeps the formula).
    public var firstWidthOverride: Int?

    public init(
        imageSize: Int = 256, attributes: Int = 4, maxWidth: Int = 512,
        firstWidth: Int? = nil
    ) {
        self.imageSize = imageSize
        self.attributes = attributes
        self.maxWidth = maxWidth
        self.firstWidthOverride = firstWidth
    }

    /// Width of the first convolution: `2^14 / imageSize` (64 at 256 px), as in the code,
    /// unless overridden.
    public var firstWidth: Int { firstWidthOverride ?? max(1, (1 << 14) / imageSize) }

    /// Residual blocks of the trunk: `log2(imageSize) − 2`, so that it ends at 4×4.
    public var blockCount: Int { imageSize.trailingZeroBitCount - 2 }

    /// The (input, output) channel counts of every residual block.
    public var blockWidths: [(input: Int, output: Int)] {
        var widths: [(Int, Int)] = []
        var dimIn = firstWidth
        for _ in 0..<blockCount {
            let dimOut = min(dimIn * 2, maxWidth)
            widths.append((dimIn, dimOut))
            dimIn = dimOut
        }
        return widths
    }

    /// Channels at the end of the trunk, what the two heads see.
    public var finalWidth: Int { blockWidths.last?.output ?? firstWidth }

    /// Checks the settings.
    ///
    /// - Throws: `ModelError.badInput` naming the setting and what was expected.
    public func validate() throws {
        var problems: [String] = []
        if imageSize < 4 || imageSize > (1 << 14) || imageSize & (imageSize - 1) != 0 {
            problems.append("image size \(imageSize) is not a power of two in 4...16384")
        }
        if attributes < 1 { problems.append("attributes \(attributes) must be at least 1") }
        if maxWidth < 1 { problems.append("max width \(maxWidth) must be at least 1") }
        if let w = firstWidthOverride, w < 1 {
            problems.append("first width \(w) must be at least 1")
        }
        if !problems.isEmpty {
            throw ModelError.badInput("discriminator settings: " + problems.joined(separator: "; "))
        }
    }

    public var description: String {
        "discriminator \(imageSize) px, \(attributes) attributes, max width \(maxWidth), "
            + "\(blockCount) blocks"
            + (firstWidthOverride.map { ", first width \($0) (not the official formula)" } ?? "")
    }

    /// Reads the settings off a state dict's keys and shapes: the first convolution's
    /// width gives the image size (`2^14 / width`), the number of `main.N` blocks checks
    /// it, `out_cls.3.weight` gives the attributes and the widest block the max width.
    ///
    /// - Throws: `ModelError.notRecognised` naming `source` and the key that does not fit.
    public static func infer(from state: [String: Tensor], source: String) throws
        -> DiscriminatorConfig
    {
        func shape(_ key: String) throws -> [Int] {
            guard let t = state[key] else {
                throw ModelError.notRecognised(
                    source, "no '\(key)': not an ISF-GAN discriminator state dict")
            }
            return t.shape
        }
        let first = try shape("main.0.weight")  // [dimIn, 3, 3, 3]
        let cls = try shape("out_cls.3.weight")  // [D, C, 1, 1]
        guard first.count == 4, first[1] == 3, cls.count == 4 else {
            throw ModelError.notRecognised(
                source,
                "'main.0.weight' \(describe(first)) / 'out_cls.3.weight' "
                    + "\(describe(cls)) are not the discriminator's convolutions")
        }
        var blocks = 0
        var widest = 0  // the widest block output; max_conv_dim caps only those
        while let w = state["main.\(blocks + 1).conv2.weight"] {
            widest = max(widest, w.shape[0])
            blocks += 1
        }
        if blocks == 0 { widest = first[0] }
        let size = 1 << (blocks + 2)
        // A first width other than the official 2^14 / size is isfgan's override.
        let official = (1 << 14) / size == first[0]
        // Any max width ≥ the widest block builds the same network; report the widest.
        let config = DiscriminatorConfig(
            imageSize: size, attributes: cls[0], maxWidth: widest,
            firstWidth: official ? nil : first[0])
        try config.validate()
        return config
    }
}

// MARK: - Layers

/// StarGAN v2's `ResBlk` without normalisation, always downsampling:
/// `(shortcut(x) + residual(x)) / √2`.
final class DiscriminatorBlock: Module {
    let conv1: Conv2d  // in → in, 3×3
    let conv2: Conv2d  // in → out, 3×3
    let shortcutConv: Conv2d?  // in → out, 1×1, no bias (only when in ≠ out)

    init(_ dimIn: Int, _ dimOut: Int) {
        conv1 = Conv2d(dimIn, dimIn, kernel: 3, padding: 1)
        conv2 = Conv2d(dimIn, dimOut, kernel: 3, padding: 1)
        shortcutConv = dimIn != dimOut ? Conv2d(dimIn, dimOut, kernel: 1, bias: false) : nil
        super.init()
        register("conv1", conv1)
        register("conv2", conv2)
        if let shortcutConv { register("conv1x1", shortcutConv) }
    }

    /// x [N, in, H, W] → [N, out, H/2, W/2].
    func callAsFunction(_ x: Tensor) -> Tensor {
        var s = shortcutConv.map { $0(x) } ?? x
        s = s.avgPool2d(kernelSize: 2)
        var r = conv1(x.leakyRelu(slope: 0.2))
        r = conv2(r.avgPool2d(kernelSize: 2).leakyRelu(slope: 0.2))
        return (s + r) * Float(1 / 2.0.squareRoot())
    }
}

/// One output head: LeakyReLU, Conv 4×4 (C → C, no padding), LeakyReLU, Conv 1×1 (C → K).
/// Keys `1.*` and `3.*` as in the official `nn.Sequential`.
final class DiscriminatorHead: Module {
    let conv: Conv2d  // C → C, 4×4
    let out: Conv2d  // C → K, 1×1

    init(width: Int, outputs: Int) {
        conv = Conv2d(width, width, kernel: 4)
        out = Conv2d(width, outputs, kernel: 1)
        super.init()
        register("1", conv)
        register("3", out)
    }

    /// h [N, C, 4, 4] → [N, K].
    func callAsFunction(_ h: Tensor) -> Tensor {
        let y = out(conv(h.leakyRelu(slope: 0.2)).leakyRelu(slope: 0.2))  // [N, K, 1, 1]
        return y.reshaped([h.shape[0], -1])
    }
}

// MARK: - Network

/// How a fresh discriminator's weights are drawn.
public enum DiscriminatorInit: String, Codable, Sendable {
    /// PyTorch's default `nn.Conv2d` init (what the official runs start from): weight and
    /// bias U(−1/√fan_in, 1/√fan_in).
    case pytorchDefault
    /// `core/utils.py he_init` (defined but never applied by the official code): weight
    /// N(0, 2/fan_in), bias 0.
    case he
}

/// The ISF-GAN discriminator (checkpoint key `discriminator`): a residual trunk with
/// average-pool downsampling and two heads, attribute logits and a realism logit.
///
/// ```
/// main:    Conv3×3(3 → 2^14/S), log2(S) − 2 × ResBlk(down), ending at 4×4
/// out_cls: LReLU, Conv4×4, LReLU, Conv1×1 → [N, D]
/// out_src: LReLU, Conv4×4, LReLU, Conv1×1 → [N]
/// ```
public final class Discriminator: Module {
    /// The key of the discriminator in the official checkpoints.
    public static let checkpointKey = "discriminator"

    public let config: DiscriminatorConfig
    let stem: Conv2d
    let blocks: [DiscriminatorBlock]
    let attributeHead: DiscriminatorHead
    let realismHead: DiscriminatorHead

    /// A network with zero weights; load a state dict or use ``init(_:initialization:seed:)``.
    public init(_ config: DiscriminatorConfig) {
        precondition((try? config.validate()) != nil, "Discriminator: invalid \(config)")
        self.config = config
        stem = Conv2d(3, config.firstWidth, kernel: 3, padding: 1)
        blocks = config.blockWidths.map { DiscriminatorBlock($0.input, $0.output) }
        attributeHead = DiscriminatorHead(width: config.finalWidth, outputs: config.attributes)
        realismHead = DiscriminatorHead(width: config.finalWidth, outputs: 1)
        super.init()
        let main = Module()
        main.register("0", stem)
        for (i, b) in blocks.enumerated() { main.register("\(i + 1)", b) }
        register("main", main)
        register("out_cls", attributeHead)
        register("out_src", realismHead)
    }

    /// A trainable network initialised from `seed`, convolution by convolution in key order.
    public convenience init(
        _ config: DiscriminatorConfig, initialization: DiscriminatorInit = .pytorchDefault,
        seed: UInt64
    ) {
        self.init(config)
        var rng = RandomGenerator(seed: seed)
        for conv in convolutions {
            let fanIn = Float(conv.fanIn)
            switch initialization {
            case .pytorchDefault:
                let bound = 1 / fanIn.squareRoot()
                conv.weight.assign(rng.uniform(conv.weight.shape, low: -bound, high: bound))
                if let b = conv.bias { b.assign(rng.uniform(b.shape, low: -bound, high: bound)) }
            case .he:
                conv.weight.assign(rng.normal(conv.weight.shape) * (2 / fanIn).squareRoot())
                if let b = conv.bias { b.assign(Tensor.zeros(b.shape)) }
            }
        }
    }

    private var convolutions: [Conv2d] {
        var all = [stem]
        for b in blocks { all += [b.conv1, b.conv2] + (b.shortcutConv.map { [$0] } ?? []) }
        return all + [attributeHead.conv, attributeHead.out, realismHead.conv, realismHead.out]
    }

    /// The trunk's features: x [N, 3, S, S] → [N, C, 4, 4].
    public func features(_ x: Tensor) -> Tensor {
        var h = stem(x)
        for b in blocks { h = b(h) }
        return h
    }

    /// Both outputs: attribute logits [N, D] and realism logits [N].
    ///
    /// - Throws: `ModelError.badInput` when `x` is not [N, 3, S, S] at the configured size.
    public func callAsFunction(_ x: Tensor) throws -> (attributes: Tensor, realism: Tensor) {
        let s = config.imageSize
        guard x.rank == 4, x.shape[1] == 3, x.shape[2] == s, x.shape[3] == s else {
            throw ModelError.badInput(
                "discriminator input has shape \(describe(x.shape)), expected [N, 3, \(s), \(s)]")
        }
        let h = features(x)
        return (attributeHead(h), realismHead(h).reshaped([x.shape[0]]))
    }

    /// Builds a discriminator from a state dict, inferring its settings, and binds it
    /// strictly. It comes back trainable.
    ///
    /// - Throws: `ModelError` when the keys are not a discriminator's, `StateDictError`
    ///   listing every missing, unexpected and mis-shaped key.
    public static func load(_ state: [String: Tensor], source: String) throws -> Discriminator {
        let config = try DiscriminatorConfig.infer(from: state, source: source)
        let d = Discriminator(config)
        try d.load(state, source: source)
        return d
    }

    /// Reads the `discriminator` entry of an official checkpoint (`NNNNNN_nets.ckpt` or
    /// `_nets_ema.ckpt`), or a file that is a bare discriminator state dict.
    ///
    /// - Throws: `FormatError` for a file that is not a PyTorch checkpoint, `ModelError`
    ///   for one without a discriminator, `StateDictError` for keys that do not fit.
    public static func load(checkpoint url: URL) throws -> Discriminator {
        let file = try TorchCheckpoint(contentsOf: url)
        if file.root[checkpointKey] != nil {
            return try load(
                try file.stateDict(checkpointKey).tensors,
                source: "\(url.path) [\(checkpointKey)]")
        }
        if file.root["main.0.weight"] != nil {
            return try load(try file.stateDict().tensors, source: url.path)
        }
        let keys = file.root.dict?.stringKeys.prefix(8).joined(separator: ", ") ?? ""
        throw ModelError.notRecognised(
            url.path,
            "no '\(checkpointKey)' entry and no discriminator keys (top-level "
                + "\(file.root.kindName)\(keys.isEmpty ? "" : " with keys \(keys)"))")
    }
}

// MARK: - Losses on the discriminator

/// Which discriminator output the R1 penalty differentiates.
public enum R1Target: String, Codable, Sendable {
    /// The attribute logits, as the official ISF-GAN code does (`r1_reg(real_cls, x)`).
    case attributes
    /// The realism logit, as StarGAN v2 does.
    case realism
}

extension Discriminator {
    /// The R1 penalty of the official `r1_reg(out, x)`:
    /// `0.5 · mean_n Σ (∂ Σ out / ∂x_n)²`.
    ///
    /// `input` must be the tensor `output` was computed from, recorded with gradients
    /// (`requiringGrad()`); the gradient is taken with `createGraph`, so the penalty can
    /// itself be back-propagated into the weights (a gradient of a gradient).
    public static func r1Penalty(output: Tensor, input: Tensor) -> Tensor {
        precondition(input.requiresGrad, "r1Penalty: the input must require gradients")
        let g = Tensor.gradients(
            of: output.sum(), withRespectTo: [input], createGraph: true)[0]  // like input
        let perSample = g.squared().reshaped([input.shape[0], -1]).sum(axes: [1])  // [N]
        return perSample.mean() * 0.5
    }
}
