import Formats
import Foundation
import Layers
import TensorCore

// MARK: - The perceptual-loss protocol

/// A differentiable perceptual distance between two image batches, as the ISF loss uses
/// it (`lambda_lpips · P(x', x)`): LPIPS here, ST-LPIPS elsewhere.
public protocol PerceptualLoss: AnyObject {
    /// A short name for logs and settings (`lpips-alex`, `stlpips-alex`, …).
    var perceptualName: String { get }

    /// The distance averaged over the batch: a one-element tensor.
    ///
    /// Images are [N, 3, H, W] in about [−1, 1]; gradients flow into both when they
    /// record them.
    /// - Throws: `ModelError.badInput` when the images do not fit the network.
    func perceptualLoss(_ x: Tensor, _ y: Tensor) throws -> Tensor

    /// `perceptualLoss(x, y)` for every x against one y; a network may compute y's
    /// features once (the ISF loss compares both the edited and the cycled image with
    /// the source image).
    func perceptualLosses(_ xs: [Tensor], _ y: Tensor) throws -> [Tensor]
}

extension PerceptualLoss {
    public func perceptualLosses(_ xs: [Tensor], _ y: Tensor) throws -> [Tensor] {
        try xs.map { try perceptualLoss($0, y) }
    }
}

// MARK: - LPIPS

/// The feature network under LPIPS.
public enum LPIPSBackbone: String, Codable, Sendable, CaseIterable {
    /// torchvision AlexNet's feature stack (what ISF-GAN uses); channels 64, 192, 384,
    /// 256, 256.
    case alex
    /// torchvision VGG16's feature stack; channels 64, 128, 256, 512, 512.
    case vgg

    /// One entry per layer of torchvision's `features` (its index is the position).
    enum Layer {
        case conv(inputs: Int, outputs: Int, kernel: Int, stride: Int, padding: Int)
        case relu
        case maxPool(kernel: Int, stride: Int)
    }

    var layers: [Layer] {
        switch self {
        case .alex:
            return [
                .conv(inputs: 3, outputs: 64, kernel: 11, stride: 4, padding: 2), .relu,
                .maxPool(kernel: 3, stride: 2),
                .conv(inputs: 64, outputs: 192, kernel: 5, stride: 1, padding: 2), .relu,
                .maxPool(kernel: 3, stride: 2),
                .conv(inputs: 192, outputs: 384, kernel: 3, stride: 1, padding: 1), .relu,
                .conv(inputs: 384, outputs: 256, kernel: 3, stride: 1, padding: 1), .relu,
                .conv(inputs: 256, outputs: 256, kernel: 3, stride: 1, padding: 1), .relu,
            ]
        case .vgg:
            var layers: [Layer] = []
            var inputs = 3
            for (i, (width, count)) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
                .enumerated()
            {
                if i > 0 { layers.append(.maxPool(kernel: 2, stride: 2)) }
                for _ in 0..<count {
                    layers += [
                        .conv(inputs: inputs, outputs: width, kernel: 3, stride: 1, padding: 1),
                        .relu,
                    ]
                    inputs = width
                }
            }
            return layers
        }
    }

    /// The `lpips` package's slices: half-open ranges of `features` indices, each ending
    /// after the ReLU whose output LPIPS compares.
    var slices: [Range<Int>] {
        switch self {
        case .alex: return [0..<2, 2..<5, 5..<8, 8..<10, 10..<12]
        case .vgg: return [0..<4, 4..<9, 9..<16, 16..<23, 23..<30]
        }
    }

    /// Channels of the five compared features.
    public var channels: [Int] {
        switch self {
        case .alex: return [64, 192, 384, 256, 256]
        case .vgg: return [64, 128, 256, 512, 512]
        }
    }
}

/// How LPIPS scales each feature vector to unit length.
public enum LPIPSNormalization: String, Codable, Sendable {
    /// `x · rsqrt(Σ_c x² + 1e-10)`: the official ISF-GAN (StarGAN v2) metric; canonical.
    case reference
    /// `x / (√(Σ_c x²) + 1e-10)`: the `lpips` package. Agrees with `reference` to ~1e-8.
    case package
}

/// Learned Perceptual Image Patch Similarity (Zhang et al. 2018) as the official ISF-GAN
/// code computes it:
///
/// ```
/// x̂ = (x − shift) / scale                       // x in [−1, 1]
/// f_l = backbone ReLU outputs, l = 0..<5          // [N, C_l, H_l, W_l]
/// d(x, y) = Σ_l mean_hw( lin_l( (unit(f_l(x)) − unit(f_l(y)))² ) )
/// ```
///
/// Parameters sit under the `lpips` package's keys (`scaling_layer.shift`,
/// `net.slice1.0.weight`, …, `lin0.model.1.weight`); ``load(_:source:)`` also accepts
/// torchvision `features.N.*` keys and the StarGAN-v2 `lpips_weights.N.main.1.weight`
/// heads. All weights are frozen.
public final class LPIPS: Module, PerceptualLoss {
    public let backbone: LPIPSBackbone
    public var normalization: LPIPSNormalization = .reference

