import Formats
import Foundation
import Models
import TensorCore

// Editing with an implicit style function: w' = F(w, z, d) for several styles z per
// source code, optional copying back of source rows, and batched rendering. The ISF runs
// once per input on all of that input's styles; the generator runs on batches of codes.

/// The kinds of generator the commands can load; new kinds are added here and in
/// ``GeneratorLoader/load(kind:url:key:warn:)``.
public enum GeneratorKind: String, CaseIterable, Sendable {
    /// Read the kind off the checkpoint's keys.
    case auto
    /// A rosinality StyleGAN2 checkpoint (`g_ema`, or a bare state dict).
    case stylegan2
    /// A DCGAN generator state dict (`main.N.*`, as `gan-face-generate`'s `weights.tar`).
    case dcgan
}

/// The one place where the commands load a generator.
public enum GeneratorLoader {
    /// Loads a generator named on the command line: `dcgan` is the fetched DCGAN face
    /// generator (see `scripts/fetch-models`); anything else is a file path.
    public static func load(
        spec: String, kind: GeneratorKind = .auto, key: String? = nil,
        warn: (String) -> Void = { _ in }
    ) throws -> (generator: any ImageGenerator, url: URL) {
        if spec == "dcgan" {
            let url = try ModelStore().locate(.dcganFace)
            return (try load(kind: .dcgan, url: url, key: key, warn: warn), url)
        }
        let url = URL(fileURLWithPath: spec)
        return (try load(kind: kind, url: url, key: key, warn: warn), url)
    }

    /// Loads the generator of kind `kind` from `url` (`key`: the checkpoint entry).
    ///
    /// - Throws: the loader's `FormatError`, `ModelError` or `StateDictError`.
    public static func load(
        kind: GeneratorKind = .auto, url: URL, key: String? = nil,
        warn: (String) -> Void = { _ in }
    ) throws -> any ImageGenerator {
        switch kind {
        case .stylegan2:
            return try GeneratorFile.loadStyleGAN2(url, key: key, warn: warn)
        case .dcgan:
            return try DCGANGenerator.load(contentsOf: url)
        case .auto:
            let file = try TorchCheckpoint(contentsOf: url)
            let top = file.root.dict
            // Not a StyleGAN2 layout (no generator entry, no bare generator keys): DCGAN,
            // whose loader explains what it expected when this is not one either.
            if top?[key ?? "g_ema"] == nil, top?["input.input"] == nil {
                return try DCGANGenerator.load(contentsOf: url)
            }
            return try GeneratorFile.loadStyleGAN2(url, key: key, warn: warn)
        }
    }
}

/// An ISF as loaded for editing, with what its file says about it.
public struct LoadedISF {
    public var network: ISFNetwork
    /// Names recorded in the project's own file; nil for official checkpoints.
    public var recordedAttributes: [String]?
    /// The SHA-256 of the generator the ISF was trained with, when recorded.
    public var generatorSHA256: String?

    /// Reads the project's safetensors ISF file or an official `NNNNNN_nets_ema.ckpt` /
    /// `_nets.ckpt` (its `mapnet` entry). `residual` is the flag the keys cannot show
    /// (official checkpoints only; the project's files record it).
    public static func load(_ url: URL, residual: Bool = false) throws -> LoadedISF {
        if ISFFile.looksLikeSafetensors(url) {
            let file = try ISFFile.read(url)
            return LoadedISF(
                network: file.network, recordedAttributes: file.attributes,
                generatorSHA256: file.generatorSHA256)
        }
        let network = try ISFNetwork.load(checkpoint: url, residual: residual)
        return LoadedISF(network: network, recordedAttributes: nil, generatorSHA256: nil)
    }
}

/// The result of editing N inputs with S styles each.
public struct EditResult {
    /// Edited codes `[N, S, layers, width]` (after copying back kept rows).
    public var codes: Tensor
    /// Images `[N, 1 + S, 3, H, W]`, unclamped: the source image, then one per style.
    public var images: Tensor
}

/// Edits codes of a generator with an ISF and renders the results.
///
/// ```
/// for each input i:   w'_is = F(w_i, z_is, d_i)        // one ISF batch of S styles
///                     w'_is[kept rows] = w_i[kept rows]
/// images = G(w_i), G(w'_i1), …, G(w'_iS)              // generator batches of `batch`
/// ```
public final class Editor {
    public let generator: any ImageGenerator
    public let isf: ISFNetwork

