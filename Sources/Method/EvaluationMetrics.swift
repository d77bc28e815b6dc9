import Foundation
import TensorCore

// The arithmetic of `isfgan eval`, apart from the networks that feed it: which style pairs
// a diversity figure averages, the Fréchet distance between two feature distributions,
// and mean ± standard deviation over repeats.

/// Which pairs of an input's K styles the diversity figure averages.
public enum DiversityPairs: String, Codable, Sendable {
    /// Every distinct pair i < j: K(K − 1)/2 pairs (45 for K = 10).
    case distinct
    /// The official evaluation script's loops, i in 0..<K−1 and j in i..<K, which include
    /// K − 1 pairs of an image with itself (distance 0): 54 pairs for K = 10, so the mean
    /// is 45/54 of the distinct-pair mean.
    case official

    /// The (i, j) pairs for K styles, in loop order.
    public func pairs(styles k: Int) -> [(Int, Int)] {
        var out: [(Int, Int)] = []
        switch self {
        case .distinct:
            for i in 0..<k { for j in (i + 1)..<max(i + 1, k) { out.append((i, j)) } }
        case .official:
            for i in 0..<max(0, k - 1) { for j in i..<k { out.append((i, j)) } }
        }
        return out
    }
}

/// Diversity of one input: the mean perceptual distance over `pairs` of its styles.
public enum Diversity {
    /// The mean of `distance(i, j)` over the pairs `rule` names; pairs of an image with
    /// itself count as 0 without calling `distance`. Nil when there is no pair (K < 2).
    public static func mean(
        styles k: Int, rule: DiversityPairs, distance: (Int, Int) -> Double
    ) -> Double? {
        let pairs = rule.pairs(styles: k)
        guard !pairs.isEmpty else { return nil }
        var sum = 0.0
        for (i, j) in pairs where i != j { sum += distance(i, j) }
        return sum / Double(pairs.count)
    }

    /// Both figures from the distances of the distinct pairs in `DiversityPairs.distinct`
    /// order: the official mean is the same sum over K(K − 1)/2 + K − 1 pairs.
    public static func both(distinctPairDistances d: [Double], styles k: Int) -> (
        distinct: Double, official: Double
    )? {
        precondition(d.count == k * (k - 1) / 2, "Diversity: \(d.count) distances for K = \(k)")
        guard k >= 2 else { return nil }
        let sum = d.reduce(0, +)
        return (sum / Double(d.count), sum / Double(d.count + k - 1))
    }
}

/// Running first and second moments of feature vectors, in double precision: enough to
/// give the mean and the covariance of everything added.
public struct FeatureMoments: Codable, Sendable, Equatable {
    public private(set) var count = 0
    public let width: Int
    /// Σ x, [F].
    public private(set) var sum: [Double]
    /// Σ x xᵀ, [F, F] row-major.
    public private(set) var outer: [Double]

    public init(width: Int) {
        self.width = width
        sum = [Double](repeating: 0, count: width)
        outer = [Double](repeating: 0, count: width * width)
    }

    /// Adds the rows of features [N, F].
    public mutating func add(_ features: Tensor) {
        precondition(
            features.rank == 2 && features.shape[1] == width,
            "FeatureMoments: features \(describe(features.shape)), want [N, \(width)]")
        let n = features.shape[0]
        guard n > 0 else { return }
        let x = features.contiguous()
        let xs = x.scalars
        for i in 0..<n {
            for j in 0..<width { sum[j] += Double(xs[i * width + j]) }
        }
        // Xᵀ X in float32 per batch (a few hundred rows), accumulated in double.
        let gram = x.transposed(0, 1).contiguous().matmul(x).scalars  // [F, F]
        for i in 0..<(width * width) { outer[i] += Double(gram[i]) }
        count += n
    }

