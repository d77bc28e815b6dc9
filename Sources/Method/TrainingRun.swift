import Formats
import Foundation
import Models
import TensorCore

// The run folder `OUT/NNNNN-NAME/`:
//
//   settings.json                         the fully resolved settings
//   log.txt                               what happened, one line per event
//   stats.jsonl                           every loss term, lr, s/step, memory per log step;
//                                         held-out D accuracy (d_acc_test_*) per sample grid
//   samples/step-NNNNNN.png               edits of fixed held-out inputs
//   checkpoints/step-NNNNNN.safetensors   everything a resumed run needs
//   final.safetensors                     the averaged ISF alone (an isfgan ISF file)
//
// Every file is written atomically (a temporary file renamed over the old one), so a run
// killed at any moment leaves only whole files behind.

/// How far a run is, for status lines.
public struct TrainingProgress: Sendable {
    public var record: TrainingStepRecord
    /// Iterations done, of `total`.
    public var done: Int
    public var total: Int
    /// Average speed over the recent steps.
    public var stepsPerSecond: Double
    public var secondsLeft: Double
}

/// How a call to ``TrainingRun/run(until:checkpointOnStop:shouldStop:progress:)`` ended.
public enum TrainingOutcome: Equatable, Sendable {
    /// Every iteration ran; `final.safetensors` was written.
    case finished
    /// Stopped early at this many iterations done.
    case stopped(Int)
}

/// A training run and its folder.
public final class TrainingRun {
    public let folder: URL
    public let trainer: Trainer
    var logLines: [String] = []
    var statsLines: [String] = []

    public var settingsURL: URL { folder.appendingPathComponent("settings.json") }
    public var logURL: URL { folder.appendingPathComponent("log.txt") }
    public var statsURL: URL { folder.appendingPathComponent("stats.jsonl") }
    public var checkpointsURL: URL { folder.appendingPathComponent("checkpoints") }
    public var samplesURL: URL { folder.appendingPathComponent("samples") }
    public var finalURL: URL { folder.appendingPathComponent("final.safetensors") }

    public static func checkpointName(step: Int) -> String {
        String(format: "step-%06d.safetensors", step)
    }

