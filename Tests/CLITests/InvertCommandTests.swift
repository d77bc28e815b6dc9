import CLI
import Formats
import Foundation
import Method
import Models
import TensorCore
import TestSupport
import XCTest

/// `isfgan invert` and `isfgan edit --image` end to end on the tiny fixture StyleGAN2
/// (32 px, 8 W+ rows of 64) with ST-LPIPS alex (skipped when it is not fetched). The runs
/// are a few dozen steps: these tests check the files and their agreement, the projection
/// quality is `ProjectionTests`' business.
final class InvertCommandTests: XCTestCase {
    struct Setup {
        let generator: String
        let tmp: URL
        /// A 48 × 40 RGB photo (not square).
        let photo: URL
    }

    func setup() throws -> Setup {
        let g = try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt")
        _ = try ModelFiles.url("stlpips/alex_shift_tolerant.pth")
        let tmp = temporaryDirectory("isfgan-invert")
        // The runs below pass --threads 1 (small images, many short loops); put the
        // process-wide count back for the tests that follow.
        let threads = Threads.count
        addTeardownBlock {
            Threads.count = threads
            try? FileManager.default.removeItem(at: tmp)
        }
        var pixels = [UInt8](repeating: 0, count: 48 * 40 * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 37 + i / 144 * 11) % 256) }
        let photo = tmp.appendingPathComponent("photo.png")
        try ImageIO.write(Image(width: 48, height: 40, channels: 3, pixels: pixels), to: photo)
        return Setup(generator: g.path, tmp: tmp, photo: photo)
    }

    func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    func testInvertWritesCodeSidecarReconstructionAndNoiseThatGenerateReads() throws {
        let s = try setup()
        let code = s.tmp.appendingPathComponent("code.npy")
        let rec = s.tmp.appendingPathComponent("rec.png")
        let noise = s.tmp.appendingPathComponent("noise.npz")
        let r = runCLI([
            "invert", "--generator", s.generator, "--image", s.photo.path, "--steps", "20",
            "--out", code.path, "--save-reconstruction", rec.path, "--save-noise", noise.path,
            "--threads", "1",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("perceptual distance"), r.out)
        XCTAssertTrue(r.out.contains("PSNR"), r.out)
        XCTAssertTrue(r.err.contains("step 20/20"), r.err)
        XCTAssertTrue(r.err.contains("aligned"), r.err)
        XCTAssertEqual(try NumPy.readTensor(code).shape, [1, 64])

        // The sidecar: settings, checksums, files, and the figures printed.
        let sidecar = s.tmp.appendingPathComponent("code.json")
        let json = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: sidecar)) as? [String: Any])
        XCTAssertEqual(json["format"] as? String, "isfgan-projection")
        XCTAssertEqual(json["code_file"] as? String, "code.npy")
        XCTAssertEqual(json["noise_file"] as? String, "noise.npz")
        XCTAssertEqual(json["code_shape"] as? [Int], [1, 64])
        XCTAssertEqual(json["image_size"] as? [Int], [48, 40])
        XCTAssertEqual(json["image_sha256"] as? String, try SHA256.hexDigest(ofFile: s.photo))
        XCTAssertEqual(
            json["generator_sha256"] as? String,
            try SHA256.hexDigest(ofFile: URL(fileURLWithPath: s.generator)))
        let settings = try XCTUnwrap(json["settings"] as? [String: Any])
        XCTAssertEqual(settings["steps"] as? Int, 20)
        XCTAssertEqual(settings["space"] as? String, "w")
        XCTAssertEqual(settings["perceptual"] as? String, "stlpips-alex")
        let distance = try XCTUnwrap(json["perceptual_distance"] as? Double)
        XCTAssertTrue(r.out.contains(String(format: "perceptual distance %.4f", distance)), r.out)
        let psnr = try XCTUnwrap(json["psnr"] as? Double)
        XCTAssertTrue(r.out.contains(String(format: "PSNR %.2f dB", psnr)), r.out)

        // generate renders the code with the saved noise maps: the same image.
        let again = s.tmp.appendingPathComponent("again.png")
        let g = runCLI([
            "generate", "--generator", s.generator, "--latents", code.path, "--space", "w",
            "--noise", noise.path, "--out", again.path,
        ])
        XCTAssertEqual(g.status, 0, g.err)
        XCTAssertEqual(try Data(contentsOf: again), try Data(contentsOf: rec))
        XCTAssertEqual(try ImageIO.read(rec).width, 32)
    }

    func testWPlusCodeIsOneRowPerLayer() throws {
        let s = try setup()
        let code = s.tmp.appendingPathComponent("wp.npy")
        let r = runCLI([
            "invert", "--generator", s.generator, "--image", s.photo.path, "--space", "wplus",
            "--steps", "5", "--out", code.path, "--threads", "1",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try NumPy.readTensor(code).shape, [1, 8, 64])
    }

    func testBadInputsAreRefusedWithTheirNames() throws {
        let s = try setup()
        let out = s.tmp.appendingPathComponent("c.npy").path
        let base = ["invert", "--generator", s.generator, "--out", out]

        let z = runCLI(base + ["--image", s.photo.path, "--space", "z"])
        XCTAssertEqual(z.status, 2)
        XCTAssertTrue(z.err.contains("--space z") && z.err.contains("w or wplus"), z.err)

        let text = s.tmp.appendingPathComponent("notes.png")
        try Data("hello\n".utf8).write(to: text)
        let bad = runCLI(base + ["--image", text.path])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.contains(text.path) && bad.err.contains("not a PNG or JPEG"), bad.err)

        let missing = runCLI(["invert", "--generator", s.generator, "--image", s.photo.path])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("--out"), missing.err)

        let png = runCLI(
            base.dropLast() + [s.tmp.appendingPathComponent("c.png").path, "--image", s.photo.path])
        XCTAssertEqual(png.status, 2)
        XCTAssertTrue(png.err.contains(".npy"), png.err)

        let lpips = runCLI(base + ["--image", s.photo.path, "--perceptual", "vgg"])
        XCTAssertEqual(lpips.status, 2)
        XCTAssertTrue(lpips.err.contains("--perceptual"), lpips.err)
        XCTAssertFalse(exists(URL(fileURLWithPath: out)))
    }

    /// `edit --image`: photo | reconstruction | styles in the grid, and the second run
    /// takes the projection from the cache.
    func testEditImageProjectsOnceThenUsesTheCache() throws {
        let s = try setup()
        let config = ISFConfig(
            layers: 8, randomWidth: 8, attributes: 2, codeWidth: 64, innerWidth: 16)
        let isf = s.tmp.appendingPathComponent("isf.safetensors")
        try ISFFile(network: ISFNetwork(config, seed: 3), attributes: ["smile", "age"])
            .write(to: isf)
        let cache = s.tmp.appendingPathComponent("cache")
        func edit(_ out: URL) -> (status: Int32, out: String, err: String) {
            runCLI([
                "edit", "--generator", s.generator, "--isf", isf.path, "--image", s.photo.path,
                "--source", "0,1", "--set", "smile=1", "--styles", "2", "--invert-steps", "10",
                "--invert-cache", cache.path, "--out", out.path, "--threads", "1",
            ])
        }
        let first = s.tmp.appendingPathComponent("first.png")
        let a = edit(first)
        XCTAssertEqual(a.status, 0, a.err)
        XCTAssertTrue(a.err.contains("projecting"), a.err)
        // Four columns of 32 px with 2 px padding: photo, reconstruction, two styles.
        let grid = try ImageIO.read(first)
        XCTAssertEqual([grid.width, grid.height], [4 * 34 + 2, 36])
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache.path).sorted()
        XCTAssertEqual(
            entries.map { URL(fileURLWithPath: $0).pathExtension }, ["json", "npy", "npz"])

        // The first tile is the prepared photo (centre 40 × 40, area-resized to 32).
        let prepared = Image(
            tensor: try ProjectionPhoto.load(s.photo, side: 32).tensor)  // 32 × 32 × 3
        for y in 0..<32 {
            let row = (y + 2) * grid.width + 2
            XCTAssertEqual(
                Array(grid.pixels[(row * 3)..<((row + 32) * 3)]),
                Array(prepared.pixels[(y * 96)..<((y + 1) * 96)]), "row \(y)")
        }

        let second = s.tmp.appendingPathComponent("second.png")
        let b = edit(second)
        XCTAssertEqual(b.status, 0, b.err)
        XCTAssertTrue(b.err.contains("from the cache"), b.err)
        XCTAssertFalse(b.err.contains("projecting"), b.err)
        XCTAssertEqual(try Data(contentsOf: second), try Data(contentsOf: first))

        // Other settings are another projection.
        let third = runCLI([
            "edit", "--generator", s.generator, "--isf", isf.path, "--image", s.photo.path,
            "--source", "0,1", "--set", "smile=1", "--styles", "2", "--invert-steps", "11",
            "--invert-cache", cache.path, "--out", second.path, "--threads", "1",
        ])
        XCTAssertEqual(third.status, 0, third.err)
        XCTAssertTrue(third.err.contains("projecting"), third.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.path).count, 6)

        let both = runCLI([
            "edit", "--generator", s.generator, "--isf", isf.path, "--image", s.photo.path,
            "--latents", s.photo.path, "--source", "0,1", "--set", "smile=1",
            "--out", second.path,
        ])
        XCTAssertEqual(both.status, 2)
        XCTAssertTrue(both.err.contains("--latents or --image"), both.err)
    }
}
