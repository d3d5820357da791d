import Foundation
import Toolkit
import PostgresClient

/// Writes of the smaller market-data tables (earnings, quarantine, completeness), each ONE
/// statement fed by a JSON array (`jsonb_to_recordset`), so a symbol's rows change atomically.
/// All functions block: call them inside `PostgresConnection.withSession`.
public enum MarketDataStore {
    /// Replaces `symbol`'s earnings dated `from` through `to` with `events`: rows the source no
    /// longer lists in that window are deleted (a moved date leaves no stale row), the others
    /// are upserted; unchanged rows are not rewritten. Returns rows inserted, changed or deleted.
    @discardableResult
    public static func replaceEarnings(symbol: String, from: CivilDate, to: CivilDate, events: [EarningsEvent],
                                       session: PostgresSession) throws -> Int {
        let rows: [[String: Any]] = events.filter { $0.symbol == symbol }.map { event in
            [
                "date": event.date.description, "time_of_day": event.timeOfDay.rawValue,
                "report_time": event.time.map { $0 as Any } ?? NSNull(),
                "fiscal_period": event.fiscalPeriod.map { $0 as Any } ?? NSNull(),
                "fiscal_year": event.fiscalYear.map { $0 as Any } ?? NSNull(), "confirmed": event.confirmed,
                "eps_estimate": event.epsEstimate.map { $0.description as Any } ?? NSNull(),
                "eps_actual": event.epsActual.map { $0.description as Any } ?? NSNull(),
            ]
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: rows), as: UTF8.self)
        let result = try session.query("""
            WITH incoming AS (
                SELECT DISTINCT ON (date) *
                  FROM jsonb_to_recordset($1::jsonb) AS r(date date, time_of_day text, report_time text, fiscal_period text,
                                                          fiscal_year integer, confirmed boolean, eps_estimate numeric, eps_actual numeric)
                 WHERE date BETWEEN $3::date AND $4::date
                 ORDER BY date
            ), removed AS (
                DELETE FROM ticker_earnings e
                 WHERE e.symbol = $2 AND e.date BETWEEN $3::date AND $4::date
                   AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.date = e.date)
                RETURNING 1
            ), written AS (
                INSERT INTO ticker_earnings AS e (symbol, date, time_of_day, report_time, fiscal_period, fiscal_year, confirmed,
                                                  eps_estimate, eps_actual, updated_at)
                SELECT $2, date, time_of_day, CASE WHEN report_time ~ '^\\d{1,2}:\\d{2}(:\\d{2})?$' THEN report_time::time END,
                       fiscal_period, fiscal_year, confirmed, eps_estimate, eps_actual, now()
                  FROM incoming
                ON CONFLICT (symbol, date) DO UPDATE
                   SET time_of_day = EXCLUDED.time_of_day, report_time = EXCLUDED.report_time, fiscal_period = EXCLUDED.fiscal_period,
                       fiscal_year = EXCLUDED.fiscal_year, confirmed = EXCLUDED.confirmed, eps_estimate = EXCLUDED.eps_estimate,
                       eps_actual = EXCLUDED.eps_actual, updated_at = EXCLUDED.updated_at
                 WHERE (e.time_of_day, e.report_time, e.fiscal_period, e.fiscal_year, e.confirmed, e.eps_estimate, e.eps_actual)
                       IS DISTINCT FROM (EXCLUDED.time_of_day, EXCLUDED.report_time, EXCLUDED.fiscal_period, EXCLUDED.fiscal_year,
                                         EXCLUDED.confirmed, EXCLUDED.eps_estimate, EXCLUDED.eps_actual)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM removed) + (SELECT count(*) FROM written) AS n
            """, texts: [json, symbol, from.description, to.description])
        return try result.first?.decode("n", as: Int.self) ?? 0
    }
}
