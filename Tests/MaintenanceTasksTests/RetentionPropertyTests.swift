import Foundation
import Toolkit
import MaintenanceTasks
import MarketDataTasks
import PostgresClient
import TestSupport
import XCTest

/// Random tables, windows and batch sizes; after each retention run the table must hold exactly
/// the rows an oracle computed here, in Swift, from the rows it generated.
///
/// `CLOSEBELL_RETENTION_SEED` replays one seed; `CLOSEBELL_RETENTION_CASES` sets the number of
/// cases (default 200). A failure prints the seed, the case and its layout.
final class RetentionPropertyTests: XCTestCase {
    func testRetentionKeepsExactlyTheRowsInsideTheWindowOnRandomLayouts() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["CLOSEBELL_RETENTION_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(Int64.max))
        let cases = environment["CLOSEBELL_RETENTION_CASES"].flatMap { Int($0) } ?? 200
        print("retention property test: seed \(seed), \(cases) cases (replay with CLOSEBELL_RETENTION_SEED=\(seed))")
        let db = try TestCluster.freshDatabase("rp")
        let conn = try await PostgresConnection.connect(db.url)
        var random = SplitMix64(seed: seed)
        for index in 0..<cases {
            let scenario = Scenario.random(&random, index: index)
            do {
                try await scenario.check(url: db.url, connection: conn)
            } catch {
                XCTFail("seed \(seed), case \(index): \(scenario.summary): \(error)")
                break
            }
            try await conn.execute("DROP SCHEMA \(scenario.schema) CASCADE")
        }
        await conn.close()
    }
}

/// A failed comparison with the oracle.
private struct Mismatch: Error, CustomStringConvertible {
    let description: String
}

/// A small deterministic generator (SplitMix64), so a seed replays the same cases.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
    mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[int(0...(values.count - 1))] }
}

/// Civil dates as days since 1970-01-01 (`CivilDate`), converted without the server.
private enum Civil {
    static func days(year: Int, month: Int, day: Int) -> Int { CivilDate(year: year, month: month, day: day)!.dayNumber }

    static func date(_ days: Int) -> (year: Int, month: Int, day: Int) { CivilDate(dayNumber: days).components }

    static func text(_ days: Int) -> String { CivilDate(dayNumber: days).description }

    /// `YYYY-MM-DD HH:MM:SS.ffffff` of a count of microseconds since 1970-01-01 00:00.
    static func timestampText(micros: Int64) -> String {
        let perDay: Int64 = 86_400_000_000
        let days = Int(micros >= 0 ? micros / perDay : (micros - perDay + 1) / perDay)
        let rest = micros - Int64(days) * perDay
        let seconds = rest / 1_000_000
        return text(days) + String(format: " %02d:%02d:%02d.%06d", Int(seconds / 3600), Int(seconds / 60 % 60), Int(seconds % 60), Int(rest % 1_000_000))
    }

    static let newYork: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "America/New_York")!
        return calendar
    }()

    /// The instant (µs since the epoch) of New York midnight starting the civil day `days`.
    static func newYorkMidnight(_ days: Int) -> Int64 {
        let d = date(days)
        let start = newYork.date(from: DateComponents(year: d.year, month: d.month, day: d.day))!
        return Int64(start.timeIntervalSince1970.rounded()) * 1_000_000
    }

    /// The New York civil day (days since 1970-01-01) of an instant.
    static func newYorkDay(micros: Int64) -> Int {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let parts = newYork.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(seconds)))
        return days(year: parts.year!, month: parts.month!, day: parts.day!)
    }
}

/// One random case: a layout, a column type, rows, a window and a batch size.
private struct Scenario {
    enum Layout: String, CaseIterable {
        case plain, days, months, mixed, multiLevel, inheritance, hash
    }

    struct Row {
        let id: Int
        /// Days (date), or µs since 1970-01-01 (timestamp: local; timestamptz: UTC); nil: NULL.
        let value: Int64?
        let kind: String
    }

    let index: Int
    let layout: Layout
    let columnType: String
    let withDefault: Bool
    let today: Int
    let windowDays: Int
    let batchSize: Int
    let filter: [String]?
    let dropPartitions: Bool
    let rows: [Row]
    /// Which inheritance child (0 = the parent) each row goes to.
    let homes: [Int]

    var schema: String { "rp\(index)" }
    var table: String { "\(schema).t" }
    var cutoff: Int { today - windowDays }
    var summary: String {
        "layout \(layout.rawValue)\(withDefault ? "+default" : ""), \(columnType), today \(Civil.text(today)), \(windowDays) days, "
            + "batch \(batchSize), filter \(filter.map { "\($0)" } ?? "none"), drop partitions \(dropPartitions), \(rows.count) rows"
    }

    /// New York DST switch days, where a wrong offset would show.
    static let switchDays = [(2023, 3, 12), (2023, 11, 5), (2024, 3, 10), (2024, 11, 3), (2025, 3, 9), (2025, 11, 2), (2026, 3, 8), (2026, 11, 1)]
        .map { Civil.days(year: $0.0, month: $0.1, day: $0.2) }

