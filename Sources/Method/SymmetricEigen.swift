import Foundation

/// The eigen-decomposition of a real symmetric matrix, `A = V·diag(λ)·Vᵀ`, by the cyclic
/// Jacobi method in double precision.
///
/// ```
/// repeat over sweeps until the off-diagonal mass is negligible:
///     for every pair p < q with a_pq ≠ 0:
///         θ = (a_qq − a_pp) / (2·a_pq),   t = sign(θ) / (|θ| + √(θ² + 1))
///         c = 1 / √(t² + 1),  s = t·c                    // the rotation that zeroes a_pq
///         A ← Jᵀ A J,  V ← V J
/// ```
///
/// Jacobi is slower than tridiagonalisation with QL (a few seconds for 512 × 512) but
/// short, unconditionally stable, and accurate to the last bits on small eigenvalues,
/// which is what the matrix square roots of covariance matrices need (the Fréchet
/// distance). No LAPACK is needed.
public struct SymmetricEigen: Sendable {
    /// The order n.
    public let order: Int
    /// Eigenvalues in ascending order.
    public let values: [Double]
    /// Eigenvectors, row k the unit eigenvector of `values[k]` (that is Vᵀ, row-major).
    public let vectors: [Double]
    /// Sweeps taken.
    public let sweeps: Int

    /// Most sweeps before giving up (convergence is quadratic; 6–12 is usual).
    public static let maximumSweeps = 60

    /// Decomposes the symmetric matrix `a` (row-major n × n). Only symmetric input is
    /// meaningful; the lower triangle is used where the two differ.
    public init(_ a: [Double], order n: Int) {
        precondition(a.count == n * n, "SymmetricEigen: \(a.count) values for order \(n)")
        // Start from the symmetrised matrix so that rounding in the caller does not matter.
        var m = a
        for i in 0..<n {
            for j in 0..<i { m[j * n + i] = m[i * n + j] }
        }
        var vt = [Double](repeating: 0, count: n * n)  // Vᵀ: rows are eigenvectors
        for i in 0..<n { vt[i * n + i] = 1 }
        var total = 0.0
        for x in m { total += x * x }
        var sweep = 0
        while sweep < SymmetricEigen.maximumSweeps {
            var off = 0.0
            for p in 0..<n {
                for q in (p + 1)..<max(p + 1, n) { off += m[p * n + q] * m[p * n + q] }
            }
            // Off-diagonal mass far below the whole matrix's: the diagonal is exact to
            // double precision.
            if off <= 1e-30 * total || off == 0 { break }
            sweep += 1
            m.withUnsafeMutableBufferPointer { mb in
                vt.withUnsafeMutableBufferPointer { vb in
                    Self.sweep(mb.baseAddress!, vb.baseAddress!, n)
                }
            }
        }
        let diagonal = (0..<n).map { m[$0 * n + $0] }
        let order = diagonal.indices.sorted { diagonal[$0] < diagonal[$1] }
        var sortedVectors = [Double](repeating: 0, count: n * n)
        for (k, i) in order.enumerated() {
            for j in 0..<n { sortedVectors[k * n + j] = vt[i * n + j] }
        }
        self.order = n
        values = order.map { diagonal[$0] }
        vectors = sortedVectors
        sweeps = sweep
    }

    /// One cyclic sweep over all pairs p < q.
    private static func sweep(
        _ a: UnsafeMutablePointer<Double>, _ vt: UnsafeMutablePointer<Double>, _ n: Int
    ) {
        for p in 0..<n {
            for q in (p + 1)..<max(p + 1, n) {
                let apq = a[p * n + q]
                if apq == 0 { continue }
                let app = a[p * n + p], aqq = a[q * n + q]
                let theta = (aqq - app) / (2 * apq)
                let t =
                    (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot()
                let s = t * c
                // Rows p and q (contiguous); the columns follow by symmetry.
                let rp = a + p * n, rq = a + q * n
                for k in 0..<n where k != p && k != q {
                    let x = rp[k], y = rq[k]
                    let nx = c * x - s * y, ny = s * x + c * y
                    rp[k] = nx
                    rq[k] = ny
                    a[k * n + p] = nx
                    a[k * n + q] = ny
                }
                a[p * n + p] = app - t * apq
                a[q * n + q] = aqq + t * apq
                a[p * n + q] = 0
                a[q * n + p] = 0
                // V ← V·J, i.e. rows p and q of Vᵀ.
                let vp = vt + p * n, vq = vt + q * n
                for k in 0..<n {
                    let x = vp[k], y = vq[k]
                    vp[k] = c * x - s * y
                    vq[k] = s * x + c * y
                }
            }
        }
    }

    /// `V·diag(f(λ))·Vᵀ` (row-major n × n).
    public func reconstructed(_ f: (Double) -> Double) -> [Double] {
        let n = order
        let g = values.map(f)
        var out = [Double](repeating: 0, count: n * n)
        for k in 0..<n where g[k] != 0 {
            let v = Array(vectors[(k * n)..<((k + 1) * n)])
            for i in 0..<n {
                let gi = g[k] * v[i]
                if gi == 0 { continue }
                for j in 0..<n { out[i * n + j] += gi * v[j] }
            }
        }
        return out
    }

    /// The symmetric positive semi-definite square root of a symmetric matrix; eigenvalues
    /// below zero (rounding in a covariance matrix) count as zero.
    public static func squareRoot(_ a: [Double], order n: Int) -> [Double] {
        SymmetricEigen(a, order: n).reconstructed { $0 > 0 ? $0.squareRoot() : 0 }
    }
}

/// Row-major products of square matrices in double precision (n³, for the few
/// 512 × 512 products the Fréchet distance needs).
enum SquareMatrix {
    /// `a·b`, both n × n.
    static func product(_ a: [Double], _ b: [Double], order n: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * n)
        out.withUnsafeMutableBufferPointer { o in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    for i in 0..<n {
                        let row = o.baseAddress! + i * n
                        for k in 0..<n {
                            let x = ap[i * n + k]
                            if x == 0 { continue }
                            let bk = bp.baseAddress! + k * n
                            for j in 0..<n { row[j] += x * bk[j] }
                        }
                    }
                }
            }
        }
        return out
    }
}
