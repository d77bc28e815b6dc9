import Formats
import Foundation
import Layers
import TensorCore

/// The trunk under shift-tolerant LPIPS.
public enum STLPIPSBackbone: String, Codable, Sendable, CaseIterable {
    /// Anti-aliased AlexNet (stride-1 convolutions and pools, blur pooling); channels 64,
    /// 192, 384, 256, 256.
    case alex
    /// Anti-aliased VGG16 (every max pool is MaxPool(2, stride 1) + blur pooling);
    /// channels 64, 128, 256, 512, 512.
    case vgg

    /// Channels of the five compared features.
    public var channels: [Int] {
        switch self {
        case .alex: return [64, 192, 384, 256, 256]
        case .vgg: return [64, 128, 256, 512, 512]
        }
    }

    /// The model file `scripts/fetch-models` provides for this trunk.
    public var modelFile: ModelFile {
        switch self {
        case .alex: return .stlpipsAlex
        case .vgg: return .stlpipsVGG
        }
    }

    /// The layers of each of the five slices, with their `features` indices (the numbering
    /// of the state-dict keys `net.slice{k}.{index}.*`).
    fileprivate var slices: [[(index: Int, layer: STLayer)]] {
        switch self {
        case .alex:
            return [
                [(0, .conv(3, 64, kernel: 11, padding: 2)), (1, .blur(64)), (2, .relu)],
                [
                    (3, .maxPool(3)), (4, .blur(64)), (5, .conv(64, 192, kernel: 5, padding: 2)),
                    (6, .relu),
                ],
                [
                    (7, .maxPool(3)), (8, .blur(192)),
                    (9, .conv(192, 384, kernel: 3, padding: 1)), (10, .relu),
                ],
                [(11, .conv(384, 256, kernel: 3, padding: 1)), (12, .relu)],
                [(13, .conv(256, 256, kernel: 3, padding: 1)), (14, .relu)],
            ]
        case .vgg:
            // VGG16 configuration D, each 'M' replaced by MaxPool(2, stride 1) + BlurPool.
            var slices: [[(index: Int, layer: STLayer)]] = []
            var index = 0, inputs = 3
            for (block, (width, count)) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
                .enumerated()
            {
                var slice: [(index: Int, layer: STLayer)] = []
                if block > 0 {
                    slice += [(index, .maxPool(2)), (index + 1, .blur(inputs))]
                    index += 2
                }
                for _ in 0..<count {
                    slice += [
                        (index, .conv(inputs, width, kernel: 3, padding: 1)), (index + 1, .relu),
                    ]
                    index += 2
                    inputs = width
                }
                slices.append(slice)
            }
            return slices
        }
    }
}

/// One layer of an anti-aliased trunk.
private enum STLayer {
    /// Conv2d with bias, stride 1.
    case conv(Int, Int, kernel: Int, padding: Int)
    /// BlurPool(C): reflection pad 2 on every side, then a depthwise 3×3 binomial filter
    /// (stored in the file as `filt` [C, 1, 3, 3]) with stride 2.
    case blur(Int)
    case relu
    /// MaxPool2d(k, stride 1, no padding).
    case maxPool(Int)

    /// The side after this layer, or nil when the input is too small for it.
    func side(after s: Int) -> Int? {
        switch self {
        case .conv(_, _, let k, let p): return s + 2 * p - k + 1 >= 1 ? s + 2 * p - k + 1 : nil
        case .blur: return s > stBlurPad ? (s + 2 * stBlurPad - 3) / 2 + 1 : nil
        case .relu: return s
        case .maxPool(let k): return s >= k ? s - k + 1 : nil
        }
    }
}

/// BlurPool's reflection padding on each side (`pad_more=True` with a 3-tap filter).
private let stBlurPad = 2
/// The epsilon LPIPS adds to each feature vector's norm, after the square root.
private let stNormEpsilon: Float = 1e-10

private final class STContainer: Module {}

