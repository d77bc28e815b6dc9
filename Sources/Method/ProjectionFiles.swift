import Formats
import Foundation
import Models
import TensorCore

// What a projection leaves on disk (layouts in docs/FORMATS.md, "Projections"):
//
//   CODE.npy          the code: (1, D) for w and z, (1, L, D) for W+
//   NOISE.npz         StyleGAN2's optimised noise maps noise_0 … (each (1, 1, r, r)),
//                     the layout `isfgan generate --noise` reads
//   CODE.json         the sidecar: inputs with their checksums, settings, distance, PSNR
//
// `ProjectionCache` keeps the same three files under a key derived from the photo, the
// generator and the settings, so that `isfgan edit --image` projects a photo once.

/// The JSON sidecar of a projection. Keys are snake_case.
public struct ProjectionRecord: Codable, Equatable, Sendable {
    public static let formatName = "isfgan-projection"
    public static let formatVersion = 1

    public var format = ProjectionRecord.formatName
    public var formatVersion = ProjectionRecord.formatVersion
    /// The photo as named on the command line, its checksum and size (width, height).
    public var image: String
    public var imageSHA256: String
    public var imageSize: [Int]
    /// The generator as named, the checksum of its file, its checkpoint entry and summary.
    public var generator: String
    public var generatorSHA256: String
    public var generatorKey: String?
    public var generatorSummary: String
    public var settings: ProjectionSettings
    /// The code and noise files, relative to the sidecar's folder.
    public var codeFile: String
    public var codeShape: [Int]
    public var noiseFile: String?
    /// Between the prepared photo and the reconstruction; PSNR in dB (nil when equal).
    public var perceptualDistance: Float
    public var psnr: Double?
    /// The perceptual term at the first step, for comparison.
    public var initialPerceptualDistance: Float?
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case format, image, generator, settings, psnr, seconds
        case formatVersion = "format_version"
        case imageSHA256 = "image_sha256"
        case imageSize = "image_size"
        case generatorSHA256 = "generator_sha256"
        case generatorKey = "generator_key"
        case generatorSummary = "generator_summary"
        case codeFile = "code_file"
        case codeShape = "code_shape"
        case noiseFile = "noise_file"
        case perceptualDistance = "perceptual_distance"
        case initialPerceptualDistance = "initial_perceptual_distance"
    }

    public init(
        photo: ProjectionPhoto, image: String, generator: String, generatorSHA256: String,
        generatorKey: String?, generatorSummary: String, settings: ProjectionSettings,
        result: ProjectionResult, codeFile: String, noiseFile: String?
    ) {
        self.image = image
        imageSHA256 = photo.sha256
        imageSize = [photo.width, photo.height]
        self.generator = generator
        self.generatorSHA256 = generatorSHA256
        self.generatorKey = generatorKey
        self.generatorSummary = generatorSummary
        self.settings = settings
        self.codeFile = codeFile
        codeShape = result.code.shape
        self.noiseFile = noiseFile
        perceptualDistance = result.distance
        psnr = result.psnr.isFinite ? result.psnr : nil
        initialPerceptualDistance = result.history.first
        seconds = result.seconds
    }

    /// Pretty-printed JSON with sorted keys.
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Reads a sidecar, refusing other formats and newer versions.
    public static func read(_ url: URL) throws -> ProjectionRecord {
        let data = try Data(contentsOf: url)
        let record: ProjectionRecord
        do {
            record = try JSONDecoder().decode(ProjectionRecord.self, from: data)
        } catch {
            throw FormatError(
                .corrupt, file: url.path, "not a projection sidecar: \(describeDecoding(error))")
        }
        guard record.format == formatName, record.formatVersion <= formatVersion else {
            throw FormatError(
                .unsupported, file: url.path,
                "format '\(record.format)' version \(record.formatVersion); this build reads "
                    + "'\(formatName)' up to version \(formatVersion)")
        }
        return record
    }
}

/// Reading and writing a projection's files.
public enum ProjectionFiles {
    /// The sidecar of a code file: the same path with the extension `.json`.
    public static func sidecarURL(for code: URL) -> URL {
        code.deletingPathExtension().appendingPathExtension("json")
    }

