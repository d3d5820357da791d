import Foundation

/// A calendar date with no time of day, such as 2024-03-08: the one date type of the project
/// (trading dates, bar dates, periods, argument ranges). Stored as days since 1970-01-01.
///
/// Arithmetic is integer math on the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil` and `civil_from_days`). Conversions to and from instants use the
/// `America/New_York` zone (the US equity market's), never a fixed offset, so they are right
/// on both sides of daylight-saving switches. Formats, parses and encodes as `YYYY-MM-DD`.
public struct CivilDate: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Days since 1970-01-01 (negative before).
    public let dayNumber: Int

    /// Creates a date from its day number.
    public init(dayNumber: Int) { self.dayNumber = dayNumber }

    /// Creates a date from year, month (1-12) and day (1-31); nil when the date does not exist.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= CivilDate.daysInMonth(year: year, month: month) else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        dayNumber = era * 146_097 + doe - 719_468
    }

    /// Parses `YYYY-MM-DD`; nil for anything else or a date that does not exist.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
        self.init(year: y, month: m, day: d)
    }

    /// Year, month and day.
    public var components: (year: Int, month: Int, day: Int) {
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The year, such as 2024.
    public var year: Int { components.year }
    /// The month, 1...12.
    public var month: Int { components.month }
    /// The day of the month, 1...31.
    public var day: Int { components.day }

    /// 0 = Sunday … 6 = Saturday.
    public var weekday: Int { ((dayNumber % 7) + 7 + 4) % 7 }

    /// ISO weekday: 1 = Monday … 7 = Sunday.
    public var isoWeekday: Int { weekday == 0 ? 7 : weekday }

    /// True on Saturday and Sunday.
    public var isWeekend: Bool { weekday == 0 || weekday == 6 }

    /// True Monday to Friday.
    public var isWeekday: Bool { !isWeekend }

    /// The date `days` later (earlier when negative).
    public func adding(days: Int) -> CivilDate { CivilDate(dayNumber: dayNumber + days) }

    /// Days from `self` to `other` (positive when `other` is later).
    public func days(to other: CivilDate) -> Int { other.dayNumber - dayNumber }

    /// Every date from `from` through `to`, inclusive (empty when `to` is before `from`).
    public static func range(from: CivilDate, through to: CivilDate) -> [CivilDate] {
        guard from <= to else { return [] }
        return (from.dayNumber...to.dayNumber).map(CivilDate.init(dayNumber:))
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        let c = components
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
        }
        return pad(c.year, 4) + "-" + pad(c.month, 2) + "-" + pad(c.day, 2)
    }

    /// Orders by date.
    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool { lhs.dayNumber < rhs.dayNumber }

    /// Decodes from `YYYY-MM-DD`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = CivilDate(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a YYYY-MM-DD date: \(text.prefix(40))")
        }
        self = date
    }

    /// Encodes as `YYYY-MM-DD`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

extension CivilDate {
    /// The New York time zone.
    public static let newYorkTimeZone: TimeZone = TimeZone(identifier: "America/New_York")!

    /// A Gregorian calendar in New York time.
    public static let newYorkCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = newYorkTimeZone
        return calendar
    }()

    /// The date in New York at the instant `date`.
    public init(newYorkDateOf date: Date) {
        let parts = CivilDate.newYorkCalendar.dateComponents([.year, .month, .day], from: date)
        self = CivilDate(year: parts.year!, month: parts.month!, day: parts.day!)!
    }

    /// The New York date of a Unix timestamp in milliseconds (Polygon's `t`).
    public init(newYorkDateOfMilliseconds milliseconds: Int64) {
        self.init(newYorkDateOf: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// Today in New York.
    public static func today(now: Date = Date()) -> CivilDate { CivilDate(newYorkDateOf: now) }

    /// The instant of `hour:minute` New York wall-clock time on this date.
    public func newYorkTime(hour: Int, minute: Int = 0) -> Date {
        let c = components
        let parts = DateComponents(year: c.year, month: c.month, day: c.day, hour: hour, minute: minute)
        return CivilDate.newYorkCalendar.date(from: parts)!
    }

    /// Midnight in New York at the start of this date (how Polygon stamps per-ticker daily bars).
    public var newYorkMidnight: Date { newYorkTime(hour: 0) }
}
