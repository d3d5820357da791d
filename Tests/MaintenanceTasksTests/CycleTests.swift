import Foundation
import MaintenanceTasks
import PostgresClient
import TestSupport
import XCTest

final class CycleTests: XCTestCase {
    /// The run's jobs as "task:state" in id order.
    private func jobs(_ conn: PostgresConnection, run: Int64) async throws -> [String] {
        try await conn.query("SELECT task || ':' || state AS j FROM maintenance_jobs WHERE run_id = $1 ORDER BY id", [run])
            .map { $0["j"] ?? "" }
    }

    /// Simulates a worker finishing every waiting job of the run with `state`.
    private func finish(_ conn: PostgresConnection, run: Int64, task: String? = nil, state: String = "succeeded") async throws {
        try await conn.query(
            """
            UPDATE maintenance_jobs SET state = $2, attempts = attempts + 1,
                   errors = CASE WHEN $2 = 'failed' THEN errors || '[{"error": "boom"}]' ELSE errors END,
                   result = CASE WHEN $2 = 'succeeded' THEN '{"ok": true}'::jsonb END
             WHERE run_id = $1 AND state IN ('available', 'running') AND ($3::text IS NULL OR task = $3)
            """, [run, state, task])
    }

    private func run(_ conn: PostgresConnection, _ id: Int64) async throws -> CycleRun {
        let runs = try await CycleStore.recentRuns(connection: conn, limit: 100)
        return try XCTUnwrap(runs.first { $0.id == id })
    }

