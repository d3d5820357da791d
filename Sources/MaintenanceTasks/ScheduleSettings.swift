import Foundation
import Toolkit

/// Settings of `worker --schedule` (config section `schedule:`).
public struct ScheduleSettings: Sendable, Equatable {
    /// Seconds between the scheduler's checks for due cycles. Default 60.
    public var intervalSeconds: Double

    /// Creates settings; every value has the documented default.
    public init(intervalSeconds: Double = 60) {
        self.intervalSeconds = intervalSeconds
    }
}

extension ScheduleSettings: Decodable {
    /// The keys of the `schedule:` section.
    enum CodingKeys: String, CodingKey {
        case intervalSeconds = "interval_seconds"
    }

    /// Reads the `schedule:` section; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        intervalSeconds = try c.setting(.intervalSeconds, intervalSeconds, min: 1)
    }
}
