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
///
/// Sums are taken about a shift c (the mean of the first rows added), so that features
/// with a large mean and a small spread do not lose the covariance to cancellation in
/// `Σ x xᵀ − N m mᵀ`.
public struct FeatureMoments: Codable, Sendable, Equatable {
    public private(set) var count = 0
    public let width: Int
    /// The shift c [F] (empty until the first rows arrive).
    public private(set) var shift: [Double] = []
    /// Σ (x − c), [F].
    public private(set) var sum: [Double]
    /// Σ (x − c)(x − c)ᵀ, [F, F] row-major.
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
        let xs = features.contiguous().scalars
        let f = width
        if shift.isEmpty {
            shift = [Double](repeating: 0, count: f)
            for i in 0..<n { for j in 0..<f { shift[j] += Double(xs[i * f + j]) } }
            shift = shift.map { $0 / Double(n) }
        }
        var row = [Double](repeating: 0, count: f)
        outer.withUnsafeMutableBufferPointer { o in
            for i in 0..<n {
                for j in 0..<f {
                    row[j] = Double(xs[i * f + j]) - shift[j]
                    sum[j] += row[j]
                }
                // The upper triangle; the lower one is mirrored when read.
                for j in 0..<f where row[j] != 0 {
                    let rj = row[j]
                    let base = o.baseAddress! + j * f
                    for k in j..<f { base[k] += rj * row[k] }
                }
            }
        }
        count += n
    }

    /// Merges another accumulator of the same width.
    public mutating func merge(_ other: FeatureMoments) {
        precondition(other.width == width, "FeatureMoments: widths differ")
        guard other.count > 0 else { return }
        guard count > 0 else {
            self = other
            return
        }
        // Move the other's sums to this shift: with δ = c' − c,
        // Σ(x − c) = Σ(x − c') + n'δ and Σ(x − c)(x − c)ᵀ = Σ(x − c')(x − c')ᵀ
        //   + δ Σ(x − c')ᵀ + Σ(x − c') δᵀ + n' δ δᵀ.
        let f = width
        let delta = (0..<f).map { other.shift[$0] - shift[$0] }
        let m = Double(other.count)
        for j in 0..<f {
            for k in j..<f {
                outer[j * f + k] +=
                    other.outer[j * f + k] + delta[j] * other.sum[k] + other.sum[j] * delta[k]
                    + m * delta[j] * delta[k]
            }
        }
        for j in 0..<f { sum[j] += other.sum[j] + m * delta[j] }
        count += other.count
    }

    /// The mean [F].
    public var mean: [Double] {
        guard count > 0 else { return [Double](repeating: 0, count: width) }
        return (0..<width).map { shift[$0] + sum[$0] / Double(count) }
    }

    /// The unbiased covariance [F, F] (divided by N − 1, as `numpy.cov`); needs N ≥ 2.
    public var covariance: [Double] {
        let n = Double(count)
        let f = width
        var c = [Double](repeating: 0, count: f * f)
        guard count >= 2 else { return c }
        let d = sum.map { $0 / n }  // mean − shift
        for j in 0..<f {
            for k in j..<f {
                let v = (outer[j * f + k] - n * d[j] * d[k]) / (n - 1)
                c[j * f + k] = v
                c[k * f + j] = v
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
