import Foundation
import Toolkit
import Polygon

/// Deterministic sample market data: a universe of symbols with daily bars, minute bars and
/// ticker details, every value a pure function of `(seed, symbol, date)`.
///
/// Tests elsewhere compute expected table contents from the same functions the sample server
/// serves (`dailyBar`, `minuteBars`, `details`...). Facts:
/// - Trading days are the NYSE trading days from `firstDate` through `lastDate`: weekends and
///   NYSE holidays (`CivilDate.nyseHoliday`) have no bars, as on the real API.
/// - Daily bars: prices rounded to 4 decimals, integral volumes, `vw` missing for about 1 bar in
///   10 and `n` missing for about 1 in 10 (independently). `timestamp` is New York midnight.
/// - Minute bars: 04:00 to 19:59 New York; about 97% of regular-session minutes (09:30-15:59)
///   and about 25% of extended-hours minutes have a bar; regular-session volumes are U-shaped
///   (heavy at the open and close); `vw` and `n` always present. Daily and minute bars are
///   generated independently (a day's minute volumes do not sum to its daily volume).
/// - Details: name, market cap, shares outstanding (sometimes only one of the two share
///   fields, sometimes no market cap), SIC code and description from a table of real SIC codes
///   (about 1 generated symbol in 12 has none), primary exchange XNAS or XNYS.
public struct SampleMarketData: Sendable {
    /// The seed every value derives from.
    public let seed: UInt64
    /// The universe, in the order given (well-known symbols first when generated).
    public let symbols: [String]
    /// The first date with data.
    public let firstDate: CivilDate
    /// The last date with data.
    public let lastDate: CivilDate
    private let symbolSet: Set<String>

    /// Real companies used first when a symbol count is asked for.
    public static let wellKnown: [(symbol: String, name: String, sic: String, exchange: String, price: Double, shares: Double)] = [
        ("AAPL", "Apple Inc.", "3571", "XNAS", 190, 15.2e9),
        ("MSFT", "Microsoft Corp", "7372", "XNAS", 410, 7.43e9),
        ("AMZN", "Amazon.com Inc", "5961", "XNAS", 180, 10.4e9),
        ("GOOGL", "Alphabet Inc. Class A", "7370", "XNAS", 170, 5.9e9),
        ("META", "Meta Platforms, Inc. Class A Common Stock", "7370", "XNAS", 480, 2.2e9),
        ("NVDA", "Nvidia Corp", "3674", "XNAS", 120, 24.5e9),
        ("TSLA", "Tesla, Inc. Common Stock", "3711", "XNAS", 230, 3.19e9),
        ("JPM", "JPMorgan Chase & Co.", "6021", "XNYS", 200, 2.85e9),
        ("XOM", "Exxon Mobil Corp", "2911", "XNYS", 115, 4.45e9),
        ("JNJ", "Johnson & Johnson", "2834", "XNYS", 155, 2.4e9),
        ("WMT", "Walmart Inc.", "5331", "XNYS", 68, 8.05e9),
        ("KO", "Coca-Cola Co", "2080", "XNYS", 62, 4.31e9),
    ]

    /// Real SIC codes and descriptions used for generated symbols (and the well-known ones).
    public static let sicTable: [String: String] = [
        "0100": "AGRICULTURAL PRODUCTION-CROPS",
        "1311": "CRUDE PETROLEUM & NATURAL GAS",
        "1531": "OPERATIVE BUILDERS",
        "2080": "BEVERAGES",
        "2834": "PHARMACEUTICAL PREPARATIONS",
        "2911": "PETROLEUM REFINING",
        "3571": "ELECTRONIC COMPUTERS",
        "3674": "SEMICONDUCTORS & RELATED DEVICES",
        "3711": "MOTOR VEHICLES & PASSENGER CAR BODIES",
        "4512": "AIR TRANSPORTATION, SCHEDULED",
        "4911": "ELECTRIC SERVICES",
        "5331": "RETAIL-VARIETY STORES",
        "5812": "RETAIL-EATING PLACES",
        "5961": "RETAIL-CATALOG & MAIL-ORDER HOUSES",
        "6021": "NATIONAL COMMERCIAL BANKS",
        "6022": "STATE COMMERCIAL BANKS",
        "6798": "REAL ESTATE INVESTMENT TRUSTS",
        "7370": "SERVICES-COMPUTER PROGRAMMING, DATA PROCESSING, ETC.",
        "7372": "SERVICES-PREPACKAGED SOFTWARE",
        "8062": "SERVICES-HOSPITALS",
    ]

