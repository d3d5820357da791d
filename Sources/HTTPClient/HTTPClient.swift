import CCurl
import Foundation
import Toolkit

/// `curl_global_init` runs once, the first time any client is created (Swift initialises globals
/// lazily and thread-safely).
private let curlGlobalInitResult: CURLcode = cb_global_init()

/// Settings of one `HTTPClient`.
public struct HTTPClientConfiguration: Sendable {
    /// Seconds allowed to establish a connection (libcurl `CURLOPT_CONNECTTIMEOUT_MS`). Default 10.
    public var connectTimeout: TimeInterval
    /// Seconds allowed for a whole transfer, connect included (`CURLOPT_TIMEOUT_MS`). Default 60.
    public var timeout: TimeInterval
    /// Transfers run at once; each runs on its own dedicated thread that keeps its own libcurl
    /// handle (and so its connections) across requests. Default 8.
    public var maxConcurrentTransfers: Int
    /// Largest response body accepted, in bytes. Default 256 MiB.
    public var maxResponseBytes: Int
    /// The `User-Agent` header sent unless the request sets one.
    public var userAgent: String

    /// Creates a configuration; every value has a default.
    public init(connectTimeout: TimeInterval = 10, timeout: TimeInterval = 60, maxConcurrentTransfers: Int = 8,
                maxResponseBytes: Int = 256 << 20, userAgent: String = "closebell/1") {
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.maxConcurrentTransfers = max(1, maxConcurrentTransfers)
        self.maxResponseBytes = maxResponseBytes
        self.userAgent = userAgent
    }
}

/// An async HTTP/1.1 and HTTP/2 client over libcurl.
///
/// libcurl's easy interface blocks, so transfers never run on Swift's cooperative thread pool:
/// they run on the client's `ThreadExecutor` (up to `maxConcurrentTransfers` threads of its
/// own), each with a reusable easy handle (so keep-alive connections are reused), and `send`
/// suspends until the transfer is done. Responses are gzip-decoded
/// (`CURLOPT_ACCEPT_ENCODING ""`); signals are never used (`CURLOPT_NOSIGNAL`). Cancelling the
/// calling task aborts the transfer. Share one client: it is `Sendable`.
public final class HTTPClient: Sendable {
    /// The settings this client was created with.
    public let configuration: HTTPClientConfiguration
    /// The transfer threads, started on demand up to `maxConcurrentTransfers`.
    private let executor: ThreadExecutor
    /// Easy handles not in use, the most recently used last (so its open connection is reused);
    /// nil once the client is shut down.
    private let idleHandles = LockedBox<[EasyTransfer]?>([])

    /// Creates a client; worker threads start on demand.
    public init(configuration: HTTPClientConfiguration = HTTPClientConfiguration()) {
        _ = curlGlobalInitResult
        self.configuration = configuration
        self.executor = ThreadExecutor(name: "closebell-http", maxThreads: configuration.maxConcurrentTransfers)
    }

    deinit { shutdown() }

    /// Sends `request` and returns the complete response. Any HTTP status is a response; only
    /// transport failures throw, as `HTTPClientError`.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let scheme = request.url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              request.url.host != nil else {
            throw HTTPClientError.invalidURL(request.redactedURL)
        }
        let job = TransferJob(request: request)
        let configuration = self.configuration, idleHandles = self.idleHandles
        do {
            return try await executor.run(dropIfNotStarted: true, {
                if job.isCancelled { throw job.cancelledError }
                let transfer = idleHandles.withLock { $0?.popLast() } ?? EasyTransfer(configuration: configuration)
                // Back on the stack before the caller wakes, so its next request reuses the
                // handle (and its connection).
                defer {
                    let closed = idleHandles.withLock { handles -> Bool in
                        handles?.append(transfer)
                        return handles == nil
                    }
                    if closed { transfer.close() }
                }
                return try transfer.perform(job).get()
            }, onCancel: {
                job.cancel()
            })
        } catch is CancellationError {
            throw job.cancelledError
        }
    }

    /// Stops the worker threads once queued transfers are done. Later `send` calls fail with `.cancelled`.
    public func shutdown() {
        executor.stop()
        let idle = idleHandles.withLock { handles -> [EasyTransfer] in
            defer { handles = nil }
            return handles ?? []
        }
        idle.forEach { $0.close() }
    }
}

/// One request and whether its caller was cancelled (read by the transfer's progress callback).
final class TransferJob: Sendable {
    let request: HTTPRequest
    private let cancelled = LockedBox(false)

    init(request: HTTPRequest) { self.request = request }

    var isCancelled: Bool { cancelled.value }

    func cancel() { cancelled.set(true) }

    var cancelledError: HTTPClientError { .cancelled(method: request.method, url: request.redactedURL) }
}

/// What the libcurl callbacks of one transfer write into.
final class TransferState {
    var body = Data()
    var headers: [String: String] = [:]
    let limit: Int
    var tooLarge = false
    let job: TransferJob

    init(limit: Int, job: TransferJob) {
        self.limit = limit
        self.job = job
    }

    func addHeaderLine(_ line: String) {
        if line.hasPrefix("HTTP/") {
            headers = [:]  // a new response (after 100 Continue or a redirect) starts
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { return }
        if let existing = headers[name] {
            headers[name] = existing + ", " + value
        } else {
            headers[name] = value
        }
    }
}

/// One reusable easy handle, used by one transfer at a time.
final class EasyTransfer: @unchecked Sendable {
    // @unchecked: wraps libcurl's easy handle and its error buffer (C pointers, not Sendable).
    // libcurl allows a handle on any thread but never on two at once: a handle is only used
    // by the transfer that took it off `HTTPClient.idleHandles` (under its lock) until it is
    // given back.
    private let handle: UnsafeMutableRawPointer?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let configuration: HTTPClientConfiguration

