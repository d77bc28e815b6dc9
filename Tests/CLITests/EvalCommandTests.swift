import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats
@testable import Method
@testable import Models

/// `isfgan eval`, `isfgan baseline fit` and `isfgan edit --method linear` end to end on the
/// real DCGAN, classifiers and ST-LPIPS (needs `scripts/fetch-models`; skips without the
/// files), with a 40-face dataset and a small random ISF: nothing waits for a trained model.
final class EvalCommandTests: XCTestCase {
    func requireModels() throws {
        for f in [
            "dcgan-face/weights.tar", "age-gender/gender-v1.onnx", "age-gender/age-v1.onnx",
            "age-gender/manifest.json", "stlpips/alex_shift_tolerant.pth",
            "stlpips/vgg_shift_tolerant.pth",
        ] {
            _ = try ModelFiles.url(f)
        }
    }

    /// A 40-face dataset (30 train, 10 test) and a random ISF file for its attributes.
    func setUpData() throws -> (dir: URL, data: URL, isf: URL) {
        try requireModels()
        let dir = temporaryDirectory("isfgan-eval-cli")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("faces")
        let r = runCLI([
            "dataset", "--generator", "dcgan", "--count", "40", "--test-fraction", "0.25",
            "--seed", "5", "--out", data.path, "--threads", "2",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let config = ISFConfig(
            layers: 1, randomWidth: 8, attributes: 2, codeWidth: 100, innerWidth: 32)
        let isf = dir.appendingPathComponent("isf.safetensors")
        try ISFFile(network: ISFNetwork(config, seed: 4), attributes: ["gender", "age"])
            .write(to: isf)
        return (dir, data, isf)
    }

    func testEvalEndToEndAndContinued() throws {
        let p = try setUpData()
        let out = p.dir.appendingPathComponent("report")
        let args = [
            "eval", "--generator", "dcgan", "--isf", p.isf.path, "--data", p.data.path,
            "--inputs", "3", "--styles", "3", "--reference", "8", "--grid", "2", "--batch", "16",
            "--out", out.path, "--threads", "2",
        ]
        let r = runCLI(args)
        XCTAssertEqual(r.status, 0, r.err)
        // The table: both methods, both attributes, both targets, the linear method's
        // diversity stated, the realism figure named for what it is.
        for text in [
            "isf     gender", "linear  age", "0 (1 output)",
            "FD over ST-LPIPS VGG features", "stlpips-alex",
        ] {
            XCTAssertTrue(r.out.contains(text), "missing '\(text)' in\n\(r.out)")
        }
        XCTAssertFalse(r.out.contains("FID"), r.out)
        XCTAssertTrue(r.err.contains("linear: fitting 2 boundaries to 30 codes"), r.err)

        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: out.appendingPathComponent("report.json")))
            as! [String: Any]
        let rows = json["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.count, 8)
        let inputs = json["inputs"] as! [String: String]
        XCTAssertEqual(inputs["isf_sha256"], try SHA256.hexDigest(ofFile: p.isf))
        XCTAssertEqual(
            inputs["generator_sha256"],
            "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f")
        XCTAssertNotNil(inputs["linear_sha256"])
        let cells = json["cells"] as! [[String: Any]]
        for c in cells {
            let flips = c["flips"] as! [String: Any], noOps = c["no_ops"] as! [String: Any]
            XCTAssertEqual((flips["inputs"] as! Int) + (noOps["inputs"] as! Int), 3)
            let realism = c["realism"] as! [String: Any]
            XCTAssertEqual(realism["biased"] as? Bool, true, "3 images for 512 features")
            XCTAssertEqual(realism["features"] as? Int, 512)
        }
        let svg = try String(
            contentsOf: out.appendingPathComponent("report.svg"), encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg") && svg.contains("accuracy"), svg)
        // Grid: 2 inputs × (source + 3 ISF styles × 2 attributes + 2 linear) columns.
        let grid = try ImageIO.read(out.appendingPathComponent("grid.png"))
        XCTAssertEqual(grid.width, 9 * 64 + 10 * 2)
        XCTAssertEqual(grid.height, 2 * 64 + 3 * 2)

        // A finished run keeps no partial cells; the same command again measures the same
        // rows (every draw is seeded) and reuses the fitted boundaries.
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: out.appendingPathComponent(".progress").path))
        let again = runCLI(args)
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.err.contains("linear: reusing"), again.err)
        let json2 =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: out.appendingPathComponent("report.json")))
            as! [String: Any]
        XCTAssertEqual(
            (json2["rows"] as! NSArray), (json["rows"] as! NSArray), "rows differ on rerun")

        // Other settings in a finished folder replace its report (an interrupted one,
        // which holds cells, refuses them: see EvaluationTests).
        let changed = runCLI(args.map { $0 == "3" ? "2" : $0 })
        XCTAssertEqual(changed.status, 0, changed.err)
        let json3 =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: out.appendingPathComponent("report.json")))
            as! [String: Any]
        let settings3 = json3["settings"] as! [String: Any]
        XCTAssertEqual(settings3["styles"] as? Int, 2, "\(settings3)")
    }

    func testBaselineFitAndLinearEdit() throws {
        let p = try setUpData()
        let linear = p.dir.appendingPathComponent("linear.safetensors")
        let fit = runCLI([
            "baseline", "fit", "--generator", "dcgan", "--data", p.data.path, "--out",
            linear.path, "--conditional", "--iterations", "50",
        ])
        XCTAssertEqual(fit.status, 0, fit.err)
        let b = try LinearBoundaries.read(linear)
        XCTAssertEqual(b.attributes, ["gender", "age"])
        XCTAssertEqual(b.codeShape, [1, 100])
        XCTAssertNotNil(b.directions)
        XCTAssertEqual(
            b.generatorSHA256, "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f")

        let png = p.dir.appendingPathComponent("edit.png")
        let codes = p.data.appendingPathComponent("test/z.npy")
        let codesFile = p.dir.appendingPathComponent("z.npy")
        try FileManager.default.copyItem(at: codes, to: codesFile)
        let saved = p.dir.appendingPathComponent("edited.npy")
        let edit = runCLI([
            "edit", "--method", "linear", "--linear", linear.path, "--generator", "dcgan",
            "--latents", codesFile.path, "--index", "0,1", "--set", "age=1", "--strength", "2",
            "--save-latents", saved.path, "--out", png.path,
        ])
        XCTAssertEqual(edit.status, 0, edit.err)
        let image = try ImageIO.read(png)
        XCTAssertEqual(image.width, 2 * 64 + 3 * 2)
        // The saved codes moved by 2 along the age direction.
        let before = try NumPy.readTensor(codesFile).slice(0, 0..<2).reshaped([2, 100])
        let after = try NumPy.readTensor(saved).reshaped([2, 100])
        let step = b.editDirections.slice(0, 1..<2)  // [1, 100]
        assertClose(after, before + step * 2, atol: 1e-5)

        let wrong = runCLI([
            "edit", "--method", "linear", "--linear", linear.path, "--generator", "dcgan",
            "--latents", codesFile.path, "--set", "smile=1", "--out", png.path,
        ])
        XCTAssertEqual(wrong.status, 2)
        XCTAssertTrue(wrong.err.contains("NAME one of gender, age"), wrong.err)
    }
}
