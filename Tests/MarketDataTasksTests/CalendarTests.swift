import Foundation
import XCTest
@testable import MarketDataTasks

final class CalendarTests: XCTestCase {
    func testCivilDateRoundTrip() {
        XCTAssertEqual(CivilDate("1970-01-01")?.dayNumber, 0)
        XCTAssertEqual(CivilDate("2024-02-29")?.description, "2024-02-29")
        XCTAssertNil(CivilDate("2025-02-29"))
        XCTAssertNil(CivilDate("2025-1-01"))
        XCTAssertEqual(CivilDate("2025-03-08")?.isWeekend, true)
        XCTAssertEqual(CivilDate("2025-03-10")?.weekday, 1)
    }
}
