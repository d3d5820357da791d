import Foundation
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

final class CalendarTests: XCTestCase {
    func testNYSEHolidayRulesAgainstKnownDates() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // (day, trades by the rules, holiday name by the rules)
        let cases: [(String, Bool, String?)] = [
            ("2024-03-29", false, "Good Friday"),
            ("2025-04-18", false, "Good Friday"),
            ("2026-04-03", false, "Good Friday"),
            ("2027-03-26", false, "Good Friday"),
            ("2026-07-03", false, "Independence Day"),          // July 4 is a Saturday
            ("2027-07-05", false, "Independence Day"),          // July 4 is a Sunday
            ("2027-12-24", false, "Christmas Day"),             // December 25 is a Saturday
            ("2022-12-26", false, "Christmas Day"),             // December 25 is a Sunday
            ("2023-01-02", false, "New Year's Day"),            // January 1 is a Sunday
            ("2021-12-31", true, nil),                          // January 1, 2022 is a Saturday: not observed
            ("2027-12-31", true, nil),
            ("2024-01-15", false, "Martin Luther King Jr. Day"),
            ("2024-02-19", false, "Washington's Birthday"),
            ("2024-05-27", false, "Memorial Day"),
            ("2024-06-19", false, "Juneteenth National Independence Day"),
            ("2022-06-20", false, "Juneteenth National Independence Day"), // June 19 is a Sunday
            ("2021-06-18", true, nil),                          // before the NYSE observed Juneteenth
            ("2024-09-02", false, "Labor Day"),
            ("2024-11-28", false, "Thanksgiving Day"),
            ("2026-11-26", false, "Thanksgiving Day"),
            ("2024-12-25", false, "Christmas Day"),
            ("2024-11-29", true, nil),                          // early close, still a trading day
            ("2026-11-20", true, nil),
            ("2026-11-21", false, nil),                         // Saturday
            ("2026-11-22", false, nil),                         // Sunday
        ]
        for (day, trades, holiday) in cases {
            let row = try await conn.query(
                "SELECT maintenance_nyse_holiday($1::date) AS holiday, maintenance_is_trading_day($1::date) AS trading", [day]).first
            XCTAssertEqual(row?["holiday"], holiday, day)
            XCTAssertEqual(try row?.decode("trading", as: Bool.self), trades, day)
        }
    }

    func testOverridesWinOverTheRules() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // 2025-01-09 (National Day of Mourning) is a normal Thursday by the rules; the seeded
        // override closes it.
        let rule = try await conn.query("SELECT maintenance_nyse_holiday('2025-01-09') AS h").first?["h"]
        XCTAssertNil(rule)
        let closed = try await CycleStore.isTradingDay("2025-01-09", connection: conn)
        XCTAssertFalse(closed)
        // Users add and remove dates.
        try await conn.execute("INSERT INTO maintenance_calendar_overrides VALUES ('2026-11-20', false, 'test closure'), ('2026-11-26', true, 'test opening')")
        let friday = try await CycleStore.isTradingDay("2026-11-20", connection: conn)
        let thanksgiving = try await CycleStore.isTradingDay("2026-11-26", connection: conn)
        XCTAssertFalse(friday)
        XCTAssertTrue(thanksgiving)
        try await conn.execute("DELETE FROM maintenance_calendar_overrides WHERE day = '2026-11-20'")
        let again = try await CycleStore.isTradingDay("2026-11-20", connection: conn)
        XCTAssertTrue(again)
    }
}
