import Foundation
import Toolkit
import JobQueue
import Logging
import PostgresClient

/// A failed unit (symbol or date) and why, without secrets.
public struct UnitFailure: Codable, Sendable, Equatable {
    /// The symbol or date.
    public var unit: String
    /// The error's one-line description.
    public var reason: String
}

/// Counts of one kind of unit in a result.
public struct UnitCounts: Codable, Sendable, Equatable {
    /// Units finished in this job (this attempt and earlier ones).
    public var ok: Int = 0
    /// Units that failed.
    public var failed: Int = 0
    /// Units skipped by this attempt because an earlier attempt finished them.
    public var skipped: Int = 0
    /// The failures, at most `MarketDataSettings.maxNamedFailures` of them.
    public var failures: [UnitFailure] = []
}

/// The checkpoint of a batch task, saved after each unit in `maintenance_jobs.progress`.
/// Units are processed in sorted order; `doneThrough` is the largest unit such that it and all
/// smaller ones are finished, `doneAfter` the finished units beyond it (at most the number in
/// flight), so the checkpoint stays small however many symbols a job has.
struct BatchProgress: Codable, Equatable {
    var task: String
    var from: CivilDate?
    var to: CivilDate?
    var doneThrough: String?
    var doneAfter: [String] = []
    var counts = UnitCounts()
    var rowsWritten = 0
    var requests = 0
    var unitsWithoutData = 0

    enum CodingKeys: String, CodingKey {
        case task, from, to, counts, requests
        case unitsWithoutData = "units_without_data"
        case doneThrough = "done_through"
        case doneAfter = "done_after"
        case rowsWritten = "rows_written"
    }

    /// The date range the first attempt chose (a retry keeps it, even past midnight).
    var range: DateRange? {
        guard let from, let to else { return nil }
        return DateRange(from: from, to: to)
    }

    func isDone(_ unit: String) -> Bool {
        if let doneThrough, unit <= doneThrough { return true }
        return doneAfter.contains(unit)
    }

    /// Marks `unit` finished and advances `doneThrough` over the sorted `units`.
    mutating func markDone(_ unit: String, sortedUnits: [String]) {
        doneAfter.append(unit)
        // First index past the cursor (binary search: sortedUnits is sorted).
        var index = 0
        if let cursor = doneThrough {
            var low = 0, high = sortedUnits.count
            while low < high {
                let mid = (low + high) / 2
                if sortedUnits[mid] <= cursor { low = mid + 1 } else { high = mid }
            }
            index = low
        }
        while index < sortedUnits.count, doneAfter.contains(sortedUnits[index]) {
            doneThrough = sortedUnits[index]
            doneAfter.removeAll { $0 == sortedUnits[index] }
            index += 1
        }
        // Drop units already covered (they may be absent from sortedUnits).
        if let doneThrough { doneAfter.removeAll { $0 <= doneThrough } }
    }

