import Foundation

/// Permission to send requests, shared beyond this process: every worker on every host asks the
/// same budget (closebell's is a PostgreSQL row, `PostgresAPIBudget` in MarketDataTasks), so
/// the plan's quota holds for the whole cluster. `PolygonClient` asks it for every request
/// (retries and `next_url` pages included), after its own per-process `PolygonRateLimiter`.
/// The Polygon module only knows this protocol, not how a budget is kept.
public protocol PolygonRequestBudget: Sendable {
    /// Waits until one more request may start; throws when the budget cannot be consulted (the
    /// request is then not sent) or when the task is cancelled.
    func acquire() async throws
}
