import Foundation
import Toolkit
import JobQueue

/// The arguments the market-data tasks accept (each task allows a subset of the keys).
struct MarketDataArguments: Decodable {
    var days: Int?
    var from: String?
    var to: String?
    var symbols: [String]?
    var mode: String?
    var limit: Int?
    var staleDays: Int?
    var concurrency: Int?

    enum CodingKeys: String, CodingKey {
        case days, from, to, symbols, mode, limit, concurrency
        case staleDays = "stale_days"
    }

    /// Decodes strictly (unknown keys refused) and checks values.
    static func decode(_ context: JobContext, allowedKeys: Set<String>) throws -> MarketDataArguments {
        let args = try context.decodeArgs(MarketDataArguments.self, allowedKeys: allowedKeys)
        func refuse(_ reason: String) -> InvalidJobArguments { InvalidJobArguments(task: context.task, reason: reason) }
        for (key, value) in [("days", args.days), ("limit", args.limit), ("stale_days", args.staleDays)] {
            if let value, value < 0 { throw refuse("\"\(key)\" must not be negative, got \(value)") }
        }
        if let days = args.days, days < 1 || days > 3660 { throw refuse("\"days\" must be 1...3660, got \(days)") }
        try checkConcurrency(args.concurrency, task: context.task)
        if args.days != nil, args.from != nil || args.to != nil { throw refuse("give either \"days\" or \"from\"/\"to\", not both") }
        if (args.from == nil) != (args.to == nil) { throw refuse("\"from\" and \"to\" go together") }
        if let symbols = args.symbols, symbols.contains(where: { $0.isEmpty || $0.count > 32 || $0.contains(where: \.isWhitespace) }) {
            throw refuse("\"symbols\" must be non-empty ticker symbols without spaces")
        }
        return args
    }

    /// Refuses a `concurrency` outside 1...64.
    static func checkConcurrency(_ concurrency: Int?, task: String) throws {
        if let concurrency, concurrency < 1 || concurrency > 64 {
            throw InvalidJobArguments(task: task, reason: "\"concurrency\" must be 1...64, got \(concurrency)")
        }
    }

    /// The date range: `from`/`to`, or the last `days` (default `defaultDays`) up to today in New York.
    func range(defaultDays: Int, today: CivilDate, task: String) throws -> DateRange {
        if let from, let to {
            guard let start = CivilDate(from) else { throw InvalidJobArguments(task: task, reason: "\"from\" is not a date YYYY-MM-DD: \(from)") }
            guard let end = CivilDate(to) else { throw InvalidJobArguments(task: task, reason: "\"to\" is not a date YYYY-MM-DD: \(to)") }
            guard start <= end else { throw InvalidJobArguments(task: task, reason: "\"from\" (\(from)) is after \"to\" (\(to))") }
            guard end.dayNumber - start.dayNumber < 3660 else {
                throw InvalidJobArguments(task: task, reason: "range \(from)...\(to) is longer than 3660 days")
            }
            return DateRange(from: start, to: end)
        }
        return DateRange.last(days ?? defaultDays, today: today)
    }
}
