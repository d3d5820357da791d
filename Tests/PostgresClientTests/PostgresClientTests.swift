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
}
