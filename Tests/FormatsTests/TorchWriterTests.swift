import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

final class TorchWriterTests: XCTestCase {
    func sampleEntries() -> [TorchWriter.Entry] {
        var rng = RandomGenerator(seed: 5)
        return [
            (
                "mapnet",
                [
                    ("w_net.fc.0.weight", rng.normal([3, 70000])),  // numel needs BININT
                    ("w_net.fc.0.bias", rng.normal([3])),
                    ("scalar", Tensor(shape: [], [2.5])),
                    ("ünïcode.key", rng.normal([2, 1, 300])),  // 300 needs BININT2
                ]
            ),
            ("discriminator", [("main.0.weight", rng.normal([4, 3, 3, 3]))]),
            ("empty", []),
        ]
    }

    /// The project's reader must read back exactly what was written: same keys in the same
    /// order, same shapes, bit-identical values (float32 is stored as is).
    func testReaderLoadsWrittenCheckpointIdentically() throws {
        let dir = temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("000123_nets_ema.ckpt")
        let entries = sampleEntries()
        try TorchWriter.write(entries, to: url)

        let file = try TorchCheckpoint(contentsOf: url)
        XCTAssertEqual(file.format, .zip)
        XCTAssertEqual(file.root.dict?.stringKeys, ["mapnet", "discriminator", "empty"])
        for (name, dict) in entries {
            let read = try file.stateDict(name)
            XCTAssertEqual(read.keys, dict.map(\.key), name)
            for (k, t) in dict {
                XCTAssertEqual(read[k]?.shape, t.shape, k)
                XCTAssertEqual(read[k]?.scalars, t.scalars, k)
                XCTAssertEqual(read.dtypes[k], .float32, k)
            }
        }
    }

    /// The archive looks like torch.save's: one top folder named after the file, the
    /// records torch's reader needs, storages 64-byte aligned and uncompressed.
    func testArchiveLayoutMatchesTorchSave() throws {
        let dir = temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("000001_nets.ckpt")
        try TorchWriter.write(sampleEntries(), to: url)
        let zip = try ZipArchive(contentsOf: url)
        XCTAssertEqual(
            zip.entries.map(\.name),
            ["000001_nets/data.pkl", "000001_nets/byteorder"]
                + (0..<5).map { "000001_nets/data/\($0)" } + ["000001_nets/version"])
        XCTAssertEqual(
            String(decoding: try zip.contents(named: "000001_nets/byteorder").bytes, as: UTF8.self),
            "little")
        let raw = try Data(contentsOf: url)
        for e in zip.entries {
            XCTAssertEqual(e.method, 0, "\(e.name) is compressed")
            let nameLength =
                Int(raw[e.localHeaderOffset + 26]) | Int(raw[e.localHeaderOffset + 27]) << 8
            let extraLength =
                Int(raw[e.localHeaderOffset + 28]) | Int(raw[e.localHeaderOffset + 29]) << 8
            let dataStart = e.localHeaderOffset + 30 + nameLength + extraLength
            XCTAssertEqual(dataStart % 64, 0, "\(e.name) starts at \(dataStart)")
        }
        // Only the three allow-listed globals appear in the pickle.
        let pickle = String(
            decoding: try zip.contents(named: "000001_nets/data.pkl").bytes, as: UTF8.self)
        XCTAssertTrue(pickle.contains("collections\nOrderedDict\n"))
        XCTAssertTrue(pickle.contains("torch._utils\n_rebuild_tensor_v2\n"))
        XCTAssertTrue(pickle.contains("torch\nFloatStorage\n"))
        XCTAssertFalse(pickle.contains("builtins"))
    }

    func testNonContiguousTensorsAreWrittenInLogicalOrder() throws {
        let dir = temporaryDirectory()
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("t.ckpt")
        let base = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])
        let t = base.transposed(0, 1)  // [3, 2], strided view
        try TorchWriter.write([("d", [("t", t)])], to: url)
        let read = try TorchCheckpoint(contentsOf: url).stateDict("d")
        XCTAssertEqual(read["t"]?.shape, [3, 2])
        XCTAssertEqual(read["t"]?.scalars, [1, 4, 2, 5, 3, 6])
    }
}
