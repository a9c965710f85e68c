import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// The credentials on flash, in `[device] state_dir`:
/// - `credentials.json`: the current generation (see `StoredCredentials` for the format), mode 0600;
/// - `credentials.previous.json`: the generation before it, kept for recovery;
/// - `credentials.lock`: serialises writers.
///
/// Writing a new generation: the validated current file is first copied to the previous generation (temporary
/// file, fsync, rename, directory fsync), then the new content replaces the current file the same way. A crash at
/// any step leaves the old or the new credentials in `credentials.json`, never garbage; a damaged current file
/// (checksum, torn, unparseable) falls back to the previous generation with a warning.
public struct CredentialStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var currentPath: String { self.directory + "/credentials.json" }
    public var previousPath: String { self.directory + "/credentials.previous.json" }
    var lockPath: String { self.directory + "/credentials.lock" }

    /// A step of `save`, for tests that interrupt it: first the previous generation is written, then the current.
    public enum WriteStep: Sendable, Hashable, CustomStringConvertible {
        case previous(AtomicFile.Step)
        case current(AtomicFile.Step)

        public static let allCases: [WriteStep] =
            AtomicFile.Step.allCases.map { .previous($0) } + AtomicFile.Step.allCases.map { .current($0) }

        public var description: String {
            switch self {
            case .previous(let step): return "previous generation: \(step.rawValue)"
            case .current(let step): return "current generation: \(step.rawValue)"
            }
        }
    }

    /// Where loaded credentials came from.
    public enum Source: Sendable, Equatable {
        case current
        /// The current file was damaged; the warning says why.
        case previous
    }

    /// The result of looking for credentials.
    public enum Lookup: Sendable, Equatable {
        case found(StoredCredentials, source: Source, warnings: [String])
        /// Nothing usable; `reason` says why in a sentence.
        case none(reason: String, warnings: [String])

        public var credentials: StoredCredentials? {
            if case .found(let stored, _, _) = self { return stored }
            return nil
        }

        public var warnings: [String] {
            switch self {
            case .found(_, _, let warnings), .none(_, let warnings): return warnings
            }
        }
    }

    public enum SaveOutcome: Sendable, Equatable {
        case written
        /// The same credentials were stored already: nothing was written.
        case unchanged
    }

    // MARK: - Loading

    /// Loads the current generation, or the previous one if the current file is damaged.
    ///
    /// - Throws: `AgentError.storageFailure` when a file exists but cannot be read (permissions).
    public func load() throws(AgentError) -> Lookup {
        let current = try self.read(self.currentPath)
        guard let current else {
            return .none(reason: "no credentials are stored in \(self.directory)", warnings: [])
        }
        let damage: String
        do {
            return .found(try StoredCredentials(document: current), source: .current, warnings: [])
        } catch {
            damage = error.reason
        }
        let previousBytes = try self.read(self.previousPath)
        guard let previousBytes else {
            return .none(
                reason: "\(self.currentPath) is damaged (\(damage)) and there is no previous generation: provision again with `tb-agent provision --force`",
                warnings: [])
        }
        do {
            let previous = try StoredCredentials(document: previousBytes)
            return .found(
                previous, source: .previous,
                warnings: [
                    "\(self.currentPath) is damaged (\(damage)); using the previous generation \(self.previousPath), issued \(previous.issuedAt)"
                ])
        } catch {
            return .none(
                reason: "\(self.currentPath) is damaged (\(damage)) and so is \(self.previousPath) (\(error.reason)): provision again with `tb-agent provision --force`",
                warnings: [])
        }
    }

    /// Loads the credentials for `server`. Credentials issued by another server are kept but not used.
    public func load(for server: ServerEndpoint) throws(AgentError) -> Lookup {
        let lookup = try self.load()
        guard case .found(let stored, _, let warnings) = lookup else { return lookup }
        guard stored.server == server else {
            return .none(
                reason: "the stored credentials of \(stored.deviceName) were issued by \(stored.server), not by \(server) (the [server] in the configuration); they are kept but not used: provision for \(server) with `tb-agent provision`",
                warnings: warnings)
        }
        return lookup
    }

    // MARK: - Writing

    /// Stores `record` as the current generation, keeping the one it replaces as the previous generation.
    ///
    /// - Parameter afterStep: test hook, run after each step (see `AtomicFile.SimulatedFailure`).
    /// - Returns: `.unchanged` if the same credentials were stored already (nothing is written).
    /// - Throws: `AgentError.storageFailure` naming the directory and the fix; what was stored stays as it was.
    @discardableResult
    public func save(_ record: StoredCredentials, afterStep: ((WriteStep) throws -> Void)? = nil) throws(AgentError)
        -> SaveOutcome
    {
        try StateDirectory.ensure(self.directory)
        // Never write what `load` will not read back: the store would stay unreadable until someone deletes it.
        let document = record.document
        guard document.count <= AtomicFile.maxReadBytes else {
            throw AgentError(
                .storageFailure,
                "the credentials of \(record.deviceName) are \(document.count) bytes, more than the \(AtomicFile.maxReadBytes) the store reads back; they were not stored (what the server sent is not usable credentials)")
        }
        return try self.withLock { () throws(AgentError) -> SaveOutcome in
            let currentBytes = try self.read(self.currentPath)
            let current = currentBytes.flatMap { try? StoredCredentials(document: $0) }
            if current == record { return .unchanged }
            // Temporary files left by an interrupted save were never renamed into place: garbage.
            unlink(self.currentPath + ".tmp")
            unlink(self.previousPath + ".tmp")
            do {
                // Only a valid current file becomes the previous generation: a damaged one must not replace a
                // good previous generation.
                if let currentBytes, current != nil {
                    try AtomicFile.write(currentBytes, to: self.previousPath) { step in try afterStep?(.previous(step)) }
                }
                try AtomicFile.write(document, to: self.currentPath) { step in try afterStep?(.current(step)) }
            } catch let error as AtomicFile.IOError {
                throw self.writeError(error)
            } catch let error as AtomicFile.Interrupted {
                throw AgentError(.storageFailure, "writing the credentials in \(self.directory) was interrupted", cause: StorageCause(description: "\(error.cause)"))
            } catch {
                throw AgentError(.storageFailure, "writing the credentials in \(self.directory) failed", cause: StorageCause(description: "\(error)"))
            }
            return .written
        }
    }

    /// Forgets the credentials: the current generation becomes the previous one (kept for recovery).
    ///
    /// - Returns: false if there was nothing to forget.
    @discardableResult
    public func forget() throws(AgentError) -> Bool {
        var status = stat()
        if stat(self.directory, &status) != 0 && errno == ENOENT { return false }
        return try self.withLock { () throws(AgentError) -> Bool in
            let currentBytes = try self.read(self.currentPath)
            guard let currentBytes else { return false }
            let valid = (try? StoredCredentials(document: currentBytes)) != nil
            // One atomic step: the current file becomes the previous generation. A damaged current file is only
            // removed, so that it cannot replace a good previous generation.
            let done = valid ? rename(self.currentPath, self.previousPath) : unlink(self.currentPath)
            if done != 0 {
                throw self.writeError(
                    AtomicFile.IOError(operation: valid ? "renaming \(self.currentPath) to" : "removing", path: valid ? self.previousPath : self.currentPath, errno: errno))
            }
            do {
                try AtomicFile.syncDirectory(self.directory)
            } catch let error as AtomicFile.IOError {
                throw self.writeError(error)
            } catch {
                throw AgentError(.storageFailure, "fsync of \(self.directory) failed", cause: StorageCause(description: "\(error)"))
            }
            return true
        }
    }

    // MARK: - Helpers

    private func withLock<T>(_ body: () throws(AgentError) -> T) throws(AgentError) -> T {
        let fd = open(self.lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw self.writeError(AtomicFile.IOError(operation: "creating the lock file", path: self.lockPath, errno: errno))
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw self.writeError(AtomicFile.IOError(operation: "locking", path: self.lockPath, errno: errno))
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private func read(_ path: String) throws(AgentError) -> [UInt8]? {
        do {
            return try AtomicFile.read(path)
        } catch {
            throw self.readError(error)
        }
    }

    private func readError(_ error: AtomicFile.IOError) -> AgentError {
        AgentError(
            .storageFailure,
            "cannot read the stored credentials: \(error); run tb-agent as the user that owns \(self.directory) (usually root) or fix the file's permissions")
    }

    private func writeError(_ error: AtomicFile.IOError) -> AgentError {
        let fix: String
        switch error.errno {
        case ENOSPC, EDQUOT:
            fix = "free space on the file system holding \(self.directory) and try again"
        case EROFS:
            fix = "\(self.directory) is on a read-only file system: remount it read-write or set [device] state_dir to a writable place"
        case EACCES, EPERM:
            fix = "run tb-agent as the user that owns \(self.directory) (usually root), or fix its permissions"
        default:
            fix = "check the storage device and \(self.directory)"
        }
        return AgentError(
            .storageFailure,
            "cannot write the credentials in \(self.directory) (\(error)); the stored credentials were kept as they were: \(fix)")
    }
}

/// A cause carried as text (the hook's error in tests).
struct StorageCause: Error, Sendable, CustomStringConvertible {
    let description: String
}
