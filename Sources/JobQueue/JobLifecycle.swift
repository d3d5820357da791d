import PostgresClient

/// Why the worker stops a job's task before it ends by itself.
public enum StopReason: Sendable, Equatable {
    /// The worker no longer holds the claim: the job was cancelled (an UPDATE, `jobs cancel`,
    /// its cycle run cancelled) or its lease was lost (rescued by another worker).
    case claimLost
    /// The task ran longer than its time limit (seconds).
    case timeLimit(seconds: Double)
    /// The worker is shutting down and the grace period is over (or a second signal came).
    case shutdown
}

/// The life of one claim in a worker, as a value: events in, actions out.
///
/// `claimed → running → finishing → done` is the usual path. A stop request while the task
/// runs moves it to `stopping`; what happens when the task then ends depends on why it was
/// stopped: a lost claim writes nothing, a time limit writes a failed attempt
/// (`TimeLimitExceeded`), a shutdown releases the job (or writes its success, when the task
/// completed anyway). Because the task's end and the stop request are both events of this one
/// value, changed under the worker's lock, a task that ends while it is being stopped is
/// always either written or released, exactly once.
///
/// The worker performs the actions; this type does no I/O, so it is tested without a database.
struct JobLifecycle: Equatable {
    /// Where the claim is.
    enum State: Equatable {
        /// Claimed; the task has not started.
        case claimed
        /// The task runs.
        case running
        /// The task was asked to stop and has not ended yet.
        case stopping(StopReason)
        /// The task ended; its outcome waits to be written.
        case finishing
        /// The task ended (or never started); the job waits to be released to the queue.
        case releasing
        /// Nothing more to do for this claim.
        case done
    }

    /// What the worker must do after an event.
    enum Action: Equatable {
        /// Nothing.
        case none
        /// Start the task.
        case startTask
        /// Raise the job's cancellation flag and cancel its Swift task: its SQL statement is
        /// cancelled on the server and its child processes are stopped.
        case cancelTask
        /// Queue this outcome to be written.
        case writeOutcome(JobOutcome)
        /// Queue the job to be released (back to `available`, the attempt not counted).
        case release
        /// Write nothing: the claim is gone. The attempt ended as cancelled.
        case forget
    }

    private(set) var state: State = .claimed

    /// True while the claim still needs its lease (heartbeats).
    var holdsClaim: Bool {
        switch state {
        case .claimed, .running, .stopping, .finishing, .releasing: return true
        case .done: return false
        }
    }

    /// True while the task occupies a slot (started and not ended).
    var taskActive: Bool {
        switch state {
        case .running, .stopping: return true
        default: return false
        }
    }

    /// The worker wants to run the task.
    mutating func start() -> Action {
        guard state == .claimed else { return .none }
        state = .running
        return .startTask
    }

    /// The worker wants the task stopped.
    mutating func stop(_ reason: StopReason) -> Action {
        switch state {
        case .claimed:
            switch reason {
            case .claimLost:
                state = .done
                return .forget
            case .shutdown, .timeLimit:
                state = .releasing
                return .release
            }
        case .running:
            state = .stopping(reason)
            return .cancelTask
        case .stopping(let current):
            // A lost claim overrides: whatever the first reason, nothing can be written now.
            if reason == .claimLost, current != .claimLost { state = .stopping(.claimLost) }
            return .none
        case .finishing, .releasing, .done:
            // The task already ended: its outcome or release is queued (and is refused by the
            // database if the claim is gone), so stopping changes nothing.
            return .none
        }
    }

    /// The task returned (`.succeeded`) or threw (`.failed`). `timeLimitError` is the failure
    /// to record when the task was stopped by its time limit.
    mutating func taskEnded(_ outcome: JobOutcome, timeLimitError: @autoclosure () -> JobErrorRecord) -> Action {
        switch state {
        case .running:
            state = .finishing
            return .writeOutcome(outcome)
        case .stopping(.claimLost):
            state = .done
            return .forget
        case .stopping(.timeLimit):
            state = .finishing
            if case .succeeded = outcome { return .writeOutcome(outcome) }
            return .writeOutcome(.failed(error: timeLimitError(), retryable: true, retryDelay: outcome.retryDelay))
        case .stopping(.shutdown):
            if case .succeeded = outcome {
                state = .finishing
                return .writeOutcome(outcome)
            }
            state = .releasing
            return .release
        case .claimed, .finishing, .releasing, .done:
            return .none
        }
    }

    /// The outcome or the release was written (or refused because the claim was gone).
    mutating func stored() -> Action {
        switch state {
        case .finishing, .releasing: state = .done
        default: break
        }
        return .none
    }
}

extension JobOutcome: Equatable {
    /// The retry delay of a failed outcome (0 otherwise).
    var retryDelay: Double {
        if case .failed(_, _, let delay) = self { return delay }
        return 0
    }

    public static func == (lhs: JobOutcome, rhs: JobOutcome) -> Bool {
        switch (lhs, rhs) {
        case (.succeeded(let a), .succeeded(let b)): return a.text == b.text
        case (.failed(let a, let r1, let d1), .failed(let b, let r2, let d2)): return a == b && r1 == r2 && d1 == d2
        case (.cancelled, .cancelled): return true
        default: return false
        }
    }
}

/// A task ran past its time limit and was stopped (its statement cancelled on the server, its
/// child processes killed). The attempt fails and is retried like any other failure.
public struct TimeLimitExceeded: Error, CustomStringConvertible, Sendable {
    /// The task.
    public let task: String
    /// The limit, in seconds.
    public let limitSeconds: Double
    /// Creates the error.
    public init(task: String, limitSeconds: Double) {
        self.task = task
        self.limitSeconds = limitSeconds
    }
    public var description: String {
        let seconds = limitSeconds.rounded() == limitSeconds ? "\(Int(limitSeconds))" : "\(limitSeconds)"
        return "task \(task) ran past its time limit of \(seconds) s and was stopped (worker.time_limits)"
    }
}