    let shift: Parameter  // [1, 3, 1, 1]
    let scale: Parameter  // [1, 3, 1, 1]
    /// The `features` layers: each convolution, or nil for ReLU and pooling.
    let convs: [Int: Conv2d]
    let heads: [Conv2d]  // C_l → 1, 1×1, no bias

    /// The fixed input shift and scale of the `lpips` package's `ScalingLayer`.
    public static let shiftValues: [Float] = [-0.030, -0.088, -0.188]
    public static let scaleValues: [Float] = [0.458, 0.448, 0.450]

    /// A network with zero weights (load a state dict into it).
    public init(backbone: LPIPSBackbone) {
        self.backbone = backbone
        shift = Parameter(
            Tensor(shape: [1, 3, 1, 1], LPIPS.shiftValues), buffer: true, rebuildable: true)
        scale = Parameter(
            Tensor(shape: [1, 3, 1, 1], LPIPS.scaleValues), buffer: true, rebuildable: true)
        var convs: [Int: Conv2d] = [:]
        for (i, layer) in backbone.layers.enumerated() {
            if case .conv(let cin, let cout, let k, let s, let p) = layer {
                convs[i] = Conv2d(cin, cout, kernel: k, stride: s, padding: p)
            }
        }
        self.convs = convs
        heads = backbone.channels.map { Conv2d($0, 1, kernel: 1, bias: false) }
        super.init()

        let scaling = Module()
        scaling.register("shift", shift)
        scaling.register("scale", scale)
        register("scaling_layer", scaling)
        let net = Module()
        for (s, range) in backbone.slices.enumerated() {
            let slice = Module()
            for i in range { if let c = convs[i] { slice.register("\(i)", c) } }
            net.register("slice\(s + 1)", slice)
        }
        register("net", net)
        for (l, head) in heads.enumerated() {
            let lin = Module()
            let model = Module()
            model.register("1", head)  // index 0 is the (inactive) Dropout
            lin.register("model", model)
            register("lin\(l)", lin)
        }
        setTrainable(false)
    }

    public var perceptualName: String { "lpips-\(backbone.rawValue)" }

    // MARK: Loading

    /// Builds LPIPS from one state dict: the `lpips` package's layout (backbone and heads,
    /// as `torch.save(lpips.LPIPS(...).state_dict())` writes it), or any mix of
    /// torchvision `features.N.*` backbone keys and `lin*`, `lins.*` or StarGAN-v2
    /// `lpips_weights.*` heads. The backbone is told apart by its first convolution.
    ///
    /// - Throws: `ModelError` when no backbone can be recognised, `StateDictError`
    ///   listing every missing, unexpected and mis-shaped key.
    public static func load(_ state: [String: Tensor], source: String) throws -> LPIPS {
        let canonical = canonicalKeys(state)
        let first = canonical["net.slice1.0.weight"]?.shape
        let backbone: LPIPSBackbone
        switch first {
        case [64, 3, 11, 11]?: backbone = .alex
        case [64, 3, 3, 3]?: backbone = .vgg
        default:
            throw ModelError.notRecognised(
                source,
                "no LPIPS backbone: expected 'net.slice1.0.weight' or "
                    + "'features.0.weight' of shape [64, 3, 11, 11] (AlexNet) or [64, 3, 3, 3] "
                    + "(VGG16), found \(first.map(describe) ?? "none")")
        }
        let model = LPIPS(backbone: backbone)
        try model.load(canonical, source: source)
        model.setTrainable(false)
        return model
    }

    /// Builds LPIPS from a backbone file (torchvision `alexnet`/`vgg16` state dict with
    /// `features.N.*` keys; the classifier keys are ignored) and a heads file (the `lpips`
    /// package's `weights/v0.1/alex.pth` or the official `lpips_weights.ckpt`).
    public static func load(backbone backboneURL: URL, heads headsURL: URL) throws -> LPIPS {
        let backbone = try TorchCheckpoint(contentsOf: backboneURL).stateDict().tensors
        let heads = try TorchCheckpoint(contentsOf: headsURL).stateDict().tensors
        var merged = backbone.filter { $0.key.hasPrefix("features.") }
        for (k, v) in heads where !k.hasPrefix("features.") { merged[k] = v }
        return try load(merged, source: "\(backboneURL.path) + \(headsURL.path)")
    }

    /// Reads one file: a bare state dict, or a dict with the state dict under `lpips`.
    public static func load(contentsOf url: URL) throws -> LPIPS {
        let file = try TorchCheckpoint(contentsOf: url)
        let state = file.root["lpips"] != nil ? try file.stateDict("lpips") : try file.stateDict()
        return try load(state.tensors, source: url.path)
    }

