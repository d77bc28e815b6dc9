import Formats
import Foundation
import Method
import Models
import TensorCore
import TestSupport
import XCTest

/// The project's ISF files, SHA-256, loading for editing, and the ISF's speed.
final class EditingISFFileTests: XCTestCase {
    func testSHA256KnownAnswers() throws {
        // FIPS 180-4 examples, and a message that spans the padding boundary.
        XCTAssertEqual(
            SHA256.hexDigest([UInt8]()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(
            SHA256.hexDigest(Array("abc".utf8)),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hexDigest(
                Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(
            SHA256.hexDigest(million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        let dir = temporaryDirectory("sha")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m")
        try Data(million).write(to: url)
        XCTAssertEqual(try SHA256.hexDigest(ofFile: url), SHA256.hexDigest(million))
    }

    func testISFFileRoundTripKeepsWeightsAndMetadata() throws {
        let config = ISFConfig(
            layers: 3, randomWidth: 8, attributes: 2, codeWidth: 12, innerWidth: 16,
            preNorm: false, normType: .adain, residual: true)
        let net = ISFNetwork(config, seed: 5)
        let dir = temporaryDirectory("isffile")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("isf.safetensors")
        let checksum = String(repeating: "ab", count: 32)
        try ISFFile(
            network: net, attributes: ["cat", "dog"], generatorSHA256: checksum,
            trainingSettings: #"{"lr": 1e-05, "iterations": 50000}"#
        ).write(to: url)

        // Official keys under mapnet., the settings in the metadata.
        let raw = try SafetensorsFile(contentsOf: url)
        XCTAssertTrue(raw.entries.allSatisfy { $0.name.hasPrefix("mapnet.w_net.") })
        XCTAssertNotNil(raw.entry("mapnet.w_net.z_net.shared.0.weight"))
        XCTAssertEqual(raw.metadata["format"], "isfgan-isf")

        let back = try ISFFile.read(url)
        XCTAssertEqual(back.network.config, config)
        XCTAssertEqual(back.attributes, ["cat", "dog"])
        XCTAssertEqual(back.generatorSHA256, checksum)
        XCTAssertTrue(back.trainingSettings?.contains("50000") == true)
        var rng = RandomGenerator(seed: 9)
        let (w, z) = (rng.normal([2, 3, 12]), rng.normal([2, 8]))
        let d = Tensor(shape: [2, 2], [1, 0, 0, 1])
        assertClose(
            try back.network(codes: w, z: z, targets: d), try net(codes: w, z: z, targets: d),
            atol: 0, rtol: 0)

        let loaded = try LoadedISF.load(url)
        XCTAssertEqual(loaded.recordedAttributes, ["cat", "dog"])
        XCTAssertEqual(loaded.network.config.residual, true)

        // Mistakes in writing are refused with the file named.
        XCTAssertThrowsError(
            try ISFFile(network: net, attributes: ["one"]).write(to: url)
        ) {
            XCTAssertTrue("\($0)".contains("1 attribute names"), "\($0)")
        }
        XCTAssertThrowsError(try ISFFile(network: net, generatorSHA256: "xyz").write(to: url))
        XCTAssertThrowsError(try ISFFile(network: net, trainingSettings: "[1]").write(to: url))
    }

    func testMalformedISFFilesAreRefusedWithTheEntryNamed() throws {
        let net = ISFNetwork(
            ISFConfig(layers: 2, randomWidth: 8, attributes: 2, codeWidth: 12, innerWidth: 16),
            seed: 1)
        let dir = temporaryDirectory("isfbad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("bad.safetensors")
        let tensors = net.stateDict(prefix: "mapnet")
        let config =
            #"{"num_layers":2,"rnd_dim":8,"num_domains":2,"latent_dim":12,"#
            + #""inner_dim":16,"pre_norm":true,"norm_type":"adaln","latent_type":"wp"}"#
        let cases: [([String: String], String)] = [
            ([:], "format"),
            (["format": "isfgan-isf", "format_version": "99", "isf_config": config], "newer"),
            (["format": "isfgan-isf", "format_version": "1"], "isf_config"),
            (["format": "isfgan-isf", "format_version": "1", "isf_config": "{}"], "isf_config"),
            (
                [
                    "format": "isfgan-isf", "format_version": "1", "isf_config": config,
                    "attributes": #"["a"]"#,
                ], "attributes"
            ),
        ]
        for (meta, mention) in cases {
            try Safetensors.write(tensors, metadata: meta, to: url)
            XCTAssertThrowsError(try ISFFile.read(url), mention) {
                XCTAssertTrue("\($0)".contains(mention), "\($0)")
                XCTAssertTrue("\($0)".contains(url.path), "\($0)")
            }
        }
        // A config that does not fit the tensors: the state-dict error lists the keys.
        let wrong = config.replacingOccurrences(of: #""num_layers":2"#, with: #""num_layers":3"#)
        try Safetensors.write(
            tensors,
            metadata: ["format": "isfgan-isf", "format_version": "1", "isf_config": wrong],
            to: url)
        XCTAssertThrowsError(try ISFFile.read(url)) {
            XCTAssertTrue("\($0)".contains("unshared.2"), "\($0)")
        }
    }

    /// The residual variant cannot be told from its keys; its ISF file records the flag, so
    /// converting the official checkpoint once (with the flag) gives the reference output.
    func testOfficialResidualCheckpointConvertedToAnISFFileKeepsItsOutput() throws {
        let dir = try Fixtures.url("isf-mapnet/ffhq-w-none-res/000001_nets_ema.ckpt")
            .deletingLastPathComponent()
        let net = try ISFNetwork.load(
            checkpoint: dir.appendingPathComponent("000001_nets_ema.ckpt"), residual: true)
        let tmp = temporaryDirectory("isfres")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let url = tmp.appendingPathComponent("res.safetensors")
        try ISFFile(network: net, attributes: AttributeNames.official).write(to: url)
        let loaded = try LoadedISF.load(url)
        let out = try loaded.network(
            codes: try NumPy.readTensor(dir.appendingPathComponent("lat.npy")),
            z: try NumPy.readTensor(dir.appendingPathComponent("rndz.npy")),
            targets: try NumPy.readTensor(dir.appendingPathComponent("labels.npy")))
        // The saved parity tolerance of the ISF: 1e-5 absolute.
        assertClose(
            out, try NumPy.readTensor(dir.appendingPathComponent("out.npy")), atol: 1e-5, rtol: 0)
    }
}
