import Formats
import Foundation
import Layers
import TensorCore
import TestSupport
import XCTest

@testable import Models

/// The ISF network against the PyTorch reference (`isf-mapnet/*` fixtures), and its
/// config inference, errors and fresh initialisation.
final class ISFTests: XCTestCase {
    // MARK: Parity with the reference

    /// What one fixture case says about itself (from its meta.json).
    struct Expected {
        var layers: Int
        var preNorm: Bool
        var normType: ISFNormType
        var latentType: ISFLatentType
        var residual: Bool
        var parameterCount: Int
    }

    /// Loads `case`'s checkpoint, checks the inferred settings, runs the saved inputs and
    /// compares the output and every saved intermediate. Returns the max |diff| per stage.
    ///
    /// Tolerance 1e-5 absolute (the issue's bar): the reference ran in float32 through
    /// the same sequence of Linear/LayerNorm ops, so only summation order differs (values
    /// are O(1), 512-term dot products: a few 1e-7 expected).
    @discardableResult
    func checkParity(_ name: String, _ expected: Expected) throws -> [String: Float] {
        let dir = "isf-mapnet/\(name)"
        let ckptURL = try Fixtures.url("\(dir)/000001_nets_ema.ckpt")
        let state = try TorchCheckpoint(contentsOf: ckptURL).stateDict("mapnet").tensors
        let net = try ISFNetwork.load(checkpoint: ckptURL, residual: expected.residual)

        let c = net.config
        XCTAssertEqual(c.layers, expected.layers, "\(name): layers")
        XCTAssertEqual(c.preNorm, expected.preNorm, "\(name): pre-norm")
        XCTAssertEqual(c.normType, expected.normType, "\(name): norm type")
        XCTAssertEqual(c.latentType, expected.latentType, "\(name): latent type")
        XCTAssertEqual(c.residual, expected.residual, "\(name): residual")
        XCTAssertEqual(c.randomWidth, 64, "\(name): random width")
        XCTAssertEqual(c.attributes, 4, "\(name): attributes")
        XCTAssertEqual(c.codeWidth, 512, "\(name): code width")
        XCTAssertEqual(c.innerWidth, 512, "\(name): inner width")
        XCTAssertEqual(net.parameterCount, expected.parameterCount, "\(name): parameter count")
        // Saving gives back the file's keys exactly.
        XCTAssertEqual(Set(net.stateDict().map(\.key)), Set(state.keys), "\(name): keys")

        func npy(_ file: String) throws -> Tensor {
            try NumPy.readTensor(try Fixtures.url("\(dir)/\(file).npy"))
        }
        let lat = try npy("lat"), z = try npy("rndz"), labels = try npy("labels")
        let stages = try GradMode.withoutGradients {
            try net.stages(codes: lat, z: z, targets: labels)
        }
        var compared: [(String, Tensor)] = [
            ("znet_shared", stages.trunk), ("znet_out", stages.styles), ("out", stages.output),
        ]
        switch expected.normType {
        case .none:
            compared += [("znet_plus_lat", stages.combined), ("wnet_out", stages.mlpOutput)]
        case .adain:
            compared += [("adain_out", stages.combined)]
            if let n = stages.normalizedCodes { compared += [("adain_norm", n)] }
            XCTAssertNotNil(stages.normalizedCodes, "\(name): adain_norm stage")
        case .adaln:
            compared += [("adain_out", stages.combined)]
        }
        var errors: [String: Float] = [:]
        for (file, mine) in compared {
            let reference = try npy(file)
            assertClose(mine, reference, atol: 1e-5, rtol: 0, "\(name)/\(file)")
            errors[file] = mine.shape == reference.shape ? maxAbsDifference(mine, reference) : .nan
        }
        // The plain forward gives the same output as the staged one.
        let out = try GradMode.withoutGradients { try net(codes: lat, z: z, targets: labels) }
        XCTAssertEqual(out.scalars, stages.output.scalars, "\(name): forward vs stages")

        let report = errors.sorted { $0.key < $1.key }
            .map { "\($0.key) \(String(format: "%.2e", $0.value))" }.joined(separator: ", ")
        print("ISF parity \(name): max |diff| \(report)")
        return errors
    }

