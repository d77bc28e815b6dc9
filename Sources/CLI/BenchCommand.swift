import Foundation
import Method
import Models
import TensorCore

/// `isfgan bench generator|ops`: speed tables (the project's numbers; the reference
/// figures the issues quote are printed beside them for comparison).
struct BenchCommand: Subcommand {
    static let name = "bench"
    static let summary =
        "speed tables: kernels (ops), generator, isf, training step (train), projection (invert)"
    static let usage =
        "(ops | generator | isf | train | invert) [--size 256] [--batch 1,4] [--repeats 3]"
    static let positionalCount = 1
    static let options: [OptionSpec] = [
        .value("size", "PX", "generator resolution (config-f architecture)", default: "256"),
        .value("batch", "LIST", "batch sizes, comma-separated", default: "1,4"),
        .value("repeats", "N", "timed runs per row (the best is reported)", default: "3"),
        .value(
            "form", "NAME", "modulated conv form: shared, grouped, auto (what renders use) or both",
            default: "both"),
    ]

    static func run(_ args: ParsedArguments, _ console: Console) throws {
        guard let what = args.positional.first else {
            throw UsageError(
                "isfgan bench: say what to time: ops, generator, isf, train or invert")
        }
        let repeats = try args.int("repeats", range: 1...100)!
        switch what {
        case "generator":
            let size = try args.int("size", range: 4...4096)!
            guard size & (size - 1) == 0 else {
                throw UsageError("isfgan bench: --size must be a power of two, got \(size)")
            }
            let batches = try parseIntList(
                args.required("batch"), flag: "batch", command: name, range: 1...4096)
            let formName = try args.choice("form", ["shared", "grouped", "auto", "both"])!
            let forms: [ModulationForm] =
                formName == "both"
                ? [.shared, .grouped]
                : formName == "shared" ? [.shared] : formName == "auto" ? [.automatic] : [.grouped]
            let progress = ProgressLine(console: console)
            let rows = benchmarkGenerator(
                size: size, batches: batches, forms: forms, repeats: repeats,
                progress: progress.update)
            progress.finish()
            console.out(
                "StyleGAN2 config-f \(size) px, random weights, W+ input, const noise, "
                    + "\(Threads.count) threads")
            console.out(
                pad("batch", 6) + pad("form", 9) + pad("ms/image", 11) + pad("GFLOP/s", 9)
                    + "peak tensors")
            for r in rows {
                console.out(
                    pad("\(r.batch)", 6) + pad(r.form, 9)
                        + pad(String(format: "%.0f", r.millisecondsPerImage), 11)
                        + pad(String(format: "%.0f", r.gflops), 9)
                        + String(format: "%.0f MB", Double(r.peakTensorBytes) / 1e6))
            }
            if let rss = peakResidentBytes() {
                console.out(
                    String(format: "process peak resident memory: %.0f MB", Double(rss) / 1e6))
            }
            console.out(
                "reference (2 threads, this kind of machine): PyTorch ≈1.0 s/image at 256 px, "
                    + "5–10 s at 1024 px; onnxruntime ≈0.65 s and 3.7 s")
        case "ops":
            try runOpsBenchmark(console, repeats: repeats)
        case "isf":
            try runISFBenchmark(console, repeats: repeats)
        case "train":
            try runTrainBenchmark(console, repeats: repeats)
        case "invert":
            try runInvertBenchmark(
                console, size: try args.int("size", range: 4...4096)!, repeats: repeats)
        default:
            throw UsageError(
                "isfgan bench: unknown benchmark '\(what)'; choose ops, generator, isf, train "
                    + "or invert")
        }
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }
}

/// Parses "1,4" or "0-7" style lists of integers.
func parseIntList(
    _ text: String, flag: String, command: String, range: ClosedRange<Int> = 0...Int.max,
    maxCount: Int = 1_000_000
) throws -> [Int] {
    let expected =
        "isfgan \(command): --\(flag) expects integers in \(range.lowerBound)…"
        + (range.upperBound == Int.max ? "" : "\(range.upperBound)")
    var out: [Int] = []
    // Empty pieces are kept so that "-3-5" or "1,,2" is refused rather than read as 3-5 or 1,2.
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(bounds.count), let a = Int(bounds[0]),
            let b = bounds.count == 2 ? Int(bounds[1]) : a, a <= b
        else {
            throw UsageError("\(expected) like 1,4 or 0-7, got '\(text)'")
        }
        guard range.contains(a), range.contains(b) else {
            throw UsageError("\(expected), got '\(part)'")
        }
        guard b - a < maxCount - out.count else {
            throw UsageError(
                "isfgan \(command): --\(flag) '\(text)' names more than \(maxCount) values")
        }
        out += Array(a...b)
    }
    guard !out.isEmpty else {
        throw UsageError("isfgan \(command): --\(flag) is empty")
    }
    return out
}

/// A progress line: rewritten in place on a terminal, plain lines otherwise.
final class ProgressLine {
    let console: Console
    var last = ""
    init(console: Console) { self.console = console }

    func update(_ text: String) {
        if console.isTerminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + text).utf8))
        } else if text != last {
            console.err(text)
        }
        last = text
    }

    func finish() {
        if console.isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
    }
}
