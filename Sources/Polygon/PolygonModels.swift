import Foundation
import Toolkit

/// One OHLCV aggregate bar, in Polygon's field names (`o,h,l,c,v,vw,n,t`).
///
/// Prices and volume are `Double`, exactly as the JSON numbers parse (Polygon sends binary
/// floating-point numbers with up to 4-6 significant decimals, and volumes may be fractional,
/// such as `1.2345e+06`). Convert to `Decimal` at the database edge if exact storage is needed,
/// e.g. with `Decimal(string: String(bar.close))`.
public struct PolygonBar: Codable, Sendable, Equatable {
    /// Open price (`o`).
    public var open: Double
    /// High price (`h`).
    public var high: Double
    /// Low price (`l`).
    public var low: Double
    /// Close price (`c`).
    public var close: Double
    /// Volume (`v`); may be fractional.
    public var volume: Double
    /// Volume-weighted average price (`vw`); not always present.
    public var vwap: Double?
    /// Number of trades (`n`); not always present.
    public var transactions: Int?
    /// Start of the bar, Unix milliseconds UTC (`t`).
    public var timestamp: Int64

    enum CodingKeys: String, CodingKey {
        case open = "o", high = "h", low = "l", close = "c", volume = "v", vwap = "vw", transactions = "n", timestamp = "t"
    }

    /// Creates a bar.
    public init(open: Double, high: Double, low: Double, close: Double, volume: Double, vwap: Double? = nil,
                transactions: Int? = nil, timestamp: Int64) {
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.vwap = vwap
        self.transactions = transactions
        self.timestamp = timestamp
    }

    /// Decodes a bar; `o,h,l,c,v,t` are required, `vw` and `n` optional.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        open = try c.decode(Double.self, forKey: .open)
        high = try c.decode(Double.self, forKey: .high)
        low = try c.decode(Double.self, forKey: .low)
        close = try c.decode(Double.self, forKey: .close)
        volume = try c.decode(Double.self, forKey: .volume)
        vwap = try c.decodeIfPresent(Double.self, forKey: .vwap)
        transactions = try decodeLenientInt(c, .transactions)
        guard let t = try decodeLenientInt64(c, .timestamp) else {
            throw DecodingError.keyNotFound(CodingKeys.timestamp, .init(codingPath: c.codingPath, debugDescription: "t is null"))
        }
        timestamp = t
    }

    /// Encodes in Polygon's shape, leaving out `vw` and `n` when nil.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(volume, forKey: .volume)
        try c.encodeIfPresent(vwap, forKey: .vwap)
        try c.encode(open, forKey: .open)
        try c.encode(close, forKey: .close)
        try c.encode(high, forKey: .high)
        try c.encode(low, forKey: .low)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encodeIfPresent(transactions, forKey: .transactions)
    }

    /// The bar's start instant.
    public var startDate: Date { Date(timeIntervalSince1970: Double(timestamp) / 1000) }

    /// The New York trading date the bar belongs to. Per-ticker daily bars are stamped at New
    /// York midnight and grouped-daily bars at 16:00 New York, so both map to their session date.
    public var newYorkDate: CivilDate { CivilDate(newYorkDateOfMilliseconds: timestamp) }
}

/// One bar of the grouped-daily endpoint: a bar plus its ticker (`T`).
public struct PolygonGroupedBar: Codable, Sendable, Equatable {
    /// The ticker symbol (`T`).
    public var ticker: String
    /// The daily bar (stamped at 16:00 New York).
    public var bar: PolygonBar

    enum TickerKey: String, CodingKey { case ticker = "T" }

    /// Creates a grouped bar.
    public init(ticker: String, bar: PolygonBar) {
        self.ticker = ticker
        self.bar = bar
    }

