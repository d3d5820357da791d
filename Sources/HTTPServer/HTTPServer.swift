import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Limits of one `HTTPServer`.
public struct HTTPServerOptions: Sendable {
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431. Default 64 KiB.
    public var maxHeaderBytes: Int
    /// Largest request body accepted, in bytes; larger gets 413. Default 64 MiB.
    public var maxBodyBytes: Int
    /// Seconds an idle keep-alive connection (or a slow client) may stay silent before it is closed. Default 60.
    public var idleTimeout: TimeInterval
    /// The listen backlog. Default 128.
    public var backlog: Int32

    /// Creates options; every value has a default.
    public init(maxHeaderBytes: Int = 64 << 10, maxBodyBytes: Int = 64 << 20, idleTimeout: TimeInterval = 60, backlog: Int32 = 128) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeout = idleTimeout.isNaN ? 60 : min(86_400, max(0.001, idleTimeout))
        self.backlog = backlog
    }
}

/// A small HTTP/1.1 server on POSIX sockets, for loopback use (health and metrics endpoints,
/// webhook receivers in tests, the sample Polygon server).
///
/// One dedicated thread accepts connections and every connection gets its own dedicated
/// thread (never Swift's cooperative pool), so a handler may block or sleep. Connections are
/// kept alive (HTTP/1.1 default) and bodies use `Content-Length`. A malformed request gets a
/// 400 (431 for oversized heads, 413 for oversized bodies, 501 for chunked uploads) and its
/// connection is closed; it never brings the server down.
public final class HTTPServer: Sendable {
    /// The request handler type. It runs on the connection's thread.
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

    private init(host: String, port: UInt16, core: ServerCore) {
        self.host = host
        self.port = port
        self.core = core
    }

    /// Binds `host:port` (port 0 picks a free port; read it from `port`) and starts accepting.
    public static func start(host: String = "127.0.0.1", port: UInt16 = 0, options: HTTPServerOptions = HTTPServerOptions(),
                             handler: @escaping Handler) throws -> HTTPServer {
        let (fd, boundPort) = try Listener.open(host: host, port: port, backlog: options.backlog)
        let core = ServerCore(listenFD: fd, options: options, handler: handler)
        core.startAccepting()
        return HTTPServer(host: host, port: boundPort, core: core)
    }

    /// Stops accepting, closes every open connection and waits for the accept thread to exit.
    /// Handlers still running finish on their own threads; their answers are dropped. Idempotent.
    public func stop() { core.stop() }

    deinit { core.stop() }
}

/// A value behind a lock.
final class ServerLocked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

struct ServerStats {
    var connections = 0
    var requests = 0
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
        #if os(Linux)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(family, SOCK_STREAM, 0)
        #endif
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

/// The shared state of a running server: the listening socket and the open connections.
final class ServerCore: @unchecked Sendable {
    let options: HTTPServerOptions
    let handler: HTTPServer.Handler
    let stats = ServerLocked(ServerStats())
    private let state: ServerLocked<(listenFD: Int32, open: Set<Int32>, stopping: Bool)>
    private let acceptExited = DispatchSemaphore(value: 0)

    init(listenFD: Int32, options: HTTPServerOptions, handler: @escaping HTTPServer.Handler) {
        self.options = options
        self.handler = handler
        self.state = ServerLocked((listenFD, [], false))
    }

    func startAccepting() {
        let listenFD = state.withLock { $0.listenFD }
        let thread = Thread { [self] in
            self.acceptLoop(listenFD)
            self.acceptExited.signal()
        }
        thread.name = "closebell-http-accept"
        thread.stackSize = 512 << 10
        thread.start()
    }

    func stop() {
        let (wasStopping, listenFD): (Bool, Int32) = state.withLock { s in
            let was = s.stopping
            s.stopping = true
            for fd in s.open { shutdown(fd, Int32(SHUT_RDWR)) }
            return (was, s.listenFD)
        }
        guard !wasStopping else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        acceptExited.wait()
        close(listenFD)
    }

    private func acceptLoop(_ listenFD: Int32) {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if state.withLock({ $0.stopping }) { return }
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    usleep(10_000)
                    continue
                }
                return
            }
            let accepted: Bool = state.withLock { s in
                if s.stopping { return false }
                s.open.insert(fd)
                return true
            }
            guard accepted else {
                close(fd)
                return
            }
            stats.withLock { $0.connections += 1 }
            let thread = Thread { [self] in
                let connection = ServerConnection(fd: fd, core: self)
                connection.run()
                self.state.withLock { s in _ = s.open.remove(fd) }
                close(fd)
            }
            thread.name = "closebell-http-conn"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}