private final class STBlur: Module {
    let filter: Parameter  // [C, 1, 3, 3]
    let channels: Int

    init(_ channels: Int) {
        self.channels = channels
        filter = Parameter(Tensor.zeros([channels, 1, 3, 3]), buffer: true)
        super.init()
        register("filt", filter)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        // x [N, C, H, W] → [N, C, (H + 1) / 2 + 1, (W + 1) / 2 + 1]
        x.stReflectionPadded(stBlurPad).conv2d(filter.value, stride: 2, groups: channels)
    }
}

/// What one ST-LPIPS evaluation gives.
public struct STLPIPSOutput {
    /// The distance per pair: [N], the left-to-right sum of `perLayer`.
    public let distance: Tensor
    /// The five per-layer distances, each [N].
    public let perLayer: [Tensor]
    /// The five trunk features of each operand before normalisation (when asked for).
    public let taps: (first: [Tensor], second: [Tensor])?
}

/// Shift-tolerant LPIPS (Ghildyal & Liu 2022, `stlpips-pytorch` 0.0.2, variant
/// `shift_tolerant`): an anti-aliased AlexNet or VGG16 trunk trained with its linear heads
/// on the LPIPS data.
///
/// ```
/// s = (x − shift) / scale                         // x in [−1, 1], [N, 3, H, W]
/// f_k = trunk(s)[k], k = 0..<5                    // [N, C_k, H_k, W_k]
/// n(f) = f / (√(Σ_c f²) + 1e-10)                  // per pixel, over channels
/// d_k = mean_hw( lin_k( (n(f_k(x)) − n(f_k(y)))² ) )
/// d = d_0 + d_1 + d_2 + d_3 + d_4
/// ```
///
/// Weights (keys `scaling_layer.*`, `net.slice{1…5}.{i}.{weight,bias,filt}`,
/// `lin{0…4}.model.1.weight`) are loaded from the package's legacy-format `.pth` files and
/// frozen; distances are differentiable with respect to both images.
public final class STLPIPS: Module, PerceptualLoss {
    public let backbone: STLPIPSBackbone

    /// `stlpips-alex` or `stlpips-vgg`.
    public var perceptualName: String { "stlpips-\(backbone.rawValue)" }

    private let shift: Parameter  // [1, 3, 1, 1]
    private let scale: Parameter  // [1, 3, 1, 1]
    private let convs: [Int: Conv2d]
    private let blurs: [Int: STBlur]
    private let heads: [Parameter]  // 5 × [1, C_k, 1, 1]
    private let slices: [[(index: Int, layer: STLayer)]]

    /// A network with zero weights (load a state dict into it).
    public init(backbone: STLPIPSBackbone) {
        self.backbone = backbone
        slices = backbone.slices
        shift = Parameter(Tensor.zeros([1, 3, 1, 1]), buffer: true)
        scale = Parameter(Tensor.ones([1, 3, 1, 1]), buffer: true)
        var convs: [Int: Conv2d] = [:], blurs: [Int: STBlur] = [:]
        for slice in slices {
            for (i, layer) in slice {
                switch layer {
                case .conv(let cin, let cout, let k, let p):
                    convs[i] = Conv2d(cin, cout, kernel: k, padding: p)
                case .blur(let c): blurs[i] = STBlur(c)
                case .relu, .maxPool: break
                }
            }
        }
        self.convs = convs
        self.blurs = blurs
        heads = backbone.channels.map { Parameter(Tensor.zeros([1, $0, 1, 1])) }
        super.init()

        let scaling = STContainer()
        scaling.register("shift", shift)
        scaling.register("scale", scale)
        register("scaling_layer", scaling)
        let net = STContainer()
        for (k, slice) in slices.enumerated() {
            let m = STContainer()
            for (i, _) in slice {
                if let c = convs[i] { m.register("\(i)", c) }
                if let b = blurs[i] { m.register("\(i)", b) }
            }
            net.register("slice\(k + 1)", m)
        }
        register("net", net)
        for (k, w) in heads.enumerated() {
            let lin = STContainer(), model = STContainer(), conv = STContainer()
            conv.register("weight", w)
            model.register("1", conv)
            lin.register("model", model)
            register("lin\(k)", lin)
        }
    }

