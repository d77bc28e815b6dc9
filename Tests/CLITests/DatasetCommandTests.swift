import Formats
import Foundation
import TensorCore
import TestSupport
import XCTest

/// `isfgan dataset` on the real DCGAN face generator and the real classifiers (needs
/// `scripts/fetch-models`; skips without the files unless `ISFGAN_REQUIRE_MODELS=1`).
final class DatasetCommandTests: XCTestCase {
    func requireModels() throws {
        for f in [
            "dcgan-face/weights.tar", "age-gender/gender-v1.onnx", "age-gender/age-v1.onnx",
            "age-gender/manifest.json",
        ] {
            _ = try ModelFiles.url(f)
        }
    }

    func files(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)!
        for case let url as URL in e {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            if !isDir.boolValue {
                out[String(url.path.dropFirst(dir.path.count))] = try Data(contentsOf: url)
            }
        }
        return out
    }

    /// 200 faces (2 chunks of 100, 180 train + 20 test), then a copy with its tail deleted
    /// (the last chunk's record and images, the final files) resumed: identical files.
    func testFewHundredFacesAndResume() throws {
        try requireModels()
        let tmp = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
        let args = ["dataset", "--generator", "dcgan", "--count", "200", "--seed", "3"]
        let start = Date()
        let r = runCLI(args + ["--out", a.path])
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(r.status, 0, r.err)
        print("isfgan dataset: 200 DCGAN faces in \(seconds) s")
        XCTAssertTrue(r.err.contains("180 train + 20 test"), r.err)
        XCTAssertTrue(r.out.contains("gender:") && r.out.contains("pos_weight"), r.out)

        let z = try NumPy.readTensor(a.appendingPathComponent("train/z.npy"))
        XCTAssertEqual(z.shape, [180, 1, 100])
        XCTAssertEqual(
            try NumPy.readTensor(a.appendingPathComponent("test/z.npy")).shape, [20, 1, 100])
        let png = try ImageIO.read(a.appendingPathComponent("test/000019.png"))
        XCTAssertEqual([png.width, png.height, png.channels], [64, 64, 3])
        let list = try String(
            contentsOf: a.appendingPathComponent("list_attr_celeba-train.txt"), encoding: .utf8)
        let lines = list.split(separator: "\n")
        XCTAssertEqual(lines.count, 182)
        XCTAssertEqual(lines[1], "gender age")
        // Both classes occur for both attributes on 180 faces (the fixture's 16 faces
        // already have 6 male and 3 over 35).
        for col in 1...2 {
            let values = Set(lines.dropFirst(2).map { $0.split(separator: " ")[col] })
            XCTAssertEqual(values, ["1", "-1"], "column \(col)")
        }
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: a.appendingPathComponent("dataset.json"))) as! [String: Any]
        let generator = json["generator"] as! [String: Any]
        XCTAssertEqual(
            generator["sha256"] as? String,
            "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f")
        XCTAssertEqual(generator["kind"] as? String, "dcgan")
        XCTAssertNotNil((json["pos_weight"] as? [String: Any])?["age"])

        // Copy, delete the tail, resume.
        try FileManager.default.copyItem(at: a, to: b)
        for name in [
            ".progress/chunk-000001-labels.npy", "test/000019.png", "train/000150.png",
            "dataset.json", "train/z.npy", "list_attr_celeba-test.txt",
        ] {
            try FileManager.default.removeItem(at: b.appendingPathComponent(name))
        }
        let again = runCLI(args + ["--out", b.path])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.err.contains("kept 100 samples"), again.err)
        XCTAssertEqual(try files(a), try files(b))

        // Other settings on the same folder are refused, naming what differs.
        let other = runCLI(["dataset", "--generator", "dcgan", "--count", "300", "--out", a.path])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.err.contains("count 200"), other.err)
        // `a` is finished: not called unfinished.
        XCTAssertTrue(other.err.contains("holds a dataset made with"), other.err)
    }

    /// A StyleGAN2 checkpoint: W+ codes go to wp.npy, frames are resized to the
    /// classifiers' 64 px.
    func testStyleGAN2GeneratorWritesWPlusCodes() throws {
        try requireModels()
        let g = try Fixtures.url("stylegan2-small/stylegan2-small.pt")
        let tmp = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let r = runCLI([
            "dataset", "--generator", g.path, "--count", "6", "--test-fraction", "0.5",
            "--label", "age", "--out", tmp.path,
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let wp = try NumPy.readTensor(tmp.appendingPathComponent("train/wp.npy"))
        XCTAssertEqual(wp.shape[0], 3)
        XCTAssertEqual(wp.rank, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path + "/train/z.npy"))
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: tmp.appendingPathComponent("dataset.json")))
            as! [String: Any]
        XCTAssertEqual((json["generator"] as? [String: Any])?["kind"] as? String, "stylegan2")
        XCTAssertEqual(json["attributes"] as? [String], ["age"])
    }

    func testUsageErrors() throws {
        let tmp = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("d").path
        let bad = runCLI([
            "dataset", "--generator", "dcgan", "--count", "10", "--out", out, "--label", "smile",
        ])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("smile"), bad.err)
        let frac = runCLI(
            [
                "dataset", "--generator", "dcgan", "--count", "10", "--out", out, "--test-fraction",
                "2",
            ])
        XCTAssertEqual(frac.status, 2)
        XCTAssertTrue(frac.err.contains("--test-fraction"), frac.err)
        let missing = runCLI(
            [
                "dataset", "--generator", tmp.appendingPathComponent("no.pt").path, "--count", "10",
                "--out", out,
            ])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("no.pt"), missing.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
