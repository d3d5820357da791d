import Foundation
import JobQueue
import Logging
import PostgresClient
import TestSupport

/// Collects the checkpoints a task saves.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var saved: [String] = []
    var entries: [String] { lock.withLock { saved } }
    func append(_ json: PostgresJSON) { lock.withLock { saved.append(json.text) } }
}

/// A context for running a task directly, as the worker would.
func makeContext(url: String, task: String, args: String = "{}", cancellation: CancellationFlag = CancellationFlag(),
                 previousProgress: String? = nil, progress: ProgressLog = ProgressLog()) -> JobContext {
    JobContext(
        jobID: 1, task: task, args: PostgresJSON(text: args), attempt: 1, runID: nil,
        previousProgress: previousProgress.map { PostgresJSON(text: $0) }, logger: Logger(label: "test"),
        conninfo: url, cancellation: cancellation, progressWriter: { progress.append($0) })
}

/// Decodes a task result into a JSON dictionary.
func object<T: TaskResult>(_ result: T) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(try PostgresJSON(encoding: result).text.utf8)) as? [String: Any] ?? [:]
}

/// The market-data tables of migration 0002 (another branch), as far as these tests need them.
func createMarketTables(_ conn: PostgresConnection) async throws {
    try await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS market_data_daily (
            symbol text NOT NULL, date date NOT NULL, open numeric NOT NULL DEFAULT 1, high numeric NOT NULL DEFAULT 1,
            low numeric NOT NULL DEFAULT 1, close numeric NOT NULL DEFAULT 1, volume numeric NOT NULL DEFAULT 1,
            vwap numeric, trades_count bigint, updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (symbol, date));
        CREATE INDEX IF NOT EXISTS market_data_daily_date_idx ON market_data_daily (date);
        """)
}
