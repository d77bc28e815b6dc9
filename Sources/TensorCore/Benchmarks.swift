import Foundation

/// One row of `isfgan bench ops`.
public struct OpBenchmarkRow: Codable, Sendable {
    /// What ran, e.g. "conv2d 3x3 512→512 32x32 N4".
    public var name: String
    /// "forward" or "backward" (input and weight gradients).
    public var pass: String
    /// Wall time of the fastest run.
    public var milliseconds: Double
    /// Floating-point work divided by the time (0 for the copy row).
    public var gflops: Double
    /// `gflops` over the sgemm rate measured in the same run.
    public var ratioToSgemm: Double
    /// Bytes the op must at least read and write (inputs, weights, outputs), per second.
    public var gigabytesPerSecond: Double
    /// `gigabytesPerSecond` over the copy bandwidth measured in the same run.
    public var ratioToBandwidth: Double
}

/// The kernel benchmark behind `isfgan bench ops`: the matrix product and the
/// convolutions StyleGAN2 runs, against the sgemm rate and the copy bandwidth of the same
/// run.
///
/// Each case runs once to build and cache its oneDNN primitives, then `repeats` times;
/// the fastest run is reported (other processes on a shared machine only ever add time,
/// so the minimum is the steadiest estimate of what the kernel itself takes). Backward rows
/// time the input gradient plus the weight gradient
/// (twice the forward's arithmetic).
public enum OpBenchmarks {
    /// Problem sizes: `.full` is the table; `.quick` is a small version for tests.
    public enum Size: Sendable {
        case full, quick
    }

    public static func run(repeats: Int = 5, size: Size = .full) -> [OpBenchmarkRow] {
        let q = size == .quick
        var rows: [OpBenchmarkRow] = []
        let mb = 1024 * 1024

        // Copy bandwidth: read and write a buffer far larger than the caches.
        let copyCount = (q ? 8 : 256) * mb / 4
        let src = Tensor.full([copyCount], 1), dst = Tensor(uninitializedShape: [copyCount])
        let copyTime = best(repeats) { parallelCopy(src, dst) }
        let bandwidth = Double(2 * copyCount * 4) / copyTime / 1e9
        rows.append(
            OpBenchmarkRow(
                name: "copy \(copyCount * 4 / mb) MiB", pass: "memory",
                milliseconds: copyTime * 1e3,
                gflops: 0, ratioToSgemm: 0, gigabytesPerSecond: bandwidth, ratioToBandwidth: 1))

        // sgemm.
        let n = q ? 256 : 2048
        let a = Tensor.randn([n, n], seed: 1), b = Tensor.randn([n, n], seed: 2)
        let gemmFlops = 2 * Double(n) * Double(n) * Double(n)
        let gemmTime = best(repeats) { _ = MatmulKernels.matmul(a, b, implementation: .oneDNN) }
        let sgemmRate = gemmFlops / gemmTime / 1e9
        let gemmBytes = Double(3 * n * n * 4)
        rows.append(
            row(
                "sgemm \(n)x\(n)x\(n)", "forward", gemmTime, gemmFlops, gemmBytes,
                sgemmRate, bandwidth))
        let g = Tensor.randn([n, n], seed: 3)
        let gemmBack = best(repeats) {
            _ = MatmulKernels.matmul(g, b.transposed(), implementation: .oneDNN)
            _ = MatmulKernels.matmul(a.transposed(), g, implementation: .oneDNN)
        }
        rows.append(
            row(
                "sgemm \(n)x\(n)x\(n)", "backward", gemmBack, 2 * gemmFlops,
                2 * gemmBytes, sgemmRate, bandwidth))

        // Convolutions: (name, x, w, geometry, transposed).
        struct Case {
            var name: String
            var x: [Int]
            var w: [Int]
            var geometry: ConvGeometry
            var transposed: Bool
        }
        let c = q ? 64 : 512
        let cases = [
            Case(
                name: "conv2d 3x3 \(c)→\(c) 32x32 N4", x: [4, c, 32, 32], w: [c, c, 3, 3],
                geometry: ConvGeometry(stride: 1, padding: 1), transposed: false),
            Case(
                name: "conv2d 3x3 64→64 \(q ? 64 : 256)² N1",
                x: [1, 64, q ? 64 : 256, q ? 64 : 256],
                w: [64, 64, 3, 3], geometry: ConvGeometry(stride: 1, padding: 1),
                transposed: false),
            Case(
                name: "convT 3x3 s2 \(c)→\(c) 16→33 N4", x: [4, c, 16, 16], w: [c, c, 3, 3],
                geometry: ConvGeometry(stride: 2, padding: 0), transposed: true),
            Case(
                name: "convT 3x3 s2 \(c)→\(c) 16→33 N4 groups 4", x: [1, 4 * c, 16, 16],
                w: [4 * c, c, 3, 3], geometry: ConvGeometry(stride: 2, padding: 0, groups: 4),
                transposed: true),
        ]
        for k in cases {
            let x = Tensor.randn(k.x, seed: 4), w = Tensor.randn(k.w, seed: 5)
            let gm = k.geometry
            // Every case is timed as the convolution it is built on; a transposed conv is
            // the input gradient of the conv that maps its output back to its input.
            let out: [Int]
            if k.transposed {
                out = must {
                    try Tensor.convTranspose2dShape(
                        input: k.x, weight: k.w, stride: gm.stride.h, padding: gm.padding.h,
                        outputPadding: 0, groups: gm.groups)
                }
            } else {
                out = gm.outputShape(input: k.x, weight: k.w)
            }
            // Multiply-adds: one per (smaller-side element, weight tap) pair.
            let small = k.transposed ? k.x : out
            let flops = 2 * Double(Shape.count(small)) * Double(k.w[1] * k.w[2] * k.w[3])
            let bytes = Double(4 * (Shape.count(k.x) + Shape.count(k.w) + Shape.count(out)))
            let gy = Tensor.randn(out, seed: 6)
            let forward = best(repeats) {
                if k.transposed {
                    _ = ConvKernels.inputGradient(
                        x, weight: w, inputShape: out, geometry: gm, implementation: .oneDNN)
                } else {
                    _ = ConvKernels.forward(
                        x, weight: w, bias: nil, geometry: gm, implementation: .oneDNN)
                }
            }
            rows.append(row(k.name, "forward", forward, flops, bytes, sgemmRate, bandwidth))
            let backward = best(repeats) {
                if k.transposed {
                    // d/dx of convT = conv2d(gy); d/dw = weight gradient with roles swapped.
                    _ = ConvKernels.forward(
                        gy, weight: w, bias: nil, geometry: gm, implementation: .oneDNN)
                    _ = ConvKernels.weightGradient(
                        gy, outputGradient: x, weightShape: k.w, geometry: gm,
                        implementation: .oneDNN)
                } else {
                    _ = ConvKernels.inputGradient(
                        gy, weight: w, inputShape: k.x, geometry: gm, implementation: .oneDNN)
                    _ = ConvKernels.weightGradient(
                        x, outputGradient: gy, weightShape: k.w, geometry: gm,
                        implementation: .oneDNN)
                }
            }
            rows.append(
                row(
                    k.name, "backward", backward, 2 * flops, 2 * bytes, sgemmRate,
                    bandwidth))
        }
        return rows
    }