    /// A universe of `symbols` symbols: the well-known ones first, then generated `ZAAA`, `ZAAB`...
    /// Dates default to the 120 days through today in New York.
    public init(symbols count: Int, seed: UInt64 = 42, from: CivilDate? = nil, through: CivilDate? = nil) {
        var list = Array(SampleMarketData.wellKnown.prefix(max(0, count)).map(\.symbol))
        var index = 0
        while list.count < count {
            list.append(SampleMarketData.generatedSymbol(index))
            index += 1
        }
        self.init(symbols: list, seed: seed, from: from, through: through)
    }

    /// A universe of the given symbols (duplicates dropped). Dates default to the 120 days
    /// through today in New York.
    public init(symbols: [String], seed: UInt64 = 42, from: CivilDate? = nil, through: CivilDate? = nil) {
        var seen: Set<String> = []
        self.symbols = symbols.filter { seen.insert($0).inserted }
        self.symbolSet = seen
        self.seed = seed
        let last = through ?? CivilDate.today()
        self.lastDate = last
        self.firstDate = from ?? last.adding(days: -120)
    }

    /// The generated symbol number `index`: `Z` and three or more letters.
    public static func generatedSymbol(_ index: Int) -> String {
        var letters: [Character] = []
        var n = index
        for _ in 0..<3 {
            letters.append(Character(Unicode.Scalar(UInt8(65 + n % 26))))
            n /= 26
        }
        while n > 0 {
            letters.append(Character(Unicode.Scalar(UInt8(65 + n % 26))))
            n /= 26
        }
        return "Z" + String(letters.reversed())
    }

    /// True when `symbol` is in the universe.
    public func contains(_ symbol: String) -> Bool { symbolSet.contains(symbol) }

    /// True for an NYSE trading day (a weekday that is not a holiday) from `firstDate` through `lastDate`.
    public func isTradingDay(_ date: CivilDate) -> Bool {
        date >= firstDate && date <= lastDate && date.isNYSETradingDay
    }

    /// Every trading day, oldest first.
    public var tradingDays: [CivilDate] {
        CivilDate.range(from: firstDate, through: lastDate).filter(\.isNYSETradingDay)
    }

    /// Trading days from `from` through `to` (clipped to the data's range).
    public func tradingDays(from: CivilDate, through to: CivilDate) -> [CivilDate] {
        CivilDate.range(from: max(from, firstDate), through: min(to, lastDate)).filter(\.isNYSETradingDay)
    }

    // MARK: - Daily bars

    /// The daily bar of `symbol` on `date`, stamped at New York midnight (as the per-ticker
    /// aggregates endpoint does); nil on non-trading days and for unknown symbols.
    public func dailyBar(symbol: String, date: CivilDate) -> PolygonBar? {
        guard contains(symbol), isTradingDay(date) else { return nil }
        let d = UInt64(bitPattern: Int64(date.dayNumber))
        let s = symbolHash(symbol)
        let close = closePrice(symbol: symbol, day: date.dayNumber)
        let open = round4(close * (1 + 0.02 * (unit(s, d, 1) - 0.5)))
        let high = round4(max(open, close) * (1 + 0.015 * unit(s, d, 2)))
        let low = round4(min(open, close) * (1 - 0.015 * unit(s, d, 3)))
        let volume = (baseVolume(symbol) * (0.5 + unit(s, d, 4))).rounded()
        let vwap: Double? = unit(s, d, 5) < 0.1 ? nil : round4((high + low + close) / 3)
        let trades: Int? = unit(s, d, 6) < 0.1 ? nil : max(1, Int(volume / (80 + 120 * unit(s, d, 7))))
        let t = Int64((date.newYorkMidnight.timeIntervalSince1970 * 1000).rounded())
        return PolygonBar(open: open, high: high, low: low, close: close, volume: volume, vwap: vwap, transactions: trades, timestamp: t)
    }

    /// Daily bars of `symbol` for each trading day from `from` through `to`, oldest first.
    public func dailyBars(symbol: String, from: CivilDate, through to: CivilDate) -> [PolygonBar] {
        tradingDays(from: from, through: to).compactMap { dailyBar(symbol: symbol, date: $0) }
    }

