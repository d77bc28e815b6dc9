import CLI
import Formats
import Foundation
import TensorCore
import TestSupport
import XCTest

/// `isfgan edit`, `interpolate` and `sample` through the CLI, on the `losses-small`
/// generator (256 px, 14 W+ rows) and the `isf-mapnet/cat2dog` ISF (14 branches).
final class EditCommandTests: XCTestCase {
    struct Setup {
        let generator: String
        let isf: String
        let dir: URL  // losses-small
        let tmp: URL
    }

    func setup() throws -> Setup {
        let g = try Fixtures.url("losses-small/generator.pt")
        let isf = try Fixtures.url("isf-mapnet/cat2dog/000001_nets_ema.ckpt")
        let tmp = temporaryDirectory("isfgan-edit")
        addTeardownBlock { try? FileManager.default.removeItem(at: tmp) }
        return Setup(
            generator: g.path, isf: isf.path, dir: g.deletingLastPathComponent(), tmp: tmp)
    }

    func base(_ s: Setup, latents: String? = nil) -> [String] {
        [
            "--generator", s.generator, "--isf", s.isf, "--latents",
            latents ?? s.dir.appendingPathComponent("lat.npy").path,
        ]
    }

    func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    /// The official `compute_g_loss` ran `lat_out = mapnet(lat, rndz_0, lab_trg)` and
    /// `img_trg = gan_model(lat_out)` with the stored noise buffers (randomize_noise =
    /// False, i.e. `--noise const`). Codes within 1e-5 (float32 MLP rounding); images within
    /// 1e-4 × max(1, max |value|), since the generator's values reach about ±10.
    func testEndToEndReproducesOfficialEditOfLossesSmall() throws {
        let s = try setup()
        let z = try NumPy.readTensor(s.dir.appendingPathComponent("rndz_0.npy"))  // [2, 64]
        let zFile = s.tmp.appendingPathComponent("z.npy")
        try NumPy.write(z.reshaped([2, 1, 64]), to: zFile)
        let latOut = s.tmp.appendingPathComponent("lat_out.npy")
        let raw = s.tmp.appendingPathComponent("raw.npy")
        let out = s.tmp.appendingPathComponent("grid.png")
        let r = runCLI(
            ["edit"] + base(s) + [
                "--targets", s.dir.appendingPathComponent("lab_trg.npy").path,
                "--z", zFile.path, "--noise", "const", "--out", out.path,
                "--save-latents", latOut.path, "--save-raw", raw.path, "--batch", "3",
            ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(exists(out))

        let codes = try NumPy.readTensor(latOut)  // [2, 1, 14, 512]
        XCTAssertEqual(codes.shape, [2, 1, 14, 512])
        let refCodes = try NumPy.readTensor(s.dir.appendingPathComponent("lat_out.npy"))
        assertClose(codes.reshaped([2, 14, 512]), refCodes, atol: 1e-5, rtol: 0, "lat_out")

        let images = try NumPy.readTensor(raw)  // [2, 2, 3, 256, 256]
        XCTAssertEqual(images.shape, [2, 2, 3, 256, 256])
        let refImages = try NumPy.readTensor(s.dir.appendingPathComponent("img_trg.npy"))
        let scale = max(1, refImages.scalars.map(abs).max()!)
        assertClose(
            images.slice(1, 1..<2).contiguous().reshaped([2, 3, 256, 256]), refImages,
            atol: 1e-4 * scale, rtol: 0, "img_trg")
        let refSource = try NumPy.readTensor(s.dir.appendingPathComponent("img_src.npy"))
        assertClose(
            images.slice(1, 0..<1).contiguous().reshaped([2, 3, 256, 256]), refSource,
            atol: 1e-4 * scale, rtol: 0, "img_src (source column)")
    }

    func testSetAndKeepLayerRangesCopySourceRows() throws {
        let s = try setup()
        let lat = s.tmp.appendingPathComponent("edited.npy")
        let r = runCLI(
            ["edit"] + base(s) + [
                "--index", "1", "--source", "1,0,0,1", "--set", "glasses=1", "--set", "Age=1",
                "--styles", "2", "--seed", "3", "--keep-layers", "0-3,10-13",
                "--out", s.tmp.appendingPathComponent("e.png").path, "--save-latents", lat.path,
            ])
        XCTAssertEqual(r.status, 0, r.err)
        let codes = try NumPy.readTensor(lat)  // [1, 2, 14, 512]
        XCTAssertEqual(codes.shape, [1, 2, 14, 512])
        let source = try NumPy.readTensor(s.dir.appendingPathComponent("lat.npy"))
            .slice(0, 1..<2).contiguous().scalars  // [14 × 512]
        let c = codes.scalars
        for style in 0..<2 {
            for row in 0..<14 {
                let got = Array(c[(style * 14 + row) * 512..<(style * 14 + row + 1) * 512])
                let want = Array(source[row * 512..<(row + 1) * 512])
                if [0, 1, 2, 3, 10, 11, 12, 13].contains(row) {
                    XCTAssertEqual(got, want, "style \(style) row \(row) should be the source's")
                } else {
                    XCTAssertNotEqual(got, want, "style \(style) row \(row) should be edited")
                }
            }
        }
        // Two styles from one seed differ.
        XCTAssertNotEqual(Array(c[(4 * 512)..<(5 * 512)]), Array(c[(18 * 512)..<(19 * 512)]))
    }

    func testHelpListsEveryOptionWithDefaultsAndMeaningOfOne() {
        for command in ["edit", "interpolate", "sample"] {
            let r = runCLI([command, "--help"])
            XCTAssertEqual(r.status, 0)
            XCTAssertTrue(r.out.contains("whatever the training labels meant"), command)
            for option in [
                "--generator", "--isf", "--latents", "--keep-layers", "--seed",
                "--z", "--out", "--noise", "--batch", "--attributes", "--source", "--labels",
            ] {
                XCTAssertTrue(r.out.contains(option + " "), "\(command) help lacks \(option)")
            }
            // Every option line but --help states a default.
            let lines = r.out.split(separator: "\n").filter { $0.hasPrefix("  --") }
            for line in lines
            where ![
                "--help", "--threads", "--out", "--generator ", "--isf",
                "--latents", "--attribute ",
            ].contains(where: { line.contains($0) }) {
                XCTAssertTrue(line.contains("default"), "\(command): \(line)")
            }
        }
        let edit = runCLI(["edit", "--help"]).out
        XCTAssertTrue(edit.contains("--styles N") && edit.contains("(default: 4)"))
        XCTAssertTrue(runCLI(["interpolate", "--help"]).out.contains("(default: 20)"))
    }

    // MARK: Errors: each names the problem and leaves no output behind

    func assertFails(
        _ args: [String], _ out: URL, mentions: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let r = runCLI(args)
        XCTAssertNotEqual(r.status, 0, "expected a failure", file: file, line: line)
        for m in mentions {
            XCTAssertTrue(
                r.err.contains(m), "message lacks '\(m)': \(r.err)", file: file, line: line)
        }
        XCTAssertFalse(exists(out), "a failed run left \(out.path)", file: file, line: line)
        let left =
            (try? FileManager.default.contentsOfDirectory(
                atPath: out.deletingLastPathComponent().path)) ?? []
        XCTAssertFalse(
            left.contains { $0.hasPrefix("out") || $0.hasPrefix(".out") }, "\(left)", file: file,
            line: line)
    }

    func testUnknownAttributeListsTheKnownOnes() throws {
        let s = try setup()
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s) + [
                "--source", "1,0,0,1", "--set", "beard=1", "--out", out.path,
                "--save-latents", s.tmp.appendingPathComponent("out.npy").path,
            ],
            out, mentions: ["beard", "Gender", "Glasses", "Age", "Expression"])
    }

