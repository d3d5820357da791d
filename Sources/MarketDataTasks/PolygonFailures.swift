import HTTPClient
import JobQueue
import Polygon

// Polygon and HTTPClient do not import JobQueue (they know nothing of jobs), so their errors
// conform to `JobFailure` here, where tasks throw them. (All three modules are this package's,
// so Swift needs no `@retroactive` and no other module can declare a conflicting conformance.)

extension PolygonError: JobFailure {
    /// `isRetryable`: a bad API key (401/403) or an invalid argument fails the job at once;
    /// network errors, 429 and 5xx are retried.
    public var retryable: Bool { isRetryable }
}

extension HTTPClientError: JobFailure {
    /// `isRetryable`: an invalid URL fails the job at once; network errors are retried.
    public var retryable: Bool { isRetryable }
}
