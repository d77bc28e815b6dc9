import Formats
import Foundation
import Layers
import TensorCore
import TestSupport
import XCTest

@testable import Models

/// ‖a − b‖ / ‖b‖ over all elements, in Double.
func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape || a.count == b.count, "shapes \(a.shape) and \(b.shape)")
    var diff = 0.0, ref = 0.0
    for (x, y) in zip(a.contiguous().scalars, b.contiguous().scalars) {
        diff += Double(x - y) * Double(x - y)
        ref += Double(y) * Double(y)
    }
    return (diff / max(ref, 1e-300)).squareRoot()
}

/// The discriminator against the reference (`isf-discriminator/64-maxconv64`), its R1
/// penalty (a gradient of a gradient), its settings for other sizes and its errors.
final class DiscriminatorTests: XCTestCase {
    let dir = "isf-discriminator/64-maxconv64"

    func npy(_ name: String) throws -> Tensor {
        try NumPy.readTensor(try Fixtures.url("\(dir)/\(name).npy"))
    }

    func loadFixture() throws -> Discriminator {
        try Discriminator.load(checkpoint: try Fixtures.url("\(dir)/000001_nets.ckpt"))
    }

    /// Outputs, the input gradient, both R1 values and the cross-entropies within 1e-4
    /// relative (the bar; the reference itself moves by ~1e-7 with the thread
    /// count, so only summation order separates the two).
    func testMatchesReference() throws {
        let d = try loadFixture()
        XCTAssertEqual(d.config, DiscriminatorConfig(imageSize: 64, attributes: 4, maxWidth: 64))
        XCTAssertEqual(d.parameterCount, 1_114_245)
        let x = try npy("x"), labels = try npy("labels"), pw = try npy("pos_weight")

        let input = x.requiringGrad()
        let (cls, src) = try d(input)
        let grad = Tensor.gradients(of: cls.sum(), withRespectTo: [input])[0]
        let r1Cls = Discriminator.r1Penalty(output: cls, input: input)
        let r1Src = Discriminator.r1Penalty(output: src, input: input)
        let bce = Loss.binaryCrossEntropyWithLogits(cls, targets: labels, posWeight: pw)
        let bceNoWeight = Loss.binaryCrossEntropyWithLogits(cls, targets: labels)
        let advReal = Loss.binaryCrossEntropyWithLogits(src, targets: Tensor.ones(src.shape))
        let advFake = Loss.binaryCrossEntropyWithLogits(src, targets: Tensor.zeros(src.shape))

        let checks: [(String, Tensor, String)] = [
            ("out_cls", cls, "out_cls"), ("out_src", src, "out_src"),
            ("grad_x_out_cls_sum", grad, "grad_x_out_cls_sum"), ("r1_cls", r1Cls, "r1_cls"),
            ("r1_src", r1Src, "r1_src"), ("bce_cls_posweight", bce, "bce_cls_posweight"),
            ("bce_cls_nopw", bceNoWeight, "bce_cls_nopw"), ("adv_real", advReal, "adv_real"),
            ("adv_fake", advFake, "adv_fake"),
        ]
        for (name, value, file) in checks {
            let ref = try npy(file)
            XCTAssertEqual(value.count, ref.count, name)
            let e = relativeError(value.reshaped(ref.shape), ref)
            print("isf-discriminator \(name): relative error \(e)")
            XCTAssertLessThan(e, 1e-4, name)
        }
        // Saving gives back the file's keys.
        let state = try TorchCheckpoint(contentsOf: try Fixtures.url("\(dir)/000001_nets.ckpt"))
            .stateDict("discriminator").tensors
        XCTAssertEqual(Set(d.stateDict().map(\.key)), Set(state.keys))
    }

    /// R1 differentiates into the weights (a gradient of a gradient): the directional
    /// derivative along a random direction of a late convolution's weight matches a
    /// central difference.
    ///
    /// R1 is not even continuous in the weights: each LeakyReLU whose input crosses zero
    /// flips its slope inside ∂D/∂x. A late layer (`main.4.conv2`, 4×4 outputs) has few
    /// such units, so a step of 1e-3 of the mean weight crosses none and the two agree to
    /// ~0.1 % (float32 rounding of R1 ≈ 1e-2 is ~1e-9); tolerance 2 %. An early layer
    /// (a million units at 64×64) gives meaningless differences at any step.
    func testR1GradientReachesWeights() throws {
        let d = try loadFixture()
        let x = try npy("x").slice(0, 0..<2)
        let weight = try XCTUnwrap(
            d.namedParameters().first { $0.key == "main.4.conv2.weight" }?.parameter)
        let base = weight.value.detached()
        let direction = Tensor.randn(base.shape, seed: 7) * 1e-3 * base.abs().mean().item

        func r1() throws -> Tensor {
            let input = x.requiringGrad()
            return Discriminator.r1Penalty(output: try d(input).attributes, input: input)
        }
        d.zeroGrad()
        try r1().backward()
        let analytic = (try XCTUnwrap(weight.grad) * direction).sum().item
        weight.assign(base + direction)
        let plus = try r1().item
        weight.assign(base - direction)
        let minus = try r1().item
        weight.assign(base)
        let numeric = (plus - minus) / 2
        XCTAssertNotEqual(analytic, 0)
        XCTAssertEqual(analytic, numeric, accuracy: 0.02 * abs(numeric))
    }