    /// Pairs a generator with an ISF.
    ///
    /// - Throws: `EditError` when the ISF's codes do not fit the generator's (rows and
    ///   width), naming both shapes.
    public init(generator: any ImageGenerator, isf: ISFNetwork) throws {
        let c = isf.config
        let (layers, width) = (generator.codeLayers, generator.codeWidth)
        let fits =
            c.codeWidth == width
            && (c.latentType == .w || c.layers == layers)
        guard fits else {
            let isfShape = c.latentType == .wp ? "\(c.layers) × \(c.codeWidth)" : "\(c.codeWidth)"
            throw EditError(
                "the ISF edits codes of \(isfShape) (\(c)), the generator's codes are "
                    + "\(layers) × \(width) (\(generator.summary))")
        }
        self.generator = generator
        self.isf = isf
    }

    /// Edits one source code with several styles in one ISF batch.
    ///
    /// - Parameters:
    ///   - source: the code `[layers, width]`.
    ///   - z: random vectors `[S, rnd]`.
    ///   - target: the target attributes `[D]` (or `[S, D]`, one per style).
    /// - Returns: edited codes `[S, layers, width]`.
    /// - Throws: `EditError` for shapes that do not fit, including a single-code ISF given a
    ///   W+ code whose rows differ.
    public func editCodes(source: Tensor, z: Tensor, target: Tensor) throws -> Tensor {
        let (layers, width) = (generator.codeLayers, generator.codeWidth)
        guard source.shape == [layers, width] else {
            throw EditError(
                "source code has shape \(describe(source.shape)), expected "
                    + describe([layers, width]))
        }
        let s = z.shape.first ?? 0
        let targets =
            target.rank == 1 ? target.unsqueezed(0).expanded(to: [s, target.count]) : target
        return try GradMode.withoutGradients {
            let c = isf.config
            if c.latentType == .wp {
                let codes = source.unsqueezed(0).expanded(to: [s, layers, width])  // [S, L, C]
                return try isf(codes: codes.contiguous(), z: z, targets: targets.contiguous())
            }
            // A single-code ISF edits w; a W+ code qualifies only when its rows agree.
            let w = source.slice(0, 0..<1)  // [1, C]
            if layers > 1 {
                let spread = (source - w).abs().max().item
                guard spread == 0 else {
                    throw EditError(
                        "this ISF edits one w per input, but the code's \(layers) rows differ "
                            + "(by up to \(spread)); give w codes (--space w)")
                }
            }
            let codes = w.expanded(to: [s, width]).contiguous()  // [S, C]
            let out = try isf(codes: codes, z: z, targets: targets.contiguous())  // [S, C]
            return out.unsqueezed(1).expanded(to: [s, layers, width]).contiguous()
        }
    }

    /// Copies `rows` of `source` `[L, C]` into every code of `edited` `[S, L, C]`.
    public static func keepRows(_ rows: [Int], of source: Tensor, in edited: Tensor) -> Tensor {
        guard !rows.isEmpty else { return edited }
        let (s, l, c) = (edited.shape[0], edited.shape[1], edited.shape[2])
        // A fresh tensor: `edited` may be a view whose storage others hold.
        let copy = Tensor(shape: edited.shape, edited.contiguous().scalars)  // [S, L, C]
        let src = source.contiguous()
        for k in 0..<s {
            for r in rows where r < l {
                (copy.pointer + (k * l + r) * c).update(from: src.pointer + r * c, count: c)
            }
        }
        return copy
    }

    /// Renders codes `[M, layers, width]` in batches of `batch`; noise seeds for
    /// `.random` advance with the first code's index, so results do not depend on `batch`.
    public func render(
        _ codes: Tensor, batch: Int, noise: NoiseMode, progress: (Int, Int) -> Void = { _, _ in }
    ) -> Tensor {
        precondition(batch >= 1, "render: batch must be at least 1")
        let m = codes.shape[0]
        var parts: [Tensor] = []
        for start in stride(from: 0, to: m, by: batch) {
            let end = min(m, start + batch)
            progress(start, m)
            let mode: NoiseMode
            if case .random(let seed) = noise {
                mode = .random(seed: seed &+ UInt64(start))
            } else {
                mode = noise
            }
            parts.append(
                GradMode.withoutGradients {
                    generator.render(codes.slice(0, start..<end).contiguous(), noise: mode)
                })
        }
        progress(m, m)
        return Tensor.concat(parts)  // [M, 3, H, W]
    }

