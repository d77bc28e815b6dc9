import Method
import XCTest

final class MethodSmokeTests: XCTestCase {
    func testMeasureSecondsIsNonNegative() {
        let t = measureSeconds { _ = (0..<1000).reduce(0, +) }
        XCTAssertGreaterThanOrEqual(t, 0)
        XCTAssertLessThan(t, 10)
    }
}