    /// Other sizes and widths build the spec's layout and run end to end.
    func testAnySizeAndWidth() throws {
        for (size, maxWidth) in [(32, 16), (128, 64)] {
            let config = DiscriminatorConfig(imageSize: size, attributes: 3, maxWidth: maxWidth)
            let d = Discriminator(config, seed: 1)
            XCTAssertEqual(config.blockCount, size.trailingZeroBitCount - 2)
            XCTAssertEqual(config.firstWidth, 16384 / size)
            XCTAssertEqual(
                config.finalWidth, min(maxWidth, 16384 / size * (1 << config.blockCount)))
            let (cls, src) = try d(Tensor.randn([2, 3, size, size], seed: 3))
            XCTAssertEqual(cls.shape, [2, 3])
            XCTAssertEqual(src.shape, [2])
            // The keys carry the settings back.
            let state = Dictionary(uniqueKeysWithValues: d.stateDict().map { ($0.key, $0.tensor) })
            let back = try Discriminator.load(state, source: "round trip")
            XCTAssertEqual(back.config.imageSize, size)
            let (cls2, _) = try back(Tensor.randn([2, 3, size, size], seed: 3))
            XCTAssertEqual(maxAbsDifference(cls, cls2), 0)
        }
    }

    /// Mistakes a user can make give errors that say what was expected.
    func testErrors() throws {
        XCTAssertThrowsError(try DiscriminatorConfig(imageSize: 48).validate()) {
            XCTAssertTrue("\($0)".contains("power of two"), "\($0)")
        }
        let d = Discriminator(DiscriminatorConfig(imageSize: 32, attributes: 2, maxWidth: 8))
        XCTAssertThrowsError(try d(Tensor.zeros([1, 3, 64, 64]))) {
            XCTAssertTrue("\($0)".contains("[N, 3, 32, 32]"), "\($0)")
        }
        XCTAssertThrowsError(
            try Discriminator.load(["w_net.fc.0.weight": Tensor.zeros([4])], source: "f.ckpt")
        ) { XCTAssertTrue("\($0)".contains("main.0.weight"), "\($0)") }
        var state = Dictionary(uniqueKeysWithValues: d.stateDict().map { ($0.key, $0.tensor) })
        state["main.1.conv1.bias"] = Tensor.zeros([3])
        XCTAssertThrowsError(try Discriminator.load(state, source: "f.ckpt")) {
            XCTAssertTrue("\($0)".contains("main.1.conv1.bias"), "\($0)")
        }
    }

    /// The two initialisations have the documented spreads.
    func testInitialisation() {
        let config = DiscriminatorConfig(imageSize: 32, attributes: 2, maxWidth: 32)
        let he = Discriminator(config, initialization: .he, seed: 5)
        let std = he.blocks[0].conv1.weight.value.squared().mean().item.squareRoot()
        XCTAssertEqual(std, (2 / Float(512 * 9)).squareRoot(), accuracy: 0.01 * std)
        XCTAssertEqual(he.stem.bias!.value.abs().max().item, 0)
        let torch = Discriminator(config, seed: 5)
        let bound = 1 / Float(27).squareRoot()
        XCTAssertLessThanOrEqual(torch.stem.weight.value.abs().max().item, bound)
        XCTAssertGreaterThan(torch.stem.bias!.value.abs().max().item, 0)
    }
}

final class DiscriminatorWidthTests: XCTestCase {
    /// A first width other than the official formula (isfgan's CPU setting) is built,
    /// read back from the keys, and runs at its size.
    func testFirstWidthOverrideRoundTrips() throws {
        let config = DiscriminatorConfig(imageSize: 16, attributes: 2, maxWidth: 32, firstWidth: 8)
        XCTAssertEqual(config.firstWidth, 8)
        XCTAssertEqual(config.blockWidths.map(\.output), [16, 32])
        let d = Discriminator(config, initialization: .pytorchDefault, seed: 1)
        var state: [String: Tensor] = [:]
        for (k, t) in d.stateDict() { state[k] = t }
        XCTAssertEqual(state["main.0.weight"]?.shape, [8, 3, 3, 3])
        XCTAssertEqual(try DiscriminatorConfig.infer(from: state, source: "test"), config)
        let official = DiscriminatorConfig(imageSize: 16, attributes: 2, maxWidth: 32)
        XCTAssertEqual(official.firstWidth, 1024)
        XCTAssertThrowsError(
            try DiscriminatorConfig(imageSize: 16, attributes: 2, firstWidth: 0).validate())
    }
}
