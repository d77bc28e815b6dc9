import Formats
import Foundation
import Layers
import Models
import TensorCore

// Training checkpoints: one safetensors file with everything a resumed run needs.
//
//   mapnet.<official key>                         the live ISF
//   mapnet_ema.<official key>                     its moving average
//   discriminator.<official key>                  the discriminator
//   adam.mapnet.exp_avg.<key>, .exp_avg_sq.<key>  the ISF's Adam moments
//   adam.discriminator.exp_avg.<key>, …           the discriminator's
//
// metadata: format = isfgan-training-checkpoint, format_version, state (JSON: step, Adam
// step counts, sampler and draw streams), settings (JSON), isf_config,
// discriminator_config, attributes, generator_sha256. See docs/FORMATS.md.

/// The non-tensor state of a run at a step boundary.
public struct TrainingState: Codable, Equatable, Sendable {
    /// Iterations done (the next one's 0-based index).
    public var step: Int
    public var isfAdamStep: Int
    public var discriminatorAdamStep: Int
    public var sampler: BatchSampler.State
    public var draws: RandomGenerator
}

public enum TrainingCheckpoint {
    public static let formatName = "isfgan-training-checkpoint"
    public static let formatVersion = 1

    enum Key {
        static let format = "format"
        static let version = "format_version"
        static let state = "state"
        static let settings = "settings"
        static let isfConfig = "isf_config"
        static let discriminatorConfig = "discriminator_config"
        static let attributes = "attributes"
        static let generator = "generator_sha256"
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Writes the trainer's whole state to `url` atomically.
    public static func write(_ t: Trainer, to url: URL) throws {
        var tensors: [(key: String, tensor: Tensor)] = []
        tensors += t.isf.stateDict(prefix: "mapnet")
        tensors += t.average.stateDict(prefix: "mapnet_ema")
        tensors += t.discriminator.stateDict(prefix: Discriminator.checkpointKey)
        tensors += moments(t.isfOptimizer, module: t.isf, name: "mapnet")
        tensors += moments(t.discriminatorOptimizer, module: t.discriminator, name: "discriminator")
        let state = TrainingState(
            step: t.step, isfAdamStep: t.isfOptimizer.step,
            discriminatorAdamStep: t.discriminatorOptimizer.step, sampler: t.sampler.state,
            draws: t.draws)
        let metadata: [String: String] = [
            Key.format: formatName, Key.version: String(formatVersion),
            Key.state: try json(state), Key.settings: t.settings.json(),
            Key.isfConfig: try json(t.isf.config),
            Key.discriminatorConfig: try json(t.discriminator.config),
            Key.attributes: try json(t.settings.attributes),
            Key.generator: t.settings.generatorSHA256,
        ]
        try Safetensors.write(tensors, metadata: metadata, to: url)
    }

    /// The Adam moments under `adam.NAME.exp_avg.KEY` / `exp_avg_sq.KEY`, keyed by the
    /// parameters' state-dict keys (the optimiser's parameters are the module's trainable
    /// ones, in order).
    static func moments(_ adam: Adam, module: Module, name: String) -> [(
        key: String, tensor: Tensor
    )] {
        let keys = trainableKeys(module)
        precondition(keys.count == adam.parameters.count, "moments: parameter lists differ")
        let s = adam.state
        var out: [(key: String, tensor: Tensor)] = []
        for (i, k) in keys.enumerated() {
            let shape = adam.parameters[i].shape
            out.append(("adam.\(name).exp_avg.\(k)", Tensor(shape: shape, s.m[i])))
            out.append(("adam.\(name).exp_avg_sq.\(k)", Tensor(shape: shape, s.v[i])))
        }
        return out
    }

    static func trainableKeys(_ module: Module) -> [String] {
        module.namedParameters().filter { !$0.parameter.isBuffer }.map(\.key)
    }

    /// The settings recorded in a checkpoint, without loading its tensors' values.
    public static func settings(of url: URL) throws -> TrainingSettings {
        let file = try SafetensorsFile(contentsOf: url)
        return try decode(TrainingSettings.self, file.metadata, Key.settings, url)
    }

    static func decode<T: Decodable>(
        _ type: T.Type, _ meta: [String: String], _ key: String, _ url: URL
    ) throws -> T {
        guard let text = meta[key] else {
            throw TrainingError.badCheckpoint(url.path, "metadata '\(key)' is missing")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw TrainingError.badCheckpoint(
                url.path, "metadata '\(key)' does not parse: \(describeDecoding(error))")
        }
    }

