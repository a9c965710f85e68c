#if canImport(Glibc)
import Glibc
#endif

/// Runs a program to its end and collects what it printed, bounded: a time limit (then SIGKILL), a byte limit on the
/// output kept, standard input from /dev/null and an environment of the caller's choosing (never the agent's own: a
/// child has no business with its variables). Blocking: call it on a thread of its own, never on Swift's
/// cooperative pool.
public enum Subprocess {
    public struct Outcome: Sendable, Equatable {
        /// The exit status, or nil when a signal ended it.
        public var status: CInt?
        /// The signal that ended it (SIGKILL after the time limit).
        public var signal: CInt?
        public var timedOut: Bool
        /// Standard output and standard error, interleaved, up to the byte limit.
        public var output: [UInt8]
        /// `isCancelled` said so: the child was killed.
        public var cancelled = false

        public var succeeded: Bool { self.status == 0 }

        /// "exit status 3", "killed by signal 11", "no answer within 10 s (killed)".
        public var summary: String {
            if self.cancelled { return "stopped (killed) because the agent is stopping" }
            if self.timedOut { return "still running after its time limit (killed)" }
            if let status { return "exit status \(status)" }
            return "killed by signal \(self.signal ?? 0)"
        }
    }

    public struct LaunchError: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var errno: CInt
        public var description: String { "cannot run \(self.path): \(String(cString: strerror(self.errno)))" }
    }

    /// Runs `path` with `arguments` (argv[0] is `path`) and waits at most `timeoutMilliseconds`; `isCancelled` is
    /// asked every 200 ms at most, and true kills the child (its owner is stopping). The child leads a process group
    /// of its own, and a timeout or a cancellation kills the whole group.
    public static func run(
        _ path: String, arguments: [String], environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"],
        timeoutMilliseconds: Int = 10_000, outputLimit: Int = 16 << 10, isCancelled: () -> Bool = { false }
    ) throws(LaunchError) -> Outcome {
        var pipeEnds: [CInt] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { throw LaunchError(path: path, errno: errno) }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Not inherited by other children (pipe2 needs _GNU_SOURCE, which Glibc's module does not define).
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal dispositions and an empty mask: the agent blocks signals it handles on its own threads.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        // A process group of its own: a timeout or a cancellation kills what the child started as well (a shell's
        // pipeline, an install command's helpers), not the child alone.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            throw LaunchError(path: path, errno: rc)
        }
        defer { close(readEnd) }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var timedOut = false
        var cancelled = false
        var open = true
        let deadline = Self.monotonicMilliseconds() + timeoutMilliseconds
        while open {
            let left = deadline - Self.monotonicMilliseconds()
            if left <= 0 || isCancelled() {
                if left <= 0 { timedOut = true } else { cancelled = true }
                kill(-pid, SIGKILL)
                break
            }
            var entry = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, CInt(min(left, 200)))
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                open = false
            } else if output.count < outputLimit {
                output += buffer[0..<min(n, outputLimit - output.count)]
            }
        }
        // The output is closed (or the child was killed): collect it. A child that closed its output and runs on
        // is waited for until the deadline, then killed.
        var status: CInt = 0
        while true {
            let waited = waitpid(pid, &status, timedOut || cancelled ? 0 : WNOHANG)
            if waited == pid { break }
            if waited < 0 && errno != EINTR { return Outcome(status: nil, signal: nil, timedOut: timedOut, output: output, cancelled: cancelled) }
            if waited == 0 {
                if Self.monotonicMilliseconds() >= deadline || isCancelled() {
                    if isCancelled() { cancelled = true } else { timedOut = true }
                    kill(-pid, SIGKILL)
                } else {
                    usleep(10_000)
                }
            }
        }
        let signalled = status & 0x7f
        if signalled == 0 { return Outcome(status: (status >> 8) & 0xff, signal: nil, timedOut: timedOut, output: output, cancelled: cancelled) }
        return Outcome(status: nil, signal: signalled, timedOut: timedOut, output: output, cancelled: cancelled)
    }

    static func monotonicMilliseconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int(now.tv_sec) * 1000 + Int(now.tv_nsec) / 1_000_000
    }
}
