import Foundation
import Toolkit
import JobQueue
import Logging
import Polygon
import PostgresClient
import SampleMarket
import TestSupport
import XCTest
@testable import MarketDataTasks

/// Checkpoints a task saved, in order.
final class CheckpointRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var saved: [PostgresJSON] = []
    var all: [PostgresJSON] { lock.withLock { saved } }
    func record(_ json: PostgresJSON) { lock.withLock { saved.append(json) } }
}

/// A migrated database, a sample Polygon server on loopback and a client pointed at it.
struct MarketFixture {
    static let apiKey = "test-key-7f3a9c1e5b"
    let data: SampleMarketData
    let server: SamplePolygonServer
    let client: PolygonClient
    let db: (url: String, name: String)
    let connection: PostgresConnection

    init(symbols: [String], apiKey: String = MarketFixture.apiKey, aggregatesLimit: Int = 50_000,
         from: CivilDate? = CivilDate("2025-02-24"), through: CivilDate? = CivilDate("2025-11-14"),
         options: SampleServerOptions = SampleServerOptions(apiKey: MarketFixture.apiKey)) async throws {
        data = SampleMarketData(symbols: symbols, from: from, through: through)
        server = try SamplePolygonServer.start(data: data, options: options)
        client = PolygonClient(configuration: PolygonConfiguration(
            baseURL: server.baseURL, apiKey: apiKey, requestsPerSecond: 1000, maxConcurrentRequests: 8,
            retry: PolygonRetryPolicy(maxAttempts: 3, baseDelay: 0.01, maxDelay: 0.05, maxRetryAfter: 1, jitter: false),
            requestTimeout: 10, aggregatesLimit: aggregatesLimit))
        db = try TestCluster.migratedDatabase("md")
        connection = try await PostgresConnection.connect(db.url)
    }

    func seed(_ symbols: [String]) async throws {
        try await SampleUniverse.seed(connection, symbols: symbols)
    }

    func run(_ task: any JobTask, args: String, previousProgress: PostgresJSON? = nil, attempt: Int = 1,
             recorder: CheckpointRecorder = CheckpointRecorder(), cancellation: CancellationFlag = CancellationFlag(),
             logs: LogCapture = LogCapture()) async throws -> PostgresJSON {
        let context = JobContext(jobID: 1, task: task.name, args: PostgresJSON(text: args), attempt: attempt, runID: nil,
                                 previousProgress: previousProgress, logger: logs.logger, conninfo: db.url,
                                 cancellation: cancellation, progressWriter: { recorder.record($0) })
        return try PostgresJSON(encoding: try await task.run(context))
    }

    func stop() async {
        server.stop()
        await connection.close()
    }
}

/// The text of a Double as the API sends it, as an exact decimal.
func exact(_ value: Double) -> Decimal { Decimal(string: "\(value)")! }
func exact(_ text: String?) -> Decimal? { text.flatMap { Decimal(string: $0) } }

struct ResultCounts: Decodable {
    var ok: Int
    var failed: Int
    var skipped: Int
    var failures: [UnitFailure]
}

struct TaskResult: Decodable {
    var symbols: ResultCounts?
    var dates: ResultCounts?
    var rows_written: Int
    var requests: Int
    var symbols_without_bars: Int?
}

final class TaskTests: XCTestCase {
    let universe = ["AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA"]

    /// Expected market_data_daily rows, from the generator directly.
    private func expectedDaily(_ data: SampleMarketData, symbols: [String], from: String, to: String) -> [[String: Decimal?]] {
        var rows: [[String: Decimal?]] = []
        for symbol in symbols.sorted() {
            for date in data.tradingDays(from: CivilDate(from)!, through: CivilDate(to)!) {
                guard let bar = data.dailyBar(symbol: symbol, date: date) else { continue }
                rows.append(["key": Decimal(date.dayNumber), "open": exact(bar.open), "high": exact(bar.high), "low": exact(bar.low),
                             "close": exact(bar.close), "volume": exact(bar.volume), "vwap": bar.vwap.map(exact),
                             "trades": bar.transactions.map { Decimal($0) }])
            }
        }
        return rows
    }

