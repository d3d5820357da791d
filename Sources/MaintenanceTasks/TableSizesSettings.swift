import Foundation
import Toolkit

/// Settings of the `table_sizes` task (config section `table_sizes:`).
public struct TableSizesSettings: Sendable, Equatable {
    /// Extra tables measured, beyond `TableSizesTask.defaultTables` and every retention and
    /// vacuum table. Default none.
    public var tables: [String]

    /// Creates settings; every value has the documented default.
    public init(tables: [String] = []) {
        self.tables = tables
    }
}

extension TableSizesSettings: Decodable {
    /// The keys of the `table_sizes:` section.
    enum CodingKeys: String, CodingKey {
        case tables
    }

    /// Reads the `table_sizes:` section; absent keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tables = try c.setting(.tables, default: tables)
    }
}
