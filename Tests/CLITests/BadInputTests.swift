import CLI
import Formats
import Foundation
import Models
import TensorCore
import TestSupport
import XCTest

/// Bad input found by trying the tool as a new user: each case must end in a one-line error
/// that names the flag or file, a non-zero status, and nothing written.
final class BadInputTests: XCTestCase {
    func tinyGenerator() throws -> String {
        try Fixtures.url("stylegan2-tiny/stylegan2-tiny.pt").path
    }

    func assertRefused(
        _ args: [String], status: Int32, mentions: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let r = runCLI(args)
        XCTAssertEqual(r.status, status, r.err, file: file, line: line)
        XCTAssertTrue(r.err.contains(mentions), r.err, file: file, line: line)
        XCTAssertFalse(r.err.contains("NSCocoaErrorDomain"), r.err, file: file, line: line)
    }

    func testNumberListsRefuseNegativeEmptyAndHugeValues() throws {
        let gen = try tinyGenerator()
        let out = temporaryDirectory().appendingPathComponent("g.png").path
        // "-1" used to trap converting to UInt64; "-3-5" was read as 3-5, "1,,2" as 1,2.
        for seeds in ["-1", "0,-1", "-3-5", "1,,2", "5-2"] {
            assertRefused(
                ["generate", "--generator", gen, "--seeds", seeds, "--out", out], status: 2,
                mentions: "--seeds")
        }
        assertRefused(
            ["generate", "--generator", gen, "--seeds", "0-100000000", "--out", out], status: 2,
            mentions: "more than 100000 values")
        // A batch of 0 used to trap allocating an empty tensor.
        assertRefused(
            ["bench", "generator", "--batch", "0", "--size", "16", "--repeats", "1"], status: 2,
            mentions: "--batch expects integers in 1…4096")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // Every error reads "isfgan CMD: error: …", usage errors included.
        let usage = runCLI(["generate", "--generator", gen, "--seeds", "-1", "--out", out])
        XCTAssertTrue(
            usage.err.split(separator: "\n").contains {
                $0.hasPrefix("isfgan generate: error: --seeds")
            }, usage.err)
        let ages = temporaryDirectory().appendingPathComponent("ages").path
        assertRefused(
            [
                "dataset", "--generator", gen, "--count", "4", "--age-threshold", "-5", "--out",
                ages,
            ],
            status: 2, mentions: "--age-threshold must be an age in years")
        // A split left empty is said before the rendering (which then fails here on the
        // missing models or goes on; either way the warning came first).
        let tiny = runCLI([
            "dataset", "--generator", gen, "--count", "1", "--out",
            temporaryDirectory().appendingPathComponent("one").path,
        ])
        XCTAssertTrue(
            tiny.err.hasPrefix(
                "warning: --count 1 with --test-fraction 0.1 leaves the test split "
                    + "empty"), tiny.err)
    }

