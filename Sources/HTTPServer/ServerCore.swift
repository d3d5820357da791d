import CHTTPSupport
import Foundation
import Toolkit
import Toolkit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on the monotonic clock.
func monotonicNow() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func nanoseconds(_ seconds: TimeInterval) -> UInt64 { UInt64(max(0, seconds) * 1_000_000_000) }

/// One client connection. It belongs to exactly one thread at a time: the event loop while a
/// request is being read, a handler thread while it is answered.
final class Connection: @unchecked Sendable {
    // @unchecked: never used by two threads at once; the hand-over between the event loop and
    // a handler thread goes through `ServerCore.shared`'s lock, which orders the accesses.
    enum Phase { case idle, head, body }

    let fd: Int32
    var parser = RequestParser()
    var phase: Phase
    /// When the current phase must end (monotonic nanoseconds).
    var deadline: UInt64
    /// When the connection started waiting for its current request (eviction picks the oldest).
    var waitingSince: UInt64
    /// Accept order, which breaks ties between connections that started waiting at the same moment.
    let serial: UInt64

    init(fd: Int32, serial: UInt64, now: UInt64, headerTimeout: TimeInterval) {
        self.fd = fd
        self.serial = serial
        phase = .head
        deadline = now + nanoseconds(headerTimeout)
        waitingSince = now
    }
}

/// The event loop, the handler pool and the state they share.
final class ServerCore: Sendable {
    struct Shared {
        var stopping = false
        var loopExited = false
        /// Connections a handler is answering (shut down by `stop`).
        var dispatched: Set<Int32> = []
        /// Keep-alive connections handed back to the event loop.
        var returning: [Connection] = []
    }

    let options: HTTPServerOptions
    let handler: HTTPServer.Handler
    let maxConnections: Int
    let stats = LockedBox(ServerStats())
    private let shared = LockedBox(Shared())
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let loopDone = DispatchSemaphore(value: 0)
    /// The handler threads, started as needed up to `handlerThreads`.
    let pool: ThreadExecutor
    private let bodyLimit: @Sendable (String, String) -> Int

    /// The event loop's own state (only its thread takes this lock, so it is never contended).
    private struct LoopState {
        var reading: [Int32: Connection] = [:]
        var readBuffer = [UInt8](repeating: 0, count: 16 << 10)
        var listenPausedUntil: UInt64 = 0
        var accepted: UInt64 = 0
    }

    private let loop = LockedBox(LoopState())

    init(listenFD: Int32, options: HTTPServerOptions, handler: @escaping HTTPServer.Handler) throws {
        var fds: [Int32] = [0, 0]
        guard chttp_pipe_cloexec_nonblock(&fds) == 0 else {
            throw HTTPServerError.socket(call: "pipe2", errno: errno, host: "", port: 0)
        }
        self.listenFD = listenFD
        self.wakeRead = fds[0]
        self.wakeWrite = fds[1]
        self.options = options
        self.handler = handler
        self.maxConnections = options.effectiveMaxConnections
        let limit = options.bodyLimit
        let maxBody = options.maxBodyBytes
        self.bodyLimit = { method, path in limit?(method, path) ?? maxBody }
        self.pool = ThreadExecutor(name: "closebell-http-handler", maxThreads: options.handlerThreads)
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    func start() {
        let thread = Thread { [self] in
            self.runLoop()
            self.loopDone.signal()
        }
        thread.name = "closebell-http-loop"
        thread.stackSize = 512 << 10
        thread.start()
    }

    func stop() {
        let first: Bool = shared.withLock { s in
            let was = s.stopping
            s.stopping = true
            for fd in s.dispatched { shutdown(fd, Int32(SHUT_RDWR)) }
            return !was
        }
        guard first else { return }
        wake()
        loopDone.wait()
        pool.stop()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    // MARK: - The event loop

    private func runLoop() {
        var fds: [pollfd] = []
        var order: [Connection] = []
        while true {
            let returned: [Connection]? = shared.withLock { s in
                if s.stopping { return nil }
                defer { s.returning = [] }
                return s.returning
            }
            guard let returned else { break }
            var now = monotonicNow()
            for connection in returned {
                connection.phase = .idle
                connection.deadline = now + nanoseconds(options.idleTimeout)
                connection.waitingSince = now
                loop.withLock { $0.reading[connection.fd] = connection }
                process(connection, now: now)
            }
            var next = now + 1_000_000_000
            for connection in loop.withLock({ Array($0.reading.values) }) {
                if connection.deadline <= now {
                    expire(connection)
                } else {
                    next = min(next, connection.deadline)
                }
            }

            fds.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            let pausedUntil = loop.withLock { $0.listenPausedUntil }
            let listening = now >= pausedUntil
            fds.append(pollfd(fd: listening ? listenFD : -1, events: Int16(POLLIN), revents: 0))
            if !listening { next = min(next, pausedUntil) }
            for connection in loop.withLock({ Array($0.reading.values) }) {
                fds.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0))
                order.append(connection)
            }
            let waitMs = Int32(min(1000, max(1, (next > now ? next - now : 0) / 1_000_000 + 1)))
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 {
                if errno == EINTR { continue }
                usleep(1000)
                continue
            }
            if fds[0].revents != 0 { drainWake() }
            now = monotonicNow()
            if fds[1].revents != 0 { acceptConnections(now: now) }
            for (index, connection) in order.enumerated() where fds[index + 2].revents != 0 {
                guard loop.withLock({ $0.reading[connection.fd] }) === connection else { continue }
                readFrom(connection, now: now)
            }
        }
        shutDownLoop()
    }

