import Foundation

/// A calendar date in New York (the US equity market's time zone), such as 2024-03-08.
///
/// Arithmetic is pure integer math on the proleptic Gregorian calendar; conversions to and from
/// instants use `TimeZone(identifier: "America/New_York")`, never a fixed offset, so they are
/// right on both sides of daylight-saving switches. Encoded as the string `YYYY-MM-DD`.
public struct TradingDate: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The year, such as 2024.
    public let year: Int
    /// The month, 1...12.
    public let month: Int
    /// The day of the month, 1...31.
    public let day: Int

    /// The New York time zone.
    public static let newYorkTimeZone: TimeZone = TimeZone(identifier: "America/New_York")!

    /// A Gregorian calendar in New York time.
    public static let newYorkCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = newYorkTimeZone
        return calendar
    }()

    /// Creates a date; nil when the day does not exist (such as February 30).
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= TradingDate.daysIn(year: year, month: month) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
        self.init(year: y, month: m, day: d)
    }

    /// The date in New York at the instant `date`.
    public init(newYorkDateOf date: Date) {
        let parts = TradingDate.newYorkCalendar.dateComponents([.year, .month, .day], from: date)
        self.init(unchecked: parts.year!, parts.month!, parts.day!)
    }

    /// The New York date of a Unix timestamp in milliseconds (Polygon's `t`).
    public init(newYorkDateOfMilliseconds milliseconds: Int64) {
        self.init(newYorkDateOf: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// The date `days` days after 1970-01-01.
    public init(daysSinceEpoch days: Int) {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.init(unchecked: m <= 2 ? y + 1 : y, m, d)
    }

    private init(unchecked year: Int, _ month: Int, _ day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Today in New York.
    public static func today(now: Date = Date()) -> TradingDate { TradingDate(newYorkDateOf: now) }

    /// Days since 1970-01-01 (negative before).
    public var daysSinceEpoch: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date `days` later (earlier when negative).
    public func adding(days: Int) -> TradingDate { TradingDate(daysSinceEpoch: daysSinceEpoch + days) }

    /// Days from `self` to `other` (positive when `other` is later).
    public func days(to other: TradingDate) -> Int { other.daysSinceEpoch - daysSinceEpoch }

    /// ISO weekday: 1 = Monday ... 7 = Sunday.
    public var isoWeekday: Int {
        let d = (daysSinceEpoch + 3) % 7  // 1970-01-01 was a Thursday (ISO 4)
        return (d < 0 ? d + 7 : d) + 1
    }

    /// True Monday to Friday.
    public var isWeekday: Bool { isoWeekday <= 5 }

    /// The instant of `hour:minute` New York wall-clock time on this date.
    public func newYorkTime(hour: Int, minute: Int = 0) -> Date {
        let parts = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute)
        return TradingDate.newYorkCalendar.date(from: parts)!
    }

    /// Midnight in New York at the start of this date (how Polygon stamps per-ticker daily bars).
    public var newYorkMidnight: Date { newYorkTime(hour: 0) }

    /// `YYYY-MM-DD`.
    public var description: String {
        let y = String(year)
        let m = month < 10 ? "0\(month)" : String(month)
        let d = day < 10 ? "0\(day)" : String(day)
        return "\(String(repeating: "0", count: max(0, 4 - y.count)))\(y)-\(m)-\(d)"
    }

    /// Every date from `from` through `to`, inclusive (empty when `to` is before `from`).
    public static func range(from: TradingDate, through to: TradingDate) -> [TradingDate] {
        guard from <= to else { return [] }
        return (from.daysSinceEpoch...to.daysSinceEpoch).map(TradingDate.init(daysSinceEpoch:))
    }

    /// Orders by date.
    public static func < (lhs: TradingDate, rhs: TradingDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// Decodes from `YYYY-MM-DD`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = TradingDate(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a YYYY-MM-DD date: \(text.prefix(40))")
        }
        self = date
    }

    /// Encodes as `YYYY-MM-DD`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    private static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