    func testCodesThatAreNotFiniteOrEmptyAreRefused() throws {
        let gen = try tinyGenerator()
        let tmp = temporaryDirectory()
        var values = [Float](repeating: 0, count: 2 * 8 * 64)
        values[70] = .nan
        let nan = tmp.appendingPathComponent("nan.npy")
        try NumPy.write(Tensor(shape: [2, 8, 64], values), to: nan)
        let empty = tmp.appendingPathComponent("empty.npy")
        try NumPy.write(Tensor(shape: [0, 8, 64], []), to: empty)
        let out = tmp.appendingPathComponent("g.png").path
        assertRefused(
            ["generate", "--generator", gen, "--latents", nan.path, "--out", out], status: 1,
            mentions: "nan.npy holds a value that is not finite")
        assertRefused(
            ["generate", "--generator", gen, "--latents", empty.path, "--out", out], status: 1,
            mentions: "holds no codes")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testOutputPathsAreCheckedBeforeAnyWork() throws {
        let gen = try tinyGenerator()
        let tmp = temporaryDirectory()
        let file = tmp.appendingPathComponent("taken")
        try Data("x".utf8).write(to: file)
        let base = ["generate", "--generator", gen, "--seeds", "0"]
        assertRefused(base + ["--out", ""], status: 2, mentions: "--out is empty")
        // An unknown extension used to become a folder named out.bmp.
        assertRefused(
            base + ["--out", tmp.appendingPathComponent("out.bmp").path], status: 2,
            mentions: "isfgan writes .png or .jpg images, not .bmp")
        assertRefused(
            base + ["--out", tmp.appendingPathComponent("no/such/g.png").path], status: 2,
            mentions: "does not exist")
        assertRefused(
            ["demo", "--out", file.path], status: 2, mentions: "is a file; expected a folder")
        assertRefused(
            ["demo", "--out", tmp.appendingPathComponent("d.png").path], status: 2,
            mentions: "names a .png file; expected a folder")
        assertRefused(
            [
                "baseline", "fit", "--data", tmp.path, "--out",
                tmp.appendingPathComponent("missing/l.safetensors").path,
            ], status: 2, mentions: "the folder")
        let entries = try FileManager.default.contentsOfDirectory(atPath: tmp.path)
        XCTAssertEqual(entries, ["taken"])
    }

    func testHelpVersionAndGlobalOptionsBeforeTheCommand() {
        let threadsBefore = Threads.count
        defer { Threads.count = threadsBefore }
        // (arguments, exit status, text expected on stdout or, with a failure, stderr)
        let cases: [([String], Int32, String)] = [
            (["help", "edit"], 0, "--styles"),
            (["--version"], 0, "isfgan "),
            (["--threads", "1", "version"], 0, "threads: 1"),
            (["--threads=1", "version"], 0, "threads: 1"),
            (["--threads", "0", "version"], 2, "--threads"),
            (["--threads", "1"], 2, "goes before a command"),
            (["nosuch"], 2, "isfgan: error: unknown command 'nosuch'"),
        ]
        for (args, status, text) in cases {
            let r = runCLI(args)
            XCTAssertEqual(r.status, status, "\(args): \(r.err)")
            XCTAssertTrue((status == 0 ? r.out : r.err).contains(text), "\(args): \(r.out)\(r.err)")
        }
    }

    /// Options that the chosen methods do not use are named; a broken settings.json reads
    /// as one line, without Swift's debug dump.
    func testIgnoredOptionsAndBrokenSettingsAreNamed() throws {
        let tmp = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let r = runCLI([
            "eval", "--generator", try tinyGenerator(), "--data",
            tmp.appendingPathComponent("no").path,
            "--methods", "isf", "--isf", "x.safetensors", "--linear", "l.safetensors",
            "--out", tmp.appendingPathComponent("r").path,
        ])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--linear is ignored"), r.err)
        let run = tmp.appendingPathComponent("runs/00000-x")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try Data("{\"bad".utf8).write(to: run.appendingPathComponent("settings.json"))
        assertRefused(
            ["train", "--resume", run.path], status: 1, mentions: "does not parse: not valid JSON")
        XCTAssertFalse(runCLI(["train", "--resume", run.path]).err.contains("DecodingError"))
    }

    /// A plain file where a folder of the output path should be: named before any work,
    /// and Foundation's "error 512" for it reads as one line too.
    func testAFileInTheOutputPathIsNamed() throws {
        let tmp = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: tmp) }
        let file = tmp.appendingPathComponent("plain")
        try Data().write(to: file)
        let gen = try tinyGenerator()
        assertRefused(
            [
                "generate", "--generator", gen, "--seeds", "0",
                "--out", file.appendingPathComponent("sub/deeper").path,
            ], status: 2, mentions: "\(file.path) is a file, not a folder")
        assertRefused(
            [
                "generate", "--generator", gen, "--seeds", "0",
                "--out", file.appendingPathComponent("g.png").path,
            ], status: 2, mentions: "\(file.path) is a file, not a folder")
        let error = CocoaError(
            .fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path + "/sub"])
        XCTAssertEqual(
            CLI.describeError(error), "\(file.path)/sub: \(file.path) is a file, not a folder")
    }

    func testFoundationFileErrorsReadAsOneLine() {
        let error = CocoaError(.fileWriteFileExists, userInfo: [NSFilePathErrorKey: "/tmp/x"])
        XCTAssertEqual(CLI.describeError(error), "/tmp/x: a file with that name is in the way")
    }

    /// A crafted `isf_config` asking for a network of terabytes used to abort allocating it.
    func testISFConfigThatDoesNotFitItsTensorsIsRefusedBeforeAllocating() throws {
        let net = ISFNetwork(
            ISFConfig(
                layers: 2, randomWidth: 4, attributes: 2, codeWidth: 8, innerWidth: 16,
                residual: true))
        let tmp = temporaryDirectory()
        let good = tmp.appendingPathComponent("good.safetensors")
        try ISFFile(network: net, attributes: ["a", "b"]).write(to: good)
        let file = try SafetensorsFile(contentsOf: good)
        var tensors: [(key: String, tensor: Tensor)] = []
        for entry in file.entries { tensors.append((entry.name, try file.tensor(entry.name))) }
        for (key, value) in [
            ("inner_dim", 2_000_000_000), ("num_layers", 100_000), ("latent_dim", 1 << 40),
        ] {
            var meta = file.metadata
            var config =
                try JSONSerialization.jsonObject(with: Data(meta["isf_config"]!.utf8))
                as! [String: Any]
            config[key] = value
            meta["isf_config"] = String(
                decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
            let bad = tmp.appendingPathComponent("bad-\(key).safetensors")
            try Safetensors.write(tensors, metadata: meta, to: bad)
            XCTAssertThrowsError(try ISFFile.read(bad), key) {
                XCTAssertTrue("\($0)".contains("needs far more weights than the"), "\($0)")
            }
        }
    }
}
