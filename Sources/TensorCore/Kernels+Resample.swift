/// Kernels for the 2-D filtering and resampling ops (upfirdn2d, pooling, resizing).
///
/// Most of these ops are separable: along each spatial axis, output sample `o` is a
/// weighted sum of a few input samples. A `ResampleTable` lists those taps for one axis;
/// `ResampleKernels.separable` applies a row table and a column table to every
/// [H, W] plane. The transpose of a table is again a table, so every such op's backward
/// is the same kernel with transposed tables, and so is the backward of the backward.
///
/// Each plane is computed by one thread, in a fixed order, so results are bit-identical
/// for any thread count.

/// A 1-D linear map from `inputCount` samples to `outputCount` samples:
/// `output[o] = Σ weights[t] · input[indices[t]]` over `t` in `starts[o]..<starts[o + 1]`.
public struct ResampleTable: Equatable, Sendable {
    public let inputCount: Int
    public let outputCount: Int
    /// `outputCount + 1` offsets into `indices` and `weights`.
    let starts: [Int]
    let indices: [Int]
    let weights: [Float]

    /// Builds a table from each output's list of `(input index, weight)` taps.
    init(inputCount: Int, outputCount: Int, taps: (Int) -> [(Int, Float)]) {
        var starts = [0]
        var indices: [Int] = []
        var weights: [Float] = []
        starts.reserveCapacity(outputCount + 1)
        for o in 0..<outputCount {
            for (i, w) in taps(o) {
                precondition(i >= 0 && i < inputCount, "ResampleTable: tap \(i) of \(inputCount)")
                indices.append(i)
                weights.append(w)
            }
            starts.append(indices.count)
        }
        self.inputCount = inputCount
        self.outputCount = outputCount
        self.starts = starts
        self.indices = indices
        self.weights = weights
    }

    /// The adjoint map (`inputCount` and `outputCount` swapped): what a gradient goes
    /// through. Taps of each new output keep the order of the old outputs.
    public func transposed() -> ResampleTable {
        var byInput = [[(Int, Float)]](repeating: [], count: inputCount)
        for o in 0..<outputCount {
            for t in starts[o]..<starts[o + 1] {
                byInput[indices[t]].append((o, weights[t]))
            }
        }
        return ResampleTable(inputCount: outputCount, outputCount: inputCount) { byInput[$0] }
    }

    /// The table as a dense [outputCount, inputCount] matrix (for tests and references).
    public var dense: [[Float]] {
        (0..<outputCount).map { o in
            var row = [Float](repeating: 0, count: inputCount)
            for t in starts[o]..<starts[o + 1] { row[indices[t]] += weights[t] }
            return row
        }
    }

    /// The table's arrays as buffers for inner loops (valid while `body` runs).
    func withTaps<R>(_ body: (TapBuffers) -> R) -> R {
        starts.withUnsafeBufferPointer { s in
            indices.withUnsafeBufferPointer { i in
                weights.withUnsafeBufferPointer { w in
                    body(TapBuffers(starts: s, indices: i, weights: w))
                }
            }
        }
    }

    // MARK: - Tables of the ops

    /// One axis of upfirdn2d with a 1-D `kernel` (see `UpFirDnTaps`).
    static func upFirDn(length: Int, kernel: [Float], axis: UpFirDnAxis) -> ResampleTable {
        let taps = UpFirDnTaps(length: length, kernelLength: kernel.count, axis: axis)
        return ResampleTable(inputCount: length, outputCount: taps.outputCount) { o in
            (taps.starts[o]..<taps.starts[o + 1]).map {
                (taps.inputs[$0], kernel[taps.kernelIndices[$0]])
            }
        }
    }

    /// Linear interpolation with PyTorch's `align_corners=False` sampling: output `o` reads
    /// the input at `(o + 0.5) · input/output − 0.5`, clamped at 0 and at the last sample.
    public static func bilinear(from input: Int, to output: Int) -> ResampleTable {
        precondition(input > 0 || output == 0, "bilinear: cannot resize an empty axis to \(output)")
        // PyTorch computes the source position in float32 for float tensors.
        let scale = Float(input) / Float(output)
        return ResampleTable(inputCount: input, outputCount: output) { o in
            let src = Swift.max(scale * (Float(o) + 0.5) - 0.5, 0)
            let i0 = Swift.min(Int(src), input - 1)
            let i1 = i0 < input - 1 ? i0 + 1 : i0
            let t = src - Float(i0)
            return [(i0, 1 - t), (i1, t)]
        }
    }