    /// Loads only the discriminator of a training checkpoint (or of a run folder's last one)
    /// into `d`: a new run can start from a discriminator whose attribute head another run
    /// has already trained.
    ///
    /// - Throws: `TrainingError` for a file that is not a training checkpoint,
    ///   `StateDictError` when its discriminator does not fit `d`'s settings.
    public static func loadDiscriminator(_ d: Discriminator, from input: URL) throws {
        let url = try TrainingExport.checkpoint(input).url
        let file = try SafetensorsFile(contentsOf: url)
        guard file.metadata[Key.format] == formatName else {
            throw TrainingError.badCheckpoint(
                url.path, "not an isfgan training checkpoint (metadata 'format')")
        }
        _ = try d.load(
            try tensors(in: file, prefix: "discriminator."),
            source: "\(url.path) [discriminator]")
    }

    /// Loads starting weights into `isf` from an isfgan ISF file (e.g. an exported
    /// `final.safetensors` or the shipped editor) or from the averaged ISF of a training
    /// checkpoint (or of a run folder's last one): a new run can continue an editor that
    /// another run trained, with other loss weights.
    ///
    /// - Throws: `TrainingError` for a file that is neither, or whose recorded ISF settings
    ///   differ from `isf`'s (the residual flag leaves no trace in the keys, so the shapes
    ///   alone cannot tell); `StateDictError` when the tensors do not fit.
    public static func loadISF(_ isf: ISFNetwork, from input: URL) throws {
        let url = try TrainingExport.checkpoint(input).url
        let file = try SafetensorsFile(contentsOf: url)
        let meta = file.metadata
        let prefix: String
        switch meta[Key.format] {
        case formatName: prefix = "mapnet_ema."
        case ISFFile.formatName: prefix = ISFFile.keyPrefix
        default:
            throw TrainingError.badCheckpoint(
                url.path,
                "metadata 'format' is \(meta[Key.format].map { "'\($0)'" } ?? "missing"), "
                    + "expected an isfgan ISF file or training checkpoint")
        }
        // Both formats record the config under the same key.
        let recorded = try decode(ISFConfig.self, meta, Key.isfConfig, url)
        guard recorded == isf.config else {
            throw TrainingError.badSettings(
                "the ISF in \(url.path) is \(recorded), but this run's settings make "
                    + "\(isf.config)")
        }
        _ = try isf.load(try tensors(in: file, prefix: prefix), source: url.path)
    }

    /// The tensors of `file` whose names start with `prefix`, keyed without it.
    static func tensors(in file: SafetensorsFile, prefix: String) throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for entry in file.entries where entry.name.hasPrefix(prefix) {
            out[String(entry.name.dropFirst(prefix.count))] = try file.tensor(entry.name)
        }
        return out
    }

    /// Restores a trainer built with the checkpoint's settings to the checkpoint's state.
    ///
    /// - Throws: `TrainingError.badCheckpoint` for a file that is not a training checkpoint
    ///   or whose metadata is malformed, `StateDictError` for tensors that do not fit.
    public static func restore(_ t: Trainer, from url: URL) throws {
        let file = try SafetensorsFile(contentsOf: url)
        let meta = file.metadata
        guard meta[Key.format] == formatName else {
            throw TrainingError.badCheckpoint(
                url.path,
                "metadata 'format' is \(meta[Key.format] ?? "missing"), expected "
                    + "'\(formatName)'")
        }
        guard let v = meta[Key.version].flatMap(Int.init), v <= formatVersion else {
            throw TrainingError.badCheckpoint(
                url.path,
                "format version \(meta[Key.version] ?? "missing") is not one this "
                    + "isfgan reads (\(formatVersion))")
        }
        let state = try decode(TrainingState.self, meta, Key.state, url)
        let all = file.stateDict().tensors
        func group(_ prefix: String) -> [String: Tensor] {
            var out: [String: Tensor] = [:]
            for (k, v) in all where k.hasPrefix(prefix) {
                out[String(k.dropFirst(prefix.count))] = v
            }
            return out
        }
        try t.isf.load(group("mapnet."), source: "\(url.path) [mapnet]")
        try t.average.load(group("mapnet_ema."), source: "\(url.path) [mapnet_ema]")
        try t.discriminator.load(group("discriminator."), source: "\(url.path) [discriminator]")
        try restoreMoments(
            t.isfOptimizer, module: t.isf, step: state.isfAdamStep,
            tensors: group("adam.mapnet."), source: url.path)
        try restoreMoments(
            t.discriminatorOptimizer, module: t.discriminator, step: state.discriminatorAdamStep,
            tensors: group("adam.discriminator."), source: url.path)
        t.restoreStreams(state)
    }