    func testWrongLatentShapeNamesBothShapes() throws {
        let s = try setup()
        let bad = s.tmp.appendingPathComponent("bad.npy")
        try NumPy.write(Tensor.zeros([2, 18, 512]), to: bad)
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s, latents: bad.path) + [
                "--source", "1,0,0,1", "--set", "age=1",
                "--out", out.path,
            ],
            out, mentions: ["[2, 18, 512]", "(N, 14, 512)"])
    }

    func testOfficialPresetIsRefusedOnAFourteenLayerGenerator() throws {
        let s = try setup()
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s) + [
                "--source", "1,0,0,1", "--set", "age=1", "--keep-layers",
                "official", "--out", out.path,
            ],
            out, mentions: ["official", "18", "14"])
    }

    func testLabelFileWithAMissingRow() throws {
        let s = try setup()
        let labels = s.tmp.appendingPathComponent("list_attr.txt")
        try "1\nMale Eyeglasses Young Smiling Age Expression Glasses Gender\n"
            .appending("000000.png 1 -1 1 -1 -1 -1 -1 1\n")
            .write(to: labels, atomically: true, encoding: .utf8)
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s) + ["--labels", labels.path, "--set", "age=1", "--out", out.path],
            out, mentions: [labels.path, "1 label row", "input 1"])
        // The same file serves input 0.
        let ok = runCLI(
            ["edit"] + base(s) + [
                "--index", "0", "--labels", labels.path, "--set", "age=1",
                "--styles", "1", "--out", out.path,
            ])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(exists(out))
        // One label row for several codes: said, since rows are matched by position.
        XCTAssertTrue(ok.err.contains("has 1 label rows for"), ok.err)
    }

    func testZeroStylesIsRefused() throws {
        let s = try setup()
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s) + [
                "--source", "1,0,0,1", "--set", "age=1", "--styles", "0",
                "--out", out.path,
            ],
            out, mentions: ["--styles"])
    }

    func testTargetsOfTheWrongShapeAreRefused() throws {
        let s = try setup()
        let t = s.tmp.appendingPathComponent("t.npy")
        try NumPy.write(Tensor.zeros([3, 4]), to: t)
        let out = s.tmp.appendingPathComponent("out.png")
        assertFails(
            ["edit"] + base(s) + ["--targets", t.path, "--out", out.path],
            out, mentions: ["[3, 4]", "(2, 4)"])
    }

    // MARK: interpolate and sample

    func testInterpolateWritesFramesAndAGIF() throws {
        let s = try setup()
        let out = s.tmp.appendingPathComponent("frames")
        let lat = s.tmp.appendingPathComponent("frames.npy")
        let r = runCLI(
            ["interpolate"] + base(s) + [
                "--index", "0", "--source", "1,0,0,1", "--attribute",
                "smile", "--steps", "3", "--out", out.path, "--save-latents", lat.path,
            ])
        XCTAssertEqual(r.status, 0, r.err)
        for k in 0..<3 {
            XCTAssertTrue(exists(out.appendingPathComponent(String(format: "%06d.png", k))))
        }
        let gif = try Data(contentsOf: out.appendingPathComponent("interpolation.gif"))
        XCTAssertEqual(Array(gif.prefix(6)), Array("GIF89a".utf8))
        XCTAssertEqual(gif.last, 0x3B)
        let codes = try NumPy.readTensor(lat)  // [3, 14, 512]
        XCTAssertEqual(codes.shape, [3, 14, 512])
        // Frames lie on one line: the middle frame is the mean of its neighbours' ends
        // only at equal spacing, so check f1 − f0 = f2 − f1 within float rounding.
        let f = (0..<3).map { codes.slice(0, $0..<($0 + 1)) }
        assertClose(f[1] - f[0], f[2] - f[1], atol: 1e-5, rtol: 0, "equal steps")
    }

    func testSampleGridsSeveralTargets() throws {
        let s = try setup()
        let lat = s.tmp.appendingPathComponent("s.npy")
        let raw = s.tmp.appendingPathComponent("raw.npy")
        let r = runCLI(
            ["sample"] + base(s) + [
                "--index", "1", "--source", "0,1,1,0", "--target",
                "gender=1", "--target", "male=1,eyeglasses=0", "--styles", "2",
                "--out", s.tmp.appendingPathComponent("s.png").path, "--save-latents", lat.path,
                "--save-raw", raw.path,
            ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try NumPy.readTensor(lat).shape, [2, 2, 14, 512])
        let images = try NumPy.readTensor(raw)
        XCTAssertEqual(images.shape, [2, 3, 3, 256, 256])
        XCTAssertTrue(exists(s.tmp.appendingPathComponent("s.png")))
    }
}
