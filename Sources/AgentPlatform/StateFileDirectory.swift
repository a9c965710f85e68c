import AgentCore

#if canImport(Glibc)
import AgentHost
import Glibc
#endif

/// A directory of the agent's state (the state directory, `spool/`, `counters/`), opened once. Every file in it is
/// reached relative to that descriptor (`openat`), never through a symbolic link (`O_NOFOLLOW`), and the files the
/// agent writes are created afresh (`O_CREAT | O_EXCL`, after removing whatever held the name): a symbolic or hard
/// link planted in the directory cannot make the agent truncate or write another file, and renaming the directory
/// away does not redirect the agent's writes.
///
/// Not thread-safe: one owner at a time.
public final class StateFileDirectory {
    public typealias IOError = AtomicFile.IOError

    /// Whether the directory's own last path component may be a symbolic link.
    public enum LastComponent: Sendable {
        /// `spool/`, `counters/`: the agent creates them; a link there was planted.
        case mustNotBeALink
        /// `[device] state_dir`: an administrator may point it elsewhere with a link.
        case mayBeALink
    }

    public let path: String
    public let fd: CInt

    /// Opens `path` as a directory; with `create`, makes it first (with that mode) when it does not exist.
    public init(_ path: String, create mode: mode_t? = nil, lastComponent: LastComponent = .mustNotBeALink)
        throws(IOError)
    {
        if let mode, mkdir(path, mode) != 0, errno != EEXIST {
            throw IOError(operation: "creating the directory", path: path, errno: errno)
        }
        let follow = lastComponent == .mayBeALink ? 0 : O_NOFOLLOW
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | follow)
        guard fd >= 0 else {
            // O_NOFOLLOW on a link reports ELOOP (or ENOTDIR with O_DIRECTORY): say what it is.
            let code = errno
            var link = stat()
            if follow != 0, lstat(path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK {
                throw IOError(operation: "opening the directory (it is a symbolic link, which is not followed)", path: path, errno: ELOOP)
            }
            throw IOError(operation: "opening the directory", path: path, errno: code)
        }
        self.path = path
        self.fd = fd
    }

    deinit { close(self.fd) }

    /// `path/name`, for messages.
    public func child(_ name: String) -> String { self.path.hasSuffix("/") ? self.path + name : self.path + "/" + name }

    /// The directory's owner and mode (of the directory opened, whatever its path names now).
    public var status: stat {
        var status = stat()
        _ = fstat(self.fd, &status)
        return status
    }

    /// Opens an existing regular file of the directory, never through a symbolic link (nor a FIFO or device put
    /// in its place: O_NONBLOCK keeps a FIFO from blocking the open, and anything but a regular file is refused).
    public func open(_ name: String, _ flags: CInt) throws(IOError) -> CInt {
        let fd = openat(self.fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw IOError(operation: "opening", path: self.child(name), errno: errno) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw IOError(operation: "opening (not a regular file)", path: self.child(name), errno: EINVAL)
        }
        return fd
    }

    /// Creates `name`, which must not exist (`O_EXCL`: a link or file in its place is an error, never followed).
    public func create(_ name: String, _ flags: CInt, mode: mode_t = 0o600) throws(IOError) -> CInt {
        let fd = openat(self.fd, name, flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw IOError(operation: "creating", path: self.child(name), errno: errno) }
        return fd
    }

    /// Removes whatever holds `name` (a file, or a link: the link itself), then creates the file afresh.
    public func createFresh(_ name: String, _ flags: CInt, mode: mode_t = 0o600) throws(IOError) -> CInt {
        if unlinkat(self.fd, name, 0) != 0 && errno != ENOENT {
            throw IOError(operation: "removing the stale", path: self.child(name), errno: errno)
        }
        return try self.create(name, flags, mode: mode)
    }

