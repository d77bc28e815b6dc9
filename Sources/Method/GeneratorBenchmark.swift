import Foundation
import Models
import TensorCore

/// One row of `isfgan bench generator`.
public struct GeneratorBenchmarkRow: Codable, Sendable {
    public var size: Int
    public var batch: Int
    public var form: String
    public var millisecondsPerImage: Double
    public var gflops: Double
    public var peakTensorBytes: Int
}

/// Times the config-f generator (random weights, W+ input, constant noise).
///
/// Each configuration runs once to warm up (oneDNN builds its primitives then) and is
/// then timed over `repeats` runs; the best run is reported, as is usual for CPU timings
/// on a shared machine. GFLOP/s counts 2 × the multiply-adds of every convolution.
public func benchmarkGenerator(
    size: Int, batches: [Int], forms: [ModulationForm] = [.shared, .grouped], repeats: Int = 3,
    progress: (String) -> Void = { _ in }
) -> [GeneratorBenchmarkRow] {
    let g = StyleGAN2Generator.randomlyInitialised(.configF(size: size), seed: 1)
    var rows: [GeneratorBenchmarkRow] = []
    for batch in batches {
        var rng = RandomGenerator(seed: 2)
        let codes = rng.normal([batch, g.codeLayers, g.codeWidth])
        for form in forms {
            g.modulationForm = form
            let name = form == .automatic ? "auto" : form == .shared ? "shared" : "grouped"
            progress("generator \(size) px, batch \(batch), \(name): warming up")
            GradMode.withoutGradients { _ = g.render(codes, noise: .constant) }
            var best = Double.infinity
            MemoryStats.resetPeak()
            let base = MemoryStats.liveBytes
            for r in 0..<repeats {
                progress("generator \(size) px, batch \(batch), \(name): run \(r + 1)/\(repeats)")
                let t = measureSeconds {
                    GradMode.withoutGradients { _ = g.render(codes, noise: .constant) }
                }
                best = min(best, t)
            }
            let perImage = best / Double(batch)
            rows.append(
                GeneratorBenchmarkRow(
                    size: size, batch: batch, form: name, millisecondsPerImage: perImage * 1000,
                    gflops: 2 * Double(g.convolutionMACs) / perImage / 1e9,
                    peakTensorBytes: MemoryStats.peak - base))
        }
    }
    return rows
}
