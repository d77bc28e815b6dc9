import Foundation
import Method
import TensorCore

/// `isfgan bench train`: seconds per full training step (discriminator and ISF steps) for
/// the losses-small shapes and a config-f 256 px generator with batch 4, and the share of
/// the step spent in the generator. `BenchCommand` dispatches here for `train`.
func runTrainBenchmark(_ console: Console, repeats: Int) throws {
    let progress = ProgressLine(console: console)
    var rows: [TrainingBenchmarkRow] = []
    for which in TrainingBenchmarkCase.allCases {
        rows.append(try benchmarkTrainingStep(which, repeats: repeats, progress: progress.update))
    }
    progress.finish()
    console.out(
        "one training step (discriminator step + ISF step + moving average), random weights, "
            + "\(Threads.count) threads, best of \(repeats)")
    console.out(
        BenchCommand.pad("case", 14) + BenchCommand.pad("batch", 6) + BenchCommand.pad("s/step", 8)
            + BenchCommand.pad("G fwd", 7) + BenchCommand.pad("G fwd+bwd", 10) + "perceptual")
    for r in rows {
        console.out(
            BenchCommand.pad(r.name, 14) + BenchCommand.pad("\(r.batch)", 6)
                + BenchCommand.pad(String(format: "%.2f", r.secondsPerStep), 8)
                + BenchCommand.pad(
                    String(format: "%.0f%%", 100 * r.generatorForwardSeconds / r.secondsPerStep), 7)
                + BenchCommand.pad(
                    String(
                        format: "≈%.0f%%",
                        100 * min(1, r.generatorEstimateSeconds / r.secondsPerStep)),
                    10)
                + r.perceptual)
    }
    if let rss = peakResidentBytes() {
        console.out(String(format: "process peak resident memory: %.0f MB", Double(rss) / 1e6))
    }
}
