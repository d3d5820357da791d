import Foundation
import PostgresClient
import TestSupport
import XCTest

final class PostgresClientTests: XCTestCase {
    func testParametersAndTypedDecoding() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let rows = try await conn.query(
            "SELECT $1::bigint AS id, $2::text AS name, $3::bool AS flag, $4::numeric AS amount, NULL::int AS missing, $5::timestamptz AS at",
            [Int64(42), "it's \"quoted\"", true, Decimal(string: "12345678901234.5678")!, Date(timeIntervalSince1970: 1_700_000_000.25)])
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(try row.decode("id", as: Int64.self), 42)
        XCTAssertEqual(try row.decode("name", as: String.self), "it's \"quoted\"")
        XCTAssertEqual(try row.decode("flag", as: Bool.self), true)
        XCTAssertEqual(try row.decode("amount", as: Decimal.self), Decimal(string: "12345678901234.5678"))
        XCTAssertNil(try row.decodeIfPresent("missing", as: Int.self))
        XCTAssertEqual(try row.decode("at", as: Date.self).timeIntervalSince1970, 1_700_000_000.25, accuracy: 0.000001)
        XCTAssertThrowsError(try row.decode("missing", as: Int.self))
    }

    func testServerErrorCarriesSQLStateDetailAndConstraint() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int CONSTRAINT t_pk PRIMARY KEY)")
        try await conn.query("INSERT INTO t VALUES ($1)", [1])
        do {
            try await conn.query("INSERT INTO t VALUES ($1)", [1])
            XCTFail("duplicate key accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "23505")
            XCTAssertTrue(error.isUniqueViolation)
            XCTAssertEqual(error.constraint, "t_pk")
            XCTAssertEqual(error.detail, "Key (id)=(1) already exists.")
            XCTAssertFalse(error.isConnectionLost)
        }
        // The connection is still usable after an error.
        let count = try await conn.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 1)
    }

    func testTransactionRollsBackWhenBodyThrows() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int)")
        struct Boom: Error {}
        do {
            try await conn.withSession { session in
                try session.transaction { tx in
                    try tx.query("INSERT INTO t VALUES (1)")
                    throw Boom()
                }
            }
            XCTFail("no error")
        } catch is Boom {}
        let count = try await conn.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 0)
    }

    func testCopyInWithEscapesAndNulls() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int, note text)")
        let copied = try await conn.withSession { session in
            try session.copyIn("COPY t (id, note) FROM STDIN") { writer in
                for i in 0..<10_000 { try writer.writeRow([String(i), i % 2 == 0 ? "tab\there\\ and\nnewline" : nil]) }
            }
        }
        XCTAssertEqual(copied, 10_000)
        let row = try await conn.query("SELECT count(note) AS notes, max(note) AS sample FROM t").first
        XCTAssertEqual(try row?.decode("notes", as: Int.self), 5_000)
        XCTAssertEqual(row?["sample"], "tab\there\\ and\nnewline")
    }

    func testCopyErrorIsReportedAndConnectionSurvives() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int)")
        do {
            try await conn.withSession { session in
                try session.copyIn("COPY t (id) FROM STDIN") { writer in try writer.writeRow(["not a number"]) }
            }
            XCTFail("bad COPY accepted")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "22P02")
        }
        let one = try await conn.query("SELECT 1 AS one").first?.decode("one", as: Int.self)
        XCTAssertEqual(one, 1)
    }

    func testListenNotify() async throws {
        let db = try TestCluster.freshDatabase()
        let listener = try await PostgresConnection.connect(db.url)
        let sender = try await PostgresConnection.connect(db.url)
        try await listener.withSession { try $0.listen("closebell jobs") }
        try await sender.query("SELECT pg_notify($1, $2)", ["closebell jobs", "hello"])
        let received = try await listener.withSession { try $0.waitForNotifications(timeout: 5) }
        XCTAssertEqual(received.map(\.payload), ["hello"])
        XCTAssertEqual(received.first?.senderPID, sender.backendPID)
        let none = try await listener.withSession { try $0.waitForNotifications(timeout: 0.05) }
        XCTAssertTrue(none.isEmpty)
    }

    func testConnectionErrorNeverShowsPassword() async throws {
        let cluster = try TestCluster.shared()
        do {
            _ = try await PostgresConnection.connect("postgresql://nobody:s3cretpw@127.0.0.1:\(cluster.port)/nope")
            XCTFail("connected")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .connection)
            XCTAssertTrue(error.isConnectionLost)
            XCTAssertFalse(error.description.contains("s3cretpw"))
        }
    }

    func testCancelStopsARunningStatement() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let canceller = try XCTUnwrap(conn.canceller)
        Task.detached {
            try await Task.sleep(nanoseconds: 200_000_000)
            canceller.cancelCurrentStatement()
        }
        do {
            try await conn.query("SELECT pg_sleep(30)")
            XCTFail("not cancelled")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "57014")
        }
    }

    func testCommitOfAFailedTransactionIsReportedNotSwallowed() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        do {
            try await conn.withSession { session in
                try session.transaction { tx in
                    try tx.query("INSERT INTO t VALUES (1)")
                    // The body swallows an error: the server has aborted the transaction.
                    _ = try? tx.query("INSERT INTO t VALUES (1)")
                }
            }
            XCTFail("a rolled-back transaction was reported as committed")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "25P02")
        }
        let count = try await conn.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self)
        XCTAssertEqual(count, 0)
        let status = try await conn.query("SELECT 1 AS one").first?.decode("one", as: Int.self)
        XCTAssertEqual(status, 1, "the session is usable and outside any transaction")
    }

    func testMalformedConnectionStringNeverEchoesThePassword() async throws {
        let cluster = try TestCluster.shared()
        let strings = [
            "postgresql://nobody:pa%zzword@127.0.0.1:\(cluster.port)/nope",
            "host=127.0.0.1 port=\(cluster.port) password=sec ret",
        ]
        for conninfo in strings {
            do {
                _ = try await PostgresConnection.connect(conninfo)
                XCTFail("connected with \(conninfo)")
            } catch let error as PostgresError {
                XCTAssertEqual(error.kind, .connection)
                XCTAssertFalse(error.description.contains("zzword"), error.description)
                XCTAssertFalse(error.description.contains("ret\""), error.description)
            }
        }
    }

    /// A long wait (a month, or `.infinity` for "until a notification") used to trap converting
    /// the milliseconds to Int32, killing the process.
    func testWaitForNotificationsAcceptsAnyTimeout() async throws {
        let db = try TestCluster.freshDatabase()
        let listener = try await PostgresConnection.connect(db.url)
        let sender = try await PostgresConnection.connect(db.url)
        try await listener.withSession { try $0.listen("jobs") }
        for timeout in [30.0 * 86_400, .infinity] {
            let notify = Task {
                try await Task.sleep(nanoseconds: 200_000_000)
                try await sender.query("SELECT pg_notify('jobs', 'x')")
            }
            let received = try await listener.withSession { try $0.waitForNotifications(timeout: timeout) }
            try await notify.value
            XCTAssertEqual(received.map(\.payload), ["x"])
        }
        let none = try await listener.withSession { try $0.waitForNotifications(timeout: -.nan) }
        XCTAssertTrue(none.isEmpty)
    }

    /// Cancelling the task that awaits a statement cancels it on the server: a statement blocked
    /// on a lock held by an idle transaction used to keep waiting after its task was cancelled.
    func testTaskCancellationCancelsTheStatementOnTheServer() async throws {
        let db = try TestCluster.freshDatabase()
        let holder = try await PostgresConnection.connect(db.url)
        let waiter = try await PostgresConnection.connect(db.url)
        let observer = try await PostgresConnection.connect(db.url)
        try await holder.execute("CREATE TABLE t (id int)")
        try await holder.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        let pid = waiter.backendPID
        let blocked = Task { try await waiter.query("DELETE FROM t") }
        let waiting = try await eventually {
            try await observer.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [pid]).first?["wait_event_type"] == "Lock"
        }
        XCTAssertTrue(waiting)
        blocked.cancel()
        do {
            _ = try await blocked.value
            XCTFail("the blocked DELETE returned")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "57014", "\(error)")
            XCTAssertTrue(error.isCancellation)
        }
        let state = try await observer.query("SELECT state FROM pg_stat_activity WHERE pid = $1", [pid]).first?["state"]
        XCTAssertEqual(state, "idle", "the statement is gone from the server")
        // The connection stays usable, and the lock holder was never touched.
        let one = try await waiter.query("SELECT 1 AS one").first?["one"]
        XCTAssertEqual(one, "1")
        try await holder.execute("ROLLBACK")
    }

    /// A call cancelled before it reaches the connection's thread sends nothing; a call
    /// cancelled between its statements sends no further statement and rolls its transaction
    /// back; the other callers of a shared connection are not affected.
    func testCancelledCallsSendNothingMoreAndLeaveOtherCallsAlone() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        try await conn.execute("CREATE TABLE t (id int)")
        let cancelledFirst = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await conn.execute("INSERT INTO t VALUES (1)")
        }
        do {
            _ = try await cancelledFirst.value
            XCTFail("a cancelled call ran")
        } catch let error as PostgresError {
            XCTAssertEqual(error.kind, .cancelled)
        }
        let gate = TestGate()
        let inTransaction = Task {
            try await conn.withSession { session in
                try session.transaction { tx in
                    try tx.execute("INSERT INTO t VALUES (2)")
                    gate.open()
                    // Stands for Swift work between two statements, during which the task is cancelled.
                    while !gate.isReleased { usleep(10_000) }
                    try tx.execute("INSERT INTO t VALUES (3)")
                }
            }
        }
        try await gate.waitUntilOpen()
        inTransaction.cancel()
        gate.release()
        do {
            try await inTransaction.value
            XCTFail("the transaction went on after its task was cancelled")
        } catch let error as PostgresError {
            XCTAssertTrue(error.isCancellation)
        }
        // A shared connection: another caller's statements run as usual, before and after.
        let other = try await conn.query("SELECT count(*) AS n FROM t").first?["n"]
        XCTAssertEqual(other, "0", "nothing of the cancelled calls was committed")
        let status = try await conn.withSession { $0.isConnected }
        XCTAssertTrue(status)
    }

    /// Many tasks share one connection and a third of them are cancelled at random moments:
    /// a cancel request meant for one call must never cancel another caller's statement.
    func testCancellingSomeCallsOfASharedConnectionNeverHitsTheOthers() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(db.url)
        let results = await withTaskGroup(of: (Int, Result<String?, Error>).self) { group -> [(Int, Result<String?, Error>)] in
            var calls: [Task<String?, Error>] = []
            for i in 0..<150 {
                calls.append(Task { try await conn.query("SELECT pg_sleep(0.002), $1::int AS i", [i]).first?["i"] })
            }
            for (i, call) in calls.enumerated() {
                group.addTask {
                    if i % 3 == 0 {
                        try? await Task.sleep(nanoseconds: UInt64.random(in: 0...20_000_000))
                        call.cancel()
                    }
                    do { return (i, .success(try await call.value)) } catch { return (i, .failure(error)) }
                }
            }
            var all: [(Int, Result<String?, Error>)] = []
            for await result in group { all.append(result) }
            return all
        }
        for (i, result) in results where i % 3 != 0 {
            switch result {
            case .success(let value): XCTAssertEqual(value, "\(i)")
            case .failure(let error): XCTFail("call \(i) was not cancelled but failed: \(error)")
            }
        }
        for (i, result) in results where i % 3 == 0 {
            if case .failure(let error) = result {
                XCTAssertTrue((error as? PostgresError)?.isCancellation ?? false, "call \(i): \(error)")
            }
        }
        let one = try await conn.query("SELECT 1 AS one").first?["one"]
        XCTAssertEqual(one, "1")
    }

    func testKeepaliveSettingsAreAddedWithoutReplacingExplicitOnes() throws {
        let keepalive = ConnectionKeepalive(idleSeconds: 7, intervalSeconds: 2, count: 4, userTimeoutSeconds: 20, connectTimeoutSeconds: 5)
        let url = try ConnectionInfo(parsing: keepalive.applied(to: "postgresql://u@h:5433/db?keepalives_idle=60"))
        XCTAssertEqual(url["keepalives_idle"], "60", "the connection string's own value wins")
        XCTAssertEqual(url["keepalives_interval"], "2")
        XCTAssertEqual(url["keepalives_count"], "4")
        XCTAssertEqual(url["tcp_user_timeout"], "20000")
        XCTAssertEqual(url["connect_timeout"], "5")
        XCTAssertEqual(url["keepalives"], "1")
        XCTAssertEqual(url.databaseName, "db")
        XCTAssertEqual(url.port, "5433")
        XCTAssertEqual(try ConnectionInfo(parsing: keepalive.applied(to: "marketdata")).databaseName, "marketdata")
        let defaults = try ConnectionInfo(parsing: keepalive.applied(to: nil))
        XCTAssertNil(defaults.host, "libpq's PG* defaults still apply")
        XCTAssertEqual(defaults["keepalives_idle"], "7")
    }

    func testAConnectionWithKeepalivesWorks() async throws {
        let db = try TestCluster.freshDatabase()
        let conn = try await PostgresConnection.connect(try ConnectionKeepalive().applied(to: db.url))
        let one = try await conn.query("SELECT 1 AS one").first?["one"]
        XCTAssertEqual(one, "1")
    }
}

/// Lets a test and a blocking body on a connection's thread wait for each other.
private final class TestGate: @unchecked Sendable {
    private let lock = NSLock()
    private var opened = false
    private var released = false
    func open() { lock.withLock { opened = true } }
    func release() { lock.withLock { released = true } }
    var isReleased: Bool { lock.withLock { released } }
    func waitUntilOpen() async throws {
        while !lock.withLock({ opened }) { try await Task.sleep(nanoseconds: 10_000_000) }
    }
}
