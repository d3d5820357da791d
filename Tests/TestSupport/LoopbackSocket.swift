import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client socket on 127.0.0.1, for tests that play a misbehaving HTTP client (half
/// a request head, a byte at a time, never reading).
public final class LoopbackSocket: @unchecked Sendable {
    // @unchecked: the descriptor is an Int32; each test drives one socket from one task.
    /// The descriptor.
    public let fd: Int32

    /// Connects to `127.0.0.1:port`; nil when the connection is refused or fails.
    public init?(port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Ends the connection in both directions (the peer reads end of file); the descriptor
    /// itself is closed when the object goes.
    public func hangUp() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Sends `text`; false when the peer has closed the connection.
    @discardableResult
    public func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads until the peer closes or `seconds` pass; the bytes received.
    public func readAll(seconds: Double) -> String {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// True when the peer has closed the connection (a read returns end of file or an error
    /// without waiting); answers already sent are read and dropped.
    public var isClosedByPeer: Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }
            if n == 0 { return true }
            return !(errno == EAGAIN || errno == EWOULDBLOCK)
        }
    }
}

/// Facts about this test process from /proc.
public enum ProcessFacts {
    /// Resident memory in bytes (VmRSS).
    public static var residentBytes: Int64 { field("VmRSS:").map { $0 * 1024 } ?? 0 }
    /// Threads of the process.
    public static var threads: Int64 { field("Threads:") ?? 0 }

    private static func field(_ name: String) -> Int64? {
        guard let text = procFile("/proc/self/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            return Int64(line.dropFirst(name.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    /// A /proc file's text, read with read(2) to its end (these files report no size, so
    /// readers that trust stat see them empty).
    public static func procFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Raises the soft open-file limit to at least `wanted` (up to the hard limit); returns the limit in force.
    @discardableResult
    public static func raiseOpenFileLimit(to wanted: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < rlim_t(wanted) {
            limit.rlim_cur = min(limit.rlim_max, rlim_t(wanted))
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        return limit.rlim_cur > rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// The descriptors of this process whose socket has `port` as its local port (the server
    /// side of connections to a server on that port, and its listening socket), each with
    /// whether it is close-on-exec.
    public static func sockets(localPort port: UInt16) -> [(fd: Int32, closeOnExec: Bool)] {
        var inodes = Set<String>()
        for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
            guard let text = procFile(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9, let local = fields[1].split(separator: ":").last, UInt16(local, radix: 16) == port else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        var found: [(Int32, Bool)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let fd = Int32(name), let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                  target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) else { continue }
            let flags = fcntl(fd, F_GETFD)
            found.append((fd, flags >= 0 && flags & FD_CLOEXEC != 0))
        }
        return found
    }
}
