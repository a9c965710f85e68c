#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TBJSON

/// A JSON-lines event log: one compact object per line, `{"time":"<ISO 8601>","ts":<ms>,"event":"<kind>",...}`.
///
/// Each line goes out with a single `write(2)`, so a reader (a test tailing the file) sees whole lines, in order,
/// as soon as they happen. Secrets are masked by the callers before they get here.
public final class EventLog: @unchecked Sendable {
    // Only written from the simulator's event loop; the descriptor is immutable after init.
    private let fd: Int32
    private let ownsDescriptor: Bool

    /// An event log that drops everything.
    public static let disabled = EventLog(fd: -1, owns: false)

    init(fd: Int32, owns: Bool) {
        self.fd = fd
        self.ownsDescriptor = owns
    }

    /// Opens `path` for appending (created 0600), or standard output for `-`.
    public static func open(path: String) throws(SimulatorError) -> EventLog {
        if path == "-" { return EventLog(fd: STDOUT_FILENO, owns: false) }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SimulatorError("cannot open event log \(path): \(String(cString: strerror(errno))); check the folder exists and is writable")
        }
        return EventLog(fd: fd, owns: true)
    }

    deinit {
        if self.ownsDescriptor && self.fd >= 0 { close(self.fd) }
    }

    /// Writes one event; `fields` follow `time`, `ts` and `event` in order.
    public func record(_ event: String, _ fields: [(String, JSONValue)]) {
        guard self.fd >= 0 else { return }
        let now = Date()
        var members: [(String, JSONValue)] = [
            ("time", .string(Self.iso8601(now))),
            ("ts", .integer(Int64((now.timeIntervalSince1970 * 1000).rounded(.down)))),
            ("event", .string(event)),
        ]
        members.append(contentsOf: fields)
        var line = JSONValue.object(members).serialized
        line += "\n"
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return write(self.fd, base + offset, raw.count - offset)
            }
            if n == 0 { return }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += n
        }
        bytes.removeAll()
    }

    static func iso8601(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms % 1000), 3))Z"
    }
}
