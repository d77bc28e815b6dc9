import Formats
import Foundation
import Layers
import TensorCore
import TestSupport
import XCTest

@testable import Models

/// LPIPS against the `lpips` package (`lpips/alex`: random AlexNet backbone, the package's
/// real heads), its other weight layouts, the VGG variant and max pooling.
final class LPIPSTests: XCTestCase {
    let dir = "lpips/alex"

    func npy(_ name: String) throws -> Tensor {
        try NumPy.readTensor(try Fixtures.url("\(dir)/\(name).npy"))
    }

    func fileState() throws -> [String: Tensor] {
        try TorchCheckpoint(contentsOf: try Fixtures.url("\(dir)/lpips_alex_rand.pt"))
            .stateDict().tensors
    }

    /// Features, per-layer distances, the distance and the official metric's value within
    /// 1e-4 relative: float32 convolutions in another summation order (the reference moves
    /// by ~4e-9 with the thread count).
    func testMatchesPackage() throws {
        let m = try LPIPS.load(contentsOf: try Fixtures.url("\(dir)/lpips_alex_rand.pt"))
        XCTAssertEqual(m.backbone, .alex)
        XCTAssertEqual(m.parameterCount, 2_470_848)
        XCTAssertTrue(m.trainableParameters.isEmpty, "LPIPS weights are frozen")
        let x0 = try npy("x0"), x1 = try npy("x1")

        let features = m.features(x0)
        for l in 0..<5 {
            let e = relativeError(features[l], try npy("feat\(l)_x0"))
            print("lpips feat\(l)_x0: relative error \(e)")
            XCTAssertLessThan(e, 1e-4, "feature \(l)")
        }
        for form in [LPIPSNormalization.package, .reference] {
            m.normalization = form
            let layers = try m.layerDistances(x0, x1)
            for l in 0..<5 {
                let e = relativeError(layers[l], try npy("dist_layer\(l)"))
                print("lpips dist_layer\(l) (\(form)): relative error \(e)")
                XCTAssertLessThan(e, 1e-4, "layer \(l), \(form)")
            }
            let e = relativeError(try m.distances(x0, x1), try npy("dist"))
            let eMean = relativeError(try m.perceptualLoss(x0, x1), try npy("dist_mmuit_lpips"))
            print("lpips dist (\(form)): \(e); mmuit mean: \(eMean)")
            XCTAssertLessThan(e, 1e-4)
            XCTAssertLessThan(eMean, 1e-4)
            XCTAssertEqual(try m.distances(x0, x0).abs().max().item, 0, "d(x, x) = 0")
            // Sharing y's features changes nothing.
            let shared = try m.perceptualLosses([x0, x1], x1)
            XCTAssertEqual(shared[0].item, try m.perceptualLoss(x0, x1).item)
            XCTAssertEqual(shared[1].item, 0)
        }
    }

    /// A torchvision backbone (`features.N.*`) plus heads under the StarGAN-v2 names loads
    /// to the same network as the package's single file.
    func testOtherLayouts() throws {
        let state = try fileState()
        var torchvision: [String: Tensor] = [:]
        for (k, v) in state {
            let parts = k.split(separator: ".").map(String.init)
            if parts[0] == "net" {
                torchvision["features.\(parts[2]).\(parts[3])"] = v
            } else if k.hasPrefix("lin"), !k.hasPrefix("lins") {
                let l = parts[0].dropFirst(3)
                torchvision["lpips_weights.\(l).main.1.weight"] = v
            }
        }
        let a = try LPIPS.load(state, source: "package")
        let b = try LPIPS.load(torchvision, source: "tv")
        let x0 = try npy("x0"), x1 = try npy("x1")
        XCTAssertEqual(
            maxAbsDifference(try a.distances(x0, x1), try b.distances(x0, x1)), 0)
    }