    static func random(_ random: inout SplitMix64, index: Int) -> Scenario {
        let layout = random.pick(Layout.allCases)
        let columnType = random.pick(["date", "timestamptz", "timestamptz", "timestamp"])
        let windowDays = random.pick([0, 1, 7, 30, 60, 200, random.int(0...400)])
        let cutoff = random.chance(40)
            ? random.pick(switchDays) + random.int(-1...1)
            : Civil.days(year: 2023, month: 1, day: 1) + random.int(0...1400)
        let spread = layout == .days ? random.int(1...10) : random.pick([2, 10, 40, 70])
        let withDefault = layout == .plain || layout == .inheritance || layout == .hash ? false : random.chance(50)
        let nullable = layout == .plain || layout == .inheritance || layout == .hash || withDefault
        let count = random.int(0...120)
        var rows: [Row] = []
        var homes: [Int] = []
        for id in 1...max(count, 1) where count > 0 {
            let day = cutoff + random.int(-spread...spread)
            let kind = random.pick(["a", "b", "c"])
            var value: Int64?
            switch columnType {
            case "date":
                value = Int64(day)
            case "timestamp":
                let midnight = Int64(day) * 86_400_000_000
                value = midnight + random.pick([0, -1, 1, Int64(random.int(0...86_399)) * 1_000_000 + Int64(random.int(0...999_999))])
            default:
                let midnight = Civil.newYorkMidnight(day)
                let length = Civil.newYorkMidnight(day + 1) - midnight
                value = midnight + random.pick([0, -1, 1, Int64(random.int(0...Int(length / 1_000_000) - 1)) * 1_000_000 + Int64(random.int(0...999_999))])
            }
            if nullable, random.chance(5) { value = nil }
            rows.append(Row(id: id, value: value, kind: kind))
            homes.append(random.int(0...3))
        }
        let filter: [String]? = random.chance(30) ? random.pick([["a"], ["a", "c"], ["b", "c"], []]) : nil
        return Scenario(
            index: index, layout: layout, columnType: columnType, withDefault: withDefault, today: cutoff + windowDays,
            windowDays: windowDays, batchSize: random.pick([1, 2, 3, 7, 50, 10_000]), filter: filter, dropPartitions: random.chance(40),
            rows: rows, homes: homes)
    }

    /// True when the oracle says retention removes `row`.
    func removes(_ row: Row) -> Bool {
        guard let value = row.value else { return false }
        if let filter, !filter.contains(row.kind) { return false }
        switch columnType {
        case "date": return Int(value) < cutoff
        case "timestamp": return value < Int64(cutoff) * 86_400_000_000
        default: return Civil.newYorkDay(micros: value) < cutoff
        }
    }

    func literal(_ row: Row) -> String {
        guard let value = row.value else { return "NULL" }
        switch columnType {
        case "date": return "'\(Civil.text(Int(value)))'::date"
        case "timestamp": return "'\(Civil.timestampText(micros: value))'::timestamp"
        default: return "'\(Civil.timestampText(micros: value))+00'::timestamptz"
        }
    }

    /// Range partitions of whole days or months covering every generated value.
    func rangePartitions(parent: String, name: String, level: String, from first: Int, to last: Int, months: Bool) -> [String] {
        var statements: [String] = []
        var start = first
        var number = 0
        while start <= last {
            let next: Int
            if months {
                let d = Civil.date(start)
                next = Civil.days(year: d.month == 12 ? d.year + 1 : d.year, month: d.month == 12 ? 1 : d.month + 1, day: 1)
            } else {
                next = start + 1
            }
            statements.append(
                "CREATE TABLE \(schema).\(name)_\(level)\(number) PARTITION OF \(parent) FOR VALUES FROM ('\(Civil.text(start))') TO ('\(Civil.text(next))')")
            start = next
            number += 1
        }
        return statements
    }

