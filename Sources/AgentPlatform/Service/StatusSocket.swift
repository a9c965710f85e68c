import Synchronization
import TBJSON

#if canImport(Glibc)
import Glibc
#endif

/// The local introspection endpoint: a UNIX stream socket (`<runtime dir>/status.sock`, mode 0660) on which the
/// running agent answers each connection with one JSON document, what the `getStatus` RPC returns.
/// `tb-agent status` reads it; nothing is read from the client, so there is nothing to parse or abuse.
public final class StatusSocketServer: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let provider: @Sendable () -> JSONValue
    private let thread: pthread_t?
    /// Set by the first stop(): a second one (or deinit after it) must not join the thread again or close a
    /// descriptor number that may belong to another socket by then.
    private let stopped = Atomic<Bool>(false)

    /// Binds `path` (replacing a stale socket left by a crash) and serves on a background thread.
    public init(path: String, provider: @escaping @Sendable () -> JSONValue) throws(SocketError) {
        self.path = path
        self.provider = provider
        _ = unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("could not create the status socket", errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw SocketError("the status socket path \(path) is too long", ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let e = errno
            close(fd)
            throw SocketError("could not listen on the status socket \(path)", e)
        }
        _ = chmod(path, 0o660)
        self.fd = fd
        let box = Unmanaged.passRetained(Box(fd: fd, provider: provider))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
            box.serve()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            close(fd)
            throw SocketError("could not start the status socket's thread", rc)
        }
        self.thread = thread
    }

    /// Stops serving and removes the socket file. The descriptor is closed only after the accept thread has ended:
    /// shutdown() wakes it (accept fails on a shut-down listener), and it is joined first.
    public func stop() {
        guard !self.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = shutdown(self.fd, Int32(SHUT_RDWR))
        if let thread = self.thread { pthread_join(thread, nil) }
        close(self.fd)
        _ = unlink(self.path)
    }

    deinit { self.stop() }

    private final class Box {
        let fd: Int32
        let provider: @Sendable () -> JSONValue
        init(fd: Int32, provider: @escaping @Sendable () -> JSONValue) {
            self.fd = fd
            self.provider = provider
        }

        func serve() {
            while true {
                let client = accept(self.fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return  // shut down
                }
                let body = Array((self.provider().serialized + "\n").utf8)
                var offset = 0
                while offset < body.count {
                    let n = body[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break }
                    offset += n
                }
                close(client)
            }
        }
    }

    /// Reads the status document from a running agent's socket, or nil when none answers.
    public static func query(path: String, timeout: Duration = .seconds(2)) -> JSONValue? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { return nil }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
            if out.count > 1 << 20 { return nil }
        }
        return try? JSONValue.parse(out)
    }
}

public struct SocketError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public let code: Int32
    public init(_ message: String, _ code: Int32) {
        self.message = message
        self.code = code
    }
    public var description: String { "\(self.message): \(String(cString: strerror(self.code)))" }
}
