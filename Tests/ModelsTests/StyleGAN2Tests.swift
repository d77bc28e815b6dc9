import Formats
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

final class StyleGAN2Tests: XCTestCase {
    /// The tolerance: 1e-4 × max(1, largest |reference value|). Outputs of these
    /// random weights reach about ±12, and a wrong layer is off by order one.
    func assertImage(
        _ a: Tensor, _ reference: Tensor, _ what: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let scale = max(1, reference.scalars.map(abs).max() ?? 0)
        assertClose(a, reference, atol: 1e-4 * scale, rtol: 0, what, file: file, line: line)
    }

    func checkParity(_ case_: String) throws {
        func npy(_ name: String) throws -> Tensor {
            try NumPy.readTensor(Fixtures.url("\(case_)/\(name).npy"))
        }
        let g = try GeneratorFile.loadStyleGAN2(Fixtures.url("\(case_)/\(case_).pt"))
        let z = try npy("z"), wplus = try npy("wplus")
        for form in [ModulationForm.shared, .grouped] {
            g.modulationForm = form
            GradMode.withoutGradients {
                let w = g.map(z)
                assertClose(w, try! npy("w"), atol: 1e-5, rtol: 1e-5, "w")
                assertImage(
                    g.render(g.broadcast(w), noise: .constant), try! npy("img_z"), "img_z \(form)")
                assertImage(
                    g.render(wplus, noise: .constant), try! npy("img_wplus"), "img_wplus \(form)")
                let mean = try! npy("mean_latent")
                let t = g.truncate(g.broadcast(w), psi: 0.7, center: mean)
                assertClose(t, try! npy("latent_trunc"), atol: 1e-5, rtol: 1e-5, "latent_trunc")
                assertImage(
                    g.render(t, noise: .constant), try! npy("img_trunc"), "img_trunc \(form)")
            }
        }
        // The checkpoint's latent_avg is the saved mean latent.
        assertClose(g.latentAverage!, try npy("mean_latent"), atol: 0, rtol: 0)
        GradMode.withoutGradients {
            assertClose(
                g.meanLatent(count: 1024, seed: 0).reshaped([g.codeWidth]).mean(), Tensor(0),
                atol: 10, rtol: 0)
        }
    }

    func testTinyMatchesPyTorch() throws { try checkParity("stylegan2-tiny") }
    func testSmallMatchesPyTorch() throws { try checkParity("stylegan2-small") }

    func testSettingsAreReadOffTheKeys() throws {
        let g = try GeneratorFile.loadStyleGAN2(Fixtures.url("stylegan2-small/stylegan2-small.pt"))
        XCTAssertEqual(g.config.size, 64)
        XCTAssertEqual(g.config.styleDim, 128)
        XCTAssertEqual(g.config.mlpLayers, 4)
        XCTAssertEqual(g.config.channels, [64, 64, 64, 64, 32])
        XCTAssertEqual(g.codeLayers, 10)
    }

    /// Config-f at 256 px with random weights: shapes, determinism, the two modulation
    /// forms agreeing, and the mapping network against a loop written out by hand.
    func testRandomConfigF256() {
        let config = StyleGAN2Config.configF(size: 256)
        XCTAssertEqual(config.channels, [512, 512, 512, 512, 512, 256, 128])
        XCTAssertEqual(config.nLatent, 14)
        XCTAssertEqual(config.channelMultiplier, 2)
        let g = StyleGAN2Generator.randomlyInitialised(config, seed: 3)
        var rng = RandomGenerator(seed: 4)
        let z = rng.normal([1, 512])
        GradMode.withoutGradients {
            let w = g.map(z)
            // Mapping by hand: pixel norm, then 8 × (x·(W·0.01/√512)ᵀ, + b·0.01, lrelu·√2).
            var x = z.scalars.map(Double.init)
            let ms = x.map { $0 * $0 }.reduce(0, +) / 512
            x = x.map { $0 / (ms + 1e-8).squareRoot() }
            for (key, p) in g.namedParameters()
            where key.hasPrefix("style.") && key.hasSuffix(".weight") {
                let wt = p.value.scalars.map(Double.init)
                let b = g.namedParameters().first {
                    $0.key == key.replacingOccurrences(of: "weight", with: "bias")
                }!
                .parameter.value.scalars.map(Double.init)
                let scale = 0.01 / 512.0.squareRoot()
                x = (0..<512).map { o in
                    var s = 0.0
                    for i in 0..<512 { s += x[i] * wt[o * 512 + i] * scale }
                    s += b[o] * 0.01
                    return (s > 0 ? s : 0.2 * s) * 2.0.squareRoot()
                }
            }
            let wScale = max(1, x.map(abs).max()!)
            assertClose(
                w, Tensor(shape: [1, 512], doubles: x), atol: Float(1e-4 * wScale), rtol: 0,
                "mapping")

            let codes = g.broadcast(w)
            g.modulationForm = .shared
            let a = g.render(codes, noise: .constant)
            XCTAssertEqual(a.shape, [1, 3, 256, 256])
            let again = g.render(codes, noise: .constant)
            XCTAssertEqual(a.scalars, again.scalars, "same code, same noise, same image")
            g.modulationForm = .grouped
            let b = g.render(codes, noise: .constant)
            let scale = max(1, a.scalars.map(abs).max()!)
            assertClose(b, a, atol: 1e-4 * scale, rtol: 0, "grouped vs shared modulation")
            // rosinality initialises noise strengths to 0; give them some so noise shows.
            for (key, p) in g.namedParameters() where key.hasSuffix("noise.weight") {
                p.assign(Tensor.full([1], 0.1))
            }
            let r1 = g.render(codes, noise: .random(seed: 9)),
                r2 = g.render(codes, noise: .random(seed: 10))
            XCTAssertGreaterThan(maxAbsDifference(r1, r2), 0, "random noise changes the image")
        }
    }

    func testCodesGetGradientsButWeightsDoNot() throws {
        let g = try GeneratorFile.loadStyleGAN2(Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt"))
        var rng = RandomGenerator(seed: 5)
        let codes = rng.normal([2, g.codeLayers, g.codeWidth]).requiringGrad()
        let loss = g.render(codes, noise: .constant).squared().mean()
        let grads = Tensor.gradients(of: loss, withRespectTo: [codes])
        XCTAssertGreaterThan(grads[0].abs().sum().item, 0)
        XCTAssertTrue(g.namedParameters().allSatisfy { !$0.parameter.value.requiresGrad })
    }
}
