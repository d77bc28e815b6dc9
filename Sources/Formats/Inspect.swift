import Foundation
import TensorCore

/// What `isfgan inspect FILE` reports: the format, the top-level entries with tensor and
/// parameter counts, every tensor's key, shape and dtype, and the architecture recognised
/// from the keys. `text` is for people, `json()` for machines.
public struct FileSummary: Codable, Sendable {
    /// One tensor.
    public struct TensorInfo: Codable, Sendable {
        public let key: String
        public let shape: [Int]
        public let dtype: String
        public let elements: Int
    }

    /// A network recognised from its keys.
    public struct Architecture: Codable, Sendable {
        /// e.g. "StyleGAN2 generator (rosinality)".
        public let kind: String
        /// Properties read off the keys, in a fixed order (name, value).
        public let properties: [[String]]
        /// One line: the kind and its properties.
        public var summary: String {
            ([kind] + properties.map { "\($0[0]) \($0[1])" }).joined(separator: ", ")
        }
    }

    /// One top-level entry of the file.
    public struct Entry: Codable, Sendable {
        /// The key (empty for a file that is one flat state dict).
        public let name: String
        /// `state dict`, `tensor`, `dict`, `int`, …
        public let kind: String
        /// A short rendering of a non-tensor value (`42`, `'cat2dog'`, `dict with 3 keys`).
        public let value: String?
        public let tensorCount: Int
        /// Elements of all tensors in the entry (parameters and buffers).
        public let parameters: Int
        public let architecture: Architecture?
        public let tensors: [TensorInfo]
    }

    public let path: String
    public let format: String
    public let bytes: Int
    public let metadata: [String: String]
    public let entries: [Entry]