    /// The whole file, at most `limit` bytes; nil when it does not exist.
    public func read(_ name: String, limit: Int = AtomicFile.maxReadBytes) throws(IOError) -> [UInt8]? {
        let fd: CInt
        do {
            fd = try self.open(name, O_RDONLY)
        } catch {
            if error.errno == ENOENT { return nil }
            throw error
        }
        defer { close(fd) }
        switch POSIXFile.read(fd: fd, limit: limit, beyondLimit: .fail) {
        case .success(let bytes): return bytes
        case .failure(let error) where error.code == EFBIG:
            throw IOError(operation: "reading (larger than \(limit) bytes)", path: self.child(name), errno: EFBIG)
        case .failure(let error): throw IOError(operation: "reading", path: self.child(name), errno: error.code)
        }
    }

    /// Removes `name` (a link itself, never its target); true when it is gone.
    @discardableResult
    public func remove(_ name: String) -> Bool {
        unlinkat(self.fd, name, 0) == 0 || errno == ENOENT
    }

    public func rename(_ name: String, to target: String) throws(IOError) {
        guard renameat(self.fd, name, self.fd, target) == 0 else {
            throw IOError(operation: "renaming \(self.child(name)) to", path: self.child(target), errno: errno)
        }
    }

    /// Makes renames and removals in the directory durable.
    public func sync() throws(IOError) {
        // Some file systems cannot fsync a directory: nothing to make durable there.
        if fsync(self.fd) != 0 && errno != EINVAL {
            throw IOError(operation: "fsync of the directory", path: self.path, errno: errno)
        }
    }

    /// The names in the directory except `.` and `..`, sorted.
    public func names() throws(IOError) -> [String] {
        // A descriptor of its own: fdopendir takes it over, and the directory offset is not shared with `fd`.
        let own = openat(self.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard own >= 0, let dir = fdopendir(own) else {
            let code = errno
            throw IOError(operation: "listing", path: self.path, errno: code)
        }
        return POSIXFile.names(dir)
    }

    /// Crash-safe replacement of `name` with `bytes`: a temporary file `name.tmp` created afresh with its final mode
    /// (no chmod window), written, fsynced, renamed over `name`, and the directory fsynced. At every instant `name`
    /// holds either the old or the new content; a link planted as `name.tmp` is removed, never followed.
    ///
    /// - Throws: `IOError` (the temporary file removed, the target untouched unless the rename happened), or
    ///   `AtomicFile.Interrupted` carrying a test hook's error.
    public func replace(
        _ name: String, with bytes: [UInt8], mode: mode_t = 0o600, afterStep: ((AtomicFile.Step) throws -> Void)? = nil
    ) throws {
        let temp = name + ".tmp"
        let target = self.child(name)
        // A temporary file left by a crash is garbage: the target was never replaced with it.
        let fd = try self.createFresh(temp, O_WRONLY, mode: mode)
        var closed = false
        func closeAndRemove() {
            if !closed { close(fd) }
            closed = true
            _ = unlinkat(self.fd, temp, 0)
        }
        func step(_ step: AtomicFile.Step, cleanup: () -> Void) throws {
            guard let afterStep else { return }
            do {
                try afterStep(step)
            } catch let failure as AtomicFile.SimulatedFailure {
                cleanup()
                throw IOError(operation: "simulated failure after '\(step.rawValue)' for", path: target, errno: failure.errno)
            } catch {
                throw AtomicFile.Interrupted(cause: error)
            }
        }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.write(fd, base + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let code = errno
                closeAndRemove()
                throw IOError(operation: "writing", path: self.child(temp), errno: code)
            }
            offset += written
        }
        try step(.tempWritten, cleanup: closeAndRemove)
        if fsync(fd) != 0 {
            let code = errno
            closeAndRemove()
            throw IOError(operation: "fsync of", path: self.child(temp), errno: code)
        }
        try step(.tempSynced, cleanup: closeAndRemove)
        closed = true
        if close(fd) != 0 {
            let code = errno
            _ = unlinkat(self.fd, temp, 0)
            throw IOError(operation: "closing", path: self.child(temp), errno: code)
        }
        if renameat(self.fd, temp, self.fd, name) != 0 {
            let code = errno
            _ = unlinkat(self.fd, temp, 0)
            throw IOError(operation: "renaming \(self.child(temp)) to", path: target, errno: code)
        }
        try step(.renamed, cleanup: {})
        try self.sync()
        try step(.directorySynced, cleanup: {})
    }
}