    /// The grouped-daily answer for `date`: every symbol's daily bar, stamped at 16:00 New York
    /// (as Polygon's grouped endpoint does). Empty on non-trading days.
    public func groupedDaily(date: CivilDate) -> [PolygonGroupedBar] {
        guard isTradingDay(date) else { return [] }
        let t = Int64((date.newYorkTime(hour: 16).timeIntervalSince1970 * 1000).rounded())
        return symbols.compactMap { symbol in
            guard var bar = dailyBar(symbol: symbol, date: date) else { return nil }
            bar.timestamp = t
            return PolygonGroupedBar(ticker: symbol, bar: bar)
        }
    }

    // MARK: - Minute bars

    /// Minutes after 04:00 New York covered by minute bars: 0 (04:00) ..< 960 (20:00).
    public static let minutesPerDay = 960
    /// First regular-session minute (09:30) counted from 04:00.
    public static let regularOpenMinute = 330
    /// First minute after the regular session (16:00) counted from 04:00.
    public static let regularCloseMinute = 720

    /// The one-minute bars of `symbol` on `date`, oldest first, between 04:00 and 19:59 New York
    /// (some minutes have no bar). Empty on non-trading days and for unknown symbols.
    public func minuteBars(symbol: String, date: CivilDate) -> [PolygonBar] {
        guard let daily = dailyBar(symbol: symbol, date: date) else { return [] }
        let s = symbolHash(symbol)
        let d = UInt64(bitPattern: Int64(date.dayNumber))
        // 04:00 to 20:00 contains no daylight-saving switch (those happen at 02:00), so minutes
        // can be added to the 04:00 instant.
        let start = Int64((date.newYorkTime(hour: 4).timeIntervalSince1970 * 1000).rounded())
        let perMinute = daily.volume / 390
        var bars: [PolygonBar] = []
        bars.reserveCapacity(420)
        var previous = daily.open
        for minute in 0..<SampleMarketData.minutesPerDay {
            let m = UInt64(minute)
            let regular = minute >= SampleMarketData.regularOpenMinute && minute < SampleMarketData.regularCloseMinute
            let presence = unit(s, d, 100 &+ m)
            guard presence < (regular ? 0.97 : 0.25) else { continue }
            let fraction = Double(minute) / Double(SampleMarketData.minutesPerDay)
            let drift = daily.open + (daily.close - daily.open) * fraction
            let price = drift * (1 + 0.004 * (unit(s, d, 2000 &+ m) - 0.5))
            let open = round4(previous)
            let close = round4(price)
            let high = round4(max(open, close) * (1 + 0.001 * unit(s, d, 4000 &+ m)))
            let low = round4(min(open, close) * (1 - 0.001 * unit(s, d, 6000 &+ m)))
            let volume: Double
            if regular {
                let x = Double(minute - SampleMarketData.regularOpenMinute) / 390  // 0 at the open, 1 at the close
                let u = 0.4 + 4 * pow(2 * x - 1, 4)                                  // U-shaped
                volume = max(1, (perMinute * u * (0.6 + 0.8 * unit(s, d, 8000 &+ m))).rounded())
            } else {
                volume = max(1, (perMinute * 0.03 * (0.2 + unit(s, d, 8000 &+ m))).rounded())
            }
            let trades = max(1, Int(volume / 100))
            let vwap = round4((high + low + close) / 3)
            bars.append(PolygonBar(open: open, high: high, low: low, close: close, volume: volume, vwap: vwap,
                                   transactions: trades, timestamp: start + Int64(minute) * 60_000))
            previous = price
        }
        return bars
    }

    /// Minute bars of `symbol` for each trading day from `from` through `to`, oldest first.
    public func minuteBars(symbol: String, from: CivilDate, through to: CivilDate) -> [PolygonBar] {
        tradingDays(from: from, through: to).flatMap { minuteBars(symbol: symbol, date: $0) }
    }

    // MARK: - Details