    // MARK: Loading

    /// Builds the network from a state dict, telling the trunk from the first convolution
    /// (11×11: alex, 3×3: vgg), binding strictly and freezing every weight.
    public static func load(_ state: [String: Tensor], source: String) throws -> STLPIPS {
        guard let first = state["net.slice1.0.weight"], first.rank == 4 else {
            throw ModelError.notRecognised(
                source, "no 4-D 'net.slice1.0.weight': not an LPIPS state dict")
        }
        let backbone: STLPIPSBackbone
        switch first.shape[2] {
        case 11: backbone = .alex
        case 3: backbone = .vgg
        default:
            throw ModelError.notRecognised(
                source,
                "net.slice1.0.weight has shape \(describe(first.shape)); expected an "
                    + "11×11 (alex) or 3×3 (vgg) first convolution")
        }
        guard state["net.slice1.1.filt"] != nil || state["net.slice2.5.filt"] != nil else {
            throw ModelError.notRecognised(
                source,
                "no blur-pool filters (net.slice*.*.filt): a plain LPIPS file, not "
                    + "shift-tolerant LPIPS")
        }
        let m = STLPIPS(backbone: backbone)
        try m.load(state, source: source)
        m.setTrainable(false)
        return m
    }

    /// Reads a `stlpips-pytorch` weight file (`alex_shift_tolerant.pth`,
    /// `vgg_shift_tolerant.pth`: legacy torch format, the state dict at the top level).
    public static func load(contentsOf url: URL) throws -> STLPIPS {
        let file = try TorchCheckpoint(contentsOf: url)
        return try load(file.stateDict().tensors, source: url.lastPathComponent)
    }

    /// Loads the trunk's file from the model store (`scripts/fetch-models`).
    public static func load(_ backbone: STLPIPSBackbone, store: ModelStore = ModelStore())
        throws -> STLPIPS
    {
        let m = try load(contentsOf: store.locate(backbone.modelFile))
        guard m.backbone == backbone else {
            throw ModelError.notRecognised(
                backbone.modelFile.rawValue, "holds the \(m.backbone) trunk, not \(backbone)")
        }
        return m
    }

    // MARK: Evaluation

    /// The smallest square side the trunk accepts (every pool and padding needs room).
    public var minimumSide: Int {
        var s = 1
        while featureSides(for: s) == nil { s += 1 }
        return s
    }

    /// The side of each tap for a square input of side `s`, or nil when too small.
    func featureSides(for s: Int) -> [Int]? {
        var side = s
        var out: [Int] = []
        for slice in slices {
            for (_, layer) in slice {
                guard let next = layer.side(after: side) else { return nil }
                side = next
            }
            out.append(side)
        }
        return out
    }

    func checkImages(_ x: Tensor, _ what: String) throws {
        guard x.rank == 4, x.shape[1] == 3 else {
            throw ModelError.badInput(
                "ST-LPIPS: \(what) has shape \(describe(x.shape)); expected [N, 3, H, W]")
        }
        guard featureSides(for: min(x.shape[2], x.shape[3])) != nil else {
            throw ModelError.badInput(
                "ST-LPIPS \(backbone): \(what) of \(x.shape[2])×\(x.shape[3]) px is too small "
                    + "(at least \(minimumSide)×\(minimumSide))")
        }
    }

    /// The scaling layer: `(x − shift) / scale` per RGB channel. x [N, 3, H, W].
    public func scaled(_ x: Tensor) -> Tensor {
        (x - shift.value) / scale.value
    }

    /// The five trunk features of images x [N, 3, H, W] in [−1, 1], before normalisation.
    public func taps(_ x: Tensor) throws -> [Tensor] {
        try checkImages(x, "input")
        return trunk(scaled(x))
    }

