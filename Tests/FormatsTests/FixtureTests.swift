import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

/// Every checkpoint and array in the shared fixtures loads, and the tensors match their
/// `.npy` twins bit for bit (both were written from the same float32 tensors, so any
/// difference is a reader bug: the tolerance is zero).
final class FixtureTests: XCTestCase {
    static let cases = [
        "stylegan2-tiny", "stylegan2-small", "isf-mapnet/cat2dog", "isf-mapnet/ffhq-w",
        "isf-mapnet/ffhq-w-prenorm0", "isf-mapnet/ffhq-w-adain", "isf-mapnet/ffhq-w-none-res",
        "isf-discriminator/64-maxconv64", "lpips/alex", "losses-small",
    ]

    func assertBitEqual(
        _ a: Tensor, _ b: Tensor, _ what: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(a.shape, b.shape, "\(what): shape", file: file, line: line)
        guard a.shape == b.shape else { return }
        let x = a.scalars, y = b.scalars
        let same = zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern }
        XCTAssertTrue(
            same, "\(what): values differ (max |diff| \(maxAbsDifference(a, b)))",
            file: file, line: line)
    }

    /// Each case's `tensors.pt` bundle equals the case's `.npy` files exactly.
    func testBundlesMatchNpyTwins() throws {
        var checked = 0
        for c in Self.cases {
            let bundleURL = try Fixtures.url("\(c)/tensors.pt")
            let bundle = try TorchCheckpoint(contentsOf: bundleURL)
            XCTAssertEqual(bundle.format, .zip)
            let state = try bundle.stateDict()
            XCTAssertGreaterThan(state.count, 0, c)
            for (name, tensor) in state.entries {
                let npy = bundleURL.deletingLastPathComponent().appendingPathComponent(
                    name + ".npy")
                guard FileManager.default.fileExists(atPath: npy.path) else {
                    XCTFail("\(c): bundle tensor '\(name)' has no .npy twin")
                    continue
                }
                let twin = try NumPy.readTensor(npy)
                // Scalars are 0-d in the bundle and shape (1,) in the .npy files.
                let t = tensor.rank == 0 ? tensor.reshaped([1]) : tensor
                assertBitEqual(t, twin, "\(c)/\(name)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 100)
    }

    /// Every `.npy` in the fixtures (including `real/`) parses and holds what it declares.
    func testEveryNpyLoads() throws {
        let root = try Fixtures.url("MANIFEST.md").deletingLastPathComponent()
        let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
        var n = 0
        for case let url as URL in walker where url.pathExtension == "npy" {
            let a = try NumPy.readArray(url)
            XCTAssertEqual(a.dtype, .float32, url.path)
            XCTAssertEqual(a.bytes.count, a.count * 4)
            n += 1
        }
        XCTAssertGreaterThan(n, 150)
    }

    /// The generator checkpoints' noise buffers equal `noise_i.npy`, and every key of each
    /// checkpoint matches the shapes in `meta.json`.
    func testCheckpointsMatchMeta() throws {
        let files =
            [
                ("stylegan2-tiny", "stylegan2-tiny.pt", "g_ema"),
                ("stylegan2-small", "stylegan2-small.pt", "g_ema"),
                ("isf-mapnet/cat2dog", "000001_nets_ema.ckpt", "mapnet"),
                ("isf-mapnet/ffhq-w", "000001_nets_ema.ckpt", "mapnet"),
                ("isf-mapnet/ffhq-w-prenorm0", "000001_nets_ema.ckpt", "mapnet"),
                ("isf-mapnet/ffhq-w-adain", "000001_nets_ema.ckpt", "mapnet"),
                ("isf-mapnet/ffhq-w-none-res", "000001_nets_ema.ckpt", "mapnet"),
                ("isf-discriminator/64-maxconv64", "000001_nets.ckpt", "discriminator"),
                ("losses-small", "000001_nets.ckpt", "discriminator"),
                ("losses-small", "generator.pt", "g_ema"),
                ("lpips/alex", "lpips_alex_rand.pt", nil),
            ] as [(String, String, String?)]
        for (c, f, entry) in files {
            let ckpt = try TorchCheckpoint(contentsOf: try Fixtures.url("\(c)/\(f)"))
            let state = try entry.map { try ckpt.stateDict($0) } ?? ckpt.stateDict()
            XCTAssertGreaterThan(state.count, 0, "\(c)/\(f)")
            let metaURL = try Fixtures.url("\(c)/meta.json")
            let meta =
                try JSONSerialization.jsonObject(with: Data(contentsOf: metaURL))
                as! [String: Any]
            if let keys = (meta["meta"] as? [String: Any])?["state_dict_keys"]
                as? [String: [Int]], f != "generator.pt"
            {
                XCTAssertEqual(Set(keys.keys), Set(state.keys), "\(c)/\(f) keys")
                for (k, shape) in keys { XCTAssertEqual(state[k]?.shape, shape, "\(c) \(k)") }
            }
            XCTAssertTrue(state.dtypes.values.allSatisfy { $0 == .float32 })
            guard c.hasPrefix("stylegan2") else { continue }
            var noises = 0
            for (k, t) in state.entries where k.hasPrefix("noises.noise_") {
                let name = String(k.dropFirst("noises.".count))
                let twin = try NumPy.readTensor(try Fixtures.url("\(c)/\(name).npy"))
                assertBitEqual(t, twin, "\(c) \(k)")
                noises += 1
            }
            XCTAssertGreaterThan(noises, 0, "\(c) has noise buffers")
            // latent_avg sits next to g_ema in the rosinality layout.
            guard case .tensor(let avg)? = ckpt.root["latent_avg"] else {
                XCTFail("\(c): latent_avg missing")
                continue
            }
            let mean = try NumPy.readTensor(try Fixtures.url("\(c)/mean_latent.npy"))
            assertBitEqual(avg.tensor, mean.reshaped([mean.count]), "\(c) latent_avg")
        }
    }

    /// lpips' `linN` and `lins.N` keys alias one storage; the loader keeps them shared.
    func testAliasedStoragesStayShared() throws {
        let ckpt = try TorchCheckpoint(
            contentsOf: try Fixtures.url("lpips/alex/lpips_alex_rand.pt"))
        let s = try ckpt.stateDict()
        let a = try XCTUnwrap(s["lin0.model.1.weight"])
        let b = try XCTUnwrap(s["lins.0.model.1.weight"])
        XCTAssertTrue(a.storage === b.storage)
        XCTAssertEqual(a.scalars, b.scalars)
    }
}