    func testCat2dogWPlusParity() throws {
        try checkParity(
            "cat2dog",
            Expected(
                layers: 14, preNorm: true, normType: .adaln, latentType: .wp, residual: false,
                parameterCount: 13_175_296))
    }

    func testFFHQSingleCodeParity() throws {
        try checkParity(
            "ffhq-w",
            Expected(
                layers: 1, preNorm: true, normType: .adaln, latentType: .w, residual: false,
                parameterCount: 2_931_712))
    }

    func testFFHQPreNormOffParity() throws {
        try checkParity(
            "ffhq-w-prenorm0",
            Expected(
                layers: 1, preNorm: false, normType: .adaln, latentType: .w, residual: false,
                parameterCount: 2_930_688))
    }

    func testFFHQAdaINParity() throws {
        try checkParity(
            "ffhq-w-adain",
            Expected(
                layers: 1, preNorm: true, normType: .adain, latentType: .w, residual: false,
                parameterCount: 2_930_688))
    }

    func testFFHQPlainSumResidualParity() throws {
        try checkParity(
            "ffhq-w-none-res",
            Expected(
                layers: 1, preNorm: true, normType: .none, latentType: .w, residual: true,
                parameterCount: 2_405_376))
    }

    /// The residual flag is the only difference the keys cannot show: without it the
    /// same file gives `wnet_out` rather than `out`.
    func testResidualFlagIsNotInferred() throws {
        let dir = "isf-mapnet/ffhq-w-none-res"
        let url = try Fixtures.url("\(dir)/000001_nets_ema.ckpt")
        let net = try ISFNetwork.load(checkpoint: url)
        XCTAssertFalse(net.config.residual)
        func npy(_ f: String) throws -> Tensor {
            try NumPy.readTensor(try Fixtures.url("\(dir)/\(f).npy"))
        }
        let out = try net(codes: try npy("lat"), z: try npy("rndz"), targets: try npy("labels"))
        assertClose(out, try npy("wnet_out"), atol: 1e-5, rtol: 0, "residual off")
    }

    // MARK: Inference errors

