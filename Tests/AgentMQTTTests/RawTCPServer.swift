import AgentTestSupport
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP listener that misbehaves on purpose: it accepts connections and then either closes them at
/// once (a "silent close", as ThingsBoard does for a malformed CONNECT) or holds them without a word.
///
/// `stop()` shuts the listener down, waits for the accepting thread to end, and only then closes the descriptors:
/// a stopped server's thread can never reach a descriptor number the kernel has since given to another socket.
/// (It once did: the thread of a stopped `.closeImmediately` server, on its way back into `accept`, accepted on the
/// next test's listener, which had been given the same number, and closed that test's connection.)
final class RawTCPServer: Sendable {
    enum Behaviour: Sendable {
        case closeImmediately
        case holdSilently
    }

    let port: Int
    private let listener: CInt
    private let accepted = Accepted()
    private let thread: JoinableThread
    private let stopped = Mutex(false)

    init(_ behaviour: Behaviour) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        var yes: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<CInt>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            let code = errno
            close(fd)
            throw TestSupportError("bind/listen failed: errno \(code)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
        self.listener = fd
        let accepted = self.accepted
        do {
            self.thread = try JoinableThread {
                while true {
                    let client = accept(fd, nil, nil)
                    if client < 0 {
                        if errno == EINTR || errno == ECONNABORTED { continue }
                        return  // EINVAL: stop() shut the listener down
                    }
                    _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                    switch behaviour {
                    case .closeImmediately:
                        // Waits for the CONNECT, but not forever: stop() joins this thread.
                        var timeout = timeval(tv_sec: 5, tv_usec: 0)
                        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                        var buffer = [UInt8](repeating: 0, count: 256)
                        _ = read(client, &buffer, buffer.count)
                        close(client)
                    case .holdSilently:
                        accepted.withLock { $0.append(client) }
                    }
                }
            }
        } catch {
            close(fd)
            throw error
        }
    }

    var connectionCount: Int { self.accepted.withLock { $0.count } }

    /// True once the accepting thread has ended (always, after `stop()` returns).
    var acceptThreadEnded: Bool { self.thread.isFinished }

    func stop() {
        let first = self.stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        // accept() on a listener that is shut down fails with EINVAL, whether the thread is in it now or gets
        // there later; the descriptor stays ours until the thread is gone.
        shutdown(self.listener, CInt(SHUT_RDWR))
        self.thread.join()
        close(self.listener)
        self.accepted.withLock { fds in
            for fd in fds { close(fd) }
            fds.removeAll()
        }
    }

    deinit { self.stop() }
}

/// The held connections, shared with the accepting thread.
final class Accepted: Sendable {
    private let fds = Mutex<[CInt]>([])
    func withLock<T>(_ body: (inout [CInt]) -> T) -> T { self.fds.withLock { body(&$0) } }
}
