import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// One agent per state directory: an exclusive lock (`flock`) on `<state_dir>/agent.lock`, held from `acquire`
/// until `release` (or the process ends: the kernel drops it with the descriptor, also after `kill -9`).
///
/// Two agents on one state directory would evict each other's session (ThingsBoard keeps one session per device),
/// write one spool and remove each other's status socket; `tb-agent provision` would store credentials under a
/// running agent. The second one exits at once instead, naming the first by its PID, and touches nothing.
public final class StateDirectoryLock: @unchecked Sendable {
    public static let fileName = "agent.lock"

    public let path: String
    /// Written once in `acquire`, cleared once in `release`; both on the owner's task.
    private var fd: CInt
    /// False on a read-only state directory: the lock is held on a descriptor opened for reading (the lock file,
    /// or the directory), and no PID is written.
    private let writable: Bool

    private init(path: String, fd: CInt, writable: Bool) {
        self.path = path
        self.fd = fd
        self.writable = writable
    }

    deinit { self.release() }

    /// Takes the lock without waiting. The state directory must exist (`StateDirectory.ensure`).
    ///
    /// - Parameter holder: what takes it (`tb-agent run`): written in the file with the PID, for the message the
    ///   next one prints.
    /// - Throws: `AgentError.invalidConfiguration` when another process holds the lock, naming it (its PID and
    ///   command, when known) and the fix; `AgentError.storageFailure` when the lock file cannot be opened.
    public static func acquire(_ stateDirectory: String, holder: String) throws(AgentError) -> StateDirectoryLock {
        let path = stateDirectory.hasSuffix("/") ? stateDirectory + Self.fileName : stateDirectory + "/" + Self.fileName
        let fd: CInt
        var writable = true
        do {
            let directory = try StateFileDirectory(stateDirectory, lastComponent: .mayBeALink)
            // No O_TRUNC: the holder's PID is in it until the lock is ours. O_NONBLOCK: a FIFO in its place must not
            // block the start (it is refused below).
            var opened = openat(directory.fd, Self.fileName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
            if opened < 0 && [EROFS, EACCES, EPERM, ENOSPC, EDQUOT].contains(errno) {
                // A read-only or full state directory (the agent runs on, from memory): flock needs no write access. The
                // lock file if there is one, else the directory itself, so that agents on it still exclude each
                // other.
                writable = false
                opened = openat(directory.fd, Self.fileName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
                if opened < 0 && errno == ENOENT { opened = openat(directory.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            }
            guard opened >= 0 else { throw AtomicFile.IOError(operation: "opening the lock file", path: path, errno: errno) }
            var status = stat()
            let type = fstat(opened, &status) == 0 ? status.st_mode & S_IFMT : 0
            guard type == S_IFREG || type == S_IFDIR else {
                close(opened)
                throw AtomicFile.IOError(operation: "opening the lock file (not a regular file)", path: path, errno: EINVAL)
            }
            fd = opened
        } catch {
            throw AgentError(
                .storageFailure,
                "cannot lock the state directory \(stateDirectory) (\(error)): the user running tb-agent must own it, or set [device] state_dir")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            let holderText = Self.holder(fd)
            close(fd)
            guard code == EWOULDBLOCK else {
                throw AgentError(.storageFailure, "cannot lock \(path): \(AtomicFile.IOError.text(code))")
            }
            let who = holderText.map { "another tb-agent (PID \($0.pid), `\($0.command)`)" } ?? "another tb-agent (its PID is not known yet)"
            let stop = holderText.map { "`systemctl stop tb-agent`, or `kill \($0.pid)`" } ?? "`systemctl stop tb-agent`"
            throw AgentError(
                .invalidConfiguration,
                "\(who) is using the state directory \(stateDirectory); two agents on one device would evict each other's session and share one spool, so this one stops and changes nothing. Stop the other first (\(stop)), or give this one its own [device] state_dir")
        }
        if writable {
            let text = Array("\(getpid()) \(holder)\n".utf8)
            _ = ftruncate(fd, 0)
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        return StateDirectoryLock(path: path, fd: fd, writable: writable)
    }

    /// Drops the lock (the file stays: removing it would let a third process lock a new file while a second one
    /// still waits on the old).
    public func release() {
        guard self.fd >= 0 else { return }
        if self.writable { _ = ftruncate(self.fd, 0) }
        close(self.fd)
        self.fd = -1
    }

    /// The PID and command written by the lock's holder, if it wrote them already.
    static func holder(_ fd: CInt) -> (pid: Int32, command: String)? {
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        let line = text.split(separator: "\n").first ?? ""
        guard let space = line.firstIndex(of: " "), let pid = Int32(line[..<space]), pid > 0 else { return nil }
        let command = String(line[line.index(after: space)...]).filter { character in
            character.asciiValue.map { $0 >= 0x20 && $0 < 0x7f } ?? true
        }
        return (pid, command.isEmpty ? "tb-agent" : command)
    }
}
