import AgentCore

#if canImport(Glibc)
import AgentHost
import Glibc
#endif

/// Crash-safe replacement of a small file: the new content goes to a temporary file created with its final mode
/// (`O_CREAT | O_EXCL`, no chmod window), is fsynced, renamed over the target, and the directory is fsynced. At
/// every instant the target holds either the old or the new content.
public enum AtomicFile {
    /// The steps of `write`, in order. A test hook runs after each one.
    public enum Step: String, Sendable, Hashable, CaseIterable {
        case tempWritten = "temp written"
        case tempSynced = "temp fsynced"
        case renamed = "renamed over the target"
        case directorySynced = "directory fsynced"
    }

    /// Thrown by a test hook to make the step that just ran look as if its system call had failed with `errno`
    /// (the write then cleans up and reports, as for a real failure). Any other error thrown by a hook is a
    /// simulated crash: it propagates at once and nothing is cleaned up.
    public struct SimulatedFailure: Error, Sendable {
        public let errno: CInt
        public init(errno: CInt) { self.errno = errno }
    }

    /// A failed system call: what was being done, to which path, and `errno`.
    public struct IOError: Error, Sendable, CustomStringConvertible {
        public let operation: String
        public let path: String
        public let errno: CInt

        public var description: String { "\(self.operation) \(self.path): \(Self.text(self.errno))" }

        /// `strerror` text with the symbolic name, e.g. "No space left on device (ENOSPC)".
        public static func text(_ code: CInt) -> String {
            let message = strerror(code).map { String(cString: $0) } ?? "errno \(code)"
            let name: String
            switch code {
            case ENOSPC: name = "ENOSPC"
            case EROFS: name = "EROFS"
            case EACCES: name = "EACCES"
            case EPERM: name = "EPERM"
            case ENOENT: name = "ENOENT"
            case ENOTDIR: name = "ENOTDIR"
            case EDQUOT: name = "EDQUOT"
            case EIO: name = "EIO"
            case EEXIST: name = "EEXIST"
            case EISDIR: name = "EISDIR"
            case ELOOP: name = "ELOOP"
            case EFBIG: name = "EFBIG"
            default: name = "errno \(code)"
            }
            return "\(message) (\(name))"
        }
    }

    /// Why a crash-simulating hook stopped a write.
    struct Interrupted: Error {
        let cause: any Error
    }

    /// Replaces `path` with `bytes`, relative to a descriptor of its directory (see `StateFileDirectory.replace`):
    /// a link planted as `path.tmp` is removed, never followed.
    ///
    /// - Parameters:
    ///   - mode: the file's mode from its creation (0600 by default).
    ///   - afterStep: test hook (see `SimulatedFailure`).
    /// - Throws: `IOError` (the temporary file removed, the target untouched unless the rename happened), or
    ///   `Interrupted` carrying the hook's error.
    static func write(
        _ bytes: [UInt8], to path: String, mode: mode_t = 0o600, afterStep: ((Step) throws -> Void)? = nil
    ) throws -> Void {
        // The state directory itself may be an administrator's link; the files in it are never followed.
        let directory = try StateFileDirectory(Self.directory(of: path), lastComponent: .mayBeALink)
        try directory.replace(Self.name(of: path), with: bytes, mode: mode, afterStep: afterStep)
    }

    /// `read` refuses larger files.
    public static let maxReadBytes = 1 << 20

