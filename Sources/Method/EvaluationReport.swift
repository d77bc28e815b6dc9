import Foundation

// What `isfgan eval` reports: per method × attribute × target value, each figure as
// mean ± std over repeats, from the saved cells; as a text table, JSON and an SVG chart.

/// The figures of one subset (flips or no-ops) of one row, over repeats.
public struct SubsetFigures: Codable, Sendable, Equatable {
    /// Inputs in the subset, summed over repeats.
    public var inputs: Int
    public var accuracy: MeanStd?
    public var preservation: MeanStd?
    public var content: MeanStd?
    /// Mean over distinct pairs.
    public var diversity: MeanStd?
    /// The official script's 54-pair rule (for K = 10).
    public var officialDiversity: MeanStd?

    enum CodingKeys: String, CodingKey {
        case inputs, accuracy, preservation, content, diversity
        case officialDiversity = "official_diversity"
    }

    init(_ tallies: [SubsetTally]) {
        inputs = tallies.reduce(0) { $0 + $1.inputs }
        accuracy = MeanStd(tallies.compactMap(\.accuracy))
        preservation = MeanStd(tallies.compactMap(\.preservation))
        content = MeanStd(tallies.compactMap(\.content))
        diversity = MeanStd(tallies.compactMap { $0.diversity(.distinct) })
        officialDiversity = MeanStd(tallies.compactMap { $0.diversity(.official) })
    }

    func diversity(_ rule: DiversityPairs) -> MeanStd? {
        rule == .official ? officialDiversity : diversity
    }
}

/// One row of the table: a method setting one attribute to one value.
public struct EvaluationRow: Codable, Sendable, Equatable {
    public var method: String
    public var attribute: String
    /// The target value (1 or 0).
    public var value: Int
    public var styles: Int
    /// Inputs whose source value differs from the target: the figures of the table.
    public var flips: SubsetFigures
    /// Inputs that already had the target value, reported apart.
    public var noOps: SubsetFigures
    /// Fréchet distance over all edits of the row (flips and no-ops).
    public var realism: MeanStd?
    /// Any repeat's realism figure was flagged as biased (too few images).
    public var realismBiased: Bool
    public var realismEditedImages: Int?
    public var realismReferenceImages: Int?

    enum CodingKeys: String, CodingKey {
        case method, attribute, value, styles, flips, realism
        case noOps = "no_ops"
        case realismBiased = "realism_biased"
        case realismEditedImages = "realism_edited_images"
        case realismReferenceImages = "realism_reference_images"
    }
}

/// The whole report (`report.json`).
public struct EvaluationReport: Codable, Sendable {
    public var format = "isfgan-eval"
    public var version = 1
    public var settings: EvaluationSettings
    /// Files and networks that produced the numbers: paths, SHA-256 checksums, names.
    public var inputs: [String: String]
    /// What the content and diversity distances are.
    public var perceptual: String
    /// What the realism figure is, in words (never "FID": no Inception network here).
    public var realism: String
    public var rows: [EvaluationRow]
    /// Every cell as measured (per repeat).
    public var cells: [EvaluationCell]
    /// Wall-clock seconds of this run (cells reused from an earlier run cost nothing).
    public var seconds: Double
    public var notes: [String]

    /// Aggregates cells into rows (method, attribute, value order of first appearance).
    public init(
        settings: EvaluationSettings, inputs: [String: String], perceptual: String,
        realism: String, cells: [EvaluationCell], seconds: Double
    ) {
        self.settings = settings
        self.inputs = inputs
        self.perceptual = perceptual
        self.realism = realism
        self.cells = cells
        self.seconds = seconds
        var keys: [String] = []
        var groups: [String: [EvaluationCell]] = [:]
        for c in cells {
            let k = "\(c.method)|\(c.attribute)|\(c.value)"
            if groups[k] == nil { keys.append(k) }
            groups[k, default: []].append(c)
        }
        rows = keys.map { k in
            let g = groups[k]!
            let r = g.compactMap(\.realism)
            return EvaluationRow(
                method: g[0].method, attribute: g[0].attribute, value: g[0].value,
                styles: g[0].styles, flips: SubsetFigures(g.map(\.flips)),
                noOps: SubsetFigures(g.map(\.noOps)),
                realism: MeanStd(r.map(\.frechetDistance)),
                realismBiased: r.contains { $0.biased },
                realismEditedImages: r.first?.editedImages,
                realismReferenceImages: r.first?.referenceImages)
        }
        var notes: [String] = []
        if rows.contains(where: { $0.styles == 1 }) {
            notes.append(
                "diversity is 0 for methods with one output per input (linear): not measured, "
                    + "zero by construction")
        }
        if rows.contains(where: \.realismBiased) {
            notes.append(
                "realism marked * used fewer images than twice the feature count: the "
                    + "covariance estimate is poor and the distance biased upwards")
        }
        if settings.diversityPairs == .official {
            notes.append(
                "diversity follows the official script's pair rule (i in 0..K-2, j in i..K-1, "
                    + "self-pairs included): (K-1)K/2 / ((K-1)K/2 + K-1) of the true pair mean")
        }
        self.notes = notes
    }

    enum CodingKeys: String, CodingKey {
        case format, version, settings, inputs, perceptual, realism, rows, cells, seconds, notes
    }

    // MARK: Text

    static func figure(_ m: MeanStd?, _ format: String, showStd: Bool) -> String {
        guard let m else { return "–" }
        let v = String(format: format, m.mean)
        return showStd && m.count > 1 ? v + "±" + String(format: format, m.std) : v
    }