    /// The DDL of the layout; covers `first...last` days (plus a day either side for timestamps).
    func ddl() -> [String] {
        let columns = "(id int NOT NULL, v \(columnType), kind text NOT NULL)"
        let values = rows.compactMap(\.value)
        let days = values.map { columnType == "date" ? Int($0) : Int($0 / 86_400_000_000) }
        let first = (days.min() ?? cutoff) - 1, last = (days.max() ?? cutoff) + 1
        let monthStart: (Int) -> Int = { let d = Civil.date($0); return Civil.days(year: d.year, month: d.month, day: 1) }
        var statements = ["CREATE SCHEMA \(schema)"]
        switch layout {
        case .plain:
            statements.append("CREATE TABLE \(table) \(columns)")
        case .hash:
            statements.append("CREATE TABLE \(table) \(columns) PARTITION BY HASH (id)")
            for r in 0..<4 { statements.append("CREATE TABLE \(schema).h\(r) PARTITION OF \(table) FOR VALUES WITH (MODULUS 4, REMAINDER \(r))") }
        case .inheritance:
            statements.append("CREATE TABLE \(table) \(columns)")
            statements.append("CREATE TABLE \(schema).c1 (extra int) INHERITS (\(table))")
            statements.append("CREATE TABLE \(schema).c2 () INHERITS (\(table))")
            statements.append("CREATE TABLE \(schema).c3 () INHERITS (\(schema).c1)")
        case .days, .months, .mixed:
            statements.append("CREATE TABLE \(table) \(columns) PARTITION BY RANGE (v)")
            if withDefault { statements.append("CREATE TABLE \(schema).dflt PARTITION OF \(table) DEFAULT") }
            switch layout {
            case .days:
                // With a default partition, only the days around the cutoff get their own.
                let (from, to) = withDefault ? (max(first, cutoff - 3), min(last, cutoff + 3)) : (first, last)
                if from <= to { statements += rangePartitions(parent: table, name: "d", level: "", from: from, to: to, months: false) }
            case .months:
                statements += rangePartitions(parent: table, name: "m", level: "", from: monthStart(first), to: last, months: true)
            default:
                // Months up to the cutoff's month, then days.
                let split = monthStart(cutoff)
                if monthStart(first) < split {
                    statements += rangePartitions(parent: table, name: "m", level: "", from: monthStart(first), to: split - 1, months: true)
                }
                let daysEnd = min(max(last, split), split + 20)
                statements += rangePartitions(parent: table, name: "d", level: "", from: split, to: daysEnd, months: false)
                if daysEnd < last {
                    statements += rangePartitions(parent: table, name: "m", level: "x", from: daysEnd + 1, to: last, months: true)
                }
            }
        case .multiLevel:
            statements.append("CREATE TABLE \(table) \(columns) PARTITION BY LIST (kind)")
            statements.append("CREATE TABLE \(schema).ka PARTITION OF \(table) FOR VALUES IN ('a') PARTITION BY RANGE (v)")
            statements += rangePartitions(parent: "\(schema).ka", name: "ka", level: "m", from: monthStart(first), to: last, months: true)
            statements.append("CREATE TABLE \(schema).kother PARTITION OF \(table) DEFAULT PARTITION BY RANGE (v)")
            if withDefault {
                statements.append("CREATE TABLE \(schema).ka_dflt PARTITION OF \(schema).ka DEFAULT")
                statements.append("CREATE TABLE \(schema).ko_dflt PARTITION OF \(schema).kother DEFAULT")
                statements += rangePartitions(parent: "\(schema).kother", name: "ko", level: "d", from: max(first, cutoff - 2), to: min(last, cutoff + 2), months: false)
            } else {
                statements += rangePartitions(parent: "\(schema).kother", name: "ko", level: "m", from: monthStart(first), to: last, months: true)
            }
        }
        return statements
    }

    func inserts() -> [String] {
        guard !rows.isEmpty else { return [] }
        if layout == .inheritance {
            let targets = [table, "\(schema).c1", "\(schema).c2", "\(schema).c3"]
            return zip(rows, homes).map { row, home in
                "INSERT INTO \(targets[home]) (id, v, kind) VALUES (\(row.id), \(literal(row)), '\(row.kind)')"
            }
        }
        let values = rows.map { "(\($0.id), \(literal($0)), '\($0.kind)')" }.joined(separator: ", ")
        return ["INSERT INTO \(table) (id, v, kind) VALUES \(values)"]
    }

    func check(url: String, connection: PostgresConnection) async throws {
        try await connection.execute((ddl() + inserts()).joined(separator: ";\n"))
        let rule = RetentionRule(table: table, column: "v", days: windowDays, filterColumn: filter == nil ? nil : "kind", filterValues: filter ?? [])
        let settings = RetentionSettings(rules: [rule], batchSize: batchSize, today: Civil.text(today), dropPartitions: dropPartitions)
        let task = RetentionTask(settings: settings)
        let expectedRemoved = rows.filter(removes).count
        let kept = rows.filter { !removes($0) }.map(\.id).sorted()

        let dry = try object(try await task.run(makeContext(url: url, task: "retention", args: #"{"dry_run": true}"#)))
        let dryRows = (dry["tables"] as? [[String: Any]])?.first?["rows_removed"] as? Int
        guard dryRows == expectedRemoved else { throw Mismatch(description: "dry run counted \(dryRows ?? -1), oracle \(expectedRemoved)") }
        let cutoffText = (dry["tables"] as? [[String: Any]])?.first?["cutoff"] as? String
        guard cutoffText == Civil.text(cutoff) else { throw Mismatch(description: "cutoff \(cutoffText ?? "nil"), oracle \(Civil.text(cutoff))") }

        let result = try object(try await task.run(makeContext(url: url, task: "retention")))
        let removed = result["total_rows_removed"] as? Int
        let left = try await connection.query("SELECT id FROM \(table) ORDER BY id").map { try $0.decode("id", as: Int.self) }
        guard left == kept else {
            let lost = Set(kept).subtracting(left).sorted().prefix(10)
            let extra = Set(left).subtracting(kept).sorted().prefix(10)
            throw Mismatch(description: "rows differ from the oracle: wrongly deleted \(Array(lost)), wrongly kept \(Array(extra))")
        }
        guard removed == expectedRemoved else { throw Mismatch(description: "reported \(removed ?? -1) removed, oracle \(expectedRemoved)") }
    }
}
