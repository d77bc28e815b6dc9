import Formats
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

/// Shift-tolerant LPIPS (`stlpips-pytorch` 0.0.2) against `fixtures/real/stlpips` (the
/// package's own modules run by torch on the CPU). Needs the `.pth` files from
/// `scripts/fetch-models`; skips without them unless `ISFGAN_REQUIRE_MODELS=1`.
final class STLPIPSTests: XCTestCase {
    func npy(_ name: String) throws -> Tensor {
        try NumPy.readTensor(Fixtures.url("real/stlpips/\(name).npy"))
    }

    func network(_ backbone: STLPIPSBackbone) throws -> STLPIPS {
        try STLPIPS.load(contentsOf: ModelFiles.url(backbone.modelFile.rawValue))
    }

    /// The tolerance: 1e-5 relative, with an absolute floor of 1e-7 for values
    /// near zero (the self pairs are exactly 0 in both; a per-layer term of a shifted pair
    /// can be 1e-5 in size). PyTorch's own float64 vs float32 difference is 2.4e-6 (alex)
    /// and 3.1e-7 (vgg) relative.
    func assertDistances(
        _ a: Tensor, _ reference: Tensor, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var worst: Float = 0
        for (x, y) in zip(a.scalars, reference.scalars) where y != 0 {
            worst = max(worst, abs(x - y) / abs(y))
        }
        print(
            "ST-LPIPS \(what): max rel diff \(worst), max |diff| \(maxAbsDifference(a, reference))")
        assertClose(a, reference, atol: 1e-7, rtol: 1e-5, what, file: file, line: line)
    }

    func checkPairs(_ backbone: STLPIPSBackbone) throws {
        let net = try network(backbone)
        let a = try npy("in_a_seed0")  // [16, 3, 64, 64]
        let cases = [
            ("a_seed0_vs_seed1", try npy("in_b_seed1")), ("b_self", a),
            ("c_shift1", try npy("in_shift1")),
        ]
        for (name, b) in cases {
            let out = try GradMode.withoutGradients { try net.evaluate(a, b) }
            let perLayer = Tensor.stack(out.perLayer, axis: 1)  // [16, 5]
            assertDistances(
                perLayer, try npy("\(backbone)_perlayer_\(name)"), "\(backbone) \(name) per layer")
            assertDistances(
                out.distance, try npy("\(backbone)_dist_\(name)"), "\(backbone) \(name) total")
            if name == "b_self" {
                XCTAssertEqual(out.distance.scalars, [Float](repeating: 0, count: 16), "self is 0")
            }
        }
    }

    func checkTaps(_ backbone: STLPIPSBackbone, _ names: [String]) throws {
        let net = try network(backbone)
        let x = try npy("in_a_seed0").slice(0, 0..<1)  // [1, 3, 64, 64]
        let scaled = net.scaled(x)
        assertClose(
            scaled, try npy("\(backbone)_img0_scaled_input"), atol: 1e-6, rtol: 1e-6, "scaled")
        let taps = try GradMode.withoutGradients { try net.taps(x) }
        for (k, name) in names.enumerated() {
            let expected = try npy("\(backbone)_img0_feat\(k)_\(name)")
            // Features reach tens: 1e-5 relative to the largest value of the tap.
            let scale = max(1, expected.scalars.map(abs).max() ?? 0)
            let diff = maxAbsDifference(taps[k], expected)
            print("ST-LPIPS \(backbone) tap \(name): max |diff| \(diff) (scale \(scale))")
            assertClose(taps[k], expected, atol: 1e-5 * scale, rtol: 0, "\(backbone) tap \(name)")
        }
    }

    func testAlexPairsMatchPyTorch() throws { try checkPairs(.alex) }
    func testVGGPairsMatchPyTorch() throws { try checkPairs(.vgg) }

    func testAlexTapsMatchPyTorch() throws {
        try checkTaps(.alex, ["relu1", "relu2", "relu3", "relu4", "relu5"])
    }