    /// Decodes `T` and the bar fields from one object.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: TickerKey.self)
        ticker = try c.decode(String.self, forKey: .ticker)
        bar = try PolygonBar(from: decoder)
    }

    /// Encodes `T` and the bar fields into one object.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: TickerKey.self)
        try c.encode(ticker, forKey: .ticker)
        try bar.encode(to: encoder)
    }
}

/// The envelope of the aggregates and grouped-daily endpoints. `results` missing or null means
/// no data (a holiday, an unlisted date), not an error.
public struct PolygonAggregatesPage<Bar: Codable & Sendable>: Codable, Sendable {
    /// The ticker asked for (aggregates only).
    public var ticker: String?
    /// Polygon's `status` (`OK`, `DELAYED`).
    public var status: String?
    /// Polygon's request id, for support tickets.
    public var requestID: String?
    /// Whether bars are split-adjusted.
    public var adjusted: Bool?
    /// `queryCount`.
    public var queryCount: Int?
    /// `resultsCount`.
    public var resultsCount: Int?
    /// `count`.
    public var count: Int?
    /// The bars (nil when the API sent none).
    public var results: [Bar]?
    /// The next page's URL, when there is one.
    public var nextURL: String?

    enum CodingKeys: String, CodingKey {
        case ticker, status, adjusted, queryCount, resultsCount, count, results
        case requestID = "request_id", nextURL = "next_url"
    }

    /// Creates a page (used by the sample server).
    public init(ticker: String? = nil, status: String? = "OK", requestID: String? = nil, adjusted: Bool? = true,
                results: [Bar]?, nextURL: String? = nil) {
        self.ticker = ticker
        self.status = status
        self.requestID = requestID
        self.adjusted = adjusted
        self.queryCount = results?.count ?? 0
        self.resultsCount = results?.count ?? 0
        self.count = results?.count
        self.results = results
        self.nextURL = nextURL
    }
}

/// Ticker details (`/v3/reference/tickers/{symbol}`), in Polygon's field names.
public struct PolygonTickerDetails: Codable, Sendable, Equatable {
    /// The symbol.
    public var ticker: String
    /// The company or fund name.
    public var name: String?
    /// `stocks`, `otc`, ...
    public var market: String?
    /// `us`.
    public var locale: String?
    /// Primary listing exchange MIC (`XNAS`, `XNYS`).
    public var primaryExchange: String?
    /// Type code (`CS` common stock, `ETF`, ...).
    public var type: String?
    /// Whether the ticker trades now.
    public var active: Bool?
    /// Trading currency, lower case (`usd`).
    public var currencyName: String?
    /// SEC central index key.
    public var cik: String?
    /// Composite FIGI.
    public var compositeFIGI: String?
    /// Share class FIGI.
    public var shareClassFIGI: String?
    /// Market capitalisation in `currencyName`.
    public var marketCap: Double?
    /// Shares outstanding of this share class (preferred source of `shares_outstanding`).
    public var shareClassSharesOutstanding: Double?
    /// Weighted shares outstanding (fallback for `shares_outstanding`).
    public var weightedSharesOutstanding: Double?
    /// Standard Industrial Classification code, as a string (`3571`).
    public var sicCode: String?
    /// The SIC code's description (`ELECTRONIC COMPUTERS`).
    public var sicDescription: String?
    /// Employee count.
    public var totalEmployees: Int?
    /// Listing date, `YYYY-MM-DD`.
    public var listDate: String?
    /// Company web site.
    public var homepageURL: String?
    /// Company description.
    public var description: String?

    enum CodingKeys: String, CodingKey {
        case ticker, name, market, locale, type, active, cik, description
        case primaryExchange = "primary_exchange", currencyName = "currency_name", compositeFIGI = "composite_figi"
        case shareClassFIGI = "share_class_figi", marketCap = "market_cap"
        case shareClassSharesOutstanding = "share_class_shares_outstanding"
        case weightedSharesOutstanding = "weighted_shares_outstanding"
        case sicCode = "sic_code", sicDescription = "sic_description", totalEmployees = "total_employees"
        case listDate = "list_date", homepageURL = "homepage_url"
    }

