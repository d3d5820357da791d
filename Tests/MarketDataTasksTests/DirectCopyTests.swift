import Foundation
import Toolkit
import PostgresClient
import TestSupport
import XCTest
@testable import MarketDataTasks

/// The direct COPY of a batch whose dates have no row yet, and its fall back to the merge when
/// another session writes one of its keys after the check: on the real test cluster, with real
/// concurrent sessions holding real locks.
final class DirectCopyTests: XCTestCase {
    private func bar(_ symbol: String, _ date: String, close: String, volume: String = "100") -> MarketBar {
        MarketBar(symbol: symbol, timestamp: NewYorkTime.epochMilliseconds(date: CivilDate(date)!, minuteOfDay: 0),
                  open: Decimal(string: close)!, high: Decimal(string: close)! + 1, low: Decimal(string: close)! - 1,
                  close: Decimal(string: close)!, volume: Decimal(string: volume)!, vwap: nil, tradesCount: 7)
    }

    private func closes(_ conn: PostgresConnection, _ date: String) async throws -> [[String?]] {
        try await conn.query("SELECT symbol, close::text AS c FROM market_data_daily WHERE date = $1::date ORDER BY 1", [date]).values
    }

    /// A write blocked on a row another session inserted and has not committed.
    private struct BlockedWrite<T: Sendable> {
        /// The writer's connection.
        let writer: PostgresConnection
        /// The session holding the uncommitted row (its transaction is open).
        let other: PostgresConnection
        /// A third session, for checks.
        let observer: PostgresConnection
        /// The write, waiting on the other session's row.
        let task: Task<T, Error>

        func close() async {
            for conn in [writer, other, observer] { await conn.close() }
        }
    }

    /// Has another session run `insert` in a transaction it keeps open, then starts `write` on
    /// a new connection (after `settings`) and returns once it waits on the other session's
    /// row: the writer's check cannot see the uncommitted row, its COPY stops at that key.
    private func blockedWrite<T: Sendable>(settings: String? = nil, inserting insert: String,
                                           _ write: @escaping @Sendable (PostgresSession) throws -> T) async throws -> BlockedWrite<T> {
        let db = try TestCluster.migratedDatabase()
        let writer = try await PostgresConnection.connect(db.url)
        if let settings { try await writer.execute(settings) }
        let other = try await PostgresConnection.connect(db.url)
        let observer = try await PostgresConnection.connect(db.url)
        try await other.execute("BEGIN; " + insert)
        let task = Task { try await writer.withSession(write) }
        let pid = writer.backendPID
        let blocked = try await eventually {
            try await observer.query("SELECT wait_event_type = 'Lock' AS w FROM pg_stat_activity WHERE pid = $1", [Int(pid)])
                .first?["w"] == "t"
        }
        XCTAssertTrue(blocked, "the writer never waited for the other session's row")
        return BlockedWrite(writer: writer, other: other, observer: observer, task: task)
    }

    private static let msftRow = """
        INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume) VALUES ('MSFT', '2025-03-10', 1, 1, 1, 1, 1)
        """

    func testANewDayIsCopiedStraightInAndARerunChangesNothing() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // Out of order, with a duplicate key whose later bar wins.
        var later = bar("AAPL", "2025-03-10", close: "5")
        later.timestamp += 60_000
        let day = [bar("MSFT", "2025-03-10", close: "3"), later, bar("AAPL", "2025-03-10", close: "4"), bar("NVDA", "2025-03-10", close: "1.5")]
        let first = try await conn.withSession { try MarketDataWriter.writeDailyBars(day, session: $0) }
        XCTAssertEqual(first, MarketDataWriter.Outcome(staged: 3, written: 3, path: .direct))
        let written = try await conn.query("SELECT symbol, close::text AS c, xmin::text AS x, updated_at FROM market_data_daily ORDER BY 1").values
        XCTAssertEqual(written.map { [$0[0], $0[1]] }, [["AAPL", "5"], ["MSFT", "3"], ["NVDA", "1.5"]])

