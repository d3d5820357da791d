import Foundation
import Toolkit
import Logging
import PostgresClient

/// Drains `maintenance_jobs`: claims due jobs in short transactions, runs up to `concurrency`
/// of them at once, proves they are alive with heartbeats, records outcomes in batches,
/// rescues jobs whose worker died, and prunes old finished jobs.
///
/// Connections: one listens for NOTIFY, one claims, one records heartbeats and outcomes, one
/// rescues and prunes. Each owns a thread (libpq blocks), and each reconnects on its own.
///
/// Each claim is tracked by its claim token with a `JobLifecycle`; a job runs in its own Swift
/// task, and stopping a job (cancelled, lease lost, time limit, shutdown) cancels that task,
/// which cancels its SQL statement on the server and stops its child processes.
public final class Worker: Sendable {
    /// The worker's settings.
    public let configuration: WorkerConfiguration
    /// Counters and recent activity, read by `/status` and `/metrics`.
    public let stats = WorkerStats()
    private let registry: TaskRegistry
    /// The user's connection string (handed to tasks, e.g. for pg_dump).
    private let conninfo: String?
    private let logger: Logger
    /// Periodic work the worker runs beside its loops (for example the cycle scheduler).
    private let periodic: [PeriodicWork]

    private let claimLink: DatabaseLink
    private let ackLink: DatabaseLink
    private let listenLink: DatabaseLink
    private let housekeepingLink: DatabaseLink

    /// What the loops and the job tasks share.
    private struct State {
        /// Every claim this worker holds, by claim token, until its outcome or release is written.
        var claims: [Int64: Claim] = [:]
        var pendingOutcomes: [(job: ClaimedJob, outcome: JobOutcome)] = []
        var pendingReleases: [ClaimedJob] = []
        /// Outcomes and releases the ack loop is writing now.
        var writing = 0
        var draining = false
        /// A second stop request: skip the rest of the grace period.
        var stopNow = false
        var stopped = false
        var lastActivity = Date()
        /// False after a database error until a heartbeat renewed every lease held: rescuing
        /// others' lapsed jobs before that could take this worker's own jobs after an outage.
        var leasesConfirmed = true

        /// Tasks started and not ended (the slots in use).
        var activeTasks: Int { claims.values.filter { $0.lifecycle.taskActive }.count }

        /// Queues what an action writes.
        mutating func apply(_ action: JobLifecycle.Action, to claim: Claim) {
            switch action {
            case .writeOutcome(let outcome):
                pendingOutcomes.append((claim.job, outcome))
            case .release:
                pendingReleases.append(claim.job)
            case .forget:
                claims[claim.job.claimToken] = nil
            case .none, .startTask, .cancelTask:
                break
            }
        }
    }

    private let state = LockedBox(State())

    private let claimWake = WakeSignal()
    private let ackWake = WakeSignal()
    private let drainWake = WakeSignal()

    /// One claim: the job, its lifecycle, and once started, its task.
    private struct Claim {
        let job: ClaimedJob
        var lifecycle = JobLifecycle()
        let flag = CancellationFlag()
        var handle: Task<Void, Never>?
        var timer: Task<Void, Never>?
        let logger: Logger
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
        // Every connection notices a dead peer in seconds, and a lost one is reopened with backoff.
        let policy = DatabaseLink.Policy(
            keepalive: configuration.keepalive, minDelaySeconds: configuration.reconnectMinSeconds,
            maxDelaySeconds: configuration.reconnectMaxSeconds)
        // READ COMMITTED whatever the server's default is: outcomes advance cycle runs in a
        // trigger that must see other workers' commits after taking the run's lock, and the
        // claim's SKIP LOCKED and the id-ordered locks are written for it (no 40001 under it).
        let readCommitted: @Sendable (PostgresSession) throws -> Void = { session in
            try session.execute("SET default_transaction_isolation = 'read committed'")
        }
        func link(_ role: String, setup: @escaping @Sendable (PostgresSession) throws -> Void) -> DatabaseLink {
            DatabaseLink(conninfo: conninfo, applicationName: "closebell worker (\(role))", policy: policy, setup: setup) { [logger] event in
                switch event {
                case .unavailable(let error, let delay):
                    logger.warning("database_unavailable", metadata: [
                        "connection": "\(role)", "error": "\(error)", "retry_in_s": "\(String(format: "%.2f", delay))",
                    ])
                case .reconnected:
                    logger.info("database_reconnected", metadata: ["connection": "\(role)"])
                }
            }
        }
        claimLink = link("claim", setup: readCommitted)
        ackLink = link("ack", setup: readCommitted)
        housekeepingLink = link("housekeeping", setup: readCommitted)
        listenLink = link("listen") { session in try QueueStore.listen(session) }
    }