    /// Averages over PyTorch's adaptive-pooling windows: output `o` averages inputs
    /// `⌊o·input/output⌋ ..< ⌈(o+1)·input/output⌉` (interpolate's `mode='area'`).
    public static func area(from input: Int, to output: Int) -> ResampleTable {
        precondition(input > 0 || output == 0, "area: cannot resize an empty axis to \(output)")
        return ResampleTable(inputCount: input, outputCount: output) { o in
            let lo = o * input / output
            let hi = ((o + 1) * input + output - 1) / output
            let w = 1 / Float(hi - lo)
            return (lo..<hi).map { ($0, w) }
        }
    }

    /// Repeats each input `factor` times (nearest-neighbour upsampling).
    public static func nearest(from input: Int, factor: Int) -> ResampleTable {
        ResampleTable(inputCount: input, outputCount: input * factor) { o in [(o / factor, 1)] }
    }
}

/// Unchecked views of a `ResampleTable`'s arrays.
struct TapBuffers {
    let starts: UnsafeBufferPointer<Int>
    let indices: UnsafeBufferPointer<Int>
    let weights: UnsafeBufferPointer<Float>
}

/// One spatial axis of an upfirdn2d: upsampling factor, downsampling factor and the pads
/// before and after (negative pads crop).
public struct UpFirDnAxis: Equatable, Sendable {
    public var up: Int
    public var down: Int
    public var pad0: Int
    public var pad1: Int

    public init(up: Int = 1, down: Int = 1, pad0: Int = 0, pad1: Int = 0) {
        precondition(up >= 1 && down >= 1, "upfirdn2d: up \(up) and down \(down) must be ≥ 1")
        self.up = up
        self.down = down
        self.pad0 = pad0
        self.pad1 = pad1
    }

    /// Output length for an input of `length` samples and a kernel of `kernelLength` taps:
    /// `⌊(length·up + pad0 + pad1 − kernelLength) / down⌋ + 1`, or 0 when that is empty.
    public func outputLength(_ length: Int, kernelLength: Int) -> Int {
        let full = length * up + pad0 + pad1 - kernelLength + 1
        return full > 0 ? (full - 1) / down + 1 : 0
    }

    /// The axis of the backward op for an input of `length` samples: the filter runs
    /// flipped over the upsampled gradient, and the pads line its taps up with the
    /// forward's (derivation in `Tensor+UpFirDn.swift`).
    func adjoint(length: Int, kernelLength: Int) -> UpFirDnAxis {
        let out = outputLength(length, kernelLength: kernelLength)
        return UpFirDnAxis(
            up: down, down: up, pad0: kernelLength - 1 - pad0,
            pad1: length * up - out * down + pad0 - up + 1)
    }
}

/// The taps of one axis of upfirdn2d: for output `o`, the input samples it reads and the
/// kernel index each is multiplied by.
///
/// Upsampled position `m = o·down + a − pad0` meets kernel tap `a` of the flipped
/// kernel, i.e. `kernel[K − 1 − a]` (a true convolution); only positions that are
/// multiples of `up` and inside `0 ..< length·up` hold input samples (`m / up`).
struct UpFirDnTaps {
    let outputCount: Int
    let starts: [Int]
    let inputs: [Int]
    let kernelIndices: [Int]

    init(length: Int, kernelLength k: Int, axis: UpFirDnAxis) {
        outputCount = axis.outputLength(length, kernelLength: k)
        var starts = [0], inputs: [Int] = [], kernelIndices: [Int] = []
        for o in 0..<outputCount {
            for a in 0..<k {
                let m = o * axis.down + a - axis.pad0
                if m >= 0 && m < length * axis.up && m % axis.up == 0 {
                    inputs.append(m / axis.up)
                    kernelIndices.append(k - 1 - a)
                }
            }
            starts.append(inputs.count)
        }
        self.starts = starts
        self.inputs = inputs
        self.kernelIndices = kernelIndices
    }
}

