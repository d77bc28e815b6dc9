/// Plain-loop reference implementations of the convolution family and the matrix
/// product: the oracle the oneDNN paths are tested against, and the path
/// `KernelImplementation.reference` selects for debugging.
///
/// The loops are generic over the scalar so tests can run them in `Double` as the
/// reference function of `checkGradients`. All three convolution kernels walk the same
/// loop nest (`forEachTap`), one multiply-add per (output element, kernel tap) pair, so
/// the input and weight gradients are the exact adjoints of the forward by construction.
public enum ConvReference {
    /// Calls `body(xIndex, wIndex, yIndex)` for every tap of the convolution: input
    /// element `x[xIndex]` times weight `w[wIndex]` contributes to output `y[yIndex]`.
    /// Indices are row-major in `x` [N, C, H, W], `w` [O, C/groups, kh, kw] and
    /// `y` [N, O, Ho, Wo]; taps that fall into the zero padding are skipped.
    @inline(__always)
    static func forEachTap(
        input xShape: [Int], weight wShape: [Int], output yShape: [Int],
        geometry g: ConvGeometry, _ body: (Int, Int, Int) -> Void
    ) {
        let (n, c, h, w) = (xShape[0], xShape[1], xShape[2], xShape[3])
        let (o, cg, kh, kw) = (wShape[0], wShape[1], wShape[2], wShape[3])
        let (ho, wo) = (yShape[2], yShape[3])
        let og = o / g.groups
        for b in 0..<n {
            for oc in 0..<o {
                let group = oc / og
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let yIndex = ((b * o + oc) * ho + oy) * wo + ox
                        for ic in 0..<cg {
                            let xc = group * cg + ic
                            for i in 0..<kh {
                                let iy = oy * g.stride.h - g.padding.h + i
                                if iy < 0 || iy >= h { continue }
                                for j in 0..<kw {
                                    let ix = ox * g.stride.w - g.padding.w + j
                                    if ix < 0 || ix >= w { continue }
                                    let xIndex = ((b * c + xc) * h + iy) * w + ix
                                    let wIndex = ((oc * cg + ic) * kh + i) * kw + j
                                    body(xIndex, wIndex, yIndex)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `y = conv(x, w) + bias`: x [N, C, H, W], w [O, C/groups, kh, kw], bias [O] → y
    /// [N, O, Ho, Wo] (row-major arrays).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func forward<T: BinaryFloatingPoint>(
        _ x: [T], shape xShape: [Int], weight w: [T], shape wShape: [Int], bias: [T]?,
        geometry: ConvGeometry
    ) -> [T] {
        let yShape = geometry.outputShape(input: xShape, weight: wShape)
        let plane = yShape[2] * yShape[3]
        var y = [T](repeating: 0, count: Shape.count(yShape))
        if let bias {
            for i in y.indices { y[i] = bias[(i / plane) % yShape[1]] }
        }
        forEachTap(input: xShape, weight: wShape, output: yShape, geometry: geometry) {
            y[$2] += x[$0] * w[$1]
        }
        return y
    }

    /// The input gradient `∂⟨conv(x, w), gy⟩/∂x` for an input of shape `xShape`; it is
    /// also the transposed convolution of `gy` with `w`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func inputGradient<T: BinaryFloatingPoint>(
        _ gy: [T], weight w: [T], shape wShape: [Int], inputShape xShape: [Int],
        geometry: ConvGeometry
    ) -> [T] {
        let yShape = geometry.outputShape(input: xShape, weight: wShape)
        var gx = [T](repeating: 0, count: Shape.count(xShape))
        forEachTap(input: xShape, weight: wShape, output: yShape, geometry: geometry) {
            gx[$0] += gy[$2] * w[$1]
        }
        return gx
    }

    /// The weight gradient `∂⟨conv(x, w), gy⟩/∂w` for a weight of shape `wShape`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func weightGradient<T: BinaryFloatingPoint>(
        _ x: [T], shape xShape: [Int], outputGradient gy: [T], weightShape wShape: [Int],
        geometry: ConvGeometry
    ) -> [T] {
        let yShape = geometry.outputShape(input: xShape, weight: wShape)
        var gw = [T](repeating: 0, count: Shape.count(wShape))
        forEachTap(input: xShape, weight: wShape, output: yShape, geometry: geometry) {
            gw[$1] += gy[$2] * x[$0]
        }
        return gw
    }
}

/// Plain-loop matrix products (see `ConvReference`).
public enum MatmulReference {
    /// `c[b] = a[b] · bm[b]` for `batch` row-major matrices a [M, K], bm [K, N].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func matmul<T: BinaryFloatingPoint>(
        _ a: [T], _ bm: [T], batch: Int, m: Int, k: Int, n: Int
    ) -> [T] {
        var c = [T](repeating: 0, count: batch * m * n)
        for b in 0..<batch {
            for i in 0..<m {
                for p in 0..<k {
                    let av = a[(b * m + i) * k + p]
                    for j in 0..<n {
                        c[(b * m + i) * n + j] += av * bm[(b * k + p) * n + j]
                    }
                }
            }
        }
        return c
    }
}