    private func loadedDaily(_ connection: PostgresConnection) async throws -> [[String: Decimal?]] {
        let rows = try await connection.query("""
            SELECT symbol, date - date '1970-01-01' AS key, open::text, high::text, low::text, close::text, volume::text,
                   vwap::text, trades_count::text FROM market_data_daily ORDER BY symbol, date
            """)
        return rows.map { row in
            ["key": exact(row["key"]), "open": exact(row["open"]), "high": exact(row["high"]), "low": exact(row["low"]),
             "close": exact(row["close"]), "volume": exact(row["volume"]), "vwap": exact(row["vwap"]), "trades": exact(row["trades_count"])]
        }
    }

    func testOHLCDailyGroupedLoadsExactBarsForTheUniverseAndIsIdempotent() async throws {
        let fixture = try await MarketFixture(symbols: universe + ["JPM", "XOM"])
        try await fixture.seed(universe)
        let task = OHLCDailyTask(client: fixture.client)
        let args = #"{"from": "2025-03-03", "to": "2025-03-16"}"#
        let first = try await fixture.run(task, args: args).decode(TaskResult.self)
        let expected = expectedDaily(fixture.data, symbols: universe, from: "2025-03-03", to: "2025-03-16")
        XCTAssertEqual(expected.count, 6 * 10)
        let loaded = try await loadedDaily(fixture.connection)
        XCTAssertEqual(loaded, expected)
        XCTAssertEqual(first.rows_written, 60)
        XCTAssertEqual(first.dates?.ok, 10)   // weekdays only: two weekends skipped
        XCTAssertEqual(first.requests, 10)
        XCTAssertEqual(first.symbols?.ok, 6)
        XCTAssertEqual(first.symbols_without_bars, 0)
        XCTAssertEqual(fixture.server.requests.filter { $0.path.contains("/grouped/") }.count, 10)
        // JPM and XOM are in the market but not the universe.
        let others = try await fixture.connection.query("SELECT count(*) AS n FROM market_data_daily WHERE symbol IN ('JPM', 'XOM')")
        XCTAssertEqual(try others.first?.decode("n", as: Int.self), 0)

        let again = try await fixture.run(task, args: args).decode(TaskResult.self)
        XCTAssertEqual(again.rows_written, 0)
        let reloaded = try await loadedDaily(fixture.connection)
        XCTAssertEqual(reloaded, expected)
        await fixture.stop()
    }

    func testOHLCDailyPerSymbolGivesTheSameTable() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        let result = try await fixture.run(OHLCDailyTask(client: fixture.client),
                                           args: #"{"from": "2025-10-27", "to": "2025-11-07", "mode": "per_symbol"}"#).decode(TaskResult.self)
        let loaded = try await loadedDaily(fixture.connection)
        XCTAssertEqual(loaded, expectedDaily(fixture.data, symbols: universe, from: "2025-10-27", to: "2025-11-07"))
        XCTAssertEqual(result.symbols?.ok, 6)
        XCTAssertEqual(result.rows_written, 60)
        XCTAssertEqual(fixture.server.requests.filter { $0.path.contains("/range/1/day/2025-10-27/2025-11-07") }.count, 6)
        await fixture.stop()
    }

    /// Slots computed from the generator: minutes counted from its own 04:00 instant.
    private func expectedSlots(_ data: SampleMarketData, symbols: [String], dates: [String]) -> [String: Decimal] {
        var totals: [String: Decimal] = [:]
        for symbol in symbols {
            for text in dates {
                let date = CivilDate(text)!
                let start = Int64((date.newYorkTime(hour: 4).timeIntervalSince1970 * 1000).rounded())
                for bar in data.minuteBars(symbol: symbol, date: date) {
                    let slot = Int((bar.timestamp - start) / 60_000 / 5)
                    totals["\(symbol) \(text) \(slot)", default: 0] += exact(bar.volume)
                }
            }
        }
        return totals
    }

    private func loadedSlots(_ connection: PostgresConnection) async throws -> [String: Decimal] {
        var totals: [String: Decimal] = [:]
        for row in try await connection.query("SELECT symbol, date::text AS d, slot_index, volume::text AS v FROM volume_slots") {
            totals["\(row["symbol"]!) \(row["d"]!) \(row["slot_index"]!)"] = exact(row["v"])
        }
        return totals
    }

