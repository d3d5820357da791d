import Foundation
import Toolkit

/// New York local time, from the time-zone database (`America/New_York`), never a fixed
/// offset: every conversion asks the zone for the offset in force at that instant, so bars on
/// either side of a daylight-saving switch land on the right date and slot.
public enum NewYorkTime {
    /// The `America/New_York` zone.
    public static let zone: TimeZone = TimeZone(identifier: "America/New_York")!

    /// The first slot starts at 04:00 local time; the last (191) ends at 20:00.
    public static let slotCount = 192
    /// Minutes per slot.
    public static let slotMinutes = 5
    /// 04:00 in minutes after midnight.
    static let sessionStartMinute = 4 * 60
    /// 20:00 in minutes after midnight.
    static let sessionEndMinute = 20 * 60

    /// The local wall-clock position of an instant given in milliseconds since the Unix epoch:
    /// the New York date and the minute of that day (0...1439).
    public static func local(epochMilliseconds: Int64) -> (date: CivilDate, minuteOfDay: Int) {
        let seconds = floorDiv(epochMilliseconds, 1000)
        let offset = Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(seconds))))
        let local = seconds + offset
        let day = floorDiv(local, 86_400)
        let secondOfDay = local - day * 86_400
        return (CivilDate(dayNumber: Int(day)), Int(secondOfDay / 60))
    }

    /// Remembers the zone's UTC offset per UTC hour. New York's offset only changes on an hour
    /// boundary, so within one UTC hour it is constant; a batch of bars asks the time-zone
    /// database once per hour it touches instead of once per bar.
    public struct OffsetCache {
        private var hour: Int64 = .min
        private var offset: Int64 = 0

        /// Creates an empty cache.
        public init() {}

        /// Local date and minute of day of an instant in milliseconds since the epoch.
        public mutating func local(epochMilliseconds: Int64) -> (date: CivilDate, minuteOfDay: Int) {
            let seconds = NewYorkTime.floorDiv(epochMilliseconds, 1000)
            let bucket = NewYorkTime.floorDiv(seconds, 3600)
            if bucket != hour {
                hour = bucket
                offset = Int64(NewYorkTime.zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(bucket * 3600))))
            }
            let local = seconds + offset
            let day = NewYorkTime.floorDiv(local, 86_400)
            return (CivilDate(dayNumber: Int(day)), Int((local - day * 86_400) / 60))
        }

        /// The date and slot of a minute bar, nil outside 04:00-20:00 (see `NewYorkTime.slot`).
        public mutating func slot(epochMilliseconds: Int64) -> (date: CivilDate, slot: Int)? {
            let position = local(epochMilliseconds: epochMilliseconds)
            guard position.minuteOfDay >= sessionStartMinute, position.minuteOfDay < sessionEndMinute else { return nil }
            return (position.date, (position.minuteOfDay - sessionStartMinute) / slotMinutes)
        }
    }

    /// The New York trading date of a bar timestamp (`t`, milliseconds since the epoch).
    public static func tradingDate(epochMilliseconds: Int64) -> CivilDate {
        local(epochMilliseconds: epochMilliseconds).date
    }

    /// The date and 5-minute slot (0...191) of a minute bar starting at `epochMilliseconds`, or
    /// nil when the bar starts before 04:00 or at/after 20:00 New York time.
    public static func slot(epochMilliseconds: Int64) -> (date: CivilDate, slot: Int)? {
        let position = local(epochMilliseconds: epochMilliseconds)
        guard position.minuteOfDay >= sessionStartMinute, position.minuteOfDay < sessionEndMinute else { return nil }
        return (position.date, (position.minuteOfDay - sessionStartMinute) / slotMinutes)
    }

    /// Today's date in New York.
    public static func today(now: Date = Date()) -> CivilDate {
        tradingDate(epochMilliseconds: Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// The instant (milliseconds since the epoch) of a New York local date and minute of day.
    /// Used by tests and benchmarks to build bars; ambiguous times take the earlier instant.
    public static func epochMilliseconds(date: CivilDate, minuteOfDay: Int) -> Int64 {
        let localSeconds = Int64(date.dayNumber) * 86_400 + Int64(minuteOfDay) * 60
        // The offset at the guess is right except within an hour of a switch; one more
        // step settles it.
        var guess = localSeconds - Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(localSeconds))))
        guess = localSeconds - Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(guess))))
        return guess * 1000
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// The date range of one run: either `{"days": N}` (the last N calendar days up to today in
/// New York, today included) or `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`.
public struct DateRange: Sendable, Equatable, Codable {
    /// First date, inclusive.
    public let from: CivilDate
    /// Last date, inclusive.
    public let to: CivilDate

    /// Creates a range; `from` must not be after `to`.
    public init(from: CivilDate, to: CivilDate) {
        self.from = from
        self.to = to
    }

    /// The last `days` calendar days ending today (New York).
    public static func last(_ days: Int, today: CivilDate) -> DateRange {
        DateRange(from: today.adding(days: -(max(days, 1) - 1)), to: today)
    }

    /// Every date of the range, in order.
    public var dates: [CivilDate] {
        guard from <= to else { return [] }
        return (from.dayNumber...to.dayNumber).map(CivilDate.init(dayNumber:))
    }

    /// Monday to Friday dates of the range (holidays included: the API returns no bars for them).
    public var weekdays: [CivilDate] { dates.filter { !$0.isWeekend } }
}