    /// The progress a retried attempt resumes from, when it belongs to the same task.
    static func resume(_ json: PostgresJSON?, task: String, logger: Logger) -> BatchProgress? {
        guard let json, json.text != "null", json.text != "{}" else { return nil }
        do {
            let progress = try json.decode(BatchProgress.self)
            return progress.task == task ? progress : nil
        } catch {
            logger.warning("checkpoint_unreadable", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// A finished unit, as a child task of the batch hands it back.
struct UnitCompletion: Sendable {
    var unit: String
    var result: Result<UnitOutcome, any Error>
}

/// What one unit of a batch produced.
struct UnitOutcome: Sendable {
    var rows: Int
    var requests: Int
    /// True when the API had nothing for the unit (unknown symbol, no trading in the range).
    var empty = false
}

/// The batch has failed as a whole. Thrown so that the job is retried, and finally failed,
/// visibly. The rule: while no unit has succeeded, the batch stops at once on an error that hits
/// every unit (401/403: bad or unentitled API key), or after `abortAfterFailures` failures that
/// say the API as a whole is failing (429/5xx after the client's retries, transport errors);
/// and a batch whose units ALL failed (none succeeded) throws at the end. Otherwise failed units
/// are only counted and named in the result.
///
/// Retried (up to `max_attempts`) unless it stopped on an error no retry can cure (a bad API
/// key), or every unit failed with such an error (unknown symbols): then the job fails at once.
public struct MarketDataBatchFailed: JobFailure, CustomStringConvertible {
    /// The task.
    public let task: String
    /// Units that failed before the batch stopped.
    public let failed: Int
    /// The last error's description (no secrets).
    public let lastError: String
    /// Whether a later attempt may succeed (see above).
    public let retryable: Bool
    public var description: String {
        "\(task): all \(failed) unit(s) tried failed; last error: \(lastError)"
    }
}

/// The database write of a unit failed with a lost connection: retrying the job is the cure.
struct DatabaseUnavailable: Error, CustomStringConvertible {
    let underlying: PostgresError
    var description: String { "database connection lost: \(underlying)" }
}

/// Runs the units of a batch task with bounded concurrency: skips units an earlier attempt
/// finished, isolates per-unit failures, checkpoints after each unit, honours cancellation,
/// and applies the all-failed rule (see `MarketDataBatchFailed`).
struct BatchRunner {
    let context: JobContext
    let settings: MarketDataSettings
    let source: any MarketDataSource
    var progress: BatchProgress

    /// Runs `work` for every unit of `units` not finished yet.
    mutating func run(units: [String], concurrency: Int,
                      work: @escaping @Sendable (String) async throws -> UnitOutcome) async throws {
        let sorted = Array(Set(units)).sorted()
        let pending = sorted.filter { !progress.isDone($0) }
        progress.counts.skipped = sorted.count - pending.count
        var next = 0
        var cancelled = false
        var systemicFailures = 0
        var retryableFailures = 0
        let pacing = settings.pacing[context.task]
        let limit = max(1, pacing?.concurrency ?? concurrency)
        let delay = Duration.milliseconds(max(0, pacing?.delayMilliseconds ?? 0))
        try await withThrowingTaskGroup(of: UnitCompletion.self) { group in
            var inFlight = 0
            while true {
                // Keep up to `limit` units in flight; stop starting new ones once cancelled.
                while inFlight < limit, next < pending.count {
                    if context.isCancelled {
                        cancelled = true
                        break
                    }
                    if delay > .zero, next > 0 { try await Task.sleep(for: delay) }
                    let unit = pending[next]
                    next += 1
                    inFlight += 1
                    group.addTask {
                        do { return UnitCompletion(unit: unit, result: .success(try await work(unit))) } catch {
                            return UnitCompletion(unit: unit, result: .failure(error))
                        }
                    }
                }
                guard let completion = try await group.next() else { break }
                inFlight -= 1
                let unit = completion.unit
                switch completion.result {
                case .success(let outcome):
                    progress.counts.ok += 1
                    progress.rowsWritten += outcome.rows
                    progress.requests += outcome.requests
                    if outcome.empty { progress.unitsWithoutData += 1 }
                case .failure(let error):
                    if let pg = error as? PostgresError, pg.isConnectionLost {
                        group.cancelAll()
                        throw DatabaseUnavailable(underlying: pg)
                    }
                    if error is JobCancelled || error is CancellationError {
                        cancelled = true
                        continue
                    }
                    let reason = source.describe(error)
                    progress.requests += 1
                    progress.counts.failed += 1
                    if progress.counts.failures.count < settings.maxNamedFailures {
                        progress.counts.failures.append(UnitFailure(unit: unit, reason: reason))
                    }
                    context.logger.warning("unit_failed", metadata: ["unit": "\(unit)", "error": "\(reason)"])
                    if !source.isUnitSpecific(error) { systemicFailures += 1 }
                    if RetryPolicy.isRetryable(error) { retryableFailures += 1 }
                    if progress.counts.ok == 0
                        && (source.failsEverySymbol(error) || systemicFailures >= settings.abortAfterFailures) {
                        group.cancelAll()
                        try await giveUp(lastError: reason, retryable: RetryPolicy.isRetryable(error))
                    }
                }
                progress.markDone(unit, sortedUnits: sorted)
                try await context.checkpoint(progress)
            }
        }
        if cancelled || context.isCancelled { throw JobCancelled() }
        if progress.counts.ok == 0, progress.counts.failed > 0 {
            try await giveUp(lastError: progress.counts.failures.last?.reason ?? "unknown error", retryable: retryableFailures > 0)
        }
    }

    /// Forgets the failed units in the checkpoint (so the retry tries them again) and throws.
    private func giveUp(lastError: String, retryable: Bool) async throws -> Never {
        var reset = BatchProgress(task: progress.task, from: progress.from, to: progress.to)
        reset.requests = progress.requests
        try? await context.checkpoint(reset)
        throw MarketDataBatchFailed(task: context.task, failed: progress.counts.failed, lastError: lastError, retryable: retryable)
    }
}

/// The result of a batch task, stored in `maintenance_jobs.result`.
public struct BatchResult: TaskResult {
    var task: String
    var mode: String?
    var from: CivilDate?
    var to: CivilDate?
    var symbols: UnitCounts?
    var dates: UnitCounts?
    var symbolsWithoutBars: Int?
    var rowsWritten: Int
    var requests: Int
    var seconds: Double
    var attempt: Int
    /// Symbols with fewer bars than the longest statistics window, for which the range was
    /// extended back (see `HistoryNeed`).
    var historySymbols: Int?
    /// `metadata_enrich`: how free float went (see `FloatFetcher`).
    var float: FloatOutcome?

    enum CodingKeys: String, CodingKey {
        case task, mode, from, to, symbols, dates, requests, seconds, attempt, float
        case symbolsWithoutBars = "symbols_without_bars"
        case rowsWritten = "rows_written"
        case historySymbols = "history_symbols"
    }
}

/// Seconds since `start`, to the millisecond.
func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    let duration = ContinuousClock.now - start
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return (seconds * 1000).rounded() / 1000
}
