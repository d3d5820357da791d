@testable import Closebell
import Foundation
import Logging
import XCTest

/// The JSON lines of `LineLogHandler`, written through a real pipe and parsed back.
final class LogOutputTests: XCTestCase {
    /// Logs through a handler writing to a pipe; returns the lines written.
    private func lines(format: LineLogHandler.Format = .json, _ body: (Logger) -> Void) throws -> [String] {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        let sink = LogSink(descriptor: ends[1])
        body(Logger(label: "closebell.test") { LineLogHandler(label: $0, format: format, sink: sink) })
        sink.flush()
        close(ends[1])
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(ends[0], &chunk, chunk.count)
            if count <= 0 { break }
            data.append(contentsOf: chunk[0..<count])
        }
        close(ends[0])
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    private func object(_ line: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
    }

    func testLinesStartWithTsLevelMsgAndCarryNumbersAsNumbers() throws {
        let written = try lines { logger in
            var logger = logger
            logger[metadataKey: "job_id"] = "42"
            logger.info("task_completed", metadata: ["duration_s": .stringConvertible(1.23), "attempt": .stringConvertible(2),
                                                     "symbol": "007", "note": "say \"hi\"\n\ttab \u{1}", "ok": .stringConvertible(true),
                                                     "ids": .array(["1", "x"]), "nested": .dictionary(["n": "-0.5e3"])])
            logger.warning("plain")
        }
        XCTAssertEqual(written.count, 2)
        let prefix = try NSRegularExpression(pattern: #"^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","level":"[a-z]+","msg":"#)
        for line in written {
            XCTAssertNotNil(prefix.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)), line)
        }
        let first = try object(written[0])
        XCTAssertEqual(first["level"] as? String, "info")
        XCTAssertEqual(first["msg"] as? String, "task_completed")
        XCTAssertEqual(first["event"] as? String, "task_completed")
        XCTAssertEqual(first["logger"] as? String, "closebell.test")
        XCTAssertEqual((first["duration_s"] as? NSNumber)?.doubleValue, 1.23)
        XCTAssertEqual((first["attempt"] as? NSNumber)?.intValue, 2)
        XCTAssertEqual((first["job_id"] as? NSNumber)?.intValue, 42, "numeric text is a number")
        XCTAssertEqual(first["symbol"] as? String, "007", "leading zeros stay text")
        XCTAssertEqual(first["note"] as? String, "say \"hi\"\n\ttab \u{1}")
        XCTAssertEqual(first["ok"] as? Bool, true)
        XCTAssertEqual((first["ids"] as? [Any])?.count, 2)
        XCTAssertEqual(((first["nested"] as? [String: Any])?["n"] as? NSNumber)?.doubleValue, -500)
        XCTAssertEqual(try object(written[1])["level"] as? String, "warning")
    }

    func testMetadataNeverOverwritesTheLineKeys() throws {
        let written = try lines { logger in
            var logger = logger
            logger[metadataKey: "level"] = "critical"
            logger.info("real", metadata: ["ts": "yesterday", "msg": "fake", "event": "fake", "logger": "other"])
        }
        let line = try XCTUnwrap(written.first)
        let fields = try object(line)
        XCTAssertEqual(fields["level"] as? String, "info")
        XCTAssertEqual(fields["msg"] as? String, "real")
        XCTAssertEqual(fields["event"] as? String, "real")
        XCTAssertEqual(fields["logger"] as? String, "closebell.test")
        XCTAssertNotEqual(fields["ts"] as? String, "yesterday")
        XCTAssertEqual(fields["meta_ts"] as? String, "yesterday")
        XCTAssertEqual(fields["meta_level"] as? String, "critical")
        XCTAssertEqual(fields["meta_msg"] as? String, "fake")
        XCTAssertEqual(line.components(separatedBy: #""level":"#).count, 2, "one level key: \(line)")
    }

    func testTextFormat() throws {
        let written = try lines(format: .text) { $0.info("worker_started", metadata: ["queue": "default", "note": "two words"]) }
        let line = try XCTUnwrap(written.first)
        XCTAssertTrue(line.contains(" INFO worker_started note=\"two words\" queue=default"), line)
    }
}
