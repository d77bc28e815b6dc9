import Formats
import Foundation
import TensorCore

// The project's own ISF files: safetensors with the official state-dict keys under
// `mapnet.` and JSON metadata that records what the keys cannot show. The layout is
// documented in docs/FORMATS.md ("ISF files").

/// An ISF together with what the project knows about it: the attribute names, the
/// checksum of the generator it was trained with, and the training settings.
public struct ISFFile {
    /// The value of the `format` metadata entry that marks an isfgan ISF file.
    public static let formatName = "isfgan-isf"
    /// The layout version written; readers accept this one and refuse newer ones.
    public static let formatVersion = 1
    /// The tensors' key prefix, the official checkpoint entry name plus a dot.
    public static let keyPrefix = ISFNetwork.checkpointKey + "."

    /// The network (its config holds the residual flag and random width).
    public var network: ISFNetwork
    /// One name per attribute, in the order of the target vector; nil when unknown.
    public var attributes: [String]?
    /// Lower-case hex SHA-256 of the generator file the ISF was trained with.
    public var generatorSHA256: String?
    /// The training settings as a JSON object text (what the trainer chose to record).
    public var trainingSettings: String?

    public init(
        network: ISFNetwork, attributes: [String]? = nil, generatorSHA256: String? = nil,
        trainingSettings: String? = nil
    ) {
        self.network = network
        self.attributes = attributes
        self.generatorSHA256 = generatorSHA256
        self.trainingSettings = trainingSettings
    }

    /// Metadata keys, in one place so that the writer and reader cannot drift.
    enum Key {
        static let format = "format"
        static let version = "format_version"
        static let config = "isf_config"
        static let attributes = "attributes"
        static let generator = "generator_sha256"
        static let training = "training"
    }

    /// Writes the file atomically: `mapnet.<official key>` float32 tensors and the metadata.
    ///
    /// - Throws: `ModelError.badInput` when the attribute count does not match the network
    ///   or the training settings are not a JSON object; `FormatError` on I/O failure.
    public func write(to url: URL) throws {
        let config = network.config
        var metadata: [String: String] = [
            Key.format: ISFFile.formatName,
            Key.version: String(ISFFile.formatVersion),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        metadata[Key.config] = String(decoding: try encoder.encode(config), as: UTF8.self)
        if let attributes {
            guard attributes.count == config.attributes else {
                throw ModelError.badInput(
                    "ISF file \(url.path): \(attributes.count) attribute names for a network "
                        + "with \(config.attributes) attributes")
            }
            metadata[Key.attributes] = String(
                decoding: try encoder.encode(attributes), as: UTF8.self)
        }
        if let generatorSHA256 {
            guard ISFFile.isHexDigest(generatorSHA256) else {
                throw ModelError.badInput(
                    "ISF file \(url.path): generator checksum '\(generatorSHA256)' is not "
                        + "64 hex digits")
            }
            metadata[Key.generator] = generatorSHA256.lowercased()
        }
        if let trainingSettings {
            let parsed = try? JSONSerialization.jsonObject(with: Data(trainingSettings.utf8))
            guard parsed is [String: Any] else {
                throw ModelError.badInput(
                    "ISF file \(url.path): training settings are not a JSON object")
            }
            metadata[Key.training] = trainingSettings
        }
        try Safetensors.write(
            network.stateDict(prefix: ISFNetwork.checkpointKey), metadata: metadata, to: url)
    }

    /// Reads an ISF file written by ``write(to:)``; the network comes back frozen.
    ///
    /// - Throws: `FormatError` for a file that is not safetensors; `ModelError` naming the
    ///   file and the metadata entry that is missing, malformed or from a newer version;
    ///   `StateDictError` for keys or shapes that do not fit the recorded config.
    public static func read(_ url: URL) throws -> ISFFile {
        let file = try SafetensorsFile(contentsOf: url)
        let name = url.path
        let meta = file.metadata
        func fail(_ why: String) -> ModelError { .notRecognised(name, why) }

        guard meta[Key.format] == formatName else {
            let found = meta[Key.format].map { "'\($0)'" } ?? "none"
            throw fail(
                "metadata '\(Key.format)' is \(found), expected '\(formatName)': not an "
                    + "isfgan ISF file")
        }
        guard let versionText = meta[Key.version], let version = Int(versionText) else {
            throw fail("metadata '\(Key.version)' is missing or not an integer")
        }
        guard version <= formatVersion else {
            throw fail(
                "format version \(version) is newer than this isfgan reads (\(formatVersion))")
        }
        guard let configText = meta[Key.config] else {
            throw fail("metadata '\(Key.config)' is missing")
        }
        let config: ISFConfig
        do {
            config = try JSONDecoder().decode(ISFConfig.self, from: Data(configText.utf8))
        } catch {
            throw fail(
                "metadata '\(Key.config)' does not describe an ISF: \(describeDecoding(error))")
        }

        var attributes: [String]?
        if let text = meta[Key.attributes] {
            guard let names = try? JSONDecoder().decode([String].self, from: Data(text.utf8))
            else {
                throw fail("metadata '\(Key.attributes)' is not a JSON array of strings")
            }
            guard names.count == config.attributes else {
                throw fail(
                    "metadata '\(Key.attributes)' names \(names.count) attributes, the "
                        + "config has \(config.attributes)")
            }
            attributes = names
        }
        let checksum = meta[Key.generator]
        if let checksum, !isHexDigest(checksum) {
            throw fail("metadata '\(Key.generator)' is not 64 hex digits")
        }
        let training = meta[Key.training]
        if let training,
            !((try? JSONSerialization.jsonObject(with: Data(training.utf8))) is [String: Any])
        {
            throw fail("metadata '\(Key.training)' is not a JSON object")
        }

        var state: [String: Tensor] = [:]
        for entry in file.entries {
            guard entry.name.hasPrefix(keyPrefix) else {
                throw fail("tensor '\(entry.name)' is not under '\(keyPrefix)'")
            }
            state[String(entry.name.dropFirst(keyPrefix.count))] = try file.tensor(entry.name)
        }
        let network = try ISFNetwork.load(state, config: config, source: name)
        return ISFFile(
            network: network, attributes: attributes, generatorSHA256: checksum?.lowercased(),
            trainingSettings: training)
    }

    /// True when the file at `url` starts like a safetensors file (an 8-byte length, then a
    /// JSON object), which tells the project's files from PyTorch zips and pickles.
    public static func looksLikeSafetensors(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        return head[head.startIndex + 8] == UInt8(ascii: "{")
    }

    static func isHexDigest(_ s: String) -> Bool {
        s.count == 64 && s.allSatisfy { $0.isHexDigit }
    }
}

// MARK: - SHA-256

/// SHA-256 (FIPS 180-4), for the generator checksums that ISF files record.
public enum SHA256 {
    /// The lower-case hex digest of the file at `url`, read in 1 MiB pieces.
    ///
    /// - Throws: `FormatError` (`.io`) when the file cannot be read.
    public static func hexDigest(ofFile url: URL) throws -> String {
        let buffer = try ByteBuffer(contentsOf: url)
        var state = State()
        state.update(buffer.bytes)
        return hex(state.finish())
    }