    /// Creates details (used by the sample server).
    public init(ticker: String, name: String? = nil, market: String? = "stocks", locale: String? = "us",
                primaryExchange: String? = nil, type: String? = "CS", active: Bool? = true, currencyName: String? = "usd",
                marketCap: Double? = nil, shareClassSharesOutstanding: Double? = nil, weightedSharesOutstanding: Double? = nil,
                sicCode: String? = nil, sicDescription: String? = nil, totalEmployees: Int? = nil, listDate: String? = nil) {
        self.ticker = ticker
        self.name = name
        self.market = market
        self.locale = locale
        self.primaryExchange = primaryExchange
        self.type = type
        self.active = active
        self.currencyName = currencyName
        self.marketCap = marketCap
        self.shareClassSharesOutstanding = shareClassSharesOutstanding
        self.weightedSharesOutstanding = weightedSharesOutstanding
        self.sicCode = sicCode
        self.sicDescription = sicDescription
        self.totalEmployees = totalEmployees
        self.listDate = listDate
    }

    /// Decodes details; only `ticker` is required.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ticker = try c.decode(String.self, forKey: .ticker)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        market = try c.decodeIfPresent(String.self, forKey: .market)
        locale = try c.decodeIfPresent(String.self, forKey: .locale)
        primaryExchange = try c.decodeIfPresent(String.self, forKey: .primaryExchange)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        active = try c.decodeIfPresent(Bool.self, forKey: .active)
        currencyName = try c.decodeIfPresent(String.self, forKey: .currencyName)
        cik = try c.decodeIfPresent(String.self, forKey: .cik)
        compositeFIGI = try c.decodeIfPresent(String.self, forKey: .compositeFIGI)
        shareClassFIGI = try c.decodeIfPresent(String.self, forKey: .shareClassFIGI)
        marketCap = try c.decodeIfPresent(Double.self, forKey: .marketCap)
        shareClassSharesOutstanding = try c.decodeIfPresent(Double.self, forKey: .shareClassSharesOutstanding)
        weightedSharesOutstanding = try c.decodeIfPresent(Double.self, forKey: .weightedSharesOutstanding)
        // Polygon sends sic_code as a string; accept a number too.
        if let text = try? c.decodeIfPresent(String.self, forKey: .sicCode) {
            sicCode = text
        } else if let number = try decodeLenientInt(c, .sicCode) {
            sicCode = String(number)
        } else {
            sicCode = nil
        }
        sicDescription = try c.decodeIfPresent(String.self, forKey: .sicDescription)
        totalEmployees = try decodeLenientInt(c, .totalEmployees)
        listDate = try c.decodeIfPresent(String.self, forKey: .listDate)
        homepageURL = try c.decodeIfPresent(String.self, forKey: .homepageURL)
        description = try c.decodeIfPresent(String.self, forKey: .description)
    }

    /// `share_class_shares_outstanding`, else `weighted_shares_outstanding`.
    public var sharesOutstanding: Double? { shareClassSharesOutstanding ?? weightedSharesOutstanding }
}

/// The envelope of the ticker-details endpoint.
struct PolygonTickerDetailsResponse: Codable, Sendable {
    var results: PolygonTickerDetails?
    var status: String?
    var requestID: String?
    enum CodingKeys: String, CodingKey { case results, status, requestID = "request_id" }
}

/// One entry of the ticker list (`/v3/reference/tickers`).
public struct PolygonTicker: Codable, Sendable, Equatable {
    /// The symbol.
    public var ticker: String
    /// The name.
    public var name: String?
    /// `stocks`, ...
    public var market: String?
    /// `us`.
    public var locale: String?
    /// Primary listing exchange MIC.
    public var primaryExchange: String?
    /// Type code (`CS`, `ETF`, ...).
    public var type: String?
    /// Whether it trades now.
    public var active: Bool?
    /// Trading currency.
    public var currencyName: String?
    /// SEC central index key.
    public var cik: String?
    /// Composite FIGI.
    public var compositeFIGI: String?
    /// Share class FIGI.
    public var shareClassFIGI: String?
    /// When Polygon last updated the entry.
    public var lastUpdatedUTC: String?