    /// Renames every accepted spelling to the `lpips` package's keys; drops the `lins.N`
    /// aliases the package saves beside `linN`.
    static func canonicalKeys(_ state: [String: Tensor]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        var aliases: [String: Tensor] = [:]
        let backbone: LPIPSBackbone? =
            (state["features.0.weight"] ?? state["alexnet.layers.0.weight"]).map {
                $0.shape == [64, 3, 11, 11] ? .alex : .vgg
            }
        for (key, t) in state {
            let parts = key.split(separator: ".").map(String.init)
            if parts.count == 3, parts[0] == "features" || parts[0] == "layers",
                let i = Int(parts[1]), let b = backbone,
                let s = b.slices.firstIndex(where: { $0.contains(i) })
            {
                out["net.slice\(s + 1).\(i).\(parts[2])"] = t
            } else if parts.count == 4, parts[0] == "alexnet", parts[1] == "layers",
                let i = Int(parts[2]), let b = backbone,
                let s = b.slices.firstIndex(where: { $0.contains(i) })
            {
                out["net.slice\(s + 1).\(i).\(parts[3])"] = t
            } else if parts.count == 5, parts[0] == "lins" || parts[0] == "lpips_weights",
                let l = Int(parts[1])
            {
                aliases["lin\(l).model.1.\(parts[4])"] = t
            } else {
                out[key] = t
            }
        }
        for (k, v) in aliases where out[k] == nil { out[k] = v }
        return out
    }

    // MARK: Forward

    /// The five compared features of images x [N, 3, H, W] in [−1, 1] (after the fixed
    /// shift and scale): [N, C_l, H_l, W_l] each.
    public func features(_ x: Tensor) -> [Tensor] {
        var h = (x - shift.value) / scale.value
        var out: [Tensor] = []
        let layers = backbone.layers
        for range in backbone.slices {
            for i in range {
                switch layers[i] {
                case .conv: h = convs[i]!(h)
                case .relu: h = h.relu()
                case .maxPool(let k, let s): h = h.maxPool2d(kernelSize: k, stride: s)
                }
            }
            out.append(h)
        }
        return out
    }

    /// Unit length over channels, in the configured form.
    func unit(_ f: Tensor) -> Tensor {
        let sumSquares = f.squared().sum(axes: [1], keepDims: true)  // [N, 1, H, W]
        switch normalization {
        case .reference: return f * (sumSquares + 1e-10).rsqrt()
        case .package: return f / (sumSquares.sqrt() + 1e-10)
        }
    }

    /// Per-layer distances, each [N]: the spatial mean of `lin_l((unit(f) − unit(g))²)`.
    ///
    /// - Throws: `ModelError.badInput` when the images are not two [N, 3, H, W] batches of
    ///   one shape, large enough for the backbone.
    public func layerDistances(_ x: Tensor, _ y: Tensor) throws -> [Tensor] {
        try checkPair(x, y)
        return layerDistances(unitFeatures(x), unitFeatures(y), batch: x.shape[0])
    }

    func checkPair(_ x: Tensor, _ y: Tensor) throws {
        guard x.rank == 4, x.shape[1] == 3, x.shape == y.shape else {
            throw ModelError.badInput(
                "LPIPS inputs have shapes \(describe(x.shape)) and \(describe(y.shape)), "
                    + "expected two [N, 3, H, W] batches of one shape")
        }
        let minimum = backbone == .alex ? 31 : 16
        guard x.shape[2] >= minimum, x.shape[3] >= minimum else {
            throw ModelError.badInput(
                "LPIPS (\(backbone.rawValue)) needs images of at least \(minimum)×\(minimum) "
                    + "pixels, got \(x.shape[2])×\(x.shape[3])")
        }
    }

    func unitFeatures(_ x: Tensor) -> [Tensor] { features(x).map(unit) }

    func layerDistances(_ ux: [Tensor], _ uy: [Tensor], batch n: Int) -> [Tensor] {
        zip(heads, zip(ux, uy)).map { head, pair in
            let d = (pair.0 - pair.1).squared()  // [N, C, H, W]
            return head(d).reshaped([n, -1]).mean(axes: [1])  // [N]
        }
    }

    /// The distance of every pair: [N].
    public func distances(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        let layers = try layerDistances(x, y)
        return layers.dropFirst().reduce(layers[0], +)
    }

    /// The batch mean of the distances (what the official loss and metric use).
    public func perceptualLoss(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        try distances(x, y).mean()
    }