/// Who may change a directory of the agent's state: its owner must be the user tb-agent runs as, and nobody else
/// may write in it (nor in a directory above it, except a sticky one like /tmp), or another user could plant
/// links in it that make tb-agent overwrite files, or swap it for one of theirs.
public enum StateOwnership {
    /// Why `status` (of `path`, a directory of the agent's state) lets another user plant or swap files, in a
    /// sentence naming the fix; nil when it is the effective user's and nobody else may write in it.
    /// - Parameter user: who runs the agent (this process by default; `doctor` run as root asks for the owner).
    public static func problem(_ status: stat, _ path: String, what: String = "the state directory", user: uid_t = geteuid()) -> String? {
        if status.st_uid != user {
            let owner = Self.userName(status.st_uid)
            let me = Self.userName(user)
            return "\(what) \(path) belongs to \(owner) (uid \(status.st_uid)), not to \(me) (uid \(user)) who runs tb-agent: another user's directory could hold links that make tb-agent overwrite files, so it is not used. Fix: `chown -R \(me): \(path)`, run tb-agent as \(owner), or set [device] state_dir to a directory of \(me)'s"
        }
        if status.st_mode & 0o022 != 0 {
            let mode = String(status.st_mode & 0o7777, radix: 8)
            return "\(what) \(path) is writable by \(status.st_mode & 0o002 != 0 ? "every user" : "its group") (mode \(mode)): anyone there could plant links that make tb-agent overwrite files, so it is not used. Fix: `chmod 700 \(path)`"
        }
        return nil
    }

    /// Why a directory above `path` lets another user swap `path` for a directory or link of theirs, naming the
    /// fix; nil when each is owned by root or the effective user and writable by nobody else (or sticky, like /tmp).
    /// Checks the directories above the path as written and above the path it resolves to.
    public static func ancestorProblem(_ path: String, user: uid_t = geteuid()) -> String? {
        var paths = [HostProcess.absolutePath(path)]
        if let resolved = realpath(path, nil) {
            paths.append(String(cString: resolved))
            free(resolved)
        }
        var checked: Set<String> = []
        for full in paths {
            for ancestor in Self.ancestors(of: full) where checked.insert(ancestor).inserted {
                var status = stat()
                guard stat(ancestor, &status) == 0 else { continue }  // not there yet: created by ensure, 0755 root or us
                if status.st_uid != 0 && status.st_uid != user {
                    let owner = Self.userName(status.st_uid)
                    return "the directory \(ancestor), above the state directory \(path), belongs to \(owner) (uid \(status.st_uid)), who could swap the state directory for one of theirs, so it is not used. Fix: set [device] state_dir to a place that only root and \(Self.userName(user)) control, such as /var/lib/tb-agent"
                }
                if status.st_mode & 0o022 != 0 && status.st_mode & S_ISVTX == 0 {
                    let mode = String(status.st_mode & 0o7777, radix: 8)
                    return "the directory \(ancestor), above the state directory \(path), is writable by \(status.st_mode & 0o002 != 0 ? "every user" : "its group") and not sticky (mode \(mode)): they could swap the state directory for one of theirs, so it is not used. Fix: `chmod go-w \(ancestor)`, or set [device] state_dir to a place such as /var/lib/tb-agent"
                }
            }
        }
        return nil
    }

    /// "/", "/var", "/var/lib" for "/var/lib/tb-agent".
    static func ancestors(of path: String) -> [String] {
        let parts = path.split(separator: "/")
        var out = ["/"]
        var prefix = ""
        for part in parts.dropLast() {
            prefix += "/" + part
            out.append(prefix)
        }
        return out
    }

    /// The user's name, or "uid N" when it has none.
    public static func userName(_ uid: uid_t) -> String {
        // getpwuid_r: the spool and the counters may ask from different threads.
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else {
            return "uid \(uid)"
        }
        return String(cString: name)
    }

    /// The group's name, or "gid N" when it has none.
    public static func groupName(_ gid: gid_t) -> String {
        var entry = group()
        var result: UnsafeMutablePointer<group>? = nil
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.gr_name else {
            return "gid \(gid)"
        }
        return String(cString: name)
    }
}
