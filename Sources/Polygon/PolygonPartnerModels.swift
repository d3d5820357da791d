import Foundation

/// One row of the Benzinga earnings calendar (`/benzinga/v1/earnings`), in the API's field
/// names. Only `ticker` and `date` are required; everything else may be missing or null.
public struct PolygonEarning: Codable, Sendable, Equatable {
    /// The symbol.
    public var ticker: String
    /// The announcement date, `YYYY-MM-DD`.
    public var date: String
    /// The announcement time of day, `HH:MM:SS` (Eastern time, as Benzinga publishes it).
    public var time: String?
    /// `projected` or `confirmed`.
    public var dateStatus: String?
    /// `Q1`...`Q4`, `H1`, `H2` or `FY`.
    public var fiscalPeriod: String?
    /// The fiscal year the period belongs to.
    public var fiscalYear: Int?
    /// The analysts' EPS estimate.
    public var estimatedEPS: Double?
    /// The reported EPS (after the announcement).
    public var actualEPS: Double?
    /// The company name.
    public var companyName: String?
    /// Benzinga's own identifier of the event.
    public var benzingaID: String?
    /// When Benzinga last changed the row (RFC 3339).
    public var lastUpdated: String?

    enum CodingKeys: String, CodingKey {
        case ticker, date, time
        case dateStatus = "date_status", fiscalPeriod = "fiscal_period", fiscalYear = "fiscal_year"
        case estimatedEPS = "estimated_eps", actualEPS = "actual_eps", companyName = "company_name"
        case benzingaID = "benzinga_id", lastUpdated = "last_updated"
    }

    /// Creates a row (used by the sample server).
    public init(ticker: String, date: String, time: String? = nil, dateStatus: String? = nil, fiscalPeriod: String? = nil,
                fiscalYear: Int? = nil, estimatedEPS: Double? = nil, actualEPS: Double? = nil, companyName: String? = nil,
                benzingaID: String? = nil, lastUpdated: String? = nil) {
        self.ticker = ticker
        self.date = date
        self.time = time
        self.dateStatus = dateStatus
        self.fiscalPeriod = fiscalPeriod
        self.fiscalYear = fiscalYear
        self.estimatedEPS = estimatedEPS
        self.actualEPS = actualEPS
        self.companyName = companyName
        self.benzingaID = benzingaID
        self.lastUpdated = lastUpdated
    }

    /// Decodes a row; `fiscal_year` may come as a number or a string of digits.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ticker = try c.decode(String.self, forKey: .ticker)
        date = try c.decode(String.self, forKey: .date)
        time = try c.decodeIfPresent(String.self, forKey: .time)
        dateStatus = try c.decodeIfPresent(String.self, forKey: .dateStatus)
        fiscalPeriod = try c.decodeIfPresent(String.self, forKey: .fiscalPeriod)
        if let text = try? c.decodeIfPresent(String.self, forKey: .fiscalYear) {
            fiscalYear = Int(text)
        } else {
            fiscalYear = try decodeLenientInt(c, .fiscalYear)
        }
        estimatedEPS = try c.decodeIfPresent(Double.self, forKey: .estimatedEPS)
        actualEPS = try c.decodeIfPresent(Double.self, forKey: .actualEPS)
        companyName = try c.decodeIfPresent(String.self, forKey: .companyName)
        benzingaID = try c.decodeIfPresent(String.self, forKey: .benzingaID)
        lastUpdated = try c.decodeIfPresent(String.self, forKey: .lastUpdated)
    }
}

/// One row of the free-float endpoint (`/stocks/vX/float`).
public struct PolygonFloat: Codable, Sendable, Equatable {
    /// The symbol.
    public var ticker: String
    /// The date the figure is effective from, `YYYY-MM-DD`.
    public var effectiveDate: String?
    /// Shares in free float.
    public var freeFloat: Double?
    /// Free float as a percentage of shares outstanding.
    public var freeFloatPercent: Double?

    enum CodingKeys: String, CodingKey {
        case ticker
        case effectiveDate = "effective_date", freeFloat = "free_float", freeFloatPercent = "free_float_percent"
    }

    /// Creates a row (used by the sample server).
    public init(ticker: String, effectiveDate: String? = nil, freeFloat: Double? = nil, freeFloatPercent: Double? = nil) {
        self.ticker = ticker
        self.effectiveDate = effectiveDate
        self.freeFloat = freeFloat
        self.freeFloatPercent = freeFloatPercent
    }
}

/// A page of a `results` list with `next_url` (the earnings and float endpoints).
public struct PolygonResultsPage<Row: Codable & Sendable>: Codable, Sendable {
    /// The rows (missing or null when there are none).
    public var results: [Row]?
    /// `OK`.
    public var status: String?
    /// The API's request id.
    public var requestID: String?
    /// The next page, if any.
    public var nextURL: String?

    enum CodingKeys: String, CodingKey {
        case results, status
        case requestID = "request_id", nextURL = "next_url"
    }

    /// Creates a page (used by the sample server).
    public init(results: [Row]?, status: String? = "OK", requestID: String? = nil, nextURL: String? = nil) {
        self.results = results
        self.status = status
        self.requestID = requestID
        self.nextURL = nextURL
    }
}