        // The same day again: merged, nothing rewritten (same row versions, same updated_at).
        let rerun = try await conn.withSession { try MarketDataWriter.writeDailyBars(day, session: $0) }
        XCTAssertEqual(rerun, MarketDataWriter.Outcome(staged: 3, written: 0, path: .merge))
        let after = try await conn.query("SELECT symbol, close::text AS c, xmin::text AS x, updated_at FROM market_data_daily ORDER BY 1").values
        XCTAssertEqual(after, written)

        // The next day, with the first one present, is new again; a batch touching a day with
        // rows (a partial day, a reload window) is merged.
        let next = [bar("AAPL", "2025-03-11", close: "6"), bar("MSFT", "2025-03-11", close: "7")]
        let nextOutcome = try await conn.withSession { try MarketDataWriter.writeDailyBars(next, session: $0) }
        XCTAssertEqual(nextOutcome.path, .direct)
        let window = [bar("AAPL", "2025-03-11", close: "6"), bar("AAPL", "2025-03-12", close: "8"), bar("TSLA", "2025-03-11", close: "9")]
        let windowOutcome = try await conn.withSession { try MarketDataWriter.writeDailyBars(window, session: $0) }
        XCTAssertEqual(windowOutcome, MarketDataWriter.Outcome(staged: 3, written: 2, path: .merge))
        let partial = try await closes(conn, "2025-03-11")
        XCTAssertEqual(partial, [["AAPL", "6"], ["MSFT", "7"], ["TSLA", "9"]])
        await conn.close()
    }

    func testABatchOfOneSymbolChecksOnlyThatSymbol() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let seed = [bar("AAPL", "2025-03-10", close: "1")]
        try await conn.withSession { try MarketDataWriter.writeDailyBars(seed, session: $0) }
        // A new symbol's history over days other symbols have: straight in.
        let history = ["2025-03-07", "2025-03-10"].map { bar("MSFT", $0, close: "2") }
        let outcome = try await conn.withSession { try MarketDataWriter.writeDailyBars(history, session: $0) }
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 2, written: 2, path: .direct))
        // Two symbols over a day with rows: merged.
        let two = [bar("NVDA", "2025-03-10", close: "3"), bar("TSLA", "2025-03-10", close: "4")]
        let merged = try await conn.withSession { try MarketDataWriter.writeDailyBars(two, session: $0) }
        XCTAssertEqual(merged, MarketDataWriter.Outcome(staged: 2, written: 2, path: .merge))
        // Slots likewise: a symbol's first slots of a day other symbols have go straight in.
        let day = CivilDate("2025-03-10")!
        let aapl = [VolumeSlot(symbol: "AAPL", date: day, slotIndex: 0, volume: 1)]
        let msft = [0, 1].map { VolumeSlot(symbol: "MSFT", date: day, slotIndex: $0, volume: 2) }
        let slotOutcomes = try await conn.withSession { session in
            [try MarketDataWriter.writeVolumeSlots(aapl, session: session), try MarketDataWriter.writeVolumeSlots(msft, session: session),
             try MarketDataWriter.writeVolumeSlots(msft, session: session)]
        }
        XCTAssertEqual(slotOutcomes.map(\.path), [.direct, .direct, .merge])
        XCTAssertEqual(slotOutcomes.map(\.written), [1, 2, 0])
        await conn.close()
    }

    func testAKeyAnotherSessionCommitsAfterTheCheckMakesTheBatchMergeAndWin() async throws {
        // The other session holds the batch's middle key: the writer's COPY writes AAPL, then waits on MSFT.
        let batch = [bar("AAPL", "2025-03-10", close: "10"), bar("MSFT", "2025-03-10", close: "20"), bar("NVDA", "2025-03-10", close: "30")]
        let blocked = try await blockedWrite(inserting: Self.msftRow) { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        try await blocked.other.execute("COMMIT")
        // The COPY meets the committed key (23505), rolls back to its savepoint and merges:
        // no error, and the batch, written last, wins over the other session's row.
        let outcome = try await blocked.task.value
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 3, written: 3, path: .directThenMerge))
        let rows = try await closes(blocked.observer, "2025-03-10")
        XCTAssertEqual(rows, [["AAPL", "10"], ["MSFT", "20"], ["NVDA", "30"]])
        // A rerun changes nothing.
        let rerun = try await blocked.writer.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(rerun, MarketDataWriter.Outcome(staged: 3, written: 0, path: .merge))
        await blocked.close()
    }

    func testADeadlockInTheDirectCopyFallsBackToTheMerge() async throws {
        // The writer's COPY writes AAPL and waits on MSFT, which the other session holds; the
        // other session then inserts AAPL: a deadlock. The writer's deadlock_timeout is the
        // shorter, so the writer finds it (40P01), unless the other session's insert came later
        // than that (a stalled machine): then the other session is refused instead and the
        // round is run again.
        let batch = [bar("AAPL", "2025-03-10", close: "10"), bar("MSFT", "2025-03-10", close: "20"), bar("NVDA", "2025-03-10", close: "30")]
        for _ in 0..<3 {
            let blocked = try await blockedWrite(settings: "SET deadlock_timeout = '2s'", inserting: Self.msftRow) {
                try MarketDataWriter.writeDailyBars(batch, session: $0)
            }
            do {
                try await blocked.other.execute("""
                    SET deadlock_timeout = '10s';
                    INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume) VALUES ('AAPL', '2025-03-10', 2, 2, 2, 2, 2);
                    """)
            } catch let error as PostgresError where error.sqlState == "40P01" {
                let outcome = try await blocked.task.value
                XCTAssertEqual(outcome.path, .direct)
                await blocked.close()
                continue
            }
            // The writer rolled back to its savepoint (the other session's insert went through)
            // and merges, waiting for the other session's rows, then overwriting them.
            try await blocked.other.execute("COMMIT")
            let outcome = try await blocked.task.value
            XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 3, written: 3, path: .directThenMerge))
            let rows = try await closes(blocked.observer, "2025-03-10")
            XCTAssertEqual(rows, [["AAPL", "10"], ["MSFT", "20"], ["NVDA", "30"]])
            await blocked.close()
            return
        }
        XCTFail("the writer never met the deadlock in 3 rounds")
    }

    func testALargeBatchMeetingAConcurrentKeyAtItsFirstRowMerges() async throws {
        // Megabytes of COPY data wait in the socket while the server waits on the first key;
        // after the other session commits, the server refuses the key and the batch merges.
        let batch = (0..<40_000).map { bar(String(format: "S%05d", $0), "2025-03-10", close: "10") }
        let blocked = try await blockedWrite(inserting: """
            INSERT INTO market_data_daily (symbol, date, open, high, low, close, volume) VALUES ('S00000', '2025-03-10', 1, 1, 1, 1, 1)
            """) { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        try await blocked.other.execute("COMMIT")
        let outcome = try await blocked.task.value
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 40_000, written: 40_000, path: .directThenMerge))
        let rows = try await blocked.observer.query("SELECT count(*) AS n, count(DISTINCT close) AS c, min(close)::text AS m FROM market_data_daily").first
        XCTAssertEqual(rows?["n"], "40000")
        XCTAssertEqual(rows?["c"], "1")
        XCTAssertEqual(rows?["m"], "10")
        await blocked.close()
    }

    func testAKeyAnotherSessionRollsBackLeavesTheDirectCopy() async throws {
        let batch = [bar("AAPL", "2025-03-10", close: "10"), bar("MSFT", "2025-03-10", close: "20")]
        let blocked = try await blockedWrite(inserting: Self.msftRow) { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        try await blocked.other.execute("ROLLBACK")
        let outcome = try await blocked.task.value
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 2, written: 2, path: .direct))
        let rows = try await closes(blocked.observer, "2025-03-10")
        XCTAssertEqual(rows, [["AAPL", "10"], ["MSFT", "20"]])
        await blocked.close()
    }

    func testSlotsOfADayAnotherSessionCommitsAfterTheCheckAreReplacedByTheBatch() async throws {
        // Slot 5 is one of the batch's keys; slot 7 is not, and goes when the batch is merged.
        let day = CivilDate("2025-03-10")!
        let slots = [0, 5, 191].map { VolumeSlot(symbol: "AAPL", date: day, slotIndex: $0, volume: Decimal(100 + $0)) }
        let blocked = try await blockedWrite(inserting: """
            INSERT INTO volume_slots (symbol, date, slot_index, volume) VALUES ('AAPL', '2025-03-10', 5, 1), ('AAPL', '2025-03-10', 7, 1)
            """) { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
        try await blocked.other.execute("COMMIT")
        let outcome = try await blocked.task.value
        // Inserted 0 and 191, changed 5, deleted 7.
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 3, written: 4, path: .directThenMerge))
        let rows = try await blocked.observer.query("SELECT slot_index, volume::text AS v FROM volume_slots ORDER BY 1").values
        XCTAssertEqual(rows, [["0", "100"], ["5", "105"], ["191", "291"]])
        await blocked.close()
    }

    func testCancellingADirectCopyCancelsItsStatementAndFallsBackToNothing() async throws {
        let batch = [bar("AAPL", "2025-03-10", close: "10"), bar("MSFT", "2025-03-10", close: "20")]
        let blocked = try await blockedWrite(inserting: Self.msftRow) { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        blocked.task.cancel()
        do {
            _ = try await blocked.task.value
            XCTFail("the cancelled write went on")
        } catch let error as PostgresError {
            XCTAssertTrue(error.isCancellation, "\(error)")
        }
        // The other session's transaction was not waited for; the writer wrote nothing.
        try await blocked.other.execute("COMMIT")
        let rows = try await closes(blocked.observer, "2025-03-10")
        XCTAssertEqual(rows, [["MSFT", "1"]])
        // The connection is usable: the same batch now merges.
        let outcome = try await blocked.writer.withSession { try MarketDataWriter.writeDailyBars(batch, session: $0) }
        XCTAssertEqual(outcome, MarketDataWriter.Outcome(staged: 2, written: 2, path: .merge))
        await blocked.close()
    }

    func testTwoWritersOfOneNewDayAtOnceLeaveOneWholeBatchAndNoError() async throws {
        let db = try TestCluster.migratedDatabase()
        let a = try await PostgresConnection.connect(db.url)
        let b = try await PostgresConnection.connect(db.url)
        let symbols = (0..<400).map { String(format: "S%03d", $0) }
        var paths: [MarketDataWriter.Path: Int] = [:]
        for round in 0..<12 {
            let date = CivilDate("2025-01-02")!.adding(days: round).description
            let first = symbols.map { bar($0, date, close: "1") }, second = symbols.map { bar($0, date, close: "2") }
            async let one = a.withSession { try MarketDataWriter.writeDailyBars(first, session: $0) }
            async let two = b.withSession { try MarketDataWriter.writeDailyBars(second, session: $0) }
            let outcomes = try await [one, two]
            for outcome in outcomes { paths[outcome.path, default: 0] += 1 }
            // Every row of the day comes from the batch that committed last.
            let day = try await a.query("SELECT count(*) AS n, count(DISTINCT close) AS closes FROM market_data_daily WHERE date = $1::date", [date]).first
            XCTAssertEqual(day?["n"], "400", date)
            XCTAssertEqual(day?["closes"], "1", date)
        }
        print("paths taken: \(paths)")
        await a.close()
        await b.close()
    }
}