    /// Asks the worker to stop: no more claims; running jobs get the grace period to finish,
    /// then are cancelled and, once their tasks ended, released back to the queue. A second
    /// call skips what is left of the grace period. Safe to call from any thread.
    public func requestStop() {
        let (first, second) = state.withLock { s -> (Bool, Bool) in
            defer {
                if s.draining { s.stopNow = true }
                s.draining = true
            }
            return (!s.draining, s.draining && !s.stopNow)
        }
        if first { logger.info("worker_stopping", metadata: ["grace_s": "\(configuration.graceSeconds)"]) }
        if second { logger.warning("worker_stopping_now", metadata: ["note": "second stop request: running jobs are cancelled and released now"]) }
        claimWake.signal()
        drainWake.signal()
    }

    /// Upserts the registry's rows of `maintenance_task_types` (`TaskRegistry.publish`). A
    /// failure (no privilege, the database away) is logged and the worker goes on with the rows
    /// already there.
    private func publishTaskTypes() async {
        let registry = self.registry
        do {
            let connection = try await PostgresConnection.connect(conninfo, applicationName: "closebell worker (task types)")
            do {
                let changed = try await connection.withSession { try registry.publish($0) }
                await connection.close()
                if !changed.isEmpty { logger.info("task_types_published", metadata: ["tasks": "\(changed.joined(separator: ","))"]) }
            } catch {
                await connection.close()
                throw error
            }
        } catch {
            logger.warning("task_types_not_published", metadata: ["error": "\(error)"])
        }
    }

    /// True while every loop is alive and the last database round trip succeeded (for /health).
    public var isHealthy: Bool { stats.loopsAlive && !state.withLock({ s in s.stopped }) }

