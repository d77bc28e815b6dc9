import Foundation
import TensorCore
import XCTest

/// Shared inputs and double-precision references for the engine's tests.

/// Standard normal values of `shape` from the project's generator (`scale` times).
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    Tensor.randn(shape, seed: seed) * scale
}

/// Normal values pushed away from zero (|v| ≥ `gap`): inputs for ops with a kink at 0,
/// so that finite differences with a step below `gap` never straddle it.
func awayFromZero(_ shape: [Int], seed: UInt64, gap: Float = 0.2) -> Tensor {
    let values = randomTensor(shape, seed: seed).scalars.map { $0 < 0 ? $0 - gap : $0 + gap }
    return Tensor(shape: shape, values)
}

/// The row-major multi-index of flat position `i` in `shape`.
func multiIndex(_ i: Int, _ shape: [Int]) -> [Int] {
    var rest = i
    var idx = [Int](repeating: 0, count: shape.count)
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        idx[d] = rest % shape[d]
        rest /= shape[d]
    }
    return idx
}

/// Reads `values` (row-major, of `shape`) at the broadcast position `index` of a larger
/// shape, NumPy style.
func broadcastRead(_ values: [Double], _ shape: [Int], at index: [Int]) -> Double {
    let lead = index.count - shape.count
    var flat = 0
    for d in 0..<shape.count {
        flat = flat * shape[d] + (shape[d] == 1 ? 0 : index[lead + d])
    }
    return values[flat]
}

/// `Σ w · f(a, b)` over the broadcast of `a` and `b`, in Double.
func broadcastDot(
    _ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int], weights w: [Double],
    outShape: [Int], _ f: (Double, Double) -> Double
) -> Double {
    var total = 0.0
    for i in 0..<Shape.count(outShape) {
        let idx = multiIndex(i, outShape)
        total += w[i] * f(broadcastRead(a, aShape, at: idx), broadcastRead(b, bShape, at: idx))
    }
    return total
}

/// `Σ w · x` in Double: the reference of a linear test objective.
func dot(_ w: [Double], _ x: [Double]) -> Double {
    zip(w, x).reduce(0) { $0 + $1.0 * $1.1 }
}

/// Doubles of a tensor's values.
func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

/// Runs `body` with `Threads.count` set to `n`, restoring it afterwards.
func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
    let saved = Threads.count
    Threads.count = n
    defer { Threads.count = saved }
    return try body()
}

/// Bitwise equality of two tensors' values (same shape).
func assertBitIdentical(
    _ a: Tensor, _ b: Tensor, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
    let x = a.scalars.map(\.bitPattern), y = b.scalars.map(\.bitPattern)
    XCTAssertTrue(x == y, "\(message): values differ in some bit", file: file, line: line)
}

/// Double-precision upfirdn2d written straight from the definition in rosinality's
/// `upfirdn2d_native`: zero-insert, pad or crop, correlate with the flipped kernel,
/// keep every `down`-th sample. `x` is [N, C, H, W] row-major; returns the output and its
/// shape.
func upfirdn2dReference(
    _ x: [Double], shape: [Int], kernel: [Double], kh: Int, kw: Int,
    up: (x: Int, y: Int), down: (x: Int, y: Int), pad: (x0: Int, x1: Int, y0: Int, y1: Int)
) -> ([Double], [Int]) {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    // Upsampled and padded plane size.
    let uh = h * up.y + pad.y0 + pad.y1, uw = w * up.x + pad.x0 + pad.x1
    let fh = uh - kh + 1, fw = uw - kw + 1
    let oh = fh > 0 ? (fh - 1) / down.y + 1 : 0, ow = fw > 0 ? (fw - 1) / down.x + 1 : 0
    var out = [Double](repeating: 0, count: n * c * oh * ow)
    for p in 0..<(n * c) {
        // The padded upsampled plane; position (r, s) is upsampled (r − y0, s − x0).
        var plane = [Double](repeating: 0, count: max(uh, 0) * max(uw, 0))
        for r in 0..<max(uh, 0) {
            for s in 0..<max(uw, 0) {
                let my = r - pad.y0, mx = s - pad.x0
                guard my >= 0, mx >= 0, my < h * up.y, mx < w * up.x,
                    my % up.y == 0, mx % up.x == 0
                else { continue }
                plane[r * uw + s] = x[p * h * w + (my / up.y) * w + mx / up.x]
            }
        }
        for oy in 0..<oh {
            for ox in 0..<ow {
                var acc = 0.0
                for a in 0..<kh {
                    for b in 0..<kw {
                        // Correlation with the flipped kernel = true convolution.
                        let v = plane[(oy * down.y + a) * uw + ox * down.x + b]
                        acc += v * kernel[(kh - 1 - a) * kw + (kw - 1 - b)]
                    }
                }
                out[p * oh * ow + oy * ow + ox] = acc
            }
        }
    }
    return (out, [n, c, oh, ow])
}

/// rosinality's `make_kernel([1, 3, 3, 1])` times `scale`: the outer product normalised
/// to sum 1 ([4, 4]).
func blurKernel(scale: Float = 1) -> Tensor {
    let k: [Float] = [1, 3, 3, 1]
    var v: [Float] = []
    for a in k { for b in k { v.append(a * b / 64 * scale) } }
    return Tensor(shape: [4, 4], v)
}
