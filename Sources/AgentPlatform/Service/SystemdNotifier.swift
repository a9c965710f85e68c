#if canImport(Glibc)
import Glibc
#endif

/// systemd's notification protocol (`sd_notify(3)`) without libsystemd: datagrams like `READY=1`, `STATUS=…`,
/// `WATCHDOG=1` and `STOPPING=1` sent to the UNIX socket named by `$NOTIFY_SOCKET` (a path, or an abstract
/// socket when it starts with `@`). Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?
    /// Half of `$WATCHDOG_USEC` (as systemd recommends), when the unit has `WatchdogSec=` and the variable is
    /// meant for this process (`$WATCHDOG_PID` absent or equal to our PID).
    public let watchdogInterval: Duration?

    public init(environment: [String: String]) {
        self.socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        var interval: Duration? = nil
        if let usec = environment["WATCHDOG_USEC"].flatMap(Int64.init), usec > 0 {
            let forUs = environment["WATCHDOG_PID"].flatMap(Int32.init).map { $0 == getpid() } ?? true
            if forUs { interval = .microseconds(usec / 2) }
        }
        self.watchdogInterval = interval
    }

    public var isEnabled: Bool { self.socketPath != nil }

    public func ready(status: String? = nil) { self.send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
    public func status(_ text: String) { self.send(["STATUS=\(text)"]) }
    public func watchdog() { self.send(["WATCHDOG=1"]) }
    public func stopping() { self.send(["STOPPING=1"]) }
    public func reloading() { self.send(["RELOADING=1"]) }

    /// Sends one datagram with the given `KEY=VALUE` lines. Errors are ignored, as `sd_notify` callers do:
    /// a missing notification socket must not stop the agent.
    @discardableResult
    public func send(_ lines: [String]) -> Bool {
        guard let path = self.socketPath else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let message = Array((lines.joined(separator: "\n") + "\n").utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddrPointer in
                message.withUnsafeBytes { buffer in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), sockaddrPointer, length)
                }
            }
        }
        return sent == message.count
    }
}