    private func shutDownLoop() {
        close(listenFD)
        let open = loop.withLock { l -> [Connection] in
            defer { l.reading.removeAll() }
            return Array(l.reading.values)
        }
        for connection in open { closeConnection(connection) }
        let leftover: [Connection] = shared.withLock { s in
            s.loopExited = true
            defer { s.returning = [] }
            return s.returning
        }
        for connection in leftover { closeConnection(connection) }
    }

    private func drainWake() {
        var bytes = [UInt8](repeating: 0, count: 256)
        while read(wakeRead, &bytes, bytes.count) > 0 {}
    }

    private func acceptConnections(now: UInt64) {
        for _ in 0..<256 {
            let fd = chttp_accept_cloexec_nonblock(listenFD)
            if fd < 0 {
                let code = errno
                if code == EINTR || code == ECONNABORTED { continue }
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    // Out of descriptors: make room by dropping the longest waiter, and let the
                    // backlog wait a moment instead of spinning on the listening socket.
                    if let victim = oldestWaiting() { evict(victim) }
                    loop.withLock { $0.listenPausedUntil = now + 50_000_000 }
                }
                return
            }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let open = stats.withLock { $0.public.open }
            if open >= maxConnections {
                if let victim = oldestWaiting() {
                    evict(victim)
                } else {
                    stats.withLock { $0.public.rejectedAtCap += 1 }
                    Self.sendBestEffort(fd, Self.errorBytes(503, "too many connections; try again"))
                    close(fd)
                    continue
                }
            }
            stats.withLock { s in
                s.connections += 1
                s.public.open += 1
            }
            let headerTimeout = options.headerTimeout
            loop.withLock { l in
                l.accepted += 1
                l.reading[fd] = Connection(fd: fd, serial: l.accepted, now: now, headerTimeout: headerTimeout)
            }
        }
    }

    private func oldestWaiting() -> Connection? {
        loop.withLock { l in l.reading.values.min { ($0.waitingSince, $0.serial) < ($1.waitingSince, $1.serial) } }
    }

    private func evict(_ connection: Connection) {
        loop.withLock { $0.reading[connection.fd] = nil }
        stats.withLock { $0.public.evictedAtCap += 1 }
        if !connection.parser.isEmpty { Self.sendBestEffort(connection.fd, Self.errorBytes(503, "too many connections; try again")) }
        closeConnection(connection)
    }

    private func expire(_ connection: Connection) {
        loop.withLock { $0.reading[connection.fd] = nil }
        if connection.phase != .idle || !connection.parser.isEmpty {
            stats.withLock { $0.public.timedOut += 1 }
            Self.sendBestEffort(connection.fd, Self.errorBytes(408, "request not received in time"))
        }
        closeConnection(connection)
    }

    private func readFrom(_ connection: Connection, now: UInt64) {
        let fd = connection.fd
        let n = loop.withLock { l in l.readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
        guard n > 0 else {
            loop.withLock { $0.reading[connection.fd] = nil }
            if n == 0 && !connection.parser.isEmpty {
                Self.sendBestEffort(connection.fd, Self.errorBytes(400, "incomplete request"))
            }
            closeConnection(connection)
            return
        }
        loop.withLock { l in l.readBuffer.withUnsafeBytes { connection.parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
        process(connection, now: now)
    }

    /// Advances the connection's parser: dispatches a complete request, answers a bad one.
    private func process(_ connection: Connection, now: UInt64) {
        switch connection.parser.next(maxHeaderBytes: options.maxHeaderBytes, bodyLimit: bodyLimit) {
        case .needMore(let headComplete):
            if headComplete && connection.phase != .body {
                connection.phase = .body
                connection.deadline = now + nanoseconds(options.bodyTimeout)
            } else if !headComplete && connection.phase == .idle && !connection.parser.isEmpty {
                connection.phase = .head
                connection.deadline = now + nanoseconds(options.headerTimeout)
            }
            if connection.parser.wantsContinue {
                connection.parser.wantsContinue = false
                Self.sendBestEffort(connection.fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
        case .bad(let status, let reason):
            loop.withLock { $0.reading[connection.fd] = nil }
            Self.sendBestEffort(connection.fd, Self.errorBytes(status, reason))
            closeConnection(connection)
        case .request(let request, let keepAlive):
            if let inline = options.inlineHandler, let response = inline(request) {
                stats.withLock { $0.requests += 1 }
                let keep = keepAlive && !response.closeConnection
                let bytes = Self.responseBytes(response, keepAlive: keep, isHead: request.method == "HEAD")
                // One non-blocking write: the loop never waits for a client; one that cannot
                // take a small answer at once is closed.
                if !Self.sendAll(connection.fd, bytes, deadline: 0) || !keep {
                    loop.withLock { $0.reading[connection.fd] = nil }
                    closeConnection(connection)
                    return
                }
                connection.phase = .idle
                connection.deadline = now + nanoseconds(options.idleTimeout)
                connection.waitingSince = now
                process(connection, now: now)
                return
            }
            loop.withLock { $0.reading[connection.fd] = nil }
            let accepted = shared.withLock { s -> Bool in
                guard !s.stopping else { return false }
                s.dispatched.insert(connection.fd)
                return true
            }
            guard accepted else {
                closeConnection(connection)
                return
            }
            stats.withLock { $0.requests += 1 }
            let queued = pool.submit { [self] in self.answer(connection, request, keepAlive: keepAlive) }
            if !queued {
                // The pool stopped between the check above and now.
                shared.withLock { _ = $0.dispatched.remove(connection.fd) }
                closeConnection(connection)
            }
        }
    }

    // MARK: - Handler threads

    private func answer(_ connection: Connection, _ request: HTTPServerRequest, keepAlive: Bool) {
        let response = handler(request)
        var keep = false
        if !response.dropWithoutAnswer {
            keep = keepAlive && !response.closeConnection
            let deadline = monotonicNow() + nanoseconds(options.writeTimeout)
            let bytes = Self.responseBytes(response, keepAlive: keep, isHead: request.method == "HEAD")
            if !Self.sendAll(connection.fd, bytes, deadline: deadline) {
                keep = false
                if monotonicNow() >= deadline { stats.withLock { $0.public.timedOut += 1 } }
            }
        }
        let handedBack: Bool = shared.withLock { s in
            s.dispatched.remove(connection.fd)
            guard keep, !s.stopping, !s.loopExited else { return false }
            s.returning.append(connection)
            return true
        }
        if handedBack {
            wake()
        } else {
            closeConnection(connection)
        }
    }

    private func closeConnection(_ connection: Connection) {
        close(connection.fd)
        stats.withLock { $0.public.open -= 1 }
    }

    // MARK: - Writing

    /// Writes all of `bytes`, waiting for the socket to drain until `deadline`.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8], deadline: UInt64) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                #if os(Linux)
                return send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                #else
                return send(fd, raw.baseAddress! + offset, raw.count - offset, 0)
                #endif
            }
            if n > 0 {
                offset += n
                continue
            }
            guard n < 0 else { return false }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { return false }
            let now = monotonicNow()
            guard now < deadline else { return false }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&pfd, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
        }
        return true
    }

    /// One non-blocking write for short error answers; a client that does not read loses it.
    static func sendBestEffort(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { raw -> Int in
            #if os(Linux)
            return send(fd, raw.baseAddress!, raw.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            #else
            return send(fd, raw.baseAddress!, raw.count, 0)
            #endif
        }
    }

    static func errorBytes(_ status: Int, _ reason: String) -> [UInt8] {
        responseBytes(.text(reason + "\n", status: status), keepAlive: false, isHead: false)
    }

    static func responseBytes(_ response: HTTPServerResponse, keepAlive: Bool, isHead: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(response.status) \(HTTPServerResponse.reasonPhrase(response.status))\r\n"
        var hasDate = false
        for header in response.headers {
            let name = header.name.lowercased()
            if name == "content-length" || name == "connection" || name == "transfer-encoding" { continue }
            if name == "date" { hasDate = true }
            // Refuse to let a handler split the response with CR/LF in a header.
            let value = header.value.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
            head += "\(header.name): \(value)\r\n"
        }
        if !hasDate { head += "Date: \(httpDate())\r\n" }
        head += "Content-Length: \(response.body.count)\r\n"
        head += keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n"
        head += "\r\n"
        var bytes = Array(head.utf8)
        if !isHead { bytes.append(contentsOf: response.body) }
        return bytes
    }

    private static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var out = [CChar](repeating: 0, count: 64)
        let n = strftime(&out, out.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: out[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
