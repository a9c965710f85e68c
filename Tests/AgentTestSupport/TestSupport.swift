import CProcessControl
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the test targets: the package's folders and built binaries, free loopback ports, processes
/// started and stopped by PID, temporary folders, and waiting for an effect instead of sleeping.
public enum TestSupport {
    /// The package root, found from this file's path.
    public static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/AgentTestSupport/TestSupport.swift
        return url
    }()

    /// `../shared` beside the repository, when present.
    public static var sharedFolder: URL { packageRoot.deletingLastPathComponent().appendingPathComponent("shared") }

    /// The folder holding the built products: `TB_BIN_DIR` if set, else the folder of the running test bundle.
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["TB_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        // swift test runs `…/debug/tb-agentPackageTests.xctest` (a file on Linux).
        while dir.path != "/" {
            if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("tb-agent").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    public static func binary(_ name: String) -> URL { binDirectory.appendingPathComponent(name) }

    /// A loopback TCP port that was free a moment ago (bind to port 0, read it back, close).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSupportError("bind() failed: errno \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw TestSupportError("getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// True once something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0
    }

    /// A fresh temporary folder, removed by the caller (or left for inspection when a test fails).
    public static func makeTemporaryDirectory(_ prefix: String = "tb-agent-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    @discardableResult
    public static func waitUntil(timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
                                 _ condition: () throws -> Bool) rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: Double(interval.components.attoseconds) / 1e18 + Double(interval.components.seconds))
        }
        return try condition()
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A child process started by path, with its output captured to files, stopped by PID.
///
/// Spawned with `posix_spawn` and every descriptor above stderr closed in the child (`closefrom`), with a clean
/// signal mask and default dispositions, and reaped by a thread of its own. Not Foundation's `Process`: it closes
/// the descriptors it knew of when it began to spawn, so a child started while another test thread created a
/// descriptor inherited it. A long-lived child (an agent) that inherited the socket by which Foundation learns that
/// another child (a `tb-agent status`) exited kept that socket open: the status child stayed a zombie and
/// `waitUntilExit()` never returned, hanging the whole run.
public final class ChildProcess: @unchecked Sendable {
    public let pid: Int32
    public let stdoutURL: URL
    public let stderrURL: URL
    /// The raw wait status once reaped, and a semaphore signalled then.
    private final class Reaped: Sendable {
        let status = Mutex<Int32?>(nil)
        let done = DispatchSemaphore(value: 0)
    }
    private let reaped = Reaped()

    public init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                currentDirectory: URL? = nil, stdin: FileHandle? = nil) throws {
        let dir = try TestSupport.makeTemporaryDirectory("proc")
        self.stdoutURL = dir.appendingPathComponent("stdout")
        self.stderrURL = dir.appendingPathComponent("stderr")
        let out = open(self.stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let err = open(self.stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { for fd in [out, err, null] where fd >= 0 { close(fd) } }
        guard out >= 0, err >= 0, null >= 0 else { throw TestSupportError("cannot open the output files in \(dir.path)") }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin?.fileDescriptor ?? null, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, err, 2)
        tb_spawn_add_closefrom(&actions, 3)
        if let currentDirectory { tb_spawn_add_chdir(&actions, currentDirectory.path) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var env = ProcessInfo.processInfo.environment
        if let environment { env.merge(environment) { $1 } }
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0)=\($1)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var spawned: pid_t = 0
        let rc = posix_spawn(&spawned, executable.path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestSupportError("cannot start \(executable.path): \(String(cString: strerror(rc)))") }
        let pid = spawned
        self.pid = pid
        // The reaper: one thread per child, blocked in waitpid (never a thread of Swift's cooperative pool).
        let reaped = self.reaped
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            reaped.status.withLock { $0 = status }
            reaped.done.signal()
        }
    }

    public var isRunning: Bool { self.reaped.status.withLock { $0 == nil } }
    public var stdout: String { (try? String(contentsOf: self.stdoutURL, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOf: self.stderrURL, encoding: .utf8)) ?? "" }

    /// Signals the child while it has not been reaped (so never another process that got its PID).
    public func signal(_ sig: Int32) { self.reaped.status.withLock { if $0 == nil { _ = kill(self.pid, sig) } } }

    /// Blocks until the child has exited.
    public func waitUntilExit() {
        self.reaped.done.wait()
        self.reaped.done.signal()
    }

    /// As Foundation's `Process`: the exit status, or the number of the signal that ended it.
    public var terminationStatus: Int32 {
        let status = self.reaped.status.withLock { $0 } ?? 0
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : signal
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit and returns the status.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) -> Int32 {
        if self.isRunning {
            self.signal(SIGTERM)
            if !TestSupport.waitUntil(timeout: grace, { !self.isRunning }) { self.signal(SIGKILL) }
        }
        self.waitUntilExit()
        return self.terminationStatus
    }

    /// Waits for the exit (killing it after `timeout`) and returns the status.
    @discardableResult
    public func wait(timeout: Duration = .seconds(60)) -> Int32 {
        if !TestSupport.waitUntil(timeout: timeout, interval: .milliseconds(10), { !self.isRunning }) {
            self.signal(SIGKILL)
        }
        self.waitUntilExit()
        return self.terminationStatus
    }

    deinit { self.signal(SIGKILL) }
}

