import Foundation
import Toolkit

/// Settings of the market-data tasks (the YAML config's `market_data:` section, read by `init(from:)`).
public struct MarketDataSettings: Sendable, Equatable {
    /// Days loaded by `ohlc_daily` when the job gives no range. Default 30.
    public var ohlcDays: Int
    /// Days loaded by `volume_slots` when the job gives no range. Default 10.
    public var slotsDays: Int
    /// Symbols `metadata_enrich` fetches per run at most. Default 500.
    public var metadataLimit: Int
    /// Metadata older than this many days is refreshed. Default 7.
    public var staleDays: Int
    /// Symbols whose fetch just returned no market cap or sector are retried only after this
    /// many hours, so they do not crowd out stale symbols on every run. Default 24.
    public var missingRetryHours: Int
    /// Requests in flight per task (the client's own limits still apply). Default 4.
    public var concurrency: Int
    /// A run stops (and throws, so the job is retried) when this many units failed with
    /// API-wide errors (429/5xx after retries, transport failures) before any succeeded. Default 10.
    public var abortAfterFailures: Int
    /// Failures named in a result (the count is always complete). Default 100.
    public var maxNamedFailures: Int
    /// `earnings` looks this many days ahead of today. Default 90.
    public var earningsDaysAhead: Int
    /// `earnings` also refreshes announcements of this many past days (actual EPS). Default 100.
    public var earningsDaysBack: Int
    /// The longest statistics window: `ohlc_daily` (without `from`/`to`) reaches further back
    /// for a symbol with fewer bars than this. Default 50. 0 turns the extension off.
    public var historyBars: Int
    /// Trading days loaded beyond `historyBars` when history is missing. Default 10.
    public var historyMarginDays: Int
    /// On a fresh install (no symbol has a bar), calendar days to load instead, when larger than
    /// `historyBars + historyMarginDays` trading days (for example 365). Default 0: off.
    public var initialHistoryDays: Int
    /// Days of `market_data_daily` the `completeness` task checks. Default 30.
    public var completenessDays: Int
    /// Units (daily dates or slot symbols) `completeness` refetches per run at most. Default 50.
    public var completenessMaxRefetch: Int
    /// Days back the `validate` task checks (0: whole tables). Default 30.
    public var validateDays: Int
    /// `metadata_enrich` also asks the float endpoint (one more request per symbol). Default true.
    public var fetchFloat: Bool
    /// Per-task pacing by task name (`market_data.pacing`), on top of the API budget. Default none.
    public var pacing: [String: TaskPacing]

    /// Creates settings; every value has the documented default.
    public init(ohlcDays: Int = 30, slotsDays: Int = 10, metadataLimit: Int = 500, staleDays: Int = 7,
                missingRetryHours: Int = 24, concurrency: Int = 4, abortAfterFailures: Int = 10,
                maxNamedFailures: Int = 100, earningsDaysAhead: Int = 90, earningsDaysBack: Int = 100,
                historyBars: Int = 50, historyMarginDays: Int = 10, initialHistoryDays: Int = 0,
                completenessDays: Int = 30, completenessMaxRefetch: Int = 50, validateDays: Int = 30,
                fetchFloat: Bool = true, pacing: [String: TaskPacing] = [:]) {
        self.ohlcDays = ohlcDays
        self.slotsDays = slotsDays
        self.metadataLimit = metadataLimit
        self.staleDays = staleDays
        self.missingRetryHours = missingRetryHours
        self.concurrency = concurrency
        self.abortAfterFailures = abortAfterFailures
        self.maxNamedFailures = maxNamedFailures
        self.earningsDaysAhead = earningsDaysAhead
        self.earningsDaysBack = earningsDaysBack
        self.historyBars = historyBars
        self.historyMarginDays = historyMarginDays
        self.initialHistoryDays = initialHistoryDays
        self.completenessDays = completenessDays
        self.completenessMaxRefetch = completenessMaxRefetch
        self.validateDays = validateDays
        self.fetchFloat = fetchFloat
        self.pacing = pacing
    }

    /// Checks every value, naming the first bad one.
    public func validate() throws {
        let checks: [(String, Int, ClosedRange<Int>)] = [
            ("ohlc_days", ohlcDays, 1...3650), ("slots_days", slotsDays, 1...3650),
            ("metadata_limit", metadataLimit, 1...1_000_000), ("stale_days", staleDays, 0...3650),
            ("missing_retry_hours", missingRetryHours, 0...100_000), ("concurrency", concurrency, 1...64),
            ("abort_after_failures", abortAfterFailures, 1...1_000_000), ("max_named_failures", maxNamedFailures, 0...100_000),
            ("earnings_days_ahead", earningsDaysAhead, 0...3660), ("earnings_days_back", earningsDaysBack, 0...3660),
            ("history_bars", historyBars, 0...1000), ("history_margin_days", historyMarginDays, 0...1000),
            ("initial_history_days", initialHistoryDays, 0...3660), ("completeness_days", completenessDays, 1...3660),
            ("completeness_max_refetch", completenessMaxRefetch, 0...100_000), ("validate_days", validateDays, 0...3660),
        ]
        for (key, value, range) in checks where !range.contains(value) {
            throw InvalidMarketDataSetting(key: key, value: value, allowed: range)
        }
    }
}

