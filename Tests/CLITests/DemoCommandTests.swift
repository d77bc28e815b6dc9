import Formats
import Foundation
import Method
import Models
import TestSupport
import XCTest

@testable import CLI

/// `isfgan demo` on two faces of the real DCGAN with the real classifiers: the whole path
/// (files, sizes, readings, report) with a fixed random ISF, then the shipped editor.
final class DemoCommandTests: XCTestCase {
    /// A seeded random ISF for the DCGAN's codes (1 × 100), saved as an isfgan ISF file.
    func randomISF() throws -> URL {
        let dir = temporaryDirectory("isfgan-demo-isf")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let config = ISFConfig(
            layers: 1, randomWidth: 64, attributes: 2, codeWidth: 100, residual: true)
        let url = dir.appendingPathComponent("isf.safetensors")
        try ISFFile(network: ISFNetwork(config, seed: 5), attributes: ["gender", "age"])
            .write(to: url)
        return url
    }

    func testDemoWritesGridStripAndReport() throws {
        let weights = try ModelFiles.url("dcgan-face/weights.tar")
        _ = try ModelFiles.url("age-gender/manifest.json")
        let isf = try randomISF()
        let out = temporaryDirectory("isfgan-demo")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let r = runCLI([
            "demo", "--inputs", "2", "--styles", "1", "--isf", isf.path, "--out", out.path,
        ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("done in"), r.out)

        // Two rows of 1 + 3 tiles, 64 px enlarged twice, 2 px padding.
        let grid = try ImageIO.read(out.appendingPathComponent("edits.png"))
        XCTAssertEqual([grid.width, grid.height], [4 * 130 + 2, 2 * 130 + 2])
        let strip = try ImageIO.read(out.appendingPathComponent("interpolation.png"))
        XCTAssertEqual([strip.width, strip.height], [8 * 130 + 2, 132])
        let gif = try Data(contentsOf: out.appendingPathComponent("interpolation.gif"))
        XCTAssertEqual(Array(gif.prefix(6)), Array("GIF89a".utf8))
        let report = try String(
            contentsOf: out.appendingPathComponent("report.txt"), encoding: .utf8)
        XCTAssertTrue(report.contains("input 1:"), report)

        // The same run through the library: shapes, readings in the order of the images,
        // sources read as the labels the edits flip, and flip counts that match the report.
        let generator = try GeneratorLoader.load(
            kind: .dcgan, url: weights, key: nil, warn: { _ in })
        let classifier = try AttributeClassifiers()
        let result = try Demo.run(
            generator: generator, isf: try LoadedISF.load(isf).network,
            classifier: classifier, inputs: 2, styles: 2)
        let images = result.images  // [2, 1 + 3·2, 3, 64, 64]
        XCTAssertEqual(images.shape, [2, 7, 3, 64, 64])
        XCTAssertEqual(result.strip.shape, [8, 3, 64, 64])
        let again = try classifier.predict(images.reshaped([14, 3, 64, 64]))
        XCTAssertEqual(result.readings.flatMap { $0 }, again)
        for i in 0..<2 {
            XCTAssertEqual(result.labels(result.readings[i][0]), result.sourceLabels[i])
            // The strip starts at the source and ends at the first gender edit.
            let row = images.slice(0, i..<(i + 1))
            if i == 0 {
                XCTAssertLessThan(
                    maxAbsDifference(
                        result.strip.slice(0, 0..<1),
                        row.slice(1, 0..<1)
                            .reshaped([1, 3, 64, 64])), 1e-5)
                XCTAssertLessThan(
                    maxAbsDifference(
                        result.strip.slice(0, 7..<8),
                        row.slice(1, 1..<2)
                            .reshaped([1, 3, 64, 64])), 1e-4)
            }
        }
        let counts = result.flipCounts
        XCTAssertEqual(counts.map(\.total), [4, 4, 4])
        let text = result.report(attributeNames: ["gender", "age"])
        for (e, edit) in DemoResult.edits.enumerated() {
            XCTAssertTrue(text.contains("\(edit.name): \(counts[e].hits) of 4 outputs"), text)
        }
    }

    /// The editor that ships in `models/`: the demo with no `--isf`, run from the repository
    /// root, finds it, and the classifier reads its gender edits of the demo's first two
    /// faces as flipped. A broken weight file or a wrong channel order fails here.
    func testShippedEditorFlipsGender() throws {
        _ = try ModelFiles.url("dcgan-face/weights.tar")
        _ = try ModelFiles.url("age-gender/manifest.json")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let shipped = root.appendingPathComponent("models/dcgan-faces-isf.safetensors")
        let loaded = try LoadedISF.load(shipped)
        XCTAssertEqual(loaded.recordedAttributes, ["gender", "age"])

        let out = temporaryDirectory("isfgan-demo-shipped")
        addTeardownBlock { try? FileManager.default.removeItem(at: out) }
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(root.path)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let r = runCLI(["demo", "--inputs", "2", "--styles", "1", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("models/dcgan-faces-isf.safetensors"), r.err)
        let grid = try ImageIO.read(out.appendingPathComponent("edits.png"))
        XCTAssertEqual([grid.width, grid.height], [4 * 130 + 2, 2 * 130 + 2])
        let report = try String(
            contentsOf: out.appendingPathComponent("report.txt"), encoding: .utf8)
        XCTAssertTrue(report.contains("gender flip: 2 of 2 outputs"), report)
    }

    func testDemoNamesAMissingISF() {
        let r = runCLI(["demo", "--isf", "/nonexistent/isf.safetensors", "--out", "/tmp/x"])
        XCTAssertEqual(r.status, 2)
        XCTAssertTrue(r.err.contains("--isf /nonexistent/isf.safetensors does not exist"), r.err)
    }
}
