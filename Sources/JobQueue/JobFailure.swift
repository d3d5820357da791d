import PostgresClient

/// An error that says whether running the job again could succeed.
///
/// The worker retries a failed job (up to its `max_attempts`, with backoff) only when the error
/// is retryable. Errors that do not conform are retried, as a failure of unknown cause may be
/// passing. Bad arguments, unknown tables and invalid settings are not retryable: the job fails
/// at its first attempt, with the error a user needs to fix the row or the configuration.
public protocol JobFailure: Error {
    /// True when a later attempt may succeed (a lost connection, a lock or serialization
    /// conflict); false when only a change to the job or the configuration can help.
    var retryable: Bool { get }
}

/// Decides whether a failed attempt is retried.
public enum RetryPolicy {
    /// Whether `error` may succeed on a later attempt: its own answer when it is a
    /// `JobFailure`, otherwise true.
    public static func isRetryable(_ error: any Error) -> Bool {
        (error as? any JobFailure)?.retryable ?? true
    }
}

extension InvalidJobArguments: JobFailure {
    /// Never: the same arguments fail the same way.
    public var retryable: Bool { false }
}

extension UnknownTask: JobFailure {
    /// Never on this worker: it does not run the task.
    public var retryable: Bool { false }
}

extension PostgresError: JobFailure {
    /// False for statements the server refuses for what they are, not for when they ran:
    /// SQLSTATE class 42 (syntax error, undefined table or column, insufficient privilege) and
    /// class 22 (data exception), and for values that cannot be decoded. True for the rest:
    /// lost connections, lock and serialization conflicts (class 40, 55P03), cancellation and
    /// timeouts (57014), resource shortages (class 53) and anything not classified.
    public var retryable: Bool {
        if kind == .decoding { return false }
        guard kind == .server, let state = sqlState else { return true }
        return !(state.hasPrefix("42") || state.hasPrefix("22"))
    }
}
