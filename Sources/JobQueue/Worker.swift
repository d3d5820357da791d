import Foundation
import Logging
import PostgresClient

/// Drains `maintenance_jobs`: claims due jobs in short transactions, runs up to `concurrency`
/// of them at once, proves they are alive with heartbeats, records outcomes in batches,
/// rescues jobs whose worker died, and prunes old finished jobs.
///
/// Connections: one listens for NOTIFY, one claims, one records heartbeats and outcomes, one
/// rescues and prunes. Each owns a thread (libpq blocks), and each reconnects on its own.
public final class Worker: @unchecked Sendable {
    /// The worker's settings.
    public let configuration: WorkerConfiguration
    /// Counters and recent activity, read by `/status` and `/metrics`.
    public let stats = WorkerStats()
    private let registry: TaskRegistry
    private let conninfo: String?
    private let logger: Logger
    /// Periodic work the worker runs beside its loops (for example the cycle scheduler).
    private let periodic: [PeriodicWork]

    private let claimLink: DatabaseLink
    private let ackLink: DatabaseLink
    private let listenLink: DatabaseLink
    private let housekeepingLink: DatabaseLink

    private let lock = NSLock()
    private var running: [Int64: RunningJob] = [:]
    private var pendingOutcomes: [(job: ClaimedJob, outcome: JobOutcome)] = []
    /// The batch the ack loop is writing now (still leased, so heartbeats keep covering it).
    private var writingOutcomes: [(job: ClaimedJob, outcome: JobOutcome)] = []
    private var draining = false
    /// Jobs that ended `cancelled` while the worker was stopping (their flags raised by `drain`).
    private var cancelledWhileDraining: Set<Int64> = []
    private var stopped = false
    private var lastActivity = Date()

    private let claimWake = WakeSignal()
    private let ackWake = WakeSignal()

    private struct RunningJob {
        let job: ClaimedJob
        let flag: CancellationFlag
        let handle: Task<Void, Never>
    }

