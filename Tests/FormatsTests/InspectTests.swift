import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

final class InspectTests: XCTestCase {
    func property(_ a: FileSummary.Architecture?, _ name: String) -> String? {
        a?.properties.first { $0[0] == name }?[1]
    }

    func testStyleGAN2GeneratorCheckpoint() throws {
        let s = try Inspector.inspect(try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt"))
        XCTAssertEqual(s.format, "PyTorch zip")
        XCTAssertEqual(s.entries.map(\.name), ["g_ema", "latent_avg"])
        let g = s.entries[0]
        XCTAssertEqual(g.kind, "state dict")
        // meta.json: num_params 96,851 learnable; the state dict adds noise and blur buffers.
        XCTAssertGreaterThan(g.parameters, 96_851)
        let a = try XCTUnwrap(g.architecture)
        XCTAssertEqual(a.kind, "StyleGAN2 generator (rosinality)")
        XCTAssertEqual(property(a, "size"), "32 px")
        XCTAssertEqual(property(a, "style"), "64")
        XCTAssertEqual(property(a, "mapping layers"), "2")
        XCTAssertEqual(property(a, "latents"), "8")
        XCTAssertEqual(property(a, "channels"), "4:32 8:32 16:32 32:32 (custom)")
        XCTAssertTrue(s.text.contains("g_ema.style.1.weight"))
        XCTAssertTrue(s.text.contains("[64, 64]  float32"))
        let json = try JSONSerialization.jsonObject(with: Data(s.json().utf8)) as? [String: Any]
        XCTAssertEqual(json?["format"] as? String, "PyTorch zip")
    }

    func testStandardGeneratorKeysGiveTheMultiplier() {
        // rosinality 256 px, channel multiplier 2: 512 up to 64 px, 256 at 128, 128 at 256.
        var keys: [(String, [Int])] = [
            ("input.input", [1, 512, 4, 4]),
            ("conv1.conv.weight", [1, 512, 512, 3, 3]),
        ]
        for i in 1...8 { keys.append(("style.\(i).weight", [512, 512])) }
        let out = [8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128]
        for i in 3...8 {
            keys.append(("convs.\(2 * (i - 3)).conv.weight", [1, out[1 << i]!, 512, 3, 3]))
            keys.append(("convs.\(2 * (i - 3) + 1).conv.weight", [1, out[1 << i]!, 512, 3, 3]))
        }
        let a = Inspector.recognise(keys)
        XCTAssertEqual(property(a, "size"), "256 px")
        XCTAssertEqual(property(a, "channel multiplier"), "2")
        XCTAssertEqual(property(a, "mapping layers"), "8")
        XCTAssertEqual(
            a?.summary,
            "StyleGAN2 generator (rosinality), size 256 px, style 512, "
                + "mapping layers 8, latents 14, channel multiplier 2")
    }

    func testMappingNetworks() throws {
        let expected = [
            ("isf-mapnet/cat2dog", "14", "adaln", "1"),
            ("isf-mapnet/ffhq-w", "1", "adaln", "1"),
            ("isf-mapnet/ffhq-w-prenorm0", "1", "adaln", "0"),
            ("isf-mapnet/ffhq-w-adain", "1", "adain", "1"),
            ("isf-mapnet/ffhq-w-none-res", "1", "none", "1"),
        ]
        for (c, layers, norm, pre) in expected {
            let s = try Inspector.inspect(try Fixtures.url("\(c)/000001_nets_ema.ckpt"))
            let a = s.entries.first { $0.name == "mapnet" }?.architecture
            XCTAssertEqual(a?.kind, "ISF-GAN mapping network", c)
            XCTAssertEqual(property(a, "layers"), layers, c)
            XCTAssertEqual(property(a, "norm type"), norm, c)
            XCTAssertEqual(property(a, "pre-norm"), pre, c)
            XCTAssertEqual(property(a, "noise + domains"), "68", c)
        }
        // meta.json: cat2dog num_params = 13,175,296 (no buffers in a mapnet).
        let s = try Inspector.inspect(try Fixtures.url("isf-mapnet/cat2dog/000001_nets_ema.ckpt"))
        XCTAssertEqual(s.entries.first?.parameters, 13_175_296)
    }

    func testDiscriminatorAndLPIPS() throws {
        let s = try Inspector.inspect(
            try Fixtures.url("isf-discriminator/64-maxconv64/000001_nets.ckpt"))
        let a = s.entries.first?.architecture
        XCTAssertEqual(property(a, "image size"), "64 px")
        XCTAssertEqual(property(a, "domains"), "4")
        XCTAssertEqual(property(a, "max conv dim"), "64")
        XCTAssertEqual(s.entries.first?.parameters, 1_114_245)  // meta.json num_params
        let l = try Inspector.inspect(try Fixtures.url("lpips/alex/lpips_alex_rand.pt"))
        XCTAssertEqual(l.entries.count, 1)
        XCTAssertEqual(property(l.entries[0].architecture, "backbone"), "alex")
    }

    func testSafetensorsNpyAndImages() throws {
        let dir = temporaryDirectory("inspect")
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("m.safetensors")
        try Safetensors.write([("a", Tensor.zeros([2, 3]))], metadata: ["step": "7"], to: f)
        let s = try Inspector.inspect(f)
        XCTAssertEqual(s.format, "safetensors")
        XCTAssertEqual(s.metadata, ["step": "7"])
        XCTAssertEqual(s.entries.first?.parameters, 6)
        let n = dir.appendingPathComponent("z.npy")
        try NumPy.write(RawArray(int64: [1, 2], shape: [2]), to: n)
        XCTAssertEqual(try Inspector.inspect(n).entries.first?.tensors.first?.dtype, "int64")
        let p = dir.appendingPathComponent("i.png")
        try ImageIO.write(
            Image(width: 3, height: 2, channels: 3, pixels: .init(repeating: 0, count: 18)), to: p)
        XCTAssertEqual(try Inspector.inspect(p).entries.first?.value, "3x2, 3 channels")
        let junk = dir.appendingPathComponent("junk.bin")
        try Data("hello".utf8).write(to: junk)
        XCTAssertThrowsError(try Inspector.inspect(junk)) {
            XCTAssertEqual(($0 as? FormatError)?.kind, .badMagic)
        }
    }
}