    /// `OUT/NNNNN-NAME` with NNNNN one more than the largest number already in `out`.
    public static func nextFolder(out: URL, name: String) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        let numbers = try fm.contentsOfDirectory(atPath: out.path).compactMap { entry -> Int? in
            let digits = entry.prefix { $0.isNumber }
            return digits.count == 5 ? Int(digits) : nil
        }
        let next = (numbers.max() ?? -1) + 1
        return out.appendingPathComponent(String(format: "%05d-", next) + name)
    }

    /// The checkpoints of a run folder, oldest first, with their steps.
    public static func checkpoints(in folder: URL) -> [(step: Int, url: URL)] {
        let dir = folder.appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.compactMap { n -> (Int, URL)? in
            guard n.hasPrefix("step-"), n.hasSuffix(".safetensors"),
                let s = Int(n.dropFirst(5).dropLast(12))
            else { return nil }
            return (s, dir.appendingPathComponent(n))
        }.sorted { $0.0 < $1.0 }
    }

    /// A new run in a fresh folder: writes `settings.json` and starts the log.
    ///
    /// - Throws: `FormatError` when the folder or files cannot be written.
    public static func start(_ trainer: Trainer, out: URL) throws -> TrainingRun {
        let folder = try nextFolder(out: out, name: trainer.settings.name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let run = TrainingRun(folder: folder, trainer: trainer)
        try AtomicFile.write(
            Array((trainer.settings.json(pretty: true) + "\n").utf8), to: run.settingsURL)
        try run.log(
            "started \(folder.lastPathComponent): \(trainer.settings.iterations) iterations")
        return run
    }

    init(folder: URL, trainer: Trainer) {
        self.folder = folder
        self.trainer = trainer
    }

    /// The settings of an existing run folder (from `settings.json`).
    ///
    /// - Throws: `TrainingError.badRun` when the folder is not a run or its settings do
    ///   not parse.
    public static func settings(ofRun folder: URL) throws -> TrainingSettings {
        let url = folder.appendingPathComponent("settings.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.badRun(
                "\(folder.path) is not a training run: \(url.lastPathComponent) is missing")
        }
        do {
            return try JSONDecoder().decode(TrainingSettings.self, from: data)
        } catch {
            throw TrainingError.badRun("\(url.path) does not parse: \(describeDecoding(error))")
        }
    }

    /// Continues the run in `folder` with `trainer` (built from the run's settings): loads
    /// the last checkpoint that reads back (a fresh start when there is none) and drops the
    /// stats lines of steps after it.
    ///
    /// - Throws: `TrainingError` when no checkpoint can be read although some exist.
    public static func resume(_ trainer: Trainer, folder: URL) throws -> TrainingRun {
        let run = TrainingRun(folder: folder, trainer: trainer)
        if let text = try? String(contentsOf: run.logURL, encoding: .utf8) {
            run.logLines = text.split(separator: "\n").map(String.init)
        }
        var failures: [String] = []
        var resumedFrom: Int?
        for (step, url) in checkpoints(in: folder).reversed() {
            do {
                try TrainingCheckpoint.restore(trainer, from: url)
                resumedFrom = step
                break
            } catch {
                failures.append("\(url.lastPathComponent): \(error)")
            }
        }
        if resumedFrom == nil && !failures.isEmpty {
            throw TrainingError.badRun(
                "cannot resume \(folder.path): no checkpoint reads back:\n  "
                    + failures.joined(separator: "\n  "))
        }
        let step = resumedFrom ?? 0
        if let text = try? String(contentsOf: run.statsURL, encoding: .utf8) {
            run.statsLines = text.split(separator: "\n").map(String.init).filter { line in
                guard
                    let d = try? JSONSerialization.jsonObject(with: Data(line.utf8))
                        as? [String: Any],
                    let s = d["step"] as? Int
                else { return false }
                return s < step
            }
            try AtomicFile.write(
                Array(run.statsLines.map { $0 + "\n" }.joined().utf8), to: run.statsURL)
        }
        try run.log(
            resumedFrom.map { "resumed from checkpoint at step \($0)" }
                ?? "resumed with no checkpoint: starting from step 0")
        return run
    }

    /// Appends a line to `log.txt` (rewritten atomically).
    public func log(_ line: String) throws {
        let stamp = ISO8601DateFormatter().string(from: Date())
        logLines.append("\(stamp) \(line)")
        try AtomicFile.write(Array(logLines.map { $0 + "\n" }.joined().utf8), to: logURL)
    }

    func appendStats(_ r: TrainingStepRecord) throws {
        var entry: [String: Any] = [
            "step": r.step, "lr": r.learningRate, "seconds_per_step": r.seconds,
            "generator_seconds": r.generatorSeconds,
            "tensor_bytes_peak": MemoryStats.peak,
        ]
        if let rss = peakResidentBytes() { entry["resident_bytes_peak"] = rss }
        for (k, v) in r.values { entry[k] = Double(v) }
        let data = try JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys])
        statsLines.append(String(decoding: data, as: UTF8.self))
        try AtomicFile.write(Array(statsLines.map { $0 + "\n" }.joined().utf8), to: statsURL)
    }

    /// Writes a training checkpoint for the current step and deletes the oldest beyond
    /// `keepCheckpoints`.
    public func saveCheckpoint() throws {
        try FileManager.default.createDirectory(
            at: checkpointsURL, withIntermediateDirectories: true)
        let url = checkpointsURL.appendingPathComponent(Self.checkpointName(step: trainer.step))
        try TrainingCheckpoint.write(trainer, to: url)
        let keep = trainer.settings.keepCheckpoints
        if keep > 0 {
            for (_, old) in Self.checkpoints(in: folder).dropLast(keep) {
                try? FileManager.default.removeItem(at: old)
            }
        }
        try log("checkpoint \(url.lastPathComponent)")
    }

    /// Writes the sample grid of the current step.
    public func saveSamples() throws {
        try FileManager.default.createDirectory(at: samplesURL, withIntermediateDirectories: true)
        let grid = try trainer.sampleGrid()
        let url = samplesURL.appendingPathComponent(String(format: "step-%06d.png", trainer.step))
        try ImageIO.writePNG(Image(tensor: grid), to: url)
    }

    /// The averaged ISF as an isfgan ISF file (what `edit --isf` takes).
    public func writeFinal() throws {
        let file = ISFFile(
            network: trainer.average, attributes: trainer.settings.attributes,
            generatorSHA256: trainer.settings.generatorSHA256.isEmpty
                ? nil : trainer.settings.generatorSHA256,
            trainingSettings: trainer.settings.json())
        try file.write(to: finalURL)
        try log("wrote \(finalURL.lastPathComponent) (averaged ISF, step \(trainer.step))")
    }

    /// Runs iterations until `until` (default: the settings' count) or until `shouldStop`
    /// says so after a step. On a stop, writes a checkpoint when `checkpointOnStop`.
    /// After the last iteration, writes a checkpoint, a sample grid and `final.safetensors`.
    public func run(
        until: Int? = nil, checkpointOnStop: Bool = true, shouldStop: () -> Bool = { false },
        progress: (TrainingProgress) -> Void = { _ in }
    ) throws -> TrainingOutcome {
        let s = trainer.settings
        let end = min(until ?? s.iterations, s.iterations)
        var recent: [Double] = []
        while trainer.step < end {
            var record: TrainingStepRecord
            do {
                record = try trainer.trainStep()
            } catch TrainingError.badRun(let why) {
                // Say where a restart can come from, and keep the event in log.txt.
                let saved = Self.checkpoints(in: folder).last
                let message =
                    why + "; "
                    + (saved.map { "the last checkpoint, step \($0.step), holds an earlier state" }
                        ?? "no checkpoint was saved before it")
                    + " (a lower --lr or other loss weights may keep it finite)"
                try? log(message)
                throw TrainingError.badRun(message)
            }
            let done = trainer.step
            // Held-out attribute accuracy at each sample point and when pre-training ends.
            let heldOut =
                (s.sampleEvery > 0 && done % s.sampleEvery == 0)
                || (s.pretrainSteps > 0 && done == s.pretrainSteps) || done == s.iterations
            if heldOut {
                record.values.merge(try trainer.heldOutAccuracies()) { a, _ in a }
            }
            recent.append(record.seconds)
            if recent.count > 20 { recent.removeFirst() }
            let perStep = recent.reduce(0, +) / Double(recent.count)
            progress(
                TrainingProgress(
                    record: record, done: done, total: s.iterations,
                    stepsPerSecond: perStep > 0 ? 1 / perStep : 0,
                    secondsLeft: perStep * Double(s.iterations - done)))
            if done % s.logEvery == 0 || done == 1 || heldOut {
                try appendStats(record)
            }
            if s.sampleEvery > 0 && done % s.sampleEvery == 0 { try saveSamples() }
            let last = done == s.iterations
            if (s.saveEvery > 0 && done % s.saveEvery == 0) || last { try saveCheckpoint() }
            if last { break }
            if shouldStop() {
                try log("stopped at step \(done)")
                if checkpointOnStop && !(s.saveEvery > 0 && done % s.saveEvery == 0) {
                    try saveCheckpoint()
                }
                return .stopped(done)
            }
        }
        if trainer.step < s.iterations { return .stopped(trainer.step) }
        if s.sampleEvery == 0 || s.iterations % s.sampleEvery != 0 { try saveSamples() }
        try writeFinal()
        return .finished
    }
}