    /// Edits N inputs with S styles each and renders sources and edits.
    ///
    /// - Parameters:
    ///   - sources: codes `[N, layers, width]`.
    ///   - targets: target attributes `[N, D]`.
    ///   - z: random vectors `[N, S, rnd]`.
    ///   - keptRows: per input, the rows copied back from its source (empty: none).
    ///   - batch: codes per generator run.
    /// - Throws: `EditError` for shapes that do not fit.
    public func edit(
        sources: Tensor, targets: Tensor, z: Tensor, keptRows: [[Int]], batch: Int,
        noise: NoiseMode, progress: (String) -> Void = { _ in }
    ) throws -> EditResult {
        let n = sources.shape[0]
        let (layers, width) = (generator.codeLayers, generator.codeWidth)
        let rnd = isf.config.randomWidth
        guard sources.shape == [n, layers, width] else {
            throw EditError(
                "codes have shape \(describe(sources.shape)), expected "
                    + describe([n, layers, width]))
        }
        guard z.rank == 3, z.shape[0] == n, z.shape[2] == rnd, z.shape[1] >= 1 else {
            throw EditError(
                "random vectors have shape \(describe(z.shape)), expected [\(n), styles, \(rnd)]")
        }
        guard targets.shape == [n, isf.config.attributes] else {
            throw EditError(
                "targets have shape \(describe(targets.shape)), expected "
                    + describe([n, isf.config.attributes]))
        }
        precondition(keptRows.count == n, "edit: one list of kept rows per input")
        let s = z.shape[1]

        var edited: [Tensor] = []
        for i in 0..<n {
            let source = sources.slice(0, i..<(i + 1)).reshaped([layers, width])
            let codes = try editCodes(
                source: source, z: z.slice(0, i..<(i + 1)).reshaped([s, rnd]),
                target: targets.slice(0, i..<(i + 1)).reshaped([targets.shape[1]]))
            edited.append(Self.keepRows(keptRows[i], of: source, in: codes))  // [S, L, C]
        }
        let codes = Tensor.stack(edited)  // [N, S, L, C]

        // Sources and edits in one stream: [N·(1+S), L, C], input by input.
        let all = Tensor.concat(
            (0..<n).flatMap { i in [sources.slice(0, i..<(i + 1)), edited[i]] })
        let images = render(all, batch: batch, noise: noise) { done, total in
            progress("rendering \(done) of \(total)")
        }
        let (c, h, w) = (images.shape[1], images.shape[2], images.shape[3])
        return EditResult(codes: codes, images: images.reshaped([n, 1 + s, c, h, w]))
    }

    /// The codes of an interpolation between the positive (attribute = 1) and the negative
    /// (attribute = 0) edit of one source with one style:
    /// `w(α) = (1 − α)·F(w, z, d⁺) + α·F(w, z, d⁻)`, α = k/steps for k in 0..<steps
    /// (0, 0.05, …, 0.95 for 20 steps, as in the paper's figures).
    ///
    /// - Parameters:
    ///   - source: `[layers, width]`; labels: the source attributes `[D]`; z: `[rnd]`.
    /// - Returns: `[steps, layers, width]`.
    public func interpolation(
        source: Tensor, labels: Tensor, attribute: Int, z: Tensor, steps: Int,
        keptRows: [Int] = []
    ) throws -> Tensor {
        precondition(steps >= 1, "interpolation: steps must be at least 1")
        var positive = labels.scalars
        var negative = labels.scalars
        positive[attribute] = 1
        negative[attribute] = 0
        let d = Tensor(shape: [2, labels.count], positive + negative)  // [2, D]
        let zz = z.reshaped([1, z.count]).expanded(to: [2, z.count]).contiguous()  // [2, rnd]
        let ends = Self.keepRows(
            keptRows, of: source, in: try editCodes(source: source, z: zz, target: d))
        let (pos, neg) = (ends.slice(0, 0..<1), ends.slice(0, 1..<2))  // [1, L, C] each
        let frames = (0..<steps).map { k -> Tensor in
            let alpha = Float(k) / Float(steps)
            return pos * (1 - alpha) + neg * alpha
        }
        return Tensor.concat(frames)  // [steps, L, C]
    }
}

