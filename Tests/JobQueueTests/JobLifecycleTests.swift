@testable import JobQueue
import PostgresClient
import XCTest

/// The per-claim state machine, without a database: every event in every state.
final class JobLifecycleTests: XCTestCase {
    private let success = JobOutcome.succeeded(result: PostgresJSON(text: #"{"ok": true}"#))
    private let failure = JobOutcome.failed(
        error: JobErrorRecord(attempt: 1, error: JobCancelled(), worker: "w", at: Date(timeIntervalSince1970: 0)), retryable: true, retryDelay: 2)
    private let limitError = JobErrorRecord(
        attempt: 1, error: TimeLimitExceeded(task: "vacuum", limitSeconds: 5), worker: "w", at: Date(timeIntervalSince1970: 0))

    private func running() -> JobLifecycle {
        var lifecycle = JobLifecycle()
        XCTAssertEqual(lifecycle.start(), .startTask)
        return lifecycle
    }

    func testATaskThatEndsIsWrittenThenDone() {
        var lifecycle = running()
        XCTAssertTrue(lifecycle.taskActive)
        XCTAssertEqual(lifecycle.taskEnded(success, timeLimitError: self.limitError), .writeOutcome(success))
        XCTAssertFalse(lifecycle.taskActive, "the slot frees when the task ends")
        XCTAssertTrue(lifecycle.holdsClaim, "the lease is renewed until the outcome is written")
        XCTAssertEqual(lifecycle.stored(), .none)
        XCTAssertEqual(lifecycle.state, .done)
        XCTAssertFalse(lifecycle.holdsClaim)
    }

    func testAFailureIsWrittenAsItIs() {
        var lifecycle = running()
        XCTAssertEqual(lifecycle.taskEnded(failure, timeLimitError: self.limitError), .writeOutcome(failure))
    }

    func testALostClaimCancelsTheTaskAndWritesNothing() {
        var lifecycle = running()
        XCTAssertEqual(lifecycle.stop(.claimLost), .cancelTask)
        XCTAssertEqual(lifecycle.stop(.claimLost), .none, "asked twice, cancelled once")
        XCTAssertEqual(lifecycle.taskEnded(success, timeLimitError: self.limitError), .forget)
        XCTAssertEqual(lifecycle.state, .done)
    }

    func testTheTimeLimitFailsTheAttemptWithTimeLimitExceeded() {
        var lifecycle = running()
        XCTAssertEqual(lifecycle.stop(.timeLimit(seconds: 5)), .cancelTask)
        let expected = JobOutcome.failed(error: limitError, retryable: true, retryDelay: 2)
        XCTAssertEqual(lifecycle.taskEnded(failure, timeLimitError: self.limitError), .writeOutcome(expected))
    }

    func testATaskThatCompletesAsItsTimeLimitPassesKeepsItsSuccess() {
        var lifecycle = running()
        _ = lifecycle.stop(.timeLimit(seconds: 5))
        XCTAssertEqual(lifecycle.taskEnded(success, timeLimitError: self.limitError), .writeOutcome(success))
    }

    /// The drain race: a task that ends after shutdown stopped it is released, or written when
    /// it completed, never both and never neither.
    func testShutdownReleasesAStoppedTaskAndWritesACompletedOne() {
        var stopped = running()
        XCTAssertEqual(stopped.stop(.shutdown), .cancelTask)
        XCTAssertTrue(stopped.taskActive, "still running until the task really ended")
        XCTAssertEqual(stopped.taskEnded(failure, timeLimitError: self.limitError), .release)
        XCTAssertEqual(stopped.state, .releasing)
        XCTAssertTrue(stopped.holdsClaim)
        XCTAssertEqual(stopped.stored(), .none)
        XCTAssertEqual(stopped.state, .done)

        var completed = running()
        _ = completed.stop(.shutdown)
        XCTAssertEqual(completed.taskEnded(success, timeLimitError: self.limitError), .writeOutcome(success))
    }

    func testAStopAfterTheTaskEndedChangesNothing() {
        for reason in [StopReason.claimLost, .shutdown, .timeLimit(seconds: 1)] {
            var lifecycle = running()
            _ = lifecycle.taskEnded(success, timeLimitError: self.limitError)
            XCTAssertEqual(lifecycle.stop(reason), .none)
            XCTAssertEqual(lifecycle.state, .finishing)
        }
    }

    func testALostClaimOverridesAnEarlierStopReason() {
        for first in [StopReason.shutdown, .timeLimit(seconds: 1)] {
            var lifecycle = running()
            _ = lifecycle.stop(first)
            XCTAssertEqual(lifecycle.stop(.claimLost), .none)
            XCTAssertEqual(lifecycle.taskEnded(failure, timeLimitError: self.limitError), .forget, "nothing can be written for a claim that is gone")
        }
        var lifecycle = running()
        _ = lifecycle.stop(.claimLost)
        _ = lifecycle.stop(.shutdown)
        XCTAssertEqual(lifecycle.state, .stopping(.claimLost))
    }

    func testAClaimNeverStartedIsReleasedAtShutdownOrForgottenWhenLost() {
        var shutdown = JobLifecycle()
        XCTAssertEqual(shutdown.stop(.shutdown), .release)
        XCTAssertEqual(shutdown.start(), .none, "a released claim never starts")
        var lost = JobLifecycle()
        XCTAssertEqual(lost.stop(.claimLost), .forget)
        XCTAssertFalse(lost.holdsClaim)
    }

    func testEventsOutOfOrderAreIgnored() {
        var lifecycle = JobLifecycle()
        XCTAssertEqual(lifecycle.taskEnded(success, timeLimitError: self.limitError), .none)
        XCTAssertEqual(lifecycle.stored(), .none)
        XCTAssertEqual(lifecycle.state, .claimed)
        var done = running()
        _ = done.taskEnded(success, timeLimitError: self.limitError)
        _ = done.stored()
        XCTAssertEqual(done.taskEnded(failure, timeLimitError: self.limitError), .none)
        XCTAssertEqual(done.start(), .none)
    }

    func testTimeLimitExceededSaysWhichLimit() {
        XCTAssertEqual(TimeLimitExceeded(task: "backup", limitSeconds: 21_600).description,
                       "task backup ran past its time limit of 21600 s and was stopped (worker.time_limits)")
        XCTAssertEqual(limitError.type, "TimeLimitExceeded")
    }
}