    /// The terminal table: rows method × attribute × target, figures over flips.
    public func table() -> String {
        let std = settings.repeats > 1
        let header = [
            "method", "attribute", "target", "flips", "accuracy", "preservation", "content",
            "diversity", "realism (FD)",
        ]
        var lines: [[String]] = [header]
        for r in rows {
            let diversity: String
            if r.styles == 1 {
                diversity = "0 (1 output)"
            } else {
                diversity = Self.figure(
                    r.flips.diversity(settings.diversityPairs), "%.4f", showStd: std)
            }
            var realismText = Self.figure(r.realism, "%.2f", showStd: std)
            if r.realismBiased && r.realism != nil { realismText += "*" }
            lines.append([
                r.method, r.attribute, "\(r.value)", "\(r.flips.inputs)",
                Self.figure(r.flips.accuracy, "%.3f", showStd: std),
                Self.figure(r.flips.preservation, "%.3f", showStd: std),
                Self.figure(r.flips.content, "%.4f", showStd: std), diversity, realismText,
            ])
        }
        let widths = header.indices.map { c in lines.map { $0[c].count }.max()! }
        var out = lines.map { row in
            row.enumerated().map { c, text in
                text.padding(toLength: widths[c], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        out.insert(String(repeating: "-", count: widths.reduce(0, +) + 2 * 8), at: 1)
        out.append("")
        out.append(
            "accuracy, preservation, content and diversity over flips (inputs whose source "
                + "value differs from the target"
                + (std ? ", counted over all repeats" : "") + "; no-ops are in report.json)")
        out.append("content and diversity: \(perceptual) distance; realism: \(realism)")
        if std { out.append("mean±std over \(settings.repeats) repeats") }
        out += notes
        return out.joined(separator: "\n")
    }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    // MARK: Chart

    /// An SVG scatter chart: accuracy over flips (y) against content distance (x), one
    /// point per row, one colour per method, labelled attribute→target.
    public func svg() -> String {
        let (w, h) = (640.0, 440.0)
        let (left, right, top, bottom) = (70.0, 170.0, 40.0, 60.0)
        let points = rows.compactMap { r -> (EvaluationRow, Double, Double)? in
            guard let x = r.flips.content?.mean, let y = r.flips.accuracy?.mean else {
                return nil
            }
            return (r, x, y)
        }
        let xMax = max(1e-3, (points.map(\.1).max() ?? 0) * 1.15)
        func px(_ x: Double) -> Double { left + x / xMax * (w - left - right) }
        func py(_ y: Double) -> Double { top + (1 - y) * (h - top - bottom) }
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
        var methods: [String] = []
        for r in rows where !methods.contains(r.method) { methods.append(r.method) }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(
                of: "<", with: "&lt;")
        }
        var s = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" "
                + "font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(Int(w / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
                + "Attribute accuracy against content distance (flips)</text>",
        ]
        // Axes and ticks.
        let (x0, x1, y0, y1) = (px(0), px(xMax), py(0), py(1))
        s.append(
            "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x1)\" y2=\"\(y0)\" stroke=\"black\"/>")
        s.append(
            "<line x1=\"\(x0)\" y1=\"\(y0)\" x2=\"\(x0)\" y2=\"\(y1)\" stroke=\"black\"/>")
        for k in 0...5 {
            let y = Double(k) / 5
            s.append(
                "<line x1=\"\(x0 - 4)\" y1=\"\(py(y))\" x2=\"\(x1)\" y2=\"\(py(y))\" "
                    + "stroke=\"#ddd\"/>")
            s.append(
                "<text x=\"\(x0 - 8)\" y=\"\(py(y) + 4)\" text-anchor=\"end\">"
                    + String(format: "%.1f", y) + "</text>")
            let x = xMax * Double(k) / 5
            s.append(
                "<text x=\"\(px(x))\" y=\"\(y0 + 18)\" text-anchor=\"middle\">"
                    + String(format: "%.3f", x) + "</text>")
        }
        s.append(
            "<text x=\"\((x0 + x1) / 2)\" y=\"\(h - 20)\" text-anchor=\"middle\">"
                + "content distance (\(esc(perceptual)), lower keeps more)</text>")
        s.append(
            "<text x=\"18\" y=\"\((y0 + y1) / 2)\" text-anchor=\"middle\" "
                + "transform=\"rotate(-90 18 \((y0 + y1) / 2))\">attribute accuracy</text>")
        for (r, x, y) in points {
            let colour = palette[(methods.firstIndex(of: r.method) ?? 0) % palette.count]
            s.append(
                "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"5\" fill=\"\(colour)\"/>")
            s.append(
                "<text x=\"\(px(x) + 7)\" y=\"\(py(y) - 6)\" fill=\"\(colour)\">"
                    + "\(esc(r.attribute))→\(r.value)</text>")
        }
        for (i, m) in methods.enumerated() {
            let y = top + 20 * Double(i)
            let colour = palette[i % palette.count]
            s.append(
                "<circle cx=\"\(w - right + 30)\" cy=\"\(y)\" r=\"5\" fill=\"\(colour)\"/>")
            s.append("<text x=\"\(w - right + 42)\" y=\"\(y + 4)\">\(esc(m))</text>")
        }
        s.append("</svg>")
        return s.joined(separator: "\n") + "\n"
    }
}