    init(configuration: HTTPClientConfiguration) {
        self.configuration = configuration
        self.handle = curl_easy_init()
        self.errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    func close() {
        if let handle { curl_easy_cleanup(handle) }
        errorBuffer.deallocate()
    }

    func perform(_ job: TransferJob) -> Result<HTTPResponse, Error> {
        let request = job.request
        let method = request.method
        let safeURL = request.redactedURL
        guard let handle else {
            return .failure(HTTPClientError.curl(code: Int(CURLE_FAILED_INIT.rawValue), method: method, url: safeURL,
                                                 message: "curl_easy_init failed"))
        }
        curl_easy_reset(handle)  // keeps the connection cache, DNS cache and TLS sessions
        errorBuffer[0] = 0
        let state = TransferState(limit: configuration.maxResponseBytes, job: job)
        let statePointer = Unmanaged.passUnretained(state).toOpaque()

        var headerList: UnsafeMutablePointer<curl_slist>?
        var hasUserAgent = false
        for header in request.headers {
            if header.name.lowercased() == "user-agent" { hasUserAgent = true }
            headerList = curl_slist_append(headerList, "\(header.name): \(header.value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        defer { curl_slist_free_all(headerList) }

        _ = cb_easy_setopt_string(handle, CURLOPT_URL, request.url.absoluteString)
        _ = cb_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = cb_easy_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "")
        _ = cb_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, EasyTransfer.milliseconds(configuration.connectTimeout))
        _ = cb_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, EasyTransfer.milliseconds(configuration.timeout))
        _ = cb_easy_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = cb_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = cb_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = cb_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        if !hasUserAgent { _ = cb_easy_setopt_string(handle, CURLOPT_USERAGENT, configuration.userAgent) }
        _ = cb_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)

        _ = cb_easy_setopt_data_function(handle, CURLOPT_WRITEFUNCTION) { data, size, count, userdata in
            guard let userdata else { return 0 }
            let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            if state.body.count + length > state.limit {
                state.tooLarge = true
                return 0
            }
            if let data, length > 0 {
                data.withMemoryRebound(to: UInt8.self, capacity: length) { state.body.append($0, count: length) }
            }
            return length
        }
        _ = cb_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, statePointer)
        _ = cb_easy_setopt_data_function(handle, CURLOPT_HEADERFUNCTION) { data, size, count, userdata in
            guard let userdata else { return 0 }
            let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            if let data, length > 0 {
                let bytes = UnsafeRawBufferPointer(start: data, count: length)
                state.addHeaderLine(String(decoding: bytes, as: UTF8.self))
            }
            return length
        }
        _ = cb_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, statePointer)
        _ = cb_easy_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        _ = cb_easy_setopt_xferinfo_function(handle) { userdata, _, _, _, _ in
            guard let userdata else { return 0 }
            let state = Unmanaged<TransferState>.fromOpaque(userdata).takeUnretainedValue()
            return state.job.isCancelled ? 1 : 0
        }
        _ = cb_easy_setopt_pointer(handle, CURLOPT_XFERINFODATA, statePointer)

        switch method {
        case "GET":
            _ = cb_easy_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case "HEAD":
            _ = cb_easy_setopt_long(handle, CURLOPT_NOBODY, 1)
        case "POST":
            _ = cb_easy_setopt_long(handle, CURLOPT_POST, 1)
        default:
            _ = cb_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        }
        if let body = request.body {
            _ = cb_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            body.withUnsafeBytes { raw in
                let empty: [CChar] = [0]
                if let base = raw.baseAddress, body.count > 0 {
                    _ = cb_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
                } else {
                    empty.withUnsafeBufferPointer { _ = cb_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress!)) }
                }
            }
        } else if method == "POST" {
            _ = cb_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, 0)
            _ = cb_easy_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
        }

        let code = curl_easy_perform(handle)
        withExtendedLifetime(state) {}
        if code != CURLE_OK {
            return .failure(mapError(code, state: state, job: job))
        }
        var status = 0
        _ = cb_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, headers: state.headers, body: state.body))
    }

    /// Seconds as curl milliseconds: at least 1, at most Int32.max (about 24 days); NaN → 1.
    static func milliseconds(_ seconds: TimeInterval) -> Int {
        let ms = seconds * 1000
        guard ms.isFinite else { return ms.isNaN ? 1 : Int(Int32.max) }
        return Int(min(Double(Int32.max), max(1, ms)))
    }

    private func mapError(_ code: CURLcode, state: TransferState, job: TransferJob) -> HTTPClientError {
        let method = job.request.method
        let url = job.request.redactedURL
        var message = String(cString: errorBuffer)
        if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
        switch code {
        case CURLE_OPERATION_TIMEDOUT: return .timeout(method: method, url: url, message: message)
        case CURLE_COULDNT_CONNECT: return .connectionRefused(method: method, url: url, message: message)
        case CURLE_COULDNT_RESOLVE_HOST: return .couldNotResolveHost(method: method, url: url, message: message)
        case CURLE_WRITE_ERROR where state.tooLarge: return .responseTooLarge(method: method, url: url, limit: state.limit)
        case CURLE_ABORTED_BY_CALLBACK: return .cancelled(method: method, url: url)
        default: return .curl(code: Int(code.rawValue), method: method, url: url, message: message)
        }
    }
}