    /// A checkpoint without an ISF (a StyleGAN2 generator file) is refused by name.
    func testGeneratorCheckpointIsNotAnISF() throws {
        let url = try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt")
        XCTAssertThrowsError(try ISFNetwork.load(checkpoint: url)) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ModelError, "\(type(of: error)): \(text)")
            XCTAssertTrue(text.contains("stylegan2-tiny.pt"), text)
            XCTAssertTrue(text.contains("no 'mapnet' entry"), text)
        }
    }

    func testNotAnISFIsRefused() {
        let state = ["style.1.weight": Tensor.zeros([512, 512]), "input.input": Tensor.zeros([4])]
        XCTAssertThrowsError(try ISFNetwork.load(state, source: "g.pt")) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ModelError, "\(type(of: error))")
            XCTAssertTrue(text.contains("g.pt"), text)
            XCTAssertTrue(text.contains("w_net.z_net.shared.0.weight"), text)
        }
        // A whole checkpoint instead of its mapnet entry gets a hint.
        var wrapped: [String: Tensor] = [:]
        for (k, t) in Self.freshState(layers: 2) { wrapped["mapnet." + k] = t }
        XCTAssertThrowsError(try ISFNetwork.load(wrapped, source: "x.ckpt")) { error in
            XCTAssertTrue("\(error)".contains("mapnet entry"), "\(error)")
        }
    }

    func testWrongShapeIsReportedByKey() {
        var state = Self.freshState(layers: 2)
        state["w_net.z_net.unshared.1.2.weight"] = Tensor.zeros([512, 256])
        state["w_net.fc.3.bias"] = nil
        XCTAssertThrowsError(try ISFNetwork.load(state, source: "bad.ckpt")) { error in
            guard let e = error as? StateDictError else {
                return XCTFail("expected StateDictError, got \(error)")
            }
            XCTAssertEqual(e.problems.count, 2, "\(e)")
            let text = "\(e)"
            XCTAssertTrue(text.contains("bad.ckpt"), text)
            XCTAssertTrue(text.contains("w_net.z_net.unshared.1.2.weight"), text)
            XCTAssertTrue(text.contains("[512, 256]"), text)
            XCTAssertTrue(text.contains("missing key 'w_net.fc.3.bias'"), text)
        }
    }

    func testTrunkTooNarrowForRandomWidth() {
        var state = Self.freshState(layers: 2)
        state["w_net.z_net.shared.0.weight"] = Tensor.zeros([512, 64])
        XCTAssertThrowsError(try ISFConfig.infer(from: state, source: "s.ckpt")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("random width 64"), text)
            XCTAssertTrue(text.contains("[512, 64]"), text)
        }
        // With a smaller random width the same keys are fine.
        XCTAssertEqual(
            try? ISFConfig.infer(from: state, source: "s", randomWidth: 60).attributes, 4)
    }

    func testMixedPreNormLayoutIsRefused() {
        var state = Self.freshState(layers: 2)  // pre-norm on
        state["w_net.z_net.shared.10.weight"] = Tensor.ones([512])
        XCTAssertThrowsError(try ISFConfig.infer(from: state, source: "m.ckpt")) { error in
            XCTAssertTrue("\(error)".contains("mixed layouts"), "\(error)")
        }
    }

    func testSingleCodeWithManyBranchesIsRefused() {
        let state = Self.freshState(layers: 3)
        XCTAssertThrowsError(try ISFConfig.infer(from: state, source: "s", latentType: .w)) {
            XCTAssertTrue("\($0)".contains("one branch, not 3"), "\($0)")
        }
        // One branch read as W+ keeps its layer axis.
        let one = try? ISFConfig.infer(
            from: Self.freshState(layers: 1), source: "s", latentType: .wp)
        XCTAssertEqual(one?.latentType, .wp)
        XCTAssertEqual(one?.codeShape(batch: 2), [2, 1, 512])
    }

    func testBadInputShapesAreThrown() throws {
        let net = ISFNetwork(
            ISFConfig(layers: 2, attributes: 3, codeWidth: 16, innerWidth: 32), seed: 1)
        let codes = Tensor.zeros([2, 2, 16]), targets = Tensor.zeros([2, 3])
        XCTAssertThrowsError(try net(codes: codes, z: Tensor.zeros([2, 63]), targets: targets)) {
            XCTAssertTrue("\($0)".contains("z has shape [2, 63], expected [B, 64]"), "\($0)")
        }
        XCTAssertThrowsError(
            try net(codes: Tensor.zeros([2, 16]), z: Tensor.zeros([2, 64]), targets: targets)
        ) {
            XCTAssertTrue(
                "\($0)".contains("codes have shape [2, 16], expected [2, 2, 16]"), "\($0)")
        }
        XCTAssertThrowsError(
            try net(codes: codes, z: Tensor.zeros([2, 64]), targets: Tensor.zeros([1, 3]))
        ) {
            XCTAssertTrue("\($0)".contains("targets have shape [1, 3]"), "\($0)")
        }
        XCTAssertEqual(
            try net(codes: codes, z: Tensor.zeros([2, 64]), targets: targets).shape, [2, 2, 16])
    }

    /// A recorded config overrides what the keys cannot show, and must still fit them.
    func testLoadWithRecordedConfig() throws {
        let state = Self.freshState(layers: 2)
        let recorded = ISFConfig(layers: 2, randomWidth: 60, attributes: 8, residual: true)
        let net = try ISFNetwork.load(state, config: recorded, source: "own.safetensors")
        XCTAssertEqual(net.config, recorded)
        XCTAssertFalse(net.namedParameters().contains { $0.parameter.isTrainable })
        let wrong = ISFConfig(layers: 3, attributes: 4)
        XCTAssertThrowsError(try ISFNetwork.load(state, config: wrong, source: "own")) {
            XCTAssertTrue(
                "\($0)".contains("missing key 'w_net.z_net.unshared.2.0.weight'"), "\($0)")
        }
    }

    // MARK: Config

    func testConfigValidation() {
        XCTAssertThrowsError(
            try ISFConfig(layers: 1, attributes: 4, codeWidth: 64, normType: .none, latentType: .w)
                .validate()
        ) { XCTAssertTrue("\($0)".contains("must equal inner width 512"), "\($0)") }
        XCTAssertThrowsError(try ISFConfig(layers: 0, attributes: 0).validate()) {
            XCTAssertTrue("\($0)".contains("layers is 0"), "\($0)")
            XCTAssertTrue("\($0)".contains("attributes is 0"), "\($0)")
        }
        XCTAssertNoThrow(try ISFConfig(layers: 18, attributes: 4).validate())
    }

    func testConfigCodableUsesOfficialNames() throws {
        let config = ISFConfig(
            layers: 1, attributes: 5, codeWidth: 100, preNorm: false, normType: .adain,
            residual: true, latentType: .w)
        let data = try JSONEncoder().encode(config)
        let json = try XCTUnwrap(String(data: data, encoding: .utf8))
        for key in [
            "rnd_dim", "num_domains", "latent_dim", "pre_norm", "norm_type", "use_residual",
        ] {
            XCTAssertTrue(json.contains("\"\(key)\""), json)
        }
        XCTAssertEqual(try JSONDecoder().decode(ISFConfig.self, from: data), config)
        // inner_dim and use_residual may be left out; a config that cannot work is refused.
        let minimal =
            #"{"num_layers": 14, "rnd_dim": 64, "num_domains": 4, "latent_dim": 512,"#
            + #" "pre_norm": true, "norm_type": "adaln", "latent_type": "wp"}"#
        let decoded = try JSONDecoder().decode(ISFConfig.self, from: Data(minimal.utf8))
        XCTAssertEqual(decoded, ISFConfig(layers: 14, attributes: 4))
        let broken = minimal.replacingOccurrences(of: "\"wp\"", with: "\"w\"")
        XCTAssertThrowsError(try JSONDecoder().decode(ISFConfig.self, from: Data(broken.utf8)))
    }

    // MARK: Fresh networks

    /// A fresh W+ ISF for 64-wide codes: the documented shapes of every stage and of the
    /// parameters the generalisation changes.
    func testFreshCodeWidth64Shapes() throws {
        let config = ISFConfig(layers: 3, attributes: 4, codeWidth: 64)
        let net = ISFNetwork(config, seed: 7)
        let params = Dictionary(
            uniqueKeysWithValues: net.namedParameters().map {
                ($0.key, $0.parameter.shape)
            })
        XCTAssertEqual(params["w_net.z_net.shared.0.weight"], [512, 68])
        XCTAssertEqual(params["w_net.z_net.unshared.2.4.weight"], [512, 512])
        XCTAssertEqual(params["w_net.adain.norm.weight"], [64])
        XCTAssertEqual(params["w_net.adain.fc.weight"], [128, 512])
        XCTAssertEqual(params["w_net.fc.0.weight"], [64])
        XCTAssertEqual(params["w_net.fc.1.weight"], [64, 64])
        XCTAssertEqual(params["w_net.fc.7.weight"], [64, 64])
        XCTAssertNil(params["w_net.fc.8.weight"])

        var g = RandomGenerator(seed: 3)
        let codes = g.normal([2, 3, 64]), z = g.normal([2, 64])
        let targets = Tensor(shape: [2, 4], [1, 0, 0, 1, 0, 1, 1, 0])
        let s = try net.stages(codes: codes, z: z, targets: targets)
        XCTAssertEqual(s.trunk.shape, [2, 512])
        XCTAssertEqual(s.styles.shape, [2, 3, 512])
        XCTAssertEqual(s.normalizedCodes?.shape, [2, 3, 64])
        XCTAssertEqual(s.combined.shape, [2, 3, 64])
        XCTAssertEqual(s.output.shape, [2, 3, 64])
        XCTAssertTrue(s.output.scalars.allSatisfy(\.isFinite))

        // The keys alone give the config back, and a loaded copy computes the same.
        let state = Dictionary(uniqueKeysWithValues: net.stateDict().map { ($0.key, $0.tensor) })
        XCTAssertEqual(try ISFConfig.infer(from: state, source: "fresh"), config)
        let copy = try ISFNetwork.load(state, source: "fresh")
        XCTAssertEqual(try copy(codes: codes, z: z, targets: targets).scalars, s.output.scalars)

        // A single-code variant squeezes the layer axis.
        let single = ISFNetwork(
            ISFConfig(layers: 1, attributes: 4, codeWidth: 64, preNorm: false, latentType: .w),
            seed: 8)
        let out = try single(codes: g.normal([2, 64]), z: z, targets: targets)
        XCTAssertEqual(out.shape, [2, 64])
    }

    /// PyTorch's default init: Linear weights and biases within ±1/√in and spread over
    /// it, LayerNorms identity, and the same seed gives the same network.
    func testFreshInitialisation() {
        let config = ISFConfig(layers: 2, attributes: 4, codeWidth: 64, normType: .adaln)
        let a = ISFNetwork(config, seed: 11), b = ISFNetwork(config, seed: 11)
        let c = ISFNetwork(config, seed: 12)
        for ((key, p), (_, q)) in zip(a.namedParameters(), b.namedParameters()) {
            XCTAssertEqual(p.value.scalars, q.value.scalars, key)
        }
        XCTAssertNotEqual(
            a.namedParameters()[0].parameter.value.scalars,
            c.namedParameters()[0].parameter.value.scalars)
        let weights = Dictionary(
            uniqueKeysWithValues: a.namedParameters().map { ($0.key, $0.parameter) })
        for (key, inputs) in [
            ("w_net.z_net.shared.0", 68), ("w_net.adain.fc", 512), ("w_net.fc.4", 64),
        ] {
            let bound = 1 / Float(inputs).squareRoot()
            for part in ["weight", "bias"] {
                let v = weights["\(key).\(part)"]!.value.scalars
                let top = v.map(abs).max()!
                XCTAssertLessThanOrEqual(top, bound, "\(key).\(part)")
                // U(−b, b) over ≥ 64 values reaches beyond b/2 (chance of failing < 2⁻⁶⁴).
                XCTAssertGreaterThan(top, bound / 2, "\(key).\(part)")
            }
        }
        XCTAssertEqual(
            weights["w_net.adain.norm.weight"]!.value.scalars, [Float](repeating: 1, count: 64))
        XCTAssertEqual(weights["w_net.fc.3.bias"]!.value.scalars, [Float](repeating: 0, count: 64))
        XCTAssertTrue(a.namedParameters().allSatisfy { $0.parameter.isTrainable })
    }

    /// A fresh network trains: a loss on the output reaches every parameter.
    func testGradientsReachEveryParameter() throws {
        let net = ISFNetwork(
            ISFConfig(layers: 2, attributes: 3, codeWidth: 8, innerWidth: 16), seed: 5)
        var g = RandomGenerator(seed: 9)
        let out = try net(
            codes: g.normal([3, 2, 8]), z: g.normal([3, 64]), targets: g.uniform([3, 3]))
        out.squared().sum().backward()
        for (key, p) in net.namedParameters() {
            let grad = try XCTUnwrap(p.grad, key)
            XCTAssertGreaterThan(grad.abs().sum().item, 0, key)
        }
    }

    // MARK: Helpers

    /// The state dict of a fresh official-width W+ ISF with `layers` branches.
    static func freshState(layers: Int) -> [String: Tensor] {
        let net = ISFNetwork(ISFConfig(layers: layers, attributes: 4), seed: 0)
        return Dictionary(uniqueKeysWithValues: net.stateDict().map { ($0.key, $0.tensor) })
    }
}