    /// Ticker details of `symbol`; nil for unknown symbols.
    public func details(symbol: String) -> PolygonTickerDetails? {
        guard contains(symbol) else { return nil }
        let s = symbolHash(symbol)
        let known = SampleMarketData.wellKnown.first { $0.symbol == symbol }
        let lastClose = closePrice(symbol: symbol, day: lastTradingDay.dayNumber)
        let shares = known?.shares ?? (50e6 + 2e9 * unit(s, 0, 20)).rounded()
        let sic: String?
        if let known {
            sic = known.sic
        } else if unit(s, 0, 21) < 1.0 / 12 {
            sic = nil
        } else {
            let codes = SampleMarketData.sicTable.keys.sorted()
            sic = codes[Int(unit(s, 0, 22) * Double(codes.count)) % codes.count]
        }
        let shareShape = known == nil ? unit(s, 0, 23) : 0.5
        let shareClass: Double? = shareShape < 0.2 ? nil : shares                       // 20%: only weighted
        let weighted: Double? = shareShape > 0.9 ? nil : (shares * 0.99).rounded()      // 10%: only share class
        let marketCap: Double? = known == nil && unit(s, 0, 24) < 0.05 ? nil : (shares * lastClose).rounded()
        var details = PolygonTickerDetails(
            ticker: symbol, name: known?.name ?? "Sample \(symbol) Corp", primaryExchange: known?.exchange ?? (unit(s, 0, 25) < 0.5 ? "XNAS" : "XNYS"),
            marketCap: marketCap, shareClassSharesOutstanding: shareClass, weightedSharesOutstanding: weighted,
            sicCode: sic, sicDescription: sic.flatMap { SampleMarketData.sicTable[$0] },
            totalEmployees: Int(1000 + 100_000 * unit(s, 0, 26)), listDate: "2001-06-15")
        details.homepageURL = "https://www.\(symbol.lowercased()).example.com"
        details.description = "\(details.name ?? symbol) is a sample company served by closebell's local market-data server."
        return details
    }

    // MARK: - Earnings and float

    /// The Benzinga-style earnings events of `symbol`: one per fiscal quarter from the year
    /// before `firstDate` through the year after `lastDate`, announced on a weekday 20 to 44
    /// days after the quarter ends (the same offset every quarter for a symbol). Fiscal quarters
    /// end in March/June/September/December, or one or two months earlier (a third of symbols
    /// each), so announcements fall in every part of the year; `fiscal_period` is Q1...Q4 and
    /// `fiscal_year` the year the quarter ends in. Time: 08:00 (before the open) for about 45% of
    /// symbols, 16:05 (after the close) for about 45%, none for the rest. Events up to
    /// `lastDate` are `confirmed` and have an actual EPS; later ones within 14 days are
    /// `confirmed`, the rest `projected`. Empty for unknown symbols.
    public func earnings(symbol: String) -> [PolygonEarning] {
        guard contains(symbol) else { return [] }
        let s = symbolHash(symbol)
        let offset = 20 + Int(unit(s, 0, 30) * 25)
        let timeShape = unit(s, 0, 31)
        let time: String? = timeShape < 0.45 ? "08:00:00" : (timeShape < 0.9 ? "16:05:00" : nil)
        let baseEPS = 0.2 + 3 * unit(s, 0, 32)
        var rows: [PolygonEarning] = []
        let shift = Int(unit(s, 0, 38) * 3) % 3
        for year in (firstDate.year - 1)...(lastDate.year + 1) {
            for quarter in 1...4 {
                let month = quarter * 3 - shift
                let quarterEnd = (month == 12 ? CivilDate(year: year + 1, month: 1, day: 1)! : CivilDate(year: year, month: month + 1, day: 1)!)
                    .adding(days: -1)
                var day = quarterEnd.adding(days: offset)
                while !day.isWeekday { day = day.adding(days: 1) }
                let q = UInt64(year * 4 + quarter)
                let estimate = (baseEPS * (0.8 + 0.4 * unit(s, q, 33)) * 100).rounded() / 100
                let reported = day <= lastDate
                let actual = reported ? ((estimate * (0.85 + 0.3 * unit(s, q, 34))) * 100).rounded() / 100 : nil
                rows.append(PolygonEarning(
                    ticker: symbol, date: day.description, time: time,
                    dateStatus: day <= lastDate.adding(days: 14) ? "confirmed" : "projected",
                    fiscalPeriod: "Q\(quarter)", fiscalYear: year, estimatedEPS: unit(s, q, 35) < 0.1 ? nil : estimate,
                    actualEPS: actual, companyName: details(symbol: symbol)?.name,
                    benzingaID: String(format: "%016llx", SampleMarketData.mix(s ^ q)), lastUpdated: "\(min(day, lastDate))T21:00:00Z"))
            }
        }
        return rows
    }

    /// The free float of `symbol`: 60% to 98% of its shares outstanding, effective on
    /// `firstDate`; nil for about 1 symbol in 10 and for unknown symbols.
    public func freeFloat(symbol: String) -> PolygonFloat? {
        guard let info = details(symbol: symbol), let shares = info.sharesOutstanding else { return nil }
        let s = symbolHash(symbol)
        guard unit(s, 0, 36) >= 0.1 else { return nil }
        let percent = ((60 + 38 * unit(s, 0, 37)) * 100).rounded() / 100
        return PolygonFloat(ticker: symbol, effectiveDate: firstDate.description, freeFloat: (shares * percent / 100).rounded(),
                            freeFloatPercent: percent)
    }