public enum ResampleKernels {
    /// Applies `rows` along H and `columns` along W to each plane of a contiguous
    /// `x` [P, H, W]; returns [P, rows.outputCount, columns.outputCount].
    ///
    /// Each plane is filtered along W into a scratch [H, Wo] buffer, then along H by
    /// weighted sums of whole scratch rows (which vectorise).
    public static func separable(_ x: Tensor, rows: ResampleTable, columns: ResampleTable)
        -> Tensor
    {
        precondition(x.rank == 3 && x.isContiguous, "separable: want contiguous [P, H, W]")
        let (planes, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(h == rows.inputCount && w == columns.inputCount, "separable: table sizes")
        let (ho, wo) = (rows.outputCount, columns.outputCount)
        let out = Tensor(uninitializedShape: [planes, ho, wo])
        guard out.count > 0 else { return out }
        let src = x.pointer, dst = out.pointer
        let work = (h + ho) * wo * Swift.max(1, columns.indices.count / Swift.max(wo, 1))
        Threads.parallelFor(planes, grain: Swift.max(1, 32768 / Swift.max(work, 1))) { range in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(h * wo, 1))
            defer { scratch.deallocate() }
            columns.withTaps { c in
                rows.withTaps { r in
                    for p in range {
                        // Along W: scratch [H, Wo].
                        let plane = src + p * h * w
                        for iy in 0..<h {
                            let line = plane + iy * w, t = scratch + iy * wo
                            for ox in 0..<wo {
                                var s: Float = 0
                                for k in c.starts[ox]..<c.starts[ox + 1] {
                                    s += c.weights[k] * line[c.indices[k]]
                                }
                                t[ox] = s
                            }
                        }

                        // Along H: each output row is a weighted sum of scratch rows.
                        let o = dst + p * ho * wo
                        for oy in 0..<ho {
                            let row = o + oy * wo
                            row.initialize(repeating: 0, count: wo)
                            for k in r.starts[oy]..<r.starts[oy + 1] {
                                let weight = r.weights[k], t = scratch + r.indices[k] * wo
                                for ox in 0..<wo { row[ox] += weight * t[ox] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// upfirdn2d with any 2-D kernel, by direct summation over both axes' taps: the
    /// reference path, and the path for kernels that are not an outer product.
    ///
    /// `x` is contiguous [P, H, W]; `kernel` holds `kh · kw` row-major values.
    static func upFirDnDirect(
        _ x: Tensor, kernel: [Float], kernelHeight kh: Int, kernelWidth kw: Int,
        x xAxis: UpFirDnAxis, y yAxis: UpFirDnAxis
    ) -> Tensor {
        precondition(x.rank == 3 && x.isContiguous, "upFirDnDirect: want contiguous [P, H, W]")
        let (planes, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let ty = UpFirDnTaps(length: h, kernelLength: kh, axis: yAxis)
        let tx = UpFirDnTaps(length: w, kernelLength: kw, axis: xAxis)
        let (ho, wo) = (ty.outputCount, tx.outputCount)
        let out = Tensor(uninitializedShape: [planes, ho, wo])
        guard out.count > 0 else { return out }
        let src = x.pointer, dst = out.pointer
        let work = ho * wo * Swift.max(1, kh * kw / (xAxis.up * yAxis.up))
        Threads.parallelFor(planes, grain: Swift.max(1, 32768 / Swift.max(work, 1))) { range in
            kernel.withUnsafeBufferPointer { k in
                for p in range {
                    let plane = src + p * h * w, o = dst + p * ho * wo
                    for oy in 0..<ho {
                        let row = o + oy * wo
                        row.initialize(repeating: 0, count: wo)
                        for a in ty.starts[oy]..<ty.starts[oy + 1] {
                            let line = plane + ty.inputs[a] * w
                            let krow = k.baseAddress! + ty.kernelIndices[a] * kw
                            for ox in 0..<wo {
                                var s: Float = 0
                                for b in tx.starts[ox]..<tx.starts[ox + 1] {
                                    s += line[tx.inputs[b]] * krow[tx.kernelIndices[b]]
                                }
                                row[ox] += s
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