    /// Gradients reach the images and match a central difference along a random
    /// direction. The loss is only piecewise smooth (ReLU and max-pool switches of the
    /// random backbone), so the step must be tiny: at 1e-4 per pixel the two agree to
    /// ~0.5 % (at 1e-2 they differ by 40 %, from switches alone); tolerance 3 %.
    func testGradientsReachImages() throws {
        let m = try LPIPS.load(try fileState(), source: "package")
        let x0 = try npy("x0").slice(0, 0..<1).slice(2, 0..<32).slice(3, 0..<32).contiguous()
        let x1 = try npy("x1").slice(0, 0..<1).slice(2, 0..<32).slice(3, 0..<32).contiguous()
        let a = x0.requiringGrad()
        let loss = try m.perceptualLoss(a, x1)
        let g = Tensor.gradients(of: loss, withRespectTo: [a])[0]
        XCTAssertGreaterThan(g.abs().max().item, 0)
        // Directional derivative against a central difference.
        let v = Tensor.randn(x0.shape, seed: 11) * 1e-4
        let analytic = (g * v).sum().item
        let plus = try m.perceptualLoss(x0 + v, x1).item
        let minus = try m.perceptualLoss(x0 - v, x1).item
        XCTAssertEqual(analytic, (plus - minus) / 2, accuracy: 0.03 * abs(analytic))
    }

    /// Max pooling: values and gradient on a case with overlapping windows and ties, and
    /// its second order (the scatter/gather pair).
    func testMaxPool() {
        let x = Tensor(shape: [1, 1, 3, 5], [1, 5, 2, 5, 0, 3, 4, 9, 1, 1, 0, 2, 8, 7, 6])
        let leaf = x.requiringGrad()
        let y = leaf.maxPool2d(kernelSize: 3, stride: 2)  // windows at columns 0..<3, 2..<5
        XCTAssertEqual(y.shape, [1, 1, 1, 2])
        XCTAssertEqual(y.scalars, [9, 9], "the 9 lies in both windows")
        let g = Tensor.gradients(
            of: (y * Tensor(shape: [1, 1, 1, 2], [2, 3])).sum(),
            withRespectTo: [leaf])[0]
        var expected = [Float](repeating: 0, count: 15)
        expected[7] = 5  // both windows chose the 9: 2 + 3
        XCTAssertEqual(g.scalars, expected)
        // Ties: the first in row-major order wins.
        let tied = Tensor(shape: [1, 1, 2, 2], [1, 3, 3, 0]).requiringGrad()
        let gt = Tensor.gradients(
            of: tied.maxPool2d(kernelSize: 2, stride: 2).sum(),
            withRespectTo: [tied])[0]
        XCTAssertEqual(gt.scalars, [0, 1, 0, 0])
        // Distinct values 0.05 apart, so that the finite-difference step (1e-2) never
        // changes which element a window picks.
        var rng = RandomGenerator(seed: 4)
        let order = rng.permutation(2 * 3 * 9 * 9).map { Float($0) * 0.05 - 10 }
        let r = Tensor(shape: [2, 3, 9, 9], order)
        checkGradients([r]) { xs in (xs[0].maxPool2d(kernelSize: 3, stride: 2).squared()).sum() }
        checkSecondOrder([r]) { xs in (xs[0].maxPool2d(kernelSize: 2, stride: 2).squared()).sum() }
    }

    /// The VGG variant builds the package's keys and runs.
    func testVGGLayout() throws {
        let m = LPIPS(backbone: .vgg)
        let keys = Set(m.stateDict().map(\.key))
        for k in [
            "net.slice1.0.weight", "net.slice1.2.bias", "net.slice2.5.weight",
            "net.slice3.14.weight", "net.slice4.21.weight", "net.slice5.28.bias",
            "lin4.model.1.weight", "scaling_layer.shift",
        ] {
            XCTAssertTrue(keys.contains(k), k)
        }
        XCTAssertEqual(m.parameterCount, 14_714_688 + 1472)
        let f = m.features(Tensor.zeros([1, 3, 32, 32]))
        XCTAssertEqual(f.map { $0.shape[1] }, [64, 128, 256, 512, 512])
        XCTAssertEqual(f.map { $0.shape[2] }, [32, 16, 8, 4, 2])
    }

    func testErrors() throws {
        let m = LPIPS(backbone: .alex)
        XCTAssertThrowsError(
            try m.distances(Tensor.zeros([1, 3, 16, 16]), Tensor.zeros([1, 3, 16, 16]))
        ) {
            XCTAssertTrue("\($0)".contains("at least 31"), "\($0)")
        }
        XCTAssertThrowsError(
            try m.distances(Tensor.zeros([1, 3, 64, 64]), Tensor.zeros([2, 3, 64, 64])))
        XCTAssertThrowsError(try LPIPS.load(["foo": Tensor.zeros([1])], source: "w.pth")) {
            XCTAssertTrue("\($0)".contains("features.0.weight"), "\($0)")
        }
    }
}
