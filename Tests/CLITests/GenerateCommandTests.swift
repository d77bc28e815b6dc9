import CLI
import Formats
import Foundation
import TensorCore
import TestSupport
import XCTest

/// Runs `isfgan ARGS` in-process, capturing what it prints.
func runCLI(_ args: [String]) -> (status: Int32, out: String, err: String) {
    var out = "", err = ""
    let console = Console(out: { out += $0 + "\n" }, err: { err += $0 + "\n" }, isTerminal: false)
    let status = CLI.main(args, console: console)
    return (status, out, err)
}

final class GenerateCommandTests: XCTestCase {
    func paths(_ name: String) throws -> (generator: String, dir: URL) {
        let g = try Fixtures.url("\(name)/\(name).pt")
        return (g.path, g.deletingLastPathComponent())
    }

    /// `--save-raw` is what parity is checked on: 1e-4 × max(1, max |reference|).
    func testSaveRawMatchesPyTorchForZWplusAndTruncation() throws {
        let (gen, dir) = try paths("stylegan2-small")
        let tmp = temporaryDirectory()
        let cases: [(args: [String], reference: String)] = [
            (["--latents", dir.appendingPathComponent("z.npy").path, "--space", "z"], "img_z"),
            (["--latents", dir.appendingPathComponent("w.npy").path, "--space", "w"], "img_w"),
            (["--latents", dir.appendingPathComponent("wplus.npy").path], "img_wplus"),
            (
                [
                    "--latents", dir.appendingPathComponent("z.npy").path, "--space", "z",
                    "--truncation", "0.7", "--truncation-center",
                    dir.appendingPathComponent("mean_latent.npy").path,
                ], "img_trunc"
            ),
        ]
        for (i, c) in cases.enumerated() {
            let raw = tmp.appendingPathComponent("raw\(i).npy")
            let r = runCLI(
                [
                    "generate", "--generator", gen, "--out",
                    tmp.appendingPathComponent("o\(i)").path,
                    "--save-raw", raw.path, "--batch", "3",
                ] + c.args)
            XCTAssertEqual(r.status, 0, r.err)
            let ref = try NumPy.readTensor(dir.appendingPathComponent("\(c.reference).npy"))
            let scale = max(1, ref.scalars.map(abs).max()!)
            assertClose(try NumPy.readTensor(raw), ref, atol: 1e-4 * scale, rtol: 0, c.reference)
            for k in 0..<4 {
                let png = tmp.appendingPathComponent("o\(i)").appendingPathComponent(
                    String(format: "%06d.png", k))
                XCTAssertTrue(FileManager.default.fileExists(atPath: png.path), png.path)
            }
        }
    }

    func testLatentsInOfficialFourDimensionalLayoutAreAccepted() throws {
        let (gen, dir) = try paths("stylegan2-tiny")
        let tmp = temporaryDirectory()
        let wplus = try NumPy.readTensor(dir.appendingPathComponent("wplus.npy"))
        let four = tmp.appendingPathComponent("w4.npy")
        try NumPy.write(wplus.reshaped([4, 1, 8, 64]), to: four)
        let raw = tmp.appendingPathComponent("raw.npy"), lat = tmp.appendingPathComponent("lat.npy")
        let r = runCLI([
            "generate", "--generator", gen, "--latents", four.path, "--out",
            tmp.appendingPathComponent("g.png").path, "--save-raw", raw.path,
            "--save-latents", lat.path,
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let ref = try NumPy.readTensor(dir.appendingPathComponent("img_wplus.npy"))
        assertClose(try NumPy.readTensor(raw), ref, atol: 1e-4 * 12, rtol: 0)
        XCTAssertEqual(try NumPy.readTensor(lat).shape, [4, 8, 64])
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: tmp.appendingPathComponent("g.png").path))
    }

