import Foundation

/// The diagnostic `noop` task: sleeps `sleep_ms` milliseconds and fails its first
/// `fail_times` attempts. Used by health checks, tests and the queue benchmark.
public struct NoopTask: JobTask {
    /// `noop`: its arguments and summary.
    public static let declaration = TaskDeclaration(
        name: "noop", arguments: ["sleep_ms": .integer, "fail_times": .integer],
        summary: "Diagnostic: sleep sleep_ms milliseconds; fail the first fail_times attempts.")

    /// Its arguments.
    public struct Arguments: Decodable {
        /// Milliseconds to sleep (default 0).
        public var sleep_ms: Int?
        /// Attempts to fail before succeeding (default 0).
        public var fail_times: Int?
    }

    /// Its result: `{}` for a job without arguments, else the sleep and the attempt.
    public struct Result: TaskResult, Equatable {
        /// Milliseconds slept.
        public var slept_ms: Int?
        /// The attempt that succeeded.
        public var attempt: Int?
        /// Creates a result (empty by default).
        public init(slept_ms: Int? = nil, attempt: Int? = nil) {
            self.slept_ms = slept_ms
            self.attempt = attempt
        }
    }

    /// The thrown error of a deliberately failed attempt.
    public struct DeliberateFailure: Error, CustomStringConvertible {
        /// The attempt that failed.
        public let attempt: Int
        /// How many attempts fail in all.
        public let failTimes: Int
        /// Creates the error.
        public init(attempt: Int, failTimes: Int) {
            self.attempt = attempt
            self.failTimes = failTimes
        }
        public var description: String { "noop: deliberate failure of attempt \(attempt) of \(failTimes)" }
    }

    /// Creates the task.
    public init() {}

    /// Sleeps, fails or succeeds as the arguments say.
    public func run(_ context: JobContext) async throws -> Result {
        // The common case (health checks, benchmarks) needs no decoding.
        if context.args.text == "{}" { return Result() }
        let args = try arguments(Arguments.self, of: context)
        var remaining = max(0, args.sleep_ms ?? 0)
        // Sleep in slices so cancellation is noticed within 50 ms.
        while remaining > 0 {
            try context.checkCancellation()
            let slice = min(remaining, 50)
            try await Task.sleep(nanoseconds: UInt64(slice) * 1_000_000)
            remaining -= slice
        }
        try context.checkCancellation()
        let failTimes = args.fail_times ?? 0
        if context.attempt <= failTimes {
            throw DeliberateFailure(attempt: context.attempt, failTimes: failTimes)
        }
        if (args.sleep_ms ?? 0) == 0 && failTimes == 0 { return Result() }
        return Result(slept_ms: args.sleep_ms ?? 0, attempt: context.attempt)
    }
}