    /// The five trunk features of an already scaled input.
    func trunk(_ s: Tensor) -> [Tensor] {
        var h = s
        var out: [Tensor] = []
        for slice in slices {
            for (i, layer) in slice {
                switch layer {
                case .conv: h = convs[i]!(h)
                case .blur: h = blurs[i]!(h)
                case .relu: h = h.relu()
                case .maxPool(let k): h = h.stMaxPooled(k)
                }
            }
            out.append(h)
        }
        return out
    }

    /// Distances per pair, per layer and (optionally) the taps of both operands.
    ///
    /// x, y [N, 3, H, W] in [−1, 1], the same shape. The two operands run through the
    /// trunk separately so that equal images give exactly zero.
    public func evaluate(_ x: Tensor, _ y: Tensor, keepTaps: Bool = false) throws
        -> STLPIPSOutput
    {
        try checkImages(x, "first image batch")
        try checkImages(y, "second image batch")
        guard x.shape == y.shape else {
            throw ModelError.badInput(
                "ST-LPIPS: image batches of shapes \(describe(x.shape)) and "
                    + "\(describe(y.shape)) differ")
        }
        let fx = trunk(scaled(x)), fy = trunk(scaled(y))
        let perLayer = layerDistances(taps: fx, fy)
        var total = perLayer[0]
        for k in 1..<5 { total = total + perLayer[k] }
        return STLPIPSOutput(
            distance: total, perLayer: perLayer, taps: keepTaps ? (fx, fy) : nil)
    }

    /// The five per-layer distances [N] between pairs given by their taps (as ``taps(_:)``
    /// returns them, row i of `fx` against row i of `fy`), so that a caller comparing many
    /// pairs of few images runs the trunk once per image.
    public func layerDistances(taps fx: [Tensor], _ fy: [Tensor]) -> [Tensor] {
        layerDistances(unitTaps: unitTaps(fx), unitTaps(fy))
    }

    /// Taps scaled to unit length over channels at every pixel (what the heads compare).
    public func unitTaps(_ taps: [Tensor]) -> [Tensor] {
        precondition(taps.count == 5, "ST-LPIPS: five taps")
        return taps.map { $0.stUnitNormalized() }
    }

    /// The five per-layer distances [N] between pairs given by their unit taps.
    public func layerDistances(unitTaps ux: [Tensor], _ uy: [Tensor]) -> [Tensor] {
        precondition(ux.count == 5 && uy.count == 5, "ST-LPIPS: five taps per operand")
        let n = ux[0].shape[0]
        var perLayer: [Tensor] = []
        for k in 0..<5 {
            let d = (ux[k] - uy[k]).squared()
            // lin_k: 1×1 convolution to one channel, no bias; then the spatial mean.
            let weighted = d.conv2d(heads[k].value)  // [N, 1, H_k, W_k]
            perLayer.append(weighted.mean(axes: [2, 3]).reshaped([n]))
        }
        return perLayer
    }

    /// The distance between every two of K images given by their unit taps: [K, K].
    ///
    /// Expands `mean_hw Σ_c w_c (u_i − u_j)²` into `(G_ii + G_jj − 2 G_ij) / HW` with
    /// `G = (u·w) uᵀ` over the flattened channels and pixels, so that all K² pairs cost
    /// one matrix product per layer instead of K² image differences (diversity over K
    /// styles). Equal to the pairwise form up to float32 rounding of the Gram entries.
    public func pairwiseDistances(unitTaps u: [Tensor]) -> Tensor {
        precondition(u.count == 5, "ST-LPIPS: five taps")
        let k = u[0].shape[0]
        var total = Tensor.zeros([k, k])
        for l in 0..<5 {
            let (h, w) = (u[l].shape[2], u[l].shape[3])
            let flat = u[l].reshaped([k, -1]).contiguous()  // [K, C·H·W]
            let weighted = (u[l] * heads[l].value).reshaped([k, -1]).contiguous()
            let gram = weighted.matmul(flat.transposed(0, 1))  // [K, K]
            let g = gram.scalars
            var d = [Float](repeating: 0, count: k * k)
            let pixels = Float(h * w)
            for i in 0..<k {
                for j in 0..<k where i != j {
                    let cross = g[i * k + j] + g[j * k + i]
                    d[i * k + j] = (g[i * k + i] + g[j * k + j] - cross) / pixels
                }
            }
            total = total + Tensor(shape: [k, k], d)
        }
        return total
    }

