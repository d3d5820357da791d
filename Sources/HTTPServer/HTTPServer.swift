import CHTTPSupport
import Foundation
import Toolkit
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits of one `HTTPServer`. Every limit is a setting, so tests can run in seconds and an
/// operator can tighten them.
public struct HTTPServerOptions: Sendable {
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431. Default 64 KiB.
    public var maxHeaderBytes: Int
    /// Largest request body accepted, in bytes, unless `bodyLimit` says otherwise; larger gets 413. Default 64 MiB.
    public var maxBodyBytes: Int
    /// The body limit of one route, from the request's method and path (a GET endpoint can
    /// refuse any body). nil: `maxBodyBytes` for every route.
    public var bodyLimit: (@Sendable (_ method: String, _ path: String) -> Int)?
    /// Seconds a keep-alive connection may wait for the first byte of its next request. Default 30.
    public var idleTimeout: TimeInterval
    /// Seconds the whole request head may take, counted from the connection's accept (or from
    /// the first byte of a later request on a keep-alive connection); a client that sends one
    /// byte at a time cannot stretch it. Past it: 408 and close. Default 10.
    public var headerTimeout: TimeInterval
    /// Seconds the body may take after the head. Default 30.
    public var bodyTimeout: TimeInterval
    /// Seconds writing one response may take (a client that does not read is dropped). Default 30.
    public var writeTimeout: TimeInterval
    /// Most connections open at once. Past it, the connection that has waited longest for its
    /// request is closed to make room (so a flood of idle or slow clients cannot lock out a
    /// health check), and when every open connection is busy in a handler, the new one gets 503.
    /// Never more than half the process's file-descriptor limit, so the rest of the process
    /// (database connections, backups) always has descriptors left. Default 512.
    public var maxConnections: Int
    /// Most handler threads (handlers run there, never on the event loop or Swift's
    /// cooperative pool; they are started as needed). Default 32.
    public var handlerThreads: Int
    /// The listen backlog. Default 128.
    public var backlog: Int32
    /// Answers some requests on the event loop itself, before the handler pool: for a liveness
    /// probe that must answer even when every handler thread is busy. It must not block; nil
    /// passes the request on to the handler. Default nil.
    public var inlineHandler: (@Sendable (HTTPServerRequest) -> HTTPServerResponse?)?

    /// Creates options; every value has a default.
    public init(maxHeaderBytes: Int = 64 << 10, maxBodyBytes: Int = 64 << 20,
                bodyLimit: (@Sendable (_ method: String, _ path: String) -> Int)? = nil,
                idleTimeout: TimeInterval = 30, headerTimeout: TimeInterval = 10, bodyTimeout: TimeInterval = 30,
                writeTimeout: TimeInterval = 30, maxConnections: Int = 512, handlerThreads: Int = 32, backlog: Int32 = 128,
                inlineHandler: (@Sendable (HTTPServerRequest) -> HTTPServerResponse?)? = nil) {
        func clamp(_ value: TimeInterval, _ fallback: TimeInterval) -> TimeInterval {
            value.isNaN ? fallback : min(86_400, max(0.001, value))
        }
        self.maxHeaderBytes = max(256, maxHeaderBytes)
        self.maxBodyBytes = max(0, maxBodyBytes)
        self.bodyLimit = bodyLimit
        self.idleTimeout = clamp(idleTimeout, 30)
        self.headerTimeout = clamp(headerTimeout, 10)
        self.bodyTimeout = clamp(bodyTimeout, 30)
        self.writeTimeout = clamp(writeTimeout, 30)
        self.maxConnections = max(1, maxConnections)
        self.handlerThreads = max(1, handlerThreads)
        self.backlog = backlog
        self.inlineHandler = inlineHandler
    }

    /// `maxConnections`, lowered to half the process's open-file limit when that is smaller.
    public var effectiveMaxConnections: Int {
        var limit = rlimit()
        #if os(Linux)
        let got = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #else
        let got = getrlimit(RLIMIT_NOFILE, &limit)
        #endif
        // RLIM_INFINITY is all ones; Swift cannot import the macro, so any value past Int's range counts as unlimited.
        guard got == 0, limit.rlim_cur < UInt64(Int.max) else { return maxConnections }
        return min(maxConnections, max(8, Int(limit.rlim_cur / 2)))
    }
}

