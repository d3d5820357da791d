import Foundation
import Toolkit
import XCTest
@testable import Benchmarks
@testable import MarketDataTasks

/// Dates, New York time and slots, checked against UTC instants written out by hand (not
/// through the code under test): 04:00 New York is 09:00 UTC in winter (EST) and 08:00 UTC in
/// summer (EDT).
final class CalendarTests: XCTestCase {
    /// Milliseconds of a UTC date and time, computed from the civil date only.
    private func utc(_ date: String, _ hour: Int, _ minute: Int) -> Int64 {
        Int64(CivilDate(date)!.dayNumber) * 86_400_000 + Int64(hour * 3600 + minute * 60) * 1000
    }

    func testCivilDates() {
        XCTAssertEqual(CivilDate("1970-01-01")?.dayNumber, 0)
        XCTAssertEqual(CivilDate("2024-02-29")?.description, "2024-02-29")
        XCTAssertEqual(CivilDate(dayNumber: 20_000).description, "2024-10-04")
        XCTAssertNil(CivilDate("2025-02-29"))
        XCTAssertNil(CivilDate("2025-1-01"))
        XCTAssertNil(CivilDate("2025-01-0x"))
        XCTAssertEqual(CivilDate("2025-03-08")?.isWeekend, true)
        XCTAssertEqual(CivilDate("2025-03-09")?.isWeekend, true)
        XCTAssertEqual(CivilDate("2025-03-10")?.weekday, 1)
        let range = DateRange(from: CivilDate("2025-03-07")!, to: CivilDate("2025-03-11")!)
        XCTAssertEqual(range.weekdays.map(\.description), ["2025-03-07", "2025-03-10", "2025-03-11"])
        XCTAssertEqual(DateRange.last(3, today: CivilDate("2025-03-10")!).from.description, "2025-03-08")
    }