    /// The file's bytes, or nil if it does not exist. A symbolic link in its place is an error (ELOOP), not followed;
    /// so is anything but a regular file (a FIFO would block the read).
    static func read(_ path: String) throws(IOError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw IOError(operation: "opening", path: path, errno: errno)
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw IOError(operation: "opening (not a regular file)", path: path, errno: EINVAL)
        }
        // Credentials are a few kilobytes; a huge file is not ours.
        switch POSIXFile.read(fd: fd, limit: Self.maxReadBytes, beyondLimit: .fail) {
        case .success(let bytes): return bytes
        case .failure(let error) where error.code == EFBIG:
            throw IOError(operation: "reading (larger than 1 MiB)", path: path, errno: EFBIG)
        case .failure(let error): throw IOError(operation: "reading", path: path, errno: error.code)
        }
    }

    /// Makes a rename or unlink in `directory` durable.
    static func syncDirectory(_ directory: String) throws(IOError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw IOError(operation: "opening the directory", path: directory, errno: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 && errno != EINVAL {  // some file systems cannot fsync a directory: nothing to make durable
            throw IOError(operation: "fsync of the directory", path: directory, errno: errno)
        }
    }

    public static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func directory(of path: String) -> String { HostProcess.parent(of: path) }
}

/// The agent's state directory (`[device] state_dir`): created 0700, parents 0755.
public enum StateDirectory {
    /// What stops the agent from writing in `path`, in a sentence naming the fix: a read-only or full file
    /// system. Nil when it is writable and has space (or does not exist yet).
    public static func problem(_ path: String) -> String? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        if info.f_flag & UInt(ST_RDONLY) != 0 {
            return "the state directory \(path) is on a read-only file system: readings cannot be spooled and state cannot be saved; remount it read-write"
        }
        // root may use the blocks reserved for it; anyone else only what is available.
        let free = geteuid() == 0 ? info.f_bfree : info.f_bavail
        if free == 0 {
            return "the file system holding the state directory \(path) is full: readings cannot be spooled and state cannot be saved; free space on it"
        }
        return nil
    }

    /// Creates the directory if needed and tightens its mode to 0700 if others may look inside. A directory that
    /// another user owns or may write in (or below a directory another user controls) is refused: they could plant
    /// links in it that make tb-agent overwrite files (root using a directory of root's is fine).
    ///
    /// - Returns: warnings to log (a mode that could not be tightened).
    /// - Throws: `AgentError.storageFailure` naming the directory and the fix.
    @discardableResult
    public static func ensure(_ path: String) throws(AgentError) -> [String] {
        guard !path.isEmpty else {
            throw AgentError(.invalidConfiguration, "[device] state_dir is empty: set it to a directory such as /var/lib/tb-agent")
        }
        if let problem = StateOwnership.ancestorProblem(path) { throw AgentError(.storageFailure, problem) }
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else {
                throw AgentError(
                    .storageFailure,
                    "the state directory \(path) exists but is not a directory: remove it or set [device] state_dir to another path")
            }
            if let problem = StateOwnership.problem(status, path) { throw AgentError(.storageFailure, problem) }
            guard status.st_mode & 0o077 != 0 else { return [] }
            if chmod(path, 0o700) != 0 {
                return ["the state directory \(path) has mode \(String(status.st_mode & 0o777, radix: 8)) and could not be changed to 700 (\(AtomicFile.IOError.text(errno))); other users may list it"]
            }
            return []
        }
        guard errno == ENOENT else {
            throw AgentError(
                .storageFailure,
                "cannot use the state directory \(path): \(AtomicFile.IOError.text(errno)); check its permissions or set [device] state_dir")
        }
        // Parents first, with the usual 0755.
        var prefix = path.hasPrefix("/") ? "" : "."
        let components = path.split(separator: "/")
        for (i, component) in components.enumerated() {
            prefix += "/" + component
            let isLast = i == components.count - 1
            if mkdir(prefix, isLast ? 0o700 : 0o755) != 0 && errno != EEXIST {
                throw AgentError(
                    .storageFailure,
                    "cannot create the state directory \(path) (at \(prefix): \(AtomicFile.IOError.text(errno))): create it (mode 700, owned by the user running tb-agent) or set [device] state_dir to a writable place")
            }
        }
        try? AtomicFile.syncDirectory(AtomicFile.directory(of: path))
        return []
    }
}