    func testEnqueueIsIdempotentPerPeriod() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let first = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-20", connection: conn)
        let second = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-20", connection: conn)
        XCTAssertTrue(first.created)
        XCTAssertFalse(second.created)
        XCTAssertEqual(first.runID, second.runID)
        let stageOne = try await jobs(conn, run: first.runID)
        XCTAssertEqual(stageOne, ["backup:available"])
        // Weekly: any day of one ISO week is the same period.
        let monday = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-16", connection: conn)
        let sunday = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-22", connection: conn)
        XCTAssertEqual(monday.runID, sunday.runID)
        XCTAssertFalse(sunday.created)
        let count = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 2)
        // psql users get the same from SQL.
        let sql = try await conn.query("SELECT run_id, created FROM maintenance_enqueue_cycle('daily', '2026-11-20')").first
        XCTAssertEqual(try sql?.decode("run_id", as: Int64.self), first.runID)
        XCTAssertEqual(try sql?.decode("created", as: Bool.self), false)
    }

    func testHolidaysUnknownAndDisabledCycles() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        do {
            _ = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-26", connection: conn)
            XCTFail("Thanksgiving enqueued")
        } catch let error as MaintenanceError {
            guard case .cycleNotEnqueued(_, let period, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(period, "2026-11-26")
            XCTAssertTrue(reason.contains("Thanksgiving"), reason)
        }
        let forced = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-26", force: true, connection: conn)
        XCTAssertTrue(forced.created)
        do {
            _ = try await CycleStore.enqueue(cycle: "hourly", connection: conn)
            XCTFail("unknown cycle enqueued")
        } catch let error as MaintenanceError {
            XCTAssertEqual(error, .unknownCycle(name: "hourly", known: ["daily", "monthly", "quarterly", "weekly"]))
        }
        do {
            try await conn.execute("INSERT INTO maintenance_cycles (cycle, period, time_zone) VALUES ('mars', 'day', 'Mars/Olympus')")
            XCTFail("unknown time zone accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22023")
            XCTAssertTrue(error.message.contains("Mars/Olympus"), error.message)
        }
        try await conn.execute("UPDATE maintenance_cycles SET enabled = false WHERE cycle = 'weekly'")
        do {
            _ = try await CycleStore.enqueue(cycle: "weekly", connection: conn)
            XCTFail("disabled cycle enqueued")
        } catch let error as MaintenanceError {
            guard case .cycleNotEnqueued(let cycle, _, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(cycle, "weekly")
            XCTAssertTrue(reason.contains("disabled"))
        }
    }

    func testStagesAdvanceInOrderAndAFailedTaskLeavesTheRunPartial() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let (id, _) = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-20", connection: conn)
        var list = try await jobs(conn, run: id)
        XCTAssertEqual(list, ["backup:available"])

        // A failed attempt that will be retried goes back to available: nothing advances.
        try await conn.query("UPDATE maintenance_jobs SET state = 'running' WHERE run_id = $1", [id])
        try await conn.query("UPDATE maintenance_jobs SET state = 'available' WHERE run_id = $1", [id])
        list = try await jobs(conn, run: id)
        XCTAssertEqual(list, ["backup:available"])

        try await finish(conn, run: id)
        list = try await jobs(conn, run: id)
        // Migration 0130: the loads that the later stages read, and earnings, share stage 2.
        XCTAssertEqual(list, ["backup:succeeded", "ohlc_daily:available", "volume_slots:available", "earnings:available"])
        let args = try await conn.query("SELECT args::text AS a FROM maintenance_jobs WHERE run_id = $1 AND task = 'ohlc_daily'", [id]).first?["a"]
        XCTAssertEqual(args, #"{"days": 30}"#)

        // Loads: one fails for good, the others succeed one by one; stage 3 waits for all.
        try await finish(conn, run: id, task: "ohlc_daily", state: "failed")
        try await finish(conn, run: id, task: "volume_slots")
        list = try await jobs(conn, run: id)
        XCTAssertFalse(list.contains { $0.hasPrefix("validate") })
        try await finish(conn, run: id, task: "earnings")
        list = try await jobs(conn, run: id)
        // Migration 0053 validates the loads (stage 3) before the statistics (stage 4).
        XCTAssertEqual(list.last, "validate:available")
        var current = try await run(conn, id)
        XCTAssertEqual(current.state, "running")
        XCTAssertEqual(current.currentStage, 3)
        try await finish(conn, run: id)
        list = try await jobs(conn, run: id)
        // Migration 0130: metadata_enrich's requests run beside the database-only tasks.
        XCTAssertEqual(Array(list.suffix(4)), ["metadata_enrich:available", "volume_stats:available", "retention:available",
                                               "completeness:available"])
        current = try await run(conn, id)
        XCTAssertEqual(current.currentStage, 4)

        // Stage 5 waits for the last of them, metadata_enrich included.
        try await finish(conn, run: id, task: "volume_stats")
        try await finish(conn, run: id, task: "retention")
        try await finish(conn, run: id, task: "completeness")
        list = try await jobs(conn, run: id)
        XCTAssertFalse(list.contains { $0.hasPrefix("table_sizes") })
        try await finish(conn, run: id)
        list = try await jobs(conn, run: id)
        // Migration 0005 adds table_sizes to the last stage; it measures after every write of the run.
        XCTAssertEqual(list.last, "table_sizes:available")
        current = try await run(conn, id)
        XCTAssertEqual(current.currentStage, 5)
        try await finish(conn, run: id)

        current = try await run(conn, id)
        XCTAssertEqual(current.state, "partial")
        XCTAssertNotNil(current.finishedAt)
        XCTAssertEqual(current.jobCounts, ["succeeded": 9, "failed": 1])
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(current.outcomeJSON).utf8)) as? [String: Any])
        XCTAssertEqual(outcome["succeeded"] as? Int, 9)
        XCTAssertEqual(outcome["failed"] as? Int, 1)
        let tasks = try XCTUnwrap(outcome["tasks"] as? [[String: Any]])
        XCTAssertEqual(tasks.map { $0["task"] as? String ?? "" }, ["backup", "ohlc_daily", "volume_slots", "earnings", "validate",
                                                                  "metadata_enrich", "volume_stats", "retention", "completeness", "table_sizes"])
        XCTAssertEqual(tasks.map { $0["stage"] as? Int ?? 0 }, [1, 2, 2, 2, 3, 4, 4, 4, 4, 5])
        let failed = try XCTUnwrap(tasks.first { $0["task"] as? String == "ohlc_daily" })
        XCTAssertEqual(failed["state"] as? String, "failed")
        XCTAssertEqual((failed["error"] as? [String: Any])?["error"] as? String, "boom")

        // Retrying the failed job by hand and succeeding refreshes the run's outcome.
        try await conn.query("UPDATE maintenance_jobs SET state = 'available' WHERE run_id = $1 AND task = 'ohlc_daily'", [id])
        try await finish(conn, run: id)
        current = try await run(conn, id)
        XCTAssertEqual(current.state, "succeeded")
        list = try await jobs(conn, run: id)
        XCTAssertEqual(list.count, 10)
    }

    func testMigration0130ReshapesOnlyAnUneditedDailyCycle() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let sql = try String(contentsOf: TestCluster.migrationsDirectory.appendingPathComponent("0130_daily_cycle_overlap.sql"), encoding: .utf8)
        func shape() async throws -> String {
            try await conn.query("""
                SELECT string_agg(task || ':' || stage, ',' ORDER BY stage, task) AS s FROM maintenance_cycle_tasks WHERE cycle = 'daily'
                """).first?["s"] ?? ""
        }
        let reshaped = "backup:1,earnings:2,ohlc_daily:2,volume_slots:2,validate:3,completeness:4,metadata_enrich:4,retention:4,volume_stats:4,table_sizes:5"
        let migrated = try await shape()
        XCTAssertEqual(migrated, reshaped)

        // The daily cycle as migrations 0003-0053 left it: reshaped.
        try await conn.execute("""
            UPDATE maintenance_cycle_tasks SET stage = 2 WHERE cycle = 'daily' AND task = 'metadata_enrich';
            UPDATE maintenance_cycle_tasks SET stage = 5 WHERE cycle = 'daily' AND task IN ('retention', 'completeness');
            """)
        try await conn.execute(sql)
        let again = try await shape()
        XCTAssertEqual(again, reshaped)

        // A cycle someone edited (completeness moved to a stage of its own) is left alone.
        try await conn.execute("""
            UPDATE maintenance_cycle_tasks SET stage = 2 WHERE cycle = 'daily' AND task = 'metadata_enrich';
            UPDATE maintenance_cycle_tasks SET stage = 5 WHERE cycle = 'daily' AND task = 'retention';
            UPDATE maintenance_cycle_tasks SET stage = 6 WHERE cycle = 'daily' AND task = 'completeness';
            """)
        let edited = try await shape()
        try await conn.execute(sql)
        let kept = try await shape()
        XCTAssertEqual(kept, edited)
        XCTAssertTrue(kept.hasSuffix("completeness:6"), kept)
        await conn.close()
    }

    func testAllFailedRunIsFailedAndCancelStopsTheRun() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let weekly = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-16", connection: conn)
        try await finish(conn, run: weekly.runID, state: "failed")
        try await finish(conn, run: weekly.runID, state: "failed")
        let failed = try await run(conn, weekly.runID)
        XCTAssertEqual(failed.state, "failed")
        XCTAssertEqual(failed.jobCounts, ["failed": 2])

        let monthly = try await CycleStore.enqueue(cycle: "monthly", period: "2026-11-01", connection: conn)
        let cancelled = try await CycleStore.cancel(runID: monthly.runID, connection: conn)
        XCTAssertEqual(cancelled, 1)
        let list = try await jobs(conn, run: monthly.runID)
        XCTAssertEqual(list, ["backup:cancelled"])                 // no later stage started
        let state = try await run(conn, monthly.runID).state
        XCTAssertEqual(state, "cancelled")
    }

    func testCycleEditsWithUnknownTasksOrBadArgsAreRefused() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        for (task, args, expected) in [("vacum", "{}", "unknown task \"vacum\""), ("ohlc_daily", #"{"dayz": 5}"#, "does not take argument \"dayz\"")] {
            do {
                try await conn.query("INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES ('weekly', 1, $1, $2::jsonb)", [task, args])
                XCTFail("accepted \(task) \(args)")
            } catch let error as PostgresError {
                XCTAssertEqual(error.sqlState, "22023")
                XCTAssertTrue(error.message.contains(expected), error.message)
            }
        }
        do {
            try await conn.execute(#"UPDATE maintenance_cycle_tasks SET args = '{"days": "5"}' WHERE cycle = 'daily' AND task = 'ohlc_daily'"#)
            XCTFail("accepted a string for days")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22023")
        }
    }

    func testUnknownTasksAndBadArgsInACycleAreSkippedAndRecorded() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        // Rows that became invalid after they were written (a task type removed or its
        // arguments changed): the check at edit time is bypassed to create them.
        try await conn.execute(
            """
            INSERT INTO maintenance_cycles (cycle, period) VALUES ('custom', 'day');
            ALTER TABLE maintenance_cycle_tasks DISABLE TRIGGER maintenance_cycle_tasks_validate;
            INSERT INTO maintenance_cycle_tasks (cycle, stage, task, args) VALUES
              ('custom', 1, 'no_such_task', '{}'),
              ('custom', 2, 'noop', '{"bogus": 1}'),
              ('custom', 2, 'noop', '{"sleep_ms": 1}'),
              ('custom', 3, 'noop', '{}');
            ALTER TABLE maintenance_cycle_tasks ENABLE TRIGGER maintenance_cycle_tasks_validate;
            """)
        let (id, created) = try await CycleStore.enqueue(cycle: "custom", period: "2026-11-22", connection: conn)
        XCTAssertTrue(created)
        // Stage 1 had nothing to enqueue: stage 2 started at once, with the valid task only.
        var list = try await jobs(conn, run: id)
        XCTAssertEqual(list, ["noop:available"])
        try await finish(conn, run: id)
        try await finish(conn, run: id)
        list = try await jobs(conn, run: id)
        XCTAssertEqual(list, ["noop:succeeded", "noop:succeeded"])
        let current = try await run(conn, id)
        XCTAssertEqual(current.state, "partial")
        let outcome = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(current.outcomeJSON).utf8)) as? [String: Any])
        let skipped = try XCTUnwrap(outcome["skipped"] as? [[String: Any]])
        XCTAssertEqual(skipped.count, 2)
        XCTAssertTrue((skipped[0]["reason"] as? String ?? "").contains("unknown task \"no_such_task\""))
        XCTAssertTrue((skipped[1]["reason"] as? String ?? "").contains("bogus"))
    }

    func testConcurrentCompletionOfTheLastTwoJobsOfAStageStartsTheNextStageOnce() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let (id, _) = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-20", connection: conn)
        try await finish(conn, run: id)                                  // stage 1
        try await finish(conn, run: id, task: "earnings")                 // stage 2 has two jobs left
        let ids: [Int64] = try await conn.query(
            "SELECT id FROM maintenance_jobs WHERE run_id = $1 AND state = 'available' ORDER BY id", [id]).map { try $0.decode("id") }
        XCTAssertEqual(ids.count, 2)

        let a = try await PostgresConnection.connect(db.url)
        let b = try await PostgresConnection.connect(db.url)
        try await a.execute("BEGIN")
        try await b.execute("BEGIN")
        try await a.query("UPDATE maintenance_jobs SET state = 'succeeded' WHERE id = $1", [ids[0]])
        // B's trigger waits on A's lock of the run row...
        let bDone = Task { try await b.query("UPDATE maintenance_jobs SET state = 'succeeded' WHERE id = $1", [ids[1]]) }
        var waiting = false
        for _ in 0..<500 where !waiting {
            waiting = try await conn.query(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [Int(b.backendPID)]
            ).first?.decode("n", as: Int.self) == 1
            if !waiting { try await Task.sleep(for: .milliseconds(10)) }
        }
        XCTAssertTrue(waiting, "session B never waited for the run lock")
        // ...and sees A's commit once it has it.
        try await a.execute("COMMIT")
        _ = try await bDone.value
        try await b.execute("COMMIT")
        let list = try await jobs(conn, run: id)
        XCTAssertEqual(list.filter { $0.hasPrefix("validate") }, ["validate:available"])

        // Both commit orders, many times: the next stage is enqueued exactly once each time.
        for round in 0..<10 {
            let (run, _) = try await CycleStore.enqueue(cycle: "daily", period: "2026-10-\(String(format: "%02d", round + 5))", force: true, connection: conn)
            try await finish(conn, run: run)
            try await finish(conn, run: run, task: "earnings")
            let pair: [Int64] = try await conn.query(
                "SELECT id FROM maintenance_jobs WHERE run_id = $1 AND state = 'available' ORDER BY id", [run]).map { try $0.decode("id") }
            async let one: Void = Self.complete(url: db.url, job: pair[0])
            async let two: Void = Self.complete(url: db.url, job: pair[1])
            _ = try await (one, two)
            let stage3 = try await jobs(conn, run: run).filter { $0.hasPrefix("validate") }
            XCTAssertEqual(stage3, ["validate:available"], "round \(round)")
        }
    }

    func testOneStatementFinishingJobsOfSeveralRunsAdvancesEach() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let first = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-09", connection: conn)
        let second = try await CycleStore.enqueue(cycle: "weekly", period: "2026-11-16", connection: conn)
        // As a worker's batched completion does: one UPDATE over jobs of both runs.
        try await conn.query(
            "UPDATE maintenance_jobs SET state = 'succeeded' WHERE run_id = ANY($1::bigint[])", [[first.runID, second.runID]])
        for id in [first.runID, second.runID] {
            let list = try await jobs(conn, run: id)
            XCTAssertEqual(list, ["vacuum:succeeded", "compress:available"])
        }
        // Other updates (heartbeats, progress) leave runs alone.
        try await conn.query("UPDATE maintenance_jobs SET heartbeat_at = now(), progress = '{}' WHERE run_id IS NOT NULL")
        let count = try await conn.query("SELECT count(*) AS n FROM maintenance_jobs").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 4)
    }

    private static func complete(url: String, job: Int64) async throws {
        let c = try await PostgresConnection.connect(url)
        try await c.query("UPDATE maintenance_jobs SET state = 'succeeded' WHERE id = $1", [job])
        await c.close()
    }

    func testSchedulerEnqueuesDueCyclesOncePerPeriodWithoutBackfill() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let scheduler = CycleScheduler()
        func at(_ text: String) -> Date { Date(postgresText: text)! }
        func names(_ runs: [EnqueuedRun]) -> [String] { runs.map { "\($0.cycle) \($0.period)" } }

        // Friday 2026-11-20, 16:30 New York (EST): the monthly run of November is overdue
        // (caught up), the daily one is not due yet, the weekly one is due on Saturday.
        var runs = try await scheduler.tick(connection: conn, now: at("2026-11-20 21:30:00+00"))
        XCTAssertEqual(names(runs), ["monthly 2026-11-01"])
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-20 22:05:00+00"))
        XCTAssertEqual(names(runs), ["daily 2026-11-20"])
        XCTAssertTrue(runs.allSatisfy(\.created))
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-20 23:00:00+00"))
        XCTAssertEqual(runs, [])
        // Saturday morning: weekly; no daily on a weekend.
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-21 11:30:00+00"))
        XCTAssertEqual(names(runs), ["weekly 2026-11-16"])
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-21 23:30:00+00"))
        XCTAssertEqual(runs, [])
        // Workers down Monday to Wednesday evening: Tuesday's run is caught up (the previous
        // trading day), then Wednesday's; Monday's is not backfilled.
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-25 22:30:00+00"))
        XCTAssertEqual(names(runs), ["daily 2026-11-24", "daily 2026-11-25"])
        // Thanksgiving: nothing.
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-26 22:30:00+00"))
        XCTAssertEqual(runs, [])
        // Summer time (EDT, UTC-4): 17:00 New York is 21:00 UTC.
        runs = try await scheduler.tick(connection: conn, now: at("2026-07-01 20:59:00+00"))
        XCTAssertEqual(names(runs), ["monthly 2026-07-01"])
        runs = try await scheduler.tick(connection: conn, now: at("2026-07-01 21:00:00+00"))
        XCTAssertEqual(names(runs), ["daily 2026-07-01"])

        // Many schedulers ticking at once create each run once.
        try await conn.execute("DELETE FROM maintenance_jobs; DELETE FROM maintenance_cycle_runs")
        let url = db.url
        let created = try await withThrowingTaskGroup(of: [EnqueuedRun].self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let c = try await PostgresConnection.connect(url)
                    let runs = try await CycleScheduler().tick(connection: c, now: at("2026-11-20 22:05:00+00"))
                    await c.close()
                    return runs
                }
            }
            var all: [EnqueuedRun] = []
            for try await runs in group { all += runs }
            return all
        }
        XCTAssertEqual(created.filter(\.created).map { "\($0.cycle) \($0.period)" }.sorted(), ["daily 2026-11-20", "monthly 2026-11-01"])
        let count = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 2)
    }

    func testTodaysDailyRunIsNotCreatedBeforeItsTimeUnlessForced() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        func at(_ text: String) -> Date { Date(postgresText: text)! }
        // Monday 2026-12-07, 10:00 New York (EST): the run is due at 17:00 (22:00 UTC).
        let early = try await conn.query(
            "SELECT run_id, created, period::text AS period, note, due_at FROM maintenance_enqueue_cycle('daily', NULL, false, $1)",
            [at("2026-12-07 15:00:00+00")]).first
        XCTAssertNil(early?["run_id"])
        XCTAssertEqual(early?["created"], "f")
        XCTAssertEqual(early?["period"], "2026-12-07")
        XCTAssertTrue(early?["note"]?.contains("not due until 17:00 America/New_York") ?? false, early?["note"] ?? "")
        XCTAssertEqual(try early?.decode("due_at", as: Date.self), at("2026-12-07 22:00:00+00"))
        do {
            _ = try await CycleStore.enqueue(cycle: "daily", at: at("2026-12-07 15:00:00+00"), connection: conn)
            XCTFail("a run before its time was created")
        } catch MaintenanceError.cycleNotEnqueued(_, let period, let reason) {
            XCTAssertEqual(period, "2026-12-07")
            XCTAssertTrue(reason.contains("not due until 17:00"), reason)
        }
        // Summer time: 17:00 New York is 21:00 UTC.
        let summer = try await CycleStore.enqueue(cycle: "daily", at: at("2026-07-01 21:00:00+00"), connection: conn)
        XCTAssertTrue(summer.created)
        var count = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 1)
        // Forced, or once due, it is created; asked again before its time, the run is returned.
        let forced = try await CycleStore.enqueue(cycle: "daily", force: true, at: at("2026-12-07 15:00:00+00"), connection: conn)
        XCTAssertTrue(forced.created)
        let again = try await CycleStore.enqueue(cycle: "daily", at: at("2026-12-07 15:30:00+00"), connection: conn)
        XCTAssertEqual(again.runID, forced.runID)
        XCTAssertFalse(again.created)
        let due = try await CycleStore.enqueue(cycle: "daily", at: at("2026-12-08 22:00:00+00"), connection: conn)
        XCTAssertTrue(due.created)
        // An explicit past period is a person's choice; weekly runs are not held to their hour.
        let past = try await CycleStore.enqueue(cycle: "daily", period: "2026-12-04", at: at("2026-12-07 15:00:00+00"), connection: conn)
        XCTAssertTrue(past.created)
        let weekly = try await CycleStore.enqueue(cycle: "weekly", at: at("2026-12-07 15:00:00+00"), connection: conn)
        XCTAssertTrue(weekly.created)
        count = try await conn.query("SELECT count(*) AS n FROM maintenance_cycle_runs").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 5)
    }

    func testCatchUpEnqueuesTheMissedPreviousTradingDayOnlyWithinItsWindow() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let scheduler = CycleScheduler()
        func at(_ text: String) -> Date { Date(postgresText: text)! }
        func daily(_ runs: [EnqueuedRun]) -> [String] { runs.filter { $0.cycle == "daily" }.map(\.period) }

        // A new install does not start with yesterday's run.
        var runs = try await scheduler.tick(connection: conn, now: at("2026-11-24 15:00:00+00"))
        XCTAssertEqual(daily(runs), [])
        _ = try await CycleStore.enqueue(cycle: "daily", period: "2026-11-24", connection: conn)
        // Every worker down from Wednesday to Monday morning: at start (10:00 New York) the
        // previous trading day, Friday the 27th (a half day), is caught up; Wednesday is not,
        // Thanksgiving and the weekend have no run, Monday's own run waits for 17:00.
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-30 15:00:00+00"))
        XCTAssertEqual(daily(runs), ["2026-11-27"])
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-30 15:01:00+00"))
        XCTAssertEqual(runs, [], "idempotent per period")
        runs = try await scheduler.tick(connection: conn, now: at("2026-11-30 22:01:00+00"))
        XCTAssertEqual(daily(runs), ["2026-11-30"])

        // A wider window reaches further back, oldest first; 0 turns catch-up off.
        try await conn.execute("UPDATE maintenance_cycles SET catch_up_periods = 3 WHERE cycle = 'daily'")
        runs = try await scheduler.tick(connection: conn, now: at("2026-12-03 15:00:00+00"))
        XCTAssertEqual(daily(runs), ["2026-12-01", "2026-12-02"])
        try await conn.execute("UPDATE maintenance_cycles SET catch_up_periods = 0 WHERE cycle = 'daily'")
        runs = try await scheduler.tick(connection: conn, now: at("2026-12-07 15:00:00+00"))
        XCTAssertEqual(daily(runs), [])
        let periods = try await conn.query("SELECT period::text AS p FROM maintenance_cycle_runs WHERE cycle = 'daily' ORDER BY period").map { $0["p"] ?? "" }
        XCTAssertEqual(periods, ["2026-11-24", "2026-11-27", "2026-11-30", "2026-12-01", "2026-12-02"])
    }

    func testQuarterlyCycleRunsOncePerQuarter() async throws {
        let db = try TestCluster.migratedDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let scheduler = CycleScheduler()
        func at(_ text: String) -> Date { Date(postgresText: text)! }
        func quarterly(_ runs: [EnqueuedRun]) -> [String] { runs.filter { $0.cycle == "quarterly" }.map(\.period) }
        // Shipped disabled.
        var runs = try await scheduler.tick(connection: conn, now: at("2027-01-01 11:00:00+00"))
        XCTAssertEqual(quarterly(runs), [])
        try await conn.execute("UPDATE maintenance_cycles SET enabled = true WHERE cycle = 'quarterly'")
        // 1 January 2027, 05:00 New York: due, although the NYSE is closed.
        runs = try await scheduler.tick(connection: conn, now: at("2027-01-01 09:59:00+00"))
        XCTAssertEqual(quarterly(runs), [])
        runs = try await scheduler.tick(connection: conn, now: at("2027-01-01 10:00:00+00"))
        XCTAssertEqual(quarterly(runs), ["2027-01-01"])
        runs = try await scheduler.tick(connection: conn, now: at("2027-03-31 20:00:00+00"))
        XCTAssertEqual(quarterly(runs), [])
        // Any day of the quarter names the same run.
        let again = try await CycleStore.enqueue(cycle: "quarterly", period: "2027-02-15", connection: conn)
        XCTAssertFalse(again.created)
        runs = try await scheduler.tick(connection: conn, now: at("2027-04-01 09:00:00+00"))
        XCTAssertEqual(quarterly(runs), ["2027-04-01"])
        let jobs = try await conn.query(
            "SELECT task FROM maintenance_jobs WHERE run_id = $1 ORDER BY id", [again.runID]).map { $0["task"] ?? "" }
        XCTAssertEqual(jobs, ["vacuum"])
        let period = try await conn.query("SELECT maintenance_cycle_period('quarter', '2027-08-31') AS p").first?["p"]
        XCTAssertEqual(period, "2027-07-01")
    }
}
