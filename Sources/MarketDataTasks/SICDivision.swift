import Foundation

/// The divisions of the Standard Industrial Classification, stored as `ticker_metadata.sic_division`
/// (the economic `sector` comes from the SQL table `sic_sector_map`).
///
/// Codes outside every division (for example 1800-1999, 9000-9099, 9730-9899) have no sector.
public enum SICDivision {
    /// The division ranges, inclusive, with their names.
    public static let ranges: [(range: ClosedRange<Int>, name: String)] = [
        (100...999, "Agriculture, Forestry and Fishing"),
        (1000...1499, "Mining"),
        (1500...1799, "Construction"),
        (2000...3999, "Manufacturing"),
        (4000...4999, "Transportation, Communications, Electric, Gas and Sanitary Services"),
        (5000...5199, "Wholesale Trade"),
        (5200...5999, "Retail Trade"),
        (6000...6799, "Finance, Insurance and Real Estate"),
        (7000...8999, "Services"),
        (9100...9729, "Public Administration"),
        (9900...9999, "Nonclassifiable"),
    ]

    /// The division of a numeric SIC code, or nil when it lies in no division.
    public static func name(forCode code: Int) -> String? {
        ranges.first { $0.range.contains(code) }?.name
    }

    /// The division of a SIC code as the API sends it (a string of digits, e.g. "3571");
    /// nil for an empty, non-numeric or unclassified code.
    public static func name(forCode code: String?) -> String? {
        guard let trimmed = code?.trimmingCharacters(in: .whitespaces), !trimmed.isEmpty,
              trimmed.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(trimmed) else { return nil }
        return name(forCode: value)
    }
}