    /// Creates a worker; call `run()` to start it.
    public init(conninfo: String?, registry: TaskRegistry, configuration: WorkerConfiguration, logger: Logger, periodic: [PeriodicWork] = []) {
        self.conninfo = conninfo
        self.registry = registry
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.workerID)"
        self.logger = logger
        self.periodic = periodic
        let min = configuration.reconnectMinSeconds, max = configuration.reconnectMaxSeconds
        claimLink = DatabaseLink(conninfo: conninfo, role: "claim", logger: logger, minDelay: min, maxDelay: max)
        // Outcomes advance cycle runs in a trigger that must see other workers' commits after
        // taking the run's lock: that needs READ COMMITTED, whatever the server's default is.
        ackLink = DatabaseLink(conninfo: conninfo, role: "ack", logger: logger, minDelay: min, maxDelay: max) { session in
            try session.execute("SET default_transaction_isolation = 'read committed'")
        }
        housekeepingLink = DatabaseLink(conninfo: conninfo, role: "housekeeping", logger: logger, minDelay: min, maxDelay: max)
        listenLink = DatabaseLink(conninfo: conninfo, role: "listen", logger: logger, minDelay: min, maxDelay: max) { session in
            try session.listen("maintenance_jobs")
        }
    }

    /// Asks the worker to stop: no more claims; running jobs get the grace period to finish,
    /// then are released back to the queue. Safe to call from any thread, more than once.
    public func requestStop() {
        let first = lock.withLock { () -> Bool in
            defer { draining = true }
            return !draining
        }
        if first { logger.info("worker_stopping", metadata: ["grace_s": "\(configuration.graceSeconds)"]) }
        claimWake.signal()
    }

    /// True while every loop is alive and the last database round trip succeeded (for /health).
    public var isHealthy: Bool { stats.loopsAlive && !lock.withLock({ stopped }) }

    /// Runs until `requestStop()` (or, with `exitWhenIdleSeconds`, until the queue stays idle),
    /// then drains and returns.
    public func run() async throws {
        try configuration.validate()
        logger.info("worker_started", metadata: [
            "concurrency": "\(configuration.concurrency)", "queue": "\(configuration.queue)",
            "lease_s": "\(configuration.leaseSeconds)", "tasks": "\(registry.names.joined(separator: ","))",
        ])
        stats.markLoops(alive: true)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listenLoop() }
            group.addTask { await self.ackLoop() }
            group.addTask { await self.heartbeatLoop() }
            group.addTask { await self.housekeepingLoop() }
            for work in periodic { group.addTask { await self.periodicLoop(work) } }
            await self.claimLoop()
            await self.drain()
            lock.withLock { stopped = true }
            ackWake.signal()
            group.cancelAll()
        }
        stats.markLoops(alive: false)
        await claimLink.close()
        await ackLink.close()
        await listenLink.close()
        await housekeepingLink.close()
        logger.info("worker_stopped", metadata: ["jobs_run": "\(stats.snapshot().jobsFinished)"])
    }

    // MARK: - Claiming

    private func claimLoop() async {
        let config = configuration
        // Claim in batches: while jobs are running, wait until at least half a batch of slots
        // is free, so a busy worker claims many rows per statement instead of one at a time.
        let batchThreshold = max(1, min(config.claimBatchSize, config.concurrency) / 2)
        while !lock.withLock({ draining }) {
            let busy = lock.withLock { running.count }
            let free = config.concurrency - busy
            if free <= 0 || (busy > 0 && free < batchThreshold) {
                await claimWake.wait(timeout: config.pollSeconds)
                continue
            }
            let jobs: [ClaimedJob]
            do {
                let worker = config.workerID, queue = config.queue, lease = config.leaseSeconds
                let limit = min(free, config.claimBatchSize)
                jobs = try await claimLink.run { try QueueStore.claim($0, worker: worker, queue: queue, limit: limit, leaseSeconds: lease) }
            } catch {
                logger.error("claim_failed", metadata: ["error": "\(error)"])
                // A lost connection has already backed off in the link; any other error (missing
                // table, permissions, a timeout) would otherwise be retried in a tight loop.
                if !((error as? PostgresError)?.isConnectionLost ?? false) {
                    await claimWake.wait(timeout: config.pollSeconds)
                }
                continue
            }
            if jobs.isEmpty {
                if let idle = config.exitWhenIdleSeconds, lock.withLock({ running.isEmpty && pendingOutcomes.isEmpty && writingOutcomes.isEmpty }),
                   Date().timeIntervalSince(lock.withLock { lastActivity }) >= idle {
                    logger.info("worker_idle_exit", metadata: ["idle_s": "\(idle)"])
                    lock.withLock { draining = true }
                    break
                }
                let wait = config.exitWhenIdleSeconds.map { min($0, config.pollSeconds) } ?? config.pollSeconds
                await claimWake.wait(timeout: wait)
                continue
            }
            lock.withLock { lastActivity = Date() }
            for job in jobs { start(job) }
        }
    }

    private func start(_ job: ClaimedJob) {
        let flag = CancellationFlag()
        lock.lock()
        let handle = Task { await self.execute(job, flag: flag) }
        running[job.id] = RunningJob(job: job, flag: flag, handle: handle)
        lock.unlock()
    }

    // MARK: - Running a job

    private func execute(_ job: ClaimedJob, flag: CancellationFlag) async {
        var jobLogger = logger
        jobLogger[metadataKey: "job_id"] = "\(job.id)"
        jobLogger[metadataKey: "task"] = "\(job.task)"
        jobLogger[metadataKey: "attempt"] = "\(job.attempt)"
        if let runID = job.runID { jobLogger[metadataKey: "run_id"] = "\(runID)" }
        let worker = configuration.workerID
        let ackLink = self.ackLink
        let context = JobContext(
            jobID: job.id, task: job.task, args: job.args, attempt: job.attempt, runID: job.runID,
            previousProgress: job.progress, logger: jobLogger, conninfo: conninfo, cancellation: flag,
            progressWriter: { progress in
                try await ackLink.run { try QueueStore.saveProgress($0, worker: worker, id: job.id, attempt: job.attempt, progress: progress) }
            })
        let started = Date()
        jobLogger.debug("task_started")
        let outcome: JobOutcome
        if let task = registry.task(named: job.task) {
            do {
                let result = try await task.run(context)
                outcome = flag.isSet ? .cancelled : .succeeded(result: result.json)
            } catch {
                if flag.isSet {
                    outcome = .cancelled
                } else {
                    let record = JobErrorRecord(attempt: job.attempt, error: error, worker: worker)
                    let retryable = !(error is InvalidJobArguments)
                    outcome = .failed(error: record, retryable: retryable, retryDelay: configuration.retryDelay(afterAttempt: job.attempt))
                }
            }
        } else {
            let error = UnknownTask(task: job.task, known: registry.names)
            outcome = .failed(error: JobErrorRecord(attempt: job.attempt, error: error, worker: worker), retryable: false, retryDelay: 0)
        }
        let seconds = Date().timeIntervalSince(started)
        stats.recordFinished(task: job.task, outcome: outcome, seconds: seconds)
        // A number (microsecond precision), not text formatted per line: this is the hot path.
        let duration = Logger.MetadataValue.stringConvertible((seconds * 1_000_000).rounded() / 1_000_000)
        switch outcome {
        case .succeeded:
            jobLogger.info("task_completed", metadata: ["duration_s": duration])
        case .failed(let record, let retryable, let delay):
            let willRetry = retryable && job.attempt < job.maxAttempts
            jobLogger.error("task_failed", metadata: [
                "duration_s": duration, "error": "\(record.error)",
                "retry_in_s": willRetry ? "\(String(format: "%.1f", delay))" : "none",
            ])
        case .cancelled:
            jobLogger.warning("task_cancelled", metadata: ["duration_s": duration])
        }
        // The slot frees as soon as the task is done; the outcome is written by the ack loop,
        // batched with others (the job keeps its lease until then).
        lock.withLock {
            running[job.id] = nil
            pendingOutcomes.append((job, outcome))
            if case .cancelled = outcome, draining { cancelledWhileDraining.insert(job.id) }
            lastActivity = Date()
        }
        ackWake.signal()
        claimWake.signal()
    }

    // MARK: - Recording outcomes

    /// Writes outcomes in batches: while one batch is being written, new outcomes gather for
    /// the next, so a busy worker commits many jobs per transaction (group commit).
    private func ackLoop() async {
        while true {
            let batch = lock.withLock { () -> [(job: ClaimedJob, outcome: JobOutcome)] in
                defer {
                    writingOutcomes = pendingOutcomes
                    pendingOutcomes.removeAll()
                }
                return pendingOutcomes
            }
            if batch.isEmpty {
                if lock.withLock({ stopped }) { return }
                await ackWake.wait(timeout: 1)
                continue
            }
            await write(batch)
        }
    }

    private func write(_ batch: [(job: ClaimedJob, outcome: JobOutcome)]) async {
        await store(batch)
        lock.withLock {
            writingOutcomes.removeAll()
            lastActivity = Date()
        }
    }

    /// Writes outcomes, retrying while the connection is lost. When the server refuses a batch
    /// (a result or error text jsonb cannot hold, such as `\u0000`; a failing trigger), each
    /// outcome is written on its own, so one bad outcome never holds back the others; one the
    /// server keeps refusing is recorded as a failed attempt naming why, and if even that is
    /// refused it is left to lapse and be rescued. The ack loop never stalls on one batch.
    private func store(_ batch: [(job: ClaimedJob, outcome: JobOutcome)], replaced: Bool = false) async {
        let worker = configuration.workerID
        // One statement for successes and failures alike: see `QueueStore.complete`.
        let jobs = batch.map { (id: $0.job.id, attempt: $0.job.attempt, outcome: $0.outcome) }
        let expected = batch.filter { if case .cancelled = $0.outcome { return false } else { return true } }.map(\.job.id)
        // Completions of cycle jobs may end their run (a trigger does that); reading which runs
        // this transaction ended takes a transaction, so only batches with cycle jobs pay for it.
        let runIDs = Array(Set(batch.compactMap(\.job.runID)))
        var tries = 0
        while !expected.isEmpty {
            do {
                let (states, finishedRuns) = try await ackLink.run { session -> ([Int64: String], [FinishedCycleRun]) in
                    if runIDs.isEmpty { return (try QueueStore.complete(session, worker: worker, jobs: jobs), []) }
                    return try session.transaction { tx in
                        (try QueueStore.complete(tx, worker: worker, jobs: jobs), try QueueStore.cycleRunsFinishedNow(tx, among: runIDs))
                    }
                }
                for run in finishedRuns {
                    logger.info("maintenance_cycle_finished", metadata: [
                        "run_id": "\(run.runID)", "cycle": "\(run.cycle)", "period": "\(run.period)", "state": "\(run.state)",
                        "duration_s": "\(String(format: "%.3f", run.seconds))", "completed": "\(run.succeeded)",
                        "failed": "\(run.failed)", "total": "\(run.total)", "success": "\(run.state == "succeeded")",
                    ])
                }
                let lost = expected.filter { states[$0] == nil }
                if !lost.isEmpty {
                    logger.warning("completion_ignored", metadata: [
                        "job_ids": "\(lost)", "reason": "the lease was lost (job rescued, cancelled or finished elsewhere)",
                    ])
                }
                if states.values.contains("available") {
                    _ = try? await ackLink.run { try $0.query("SELECT pg_notify('maintenance_jobs', '')") }
                }
                return
            } catch {
                logger.error("completion_failed", metadata: ["error": "\(error)", "jobs": "\(batch.count)"])
                // Outcomes stay in hand; the link reconnects with backoff before the next try.
                // A worker that is stopping gives up after a while: the leases then lapse and
                // the jobs are rescued (run again), never lost.
                tries += 1
                if lock.withLock({ draining }) && tries >= 20 { return }
                if (error as? PostgresError)?.isConnectionLost ?? false { continue }
                if batch.count > 1 {
                    for one in batch { await store([one]) }
                    return
                }
                if tries >= 3, let first = batch.first {
                    let job = first.job, outcome = first.outcome
                    if replaced {
                        logger.error("completion_abandoned", metadata: [
                            "job_id": "\(job.id)", "note": "its lease will lapse and it will be rescued",
                        ])
                        return
                    }
                    let retryable: Bool
                    if case .failed(_, let canRetry, _) = outcome { retryable = canRetry } else { retryable = true }
                    var record = JobErrorRecord(attempt: job.attempt, error: OutcomeNotStored(underlying: error), worker: worker)
                    record.sqlstate = (error as? PostgresError)?.sqlState
                    await store([(job, .failed(error: record, retryable: retryable, retryDelay: configuration.retryDelay(afterAttempt: job.attempt)))], replaced: true)
                    return
                }
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    // MARK: - Heartbeats and cancellation

    private func heartbeatLoop() async {
        let interval = configuration.effectiveHeartbeatSeconds
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
            if Task.isCancelled { return }
            let held = lock.withLock {
                running.values.map { (id: $0.job.id, attempt: $0.job.attempt) }
                    + (pendingOutcomes + writingOutcomes).map { (id: $0.job.id, attempt: $0.job.attempt) }
            }
            guard !held.isEmpty else { continue }
            let worker = configuration.workerID, lease = configuration.leaseSeconds
            do {
                let alive = try await ackLink.run { try QueueStore.heartbeat($0, worker: worker, jobs: held, leaseSeconds: lease) }
                stats.markHeartbeat()
                let lost = held.filter { !alive.contains($0.id) }
                guard !lost.isEmpty else { continue }
                // A job that finished meanwhile is not lost: only those still running here, in
                // the same attempt (a retried job may have been claimed again since the snapshot).
                let victims = lock.withLock {
                    lost.compactMap { held in running[held.id].flatMap { $0.job.attempt == held.attempt ? $0 : nil } }
                }
                for victim in victims {
                    logger.warning("task_cancel_requested", metadata: [
                        "job_id": "\(victim.job.id)", "task": "\(victim.job.task)",
                        "reason": "state set to cancelled, or the lease was lost",
                    ])
                    victim.flag.set()
                    victim.handle.cancel()
                }
            } catch {
                logger.error("heartbeat_failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: - Notifications

    private func listenLoop() async {
        while !Task.isCancelled {
            do {
                let notifications = try await listenLink.run { try $0.waitForNotifications(timeout: 0.5) }
                if !notifications.isEmpty { claimWake.signal() }
            } catch {
                if Task.isCancelled { return }
                // After a reconnect, notifications may have been missed: look now.
                claimWake.signal()
            }
        }
    }

    // MARK: - Rescue and prune

    private func housekeepingLoop() async {
        var lastPrune = Date.distantPast
        let config = configuration
        while !Task.isCancelled {
            do {
                let rescued = try await housekeepingLink.run { try QueueStore.rescueExpired($0, rescuer: config.workerID) }
                if rescued.requeued + rescued.failed > 0 {
                    logger.warning("jobs_rescued", metadata: ["requeued": "\(rescued.requeued)", "failed": "\(rescued.failed)"])
                }
                if Date().timeIntervalSince(lastPrune) >= config.pruneIntervalSeconds {
                    let age = config.pruneAfterSeconds
                    let pruned = try await housekeepingLink.run { try QueueStore.pruneFinished($0, olderThanSeconds: age) }
                    lastPrune = Date()
                    if pruned > 0 { logger.info("jobs_pruned", metadata: ["rows": "\(pruned)"]) }
                }
                stats.markDatabaseOK()
            } catch {
                stats.markDatabaseError("\(error)")
                logger.error("housekeeping_failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(config.rescueSeconds * 1_000_000_000))
        }
    }

    private func periodicLoop(_ work: PeriodicWork) async {
        while !Task.isCancelled {
            do {
                try await work.body(logger)
            } catch {
                logger.error("periodic_failed", metadata: ["name": "\(work.name)", "error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(work.intervalSeconds * 1_000_000_000))
        }
    }

    // MARK: - Shutdown

    private func drain() async {
        let deadline = Date().addingTimeInterval(configuration.graceSeconds)
        while Date() < deadline, lock.withLock({ !running.isEmpty }) {
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        let leftovers = lock.withLock { Array(running.values) }
        if !leftovers.isEmpty {
            for job in leftovers {
                job.flag.set()
                job.handle.cancel()
            }
            let worker = configuration.workerID
            // Give the cancelled tasks a moment to end. A task that finished before its flag
            // went up has a real outcome queued: releasing it would put a finished job back and
            // make it run again. Released are the jobs still running and those that ended
            // because of the flag (outcome `cancelled`, which is never written).
            let ids = Set(leftovers.map(\.job.id))
            let settle = Date().addingTimeInterval(min(2, max(0.1, configuration.graceSeconds)))
            while Date() < settle, lock.withLock({ !ids.isDisjoint(with: running.keys) }) {
                try? await Task.sleep(nanoseconds: 10_000_000)
            }
            let held = lock.withLock {
                leftovers.filter { running[$0.job.id] != nil || cancelledWhileDraining.contains($0.job.id) }
                    .map { (id: $0.job.id, attempt: $0.job.attempt) }
            }
            do {
                let released = try await ackLink.run { try QueueStore.release($0, worker: worker, jobs: held) }
                logger.warning("jobs_released", metadata: ["count": "\(released)", "job_ids": "\(held.map(\.id))"])
            } catch {
                logger.error("release_failed", metadata: ["error": "\(error)", "note": "their leases will lapse and they will be rescued"])
            }
            lock.withLock { for job in leftovers { running[job.job.id] = nil } }
        }
        // Let the ack loop write what finished.
        while lock.withLock({ !pendingOutcomes.isEmpty || !writingOutcomes.isEmpty }) {
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}

/// Work a worker runs periodically beside its loops (the cycle scheduler, size recording).
public struct PeriodicWork: Sendable {
    /// A name for logs.
    public let name: String
    /// Seconds between runs.
    public let intervalSeconds: Double
    /// The work; errors are logged and the next run happens on schedule.
    public let body: @Sendable (Logger) async throws -> Void

    /// Creates periodic work.
    public init(name: String, intervalSeconds: Double, body: @escaping @Sendable (Logger) async throws -> Void) {
        self.name = name
        self.intervalSeconds = intervalSeconds
        self.body = body
    }
}

/// The database refused to store an attempt's outcome (its result or error), recorded in
/// place of that outcome.
public struct OutcomeNotStored: Error, CustomStringConvertible {
    /// Why the database refused it.
    public let underlying: any Error
    public var description: String { "the attempt's outcome could not be stored: \(underlying)" }
}

/// A job named a task this worker does not know.
public struct UnknownTask: Error, CustomStringConvertible {
    /// The name in the job row.
    public let task: String
    /// The tasks this worker runs.
    public let known: [String]
    public var description: String { "unknown task \"\(task)\"; this worker runs: \(known.joined(separator: ", "))" }
}
