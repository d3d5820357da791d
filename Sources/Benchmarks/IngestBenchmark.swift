import ChildProcess
import Foundation
import Toolkit
import JobQueue
import Logging
import MarketDataTasks
import Polygon
import PostgresClient
import SampleMarket

/// `closebell bench ingest`: measures the market-data write path on a synthetic full-market
/// day, beside `psql \copy` of the same rows into the same table.
///
/// Runs in a scratch schema (`closebell_bench`, dropped at the end) holding copies of
/// `market_data_daily` and `volume_slots` with the same columns, keys and indexes, so it never
/// touches real data.
public enum IngestBenchmark {
    /// One measured write.
    public struct Measurement: Sendable, Codable, Equatable {
        /// What was written and how.
        public var label: String
        /// Rows sent.
        public var rows: Int
        /// Wall time in seconds.
        public var seconds: Double
        /// rows / seconds.
        public var rowsPerSecond: Double {
            seconds > 0 ? Double(rows) / seconds : 0
        }

        enum CodingKeys: String, CodingKey {
            case label, rows, seconds
            case rowsPerSecond = "rows_per_second"
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(label, forKey: .label)
            try container.encode(rows, forKey: .rows)
            try container.encode(seconds, forKey: .seconds)
            try container.encode(rowsPerSecond.rounded(), forKey: .rowsPerSecond)
        }

        public init(label: String, rows: Int, seconds: Double) {
            self.label = label
            self.rows = rows
            self.seconds = seconds
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            label = try container.decode(String.self, forKey: .label)
            rows = try container.decode(Int.self, forKey: .rows)
            seconds = try container.decode(Double.self, forKey: .seconds)
        }
    }

    /// The figures of one benchmark run.
    public struct Report: Sendable, Codable, Equatable {
        /// Symbols with daily bars.
        public var dailySymbols: Int
        /// Symbols with minute bars.
        public var minuteSymbols: Int
        /// Minute bars generated (rolled into `slotRows` slot rows).
        public var minuteBars: Int
        /// Slot rows.
        public var slotRows: Int
        /// Every measured write, in the order run.
        public var measurements: [Measurement]
        /// The API run (tasks against a sample server), when measured.
        public var apiRun: APIRunFigures?

        enum CodingKeys: String, CodingKey {
            case measurements
            case dailySymbols = "daily_symbols"
            case minuteSymbols = "minute_symbols"
            case minuteBars = "minute_bars"
            case slotRows = "slot_rows"
            case apiRun = "api_run"
        }

        /// A human-readable table of the figures.
        public var text: String {
            var lines = ["ingest benchmark: \(dailySymbols) symbols of daily bars, \(minuteSymbols) symbols × \(minuteBars / max(minuteSymbols, 1)) minute bars → \(slotRows) slot rows"]
            for m in measurements {
                let label = m.label.padding(toLength: 58, withPad: " ", startingAt: 0)
                lines.append("  " + label + String(format: " %8d rows %8.3f s %10.0f rows/s", m.rows, m.seconds, m.rowsPerSecond))
            }
            for (name, ours, merged, copy) in [("daily bars", Labels.dailyEmpty, Labels.dailyMerge, Labels.dailyCopy),
                                               ("volume slots", Labels.slotsEmpty, Labels.slotsMerge, Labels.slotsCopy)] {
                if let ratio = ratio(ours, to: copy) {
                    lines.append(String(format: "  %@: closebell's load of a new day (direct COPY) runs at %.0f%% of psql \\copy's rows/s (best of each)", name, ratio * 100))
                }
                if let ratio = ratio(merged, to: copy) {
                    lines.append(String(format: "  %@: the same rows through staging + upsert run at %.0f%% of it", name, ratio * 100))
                }
            }
            if let apiRun { lines.append(apiRun.text) }
            return lines.joined(separator: "\n")
        }

        /// rows/s of the measurement labelled `label` over that of `baseline`.
        public func ratio(_ label: String, to baseline: String) -> Double? {
            guard let ours = measurements.first(where: { $0.label == label }),
                  let base = measurements.first(where: { $0.label == baseline }), base.rowsPerSecond > 0 else { return nil }
            return ours.rowsPerSecond / base.rowsPerSecond
        }
    }