    static func restoreMoments(
        _ adam: Adam, module: Module, step: Int, tensors: [String: Tensor], source: String
    ) throws {
        var m: [[Float]] = [], v: [[Float]] = []
        var problems: [String] = []
        for (k, p) in zip(trainableKeys(module), adam.parameters) {
            guard let a = tensors["exp_avg.\(k)"], let b = tensors["exp_avg_sq.\(k)"],
                a.shape == p.shape, b.shape == p.shape
            else {
                problems.append("Adam moments of '\(k)' are missing or mis-shaped")
                continue
            }
            m.append(a.scalars)
            v.append(b.scalars)
        }
        if !problems.isEmpty {
            throw TrainingError.badCheckpoint(source, problems.joined(separator: "; "))
        }
        let state = try Adam.State(
            from: ValueDecoder(["step": step, "m": m, "v": v]))
        try adam.restore(state)
    }
}

extension Trainer {
    func restoreStreams(_ state: TrainingState) {
        step = state.step
        sampler = BatchSampler(count: data.train.count, restoring: state.sampler)
        draws = state.draws
    }
}

// MARK: - A decoder over plain values

/// Decodes a `Decodable` from a dictionary of already-typed values (used to rebuild
/// `Adam.State`, whose memberwise initialiser is not public, without a JSON round trip of
/// millions of numbers).
struct ValueDecoder: Decoder {
    let values: [String: Any]
    init(_ values: [String: Any]) { self.values = values }
    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Keyed<Key>(values: values))
    }
    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch(
            [Any].self, .init(codingPath: [], debugDescription: "only keyed values"))
    }
    func singleValueContainer() throws -> SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(
            Any.self, .init(codingPath: [], debugDescription: "only keyed values"))
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let values: [String: Any]
        var codingPath: [CodingKey] { [] }
        var allKeys: [Key] { values.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { values[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { values[key.stringValue] == nil }

        func value<T>(_ key: Key) throws -> T {
            guard let v = values[key.stringValue] as? T else {
                throw DecodingError.typeMismatch(
                    T.self,
                    .init(
                        codingPath: [key],
                        debugDescription: "no \(T.self) under '\(key.stringValue)'"))
            }
            return v
        }
        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try value(key) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try value(key) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try value(key) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try value(key) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try value(key) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try value(key) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try value(key) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try value(key) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try value(key) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try value(key) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try value(key) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try value(key) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try value(key) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try value(key) }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try value(key) }
        func nestedContainer<NestedKey: CodingKey>(
            keyedBy type: NestedKey.Type, forKey key: Key
        ) throws -> KeyedDecodingContainer<NestedKey> {
            KeyedDecodingContainer(Keyed<NestedKey>(values: try value(key)))
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
            throw DecodingError.typeMismatch(
                [Any].self, .init(codingPath: [key], debugDescription: "only keyed values"))
        }
        func superDecoder() throws -> Decoder { ValueDecoder(values) }
        func superDecoder(forKey key: Key) throws -> Decoder { ValueDecoder(try value(key)) }
    }
}

// MARK: - Export as an ISF file

extension TrainingExport {
    /// Writes the averaged ISF of a training checkpoint, or of a run folder's last one, as
    /// an isfgan ISF file (what `final.safetensors` holds at the end of a run): for a run
    /// stopped before its last iteration. The recorded settings gain `"stoppedAtStep"`.
    /// Without `url`, the file is `isf-step-NNNNNN.safetensors` in the run folder.
    ///
    /// - Returns: the step of the checkpoint and the file written.
    /// - Throws: `TrainingError` for an input that is not a training checkpoint or a run
    ///   folder with one, `StateDictError` for tensors that do not fit, `FormatError` on I/O.
    @discardableResult
    public static func isf(from input: URL, to given: URL? = nil) throws -> (step: Int, url: URL) {
        let (source, isRunFolder) = try checkpoint(input)
        let runFolder =
            isRunFolder ? input : input.deletingLastPathComponent().deletingLastPathComponent()
        let file = try SafetensorsFile(contentsOf: source)
        let meta = file.metadata
        guard meta[TrainingCheckpoint.Key.format] == TrainingCheckpoint.formatName else {
            throw TrainingError.badCheckpoint(
                source.path,
                "not an isfgan training checkpoint (metadata 'format' is "
                    + "\(meta["format"].map { "'\($0)'" } ?? "missing"))")
        }
        typealias K = TrainingCheckpoint.Key
        let state = try TrainingCheckpoint.decode(TrainingState.self, meta, K.state, source)
        let settings = try TrainingCheckpoint.decode(
            TrainingSettings.self, meta, K.settings, source)
        let config = try TrainingCheckpoint.decode(ISFConfig.self, meta, K.isfConfig, source)
        let network = ISFNetwork(config)
        _ = try network.load(
            try TrainingCheckpoint.tensors(in: file, prefix: "mapnet_ema."),
            source: "\(source.path) [mapnet_ema]")
        var recorded =
            (try JSONSerialization.jsonObject(with: Data(settings.json().utf8))
                as? [String: Any]) ?? [:]
        recorded["stoppedAtStep"] = state.step
        let text = String(
            decoding: try JSONSerialization.data(withJSONObject: recorded, options: .sortedKeys),
            as: UTF8.self)
        let url =
            given
            ?? runFolder.appendingPathComponent(
                String(format: "isf-step-%06d.safetensors", state.step))
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try ISFFile(
            network: network, attributes: settings.attributes,
            generatorSHA256: settings.generatorSHA256.isEmpty ? nil : settings.generatorSHA256,
            trainingSettings: text
        ).write(to: url)
        return (state.step, url)
    }
}