    /// The rows as a fixed-width table with units in the header.
    public static func table(_ rows: [OpBenchmarkRow]) -> String {
        func pad(_ s: String, _ n: Int) -> String {
            s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
        }
        func num(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
        var lines = [
            pad("op", 40) + pad("pass", 10) + pad("ms", 10) + pad("GFLOP/s", 10)
                + pad("x sgemm", 9) + pad("GB/s", 8) + "x copy"
        ]
        for r in rows {
            lines.append(
                pad(r.name, 40) + pad(r.pass, 10) + pad(num(r.milliseconds, 2), 10)
                    + pad(r.gflops > 0 ? num(r.gflops, 1) : "-", 10)
                    + pad(r.gflops > 0 ? num(r.ratioToSgemm, 2) : "-", 9)
                    + pad(num(r.gigabytesPerSecond, 1), 8) + num(r.ratioToBandwidth, 2))
        }
        return lines.joined(separator: "\n")
    }

    private static func row(
        _ name: String, _ pass: String, _ seconds: Double, _ flops: Double, _ bytes: Double,
        _ sgemmRate: Double, _ bandwidth: Double
    ) -> OpBenchmarkRow {
        let rate = flops / seconds / 1e9
        let gbs = bytes / seconds / 1e9
        return OpBenchmarkRow(
            name: name, pass: pass, milliseconds: seconds * 1e3, gflops: rate,
            ratioToSgemm: rate / sgemmRate, gigabytesPerSecond: gbs,
            ratioToBandwidth: gbs / bandwidth)
    }

    /// Fastest of `repeats` runs after one warm-up run, in seconds.
    private static func best(_ repeats: Int, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return times.min()!
    }

    /// A copy split over `Threads.count` threads, like the elementwise kernels.
    private static func parallelCopy(_ src: Tensor, _ dst: Tensor) {
        let ps = src.pointer, pd = dst.pointer
        Threads.parallelFor(src.count, grain: 1 << 16) { r in
            (pd + r.lowerBound).update(from: ps + r.lowerBound, count: r.count)
        }
    }
}
