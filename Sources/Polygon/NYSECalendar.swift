import Toolkit

/// The NYSE holiday rules, the same rules as the database's `maintenance_nyse_holiday(date)`
/// (migration 0003): fixed-date holidays observed on the Friday before (Saturday) or the
/// Monday after (Sunday), the floating Monday holidays, Good Friday and Thanksgiving. One-off
/// closures (national days of mourning, storms) are not rules; the database keeps them in
/// `maintenance_calendar_overrides`.
extension CivilDate {
    /// The name of the NYSE holiday on this date, nil on a trading day and on weekends.
    public var nyseHoliday: String? {
        let weekday = isoWeekday
        guard weekday <= 5 else { return nil }
        if (month == 1 && day == 1) || (month == 1 && day == 2 && weekday == 1) { return "New Year's Day" }
        if year >= 2022, month == 6, day == 19 || (day == 18 && weekday == 5) || (day == 20 && weekday == 1) {
            return "Juneteenth National Independence Day"
        }
        if month == 7, day == 4 || (day == 3 && weekday == 5) || (day == 5 && weekday == 1) { return "Independence Day" }
        if month == 12, day == 25 || (day == 24 && weekday == 5) || (day == 26 && weekday == 1) { return "Christmas Day" }
        if year >= 1998, month == 1, weekday == 1, (15...21).contains(day) { return "Martin Luther King Jr. Day" }
        if month == 2, weekday == 1, (15...21).contains(day) { return "Washington's Birthday" }
        if self == CivilDate.easterSunday(year: year).adding(days: -2) { return "Good Friday" }
        if month == 5, weekday == 1, day >= 25 { return "Memorial Day" }
        if month == 9, weekday == 1, day <= 7 { return "Labor Day" }
        if month == 11, weekday == 4, (22...28).contains(day) { return "Thanksgiving Day" }
        return nil
    }

    /// True when the NYSE trades on this date by the rules: a weekday that is not a holiday.
    public var isNYSETradingDay: Bool { isWeekday && nyseHoliday == nil }

    /// Easter Sunday of `year` in the Gregorian calendar (the anonymous Gregorian algorithm).
    public static func easterSunday(year: Int) -> CivilDate {
        let a = year % 19, b = year / 100, c = year % 100
        let d = b / 4, e = b % 4, f = (b + 8) / 25, g = (b - f + 1) / 3
        let h = (19 * a + b - d - g + 15) % 30
        let i = c / 4, k = c % 4
        let l = (32 + 2 * e + 2 * i - h - k) % 7
        let m = (a + 11 * h + 22 * l) / 451
        let month = (h + l - 7 * m + 114) / 31
        let day = (h + l - 7 * m + 114) % 31 + 1
        return CivilDate(year: year, month: month, day: day)!
    }
}
