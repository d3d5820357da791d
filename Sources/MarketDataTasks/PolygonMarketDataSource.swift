import Foundation
import Toolkit
import JobQueue
import Polygon

/// The production `MarketDataSource`: a shared `PolygonClient` (one per worker process, so
/// its rate limiter, concurrency cap and retries cover every task).
public struct PolygonMarketDataSource: MarketDataSource {
    /// The client.
    public let client: PolygonClient

    /// Wraps a client.
    public init(client: PolygonClient) { self.client = client }

    public func groupedDaily(date: CivilDate) async throws -> Fetched<[MarketBar]> {
        let (grouped, stats) = try await PolygonClient.measuring {
            try await client.groupedDaily(date: CivilDate(dayNumber: date.dayNumber))
        }
        return Fetched(grouped.map { Self.bar($0.bar, symbol: $0.ticker) }, requests: stats.requests)
    }

    public func aggregates(symbol: String, timespan: BarTimespan, from: CivilDate, to: CivilDate) async throws -> Fetched<[MarketBar]> {
        let (bars, stats) = try await PolygonClient.measuring {
            try await client.aggregates(symbol: symbol, timespan: timespan == .day ? .day : .minute,
                                        from: CivilDate(dayNumber: from.dayNumber), to: CivilDate(dayNumber: to.dayNumber))
        }
        return Fetched(bars.map { Self.bar($0, symbol: symbol) }, requests: stats.requests)
    }

    public func tickerDetails(symbol: String) async throws -> Fetched<TickerDetails> {
        let (d, stats) = try await PolygonClient.measuring { try await client.tickerDetails(symbol: symbol) }
        return Fetched(TickerDetails(
            symbol: symbol, name: d.name, marketCap: d.marketCap.map(Self.decimal),
            shareClassSharesOutstanding: d.shareClassSharesOutstanding.map(Self.decimal),
            weightedSharesOutstanding: d.weightedSharesOutstanding.map(Self.decimal),
            sicCode: d.sicCode, sicDescription: d.sicDescription, primaryExchange: d.primaryExchange,
            description: d.description, homepageURL: d.homepageURL), requests: stats.requests)
    }

    public func earnings(symbol: String, from: CivilDate, to: CivilDate) async throws -> Fetched<[EarningsEvent]> {
        let (rows, stats) = try await PolygonClient.measuring {
            try await client.earnings(symbol: symbol, from: CivilDate(dayNumber: from.dayNumber), to: CivilDate(dayNumber: to.dayNumber))
        }
        let events = rows.compactMap { row -> EarningsEvent? in
            guard let date = CivilDate(row.date) else { return nil }
            return EarningsEvent(symbol: symbol, date: date, timeOfDay: EarningsTimeOfDay(easternTime: row.time), time: row.time,
                                 fiscalPeriod: row.fiscalPeriod, fiscalYear: row.fiscalYear,
                                 confirmed: row.dateStatus?.lowercased() == "confirmed",
                                 epsEstimate: row.estimatedEPS.map(Self.decimal), epsActual: row.actualEPS.map(Self.decimal))
        }
        return Fetched(events, requests: stats.requests)
    }

    public func freeFloat(symbol: String) async throws -> Fetched<Decimal?> {
        let (row, stats) = try await PolygonClient.measuring { try await client.freeFloat(symbol: symbol) }
        return Fetched(row?.freeFloat.map(Self.decimal), requests: stats.requests)
    }

    public func isNotEntitled(_ error: Error) -> Bool {
        if case .notAuthorized(_, let status, _) = error as? PolygonError { return status == 403 }
        return false
    }

    public func activeCommonStocks(limit: Int?) async throws -> Fetched<[String]> {
        let (tickers, stats) = try await PolygonClient.measuring { try await client.tickers(market: "stocks", type: "CS", active: true) }
        var symbols = tickers.map(\.ticker)
        if let limit { symbols = Array(symbols.prefix(limit)) }
        return Fetched(symbols, requests: stats.requests)
    }

    public func describe(_ error: Error) -> String {
        // PolygonError descriptions carry no key, header or query string; anything else is
        // scrubbed of the key all the same.
        let text = String(describing: error)
        guard let key = client.configuration.apiKey, !key.isEmpty else { return text }
        return Redactor.scrub(text, secrets: [key])
    }

    public func failsEverySymbol(_ error: Error) -> Bool {
        if case .notAuthorized = error as? PolygonError { return true }
        return false
    }

    public func isUnitSpecific(_ error: Error) -> Bool {
        guard let error = error as? PolygonError else { return false }
        switch error {
        case .notFound, .apiError, .malformedResponse, .invalidArgument: return true
        case .httpStatus(_, let status, _, _): return status != 429 && status < 500
        case .notAuthorized, .transport: return false
        }
    }

    /// The exact decimal of the JSON number the client decoded: Swift prints a `Double` with
    /// the fewest digits that read back to it, which is the API's own text for every price and
    /// volume it sends (at most 15 significant digits).
    static func decimal(_ value: Double) -> Decimal {
        // Fast path: the fewest fraction digits k (up to 8) whose decimal m / 10^k reads back
        // to the same Double is the number's shortest text, as the API wrote it. (m / 10^k is
        // correctly rounded: both are exact in a Double.)
        if value.isFinite, abs(value) < 1e9 {
            var scale = 1.0
            for k in 0...8 {
                let m = (value * scale).rounded()
                if m / scale == value {
                    return Decimal(sign: m < 0 ? .minus : .plus, exponent: -k, significand: Decimal(UInt64(abs(m))))
                }
                scale *= 10
            }
        } else if value == value.rounded(), abs(value) < 9e15 {
            return Decimal(Int64(value))
        }
        return Decimal(string: "\(value)", locale: Locale(identifier: "en_US_POSIX")) ?? Decimal(value)
    }

    /// A market bar from a Polygon bar.
    static func bar(_ bar: PolygonBar, symbol: String) -> MarketBar {
        MarketBar(symbol: symbol, timestamp: bar.timestamp, open: decimal(bar.open), high: decimal(bar.high), low: decimal(bar.low),
                  close: decimal(bar.close), volume: decimal(bar.volume), vwap: bar.vwap.map(decimal),
                  tradesCount: bar.transactions.map { Int64($0) })
    }
}

extension OHLCDailyTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension VolumeSlotsTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension MetadataEnrichTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension UniverseSyncTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension EarningsTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension BackfillTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}

extension CompletenessTask {
    /// Creates the task around the worker's shared Polygon client.
    public init(client: PolygonClient, settings: MarketDataSettings = MarketDataSettings()) {
        self.init(source: PolygonMarketDataSource(client: client), settings: settings)
    }
}
