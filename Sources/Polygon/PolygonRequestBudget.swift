import Foundation

/// Permission to send requests, shared beyond this process: every worker on every host asks the
/// same budget (closebell's is kept in PostgreSQL, `PostgresAPIBudget` in MarketDataTasks), so
/// the plan's quota (requests per second, and requests in flight) holds for the whole cluster.
/// `PolygonClient` asks it for every request (retries and `next_url` pages included), after its
/// own per-process `PolygonRateLimiter`, and releases the permit when the answer is in.
/// The Polygon module only knows this protocol, not how a budget is kept.
public protocol PolygonRequestBudget: Sendable {
    /// Waits until one more request may start; throws when the budget cannot be consulted (the
    /// request is then not sent) or when the task is cancelled.
    func acquire() async throws -> PolygonBudgetPermit
    /// Gives the permit back once the request is over (answered or failed). Never throws: a
    /// permit that is not given back lapses by itself.
    func release(_ permit: PolygonBudgetPermit) async
}

/// One request's permission from a `PolygonRequestBudget`.
public struct PolygonBudgetPermit: Sendable, Equatable {
    /// The in-flight slot held, when the budget caps concurrency.
    public var slot: Int?
    /// Identifies the holder (only it can release the slot).
    public var holder: String

    /// Creates a permit.
    public init(slot: Int?, holder: String) {
        self.slot = slot
        self.holder = holder
    }
}