    func testSlotsEitherSideOfTheMarchSwitch() {
        // Friday 2025-03-07, EST (UTC-5).
        XCTAssertNil(NewYorkTime.slot(epochMilliseconds: utc("2025-03-07", 8, 59)))
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-07", 9, 0))?.slot, 0)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-07", 9, 4))?.slot, 0)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-07", 9, 5))?.slot, 1)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-07", 14, 30))?.slot, 66)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-08", 0, 59))?.slot, 191)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-08", 0, 59))?.date.description, "2025-03-07")
        XCTAssertNil(NewYorkTime.slot(epochMilliseconds: utc("2025-03-08", 1, 0)))
        // Monday 2025-03-10, EDT (UTC-4).
        XCTAssertNil(NewYorkTime.slot(epochMilliseconds: utc("2025-03-10", 7, 59)))
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-10", 8, 0))?.slot, 0)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-10", 13, 30))?.slot, 66)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-03-10", 23, 55))?.slot, 191)
        XCTAssertNil(NewYorkTime.slot(epochMilliseconds: utc("2025-03-11", 0, 0)))
    }

    func testSlotsEitherSideOfTheNovemberSwitch() {
        // Friday 2025-10-31, EDT (UTC-4).
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-10-31", 8, 0))?.slot, 0)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-10-31", 23, 59))?.slot, 191)
        XCTAssertEqual(NewYorkTime.tradingDate(epochMilliseconds: utc("2025-11-01", 3, 59)).description, "2025-10-31")
        // Monday 2025-11-03, EST (UTC-5).
        XCTAssertNil(NewYorkTime.slot(epochMilliseconds: utc("2025-11-03", 8, 0)))
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-11-03", 9, 0))?.slot, 0)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-11-04", 0, 55))?.slot, 191)
        XCTAssertEqual(NewYorkTime.slot(epochMilliseconds: utc("2025-11-04", 0, 55))?.date.description, "2025-11-03")
        // Daily bars: t is midnight New York of the trading date.
        XCTAssertEqual(NewYorkTime.tradingDate(epochMilliseconds: utc("2025-11-03", 5, 0)).description, "2025-11-03")
        XCTAssertEqual(NewYorkTime.tradingDate(epochMilliseconds: utc("2025-10-31", 4, 0)).description, "2025-10-31")
        XCTAssertEqual(NewYorkTime.epochMilliseconds(date: CivilDate("2025-11-03")!, minuteOfDay: 240), utc("2025-11-03", 9, 0))
        XCTAssertEqual(NewYorkTime.epochMilliseconds(date: CivilDate("2025-10-31")!, minuteOfDay: 240), utc("2025-10-31", 8, 0))
    }

    func testOffsetCacheAgreesWithTheZoneAroundBothSwitches() {
        var cache = NewYorkTime.OffsetCache()
        for start in ["2025-03-08", "2025-11-01"] {
            let first = utc(start, 0, 0)
            for step in stride(from: Int64(0), to: 3 * 86_400_000, by: 7 * 60_000) {
                let t = first + step
                let expected = NewYorkTime.local(epochMilliseconds: t)
                let cached = cache.local(epochMilliseconds: t)
                XCTAssertEqual(cached.date, expected.date)
                XCTAssertEqual(cached.minuteOfDay, expected.minuteOfDay)
            }
        }
        // 2025-03-09 06:59 UTC is 01:59 EST; 07:00 UTC is 03:00 EDT.
        XCTAssertEqual(cache.local(epochMilliseconds: utc("2025-03-09", 6, 59)).minuteOfDay, 1 * 60 + 59)
        XCTAssertEqual(cache.local(epochMilliseconds: utc("2025-03-09", 7, 0)).minuteOfDay, 3 * 60)
        XCTAssertEqual(CivilDate(year: 987, month: 1, day: 2)?.description, "0987-01-02")
    }

    func testRollUpSumsMinuteBarsAndDropsOutsideTheSession() {
        func bar(_ t: Int64, _ volume: String) -> MarketBar {
            MarketBar(symbol: "AAPL", timestamp: t, open: 1, high: 1, low: 1, close: 1, volume: Decimal(string: volume)!)
        }
        let slots = VolumeSlot.rollUp([
            bar(utc("2025-03-10", 8, 0), "100.5"), bar(utc("2025-03-10", 8, 4), "0.25"), bar(utc("2025-03-10", 8, 5), "7"),
            bar(utc("2025-03-10", 7, 59), "999"), bar(utc("2025-03-11", 0, 0), "999"),
        ])
        XCTAssertEqual(slots, [
            VolumeSlot(symbol: "AAPL", date: CivilDate("2025-03-10")!, slotIndex: 0, volume: Decimal(string: "100.75")!),
            VolumeSlot(symbol: "AAPL", date: CivilDate("2025-03-10")!, slotIndex: 1, volume: 7),
        ])
    }

    func testDoublesBecomeTheDecimalsTheAPIWrote() {
        for text in ["239.07", "0.1", "0.000001", "46273565", "46273565.5", "-3.25", "123456.7891", "0", "1e-9", "12345678901.5", "1.0000001"] {
            let value = Double(text)!
            XCTAssertEqual(PolygonMarketDataSource.decimal(value), Decimal(string: "\(value)"), text)
            XCTAssertEqual("\(PolygonMarketDataSource.decimal(value))", "\(Decimal(string: "\(value)")!)", text)
        }
        var generator = IngestBenchmark.Generator(state: 3)
        for _ in 0..<2000 {
            let value = Double(generator.next(10_000_000)) / [1, 10, 100, 1000, 10_000][generator.next(5)]
            XCTAssertEqual(PolygonMarketDataSource.decimal(value), Decimal(string: "\(value)"), "\(value)")
        }
    }

    func testSICDivisions() {
        XCTAssertEqual(SICDivision.name(forCode: "3571"), "Manufacturing")
        XCTAssertEqual(SICDivision.name(forCode: "0100"), "Agriculture, Forestry and Fishing")
        XCTAssertEqual(SICDivision.name(forCode: "6021"), "Finance, Insurance and Real Estate")
        XCTAssertEqual(SICDivision.name(forCode: "7372"), "Services")
        XCTAssertEqual(SICDivision.name(forCode: "5961"), "Retail Trade")
        XCTAssertEqual(SICDivision.name(forCode: "5199"), "Wholesale Trade")
        XCTAssertEqual(SICDivision.name(forCode: "4911"), "Transportation, Communications, Electric, Gas and Sanitary Services")
        XCTAssertEqual(SICDivision.name(forCode: "9999"), "Nonclassifiable")
        XCTAssertEqual(SICDivision.name(forCode: "9729"), "Public Administration")
        XCTAssertNil(SICDivision.name(forCode: "1800"))
        XCTAssertNil(SICDivision.name(forCode: "9800"))
        XCTAssertNil(SICDivision.name(forCode: ""))
        XCTAssertNil(SICDivision.name(forCode: "35x1"))
        XCTAssertNil(SICDivision.name(forCode: nil as String?))
    }

    func testCheckpointCursorStaysSmallAndSkipsFinishedUnits() {
        let units = ["A", "B", "C", "D", "E"]
        var progress = BatchProgress(task: "volume_slots")
        progress.markDone("B", sortedUnits: units)
        XCTAssertNil(progress.doneThrough)
        XCTAssertEqual(progress.doneAfter, ["B"])
        progress.markDone("A", sortedUnits: units)
        XCTAssertEqual(progress.doneThrough, "B")
        XCTAssertEqual(progress.doneAfter, [])
        progress.markDone("D", sortedUnits: units)
        XCTAssertEqual(units.filter { progress.isDone($0) }, ["A", "B", "D"])
        progress.markDone("C", sortedUnits: units)
        XCTAssertEqual(progress.doneThrough, "D")
        XCTAssertEqual(progress.doneAfter, [])
    }
}