    enum CodingKeys: String, CodingKey {
        case ticker, name, market, locale, type, active, cik
        case primaryExchange = "primary_exchange", currencyName = "currency_name", compositeFIGI = "composite_figi"
        case shareClassFIGI = "share_class_figi", lastUpdatedUTC = "last_updated_utc"
    }

    /// Creates an entry (used by the sample server).
    public init(ticker: String, name: String?, market: String? = "stocks", locale: String? = "us", primaryExchange: String?,
                type: String? = "CS", active: Bool? = true, currencyName: String? = "usd", cik: String? = nil,
                compositeFIGI: String? = nil, shareClassFIGI: String? = nil, lastUpdatedUTC: String? = nil) {
        self.ticker = ticker
        self.name = name
        self.market = market
        self.locale = locale
        self.primaryExchange = primaryExchange
        self.type = type
        self.active = active
        self.currencyName = currencyName
        self.cik = cik
        self.compositeFIGI = compositeFIGI
        self.shareClassFIGI = shareClassFIGI
        self.lastUpdatedUTC = lastUpdatedUTC
    }
}

/// A page of the ticker list.
public struct PolygonTickerListPage: Codable, Sendable {
    /// The entries (nil when none).
    public var results: [PolygonTicker]?
    /// Polygon's `status`.
    public var status: String?
    /// Polygon's request id.
    public var requestID: String?
    /// `count`.
    public var count: Int?
    /// The next page, when there is one.
    public var nextURL: String?

    enum CodingKeys: String, CodingKey { case results, status, count, requestID = "request_id", nextURL = "next_url" }

    /// Creates a page (used by the sample server).
    public init(results: [PolygonTicker]?, status: String? = "OK", requestID: String? = nil, nextURL: String? = nil) {
        self.results = results
        self.status = status
        self.requestID = requestID
        self.count = results?.count
        self.nextURL = nextURL
    }
}

/// An upcoming holiday or early close (`/v1/marketstatus/upcoming`).
public struct PolygonMarketHoliday: Codable, Sendable, Equatable {
    /// `NYSE`, `NASDAQ`, `OTC`.
    public var exchange: String
    /// The holiday's name.
    public var name: String
    /// The date.
    public var date: CivilDate
    /// `closed` or `early-close`.
    public var status: String
    /// Opening instant on an early-close day (ISO 8601), if any.
    public var open: String?
    /// Closing instant on an early-close day (ISO 8601), if any.
    public var close: String?

    /// Creates an entry (used by the sample server).
    public init(exchange: String, name: String, date: CivilDate, status: String, open: String? = nil, close: String? = nil) {
        self.exchange = exchange
        self.name = name
        self.date = date
        self.status = status
        self.open = open
        self.close = close
    }

    /// True when the market is closed all day.
    public var isClosed: Bool { status == "closed" }
}

/// Polygon's error body: `status` "ERROR" with `error`, or "NOT_AUTHORIZED"/"NOT_FOUND" with `message`.
struct PolygonStatusProbe: Decodable {
    var status: String?
    var error: String?
    var message: String?
}

func decodeLenientInt<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Int? {
    if let value = try? c.decodeIfPresent(Int.self, forKey: key) { return value }
    guard let double = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
    guard double.isFinite, double.rounded() == double, abs(double) < 9e15 else {
        throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an integer: \(double)")
    }
    return Int(double)
}

func decodeLenientInt64<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> Int64? {
    try decodeLenientInt(c, key).map(Int64.init)
}