extension TestSupport {
    /// One HTTP/1.1 request to 127.0.0.1:`port` (tb-sim's control interface); returns the status and the body.
    public static func httpRequest(port: Int, _ method: String, _ path: String, _ body: String = "",
                                   timeoutSeconds: Int = 60) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TestSupportError("cannot reach 127.0.0.1:\(port)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw TestSupportError("bad HTTP response: \(text)") }
        let statusLine = text[..<split.lowerBound].split(separator: "\r\n").first ?? ""
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, String(text[split.upperBound...]))
    }
}

/// The result of running a command to completion.
public struct CommandResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

extension TestSupport {
    /// Runs `executable` to completion (killed after `timeout`).
    public static func run(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                           stdin: String? = nil, timeout: Duration = .seconds(60)) throws -> CommandResult {
        var input: FileHandle? = nil
        if let stdin {
            let url = try makeTemporaryDirectory("stdin").appendingPathComponent("in")
            try stdin.write(to: url, atomically: true, encoding: .utf8)
            input = try FileHandle(forReadingFrom: url)
        }
        let child = try ChildProcess(executable, arguments, environment: environment, stdin: input)
        let status = child.wait(timeout: timeout)
        return CommandResult(status: status, stdout: child.stdout, stderr: child.stderr)
    }

    /// Runs the built `tb-agent` with `arguments`.
    public static func tbAgent(_ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
                               timeout: Duration = .seconds(60)) throws -> CommandResult {
        try run(binary("tb-agent"), arguments, environment: environment, stdin: stdin, timeout: timeout)
    }
}

/// A mosquitto broker on 127.0.0.1 at a free port, started and stopped by PID.
public final class MosquittoBroker: @unchecked Sendable {
    public let port: Int
    public let child: ChildProcess
    public let directory: URL

    /// - Parameter extraConfig: more mosquitto.conf lines (TLS listeners and the like).
    public init(extraConfig: String = "") throws {
        guard let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw TestSupportError("mosquitto is not installed: run scripts/test.sh, which installs it") }
        self.directory = try TestSupport.makeTemporaryDirectory("mosquitto")
        var lastError: (any Error)? = nil
        for _ in 0..<5 {
            let port = try TestSupport.freePort()
            let conf = directory.appendingPathComponent("mosquitto-\(port).conf")
            try """
            listener \(port) 127.0.0.1
            allow_anonymous true
            persistence false
            \(extraConfig)
            """.write(to: conf, atomically: true, encoding: .utf8)
            let child = try ChildProcess(URL(fileURLWithPath: exe), ["-c", conf.path])
            if TestSupport.waitUntil(timeout: .seconds(10), { TestSupport.isListening(port: port) || !child.isRunning }),
               child.isRunning {
                self.port = port
                self.child = child
                return
            }
            lastError = TestSupportError("mosquitto did not start on port \(port): \(child.stderr)")
            child.stop()
        }
        throw lastError ?? TestSupportError("mosquitto did not start")
    }

    public func stop() { self.child.stop() }
    deinit { self.child.stop() }
}