/// A small HTTP/1.1 server on POSIX sockets, for loopback use (health, metrics and the
/// dashboard, webhook receivers in tests, the sample Polygon server).
///
/// One event-loop thread accepts connections and reads request heads and bodies with
/// `poll()`, non-blocking, so an idle or slow client costs a file descriptor and a buffer,
/// never a thread. The number of connections is capped (`HTTPServerOptions.maxConnections`),
/// the whole head must arrive within `headerTimeout`, and each route has its body limit.
/// Complete requests go to a bounded pool of handler threads (never Swift's cooperative
/// pool), so a handler may block. Sockets are close-on-exec from their creation, so child
/// processes never inherit them. Connections are kept alive (HTTP/1.1 default) and bodies use
/// `Content-Length`. A malformed request gets a 400 (431 for oversized heads, 413 for
/// oversized bodies, 408 for slow ones, 501 for chunked uploads) and its connection is
/// closed; it never brings the server down.
public final class HTTPServer: Sendable {
    /// The request handler type. It runs on a handler thread and may block.
    public typealias Handler = @Sendable (HTTPServerRequest) -> HTTPServerResponse

    /// The address the server listens on, as given to `start`.
    public let host: String
    /// The bound port (the chosen one when `start` was given port 0).
    public let port: UInt16
    private let core: ServerCore

    /// `http://host:port` (IPv6 hosts in brackets), without a trailing slash.
    public var baseURL: URL {
        let shown = host.contains(":") ? "[\(host)]" : host
        return URL(string: "http://\(shown):\(port)")!
    }

    /// Connections accepted so far.
    public var connectionsAccepted: Int { core.stats.withLock { $0.connections } }
    /// Requests parsed and handed to the handler so far.
    public var requestsHandled: Int { core.stats.withLock { $0.requests } }
    /// Counters of the server's protection: connections refused or evicted at the cap, and
    /// connections closed for a missed deadline.
    public var statistics: HTTPServerStatistics {
        var statistics = core.stats.withLock { $0.public }
        statistics.handlerThreads = core.pool.threadsStarted
        return statistics
    }
    /// The connection cap in force (`HTTPServerOptions.effectiveMaxConnections` at start).
    public var maxConnections: Int { core.maxConnections }

    private init(host: String, port: UInt16, core: ServerCore) {
        self.host = host
        self.port = port
        self.core = core
    }

    /// Binds `host:port` (port 0 picks a free port; read it from `port`) and starts accepting.
    public static func start(host: String = "127.0.0.1", port: UInt16 = 0, options: HTTPServerOptions = HTTPServerOptions(),
                             handler: @escaping Handler) throws -> HTTPServer {
        let (fd, boundPort) = try Listener.open(host: host, port: port, backlog: options.backlog)
        let core: ServerCore
        do {
            core = try ServerCore(listenFD: fd, options: options, handler: handler)
        } catch {
            close(fd)
            throw error
        }
        core.start()
        return HTTPServer(host: host, port: boundPort, core: core)
    }

    /// Stops accepting, closes every open connection and waits for the event loop to exit.
    /// Handlers still running finish on their own threads; their answers are dropped. Idempotent.
    public func stop() { core.stop() }

    deinit { core.stop() }
}

/// What the server refused or cut off, since it started.
public struct HTTPServerStatistics: Sendable, Equatable {
    /// Connections open now (waiting for a request, or in a handler).
    public var open: Int
    /// New connections answered 503 because every open one was busy in a handler.
    public var rejectedAtCap: Int
    /// Connections closed to make room for a new one (the one waiting longest for its request).
    public var evictedAtCap: Int
    /// Connections closed because the head, the body or a response write missed its deadline.
    public var timedOut: Int
    /// Handler threads started (never more than `handlerThreads`).
    public var handlerThreads: Int
}

struct ServerStats {
    var connections = 0
    var requests = 0
    var `public` = HTTPServerStatistics(open: 0, rejectedAtCap: 0, evictedAtCap: 0, timedOut: 0, handlerThreads: 0)
}

enum Listener {
    static func open(host: String, port: UInt16, backlog: Int32) throws -> (Int32, UInt16) {
        let address = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, address, &v4.sin_addr) == 1 {
            family = AF_INET
        } else if inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 {
            family = AF_INET6
        } else {
            throw HTTPServerError.invalidAddress(host)
        }
        let fd = chttp_socket_cloexec_nonblock(family)
        guard fd >= 0 else { throw HTTPServerError.socket(call: "socket", errno: errno, host: host, port: port) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        if family == AF_INET {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            bound = withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            bound = withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw HTTPServerError.socket(call: "bind", errno: code, host: host, port: port)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw HTTPServerError.socket(call: "listen", errno: code, host: host, port: port)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let actual: UInt16 = withUnsafePointer(to: &storage) { pointer in
            if family == AF_INET {
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
        }
        return (fd, actual)
    }
}