    /// The labels of the measurements the ratios to `psql \copy` compare.
    public enum Labels {
        /// The write path into an empty daily table: a new day, COPYed straight in.
        public static let dailyEmpty = "daily bars: new day, empty table (direct COPY)"
        /// The write path when a row of the day exists already: COPY into staging + upsert.
        public static let dailyMerge = "daily bars: new day, 1 row of it there (staging + upsert)"
        /// psql's \copy into the emptied daily table.
        public static let dailyCopy = "daily bars: psql \\copy (plain COPY, no upsert)"
        /// The write path into an empty slots table (already rolled up).
        public static let slotsEmpty = "slots: new day, empty table (direct COPY)"
        /// The write path when a slot of the day exists already (of another symbol).
        public static let slotsMerge = "slots: new day, 1 row of it there (staging + upsert)"
        /// psql's \copy into the emptied slots table.
        public static let slotsCopy = "slots: psql \\copy (plain COPY, no upsert)"
    }

    /// Figures of the ohlc_daily + volume_slots run against a sample server.
    public struct APIRunFigures: Sendable, Codable, Equatable {
        /// Symbols in the universe.
        public var symbols: Int
        /// Trading days in the range.
        public var days: Int
        /// HTTP requests made.
        public var requests: Int
        /// The client's rate limit (requests per second).
        public var requestsPerSecond: Double
        /// The server's added latency per request, seconds.
        public var latencySeconds: Double
        /// Concurrency of the tasks.
        public var concurrency: Int
        /// Wall time of both tasks.
        public var seconds: Double
        /// requests / requestsPerSecond: no run under the rate limit can be faster.
        public var lowerBoundSeconds: Double { Double(requests) / requestsPerSecond }

        enum CodingKeys: String, CodingKey {
            case symbols, days, requests, concurrency, seconds
            case requestsPerSecond = "requests_per_second"
            case latencySeconds = "latency_seconds"
        }

        /// A human-readable line.
        public var text: String {
            String(format: "  api run: ohlc_daily + volume_slots, %d symbols, %d days, %d requests at ≤ %.0f req/s, %.0f ms latency, concurrency %d: %.2f s (rate-limit lower bound %.2f s, %.0f%% of it)",
                   symbols, days, requests, requestsPerSecond, latencySeconds * 1000, concurrency, seconds, lowerBoundSeconds,
                   seconds > 0 ? lowerBoundSeconds / seconds * 100 : 0)
        }
    }

    /// Settings of the API run (ohlc_daily + volume_slots against a local sample server).
    public struct APIRunOptions: Sendable {
        /// Symbols in the universe (0 skips the API run). Default 300.
        public var symbols: Int
        /// Trading days loaded (weekdays ending 2025-03-14). Default 1, a nightly increment:
        /// with more days each minute request carries more JSON, and encoding it in the sample
        /// server plus decoding it in the client (one process, one machine) dominates the run.
        public var days: Int
        /// Latency the server adds to every answer, seconds. Default 0.05.
        public var latency: TimeInterval
        /// The client's rate limit, requests per second. Default 50.
        public var requestsPerSecond: Double
        /// Requests in flight per task (and the client's concurrency cap). Default 8.
        public var concurrency: Int

        /// Creates options; every value has a default.
        public init(symbols: Int = 300, days: Int = 1, latency: TimeInterval = 0.05, requestsPerSecond: Double = 50, concurrency: Int = 8) {
            self.symbols = symbols
            self.days = days
            self.latency = latency
            self.requestsPerSecond = requestsPerSecond
            self.concurrency = concurrency
        }
    }

