import Foundation
import Toolkit

/// One OHLC bar as the market-data tasks use it: exact decimal prices and volume (the API may
/// send fractional volumes), the bar's start in milliseconds since the epoch (`t`).
public struct MarketBar: Sendable, Equatable {
    /// The ticker symbol (`T` in grouped-daily results; the requested symbol otherwise).
    public var symbol: String
    /// Start of the bar, milliseconds since the Unix epoch.
    public var timestamp: Int64
    /// Open, high, low and close.
    public var open: Decimal
    /// High.
    public var high: Decimal
    /// Low.
    public var low: Decimal
    /// Close.
    public var close: Decimal
    /// Volume (may be fractional).
    public var volume: Decimal
    /// Volume-weighted average price, when sent.
    public var vwap: Decimal?
    /// Number of trades, when sent.
    public var tradesCount: Int64?

    /// Creates a bar.
    public init(symbol: String, timestamp: Int64, open: Decimal, high: Decimal, low: Decimal, close: Decimal,
                volume: Decimal, vwap: Decimal? = nil, tradesCount: Int64? = nil) {
        self.symbol = symbol
        self.timestamp = timestamp
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.vwap = vwap
        self.tradesCount = tradesCount
    }
}

/// The ticker-details fields `metadata_enrich` stores.
public struct TickerDetails: Sendable, Equatable {
    /// The symbol.
    public var symbol: String
    /// Company name.
    public var name: String?
    /// Market capitalization.
    public var marketCap: Decimal?
    /// `share_class_shares_outstanding`.
    public var shareClassSharesOutstanding: Decimal?
    /// `weighted_shares_outstanding` (the fallback).
    public var weightedSharesOutstanding: Decimal?
    /// SIC code, as sent (digits).
    public var sicCode: String?
    /// SIC description (stored as `industry`).
    public var sicDescription: String?
    /// Primary exchange MIC.
    public var primaryExchange: String?
    /// The company description.
    public var description: String?
    /// The company web site.
    public var homepageURL: String?

    /// Creates details.
    public init(symbol: String, name: String? = nil, marketCap: Decimal? = nil, shareClassSharesOutstanding: Decimal? = nil,
                weightedSharesOutstanding: Decimal? = nil, sicCode: String? = nil, sicDescription: String? = nil,
                primaryExchange: String? = nil, description: String? = nil, homepageURL: String? = nil) {
        self.description = description
        self.homepageURL = homepageURL
        self.symbol = symbol
        self.name = name
        self.marketCap = marketCap
        self.shareClassSharesOutstanding = shareClassSharesOutstanding
        self.weightedSharesOutstanding = weightedSharesOutstanding
        self.sicCode = sicCode
        self.sicDescription = sicDescription
        self.primaryExchange = primaryExchange
    }

    /// `share_class_shares_outstanding`, else `weighted_shares_outstanding`.
    public var sharesOutstanding: Decimal? { shareClassSharesOutstanding ?? weightedSharesOutstanding }
    /// The SIC division of `sicCode` (stored as `sic_division`; the economic `sector` comes from
    /// the SQL mapping table `sic_sector_map`).
    public var sicDivision: String? { SICDivision.name(forCode: sicCode) }
}

/// When an earnings announcement comes, relative to the regular session.
public enum EarningsTimeOfDay: String, Sendable, Codable {
    /// Before 09:30 New York time.
    case beforeOpen = "before_open"
    /// At or after 16:00 New York time.
    case afterClose = "after_close"
    /// No time given, or a time during the session.
    case unknown

    /// Classifies an `HH:MM[:SS]` Eastern time; nil or unreadable text is `.unknown`.
    public init(easternTime text: String?) {
        let parts = (text ?? "").split(separator: ":").compactMap { Int($0) }
        guard parts.count >= 2, (0...23).contains(parts[0]), (0...59).contains(parts[1]) else {
            self = .unknown
            return
        }
        let minute = parts[0] * 60 + parts[1]
        self = minute < 9 * 60 + 30 ? .beforeOpen : (minute >= 16 * 60 ? .afterClose : .unknown)
    }
}

