import Foundation
import Toolkit

/// What `metadata_enrich` reports about free float.
struct FloatOutcome: Codable, Sendable {
    /// True when the float endpoint answered for at least one symbol.
    var available: Bool
    /// Symbols whose float was stored (a figure, or NULL when the API had none).
    var fetched: Int
    /// Symbols the API had no figure for.
    var missing: Int
    /// Symbols whose float request failed otherwise (their float is kept as it was).
    var failed: Int
    /// Why float stays NULL, when it is not available (plan without the endpoint, turned off).
    var reason: String?
}

/// Fetches free float for the symbols of one `metadata_enrich` run. The first 403 (a plan
/// without the endpoint) stops every later float request of the run; the details are still
/// stored, float stays as it was (NULL for new rows) and the result says why. Any other failed
/// float request is counted and never fails the symbol's details.
final class FloatFetcher: Sendable {
    private struct Counts {
        var notEntitled: String?
        var fetched = 0
        var missing = 0
        var failed = 0
    }

    private let state = LockedBox(Counts())
    private let source: any MarketDataSource
    private let enabled: Bool

    init(source: any MarketDataSource, enabled: Bool) {
        self.source = source
        self.enabled = enabled
    }

    /// The float of `symbol`: `fetched` false when it was not asked (turned off, not entitled).
    func fetch(_ symbol: String) async throws -> (value: Decimal?, fetched: Bool, requests: Int) {
        guard enabled, state.value.notEntitled == nil else { return (nil, false, 0) }
        do {
            let result = try await source.freeFloat(symbol: symbol)
            state.withLock { counts in
                counts.fetched += 1
                if result.value == nil { counts.missing += 1 }
            }
            return (result.value, true, result.requests)
        } catch where source.isNotEntitled(error) {
            let reason = source.describe(error)
            state.withLock { $0.notEntitled = $0.notEntitled ?? reason }
            return (nil, false, 1)
        } catch where !(error is CancellationError) {
            state.withLock { $0.failed += 1 }
            return (nil, false, 1)
        }
    }

    /// The summary for the job's result.
    var outcome: FloatOutcome {
        let counts = state.value
        if !enabled {
            return FloatOutcome(available: false, fetched: 0, missing: 0, failed: 0, reason: "turned off (market_data.float: false)")
        }
        if let notEntitled = counts.notEntitled, counts.fetched == 0 {
            return FloatOutcome(available: false, fetched: 0, missing: 0, failed: counts.failed,
                                reason: "the API plan does not include the float endpoint: \(notEntitled)")
        }
        return FloatOutcome(available: true, fetched: counts.fetched, missing: counts.missing, failed: counts.failed, reason: counts.notEntitled)
    }
}