    /// Merges another accumulator of the same width.
    public mutating func merge(_ other: FeatureMoments) {
        precondition(other.width == width, "FeatureMoments: widths differ")
        for i in 0..<width { sum[i] += other.sum[i] }
        for i in 0..<(width * width) { outer[i] += other.outer[i] }
        count += other.count
    }

    /// The mean [F].
    public var mean: [Double] { sum.map { $0 / Double(max(count, 1)) } }

    /// The unbiased covariance [F, F] (divided by N − 1, as `numpy.cov`); needs N ≥ 2.
    public var covariance: [Double] {
        let n = Double(count)
        let m = mean
        var c = [Double](repeating: 0, count: width * width)
        guard count >= 2 else { return c }
        for i in 0..<width {
            for j in 0..<width {
                c[i * width + j] = (outer[i * width + j] - n * m[i] * m[j]) / (n - 1)
            }
        }
        return c
    }
}

/// The Fréchet distance between two Gaussians fitted to feature sets (the formula of FID,
/// here on whatever features the caller has):
///
/// ```
/// FD = |μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2·tr (Σ₁ Σ₂)^½
/// tr (Σ₁ Σ₂)^½ = Σ √λ_k  over the eigenvalues of the symmetric  S Σ₂ S,  S = Σ₁^½
/// ```
///
/// (S Σ₂ S is similar to Σ₁ Σ₂, so the eigenvalues agree and only symmetric
/// eigen-decompositions are needed.)
public struct FrechetReference: Sendable {
    public let mean: [Double]
    public let covariance: [Double]
    /// Σ^½ of the reference, computed once for many comparisons.
    public let covarianceRoot: [Double]
    public let count: Int

    public init(_ moments: FeatureMoments) {
        mean = moments.mean
        covariance = moments.covariance
        covarianceRoot = SymmetricEigen.squareRoot(covariance, order: moments.width)
        count = moments.count
    }

    public var width: Int { mean.count }

    /// The Fréchet distance to the distribution of `moments`.
    public func distance(to moments: FeatureMoments) -> Double {
        precondition(moments.width == width, "Fréchet distance: feature widths differ")
        return Self.distance(
            mean: mean, covariance: covariance, root: covarianceRoot, to: moments.mean,
            moments.covariance)
    }

    /// The Fréchet distance between (μ₁, Σ₁) — with S = Σ₁^½ given — and (μ₂, Σ₂).
    public static func distance(
        mean m1: [Double], covariance c1: [Double], root s: [Double], to m2: [Double],
        _ c2: [Double]
    ) -> Double {
        let n = m1.count
        var d2 = 0.0
        for i in 0..<n { d2 += (m1[i] - m2[i]) * (m1[i] - m2[i]) }
        var traces = 0.0
        for i in 0..<n { traces += c1[i * n + i] + c2[i * n + i] }
        let middle = SquareMatrix.product(SquareMatrix.product(s, c2, order: n), s, order: n)
        let crossTrace = SymmetricEigen(middle, order: n).traceOfSquareRoot
        return d2 + traces - 2 * crossTrace
    }

    /// The Fréchet distance between two Gaussians given by means and covariances.
    public static func distance(
        mean m1: [Double], covariance c1: [Double], mean m2: [Double], covariance c2: [Double]
    ) -> Double {
        distance(
            mean: m1, covariance: c1, root: SymmetricEigen.squareRoot(c1, order: m1.count),
            to: m2, c2)
    }
}

/// Mean and sample standard deviation of a figure over repeats.
public struct MeanStd: Codable, Sendable, Equatable {
    public var mean: Double
    /// Sample standard deviation (divided by R − 1); 0 for one repeat.
    public var std: Double
    /// The repeats that gave a value.
    public var count: Int

    /// Nil when no repeat gave a value.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let m = values.reduce(0, +) / Double(values.count)
        let ss = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        mean = m
        std = values.count > 1 ? (ss / Double(values.count - 1)).squareRoot() : 0
        count = values.count
    }
}
