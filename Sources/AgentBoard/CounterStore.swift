import AgentCore
import AgentPlatform

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
        let bytes: [UInt8]?
        do throws(AtomicFile.IOError) {
            let directory = try StateFileDirectory(self.directory)
            bytes = try directory.read(Self.fileName(path), limit: 4096)
        } catch {
            if error.errno == ENOENT { return 0 }
            throw AgentError(.storageFailure, "counter '\(name)': \(error)")
        }
        guard let bytes else { return 0 }
        guard let count = CounterTally.decode(String(decoding: bytes, as: UTF8.self)) else {
            throw AgentError(.storageFailure, "counter '\(name)': \(path) does not hold a count; delete it to start from 0")
        }
        return count
    }

    /// Replaces the stored count, crash-safely, relative to the folder's descriptor: a link planted in place of
    /// the file or its temporary file is removed, never followed.
    public func save(_ name: String, count: UInt64) throws(AgentError) {
        let path = self.path(for: name)
        guard Self.makeDirectories(AtomicFile.directory(of: self.directory)) else {
            throw AgentError(.storageFailure, "counter '\(name)': cannot create \(self.directory): \(String(cString: strerror(errno))); check `[device] state_dir`")
        }
        do {
            let directory = try StateFileDirectory(self.directory, create: 0o700)
            if let problem = StateOwnership.problem(directory.status, self.directory, what: "the counters directory") {
                throw AgentError(.storageFailure, "counter '\(name)': \(problem)")
            }
            try directory.replace(Self.fileName(path), with: Array(CounterTally.encode(count).utf8), mode: 0o644)
        } catch let error as AgentError {
            throw error
        } catch {
            throw AgentError(.storageFailure, "counter '\(name)': cannot replace \(path): \(error)")
        }
    }

    static func fileName(_ path: String) -> String { AtomicFile.name(of: path) }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) -> Bool {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") where part != "." {
            current += "/\(part)"
            if mkdir(current, 0o755) != 0 && errno != EEXIST { return false }
        }
        return true
    }
}