/// How one task paces its units (symbols or dates): at most `concurrency` in flight (overrides
/// the task's own concurrency, a job's `concurrency` argument included) and `delayMilliseconds`
/// between two unit starts. For example `metadata_enrich: {concurrency: 5, delay_ms: 200}`.
public struct TaskPacing: Sendable, Equatable {
    /// Units in flight at most (nil: the task's concurrency).
    public var concurrency: Int?
    /// Milliseconds between two unit starts. Default 0.
    public var delayMilliseconds: Int

    /// Creates pacing.
    public init(concurrency: Int? = nil, delayMilliseconds: Int = 0) {
        self.concurrency = concurrency
        self.delayMilliseconds = delayMilliseconds
    }
}

extension MarketDataSettings: Decodable {
    /// The keys of the `market_data:` section.
    enum CodingKeys: String, CodingKey {
        case ohlcDays = "ohlc_days", slotsDays = "slots_days", metadataLimit = "metadata_limit", staleDays = "stale_days"
        case concurrency, missingRetryHours = "missing_retry_hours", abortAfterFailures = "abort_after_failures"
        case maxNamedFailures = "max_named_failures", earningsDaysAhead = "earnings_days_ahead", earningsDaysBack = "earnings_days_back"
        case historyBars = "history_bars", historyMarginDays = "history_margin_days", initialHistoryDays = "initial_history_days"
        case completenessDays = "completeness_days", completenessMaxRefetch = "completeness_max_refetch", validateDays = "validate_days"
        case fetchFloat = "float", pacing
    }

    /// Reads the `market_data:` section: absent keys keep their defaults, every value is checked,
    /// then the whole (`validate`), a refusal naming the key.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ohlcDays = try c.setting(.ohlcDays, ohlcDays, min: 1)
        slotsDays = try c.setting(.slotsDays, slotsDays, min: 1)
        metadataLimit = try c.setting(.metadataLimit, metadataLimit, min: 1)
        staleDays = try c.setting(.staleDays, staleDays, min: 0)
        concurrency = try c.setting(.concurrency, concurrency, min: 1)
        missingRetryHours = try c.setting(.missingRetryHours, missingRetryHours, min: 0)
        abortAfterFailures = try c.setting(.abortAfterFailures, abortAfterFailures, min: 1)
        maxNamedFailures = try c.setting(.maxNamedFailures, maxNamedFailures, min: 0)
        earningsDaysAhead = try c.setting(.earningsDaysAhead, earningsDaysAhead, min: 0)
        earningsDaysBack = try c.setting(.earningsDaysBack, earningsDaysBack, min: 0)
        historyBars = try c.setting(.historyBars, historyBars, min: 0)
        historyMarginDays = try c.setting(.historyMarginDays, historyMarginDays, min: 0)
        initialHistoryDays = try c.setting(.initialHistoryDays, initialHistoryDays, min: 0)
        completenessDays = try c.setting(.completenessDays, completenessDays, min: 1)
        completenessMaxRefetch = try c.setting(.completenessMaxRefetch, completenessMaxRefetch, min: 0)
        validateDays = try c.setting(.validateDays, validateDays, min: 0)
        fetchFloat = try c.setting(.fetchFloat, default: fetchFloat)
        // Task names are data: any key is a task.
        try c.forEachEntry(of: .pacing) { tasks, task in pacing[task.stringValue] = try tasks.decode(TaskPacing.self, forKey: task) }
        do {
            try validate()
        } catch let error as InvalidMarketDataSetting {
            throw DecodingError.invalidSetting(c.codingPath, error.key, "\(error.value) is out of range (allowed \(error.allowed.lowerBound)...\(error.allowed.upperBound))")
        }
    }
}

extension TaskPacing: Decodable {
    /// The keys of one task's entry in `market_data.pacing`.
    enum CodingKeys: String, CodingKey {
        case concurrency, delayMilliseconds = "delay_ms"
    }

    /// Reads `{concurrency: N, delay_ms: N}`; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c: KeyedDecodingContainer<CodingKeys>
        do {
            c = try decoder.container(keyedBy: CodingKeys.self)
        } catch DecodingError.typeMismatch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "expected {concurrency: N, delay_ms: N}"))
        }
        concurrency = try c.setting(.concurrency, concurrency, min: 1)
        if let concurrency, concurrency > 64 { throw c.invalid(.concurrency, "must be 1...64, got \(concurrency)") }
        delayMilliseconds = try c.setting(.delayMilliseconds, delayMilliseconds, min: 0)
    }
}

/// A market-data setting outside its allowed range.
public struct InvalidMarketDataSetting: Error, CustomStringConvertible {
    /// The config key.
    public let key: String
    /// The value given.
    public let value: Int
    /// The allowed values.
    public let allowed: ClosedRange<Int>
    public var description: String {
        "market_data.\(key) = \(value) is out of range (allowed \(allowed.lowerBound)...\(allowed.upperBound))"
    }
}