    /// The lower-case hex digest of `bytes`.
    public static func hexDigest<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var state = State()
        Array(bytes).withUnsafeBytes { state.update($0) }
        return hex(state.finish())
    }

    static func hex(_ digest: [UInt8]) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
    static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1,
        0x923f_82a4, 0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3,
        0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786,
        0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147,
        0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13,
        0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
        0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a,
        0x5b9c_ca4f, 0x682e_6ff3, 0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208,
        0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    struct State {
        /// The first 32 bits of the fractional parts of the square roots of the first 8
        /// primes.
        var h: [UInt32] = [
            0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c,
            0x1f83_d9ab, 0x5be0_cd19,
        ]
        var pending: [UInt8] = []
        var length: UInt64 = 0

        mutating func update(_ bytes: UnsafeRawBufferPointer) {
            length &+= UInt64(bytes.count)
            var start = 0
            if !pending.isEmpty {
                let take = min(64 - pending.count, bytes.count)
                pending += bytes[0..<take]
                start = take
                if pending.count == 64 {
                    pending.withUnsafeBytes { compress($0.baseAddress!) }
                    pending.removeAll(keepingCapacity: true)
                }
            }
            while start + 64 <= bytes.count {
                compress(bytes.baseAddress! + start)
                start += 64
            }
            if start < bytes.count { pending += bytes[start...] }
        }

        mutating func finish() -> [UInt8] {
            let bitLength = length &* 8
            var tail = pending + [0x80]
            while tail.count % 64 != 56 { tail.append(0) }
            for i in (0..<8).reversed() {
                tail.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i))))
            }
            tail.withUnsafeBytes { raw in
                for block in stride(from: 0, to: raw.count, by: 64) {
                    compress(raw.baseAddress! + block)
                }
            }
            pending = []
            return h.flatMap { word in
                (0..<4).map { UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32($0))) }
            }
        }

        private mutating func compress(_ block: UnsafeRawPointer) {
            var w = [UInt32](repeating: 0, count: 64)
            for t in 0..<16 {
                let b = block + 4 * t
                w[t] =
                    UInt32(b.load(as: UInt8.self)) << 24
                    | UInt32(b.load(fromByteOffset: 1, as: UInt8.self)) << 16
                    | UInt32(b.load(fromByteOffset: 2, as: UInt8.self)) << 8
                    | UInt32(b.load(fromByteOffset: 3, as: UInt8.self))
            }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0..<64 {
                let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let choice = (e & f) ^ (~e & g)
                let t1 = hh &+ s1 &+ choice &+ SHA256.roundConstants[t] &+ w[t]
                let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = s0 &+ majority
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            h[0] &+= a
            h[1] &+= b
            h[2] &+= c
            h[3] &+= d
            h[4] &+= e
            h[5] &+= f
            h[6] &+= g
            h[7] &+= hh
        }

        @inline(__always)
        private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
    }
}
