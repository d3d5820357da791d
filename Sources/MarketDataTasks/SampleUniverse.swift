import Foundation
import PostgresClient

/// Fills `ticker_universe`: used by the demo to seed symbols, and by `universe_sync`.
public enum SampleUniverse {
    /// Adds `symbols` (active, source 'user' unless given) that are not yet in
    /// `ticker_universe`; existing rows are left exactly as they are. Returns rows added.
    @discardableResult
    public static func seed(_ connection: PostgresConnection, symbols: [String], source: String = "user") async throws -> Int {
        try await connection.withSession { try insertMissing(symbols, source: source, session: $0) }
    }

    /// The blocking form of `seed`: COPY into a staging table, then one INSERT … ON CONFLICT DO NOTHING.
    @discardableResult
    public static func insertMissing(_ symbols: [String], source: String, session: PostgresSession) throws -> Int {
        guard !symbols.isEmpty else { return 0 }
        return try session.transaction { tx in
            try tx.execute("CREATE TEMP TABLE closebell_universe_staging (symbol text) ON COMMIT DROP")
            try tx.copyIn("COPY closebell_universe_staging FROM STDIN") { writer in
                for symbol in symbols { try writer.writeRow([symbol]) }
            }
            let inserted = try tx.query("""
                INSERT INTO ticker_universe (symbol, source)
                SELECT DISTINCT symbol, $1 FROM closebell_universe_staging WHERE symbol <> ''
                ON CONFLICT (symbol) DO NOTHING
                """, [source])
            return inserted.affectedRows ?? 0
        }
    }
}