    /// Runs until `requestStop()` (or, with `exitWhenIdleSeconds`, until the queue stays idle),
    /// then drains and returns.
    public func run() async throws {
        try configuration.validate()
        // A limit for a task this worker does not run is a misspelt name (the defaults aside).
        let configured = configuration.timeLimits.filter { WorkerConfiguration.defaultTimeLimits[$0.key] != $0.value }
        if let unknown = configured.keys.sorted().first(where: { registry.task(named: $0) == nil }) {
            throw WorkerConfigurationError(key: "time_limits.\(unknown)", reason: "no such task; this worker runs: \(registry.names.joined(separator: ", "))")
        }
        await publishTaskTypes()
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
            state.withLock { s in s.stopped = true }
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
        while !state.withLock({ s in s.draining }) {
            let busy = state.withLock { s in s.activeTasks }
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
                if let idle = config.exitWhenIdleSeconds, state.withLock({ s in s.claims.isEmpty && s.writing == 0 }),
                   Date().timeIntervalSince(state.withLock { s in s.lastActivity }) >= idle {
                    logger.info("worker_idle_exit", metadata: ["idle_s": "\(idle)"])
                    state.withLock { s in s.draining = true }
                    break
                }
                let wait = config.exitWhenIdleSeconds.map { min($0, config.pollSeconds) } ?? config.pollSeconds
                await claimWake.wait(timeout: wait)
                continue
            }
            state.withLock { s in s.lastActivity = Date() }
            for job in jobs { start(job) }
        }
    }

    private func start(_ job: ClaimedJob) {
        var jobLogger = logger
        jobLogger[metadataKey: "job_id"] = "\(job.id)"
        jobLogger[metadataKey: "task"] = "\(job.task)"
        jobLogger[metadataKey: "attempt"] = "\(job.attempt)"
        if let runID = job.runID { jobLogger[metadataKey: "run_id"] = "\(runID)" }
        let limit = configuration.timeLimit(for: job.task)
        let token = job.claimToken
        let taskLogger = jobLogger
        state.withLock { s in
            var claim = Claim(job: job, logger: taskLogger)
            // Claimed while a stop began: the lifecycle releases it instead of starting it.
            let action = s.draining ? claim.lifecycle.stop(.shutdown) : claim.lifecycle.start()
            if action == .startTask {
                let flag = claim.flag
                claim.handle = Task { await self.execute(job, flag: flag, logger: taskLogger) }
                claim.timer = Task {
                    // Capped at about 30 years: a larger limit would overflow the nanoseconds.
                    try? await Task.sleep(nanoseconds: UInt64(min(limit, 1e9) * 1_000_000_000))
                    if !Task.isCancelled { self.stop(token: token, reason: .timeLimit(seconds: limit)) }
                }
            }
            s.claims[token] = claim
            if action == .release { s.pendingReleases.append(job) }
        }
        ackWake.signal()
    }

    // MARK: - Lifecycle events

    /// Delivers a stop request to one claim and performs the lifecycle's action.
    private func stop(token: Int64, reason: StopReason) {
        let effect = state.withLock { s -> (action: JobLifecycle.Action, claim: Claim)? in
            guard var claim = s.claims[token] else { return nil }
            let action = claim.lifecycle.stop(reason)
            s.claims[token] = claim
            s.apply(action, to: claim)
            return (action, claim)
        }
        guard let (action, claim) = effect, action == .cancelTask else { return }
        switch reason {
        case .claimLost:
            claim.logger.warning("task_cancel_requested", metadata: ["reason": "state set to cancelled, or the lease was lost"])
        case .timeLimit(let seconds):
            claim.logger.warning("task_time_limit_exceeded", metadata: ["limit_s": "\(seconds)"])
        case .shutdown:
            claim.logger.warning("task_cancel_requested", metadata: ["reason": "worker stopping: grace period over, or a second signal"])
        }
        // Cancelling the Swift task cancels the statement it runs on the server (PQcancel) and
        // stops its child processes; the flag tells tasks polling `context.isCancelled`.
        claim.flag.set()
        claim.handle?.cancel()
    }

    // MARK: - Running a job

    private func execute(_ job: ClaimedJob, flag: CancellationFlag, logger jobLogger: Logger) async {
        let worker = configuration.workerID
        let ackLink = self.ackLink
        let context = JobContext(
            jobID: job.id, task: job.task, args: job.args, attempt: job.attempt, runID: job.runID,
            previousProgress: job.progress, logger: jobLogger, conninfo: conninfo, cancellation: flag,
            progressWriter: { progress in
                // A deadlock or serialization failure is retried, never the task's failure.
                var tries = 0
                while true {
                    do {
                        return try await ackLink.run { try QueueStore.saveProgress($0, id: job.id, token: job.claimToken, progress: progress) }
                    } catch let error as PostgresError where error.isTransient && tries < 5 {
                        tries += 1
                    }
                }
            },
            timeouts: configuration.taskTimeouts, keepalive: configuration.keepalive)
        let started = Date()
        jobLogger.debug("task_started")
        let result: JobOutcome
        if let task = registry.task(named: job.task) {
            do {
                result = .succeeded(result: try await task.runEncoded(context))
            } catch {
                let record = JobErrorRecord(attempt: job.attempt, error: error, worker: worker)
                let retryable = RetryPolicy.isRetryable(error)
                result = .failed(error: record, retryable: retryable, retryDelay: configuration.retryDelay(afterAttempt: job.attempt))
            }
        } else {
            let error = UnknownTask(task: job.task, known: registry.names)
            result = .failed(error: JobErrorRecord(attempt: job.attempt, error: error, worker: worker), retryable: false, retryDelay: 0)
        }
        let seconds = Date().timeIntervalSince(started)
        let limit = configuration.timeLimit(for: job.task)
        // The task's end and any stop request meet here, under the lock: the lifecycle decides
        // whether the outcome is written, the job released, or nothing written.
        let action = state.withLock { s -> JobLifecycle.Action in
            guard var claim = s.claims[job.claimToken] else { return .none }
            let action = claim.lifecycle.taskEnded(
                result, timeLimitError: JobErrorRecord(attempt: job.attempt, error: TimeLimitExceeded(task: job.task, limitSeconds: limit), worker: worker))
            claim.timer?.cancel()
            s.claims[job.claimToken] = claim
            s.apply(action, to: claim)
            s.lastActivity = Date()
            return action
        }
        // A number (microsecond precision), not text formatted per line: this is the hot path.
        let duration = Logger.MetadataValue.stringConvertible((seconds * 1_000_000).rounded() / 1_000_000)
        switch action {
        case .writeOutcome(let outcome):
            stats.recordFinished(task: job.task, outcome: outcome, seconds: seconds)
            switch outcome {
            case .succeeded:
                jobLogger.info("task_completed", metadata: ["duration_s": duration])
            case .failed(let record, let retryable, let delay):
                let willRetry = retryable && job.attempt < job.maxAttempts
                jobLogger.error("task_failed", metadata: [
                    "duration_s": duration, "error": "\(record.error)", "type": "\(record.type)",
                    "retry_in_s": willRetry ? "\(String(format: "%.1f", delay))" : "none",
                ])
            case .cancelled:
                break
            }
        case .forget, .release:
            stats.recordFinished(task: job.task, outcome: .cancelled, seconds: seconds)
            jobLogger.warning("task_cancelled", metadata: [
                "duration_s": duration, "then": action == .release ? "released to the queue" : "nothing written (the claim is gone)",
            ])
        case .none, .startTask, .cancelTask:
            break
        }
        // The slot frees as soon as the task is done; the outcome is written by the ack loop,
        // batched with others (the job keeps its lease until then).
        ackWake.signal()
        claimWake.signal()
        drainWake.signal()
    }

    // MARK: - Recording outcomes

    /// Writes outcomes and releases in batches: while one batch is being written, new outcomes
    /// gather for the next, so a busy worker commits many jobs per transaction (group commit).
    private func ackLoop() async {
        while true {
            let (batch, releases) = state.withLock { s -> ([(job: ClaimedJob, outcome: JobOutcome)], [ClaimedJob]) in
                defer {
                    s.writing = s.pendingOutcomes.count + s.pendingReleases.count
                    s.pendingOutcomes.removeAll()
                    s.pendingReleases.removeAll()
                }
                return (s.pendingOutcomes, s.pendingReleases)
            }
            if batch.isEmpty && releases.isEmpty {
                if state.withLock({ s in s.stopped }) { return }
                await ackWake.wait(timeout: 1)
                continue
            }
            if !releases.isEmpty { await release(releases) }
            if !batch.isEmpty { await store(batch) }
            state.withLock { s in
                for job in batch.map(\.job) + releases {
                    guard var claim = s.claims[job.claimToken] else { continue }
                    _ = claim.lifecycle.stored()
                    s.claims[job.claimToken] = claim.lifecycle.holdsClaim ? claim : nil
                }
                s.writing = 0
                s.lastActivity = Date()
            }
            drainWake.signal()
            claimWake.signal()
        }
    }

    /// Puts jobs whose tasks were stopped at shutdown back in the queue, without counting the
    /// attempt; retried while the database is unreachable (bounded: a job not released lapses
    /// and is rescued, never lost).
    private func release(_ jobs: [ClaimedJob]) async {
        let held = jobs.map { (id: $0.id, token: $0.claimToken) }
        for _ in 0..<20 {
            do {
                let released = try await ackLink.run { try QueueStore.release($0, claims: held) }
                logger.warning("jobs_released", metadata: ["count": "\(released)", "job_ids": "\(held.map(\.id))"])
                return
            } catch {
                logger.error("release_failed", metadata: ["error": "\(error)"])
                if !((error as? PostgresError).map { $0.isConnectionLost || $0.isTransient } ?? false) { break }
            }
        }
        logger.error("release_abandoned", metadata: ["job_ids": "\(held.map(\.id))", "note": "their leases will lapse and they will be rescued"])
    }

    /// Writes outcomes, retrying while the connection is lost. When the server refuses a batch
    /// (a result or error text jsonb cannot hold, such as `\u0000`; a failing trigger), each
    /// outcome is written on its own, so one bad outcome never holds back the others; one the
    /// server keeps refusing is recorded as a failed attempt naming why, and if even that is
    /// refused it is left to lapse and be rescued. The ack loop never stalls on one batch.
    private func store(_ batch: [(job: ClaimedJob, outcome: JobOutcome)], replaced: Bool = false) async {
        let worker = configuration.workerID
        // One statement for successes and failures alike: see `QueueStore.complete`.
        let jobs = batch.map { (id: $0.job.id, token: $0.job.claimToken, outcome: $0.outcome) }
        let expected = batch.filter { if case .cancelled = $0.outcome { return false } else { return true } }.map(\.job.id)
        // Completions of cycle jobs may end their run (a trigger does that); reading which runs
        // this transaction ended takes a transaction, so only batches with cycle jobs pay for it.
        let runIDs = Array(Set(batch.compactMap(\.job.runID)))
        var tries = 0
        while !expected.isEmpty {
            do {
                let (states, finishedRuns) = try await ackLink.run { session -> ([Int64: JobState], [FinishedCycleRun]) in
                    if runIDs.isEmpty { return (try QueueStore.complete(session, jobs: jobs), []) }
                    return try session.transaction { tx in
                        (try QueueStore.complete(tx, jobs: jobs), try QueueStore.cycleRunsFinishedNow(tx, among: runIDs))
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
                if states.values.contains(.available) {
                    _ = try? await ackLink.run { try QueueStore.wakeWorkers($0) }
                }
                return
            } catch {
                logger.error("completion_failed", metadata: ["error": "\(error)", "jobs": "\(batch.count)"])
                // Outcomes stay in hand; the link reconnects with backoff before the next try.
                // A worker that is stopping gives up after a while: the leases then lapse and
                // the jobs are rescued (run again), never lost.
                // A deadlock or serialization failure undid the whole statement: write it again,
                // never turn it into failed attempts.
                if (error as? PostgresError)?.isTransient ?? false {
                    try? await Task.sleep(nanoseconds: UInt64(Double.random(in: 0.01...0.1) * 1_000_000_000))
                    continue
                }
                tries += 1
                if state.withLock({ s in s.draining }) && tries >= 20 { return }
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

    /// Renews the lease of every claim held (running, or with its outcome or release not yet
    /// written), and stops the tasks whose claim is gone. A successful round after a database
    /// error is what lets the housekeeping loop rescue others' jobs again.
    private func heartbeatLoop() async {
        let interval = configuration.effectiveHeartbeatSeconds
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(interval * 1_000_000_000))
            if Task.isCancelled { return }
            await heartbeat()
        }
    }

    private func heartbeat() async {
        let held = state.withLock { s in s.claims.values.map { (id: $0.job.id, token: $0.job.claimToken) } }
        guard !held.isEmpty else {
            state.withLock { s in s.leasesConfirmed = true }
            return
        }
        let lease = configuration.leaseSeconds
        do {
            let alive = try await ackLink.run { try QueueStore.heartbeat($0, claims: held, leaseSeconds: lease) }
            stats.markHeartbeat()
            state.withLock { s in s.leasesConfirmed = true }
            for lost in held where !alive.contains(lost.token) {
                stop(token: lost.token, reason: .claimLost)
            }
        } catch {
            state.withLock { s in s.leasesConfirmed = false }
            // The loops are cancelled when the worker stops; their cut-short call is no failure.
            if !Task.isCancelled { logger.error("heartbeat_failed", metadata: ["error": "\(error)"]) }
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
                // After a database error, this worker's own leases may have lapsed while it
                // could not renew them: rescue others' jobs only once a heartbeat renewed ours.
                if state.withLock({ s in s.leasesConfirmed || s.claims.isEmpty }) {
                    let rescued = try await housekeepingLink.run { try QueueStore.rescueExpired($0, rescuer: config.workerID) }
                    if rescued.requeued + rescued.failed > 0 {
                        logger.warning("jobs_rescued", metadata: ["requeued": "\(rescued.requeued)", "failed": "\(rescued.failed)"])
                    }
                }
                if Date().timeIntervalSince(lastPrune) >= config.pruneIntervalSeconds {
                    let age = config.pruneAfterSeconds
                    let pruned = try await housekeepingLink.run { try QueueStore.pruneFinished($0, olderThanSeconds: age) }
                    lastPrune = Date()
                    if pruned > 0 { logger.info("jobs_pruned", metadata: ["rows": "\(pruned)"]) }
                }
                stats.markDatabaseOK()
            } catch {
                if Task.isCancelled { return }
                state.withLock { s in s.leasesConfirmed = false }
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
                if Task.isCancelled { return }
                logger.error("periodic_failed", metadata: ["name": "\(work.name)", "error": "\(error)"])
            }
            try? await Task.sleep(nanoseconds: UInt64(work.intervalSeconds * 1_000_000_000))
        }
    }

    // MARK: - Shutdown

    /// Lets running tasks finish within the grace period (cut short by a second stop request),
    /// then stops the rest and waits up to `stopWaitSeconds` for them to end; their lifecycles
    /// queue their releases (or their outcomes, when they completed anyway), which the ack
    /// loop writes. A task still running after that is not released (its statement may still
    /// run on the server): its lease lapses and it is rescued.
    private func drain() async {
        let graceEnd = Date().addingTimeInterval(configuration.graceSeconds)
        while Date() < graceEnd, state.withLock({ s in s.activeTasks > 0 && !s.stopNow }) {
            await drainWake.wait(timeout: min(0.5, graceEnd.timeIntervalSinceNow))
        }
        let running = state.withLock { s in s.claims.filter { $0.value.lifecycle.taskActive }.map(\.key) }
        for token in running { stop(token: token, reason: .shutdown) }
        let stopEnd = Date().addingTimeInterval(configuration.stopWaitSeconds)
        while Date() < stopEnd, state.withLock({ s in s.activeTasks > 0 }) {
            await drainWake.wait(timeout: min(0.5, stopEnd.timeIntervalSinceNow))
        }
        let stuck = state.withLock { s in s.claims.values.filter { $0.lifecycle.taskActive }.map(\.job.id) }
        if !stuck.isEmpty {
            logger.error("jobs_abandoned", metadata: [
                "job_ids": "\(stuck)", "stop_wait_s": "\(configuration.stopWaitSeconds)",
                "note": "their tasks did not stop in time; not released while they may still run, their leases will lapse and they will be rescued",
            ])
        }
        // Let the ack loop write what finished and release what was stopped.
        while state.withLock({ s in !s.pendingOutcomes.isEmpty || !s.pendingReleases.isEmpty || s.writing > 0 }) {
            await drainWake.wait(timeout: 0.5)
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