    /// The ticker-list entry of `symbol`; nil for unknown symbols.
    public func tickerEntry(symbol: String) -> PolygonTicker? {
        guard let details = details(symbol: symbol) else { return nil }
        return PolygonTicker(ticker: symbol, name: details.name, primaryExchange: details.primaryExchange,
                             lastUpdatedUTC: "\(lastDate)T00:00:00Z")
    }

    /// Upcoming holidays after `lastDate` (NYSE and NASDAQ entries, as Polygon lists them):
    /// Memorial Day, Independence Day, Labor Day, Thanksgiving, Christmas and New Year's Day of
    /// the next twelve months (the sample data serves no bars on NYSE holidays).
    public var upcomingHolidays: [PolygonMarketHoliday] {
        var result: [(CivilDate, String)] = []
        for year in [lastDate.year, lastDate.year + 1] {
            result.append((CivilDate(year: year, month: 1, day: 1)!, "New Years Day"))
            result.append((SampleMarketData.nth(weekday: 1, of: 5, year: year, last: true), "Memorial Day"))
            result.append((CivilDate(year: year, month: 7, day: 4)!, "Independence Day"))
            result.append((SampleMarketData.nth(weekday: 1, of: 9, year: year, n: 1), "Labor Day"))
            result.append((SampleMarketData.nth(weekday: 4, of: 11, year: year, n: 4), "Thanksgiving"))
            result.append((CivilDate(year: year, month: 12, day: 25)!, "Christmas"))
        }
        return result.filter { $0.0 > lastDate && $0.0 <= lastDate.adding(days: 366) }
            .sorted { $0.0 < $1.0 }
            .flatMap { date, name in
                ["NYSE", "NASDAQ"].map { PolygonMarketHoliday(exchange: $0, name: name, date: date, status: "closed") }
            }
    }

    // MARK: - Generation

    /// The last trading day in the data's range (used for market caps).
    public var lastTradingDay: CivilDate {
        var date = lastDate
        while !date.isNYSETradingDay { date = date.adding(days: -1) }
        return date
    }

    private func closePrice(symbol: String, day: Int) -> Double {
        let s = symbolHash(symbol)
        let base = SampleMarketData.wellKnown.first { $0.symbol == symbol }?.price ?? (5 + 300 * unit(s, 0, 10))
        let phase1 = 2 * Double.pi * unit(s, 0, 11)
        let phase2 = 2 * Double.pi * unit(s, 0, 12)
        let x = Double(day)
        let noise = unit(s, UInt64(bitPattern: Int64(day)), 0) - 0.5
        let level = 0.25 * sin(2 * Double.pi * x / 180 + phase1) + 0.08 * sin(2 * Double.pi * x / 23 + phase2) + 0.03 * noise
        return round4(base * exp(level))
    }

    private func baseVolume(_ symbol: String) -> Double {
        if SampleMarketData.wellKnown.contains(where: { $0.symbol == symbol }) { return 3e7 + 5e7 * unit(symbolHash(symbol), 0, 13) }
        return 1e5 + 5e6 * unit(symbolHash(symbol), 0, 13)
    }

    private func symbolHash(_ symbol: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in symbol.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// A uniform number in [0, 1) from the seed and three values.
    private func unit(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> Double {
        var x = seed &+ 0x9e37_79b9_7f4a_7c15
        x = SampleMarketData.mix(x ^ a)
        x = SampleMarketData.mix(x ^ (b &* 0xbf58_476d_1ce4_e5b9))
        x = SampleMarketData.mix(x ^ (c &* 0x94d0_49bb_1331_11eb))
        return Double(x >> 11) / Double(1 << 53)
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    private func round4(_ value: Double) -> Double { (value * 10_000).rounded() / 10_000 }

    private static func nth(weekday: Int, of month: Int, year: Int, n: Int = 1, last: Bool = false) -> CivilDate {
        if last {
            var date = CivilDate(year: month == 12 ? year + 1 : year, month: month == 12 ? 1 : month + 1, day: 1)!.adding(days: -1)
            while date.isoWeekday != weekday { date = date.adding(days: -1) }
            return date
        }
        var date = CivilDate(year: year, month: month, day: 1)!
        while date.isoWeekday != weekday { date = date.adding(days: 1) }
        return date.adding(days: 7 * (n - 1))
    }
}
