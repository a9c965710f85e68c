import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// The credentials on flash, in `[device] state_dir`:
/// - `credentials.json`: the current generation (see `StoredCredentials` for the format), mode 0600;
/// - `credentials.previous.json`: the generation before it, kept for recovery;
/// - `credentials.pending.json`: credentials from a re-provisioning that have not connected yet (the server issued
///   them and will not issue them again: they are kept until they connect, then become the current generation, or
///   until the server rejects them);
/// - `credentials.lock`: serialises writers.
///
/// Writing a new generation: the validated current file is first copied to the previous generation (temporary
/// file, fsync, rename, directory fsync), then the new content replaces the current file the same way. A crash at
/// any step leaves the old or the new credentials in `credentials.json`, never garbage; a damaged current file
/// (checksum, torn, unparseable) falls back to the previous generation with a warning.
///
/// A pending generation is written the same way (`savePending`); committing it copies the current file to the
/// previous generation, then renames the pending file over the current one (one atomic step), so that at every
/// instant the new credentials are in `credentials.pending.json` or in `credentials.json`.
///
/// A file written by a newer tb-agent (a later `format`, after a downgrade) is not damage: it is neither used nor
/// replaced, and there is no fallback to the previous generation (probably revoked by then). Loading and every
/// write refuse with a message that says what to do.
public struct CredentialStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var currentPath: String { self.directory + "/credentials.json" }
    public var previousPath: String { self.directory + "/credentials.previous.json" }
    public var pendingPath: String { self.directory + "/credentials.pending.json" }
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

    /// A step of the pending generation's writes, for tests that interrupt them.
    public enum PendingStep: Sendable, Hashable, CustomStringConvertible {
        /// `savePending`: writing `credentials.pending.json`.
        case pending(AtomicFile.Step)
        /// `commitPending`: the current generation copied to the previous one.
        case previous(AtomicFile.Step)
        /// `commitPending`: the pending file renamed over the current one.
        case committed
        /// `commitPending`: the directory fsynced after that rename.
        case committedSynced

        public static let saveCases: [PendingStep] = AtomicFile.Step.allCases.map { .pending($0) }
        public static let commitCases: [PendingStep] =
            AtomicFile.Step.allCases.map { .previous($0) } + [.committed, .committedSynced]

        public var description: String {
            switch self {
            case .pending(let step): return "pending generation: \(step.rawValue)"
            case .previous(let step): return "previous generation: \(step.rawValue)"
            case .committed: return "pending renamed over the current generation"
            case .committedSynced: return "directory fsynced after the commit"
            }
        }
    }

    /// Where loaded credentials came from.
    public enum Source: Sendable, Equatable {
        case current
        /// The current file was damaged; the warning says why.
        case previous
        /// The pending generation (`loadPending`).
        case pending
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
    /// - Throws: `AgentError.storageFailure` when a file exists but cannot be read (permissions), or was written by
    ///   a newer tb-agent (then there is no fallback: the message says what to do).
    public func load() throws(AgentError) -> Lookup {
        let damage: String
        switch try self.document(self.currentPath) {
        case .absent:
            return .none(reason: "no credentials are stored in \(self.directory)", warnings: [])
        case .valid(let record, _):
            return .found(record, source: .current, warnings: [])
        case .damaged(let reason, _):
            damage = reason
        }
        switch try self.document(self.previousPath) {
        case .absent:
            return .none(
                reason: "\(self.currentPath) is damaged (\(damage)) and there is no previous generation: provision again with `tb-agent provision --force`",
                warnings: [])
        case .valid(let previous, _):
            return .found(
                previous, source: .previous,
                warnings: [
                    "\(self.currentPath) is damaged (\(damage)); using the previous generation \(self.previousPath), issued \(previous.issuedAt)"
                ])
        case .damaged(let reason, _):
            return .none(
                reason: "\(self.currentPath) is damaged (\(damage)) and so is \(self.previousPath) (\(reason)): provision again with `tb-agent provision --force`",
                warnings: [])
        }
    }

    /// Loads the pending generation (credentials from a re-provisioning that have not connected yet). A damaged
    /// pending file is reported as none, with a warning: the current generation stays in force.
    ///
    /// - Throws: as `load`.
    public func loadPending() throws(AgentError) -> Lookup {
        switch try self.document(self.pendingPath) {
        case .absent:
            return .none(reason: "no pending credentials in \(self.directory)", warnings: [])
        case .valid(let record, _):
            return .found(record, source: .pending, warnings: [])
        case .damaged(let reason, _):
            return .none(
                reason: "\(self.pendingPath) is damaged (\(reason))",
                warnings: ["\(self.pendingPath) is damaged (\(reason)); it is ignored and the stored credentials stay in force"])
        }
    }

    /// Loads the pending generation for `server` (see `load(for:)`).
    public func loadPending(for server: ServerEndpoint) throws(AgentError) -> Lookup {
        try self.filter(self.loadPending(), for: server)
    }

    /// Loads the credentials for `server`. Credentials issued by another server are kept but not used.
    public func load(for server: ServerEndpoint) throws(AgentError) -> Lookup {
        try self.filter(self.load(), for: server)
    }

    private func filter(_ lookup: Lookup, for server: ServerEndpoint) -> Lookup {
        guard case .found(let stored, _, let warnings) = lookup else { return lookup }
        guard stored.server == server else {
            return .none(
                reason: "the stored credentials of \(stored.deviceName) were issued by \(stored.server), not by \(server) (the [server] in the configuration); they are kept but not used: provision for \(server) with `tb-agent provision`",
                warnings: warnings)
        }
        return lookup
    }

    // MARK: - Writing

    /// Stores `record` as the current generation, keeping the one it replaces as the previous generation. A pending
    /// generation is removed first: credentials stored this way (first provisioning, `tb-agent provision --force`)
    /// are newer than any pending ones.
    ///
    /// - Parameter afterStep: test hook, run after each step (see `AtomicFile.SimulatedFailure`).
    /// - Returns: `.unchanged` if the same credentials were stored already (nothing is written).
    /// - Throws: `AgentError.storageFailure` naming the directory and the fix; what was stored stays as it was.
    ///   Also when a credentials file was written by a newer tb-agent: it is never overwritten.
    @discardableResult
    public func save(_ record: StoredCredentials, afterStep: ((WriteStep) throws -> Void)? = nil) throws(AgentError)
        -> SaveOutcome
    {
        let document = try self.writable(record)
        return try self.withLock { () throws(AgentError) -> SaveOutcome in
            let current = try self.document(self.currentPath)
            try self.refuseNewer(self.previousPath)
            try self.refuseNewer(self.pendingPath)
            if case .valid(let stored, _) = current, stored == record {
                try self.removePending()
                return .unchanged
            }
            // Temporary files left by an interrupted save were never renamed into place: garbage.
            unlink(self.currentPath + ".tmp")
            unlink(self.previousPath + ".tmp")
            try self.removePending()
            // Only a valid current file becomes the previous generation: a damaged one must not replace a
            // good previous generation.
            if case .valid(_, let currentBytes) = current {
                try self.atomicWrite(currentBytes, to: self.previousPath) { step in try afterStep?(.previous(step)) }
            }
            try self.atomicWrite(document, to: self.currentPath) { step in try afterStep?(.current(step)) }
            return .written
        }
    }

    /// Stores `record` as the pending generation: credentials from a re-provisioning, kept beside the current ones
    /// until they have connected (`commitPending`) or the server rejected them (`discardPending`).
    ///
    /// - Parameter afterStep: test hook (see `AtomicFile.SimulatedFailure`).
    /// - Throws: as `save`; the current generation is never touched.
    public func savePending(_ record: StoredCredentials, afterStep: ((PendingStep) throws -> Void)? = nil)
        throws(AgentError)
    {
        let document = try self.writable(record)
        try self.withLock { () throws(AgentError) in
            try self.refuseNewer(self.currentPath)
            try self.refuseNewer(self.pendingPath)
            if case .valid(let pending, _) = try self.document(self.pendingPath), pending == record { return }
            try self.atomicWrite(document, to: self.pendingPath) { step in try afterStep?(.pending(step)) }
        }
    }

    /// The pending generation connected: it becomes the current one, and the current one the previous generation.
    /// If the pending file does not hold `record`'s credentials (its write failed, and the credentials lived in
    /// memory only), `record` is saved as the current generation instead.
    ///
    /// - Parameter afterStep: test hook (see `AtomicFile.SimulatedFailure`).
    /// - Throws: as `save`.
    public func commitPending(_ record: StoredCredentials, afterStep: ((PendingStep) throws -> Void)? = nil)
        throws(AgentError)
    {
        _ = try self.writable(record)
        let committed = try self.withLock { () throws(AgentError) -> Bool in
            try self.refuseNewer(self.previousPath)
            let current = try self.document(self.currentPath)
            // The pending file is recognised by what it holds, not by when it was written.
            guard case .valid(let pending, _) = try self.document(self.pendingPath), pending.sameCredentials(as: record)
            else { return false }
            unlink(self.previousPath + ".tmp")
            if case .valid(let stored, let currentBytes) = current, !stored.sameCredentials(as: record) {
                try self.atomicWrite(currentBytes, to: self.previousPath) { step in try afterStep?(.previous(step)) }
            }
            // One atomic step: the new credentials leave the pending file and become the current generation.
            if rename(self.pendingPath, self.currentPath) != 0 {
                throw self.writeError(
                    AtomicFile.IOError(operation: "renaming \(self.pendingPath) to", path: self.currentPath, errno: errno))
            }
            try self.hook { try afterStep?(.committed) }
            try self.syncDirectory()
            try self.hook { try afterStep?(.committedSynced) }
            return true
        }
        if !committed { try self.save(record) }
    }

    /// Forgets the pending generation (the server rejected it).
    ///
    /// - Returns: false if there was none.
    @discardableResult
    public func discardPending() throws(AgentError) -> Bool {
        var status = stat()
        if stat(self.directory, &status) != 0 && errno == ENOENT { return false }
        return try self.withLock { () throws(AgentError) -> Bool in
            try self.refuseNewer(self.pendingPath)
            return try self.removePending()
        }
    }

    /// Forgets the credentials: the current generation becomes the previous one (kept for recovery), and a pending
    /// generation is removed.
    ///
    /// - Returns: false if there was nothing to forget.
    @discardableResult
    public func forget() throws(AgentError) -> Bool {
        var status = stat()
        if stat(self.directory, &status) != 0 && errno == ENOENT { return false }
        return try self.withLock { () throws(AgentError) -> Bool in
            let current = try self.document(self.currentPath)
            try self.refuseNewer(self.previousPath)
            try self.refuseNewer(self.pendingPath)
            let hadPending = try self.removePending()
            let valid: Bool
            switch current {
            case .absent: return hadPending
            case .valid: valid = true
            case .damaged: valid = false
            }
            // One atomic step: the current file becomes the previous generation. A damaged current file is only
            // removed, so that it cannot replace a good previous generation.
            let done = valid ? rename(self.currentPath, self.previousPath) : unlink(self.currentPath)
            if done != 0 {
                throw self.writeError(
                    AtomicFile.IOError(operation: valid ? "renaming \(self.currentPath) to" : "removing", path: valid ? self.previousPath : self.currentPath, errno: errno))
            }
            try self.syncDirectory()
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

    /// A credentials file as found on flash.
    enum Document {
        case absent
        case valid(StoredCredentials, bytes: [UInt8])
        case damaged(String, bytes: [UInt8])
    }

    /// Reads and checks the file at `path`.
    ///
    /// - Throws: `AgentError.storageFailure` when it cannot be read, or was written by a newer tb-agent.
    func document(_ path: String) throws(AgentError) -> Document {
        guard let bytes = try self.read(path) else { return .absent }
        do {
            return .valid(try StoredCredentials(document: bytes), bytes: bytes)
        } catch {
            if let format = error.newerFormat { throw self.newerFormatError(path, format: format) }
            return .damaged(error.reason, bytes: bytes)
        }
    }

    private func refuseNewer(_ path: String) throws(AgentError) {
        _ = try self.document(path)
    }

    /// What to say about a file written by a newer tb-agent: neither used nor replaced, and what a person can do.
    private func newerFormatError(_ path: String, format: Int64) -> AgentError {
        AgentError(
            .storageFailure,
            "\(path) was written by a newer tb-agent (format \(format); this one reads format \(StoredCredentials.formatVersion)): it is neither used nor replaced. Upgrade tb-agent to the version that wrote it, or move the file away (the agent then provisions again, for which the device may have to be deleted on the server)")
    }

    /// The document for `record`, refused when the store could not read it back or MQTT could not use it.
    private func writable(_ record: StoredCredentials) throws(AgentError) -> [UInt8] {
        if let problem = record.credentials.problem {
            throw AgentError(
                .storageFailure,
                "the credentials of \(record.deviceName) were not stored: \(problem), which MQTT cannot carry (what the server sent is not usable credentials)")
        }
        try StateDirectory.ensure(self.directory)
        // Never write what `load` will not read back: the store would stay unreadable until someone deletes it.
        let document = record.document
        guard document.count <= AtomicFile.maxReadBytes else {
            throw AgentError(
                .storageFailure,
                "the credentials of \(record.deviceName) are \(document.count) bytes, more than the \(AtomicFile.maxReadBytes) the store reads back; they were not stored (what the server sent is not usable credentials)")
        }
        return document
    }

    /// Removes the pending generation (and its temporary file), durably. Returns whether there was one.
    @discardableResult
    private func removePending() throws(AgentError) -> Bool {
        unlink(self.pendingPath + ".tmp")
        guard unlink(self.pendingPath) == 0 else {
            if errno == ENOENT { return false }
            throw self.writeError(AtomicFile.IOError(operation: "removing", path: self.pendingPath, errno: errno))
        }
        try self.syncDirectory()
        return true
    }

    private func syncDirectory() throws(AgentError) {
        do {
            try AtomicFile.syncDirectory(self.directory)
        } catch {
            throw self.writeError(error)
        }
    }

    private func atomicWrite(_ bytes: [UInt8], to path: String, afterStep: @escaping (AtomicFile.Step) throws -> Void)
        throws(AgentError)
    {
        do {
            try AtomicFile.write(bytes, to: path, afterStep: afterStep)
        } catch let error as AtomicFile.IOError {
            throw self.writeError(error)
        } catch let error as AtomicFile.Interrupted {
            throw AgentError(.storageFailure, "writing the credentials in \(self.directory) was interrupted", cause: StorageCause(description: "\(error.cause)"))
        } catch {
            throw AgentError(.storageFailure, "writing the credentials in \(self.directory) failed", cause: StorageCause(description: "\(error)"))
        }
    }

    /// Runs a test hook after a step that is not `AtomicFile`'s: a `SimulatedFailure` reports like a real failure,
    /// anything else like a crash.
    private func hook(_ body: () throws -> Void) throws(AgentError) {
        do {
            try body()
        } catch let failure as AtomicFile.SimulatedFailure {
            throw self.writeError(AtomicFile.IOError(operation: "simulated failure in", path: self.directory, errno: failure.errno))
        } catch {
            throw AgentError(.storageFailure, "writing the credentials in \(self.directory) was interrupted", cause: StorageCause(description: "\(error)"))
        }
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

extension StoredCredentials {
    /// The same credentials for the same device and server, whenever they were issued.
    func sameCredentials(as other: StoredCredentials) -> Bool {
        self.credentials == other.credentials && self.server == other.server && self.deviceName == other.deviceName
    }
}

/// A cause carried as text (the hook's error in tests).
struct StorageCause: Error, Sendable, CustomStringConvertible {
    let description: String
}