    /// The batch-mean distance of every x to one y, computing y's features once.
    public func perceptualLosses(_ xs: [Tensor], _ y: Tensor) throws -> [Tensor] {
        for x in xs { try checkPair(x, y) }
        guard !xs.isEmpty else { return [] }
        let uy = unitFeatures(y)
        return xs.map { x in
            let layers = layerDistances(unitFeatures(x), uy, batch: x.shape[0])
            return layers.dropFirst().reduce(layers[0], +).mean()
        }
    }
}

// MARK: - Max pooling

extension Tensor {
    /// PyTorch's `F.max_pool2d(x, k, s)` without padding (floor mode): the largest value of
    /// each window, the first one in row-major order on ties.
    ///
    /// x [N, C, H, W] → [N, C, ⌊(H − k)/s⌋ + 1, ⌊(W − k)/s⌋ + 1]. The gradient goes to the
    /// chosen element of each window (added up where windows overlap); the backward is a
    /// scatter whose own derivative is the matching gather, so it differentiates again.
    func maxPool2d(kernelSize k: Int, stride s: Int) -> Tensor {
        precondition(rank == 4, "maxPool2d: input \(describe(shape)) is not [N, C, H, W]")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        precondition(h >= k && w >= k, "maxPool2d: kernel \(k) larger than \(describe(shape))")
        let ho = (h - k) / s + 1, wo = (w - k) / s + 1
        let x = contiguous()
        let out = Tensor(uninitializedShape: [n, c, ho, wo])
        var indices = [Int32](repeating: 0, count: n * c * ho * wo)
        let src = x.pointer, dst = out.pointer
        indices.withUnsafeMutableBufferPointer { idx in
            let ip = idx.baseAddress!
            Threads.parallelFor(n * c, grain: 4) { planes in
                for p in planes {
                    let plane = src + p * h * w
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            var best = -Float.infinity
                            var at = (oy * s) * w + ox * s
                            for dy in 0..<k {
                                let row = (oy * s + dy) * w + ox * s
                                for dx in 0..<k {
                                    let v = plane[row + dx]
                                    if v > best || v.isNaN {
                                        best = v
                                        at = row + dx
                                        if v.isNaN { break }
                                    }
                                }
                            }
                            let o = (p * ho + oy) * wo + ox
                            dst[o] = best
                            ip[o] = Int32(at)
                        }
                    }
                }
            }
        }
        let plan = PoolIndexPlan(indices: indices, planeIn: h * w, planeOut: ho * wo)
        let inputShape = shape
        return Tensor.recorded(out, op: "maxPool2d", inputs: [self]) { g, needs in
            [needs[0] ? plan.scatter(g, into: inputShape) : nil]
        }
    }
}

/// Where each pooled value came from, for the scatter (backward) and gather (its own
/// backward) of max pooling.
final class PoolIndexPlan: @unchecked Sendable {
    let indices: [Int32]  // per output element, offset inside its input plane
    let planeIn: Int
    let planeOut: Int

    init(indices: [Int32], planeIn: Int, planeOut: Int) {
        self.indices = indices
        self.planeIn = planeIn
        self.planeOut = planeOut
    }

    /// g [N, C, Ho, Wo] → [N, C, H, W]: each value added at its source position.
    func scatter(_ g: Tensor, into inputShape: [Int]) -> Tensor {
        let gc = g.contiguous()
        let out = Tensor.zeros(inputShape)
        let planes = indices.count / planeOut
        let src = gc.pointer, dst = out.pointer
        let (pin, pout) = (planeIn, planeOut)
        indices.withUnsafeBufferPointer { idx in
            let ip = idx.baseAddress!
            Threads.parallelFor(planes, grain: 4) { range in
                for p in range {
                    for o in 0..<pout { dst[p * pin + Int(ip[p * pout + o])] += src[p * pout + o] }
                }
            }
        }
        let outputShape = g.shape
        return Tensor.recorded(out, op: "maxPool2dScatter", inputs: [g]) { gg, needs in
            [needs[0] ? self.gather(gg, outputShape: outputShape) : nil]
        }
    }

    /// gg [N, C, H, W] → [N, C, Ho, Wo]: the value at each source position.
    func gather(_ gg: Tensor, outputShape: [Int]) -> Tensor {
        let gc = gg.contiguous()
        let out = Tensor(uninitializedShape: outputShape)
        let planes = indices.count / planeOut
        let src = gc.pointer, dst = out.pointer
        let (pin, pout) = (planeIn, planeOut)
        indices.withUnsafeBufferPointer { idx in
            let ip = idx.baseAddress!
            Threads.parallelFor(planes, grain: 4) { range in
                for p in range {
                    for o in 0..<pout { dst[p * pout + o] = src[p * pin + Int(ip[p * pout + o])] }
                }
            }
        }
        let inputShape = gg.shape
        return Tensor.recorded(out, op: "maxPool2dGather", inputs: [gg]) { g, needs in
            [needs[0] ? self.scatter(g, into: inputShape) : nil]
        }
    }
}