/// One earnings announcement, as `ticker_earnings` stores it.
public struct EarningsEvent: Sendable, Equatable {
    /// The symbol.
    public var symbol: String
    /// The announcement date.
    public var date: CivilDate
    /// Before the open, after the close, or unknown.
    public var timeOfDay: EarningsTimeOfDay
    /// The announcement time as sent (`HH:MM:SS` Eastern), if any.
    public var time: String?
    /// `Q1`...`Q4`, `H1`, `H2`, `FY`.
    public var fiscalPeriod: String?
    /// The fiscal year.
    public var fiscalYear: Int?
    /// True when the source marks the date confirmed (not projected).
    public var confirmed: Bool
    /// The EPS estimate.
    public var epsEstimate: Decimal?
    /// The reported EPS.
    public var epsActual: Decimal?

    /// Creates an event.
    public init(symbol: String, date: CivilDate, timeOfDay: EarningsTimeOfDay, time: String? = nil, fiscalPeriod: String? = nil,
                fiscalYear: Int? = nil, confirmed: Bool = false, epsEstimate: Decimal? = nil, epsActual: Decimal? = nil) {
        self.symbol = symbol
        self.date = date
        self.timeOfDay = timeOfDay
        self.time = time
        self.fiscalPeriod = fiscalPeriod
        self.fiscalYear = fiscalYear
        self.confirmed = confirmed
        self.epsEstimate = epsEstimate
        self.epsActual = epsActual
    }
}

/// A value fetched from the data source and the number of HTTP requests it took (pages).
public struct Fetched<Value: Sendable>: Sendable {
    /// The value.
    public var value: Value
    /// Requests made (one per page).
    public var requests: Int
    /// Creates a fetched value.
    public init(_ value: Value, requests: Int) {
        self.value = value
        self.requests = requests
    }
}

/// Bar size of an aggregates request.
public enum BarTimespan: String, Sendable {
    /// 1-minute bars.
    case minute
    /// Daily bars.
    case day
}

/// Where the market-data tasks get their data: the Polygon REST API in production (through
/// `PolygonClient`, which owns the rate limit, retries and the API key). The tasks depend only
/// on this protocol, so the key and the transport never reach their code.
public protocol MarketDataSource: Sendable {
    /// Daily bars of the whole market for one date (empty on holidays).
    func groupedDaily(date: CivilDate) async throws -> Fetched<[MarketBar]>
    /// Adjusted aggregates of one symbol over a date range, every page followed.
    func aggregates(symbol: String, timespan: BarTimespan, from: CivilDate, to: CivilDate) async throws -> Fetched<[MarketBar]>
    /// Ticker details of one symbol.
    func tickerDetails(symbol: String) async throws -> Fetched<TickerDetails>
    /// Active common stocks (ticker list pages), at most `limit` symbols when given.
    func activeCommonStocks(limit: Int?) async throws -> Fetched<[String]>
    /// Earnings announcements of one symbol dated `from` through `to`.
    func earnings(symbol: String, from: CivilDate, to: CivilDate) async throws -> Fetched<[EarningsEvent]>
    /// The newest free float (shares) of one symbol, nil when the source has none.
    func freeFloat(symbol: String) async throws -> Fetched<Decimal?>
    /// True when the error says the plan does not include the endpoint (403), as opposed to a
    /// wrong key (401): a task that depends on an optional endpoint is then skipped, not failed.
    func isNotEntitled(_ error: Error) -> Bool
    /// A one-line description of an error, safe to store in results and logs (no secrets).
    func describe(_ error: Error) -> String
    /// True when the error will hit every symbol alike (bad API key, forbidden plan), so a
    /// batch should stop instead of failing each symbol in turn.
    func failsEverySymbol(_ error: Error) -> Bool
    /// True when the error is about this symbol or date only (unknown ticker, malformed answer
    /// for it); false when it says the API as a whole is failing (429/5xx after retries,
    /// transport failures), which counts towards stopping a batch that has had no success.
    func isUnitSpecific(_ error: Error) -> Bool
}
