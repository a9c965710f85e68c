import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// Where pulse counters keep their totals across restarts: one small file per counter in
/// `<state_dir>/counters/`, replaced crash-safely (temporary file, fsync, rename, fsync of the folder), so a power
/// cut leaves either the old or the new count, never a torn one. Written rarely (each interval and at shutdown)
/// to spare the flash.
public struct CounterStore: Sendable {
    public let directory: String

    public init(stateDirectory: String) {
        self.directory = stateDirectory.hasSuffix("/") ? "\(stateDirectory)counters" : "\(stateDirectory)/counters"
    }

    public func path(for name: String) -> String {
        // Sensor names are telemetry keys; keep the file name to a safe alphabet.
        let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
        return "\(self.directory)/\(safe).count"
    }

    /// The stored count; 0 when there is none yet. A damaged file counts as none (and is reported).
    public func load(_ name: String) throws(AgentError) -> UInt64 {
        let path = self.path(for: name)
        let files = DiskBoardFiles(root: "/")
        let text: String
        do {
            text = try files.readText(path)
        } catch {
            if error.kind == .notFound { return 0 }
            throw AgentError(.storageFailure, "counter '\(name)': \(error)")
        }
        guard let count = CounterTally.decode(text) else {
            throw AgentError(.storageFailure, "counter '\(name)': \(path) does not hold a count; delete it to start from 0")
        }
        return count
    }

    /// Replaces the stored count, crash-safely.
    public func save(_ name: String, count: UInt64) throws(AgentError) {
        let path = self.path(for: name)
        guard Self.makeDirectories(self.directory) else {
            throw AgentError(.storageFailure, "counter '\(name)': cannot create \(self.directory): \(String(cString: strerror(errno))); check `[device] state_dir`")
        }
        let temporary = "\(path).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw AgentError(.storageFailure, "counter '\(name)': cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(CounterTally.encode(count).utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw AgentError(.storageFailure, "counter '\(name)': writing \(temporary) failed: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw AgentError(.storageFailure, "counter '\(name)': cannot replace \(path): \(reason)")
        }
        let dir = open(self.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) -> Bool {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/\(part)"
            if mkdir(current, 0o755) != 0 && errno != EEXIST { return false }
        }
        return true
    }
}