    func testSeedsAreDeterministicAndPsiZeroGivesOneImage() throws {
        let (gen, _) = try paths("stylegan2-tiny")
        let tmp = temporaryDirectory()
        func raw(_ extra: [String], _ name: String) throws -> Tensor {
            let p = tmp.appendingPathComponent(name)
            let r = runCLI(
                [
                    "generate", "--generator", gen, "--seeds", "0-2", "--out",
                    tmp.appendingPathComponent(name + ".d").path, "--save-raw", p.path,
                ] + extra)
            XCTAssertEqual(r.status, 0, r.err)
            return try NumPy.readTensor(p)
        }
        let a = try raw([], "a.npy"), b = try raw(["--batch", "1"], "b.npy")
        XCTAssertEqual(a.shape, [3, 3, 32, 32])
        assertClose(a, b, atol: 1e-5, rtol: 0, "batching does not change images")
        let t = try raw(["--truncation", "0"], "t.npy")
        assertClose(t.slice(0, 0..<1), t.slice(0, 2..<3), atol: 1e-5, rtol: 0, "ψ = 0: same image")
    }

    func testBadInputGivesClearErrorsAndNoOutput() throws {
        let (gen, dir) = try paths("stylegan2-tiny")
        let tmp = temporaryDirectory()
        let out = tmp.appendingPathComponent("never.png")
        let z = dir.appendingPathComponent("z.npy").path
        let cases: [([String], String)] = [
            (["--latents", z], "say which with --space w or --space z"),
            (
                ["--latents", dir.appendingPathComponent("z_mean.npy").path, "--space", "wplus"],
                "this generator takes"
            ),
            (
                ["--latents", dir.appendingPathComponent("wplus.npy").path, "--space", "z"],
                "this generator takes"
            ),
            (["--seeds", "0", "--latents", z], "exactly one of --seeds and --latents"),
            (["--seeds", "x"], "--seeds expects integers"),
            (["--seeds", "0", "--noise", "loud"], "--noise must be one of const, random, zero"),
            (["--seeds", "0", "--truncation", "abc"], "--truncation expects a number"),
            (["--seeds", "0", "--frobnicate"], "unknown option --frobnicate"),
        ]
        for (extra, message) in cases {
            let r = runCLI(["generate", "--generator", gen, "--out", out.path] + extra)
            XCTAssertNotEqual(r.status, 0, "\(extra): \(r.err)")
            XCTAssertTrue(r.err.contains(message), "\(extra): \(r.err)")
        }
        let missing = runCLI([
            "generate", "--generator", tmp.appendingPathComponent("nope.pt").path,
            "--seeds", "0", "--out", out.path,
        ])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.err.contains("nope.pt"), missing.err)
        let notGen = runCLI(["generate", "--generator", z, "--seeds", "0", "--out", out.path])
        XCTAssertEqual(notGen.status, 1)
        XCTAssertTrue(notGen.err.contains("z.npy"), notGen.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path)
        XCTAssertEqual(leftovers, [], "no partial files")
    }

    func testHelpListsEveryOptionWithDefaults() {
        let r = runCLI(["generate", "--help"])
        XCTAssertEqual(r.status, 0)
        for flag in [
            "--generator", "--seeds", "--latents", "--space", "--truncation", "--noise",
            "--batch", "--out", "--grid", "--save-latents", "--save-raw", "--threads",
        ] {
            XCTAssertTrue(r.out.contains(flag), flag)
        }
        XCTAssertTrue(r.out.contains("(default: const)"))
        let top = runCLI(["--help"])
        XCTAssertTrue(top.out.contains("generate"))
        XCTAssertEqual(runCLI(["frobnicate"]).status, 2)
    }

    func testInspectRecognisesTheGenerator() throws {
        let (gen, _) = try paths("stylegan2-small")
        let r = runCLI(["inspect", gen])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("StyleGAN2 generator"), r.out)
        XCTAssertTrue(r.out.contains("size 64 px"), r.out)
        let j = runCLI(["inspect", gen, "--json"])
        XCTAssertEqual(j.status, 0)
        XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(j.out.utf8)))
    }
}