    /// The distance per pair, [N].
    public func callAsFunction(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        try evaluate(x, y).distance
    }

    /// The distance averaged over the batch (the ISF content loss): one element.
    public func perceptualLoss(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        try evaluate(x, y).distance.mean()
    }
}

// MARK: - Ops used only here

/// Where each output element of a plane-to-plane gather reads from: an index into the
/// input plane, either one map shared by every plane or one per output element.
private final class STPlaneMap: @unchecked Sendable {
    let index: [Int32]
    let shared: Bool
    let inPlane: Int, outPlane: Int

    init(index: [Int32], shared: Bool, inPlane: Int, outPlane: Int) {
        self.index = index
        self.shared = shared
        self.inPlane = inPlane
        self.outPlane = outPlane
    }
}

extension Tensor {
    /// `out[p, j] = self[p, map(p, j)]` over planes p of [N, C, H, W] → `outShape`.
    /// The backward is `stScatterAdded`, whose backward is this again.
    fileprivate func stGathered(_ map: STPlaneMap, outShape: [Int]) -> Tensor {
        let x = contiguous()
        let planes = shape[0] * shape[1]
        let out = Tensor(uninitializedShape: outShape)
        let src = x.pointer, dst = out.pointer
        map.index.withUnsafeBufferPointer { idx in
            let idx = idx.baseAddress!
            Threads.parallelFor(planes, grain: Swift.max(1, 4096 / Swift.max(map.outPlane, 1))) {
                range in
                for p in range {
                    let s = src + p * map.inPlane, d = dst + p * map.outPlane
                    let m = map.shared ? idx : idx + p * map.outPlane
                    for j in 0..<map.outPlane { d[j] = s[Int(m[j])] }
                }
            }
        }
        let inShape = shape
        return Tensor.recorded(out, op: "stGather", inputs: [self]) { g, _ in
            [g.stScatterAdded(map, inShape: inShape)]
        }
    }

    /// The adjoint of `stGathered`: sums each element of self [N, C, Ho, Wo] into the
    /// input position it was read from.
    fileprivate func stScatterAdded(_ map: STPlaneMap, inShape: [Int]) -> Tensor {
        let g = contiguous()
        let planes = shape[0] * shape[1]
        let out = Tensor.zeros(inShape)
        let src = g.pointer, dst = out.pointer
        map.index.withUnsafeBufferPointer { idx in
            let idx = idx.baseAddress!
            Threads.parallelFor(planes, grain: Swift.max(1, 4096 / Swift.max(map.outPlane, 1))) {
                range in
                for p in range {
                    let s = src + p * map.outPlane, d = dst + p * map.inPlane
                    let m = map.shared ? idx : idx + p * map.outPlane
                    for j in 0..<map.outPlane { d[Int(m[j])] += s[j] }
                }
            }
        }
        let outShape = shape
        return Tensor.recorded(out, op: "stScatterAdd", inputs: [self]) { h, _ in
            [h.stGathered(map, outShape: outShape)]
        }
    }

