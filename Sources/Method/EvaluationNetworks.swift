import Foundation
import Models
import TensorCore

// The networks `isfgan eval` measures with, behind two small protocols so that tests can
// stand in cheap ones: a perceptual distance computed from per-image features (each
// image runs through the trunk once, however many pairs it is in), and the features
// whose statistics the realism figure compares.

/// A perceptual distance taken from features computed once per image.
public protocol PerceptualMeter: AnyObject {
    /// A short name for reports (`stlpips-alex`, …).
    var meterName: String { get }
    /// Per-image features of images [N, 3, H, W] in [−1, 1]; every tensor has N rows.
    func features(_ images: Tensor) throws -> [Tensor]
    /// The distance of each pair, row i of `a` against row i of `b`: [N].
    func distances(_ a: [Tensor], _ b: [Tensor]) throws -> Tensor
    /// The distance between every two of the K images whose features are given: [K, K].
    func pairwiseDistances(_ features: [Tensor]) throws -> Tensor
}

extension PerceptualMeter {
    /// Every pair through ``distances(_:_:)``.
    public func pairwiseDistances(_ features: [Tensor]) throws -> Tensor {
        let k = features[0].shape[0]
        let pairs = DiversityPairs.distinct.pairs(styles: k)
        var out = [Float](repeating: 0, count: k * k)
        guard !pairs.isEmpty else { return Tensor(shape: [k, k], out) }
        let d = try distances(features.rows(pairs.map(\.0)), features.rows(pairs.map(\.1)))
        for (p, (i, j)) in zip(d.scalars, pairs) {
            out[i * k + j] = p
            out[j * k + i] = p
        }
        return Tensor(shape: [k, k], out)
    }
}

/// Feature vectors whose distribution the realism figure compares.
public protocol RealismFeatures: AnyObject {
    /// What the features are, for reports ("ST-LPIPS VGG features", …).
    var featureName: String { get }
    /// Numbers per image.
    var featureWidth: Int { get }
    /// Features [N, F] of images [N, 3, H, W] in [−1, 1].
    func realismFeatures(_ images: Tensor) throws -> Tensor
}

extension STLPIPS: PerceptualMeter {
    public var meterName: String { perceptualName }

    /// The unit taps (normalised once per image, however many pairs it is in).
    public func features(_ images: Tensor) throws -> [Tensor] {
        try GradMode.withoutGradients { unitTaps(try taps(images)) }
    }

    public func distances(_ a: [Tensor], _ b: [Tensor]) throws -> Tensor {
        GradMode.withoutGradients {
            let layers = layerDistances(unitTaps: a, b)
            return layers.dropFirst().reduce(layers[0], +)
        }
    }

    public func pairwiseDistances(_ features: [Tensor]) throws -> Tensor {
        GradMode.withoutGradients { pairwiseDistances(unitTaps: features) }
    }
}

/// ST-LPIPS VGG's last tapped layer (conv5_3 after its ReLU, 512 channels), averaged over
/// space: the stand-in for Inception pool features where no Inception network is at hand.
public final class STLPIPSRealismFeatures: RealismFeatures {
    public let network: STLPIPS
    public init(_ network: STLPIPS) { self.network = network }

    public var featureName: String {
        "ST-LPIPS \(network.backbone == .vgg ? "VGG" : "AlexNet") features (last tap, "
            + "spatial mean)"
    }
    public var featureWidth: Int { network.backbone.channels.last! }

    public func realismFeatures(_ images: Tensor) throws -> Tensor {
        try GradMode.withoutGradients {
            let last = try network.taps(images).last!  // [N, C, h, w]
            return last.mean(axes: [2, 3]).contiguous()  // [N, C]
        }
    }
}

/// Any LPIPS the project has: the "features" are the images themselves and each distance
/// runs both through the network (slower for diversity, where an image is in many pairs).
public final class LPIPSMeter: PerceptualMeter {
    public let network: LPIPS
    public init(_ network: LPIPS) { self.network = network }
    public var meterName: String { network.perceptualName }

    public func features(_ images: Tensor) throws -> [Tensor] { [images.contiguous()] }

    public func distances(_ a: [Tensor], _ b: [Tensor]) throws -> Tensor {
        try GradMode.withoutGradients { try network.distances(a[0], b[0]) }
    }
}

extension Array where Element == Tensor {
    /// The rows `indices` of every tensor.
    func rows(_ indices: [Int]) -> [Tensor] { map { $0.indexSelect(indices) } }
}