    func testVGGTapsMatchPyTorch() throws {
        try checkTaps(.vgg, ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"])
    }

    func testTrunksAreRecognisedAndFrozen() throws {
        for backbone in STLPIPSBackbone.allCases {
            let net = try network(backbone)
            XCTAssertEqual(net.backbone, backbone)
            XCTAssertTrue(net.trainableParameters.isEmpty)
        }
        // The MANIFEST's counts exclude the blur filters and the scaling buffers, which
        // are buffers here too.
        XCTAssertEqual(try network(.alex).parameterCount, 2_470_848)
        XCTAssertEqual(try network(.vgg).parameterCount, 14_716_160)
        // 21 px: conv 11 (p 2) → 15, blur → 9, pool → 7, blur → 5, pool → 3, blur → 3,
        // and reflection padding by 2 needs a side of 3 at each blur.
        XCTAssertEqual(try network(.alex).minimumSide, 21)
    }

    /// The gradient with respect to the first image agrees with central finite
    /// differences on a small input (32×32, alex; a few entries). The sum of five spatial
    /// means is smooth away from ReLU and max-pool switches, so a step of 1e-3 with a 5e-2
    /// relative tolerance (float32 rounding of a distance of ~0.1 divided by 2e-3).
    func testGradientMatchesFiniteDifferences() throws {
        let net = try network(.alex)
        let x = try npy("in_a_seed0").slice(0, 0..<1).slice(2, 0..<32).slice(3, 0..<32)
            .contiguous()
        let y = try npy("in_b_seed1").slice(0, 0..<1).slice(2, 0..<32).slice(3, 0..<32)
            .contiguous()
        let leaf = x.detached().requiringGrad()
        let d = try net(leaf, y).sum()
        let grad = Tensor.gradients(of: d, withRespectTo: [leaf])[0]
        XCTAssertFalse(grad.scalars.contains { $0.isNaN }, "no NaN in the gradient")
        let base = x.scalars
        let eps: Float = 1e-3
        // The largest entries of the gradient, where the test is most sensitive.
        let order = grad.scalars.indices.sorted { abs(grad.scalars[$0]) > abs(grad.scalars[$1]) }
        for i in order.prefix(6) {
            var plus = base, minus = base
            plus[i] += eps
            minus[i] -= eps
            let dp = try GradMode.withoutGradients { try net(Tensor(shape: x.shape, plus), y).item }
            let dm = try GradMode.withoutGradients {
                try net(Tensor(shape: x.shape, minus), y).item
            }
            let numeric = (Double(dp) - Double(dm)) / (Double(plus[i]) - Double(minus[i]))
            XCTAssertEqual(
                Double(grad.scalars[i]), numeric, accuracy: 5e-2 * abs(numeric) + 1e-4,
                "element \(i)")
        }
    }

    /// Gradient descent on one image lowers its distance to the other at every step (the
    /// training use). Steps are normalised so that the largest pixel moves by 0.01, small
    /// enough for the first-order decrease to dominate.
    func testGradientStepsLowerTheDistance() throws {
        let net = try network(.alex)
        var x = try npy("in_a_seed0").slice(0, 0..<2).contiguous()
        let y = try npy("in_b_seed1").slice(0, 0..<2).contiguous()
        var previous = try GradMode.withoutGradients { try net(x, y) }.scalars
        let start = previous
        for step in 0..<4 {
            let leaf = x.detached().requiringGrad()
            let g = Tensor.gradients(of: try net(leaf, y).sum(), withRespectTo: [leaf])[0]
            let largest = g.scalars.map(abs).max()!
            XCTAssertGreaterThan(largest, 0)
            x = (x - g * (0.01 / largest)).detached()
            let now = try GradMode.withoutGradients { try net(x, y) }.scalars
            for i in 0..<2 {
                XCTAssertLessThan(now[i], previous[i], "step \(step), pair \(i)")
            }
            previous = now
        }
        print("ST-LPIPS descent: \(start) → \(previous)")
    }

    /// Gradients are finite where whole feature vectors are zero (all-black images make
    /// many ReLU outputs zero across every channel; the plain composition gives NaN).
    func testGradientIsFiniteOnFlatImages() throws {
        let net = try network(.alex)
        let x = Tensor.full([1, 3, 32, 32], -1).requiringGrad()
        let y = Tensor.full([1, 3, 32, 32], 1)
        let g = Tensor.gradients(of: try net(x, y).sum(), withRespectTo: [x])[0]
        XCTAssertTrue(g.scalars.allSatisfy { $0.isFinite })
    }

    /// As a `PerceptualLoss` (the ISF content loss): the batch mean of the distances.
    func testPerceptualLossIsTheBatchMean() throws {
        let net: PerceptualLoss = try network(.alex)
        XCTAssertEqual(net.perceptualName, "stlpips-alex")
        let a = try npy("in_a_seed0").slice(0, 0..<4)
        let b = try npy("in_b_seed1").slice(0, 0..<4)
        let loss = try GradMode.withoutGradients { try net.perceptualLoss(a, b) }
        let reference = try npy("alex_dist_a_seed0_vs_seed1").scalars.prefix(4)
        XCTAssertEqual(loss.count, 1)
        XCTAssertEqual(loss.item, reference.reduce(0, +) / 4, accuracy: 1e-5 * loss.item)
    }

    /// `isfgan inspect` tells the shift-tolerant files apart from plain LPIPS.
    func testInspectorRecognisesShiftTolerantLPIPS() throws {
        for backbone in STLPIPSBackbone.allCases {
            let url = try ModelFiles.url(backbone.modelFile.rawValue)
            let state = try TorchCheckpoint(contentsOf: url).stateDict()
            let keys = state.entries.map { ($0.key, $0.tensor.shape) }
            let arch = try XCTUnwrap(Inspector.recognise(keys))
            XCTAssertEqual(arch.kind, "LPIPS")
            XCTAssertTrue(arch.properties.contains(["backbone", backbone.rawValue]))
            XCTAssertTrue(arch.properties.contains { $0.first == "variant" }, "\(arch.properties)")
        }
    }

    func testBadInputsAreTypedErrors() throws {
        let net = STLPIPS(backbone: .alex)
        XCTAssertThrowsError(try net(Tensor.zeros([1, 3, 8, 8]), Tensor.zeros([1, 3, 8, 8]))) {
            XCTAssertTrue("\($0)".contains("too small"), "\($0)")
        }
        XCTAssertThrowsError(try net(Tensor.zeros([1, 1, 64, 64]), Tensor.zeros([1, 1, 64, 64])))
        XCTAssertThrowsError(try net(Tensor.zeros([1, 3, 64, 64]), Tensor.zeros([2, 3, 64, 64])))
        XCTAssertThrowsError(
            try STLPIPS.load(["lin0.model.1.weight": Tensor.zeros([1, 64, 1, 1])], source: "x.pth")
        ) {
            XCTAssertTrue("\($0)".contains("net.slice1.0.weight"), "\($0)")
        }
    }
}