// MARK: - Inputs

/// Reading latent files for any ``ImageGenerator``.
public enum LatentFile {
    /// Codes `[N, layers, width]` from an array of shape `(N, L, D)`, `(N, 1, L, D)`,
    /// `(L, D)` (one code), or `(N, D)` with `space` `w` (repeated over the rows) or `z`
    /// (mapped, for StyleGAN2; the code itself for a single-code generator).
    ///
    /// - Throws: `EditError` naming `file`, its shape and the shapes this generator takes.
    public static func codes(
        _ raw: Tensor, space: String?, generator g: any ImageGenerator, file: String
    ) throws -> Tensor {
        let (l, d) = (g.codeLayers, g.codeWidth)
        let shape = describe(raw.shape)
        let expected =
            "(N, \(l), \(d)), (N, 1, \(l), \(d)) or (\(l), \(d)) for W+ codes, (N, \(d)) "
            + "with --space w or z"
        func refuse() -> EditError {
            EditError("\(file) has shape \(shape); this generator takes \(expected)")
        }
        if let space, !["w", "z", "wplus"].contains(space) {
            throw EditError("--space must be w, z or wplus, got '\(space)'")
        }
        guard raw.count > 0 else {
            throw EditError("\(file) has shape \(shape): it holds no codes")
        }
        // A NaN code renders as a plausible-looking image of NaN pixels clamped to black.
        if let bad = raw.contiguous().scalars.firstIndex(where: { !$0.isFinite }) {
            throw EditError(
                "\(file) holds a value that is not finite (NaN or infinity) at flat index \(bad)")
        }
        switch raw.rank {
        case 2 where space == "w" || space == "z" || (l == 1 && space == nil):
            guard raw.shape[1] == d else { throw refuse() }
            let n = raw.shape[0]
            if space == "z", let sg = g as? StyleGAN2Generator {
                return GradMode.withoutGradients { sg.broadcast(sg.map(raw)) }
            }
            return raw.unsqueezed(1).expanded(to: [n, l, d]).contiguous()
        case 2:
            guard raw.shape == [l, d] else {
                if raw.shape[1] == d {
                    throw EditError(
                        "\(file) has shape \(shape), which reads as \(raw.shape[0]) w or z "
                            + "codes: say which with --space w or --space z (this generator "
                            + "takes \(expected))")
                }
                throw refuse()
            }
            return raw.reshaped([1, l, d])
        case 3:
            guard raw.shape[1] == l, raw.shape[2] == d, space != "w", space != "z" else {
                throw refuse()
            }
            return raw
        case 4 where l == 1 && raw.shape[1] == d && raw.shape[2] == 1 && raw.shape[3] == 1:
            // (N, D, 1, 1): how DCGAN code feeds its z.
            return raw.reshaped([raw.shape[0], 1, d])
        case 4:
            guard raw.shape[1] == 1, raw.shape[2] == l, raw.shape[3] == d,
                space != "w", space != "z"
            else { throw refuse() }
            return raw.reshaped([raw.shape[0], l, d])
        default:
            throw refuse()
        }
    }

    /// The random vectors `[N, S, rnd]` from a file of shape `(N, S, rnd)` or `(S, rnd)`
    /// (used for every input).
    ///
    /// - Throws: `EditError` naming the file and both shapes.
    public static func randomVectors(
        _ raw: Tensor, inputs n: Int, styles s: Int?, width rnd: Int, file: String
    ) throws -> Tensor {
        let want =
            "(\(n), \(s.map(String.init) ?? "S"), \(rnd)) or "
            + "(\(s.map(String.init) ?? "S"), \(rnd))"
        func refuse() -> EditError {
            EditError("\(file) has shape \(describe(raw.shape)); --z takes \(want)")
        }
        switch raw.rank {
        case 3:
            guard raw.shape[0] == n, raw.shape[2] == rnd, raw.shape[1] >= 1,
                s == nil || raw.shape[1] == s
            else { throw refuse() }
            return raw
        case 2:
            guard raw.shape[1] == rnd, raw.shape[0] >= 1, s == nil || raw.shape[0] == s else {
                throw refuse()
            }
            return raw.unsqueezed(0).expanded(to: [n, raw.shape[0], rnd]).contiguous()
        default:
            throw refuse()
        }
    }
}