// MARK: - Export to the official layout

public enum TrainingExport {
    /// The checkpoint to export: a run folder's last one, or `input` itself.
    ///
    /// - Throws: `TrainingError.badRun` for a run folder without checkpoints.
    static func checkpoint(_ input: URL) throws -> (url: URL, isRunFolder: Bool) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input.path, isDirectory: &isDir),
            isDir.boolValue
        else { return (input, false) }
        guard let last = TrainingRun.checkpoints(in: input).last else {
            throw TrainingError.badRun(
                "\(input.path) has no checkpoints/step-NNNNNN.safetensors to export")
        }
        return (last.url, true)
    }

    /// The `isfgan edit` flags that an exported official checkpoint needs to behave like
    /// its source, which the official format cannot record: `--residual` and the attribute
    /// names (official files name none). Empty when neither applies.
    public static func officialLoadFlags(from input: URL) throws -> String {
        let meta = try SafetensorsFile(contentsOf: try checkpoint(input).url).metadata
        var flags: [String] = []
        if let text = meta[TrainingCheckpoint.Key.isfConfig],
            let config = try? JSONDecoder().decode(ISFConfig.self, from: Data(text.utf8)),
            config.residual
        {
            flags.append("--residual")
        }
        if let text = meta[TrainingCheckpoint.Key.attributes],
            let names = try? JSONDecoder().decode([String].self, from: Data(text.utf8))
        {
            flags.append("--attributes " + names.joined(separator: ","))
        }
        return flags.joined(separator: " ")
    }

    /// Writes the official `NNNNNN_nets_ema.ckpt` (averaged ISF, discriminator) and
    /// `NNNNNN_nets.ckpt` (live ISF, discriminator) of a training checkpoint, or of a run
    /// folder's last checkpoint, into `folder`; for an isfgan ISF file (e.g.
    /// `final.safetensors`), only `_nets_ema.ckpt` with its `mapnet`. NNNNNN is the step.
    /// The official code's averaged discriminator is the live one, hence one
    /// discriminator in both files.
    ///
    /// - Throws: `TrainingError` for an input that is none of these, `FormatError` on I/O.
    @discardableResult
    public static func torch(from input: URL, to folder: URL) throws -> [URL] {
        let source = try checkpoint(input).url
        let file = try SafetensorsFile(contentsOf: source)
        let meta = file.metadata
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func group(_ prefix: String) throws -> [(key: String, tensor: Tensor)] {
            try file.entries.filter { $0.name.hasPrefix(prefix) }.map {
                (String($0.name.dropFirst(prefix.count)), try file.tensor($0.name))
            }
        }
        switch meta[TrainingCheckpoint.Key.format] {
        case TrainingCheckpoint.formatName?:
            let state = try TrainingCheckpoint.decode(
                TrainingState.self, meta, TrainingCheckpoint.Key.state, source)
            let stem = String(format: "%06d", state.step)
            let d = try group("discriminator.")
            let ema = folder.appendingPathComponent(stem + "_nets_ema.ckpt")
            let live = folder.appendingPathComponent(stem + "_nets.ckpt")
            try TorchWriter.write(
                [("mapnet", try group("mapnet_ema.")), ("discriminator", d)], to: ema)
            try TorchWriter.write(
                [("mapnet", try group("mapnet.")), ("discriminator", d)], to: live)
            return [ema, live]
        case ISFFile.formatName?:
            var step = 0
            if let text = meta["training"],
                let s = try? JSONDecoder().decode(TrainingSettings.self, from: Data(text.utf8))
            {
                step = s.iterations
            }
            let ema = folder.appendingPathComponent(String(format: "%06d", step) + "_nets_ema.ckpt")
            try TorchWriter.write([("mapnet", try group(ISFFile.keyPrefix))], to: ema)
            return [ema]
        default:
            throw TrainingError.badCheckpoint(
                source.path,
                "not an isfgan training checkpoint or ISF file (metadata 'format' is "
                    + "\(meta["format"].map { "'\($0)'" } ?? "missing"))")
        }
    }
}