    func testVolumeSlotsAcrossBothDaylightSavingSwitchesWithPagination() async throws {
        let symbols = ["AAPL", "MSFT", "NVDA"]
        // A small page size makes every symbol's minute request span several next_url pages.
        let fixture = try await MarketFixture(symbols: symbols, aggregatesLimit: 300)
        try await fixture.seed(symbols)
        let task = VolumeSlotsTask(client: fixture.client)
        for (from, to) in [("2025-03-07", "2025-03-10"), ("2025-10-31", "2025-11-03")] {
            fixture.server.resetRecords()
            let result = try await fixture.run(task, args: "{\"from\": \"\(from)\", \"to\": \"\(to)\"}").decode(TaskResult.self)
            XCTAssertEqual(result.symbols?.ok, 3)
            XCTAssertEqual(result.symbols?.failed, 0)
            // ONE minute-aggregates request per symbol for the whole range, then its pages.
            let firstPages = fixture.server.requests.filter { $0.path.contains("/range/1/minute/\(from)/\(to)") && !($0.rawQuery ?? "").contains("cursor=") }
            XCTAssertEqual(firstPages.count, 3)
            XCTAssertGreaterThan(fixture.server.requestCount, 3)
        }
        let expected = expectedSlots(fixture.data, symbols: symbols, dates: ["2025-03-07", "2025-03-10", "2025-10-31", "2025-11-03"])
        let loaded = try await loadedSlots(fixture.connection)
        XCTAssertEqual(loaded.count, expected.count)
        XCTAssertEqual(loaded, expected)
        // Totals per (symbol, date) and per slot, and the session edges.
        let perDay = try await fixture.connection.query("SELECT symbol, date::text AS d, sum(volume)::text AS v, min(slot_index) AS lo, max(slot_index) AS hi FROM volume_slots GROUP BY 1, 2")
        XCTAssertEqual(perDay.count, 12)
        for row in perDay {
            let symbol = row["symbol"]!, day = row["d"]!
            let sum = fixture.data.minuteBars(symbol: symbol, date: CivilDate(day)!).reduce(Decimal(0)) { $0 + exact($1.volume) }
            XCTAssertEqual(exact(row["v"]), sum, "\(symbol) \(day)")
            XCTAssertGreaterThanOrEqual(Int(row["lo"]!)!, 0)
            XCTAssertLessThanOrEqual(Int(row["hi"]!)!, 191)
        }
        for slot in [0, 66, 144, 191] {
            let mine = loaded.filter { $0.key.hasSuffix(" \(slot)") }.values.reduce(0, +)
            XCTAssertEqual(mine, expected.filter { $0.key.hasSuffix(" \(slot)") }.values.reduce(0, +), "slot \(slot)")
        }
        // The regular-session open (09:30) is slot 66 on both sides of each switch.
        let open = try await fixture.connection.query("SELECT count(DISTINCT date) AS n FROM volume_slots WHERE slot_index = 66")
        XCTAssertEqual(try open.first?.decode("n", as: Int.self), 4)

        // Idempotent rerun.
        let again = try await fixture.run(task, args: #"{"from": "2025-03-07", "to": "2025-03-10"}"#).decode(TaskResult.self)
        XCTAssertEqual(again.rows_written, 0)
        let reloaded = try await loadedSlots(fixture.connection)
        XCTAssertEqual(reloaded, expected)
        await fixture.stop()
    }

    /// The SIC division, written out independently of `SICDivision`.
    private func division(_ sic: String?) -> String? {
        guard let sic, let code = Int(sic) else { return nil }
        switch code / 100 {
        case 1...9: return "Agriculture, Forestry and Fishing"
        case 10...14: return "Mining"
        case 15...17: return "Construction"
        case 20...39: return "Manufacturing"
        case 40...49: return "Transportation, Communications, Electric, Gas and Sanitary Services"
        case 50...51: return "Wholesale Trade"
        case 52...59: return "Retail Trade"
        case 60...67: return "Finance, Insurance and Real Estate"
        case 70...89: return "Services"
        case 91...97: return code <= 9729 ? "Public Administration" : nil
        case 99: return "Nonclassifiable"
        default: return nil
        }
    }

    func testMetadataEnrichRulesAndPriority() async throws {
        let symbols = (0..<30).map(SampleMarketData.generatedSymbol) + ["AAPL"]
        let fixture = try await MarketFixture(symbols: symbols)
        try await fixture.seed(symbols)
        let result = try await fixture.run(MetadataEnrichTask(client: fixture.client), args: "{}").decode(TaskResult.self)
        XCTAssertEqual(result.symbols?.ok, 31)
        var fallbacks = 0, unclassified = 0
        for row in try await fixture.connection.query("SELECT * FROM ticker_metadata") {
            let symbol = row["symbol"]!
            let details = try XCTUnwrap(fixture.data.details(symbol: symbol))
            XCTAssertEqual(row["name"], details.name)
            XCTAssertEqual(exact(row["market_cap"]), details.marketCap.map(exact))
            XCTAssertEqual(exact(row["shares_outstanding"]), (details.shareClassSharesOutstanding ?? details.weightedSharesOutstanding).map(exact), symbol)
            XCTAssertEqual(row["industry"], details.sicDescription)
            XCTAssertEqual(row["sic_code"], details.sicCode)
            XCTAssertEqual(row["sic_division"], division(details.sicCode), symbol)
            XCTAssertEqual(row["description"], details.description)
            XCTAssertEqual(row["homepage_url"], details.homepageURL)
            XCTAssertEqual(exact(row["float_shares"]), fixture.data.freeFloat(symbol: symbol)?.freeFloat.map(exact), symbol)
            XCTAssertEqual(row["primary_exchange"], details.primaryExchange)
            if details.shareClassSharesOutstanding == nil, details.weightedSharesOutstanding != nil { fallbacks += 1 }
            if details.sicCode == nil { unclassified += 1 }
        }
        XCTAssertGreaterThan(fallbacks, 0, "the sample has symbols with only weighted shares")
        XCTAssertGreaterThan(unclassified, 0, "the sample has symbols without SIC code")
        let apple = try await fixture.connection.query("SELECT sector, sic_division FROM ticker_metadata WHERE symbol = 'AAPL'").first
        XCTAssertEqual(apple?["sector"], "Technology")
        XCTAssertEqual(apple?["sic_division"], "Manufacturing")

        // Priority: missing market cap, then missing sector, then stale; fresh rows untouched.
        try await fixture.connection.execute("""
            UPDATE ticker_metadata SET updated_at = now() - interval '1 hour', market_cap = 1, sector = 'x';
            UPDATE ticker_metadata SET market_cap = NULL, updated_at = now() - interval '2 days' WHERE symbol = 'ZAAA';
            UPDATE ticker_metadata SET sector = NULL, updated_at = now() - interval '2 days' WHERE symbol = 'ZAAB';
            UPDATE ticker_metadata SET updated_at = now() - interval '30 days' WHERE symbol = 'ZAAC';
            UPDATE ticker_metadata SET updated_at = now() - interval '9 days' WHERE symbol = 'ZAAD';
            UPDATE ticker_metadata SET market_cap = NULL, updated_at = now() - interval '1 hour' WHERE symbol = 'ZAAE';
            """)
        fixture.server.resetRecords()
        let second = try await fixture.run(MetadataEnrichTask(client: fixture.client), args: #"{"limit": 3}"#).decode(TaskResult.self)
        XCTAssertEqual(second.symbols?.ok, 3)
        let details = { fixture.server.requests.filter { $0.path.hasPrefix("/v3/reference/tickers/") } }
        let fetched = Set(details().map { $0.path.components(separatedBy: "/").last! })
        XCTAssertEqual(fetched, ["ZAAA", "ZAAB", "ZAAC"])
        fixture.server.resetRecords()
        _ = try await fixture.run(MetadataEnrichTask(client: fixture.client), args: "{}")
        // ZAAE (missing market cap, but fetched an hour ago) waits for missing_retry_hours.
        XCTAssertEqual(Set(details().map { $0.path.components(separatedBy: "/").last! }), ["ZAAD"])
        await fixture.stop()
    }

    func testFaultsFailOnlyTheirSymbolsAndNeverLeakTheKey() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe + ["NOPE", "ZZZZ"])
        fixture.server.inject(.rateLimited(retryAfter: 1), symbol: "AAPL", times: 1)
        fixture.server.inject(.serverError(status: 500), symbol: "MSFT", times: 1)
        fixture.server.inject(.htmlBody, symbol: "AMZN")
        fixture.server.inject(.truncatedJSON, symbol: "GOOGL")
        // The aggregates endpoint answers an unknown ticker with 200 and no results; a 404 (as
        // for ticker details) must fail only that symbol.
        fixture.server.inject(.notFound, symbol: "NOPE")
        let recorder = CheckpointRecorder()
        let logs = LogCapture()
        let json = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: #"{"from": "2025-03-10", "to": "2025-03-11"}"#,
                                         recorder: recorder, logs: logs)
        XCTAssertEqual(logs.lines.filter { $0.contains("failed") }.count, 3, "\(logs.lines)")
        let result = try json.decode(TaskResult.self)
        XCTAssertEqual(result.symbols?.ok, 5)        // AAPL and MSFT after a retry, META, NVDA, ZZZZ
        XCTAssertEqual(result.symbols_without_bars, 1)  // ZZZZ: the API has no bars for it
        XCTAssertEqual(result.symbols?.failed, 3)
        XCTAssertEqual(result.symbols?.failures.map(\.unit).sorted(), ["AMZN", "GOOGL", "NOPE"])
        let reasons = Dictionary(uniqueKeysWithValues: (result.symbols?.failures ?? []).map { ($0.unit, $0.reason) })
        XCTAssertTrue(reasons["NOPE"]!.contains("404"), reasons["NOPE"]!)
        XCTAssertTrue(reasons["AMZN"]!.contains("malformed"), reasons["AMZN"]!)
        XCTAssertTrue(reasons["GOOGL"]!.contains("malformed"), reasons["GOOGL"]!)
        let loaded = try await fixture.connection.query("SELECT DISTINCT symbol FROM volume_slots ORDER BY 1")
        XCTAssertEqual(loaded.map { $0["symbol"]! }, ["AAPL", "META", "MSFT", "NVDA"])
        for text in [json.text] + recorder.all.map(\.text) + fixture.server.requests.map(\.target) + logs.lines {
            XCTAssertFalse(text.contains(MarketFixture.apiKey))
        }
        await fixture.stop()
    }

    func testABadAPIKeyFailsTheJobVisiblyWithoutTheKey() async throws {
        let fixture = try await MarketFixture(symbols: universe, apiKey: "wrong-key-0d9e8f")
        try await fixture.seed(universe)
        let recorder = CheckpointRecorder()
        let logs = LogCapture()
        do {
            _ = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: #"{"from": "2025-03-10", "to": "2025-03-11"}"#,
                                      recorder: recorder, logs: logs)
            XCTFail("a batch where every symbol fails must throw")
        } catch let error as MarketDataBatchFailed {
            XCTAssertTrue(error.description.contains("401"), error.description)
            XCTAssertFalse(error.description.contains("wrong-key-0d9e8f"))
            XCTAssertFalse(error.description.contains(MarketFixture.apiKey))
        }
        // Stopped at the first authorization failure, and the checkpoint forgets the failures.
        XCTAssertLessThanOrEqual(fixture.server.requestCount, 4)
        XCTAssertFalse(logs.lines.isEmpty)
        XCTAssertFalse(logs.lines.contains { $0.contains("wrong-key-0d9e8f") })
        let last = try XCTUnwrap(recorder.all.last).decode(BatchProgress.self)
        XCTAssertNil(last.doneThrough)
        XCTAssertEqual(last.doneAfter, [])
        await fixture.stop()
    }

    /// Through a real worker: a bad API key (401) fails the job at its first attempt (retrying
    /// cannot fix a key); an outage (503 from the server) is retried up to max_attempts.
    func testABadKeyFailsAtOnceAndAnOutageIsRetriedByTheWorker() async throws {
        let badKey = try await MarketFixture(symbols: universe, apiKey: "wrong-key-0d9e8f")
        try await badKey.seed(universe)
        let failed = try await runJobToTheEnd(badKey, VolumeSlotsTask(client: badKey.client), maxAttempts: 5)
        XCTAssertEqual(failed["state"], "failed")
        XCTAssertEqual(failed["attempts"], "1", "a bad API key is not retried")
        XCTAssertEqual(failed["type"], "MarketDataBatchFailed")
        XCTAssertTrue(failed["error"]?.contains("not authorized (401)") ?? false, failed["error"] ?? "")
        XCTAssertFalse(failed["error"]?.contains("wrong-key-0d9e8f") ?? true)
        await badKey.stop()

        let outage = try await MarketFixture(symbols: universe)
        try await outage.seed(universe)
        outage.server.inject(.serverError(status: 503))
        let task = VolumeSlotsTask(client: outage.client, settings: MarketDataSettings(concurrency: 1, abortAfterFailures: 2))
        let retried = try await runJobToTheEnd(outage, task, maxAttempts: 2)
        XCTAssertEqual(retried["state"], "failed")
        XCTAssertEqual(retried["attempts"], "2", "an outage is retried")
        await outage.stop()
    }

    /// Enqueues one job of `task` and runs a worker until the queue is idle; returns the row.
    private func runJobToTheEnd(_ fixture: MarketFixture, _ task: any JobTask, maxAttempts: Int) async throws -> [String: String] {
        _ = try await fixture.connection.withSession { [name = task.name] in
            try QueueStore.enqueue($0, task: name, args: PostgresJSON(text: #"{"from": "2025-03-10", "to": "2025-03-11"}"#),
                                   maxAttempts: maxAttempts)
        }
        var config = WorkerConfiguration(workerID: "md-retry")
        config.pollSeconds = 0.2
        config.retryBaseSeconds = 0.01
        config.retryMaxSeconds = 0.05
        config.exitWhenIdleSeconds = 1
        let worker = Worker(conninfo: fixture.db.url, registry: TaskRegistry([task]), configuration: config,
                            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        try await worker.run()
        let rows = try await fixture.connection.query(
            "SELECT state, attempts, errors -> -1 ->> 'error' AS error, errors -> -1 ->> 'type' AS type FROM maintenance_jobs")
        let row = try XCTUnwrap(rows.first)
        return ["state": row["state"] ?? "", "attempts": row["attempts"] ?? "", "error": row["error"] ?? "", "type": row["type"] ?? ""]
    }

    func testAnAPIOutageStopsTheBatchEarly() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        fixture.server.inject(.serverError(status: 503))
        let task = VolumeSlotsTask(client: fixture.client, settings: MarketDataSettings(concurrency: 1, abortAfterFailures: 2))
        do {
            _ = try await fixture.run(task, args: #"{"from": "2025-03-10", "to": "2025-03-11"}"#)
            XCTFail("an outage must fail the job")
        } catch let error as MarketDataBatchFailed {
            XCTAssertEqual(error.failed, 2)
            XCTAssertTrue(error.lastError.contains("503"), error.lastError)
        }
        // Two symbols, three attempts each (the client's retries), then the batch stopped.
        XCTAssertEqual(fixture.server.requestCount, 6)
        await fixture.stop()
    }

    func testARetriedAttemptSkipsFinishedSymbols() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        let recorder = CheckpointRecorder()
        let args = #"{"from": "2025-03-10", "to": "2025-03-11", "concurrency": 1}"#
        _ = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: args, recorder: recorder)
        XCTAssertEqual(recorder.all.count, 6)
        // As if the first attempt died after its second symbol (AAPL, AMZN in sorted order).
        let checkpoint = recorder.all[1]
        XCTAssertEqual(try checkpoint.decode(BatchProgress.self).doneThrough, "AMZN")
        fixture.server.resetRecords()
        let retried = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: args, previousProgress: checkpoint, attempt: 2)
            .decode(TaskResult.self)
        let asked = Set(fixture.server.requests.compactMap { $0.path.split(separator: "/").dropFirst(3).first.map(String.init) })
        XCTAssertEqual(asked, ["GOOGL", "META", "MSFT", "NVDA"])
        XCTAssertEqual(retried.symbols?.skipped, 2)
        XCTAssertEqual(retried.symbols?.ok, 6)
        await fixture.stop()
    }

    func testArgumentsAreCheckedAndCancellationStops() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        for args in [#"{"dayz": 3}"#, #"{"days": 3, "from": "2025-01-01", "to": "2025-01-02"}"#, #"{"from": "2025-01-05", "to": "2025-01-02"}"#,
                     #"{"from": "2025-02-30", "to": "2025-03-02"}"#, #"{"mode": "weekly"}"#, #"{"days": "3"}"#, #"{"days": 0}"#] {
            do {
                _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: args)
                XCTFail("accepted \(args)")
            } catch let error as InvalidJobArguments {
                XCTAssertEqual(error.task, "ohlc_daily")
            }
        }
        do {
            _ = try await fixture.run(VolumeStatsTask(), args: #"{"days": 3}"#)
            XCTFail("volume_stats accepted days")
        } catch is InvalidJobArguments {}
        let flag = CancellationFlag()
        flag.set()
        do {
            _ = try await fixture.run(VolumeSlotsTask(client: fixture.client), args: #"{"days": 3}"#, cancellation: flag)
            XCTFail("a cancelled job ran")
        } catch is JobCancelled {}
        XCTAssertEqual(fixture.server.requestCount, 0)
        await fixture.stop()
    }

    func testCancellationStopsBetweenSymbolsAndKeepsTheCheckpoint() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        let flag = CancellationFlag()
        let recorder = CheckpointRecorder()
        let context = JobContext(jobID: 7, task: "volume_slots", args: PostgresJSON(text: #"{"from": "2025-03-10", "to": "2025-03-11", "concurrency": 1}"#),
                                 attempt: 1, runID: nil, previousProgress: nil, logger: Logger(label: "test"), conninfo: fixture.db.url,
                                 cancellation: flag, progressWriter: { json in
                                     recorder.record(json)
                                     if recorder.all.count == 2 { flag.set() }   // the job is cancelled after two symbols
                                 })
        do {
            _ = try await VolumeSlotsTask(client: fixture.client).run(context)
            XCTFail("a cancelled job finished")
        } catch is JobCancelled {}
        XCTAssertEqual(fixture.server.requestCount, 2)
        XCTAssertEqual(try recorder.all.last?.decode(BatchProgress.self).doneThrough, "AMZN")
        let loaded = try await fixture.connection.query("SELECT DISTINCT symbol FROM volume_slots ORDER BY 1")
        XCTAssertEqual(loaded.map { $0["symbol"]! }, ["AAPL", "AMZN"])
        await fixture.stop()
    }

    func testUniverseSyncAddsMissingAndKeepsUserRows() async throws {
        let fixture = try await MarketFixture(symbols: universe + ["JPM"])
        try await fixture.connection.execute("INSERT INTO ticker_universe (symbol, active, source) VALUES ('AAPL', false, 'user'), ('CUSTOM', true, 'user')")
        let json = try await fixture.run(UniverseSyncTask(client: fixture.client), args: "{}")
        struct Sync: Decodable { var fetched: Int; var added: Int }
        let result = try json.decode(Sync.self)
        XCTAssertEqual(result.fetched, 7)
        XCTAssertEqual(result.added, 6)
        let rows = try await fixture.connection.query("SELECT symbol, active, source FROM ticker_universe ORDER BY symbol")
        XCTAssertEqual(rows.values.first { $0[0] == "AAPL" }, ["AAPL", "f", "user"])
        XCTAssertEqual(rows.values.first { $0[0] == "CUSTOM" }, ["CUSTOM", "t", "user"])
        XCTAssertEqual(rows.values.first { $0[0] == "JPM" }, ["JPM", "t", "polygon"])
        XCTAssertEqual(rows.count, 8)
        let again = try await fixture.run(UniverseSyncTask(client: fixture.client), args: "{}").decode(Sync.self)
        XCTAssertEqual(again.added, 0)
        await fixture.stop()
    }

    func testVolumeStatsTaskOverLoadedBars() async throws {
        let fixture = try await MarketFixture(symbols: universe)
        try await fixture.seed(universe)
        _ = try await fixture.run(OHLCDailyTask(client: fixture.client), args: #"{"from": "2025-06-02", "to": "2025-09-30"}"#)
        let json = try await fixture.run(VolumeStatsTask(), args: "{}")
        XCTAssertTrue(json.text.contains("\"symbols_written\":6"), json.text)
        for symbol in universe {
            let volumes = fixture.data.dailyBars(symbol: symbol, from: CivilDate("2025-06-02")!, through: CivilDate("2025-09-30")!)
                .reversed().map { exact($0.volume) }
            let row = try await fixture.connection.query("SELECT * FROM ticker_volume_stats WHERE symbol = $1", [symbol]).first!
            XCTAssertEqual(try row.decode("days_available", as: Int.self), 50)
            for n in [5, 10, 30, 50] {
                let sum = volumes.prefix(n).reduce(Decimal(0), +)
                var difference = try row.decode("avg_volume_\(n)d", as: Decimal.self) * Decimal(n) - sum
                var rounded = Decimal()
                NSDecimalRound(&rounded, &difference, 8, .plain)
                XCTAssertEqual(rounded, 0, "\(symbol) \(n)d")
            }
        }
        await fixture.stop()
    }
}
