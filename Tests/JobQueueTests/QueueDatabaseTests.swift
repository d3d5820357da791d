import Foundation
import JobQueue
import PostgresClient
import TestSupport
import XCTest

/// What the database itself guarantees, whoever inserts: validation, defaults, unique keys.
final class QueueDatabaseTests: XCTestCase {
    func testPsqlStyleInsertNeedsOnlyATaskName() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let row = try await conn.query("INSERT INTO maintenance_jobs (task) VALUES ('noop') RETURNING state, args::text AS args, attempts, max_attempts, queue, priority").first!
        XCTAssertEqual(row["state"], "available")
        XCTAssertEqual(row["args"], "{}")
        XCTAssertEqual(row["attempts"], "0")
        XCTAssertEqual(row["max_attempts"], "5")
        XCTAssertEqual(row["queue"], "default")
        XCTAssertEqual(row["priority"], "0")
    }

    /// `JobState` and the table's CHECK constraint name the same states: each case is
    /// accepted, and a value outside them is refused.
    func testJobStateMatchesTheStateConstraint() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        for state in JobState.allCases {
            let row = try await conn.query(
                "INSERT INTO maintenance_jobs (task, state) VALUES ('noop', $1) RETURNING state", [state.rawValue]).first!
            XCTAssertEqual(try row.decode("state", as: JobState.self), state)
        }
        do {
            try await conn.execute("INSERT INTO maintenance_jobs (task, state) VALUES ('noop', 'paused')")
            XCTFail("a state outside JobState was accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "23514")
        }
    }

    func testUnknownTaskIsRefusedNamingKnownTasks() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        do {
            try await conn.execute("INSERT INTO maintenance_jobs (task) VALUES ('vacum')")
            XCTFail("misspelled task accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22023")
            XCTAssertEqual(error.message, "unknown task \"vacum\"")
            XCTAssertTrue(error.hint?.contains("vacuum") ?? false, "hint lists known tasks: \(error.hint ?? "nil")")
            XCTAssertTrue(error.hint?.contains("ohlc_daily") ?? false)
        }
        let n = try await conn.count("SELECT count(*) AS n FROM maintenance_jobs")
        XCTAssertEqual(n, 0)
    }

    func testArgsOfTheWrongShapeAreRefused() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let cases: [(String, String)] = [
            (#"{"dayz": 30}"#, "does not take argument \"dayz\""),
            (#"{"days": "30"}"#, "must be a non-negative whole number"),
            (#"{"days": -1}"#, "must be a non-negative whole number"),
            (#"{"days": 1.5}"#, "must be a non-negative whole number"),
            (#"{"from": "2025-13-01", "to": "2025-12-31"}"#, "must be a date string"),
            (#"{"from": "2025-01-01"}"#, "\"from\" and \"to\" go together"),
            (#"{"days": 3, "from": "2025-01-01", "to": "2025-01-02"}"#, "either \"days\" or \"from\"/\"to\""),
            (#"{"from": "2025-02-01", "to": "2025-01-01"}"#, "is after"),
            (#"[1, 2]"#, "must be a JSON object"),
            (#"{"symbols": ["AAPL", 3]}"#, "must be an array of strings"),
        ]
        for (args, expected) in cases {
            do {
                try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('ohlc_daily', $1::jsonb)", [args])
                XCTFail("accepted \(args)")
            } catch let error as PostgresError {
                XCTAssertEqual(error.sqlState, "22023", args)
                XCTAssertTrue(error.message.contains(expected), "\(args): \(error.message)")
            }
        }
        try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('ohlc_daily', $1::jsonb)", [#"{"days": 30, "symbols": ["AAPL"]}"#])
        try await conn.query("INSERT INTO maintenance_jobs (task, args) VALUES ('ohlc_daily', $1::jsonb)", [#"{"from": "2025-01-01", "to": "2025-01-31"}"#])
    }

    func testUniqueKeyAllowsOneWaitingOrRunningJob() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let first = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", uniqueKey: "k1") }
        let second = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", uniqueKey: "k1") }
        XCTAssertNotNil(first)
        XCTAssertNil(second)
        // A raw INSERT cannot bypass it either.
        do {
            try await conn.execute("INSERT INTO maintenance_jobs (task, unique_key) VALUES ('noop', 'k1')")
            XCTFail("duplicate unique_key accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "23505")
        }
        // Once finished, the key is free again.
        try await conn.query("UPDATE maintenance_jobs SET state = 'succeeded' WHERE id = $1", [first!])
        let third = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", uniqueKey: "k1") }
        XCTAssertNotNil(third)
    }

    func testOneNotificationPerInsertStatement() async throws {
        let db = try TestCluster.migratedDatabase()
        let listener = try await PostgresConnection.connect(db.url)
        let conn = try await PostgresConnection.connect(db.url)
        try await listener.withSession { try $0.listen("maintenance_jobs") }
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 20000)")
        var received: [PostgresNotification] = []
        for _ in 0..<3 { received += try await listener.withSession { try $0.waitForNotifications(timeout: 0.3) } }
        XCTAssertEqual(received.count, 1)
    }

    func testClaimUsesThePartialIndexWithAMillionFinishedRows() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, state, finished_at, attempts)
            SELECT 'noop', 'succeeded', now(), 1 FROM generate_series(1, 1000000);
            INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 100);
            ANALYZE maintenance_jobs;
            """)
        let plan = try await conn.query("""
            EXPLAIN SELECT id FROM maintenance_jobs
            WHERE state = 'available' AND queue = 'default' AND run_at <= now()
            ORDER BY priority DESC, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED
            """).compactMap { $0["QUERY PLAN"] }.joined(separator: "\n")
        XCTAssertTrue(plan.contains("maintenance_jobs_claim_idx"), plan)
        let claimed = try await conn.withSession { try QueueStore.claim($0, worker: "w", queue: "default", limit: 10, leaseSeconds: 60) }
        XCTAssertEqual(claimed.count, 10)
    }

    func testCompletionByAWorkerThatLostItsLeaseIsIgnored() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop")! }
        let first = try await conn.withSession { try QueueStore.claim($0, worker: "A", queue: "default", limit: 1, leaseSeconds: 60) }
        XCTAssertEqual(first.map(\.id), [id])
        // A's lease lapses; the rescuer returns the job, and B claims it.
        try await conn.query("UPDATE maintenance_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [id])
        let rescued = try await conn.withSession { try QueueStore.rescueExpired($0, rescuer: "R") }
        XCTAssertEqual(rescued.requeued, 1)
        let second = try await conn.withSession { try QueueStore.claim($0, worker: "B", queue: "default", limit: 1, leaseSeconds: 60) }
        XCTAssertEqual(second.first?.attempt, 2)
        // A wakes up and reports success: nothing changes.
        let a = first[0], b = second[0]
        XCTAssertNotEqual(a.claimToken, b.claimToken)
        let result = PostgresJSON(text: #"{"by": "A"}"#)
        let aDone = try await conn.withSession { try QueueStore.complete($0, jobs: [(id, a.claimToken, .succeeded(result: result))]) }
        XCTAssertTrue(aDone.isEmpty)
        let aHeld = try await conn.withSession { try QueueStore.heartbeat($0, claims: [(id, a.claimToken)], leaseSeconds: 60) }
        XCTAssertTrue(aHeld.isEmpty)
        let bDone = try await conn.withSession { try QueueStore.complete($0, jobs: [(id, b.claimToken, .succeeded(result: PostgresJSON(text: #"{"by": "B"}"#)))]) }
        XCTAssertEqual(bDone, [id: .succeeded])
        let row = try await conn.query("SELECT state, result->>'by' AS by, jsonb_array_length(errors) AS errors FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "succeeded")
        XCTAssertEqual(row["by"], "B")
        XCTAssertEqual(row["errors"], "1", "the lapsed attempt is recorded")
    }

    func testRescueFailsAJobOnItsLastAttempt() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", maxAttempts: 1)! }
        _ = try await conn.withSession { try QueueStore.claim($0, worker: "dead", queue: "default", limit: 1, leaseSeconds: 0.01) }
        try await Task.sleep(nanoseconds: 50_000_000)
        let rescued = try await conn.withSession { try QueueStore.rescueExpired($0, rescuer: "R") }
        XCTAssertEqual(rescued.failed, 1)
        let row = try await conn.query("SELECT state, errors -> 0 ->> 'error' AS error, finished_at IS NOT NULL AS done FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "failed")
        XCTAssertEqual(row["done"], "t")
        XCTAssertTrue(row["error"]?.contains("worker dead stopped sending heartbeats") ?? false, row["error"] ?? "")
    }

    /// Retry and cancel (migration 0090's functions, used by `closebell jobs` and the endpoint)
    /// change only jobs in a state they apply to, report every job that exists, and skip missing ids.
    func testRetryAndCancelChangeOnlyJobsInTheirStates() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let waiting = try await conn.withSession { try QueueStore.enqueue($0, task: "noop")! }
        let failed: Int64 = try await conn.query("""
            INSERT INTO maintenance_jobs (task, state, attempts, finished_at, errors)
            VALUES ('noop', 'failed', 5, now(), '[{"error": "boom"}]') RETURNING id
            """).first!.decode("id")
        let missing: Int64 = 999_999

        let retried = try await conn.withSession { try QueueStore.retry($0, ids: [waiting, failed, missing]) }
        XCTAssertEqual(retried, [JobChange(id: waiting, state: .available, changed: false),
                                 JobChange(id: failed, state: .available, changed: true)])
        let row = try await conn.query(
            "SELECT attempts, finished_at IS NULL AS open, errors -> 0 ->> 'error' AS error FROM maintenance_jobs WHERE id = $1", [failed]).first!
        XCTAssertEqual(row["attempts"], "0")
        XCTAssertEqual(row["open"], "t")
        XCTAssertEqual(row["error"], "boom", "a retry keeps the errors")

        let cancelled = try await conn.withSession { try QueueStore.cancel($0, ids: [failed, waiting]) }
        XCTAssertEqual(cancelled.map(\.changed), [true, true])
        let again = try await conn.withSession { try QueueStore.cancel($0, ids: [waiting]) }
        XCTAssertEqual(again, [JobChange(id: waiting, state: .cancelled, changed: false)])
    }

    /// The status model: depth with all rows and recent ones, the oldest due job, running jobs,
    /// failures with and without cancelled jobs, the waiting list.
    func testStatusReadsEverySection() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, state, finished_at) VALUES ('noop', 'succeeded', now() - interval '3 days');
            INSERT INTO maintenance_jobs (task, state, finished_at) VALUES ('noop', 'succeeded', now());
            INSERT INTO maintenance_jobs (task, state, finished_at, errors) VALUES ('noop', 'failed', now(), '[{"error": "e1"}]');
            INSERT INTO maintenance_jobs (task, state, finished_at) VALUES ('noop', 'cancelled', now());
            INSERT INTO maintenance_jobs (task, attempts, errors, run_at) VALUES ('noop', 1, '[{"error": "e2"}]', now() + interval '1 hour');
            INSERT INTO maintenance_jobs (task, run_at) VALUES ('vacuum', now() - interval '90 seconds');
            """)
        let claimed = try await conn.withSession { try QueueStore.claim($0, worker: "w1", queue: "default", limit: 1, leaseSeconds: 60) }
        XCTAssertEqual(claimed.map(\.task), ["vacuum"])
        try await conn.execute("INSERT INTO maintenance_jobs (task, run_at) VALUES ('vacuum', now() - interval '90 seconds')")

        let status = try await conn.withSession {
            try QueueStore.status($0, runningLimit: 10, failureLimit: 10, includeCancelled: true, waitingLimit: 10)
        }
        let succeeded = status.depth.first { $0.task == "noop" && $0.state == .succeeded }
        XCTAssertEqual(succeeded?.count, 2)
        XCTAssertEqual(succeeded?.recent, 1, "finished more than 24 h ago is not recent")
        XCTAssertGreaterThanOrEqual(status.oldestWaitingSeconds ?? 0, 90)
        XCTAssertEqual(status.running.map(\.worker), ["w1"])
        XCTAssertEqual(status.running.first?.attempt, 1)
        XCTAssertEqual(Set(status.failures.map(\.state)), [.failed, .cancelled, .available])
        XCTAssertEqual(status.failures.first?.state, .available, "retrying jobs come first")
        XCTAssertEqual(status.failures.first?.error, "e2")
        XCTAssertEqual(status.waiting.map(\.task), ["vacuum", "noop"])

        let withoutCancelled = try await conn.withSession {
            try QueueStore.status($0, runningLimit: 0, failureLimit: 10, includeCancelled: false, waitingLimit: 0)
        }
        XCTAssertEqual(Set(withoutCancelled.failures.map(\.state)), [.failed, .available])
        XCTAssertTrue(withoutCancelled.running.isEmpty)
        let encoded = try JSONEncoder().encode(status)
        XCTAssertEqual(try JSONDecoder().decode(QueueStatus.self, from: encoded), status)
    }

    func testPruneDeletesOnlyOldFinishedJobs() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("""
            INSERT INTO maintenance_jobs (task, state, finished_at) SELECT 'noop', 'succeeded', now() - interval '40 days' FROM generate_series(1, 12000);
            INSERT INTO maintenance_jobs (task, state, finished_at) VALUES ('noop', 'failed', now() - interval '1 day');
            INSERT INTO maintenance_jobs (task) VALUES ('noop');
            """)
        let pruned = try await conn.withSession { try QueueStore.pruneFinished($0, olderThanSeconds: 30 * 86_400) }
        XCTAssertEqual(pruned, 12000)
        let left = try await conn.count("SELECT count(*) AS n FROM maintenance_jobs")
        XCTAssertEqual(left, 2)
    }

    /// The worker's completion of a batch mixing a success of run 2 and a final failure of run 1
    /// must lock the two runs in run id order. Written as two statements in one transaction, it
    /// locked run 2, then waited for run 1, so another worker completing the same runs in the
    /// other order deadlocked with it. Here session X holds run 1; the completion must wait for
    /// it without having locked run 2 first.
    func testMixedCompletionLocksCycleRunsInIdOrder() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let runs = try await conn.query("""
            INSERT INTO maintenance_cycle_runs (cycle, period) VALUES ('daily', '2025-01-02'), ('daily', '2025-01-03')
            RETURNING id
            """).map { try $0.decode("id", as: Int64.self) }.sorted()
        let j1 = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", maxAttempts: 1, runID: runs[0])! }
        let j2 = try await conn.withSession { try QueueStore.enqueue($0, task: "noop", maxAttempts: 1, runID: runs[1])! }
        let claimed = try await conn.withSession { try QueueStore.claim($0, worker: "A", queue: "default", limit: 2, leaseSeconds: 60) }
        XCTAssertEqual(Set(claimed.map(\.id)), [j1, j2])
        let token = Dictionary(uniqueKeysWithValues: claimed.map { ($0.id, $0.claimToken) })

        let x = try await PostgresConnection.connect(db.url)
        try await x.execute("BEGIN")
        try await x.query("SELECT id FROM maintenance_cycle_runs WHERE id = $1 FOR UPDATE", [runs[0]])

        let a = try await PostgresConnection.connect(db.url)
        let aPID = a.backendPID
        let failure = JobErrorRecord(attempt: 1, error: NoopTask.DeliberateFailure(attempt: 1, failTimes: 1), worker: "A")
        let completion = Task {
            try await a.withSession { session in
                try QueueStore.complete(session, jobs: [
                    (j2, token[j2]!, .succeeded(result: PostgresJSON(text: "{}"))),
                    (j1, token[j1]!, .failed(error: failure, retryable: true, retryDelay: 0)),
                ])
            }
        }
        let blocked = try await eventually { try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [aPID]) == 1 }
        XCTAssertTrue(blocked, "the completion waits for run 1")
        // Run 2 must still be free: locked first, it would close a cycle with X (a deadlock).
        do {
            try await x.query("SELECT id FROM maintenance_cycle_runs WHERE id = $1 FOR UPDATE NOWAIT", [runs[1]])
        } catch let error as PostgresError {
            XCTFail("run 2 was locked before run 1: \(error)")
        }
        try await x.execute("COMMIT")
        let states = try await completion.value
        XCTAssertEqual(states, [j1: .failed, j2: .succeeded])
    }

    /// `jobs retry` resets attempts to 0, so after cancel and retry the same worker's new claim
    /// had the same (worker, attempt) as the old one, and the old execution's completion
    /// overwrote the new one. Claims are now fenced by a token unique to each claim.
    func testAnOldExecutionCannotWriteOverANewClaimOfTheSameWorker() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop")! }
        let old = try await conn.withSession { try QueueStore.claim($0, worker: "W", queue: "default", limit: 1, leaseSeconds: 60) }[0]
        // `jobs cancel` then `jobs retry`, as the CLI does them.
        try await conn.query("UPDATE maintenance_jobs SET state = 'cancelled' WHERE id = $1", [id])
        let holder = try await conn.query("SELECT locked_by, lease_expires_at FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertNil(holder["locked_by"], "cancelling clears locked_by")
        XCTAssertNil(holder["lease_expires_at"])
        try await conn.query("UPDATE maintenance_jobs SET state = 'available', attempts = 0, run_at = now(), finished_at = NULL WHERE id = $1", [id])
        let new = try await conn.withSession { try QueueStore.claim($0, worker: "W", queue: "default", limit: 1, leaseSeconds: 60) }[0]
        XCTAssertEqual(new.attempt, old.attempt, "same worker, same attempt number")
        XCTAssertGreaterThan(new.claimToken, old.claimToken)
        let stale = try await conn.withSession { session in
            (try QueueStore.heartbeat(session, claims: [(id, old.claimToken)], leaseSeconds: 60),
             try QueueStore.complete(session, jobs: [(id, old.claimToken, .succeeded(result: PostgresJSON(text: #"{"by": "old"}"#)))]),
             try QueueStore.release(session, claims: [(id, old.claimToken)]))
        }
        XCTAssertTrue(stale.0.isEmpty)
        XCTAssertTrue(stale.1.isEmpty)
        XCTAssertEqual(stale.2, 0)
        try await conn.withSession { try QueueStore.saveProgress($0, id: id, token: old.claimToken, progress: PostgresJSON(text: #"{"by": "old"}"#)) }
        let row = try await conn.query("SELECT state, attempts, progress FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(row["state"], "running")
        XCTAssertEqual(row["attempts"], "1")
        XCTAssertNil(row["progress"])
        let held = try await conn.withSession { try QueueStore.heartbeat($0, claims: [(id, new.claimToken)], leaseSeconds: 60) }
        XCTAssertEqual(held, [new.claimToken])
        let released = try await conn.withSession { try QueueStore.release($0, claims: [(id, new.claimToken)]) }
        XCTAssertEqual(released, 1)
        let after = try await conn.query("SELECT state, attempts FROM maintenance_jobs WHERE id = $1", [id]).first!
        XCTAssertEqual(after["state"], "available")
        XCTAssertEqual(after["attempts"], "0")
    }

    /// A lease that lapsed while its worker could not reach the database is renewed by the
    /// worker's next heartbeat, as long as no rescue took the job meanwhile.
    func testAHeartbeatRenewsALapsedLeaseNobodyRescued() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let id = try await conn.withSession { try QueueStore.enqueue($0, task: "noop")! }
        let job = try await conn.withSession { try QueueStore.claim($0, worker: "W", queue: "default", limit: 1, leaseSeconds: 60) }[0]
        try await conn.query("UPDATE maintenance_jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [id])
        let held = try await conn.withSession { try QueueStore.heartbeat($0, claims: [(id, job.claimToken)], leaseSeconds: 60) }
        XCTAssertEqual(held, [job.claimToken])
        let rescued = try await conn.withSession { try QueueStore.rescueExpired($0, rescuer: "R") }
        XCTAssertEqual(rescued.requeued + rescued.failed, 0)
    }

    /// Two sessions completing and heartbeating the same rows, given in opposite orders, lock
    /// them in id order, so neither waits for the other in a cycle (no 40P01).
    func testMultiRowStatementsLockRowsInIdOrder() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("INSERT INTO maintenance_jobs (task) SELECT 'noop' FROM generate_series(1, 2)")
        let jobs = try await conn.withSession { try QueueStore.claim($0, worker: "W", queue: "default", limit: 2, leaseSeconds: 60) }
        let claims = jobs.map { (id: $0.id, token: $0.claimToken) }
        // X holds the first row; a heartbeat given the rows in reverse order must wait for it
        // without having locked the second row first.
        let x = try await PostgresConnection.connect(db.url)
        try await x.execute("BEGIN")
        try await x.query("SELECT id FROM maintenance_jobs WHERE id = $1 FOR UPDATE", [claims[0].id])
        let h = try await PostgresConnection.connect(db.url)
        let hPID = h.backendPID
        let heartbeat = Task { try await h.withSession { try QueueStore.heartbeat($0, claims: claims.reversed(), leaseSeconds: 60) } }
        let blocked = try await eventually { try await conn.count("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [hPID]) == 1 }
        XCTAssertTrue(blocked)
        do {
            try await x.query("SELECT id FROM maintenance_jobs WHERE id = $1 FOR UPDATE NOWAIT", [claims[1].id])
        } catch let error as PostgresError {
            XCTFail("the second row was locked before the first: \(error)")
        }
        try await x.execute("COMMIT")
        let held = try await heartbeat.value
        XCTAssertEqual(held, Set(claims.map(\.token)))
    }
}