    /// Generates the synthetic day and measures: the write path into empty tables (a new day:
    /// COPY straight into the table), its idempotent rerun and a rerun changing every row
    /// (COPY into staging + one upsert), the new day again with one row of another symbol
    /// there (staging + upsert), and `psql \copy` of the same rows into the emptied table;
    /// each write is checked to take the path its label names. Then (unless `api.symbols` is 0) the wall time of an
    /// ohlc_daily + volume_slots run against a `SamplePolygonServer` with latency, through a
    /// rate-limited `PolygonClient`. `psqlPath` nil finds psql next to the server programs or
    /// on PATH. Everything is written in the scratch schema `closebell_bench`.
    public static func run(conninfo: String?, dailySymbols: Int = 11_000, minuteSymbols: Int = 300,
                           date: CivilDate = CivilDate("2025-03-10")!, psqlPath: String? = nil,
                           api: APIRunOptions = APIRunOptions(), repeats: Int = 1) async throws -> Report {
        let daily = syntheticDailyBars(symbols: dailySymbols, date: date)
        let minutes = syntheticMinuteBars(symbols: minuteSymbols, date: date)
        let slots = VolumeSlot.rollUp(minutes)
        let psql = psqlPath ?? findPsql()
        let connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell bench ingest")
        var report = Report(dailySymbols: dailySymbols, minuteSymbols: minuteSymbols, minuteBars: minutes.count,
                            slotRows: slots.count, measurements: [])
        do {
            try await connection.execute("""
                DROP SCHEMA IF EXISTS closebell_bench CASCADE;
                CREATE SCHEMA closebell_bench;
                CREATE TABLE closebell_bench.market_data_daily (LIKE public.market_data_daily INCLUDING ALL);
                CREATE TABLE closebell_bench.volume_slots (LIKE public.volume_slots INCLUDING ALL);
                SET search_path = closebell_bench, public;
                """)
            // A label measured again keeps its best time.
            func timed(_ label: String, rows: Int, _ body: () async throws -> Void) async throws {
                let start = ContinuousClock.now
                try await body()
                let seconds = elapsedSeconds(since: start, precise: true)
                if let index = report.measurements.firstIndex(where: { $0.label == label }) {
                    report.measurements[index].seconds = min(report.measurements[index].seconds, seconds)
                } else {
                    report.measurements.append(Measurement(label: label, rows: rows, seconds: seconds))
                }
            }
            // A write through the product's path, which must take the path its label names.
            func write(_ label: String, rows: Int, expecting path: MarketDataWriter.Path,
                       _ body: @escaping @Sendable (PostgresSession) throws -> MarketDataWriter.Outcome) async throws {
                var taken = path
                try await timed(label, rows: rows) { taken = try await connection.withSession(body).path }
                guard taken == path else {
                    throw IngestBenchmarkError(message: "\(label): the write took the \(taken.rawValue) path, not \(path.rawValue)")
                }
            }
            try await write(Labels.dailyEmpty, rows: daily.count, expecting: .direct) { try MarketDataWriter.writeDailyBars(daily, session: $0) }
            try await write("daily bars: rerun, unchanged (staging + upsert)", rows: daily.count, expecting: .merge) {
                try MarketDataWriter.writeDailyBars(daily, session: $0)
            }
            let changed = daily.map { bar -> MarketBar in
                var bar = bar
                bar.close += Decimal(string: "0.01")!
                return bar
            }
            try await write("daily bars: rerun, every row changed (staging + upsert)", rows: daily.count, expecting: .merge) {
                try MarketDataWriter.writeDailyBars(changed, session: $0)
            }
            try await write("minute bars → slots: roll-up + write, empty table", rows: slots.count, expecting: .direct) {
                try MarketDataWriter.writeVolumeSlots(VolumeSlot.rollUp(minutes), session: $0)
            }
            try await connection.execute("TRUNCATE closebell_bench.volume_slots")
            try await write(Labels.slotsEmpty, rows: slots.count, expecting: .direct) { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
            try await write("slots: rerun, unchanged (staging + upsert)", rows: slots.count, expecting: .merge) {
                try MarketDataWriter.writeVolumeSlots(slots, session: $0)
            }
            // The same new day when one row of it (of a symbol outside the batch) is there
            // already: the freshness check fails and the batch is merged.
            func merges() async throws {
                try await connection.execute("""
                    TRUNCATE closebell_bench.market_data_daily, closebell_bench.volume_slots;
                    INSERT INTO closebell_bench.market_data_daily (symbol, date, open, high, low, close, volume)
                    VALUES ('ZZZZZZ', '\(date)', 1, 1, 1, 1, 1);
                    INSERT INTO closebell_bench.volume_slots (symbol, date, slot_index, volume) VALUES ('ZZZZZZ', '\(date)', 0, 1);
                    """)
                try await write(Labels.dailyMerge, rows: daily.count, expecting: .merge) { try MarketDataWriter.writeDailyBars(daily, session: $0) }
                try await write(Labels.slotsMerge, rows: slots.count, expecting: .merge) { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
            }
            try await merges()
            // psql \copy of the same rows, into the same (emptied) tables.
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("closebell-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let dailyFile = directory.appendingPathComponent("daily.tsv")
            try tsv(daily.map { bar in
                [bar.symbol, NewYorkTime.tradingDate(epochMilliseconds: bar.timestamp).description, "\(bar.open)", "\(bar.high)",
                 "\(bar.low)", "\(bar.close)", "\(bar.volume)", bar.vwap.map { "\($0)" } ?? "\\N", bar.tradesCount.map { String($0) } ?? "\\N"]
            }).write(to: dailyFile)
            let slotFile = directory.appendingPathComponent("slots.tsv")
            try tsv(slots.map { [$0.symbol, $0.date.description, String($0.slotIndex), "\($0.volume)"] }).write(to: slotFile)
            // psql connects through PG* variables: no connection string (or password) on its command line.
            let environment = try ConnectionInfo(parsing: conninfo).environment(includingPassword: true).mapValues { Optional($0) }
            func psqlCopies() async throws {
                try await connection.execute("TRUNCATE closebell_bench.market_data_daily, closebell_bench.volume_slots")
                try await timed(Labels.dailyCopy, rows: daily.count) {
                    try await psqlCopy(psql, table: "closebell_bench.market_data_daily (symbol, date, open, high, low, close, volume, vwap, trades_count)",
                                       file: dailyFile.path, environment: environment)
                }
                try await timed(Labels.slotsCopy, rows: slots.count) {
                    try await psqlCopy(psql, table: "closebell_bench.volume_slots (symbol, date, slot_index, volume)",
                                       file: slotFile.path, environment: environment)
                }
            }
            try await psqlCopies()
            // The pairs behind the ratios again, interleaved, each into an emptied table.
            for _ in 1..<max(1, repeats) {
                try await connection.execute("TRUNCATE closebell_bench.market_data_daily, closebell_bench.volume_slots")
                try await write(Labels.dailyEmpty, rows: daily.count, expecting: .direct) { try MarketDataWriter.writeDailyBars(daily, session: $0) }
                try await write(Labels.slotsEmpty, rows: slots.count, expecting: .direct) { try MarketDataWriter.writeVolumeSlots(slots, session: $0) }
                try await merges()
                try await psqlCopies()
            }
            let counts = try await connection.query("""
                SELECT (SELECT count(*) FROM closebell_bench.market_data_daily) AS d, (SELECT count(*) FROM closebell_bench.volume_slots) AS s
                """).first
            guard try counts?.decode("d", as: Int.self) == daily.count, try counts?.decode("s", as: Int.self) == slots.count else {
                throw ChildProcessError(program: psql, status: 0, output: "psql \\copy loaded an unexpected number of rows")
            }
            if api.symbols > 0 {
                try await connection.execute("""
                    TRUNCATE closebell_bench.market_data_daily, closebell_bench.volume_slots;
                    CREATE TABLE closebell_bench.ticker_universe (LIKE public.ticker_universe INCLUDING ALL);
                    """)
                report.apiRun = try await runAPI(conninfo: conninfo, options: api)
            }
            try await connection.execute("DROP SCHEMA closebell_bench CASCADE")
            await connection.close()
        } catch {
            _ = try? await connection.execute("DROP SCHEMA IF EXISTS closebell_bench CASCADE")
            await connection.close()
            throw error
        }
        return report
    }

    /// ohlc_daily then volume_slots, as a worker runs them, against a sample server.
    static func runAPI(conninfo: String?, options: APIRunOptions) async throws -> APIRunFigures {
        let last = CivilDate("2025-03-14")!
        var first = last
        var weekdays = 1
        while weekdays < max(1, options.days) {
            first = first.adding(days: -1)
            if first.isWeekday { weekdays += 1 }
        }
        let data = SampleMarketData(symbols: options.symbols, from: first, through: last)
        let key = "bench-\(UUID().uuidString)"
        let server = try SamplePolygonServer.start(data: data, options: SampleServerOptions(apiKey: key, latency: options.latency))
        defer { server.stop() }
        let client = PolygonClient(configuration: PolygonConfiguration(
            baseURL: server.baseURL, apiKey: key, requestsPerSecond: options.requestsPerSecond,
            maxConcurrentRequests: options.concurrency))
        let scoped = scratchConninfo(conninfo)
        let connection = try await PostgresConnection.connect(scoped, applicationName: "closebell bench ingest")
        try await SampleUniverse.seed(connection, symbols: data.symbols)
        await connection.close()
        let settings = MarketDataSettings(concurrency: options.concurrency)
        let args = PostgresJSON(text: "{\"from\": \"\(first)\", \"to\": \"\(last)\"}")
        let start = ContinuousClock.now
        for task in [OHLCDailyTask(client: client, settings: settings) as any JobTask, VolumeSlotsTask(client: client, settings: settings)] {
            let context = JobContext(jobID: 0, task: task.name, args: args, attempt: 1, runID: nil, previousProgress: nil,
                                     logger: Logger(label: "closebell.bench"), conninfo: scoped)
            _ = try await task.run(context)
        }
        let seconds = elapsedSeconds(since: start, precise: true)
        return APIRunFigures(symbols: options.symbols, days: weekdays, requests: server.requestCount,
                             requestsPerSecond: options.requestsPerSecond, latencySeconds: options.latency,
                             concurrency: options.concurrency, seconds: seconds)
    }

    /// `conninfo` with `search_path` set to the scratch schema first, so the tasks' unqualified
    /// table names resolve there.
    static func scratchConninfo(_ conninfo: String?) -> String {
        let base = conninfo ?? ""
        if base.hasPrefix("postgres://") || base.hasPrefix("postgresql://") {
            return base + (base.contains("?") ? "&" : "?") + "options=-c%20search_path%3Dclosebell_bench%2Cpublic"
        }
        return base + " options='-c search_path=closebell_bench,public'"
    }

    private static func psqlCopy(_ psql: String, table: String, file: String, environment: [String: String?]) async throws {
        // The file name is quoted for psql's \copy; the connection travels in PG* variables.
        let quoted = "'" + file.replacingOccurrences(of: "'", with: "''") + "'"
        let outcome = try await ChildProcess.run(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "\\copy \(table) FROM \(quoted)"],
                                                 environment: environment)
        guard outcome.status == 0 else { throw ChildProcessError(program: psql, status: outcome.status, output: outcome.output) }
    }

    private static func tsv(_ rows: [[String]]) -> Data {
        var text = ""
        text.reserveCapacity(rows.count * 80)
        for row in rows {
            text += row.joined(separator: "\t")
            text += "\n"
        }
        return Data(text.utf8)
    }

    /// psql of the newest installed PostgreSQL, else the one on PATH.
    static func findPsql() -> String { PostgresPrograms.newest("psql") }

    /// A deterministic pseudo-random sequence (64-bit LCG), so every run writes the same rows.
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
    }

    /// Symbol names `B00000`, `B00001`, ….
    static func symbolName(_ index: Int) -> String { String(format: "B%05d", index) }

    /// One daily bar per symbol, prices with 2-4 decimals, some fractional volumes.
    static func syntheticDailyBars(symbols: Int, date: CivilDate) -> [MarketBar] {
        var random = Generator(state: 42)
        let t = NewYorkTime.epochMilliseconds(date: date, minuteOfDay: 0)
        return (0..<symbols).map { i in
            let close = Decimal(1000 + random.next(500_000)) / 100
            let volume = Decimal(random.next(50_000_000)) + (i % 7 == 0 ? Decimal(string: "0.5")! : 0)
            return MarketBar(symbol: symbolName(i), timestamp: t, open: close - Decimal(random.next(100)) / 100,
                             high: close + Decimal(random.next(200)) / 100, low: close - Decimal(random.next(300)) / 100,
                             close: close, volume: volume, vwap: close + Decimal(random.next(100)) / 10_000,
                             tradesCount: Int64(random.next(500_000)))
        }
    }

    /// 960 minute bars (04:00-19:59 New York) per symbol for one day.
    static func syntheticMinuteBars(symbols: Int, date: CivilDate) -> [MarketBar] {
        var random = Generator(state: 7)
        let start = NewYorkTime.epochMilliseconds(date: date, minuteOfDay: 240)
        var bars: [MarketBar] = []
        bars.reserveCapacity(symbols * 960)
        for i in 0..<symbols {
            for minute in 0..<960 {
                let price = Decimal(1000 + random.next(1000)) / 100
                bars.append(MarketBar(symbol: symbolName(i), timestamp: start + Int64(minute) * 60_000, open: price, high: price,
                                      low: price, close: price, volume: Decimal(random.next(20_000))))
            }
        }
        return bars
    }
}

/// A benchmark run that did not measure what it set out to (a write took another path than
/// its label names).
public struct IngestBenchmarkError: Error, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// The message.
    public var description: String { message }
}

/// Seconds since `start` without rounding (benchmarks).
func elapsedSeconds(since start: ContinuousClock.Instant, precise: Bool) -> Double {
    let duration = ContinuousClock.now - start
    return Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