    /// `nn.ReflectionPad2d(p)` of [N, C, H, W] (needs p < H and p < W).
    fileprivate func stReflectionPadded(_ p: Int) -> Tensor {
        precondition(rank == 4, "reflection pad: input \(describe(shape)) is not 4-D")
        let h = shape[2], w = shape[3]
        precondition(p < h && p < w, "reflection pad \(p) of \(describe(shape))")
        func reflect(_ i: Int, _ n: Int) -> Int {
            let j = i - p
            if j < 0 { return -j }
            if j >= n { return 2 * (n - 1) - j }
            return j
        }
        let ho = h + 2 * p, wo = w + 2 * p
        var index = [Int32](repeating: 0, count: ho * wo)
        for r in 0..<ho {
            let sr = reflect(r, h)
            for c in 0..<wo { index[r * wo + c] = Int32(sr * w + reflect(c, w)) }
        }
        let map = STPlaneMap(index: index, shared: true, inPlane: h * w, outPlane: ho * wo)
        return stGathered(map, outShape: [shape[0], shape[1], ho, wo])
    }

    /// `nn.MaxPool2d(k, stride=1)` of [N, C, H, W] → [N, C, H − k + 1, W − k + 1]. The
    /// gradient goes to the first maximum of each window in row-major order, as in
    /// PyTorch.
    fileprivate func stMaxPooled(_ k: Int) -> Tensor {
        precondition(rank == 4, "max pool: input \(describe(shape)) is not 4-D")
        let h = shape[2], w = shape[3]
        precondition(h >= k && w >= k, "max pool \(k) of \(describe(shape))")
        let ho = h - k + 1, wo = w - k + 1
        let planes = shape[0] * shape[1]
        let x = detached().contiguous()
        var index = [Int32](repeating: 0, count: planes * ho * wo)
        let src = x.pointer
        index.withUnsafeMutableBufferPointer { idx in
            let idx = idx.baseAddress!
            Threads.parallelFor(planes, grain: Swift.max(1, 4096 / (ho * wo))) { range in
                for p in range {
                    let s = src + p * h * w, m = idx + p * ho * wo
                    for r in 0..<ho {
                        for c in 0..<wo {
                            var best = r * w + c
                            var v = s[best]
                            for dr in 0..<k {
                                for dc in 0..<k {
                                    let j = (r + dr) * w + c + dc
                                    // NaN wins, as in PyTorch.
                                    if s[j] > v || s[j].isNaN && !v.isNaN {
                                        v = s[j]
                                        best = j
                                    }
                                }
                            }
                            m[r * wo + c] = Int32(best)
                        }
                    }
                }
            }
        }
        let map = STPlaneMap(index: index, shared: false, inPlane: h * w, outPlane: ho * wo)
        return stGathered(map, outShape: [shape[0], shape[1], ho, wo])
    }

    /// `f / (√(Σ_c f²) + 1e-10)` along axis 1 of [N, C, H, W] (the `lpips` package's
    /// `normalize_tensor`).
    ///
    /// Written as one op because the plain composition's gradient is NaN at all-zero
    /// feature vectors (common after ReLU): √ has an infinite slope at 0, and 0·∞ does not
    /// vanish in the ReLU's backward here as it does in PyTorch's. The true gradient there
    /// is `g / 1e-10`'s term only, which this backward gives.
    fileprivate func stUnitNormalized() -> Tensor {
        let f = self
        let norm = GradMode.withoutGradients {
            f.squared().sum(axes: [1], keepDims: true).sqrt()  // [N, 1, H, W]
        }
        let out = GradMode.withoutGradients { f / (norm + stNormEpsilon) }
        return Tensor.recorded(out, op: "stUnitNormalized", inputs: [f]) { g, _ in
            // ∂/∂f_j = g_j/(r+ε) − f_j · Σ_i g_i f_i / ((r+ε)² r), divided in steps so
            // that r = 0 (where f = 0) gives 0 rather than 0/0.
            let r = GradMode.isEnabled ? f.squared().sum(axes: [1], keepDims: true).sqrt() : norm
            let d = r + stNormEpsilon
            let dot = (g * f).sum(axes: [1], keepDims: true)
            let coefficient = dot / d / d / r.clamped(min: Float.leastNormalMagnitude)
            return [g / d - f * coefficient]
        }
    }
}
