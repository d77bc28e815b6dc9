import Foundation

/// A seeded, counter-based random generator (Philox4x32-10, Salmon et al., SC 2011).
///
/// Element `i` of a draw depends only on the seed, the generator's position and `i`, so
/// the same seed gives the same numbers on any machine and any thread count. Each block
/// of the counter gives four 32-bit words; a draw of `n` numbers uses ⌈n/4⌉ blocks and
/// advances the position by that much.
///
/// - uniform: `(word >> 8) · 2⁻²⁴`, in [0, 1).
/// - normal: Box–Muller on the words (2k, 2k+1) of a block, in double precision:
///   `√(−2 ln u₁) · (cos 2πu₂, sin 2πu₂)` with `u₁ = ((w >> 8) + 1) · 2⁻²⁴ ∈ (0, 1]`.
public struct RandomGenerator: Codable, Equatable, Sendable {
    public let seed: UInt64
    /// Blocks used so far.
    public private(set) var position: UInt64

    public init(seed: UInt64, position: UInt64 = 0) {
        self.seed = seed
        self.position = position
    }

    /// The four words of counter block `index`.
    @inline(__always)
    static func block(key: UInt64, index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: index), c1 = UInt32(truncatingIfNeeded: index >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for round in 0..<10 {
            if round > 0 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let (hi0, lo0) = (UInt32(p0 >> 32), UInt32(truncatingIfNeeded: p0))
            let (hi1, lo1) = (UInt32(p1 >> 32), UInt32(truncatingIfNeeded: p1))
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }

    /// Fills `count` floats through `body(block words, first element index)`.
    private mutating func fill(
        _ count: Int,
        _ body:
            @escaping (UnsafeMutablePointer<Float>, Int, (UInt32, UInt32, UInt32, UInt32)) -> Void
    ) -> Tensor {
        let out = Tensor(uninitializedShape: [count])
        let blocks = (count + 3) / 4
        let key = seed, start = position
        let p = out.pointer
        Threads.parallelFor(blocks, grain: 4096) { range in
            for b in range {
                let words = RandomGenerator.block(key: key, index: start &+ UInt64(b))
                body(p, b * 4, words)
            }
        }
        position &+= UInt64(blocks)
        return out
    }

    /// Uniform numbers in [low, high).
    public mutating func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let n = Shape.count(shape)
        let scale = (high - low) / 16_777_216
        return fill(n) { p, i, w in
            let words = [w.0, w.1, w.2, w.3]
            for k in 0..<4 where i + k < n { p[i + k] = Float(words[k] >> 8) * scale + low }
        }.reshapedRaw(shape)
    }

    /// Normal numbers with the given mean and standard deviation.
    public mutating func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let n = Shape.count(shape)
        return fill(n) { p, i, w in
            let (a0, b0) = RandomGenerator.boxMuller(w.0, w.1)
            let (a1, b1) = RandomGenerator.boxMuller(w.2, w.3)
            let values = [a0, b0, a1, b1]
            for k in 0..<4 where i + k < n { p[i + k] = Float(values[k]) * std + mean }
        }.reshapedRaw(shape)
    }

    @inline(__always)
    static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Double, Double) {
        let u1 = Double((a >> 8) + 1) / 16_777_216
        let u2 = Double(b >> 8) / 16_777_216
        let r = (-2 * Foundation.log(u1)).squareRoot()
        let t = 2 * Double.pi * u2
        return (r * Foundation.cos(t), r * Foundation.sin(t))
    }

    /// A uniformly chosen integer in `0..<bound`.
    public mutating func int(below bound: Int) -> Int {
        precondition(bound > 0, "int(below:): bound must be positive")
        let w = RandomGenerator.block(key: seed, index: position)
        position &+= 1
        let x = UInt64(w.0) | (UInt64(w.1) << 32)
        // Rejection-free mapping of 64 bits: bias below 2⁻³² for any Int32-sized bound.
        return Int(x.multipliedFullWidth(by: UInt64(bound)).high)
    }

    /// A random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var a = Array(0..<n)
        if n < 2 { return a }
        for i in stride(from: n - 1, to: 0, by: -1) {
            a.swapAt(i, int(below: i + 1))
        }
        return a
    }
}

extension Tensor {
    public static func zeros(_ shape: [Int]) -> Tensor { full(shape, 0) }
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        precondition(shape.allSatisfy { $0 >= 0 }, "full: negative dimension in \(describe(shape))")
        let n = Shape.count(shape)
        return Tensor(
            storage: TensorStorage(count: n, repeating: value), shape: shape,
            strides: Shape.contiguousStrides(shape))
    }

    public static func zeros(like x: Tensor) -> Tensor { zeros(x.shape) }

    /// `start, start + step, …` below `end`.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange: step must not be zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        return Tensor(shape: [n], (0..<n).map { start + Float($0) * step })
    }

    /// Normal numbers from a generator seeded with `seed` (a fresh generator each call).
    public static func randn(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return g.normal(shape)
    }

    /// Uniform numbers in [0, 1) from a generator seeded with `seed`.
    public static func rand(_ shape: [Int], seed: UInt64) -> Tensor {
        var g = RandomGenerator(seed: seed)
        return g.uniform(shape)
    }
}