final class GenerateDCGANTests: XCTestCase {
    /// `--generator dcgan` renders the fetched face generator; the torch-style z file
    /// (N, 100, 1, 1) reproduces the package's images within 1e-5.
    func testDCGANFromTheModelStoreMatchesThePackage() throws {
        _ = try ModelFiles.url("dcgan-face/weights.tar")
        let z = try Fixtures.url("real/dcgan-face/z_seed0.npy")
        let images = try Fixtures.url("real/dcgan-face/images_seed0.npy")
        let tmp = temporaryDirectory()
        let raw = tmp.appendingPathComponent("raw.npy")
        let r = runCLI([
            "generate", "--generator", "dcgan", "--latents", z.path, "--out",
            tmp.appendingPathComponent("grid.png").path, "--save-raw", raw.path,
        ])
        XCTAssertEqual(r.status, 0, r.err)
        assertClose(try NumPy.readTensor(raw), try NumPy.readTensor(images), atol: 1e-5, rtol: 0)
        let t = runCLI([
            "generate", "--generator", "dcgan", "--seeds", "0", "--truncation", "0.5",
            "--out", tmp.appendingPathComponent("t.png").path,
        ])
        XCTAssertEqual(t.status, 2)
        XCTAssertTrue(t.err.contains("--truncation needs a StyleGAN2 generator"), t.err)
    }
}

final class GenerateNoiseTests: XCTestCase {
    /// `--noise maps.npz`: the checkpoint's own noise maps, given explicitly, reproduce
    /// the stored-noise reference; all-zero maps equal `--noise zero`; a map of the wrong
    /// size is refused naming the key and both shapes.
    func testExplicitNoiseMaps() throws {
        let dir = try Fixtures.url("stylegan2-tiny/z.npy").deletingLastPathComponent()
        let gen = dir.appendingPathComponent("stylegan2-tiny.pt").path
        let z = dir.appendingPathComponent("z.npy").path
        let tmp = temporaryDirectory()
        var stored: [(name: String, array: RawArray)] = []
        var zeros: [(name: String, array: RawArray)] = []
        for i in 0..<7 {
            let t = try NumPy.readTensor(dir.appendingPathComponent("noise_\(i).npy"))
            stored.append(("noise_\(i)", RawArray(t)))
            // Per-image maps (batch 4) for the zero case: exercises the slicing per batch.
            zeros.append(("noise_\(i)", RawArray(Tensor.zeros([4] + Array(t.shape.dropFirst())))))
        }
        let storedURL = tmp.appendingPathComponent("stored.npz")
        let zerosURL = tmp.appendingPathComponent("zeros.npz")
        try NumPy.writeArchive(stored, to: storedURL)
        try NumPy.writeArchive(zeros, to: zerosURL)
        func raw(_ noise: String, _ name: String) throws -> Tensor {
            let out = tmp.appendingPathComponent(name)
            let r = runCLI([
                "generate", "--generator", gen, "--latents", z, "--space", "z",
                "--noise", noise, "--batch", "3", "--out",
                tmp.appendingPathComponent(name + ".png").path, "--save-raw", out.path,
            ])
            XCTAssertEqual(r.status, 0, r.err)
            return try NumPy.readTensor(out)
        }
        let ref = try NumPy.readTensor(dir.appendingPathComponent("img_z.npy"))
        assertClose(try raw(storedURL.path, "a.npy"), ref, atol: 1e-4 * 12, rtol: 0)
        assertClose(try raw(zerosURL.path, "b.npy"), try raw("zero", "c.npy"), atol: 1e-6, rtol: 0)

        var bad = stored
        bad[3] = ("noise_3", RawArray(Tensor.zeros([1, 1, 8, 8])))
        let badURL = tmp.appendingPathComponent("bad.npz")
        try NumPy.writeArchive(bad, to: badURL)
        let r = runCLI([
            "generate", "--generator", gen, "--latents", z, "--space", "z",
            "--noise", badURL.path, "--out", tmp.appendingPathComponent("x.png").path,
        ])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("'noise_3' has shape [1, 1, 8, 8]"), r.err)
        XCTAssertTrue(r.err.contains("expected [1 or 4, 1, 16, 16]"), r.err)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x.png").path))
    }
}