    /// The summary as indented JSON.
    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The summary as text: header, one line per entry, then every key.
    public var text: String {
        func grouped(_ n: Int) -> String {
            let s = String(n)
            var out = ""
            for (i, c) in s.reversed().enumerated() {
                if i > 0 && i % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return String(out.reversed())
        }
        var lines = ["file: \(path)", "format: \(format) (\(grouped(bytes)) bytes)"]
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            lines.append("metadata: \(k) = \(v)")
        }
        lines.append("entries:")
        for e in entries {
            var line = "  " + (e.name.isEmpty ? "(top level)" : e.name) + ": " + e.kind
            if let v = e.value { line += " \(v)" }
            if e.tensorCount > 0 {
                line +=
                    ", \(e.tensorCount) tensor\(e.tensorCount == 1 ? "" : "s"), "
                    + "\(grouped(e.parameters)) parameters"
            }
            lines.append(line)
            if let a = e.architecture { lines.append("    architecture: \(a.summary)") }
        }
        let all = entries.flatMap { $0.tensors }
        if !all.isEmpty {
            lines.append("tensors:")
            let width = min(all.map(\.key.count).max() ?? 0, 60)
            for t in all {
                let pad = String(repeating: " ", count: max(0, width - t.key.count))
                lines.append("  \(t.key)\(pad)  \(describe(t.shape))  \(t.dtype)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// Reads any file isfgan understands and summarises it (see `FileSummary`).
public enum Inspector {
    /// Summarises the checkpoint, safetensors, npy/npz or image at `url`.
    public static func inspect(_ url: URL) throws -> FileSummary {
        let buffer = try ByteBuffer(contentsOf: url)
        let b = buffer.bytes
        let path = url.path
        func magic(_ m: [UInt8]) -> Bool { b.count >= m.count && Array(b.prefix(m.count)) == m }
        if magic([0x50, 0x4B, 0x03, 0x04]) || magic([0x50, 0x4B, 0x05, 0x06]) {
            let zip = try ZipArchive(buffer)
            if zip.entries.contains(where: { $0.name.hasSuffix("data.pkl") }) {
                return summarise(try TorchCheckpoint(buffer), path: path, bytes: b.count)
            }
            var tensors: [TensorInfo] = []
            for e in zip.entries where e.name.hasSuffix(".npy") {
                let a = try NumPy.parse(try zip.contents(of: e))
                tensors.append(info(String(e.name.dropLast(4)), a.shape, a.dtype))
            }
            return FileSummary(
                path: path, format: "NumPy npz", bytes: b.count, metadata: [:],
                entries: [entry("", "arrays", nil, tensors)])
        }
        if magic(NumPy.magic) {
            let a = try NumPy.parse(ByteSlice(buffer))
            return FileSummary(
                path: path, format: "NumPy npy", bytes: b.count, metadata: [:],
                entries: [entry("", "array", nil, [info("(array)", a.shape, a.dtype)])])
        }
        if b.count >= 2, b[0] == 0x80 {
            return summarise(try TorchCheckpoint(buffer), path: path, bytes: b.count)
        }
        if magic([0x89, 0x50, 0x4E, 0x47]) || magic([0xFF, 0xD8, 0xFF]) {
            let image = try ImageIO.read(url)
            let format = b[0] == 0x89 ? "PNG image" : "JPEG image"
            return FileSummary(
                path: path, format: format, bytes: b.count, metadata: [:],
                entries: [
                    FileSummary.Entry(
                        name: "", kind: "image",
                        value: "\(image.width)x\(image.height), \(image.channels) channels",
                        tensorCount: 0, parameters: 0, architecture: nil, tensors: [])
                ])
        }
        if b.count >= 9, b[8] == 0x7B {
            let file = try SafetensorsFile(buffer)
            let tensors = file.entries.map { info($0.name, $0.shape, $0.dtype) }
            return FileSummary(
                path: path, format: "safetensors", bytes: b.count, metadata: file.metadata,
                entries: [entry("", "state dict", nil, tensors)])
        }
        throw FormatError(
            b.isEmpty ? .truncated : .badMagic, file: path,
            b.isEmpty
                ? "the file is empty"
                : "not a format isfgan reads (PyTorch checkpoint, safetensors, npy/npz, PNG, "
                    + "JPEG)")
    }

    typealias TensorInfo = FileSummary.TensorInfo

    static func info(_ key: String, _ shape: [Int], _ dtype: DType) -> TensorInfo {
        TensorInfo(key: key, shape: shape, dtype: dtype.rawValue, elements: Shape.count(shape))
    }

    static func entry(_ name: String, _ kind: String, _ value: String?, _ t: [TensorInfo])
        -> FileSummary.Entry
    {
        FileSummary.Entry(
            name: name, kind: kind, value: value, tensorCount: t.count,
            parameters: t.reduce(0) { $0 + $1.elements },
            architecture: recognise(t.map { ($0.key, $0.shape) }), tensors: t)
    }

    static func summarise(_ ckpt: TorchCheckpoint, path: String, bytes: Int) -> FileSummary {
        var entries: [FileSummary.Entry] = []
        let format = ckpt.format.rawValue
        guard let root = ckpt.root.dict else {
            let t = tensors(in: ckpt.root, prefix: "")
            entries.append(entry("", ckpt.root.kindName, nil, t))
            return FileSummary(
                path: path, format: format, bytes: bytes, metadata: [:],
                entries: entries)
        }
        // A flat state dict at the top level is one entry.
        if root.values.allSatisfy({ if case .tensor = $0 { return true } else { return false } }) {
            entries.append(entry("", "state dict", nil, tensors(in: ckpt.root, prefix: "")))
            return FileSummary(
                path: path, format: format, bytes: bytes, metadata: [:],
                entries: entries)
        }
        for (key, value) in root.entries {
            let t = tensors(in: value, prefix: key)
            // Key paths inside the entry, for recognising the architecture.
            let local = t.map {
                TensorInfo(
                    key: String($0.key.dropFirst(key.count + 1)), shape: $0.shape, dtype: $0.dtype,
                    elements: $0.elements)
            }
            var e = entry(key, kind(of: value), short(value), t)
            e = FileSummary.Entry(
                name: e.name, kind: e.kind, value: e.value, tensorCount: e.tensorCount,
                parameters: e.parameters,
                architecture: recognise(local.map { ($0.key, $0.shape) }), tensors: t)
            entries.append(e)
        }
        return FileSummary(
            path: path, format: format, bytes: bytes, metadata: [:],
            entries: entries)
    }

    static func kind(of v: CheckpointValue) -> String {
        if let d = v.dict, d.count > 0,
            d.values.allSatisfy({ if case .tensor = $0 { return true } else { return false } })
        {
            return "state dict"
        }
        return v.kindName
    }

    /// A short rendering of a non-tensor value.
    static func short(_ v: CheckpointValue) -> String? {
        switch v {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let f): return String(f)
        case .string(let s): return "'" + String(s.prefix(60)) + "'"
        case .bytes(let b): return "\(b.count) bytes"
        case .list(let l): return "of \(l.count) items"
        case .tuple(let t): return "of \(t.count) items"
        case .dict(let d): return "with \(d.count) keys"
        case .tensor(let t): return describe(t.tensor.shape) + " " + t.dtype.rawValue
        case .other(let s): return s
        }
    }

    /// Every tensor under `v`, with dotted key paths.
    static func tensors(in v: CheckpointValue, prefix: String) -> [TensorInfo] {
        func join(_ k: String) -> String { prefix.isEmpty ? k : prefix + "." + k }
        switch v {
        case .tensor(let t):
            return [info(prefix.isEmpty ? "(tensor)" : prefix, t.tensor.shape, t.dtype)]
        case .dict(let d):
            return d.entries.flatMap { tensors(in: $0.value, prefix: join($0.key)) }
        case .list(let items), .tuple(let items):
            return items.enumerated().flatMap {
                tensors(in: $0.element, prefix: join("\($0.offset)"))
            }
        default:
            return []
        }
    }

    // MARK: - Recognising architectures from keys

    /// The architecture a set of state-dict keys belongs to, if recognised.
    public static func recognise(_ keys: [(String, [Int])]) -> FileSummary.Architecture? {
        var shapes: [String: [Int]] = [:]
        for (k, s) in keys { shapes[k] = s }
        if shapes["input.input"] != nil, shapes["style.1.weight"] != nil,
            shapes["conv1.conv.weight"] != nil
        {
            return styleGAN2(shapes)
        }
        if shapes["w_net.z_net.shared.0.weight"] != nil { return mapnet(shapes) }
        if shapes["main.0.weight"] != nil, shapes["main.1.running_mean"] != nil,
            shapes["main.12.weight"] != nil
        {
            return dcgan(shapes)
        }
        if shapes["main.0.weight"] != nil,
            shapes["out_cls.3.weight"] != nil
                || shapes.keys.contains(where: { $0.hasPrefix("out_cls.") })
        {
            return discriminator(shapes)
        }
        if shapes["lin0.model.1.weight"] != nil { return lpips(shapes) }
        return nil
    }

    /// Indices `i` of keys matching `prefix` + i + `suffix`.
    static func indices(_ shapes: [String: [Int]], _ prefix: String, _ suffix: String) -> [Int] {
        shapes.keys.compactMap { k -> Int? in
            guard k.hasPrefix(prefix), k.hasSuffix(suffix),
                k.count > prefix.count + suffix.count
            else { return nil }
            return Int(k.dropFirst(prefix.count).dropLast(suffix.count))
        }.sorted()
    }

    static func styleGAN2(_ s: [String: [Int]]) -> FileSummary.Architecture {
        let mapping = indices(s, "style.", ".weight").count
        let style = s["style.1.weight"].map { $0.count == 2 ? $0[1] : 0 } ?? 0
        let convs = indices(s, "convs.", ".conv.weight").count
        let logSize = convs / 2 + 2
        let size = 1 << logSize
        // Output channels per resolution: input for 4 px, then the first conv of each block.
        var channels: [(Int, Int)] = []
        if let c = s["input.input"], c.count == 4 { channels.append((4, c[1])) }
        for i in 3...max(3, logSize) {
            if let w = s["convs.\(2 * (i - 3)).conv.weight"], w.count == 5 {
                channels.append((1 << i, w[1]))
            }
        }
        var properties = [
            ["size", "\(size) px"], ["style", "\(style)"], ["mapping layers", "\(mapping)"],
            ["latents", "\(logSize * 2 - 2)"],
        ]
        // rosinality's table: 512 up to 32 px, then 256·m, 128·m, 64·m, 32·m, 16·m.
        let base = [64: 256, 128: 128, 256: 64, 512: 32, 1024: 16]
        var multiplier: Int?
        if let (r, c) = channels.first(where: { $0.0 >= 64 }), let b = base[r], c % b == 0 {
            multiplier = c / b
        }
        let standard = channels.allSatisfy { r, c in
            r <= 32 ? c == 512 : multiplier.map { base[r]! * $0 == c } ?? false
        }
        if standard, let m = multiplier {
            properties.append(["channel multiplier", "\(m)"])
        } else if standard && size <= 32 {
            properties.append(["channels", "512 (standard)"])
        } else {
            properties.append([
                "channels", channels.map { "\($0.0):\($0.1)" }.joined(separator: " ") + " (custom)",
            ])
        }
        return .init(kind: "StyleGAN2 generator (rosinality)", properties: properties)
    }

    static func mapnet(_ s: [String: [Int]]) -> FileSummary.Architecture {
        let first = s["w_net.z_net.shared.0.weight"] ?? []
        let layers = Set(
            s.keys.compactMap { k -> Int? in
                guard k.hasPrefix("w_net.z_net.unshared.") else { return nil }
                return Int(k.dropFirst("w_net.z_net.unshared.".count).prefix { $0 != "." })
            }
        ).count
        let norm: String
        if s["w_net.adain.fc.weight"] == nil {
            norm = "none"
        } else if s["w_net.adain.norm.weight"] != nil {
            norm = "adaln"
        } else {
            norm = "adain"
        }
        let preNorm = (s["w_net.fc.0.weight"]?.count ?? 2) == 1 ? 1 : 0
        var properties = [
            ["layers", "\(layers)"], ["latent type", layers > 1 ? "wp" : "w"],
            ["norm type", norm], ["pre-norm", "\(preNorm)"],
        ]
        if first.count == 2 {
            properties.insert(["latent", "\(first[0])"], at: 0)
            properties.append(["noise + domains", "\(first[1])"])
        }
        return .init(kind: "ISF-GAN mapping network", properties: properties)
    }

    static func discriminator(_ s: [String: [Int]]) -> FileSummary.Architecture {
        let blocks = indices(s, "main.", ".conv1.weight")
        let domainHead = indices(s, "out_cls.", ".weight").last.flatMap {
            s["out_cls.\($0).weight"]
        }
        let widths = blocks.compactMap { s["main.\($0).conv2.weight"]?.first }
        var properties = [["image size", "\(1 << (blocks.count + 2)) px"]]
        if let d = domainHead?.first { properties.append(["domains", "\(d)"]) }
        if let w = s["main.0.weight"]?.first { properties.append(["first width", "\(w)"]) }
        if let m = widths.max() { properties.append(["max conv dim", "\(m)"]) }
        properties.append(["residual blocks", "\(blocks.count)"])
        return .init(kind: "ISF-GAN / StarGAN v2 discriminator", properties: properties)
    }

    static func lpips(_ s: [String: [Int]]) -> FileSummary.Architecture {
        let heads = indices(s, "lin", ".model.1.weight").count
        var backbone = "unknown"
        if let w = s["net.slice1.0.weight"], w.count == 4 {
            backbone = w[2] == 11 ? "alex" : (w[2] == 3 ? "vgg" : "squeeze")
        }
        var properties = [["backbone", backbone], ["heads", "\(heads)"]]
        // Blur-pool filters (`net.sliceK.i.filt`) mark the shift-tolerant variant.
        if s.keys.contains(where: { $0.hasPrefix("net.") && $0.hasSuffix(".filt") }) {
            properties.append(["variant", "shift-tolerant (blur pooling)"])
        }
        return .init(kind: "LPIPS", properties: properties)
    }

    /// PyTorch's DCGAN generator layout (`main.{0,3,6,9,12}.weight` transposed
    /// convolutions with batch norms between), as `gan-face-generate` ships it.
    static func dcgan(_ s: [String: [Int]]) -> FileSummary.Architecture {
        let z = s["main.0.weight"].flatMap { $0.count == 4 ? $0[0] : nil } ?? 0
        let widths = [0, 3, 6, 9].compactMap {
            s["main.\($0).weight"].flatMap { $0.count == 4 ? $0[1] : nil }
        }
        let channels = s["main.12.weight"].flatMap { $0.count == 4 ? $0[1] : nil } ?? 0
        return .init(
            kind: "DCGAN generator",
            properties: [
                ["z", "\(z)"], ["widths", widths.map(String.init).joined(separator: "/")],
                ["image", "\(channels)×64×64"],
            ])
    }
}
