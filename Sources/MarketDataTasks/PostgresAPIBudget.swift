import Foundation
import Polygon
import PostgresClient

/// The cluster-wide Polygon budget: rows of `polygon_api_budget`, `polygon_api_grants` and
/// `polygon_api_inflight` that every worker process takes request starts from (SQL
/// `polygon_api_acquire`, one short transaction per call). Rate: a sliding-window log; a rate of
/// R requests per second becomes N = max(1, ⌊R⌋) starts per window of N / R seconds, stretched
/// by `margin` (default 5 %), which absorbs the delay between a grant and the request reaching
/// the API, so no one-second window at the API holds more than R requests. Concurrency: at most
/// `maxInFlight` requests hold a slot at once across the cluster (0: no cluster-wide cap); a
/// slot is given back after the answer (`polygon_api_release`) or lapses after `lease` seconds.
/// A caller that must wait sleeps the time the database names, then asks again.
///
/// One connection per process (a `DatabaseLink`), opened on first use and reopened after a
/// failure; a failure to reach the database fails the request with `APIBudgetUnavailable` (the
/// task's usual error handling applies). Waiting is asynchronous and cancellable.
public final class PostgresAPIBudget: PolygonRequestBudget, Sendable {
    private let link: DatabaseLink
    /// The budget's row name (several plans or keys can have several budgets).
    public let name: String
    /// Starts allowed per window (0: unlimited).
    public let slots: Int
    /// The window, in seconds.
    public let window: Double
    /// Requests in flight at once across the cluster (0: no cluster-wide cap).
    public let maxInFlight: Int
    /// Seconds after which an in-flight slot that was never given back lapses.
    public let lease: Double

    /// Creates a budget of `requestsPerSecond` (0 or less: unlimited) and `maxInFlight`
    /// concurrent requests (0: uncapped) for the database at `conninfo`, with its window
    /// stretched by `margin` (0...0.5, default 0.05) and in-flight slots lapsing after `lease` seconds.
    public init(conninfo: String, name: String = "polygon", requestsPerSecond: Double, maxInFlight: Int = 0,
                margin: Double = 0.05, lease: Double = 120) {
        // A grant is stamped inside polygon_api_acquire and the request leaves once the call
        // returns: waiting for the WAL flush would put a disk write (milliseconds, far more on a
        // busy host) between the two, the delay the margin has to absorb. The grants are
        // short-lived bookkeeping: a database crash can lose the last fraction of a second of
        // them, so the first window after it may grant that many extra starts.
        link = DatabaseLink(conninfo: conninfo, applicationName: "closebell api budget",
                            setup: { try $0.execute("SET synchronous_commit = off") })
        self.name = name
        let kept = min(0.5, max(0, margin.isNaN ? 0 : margin))
        if requestsPerSecond > 0, requestsPerSecond.isFinite {
            slots = max(1, Int(min(requestsPerSecond, 100_000).rounded(.down)))
            window = Double(slots) / requestsPerSecond * (1 + kept)
        } else {
            slots = 0
            window = 0
        }
        self.maxInFlight = max(0, maxInFlight)
        self.lease = lease.isFinite ? max(1, lease) : 120
    }

    public func acquire() async throws -> PolygonBudgetPermit {
        let holder = UUID().uuidString
        guard slots > 0 || maxInFlight > 0 else { return PolygonBudgetPermit(slot: nil, holder: holder) }
        while true {
            let row: PostgresRow?
            do {
                row = try await link.query("SELECT wait, slot FROM polygon_api_acquire($1, $2, $3, $4, $5, $6)",
                                           [name, max(slots, 1), window, maxInFlight, lease, holder]).first
            } catch {
                throw APIBudgetUnavailable(reason: String(describing: error))
            }
            let wait = try row?.decode("wait", as: Double.self) ?? 0
            if wait <= 0 {
                let slot = try row?.decodeIfPresent("slot", as: Int.self)
                return PolygonBudgetPermit(slot: slot.flatMap { $0 >= 0 ? $0 : nil }, holder: holder)
            }
            try await Task.sleep(for: .nanoseconds(Int64(min(wait, 3600) * 1_000_000_000)))
        }
    }

    public func release(_ permit: PolygonBudgetPermit) async {
        guard let slot = permit.slot else { return }
        _ = try? await link.query("SELECT polygon_api_release($1, $2, $3)", [name, slot, permit.holder])
    }

    /// Closes the connection (a later `acquire` opens a new one).
    public func close() async {
        await link.close()
    }
}

/// The shared API budget could not be consulted (the database is unreachable or the
/// migration is missing); the request was not sent.
public struct APIBudgetUnavailable: Error, CustomStringConvertible {
    /// What went wrong (no secrets: PostgreSQL errors carry no password).
    public let reason: String
    public var description: String { "the shared API budget (polygon_api_budget) is unavailable: \(reason)" }
}
