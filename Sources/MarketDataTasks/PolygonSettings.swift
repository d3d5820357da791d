import Foundation
import Polygon
import Toolkit

/// The config file's `polygon:` section: the client's keys (`PolygonConfiguration`, in the
/// Polygon module) and those of the cluster-wide request budget in PostgreSQL (`PostgresAPIBudget`).
public struct PolygonSettings: Sendable {
    /// The client's settings (the API key and `POLYGON_BASE_URL` come from the environment).
    public var client: PolygonConfiguration
    /// `shared_budget`: one request budget for every worker through PostgreSQL. Default true.
    public var sharedBudget: Bool
    /// `shared_budget_margin`: how much the shared budget stretches its window (0...0.5). Default 0.05.
    public var sharedBudgetMargin: Double
    /// `shared_max_concurrent_requests`: requests in flight across the cluster (0: no
    /// cluster-wide cap). Default nil: the client's `max_concurrent_requests`.
    public var sharedMaxConcurrent: Int?

    /// Creates settings; every value has the documented default.
    public init(client: PolygonConfiguration = PolygonConfiguration(), sharedBudget: Bool = true, sharedBudgetMargin: Double = 0.05,
                sharedMaxConcurrent: Int? = nil) {
        self.client = client
        self.sharedBudget = sharedBudget
        self.sharedBudgetMargin = sharedBudgetMargin
        self.sharedMaxConcurrent = sharedMaxConcurrent
    }

    /// The cluster-wide budget of a worker connected to `conninfo`, or nil when `shared_budget` is off.
    public func budget(conninfo: String) -> PostgresAPIBudget? {
        guard sharedBudget else { return nil }
        return PostgresAPIBudget(
            conninfo: conninfo, requestsPerSecond: client.requestsPerSecond,
            maxInFlight: sharedMaxConcurrent ?? client.maxConcurrentRequests,
            margin: sharedBudgetMargin, lease: client.requestTimeout + 30)
    }
}

extension PolygonSettings: Decodable {
    /// The budget's keys of the `polygon:` section (the client declares its own).
    enum CodingKeys: String, CodingKey {
        case sharedBudget = "shared_budget", sharedBudgetMargin = "shared_budget_margin"
        case sharedMaxConcurrent = "shared_max_concurrent_requests"
    }

    /// Reads the `polygon:` section: the client's keys, then the budget's; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        self.init(client: try PolygonConfiguration(from: decoder))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sharedBudget = try c.setting(.sharedBudget, default: sharedBudget)
        sharedMaxConcurrent = try c.setting(.sharedMaxConcurrent, sharedMaxConcurrent, min: 0)
        sharedBudgetMargin = try c.setting(.sharedBudgetMargin, sharedBudgetMargin, min: 0)
        guard sharedBudgetMargin <= 0.5 else {
            throw c.invalid(.sharedBudgetMargin, "must be 0...0.5, got \(sharedBudgetMargin)")
        }
    }
}