    /// Noise maps as an `.npz` of `noise_0` … (what `isfgan generate --noise` reads).
    public static func writeNoise(_ maps: [Tensor], to url: URL) throws {
        try NumPy.writeArchive(
            maps.enumerated().map { ("noise_\($0.offset)", RawArray($0.element)) }, to: url)
    }

    /// Noise maps `noise_0` … from an `.npz`, in order.
    public static func readNoise(_ url: URL, count: Int) throws -> [Tensor] {
        var byName: [String: Tensor] = [:]
        for (name, array) in try NumPy.readArchive(url) { byName[name] = array.tensor() }
        return try (0..<count).map { i in
            guard let t = byName["noise_\(i)"] else {
                throw FormatError(.corrupt, file: url.path, "no 'noise_\(i)' entry")
            }
            return t
        }
    }

    /// Writes the code, the noise maps (when there are some and `noise` is given) and
    /// then the sidecar, each atomically; the sidecar comes last so that a reader that
    /// finds it finds the rest.
    public static func write(
        _ result: ProjectionResult, record: ProjectionRecord, code: URL, noise: URL?,
        sidecar: URL
    ) throws {
        try NumPy.write(result.code, to: code)
        if let noise, let maps = result.noise { try writeNoise(maps, to: noise) }
        try AtomicFile.write(try record.json(), to: sidecar)
    }
}

/// Projections kept for reuse, keyed by the photo's bytes, the generator file, its
/// checkpoint entry and every setting (default folder: `$ISFGAN_HOME/projections`, next to
/// the fetched models).
public struct ProjectionCache {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// `$ISFGAN_HOME/projections` (`~/.cache/isfgan/projections` by default).
    public static var defaultDirectory: URL {
        ModelStore().home.appendingPathComponent("projections")
    }

    /// A cached projection: its editing-space codes [1, L, D], noise maps and record.
    public struct Entry {
        public var codes: Tensor
        public var noise: [Tensor]?
        public var record: ProjectionRecord
    }

    /// The hex SHA-256 of the inputs that decide a projection.
    public static func key(
        imageSHA256: String, generatorSHA256: String, generatorKey: String?,
        settings: ProjectionSettings
    ) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let text =
            "isfgan-projection-cache 1\n\(imageSHA256)\n\(generatorSHA256)\n"
            + "\(generatorKey ?? "-")\n"
            + String(decoding: try encoder.encode(settings), as: UTF8.self)
        return SHA256.hexDigest(Array(text.utf8))
    }

    func url(_ key: String, _ suffix: String) -> URL {
        directory.appendingPathComponent(key + suffix)
    }

    /// The entry for `key`, or nil when there is none (or it does not fit `generator`,
    /// which a changed file behind the same checksum cannot cause, but a damaged cache
    /// can: it is then projected again).
    public func lookup(_ key: String, generator: any ImageGenerator) -> Entry? {
        guard let record = try? ProjectionRecord.read(url(key, ".json")),
            let code = try? NumPy.readTensor(url(key, ".npy"))
        else { return nil }
        let (l, d) = (generator.codeLayers, generator.codeWidth)
        let expected = record.settings.space == .wplus ? [1, l, d] : [1, d]
        guard code.shape == expected else { return nil }
        var noise: [Tensor]?
        if let sg = generator as? StyleGAN2Generator {
            guard
                let maps = try? ProjectionFiles.readNoise(
                    url(key, ".npz"), count: sg.noiseShapes.count),
                zip(maps, sg.noiseShapes).allSatisfy({ $0.shape == $1 })
            else { return nil }
            noise = maps
        }
        let codes = Projector.editingCodes(code, space: record.settings.space, generator: generator)
        return Entry(codes: codes.contiguous(), noise: noise, record: record)
    }

    /// Stores a projection under `key` (the record's file names are rewritten to the
    /// cache's own).
    public func store(_ key: String, result: ProjectionResult, record: ProjectionRecord) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var r = record
        r.codeFile = key + ".npy"
        r.noiseFile = result.noise == nil ? nil : key + ".npz"
        try ProjectionFiles.write(
            result, record: r, code: url(key, ".npy"),
            noise: result.noise == nil ? nil : url(key, ".npz"), sidecar: url(key, ".json"))
    }
}
