import AgentConfig
import AgentCore
import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent setup`, without a terminal (flags) and on a pseudo-terminal (questions, the secret not echoed).
@Suite struct SetupCommandTests {
    static let pi4 = TestSupport.packageRoot.appendingPathComponent("Tests/Fixtures/sysroots/raspberrypi-4b").path

    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int) ?? -1
    }

    @Test func withoutATerminalTheFlagsAreNamed() throws {
        let dir = try TestSupport.makeTemporaryDirectory("setup")
        let path = dir.appendingPathComponent("config.toml").path
        let result = try TestSupport.tbAgent(["setup", "--config", path, "--sysroot", Self.pi4])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--device-key KEY"))
        #expect(result.stderr.contains("--device-secret-file FILE (or --device-secret-stdin)"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func secretFromStandardInputWritesAValidFileWithMode0600() throws {
        let dir = try TestSupport.makeTemporaryDirectory("setup")
        let path = dir.appendingPathComponent("config.toml").path
        let result = try TestSupport.tbAgent(
            ["setup", "--config", path, "--sysroot", Self.pi4, "--device-key", "K1", "--device-secret-stdin",
             "--host", "tb.local", "--port", "1884"],
            stdin: "pr0v-secret\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "wrote \(path) (mode 0600); device name \"10000000abcdef12\"\n")
        #expect(try self.mode(path) == 0o600)
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.host == "tb.local")
        #expect(config.server.port == 1884)
        #expect(config.provisioning.deviceKey == "K1")
        #expect(config.provisioning.deviceSecret.revealed == "pr0v-secret")
        #expect(config.device.nameTemplate == "{id}")
        #expect(!result.stdout.contains("pr0v-secret") && !result.stderr.contains("pr0v-secret"))
    }

    // MARK: issue 10, finding 8: TLS for a host off this machine

    func setup(_ extra: [String]) throws -> (result: CommandResult, config: String) {
        let dir = try TestSupport.makeTemporaryDirectory("setup")
        let path = dir.appendingPathComponent("config.toml").path
        let result = try TestSupport.tbAgent(
            ["setup", "--config", path, "--sysroot", Self.pi4, "--device-key", "K1", "--device-secret-stdin"] + extra,
            stdin: "pr0v-secret\n")
        return (result, path)
    }

    @Test func aHostOffThisMachineGetsTLSOn8883() throws {
        let (result, path) = try self.setup(["--host", "tb.example.org"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.port == 8883)
        #expect(config.server.tls == TLSSettings(verifyHostname: true))
        // check-config has nothing to say about it.
        let check = try TestSupport.tbAgent(["check-config", "--config", path])
        #expect(check.status == 0 && check.stderr.isEmpty, "\(check.stderr)")
    }

    @Test func theDefaultHostGetsTLS() throws {
        let (result, path) = try self.setup([])
        #expect(result.status == 0, "\(result.stderr)")
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.host == "thingsboard.cloud")
        #expect(config.server.port == 8883)
        #expect(config.server.tls != nil)
    }

    @Test func aLocalHostGetsPlainMQTTOn1883() throws {
        let (result, path) = try self.setup(["--host", "127.0.0.1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.port == 1883)
        #expect(config.server.tls == nil)
    }

    @Test func plainMQTTToAHostOffThisMachineIsWrittenOnlyWhenAskedAndWarned() throws {
        let (result, path) = try self.setup(["--host", "tb.example.org", "--no-tls"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("warning: [server] tb.example.org:1883 is reached over plain MQTT"), "\(result.stderr)")
        #expect(!result.stderr.contains("pr0v-secret"))
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.port == 1883)
        #expect(config.server.tls == nil)
        let check = try TestSupport.tbAgent(["check-config", "--config", path])
        #expect(check.status == 0 && check.stderr.contains("plain MQTT"), "\(check.stderr)")
    }

    @Test func existingFileIsKeptWithoutForce() throws {
        let dir = try TestSupport.makeTemporaryDirectory("setup")
        let path = dir.appendingPathComponent("config.toml").path
        try "original\n".write(toFile: path, atomically: true, encoding: .utf8)
        let secretFile = dir.appendingPathComponent("secret").path
        try "s\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        let args = ["setup", "--config", path, "--sysroot", Self.pi4, "--device-key", "K", "--device-secret-file", secretFile]
        let refused = try TestSupport.tbAgent(args)
        #expect(refused.status == 73)
        #expect(refused.stderr.contains("already exists; pass --force"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "original\n")
        let forced = try TestSupport.tbAgent(args + ["--force", "--device-name", "gate {1}"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.provisioning.deviceSecretFile == secretFile)
        #expect(config.device.nameTemplate == "gate {{1}}")
        let identity = try TestSupport.tbAgent(["identity", "--config", path])
        #expect(identity.stdout == "gate {1}\n")
    }

    @Test func renderedTemplatesParseBack() throws {
        let answers = SetupConfiguration(
            host: "h\"q", port: 1883, deviceKey: "k\\ey", secret: .inline(Secret("a\"b\nc")), nameTemplate: "{id}",
            derivedNote: nil, sysroot: "/", board: nil)
        let config = try ConfigurationLoader.parse(answers.render(), path: "/tmp/config.toml")
        #expect(config.server.host == "h\"q")
        #expect(config.provisioning.deviceKey == "k\\ey")
        #expect(config.provisioning.deviceSecret.revealed == "a\"b\nc")
    }

    /// The answers are typed on a pseudo-terminal, as a person would; the terminal's echo shows what was typed,
    /// except the secret.
    @Test func interactiveSetupDoesNotEchoTheSecret() throws {
        let dir = try TestSupport.makeTemporaryDirectory("setup")
        let path = dir.appendingPathComponent("config.toml").path
        let terminal = try PseudoTerminal()
        let process = Process()
        process.executableURL = TestSupport.binary("tb-agent")
        process.arguments = ["setup", "--config", path, "--sysroot", Self.pi4]
        let stdoutURL = dir.appendingPathComponent("stdout")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        process.standardInput = terminal.follower
        process.standardError = terminal.follower
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        #expect(terminal.waitFor("ThingsBoard host [thingsboard.cloud]: "))
        terminal.send("tb.example.org\n")
        // A host off this machine: TLS is proposed, on 8883.
        #expect(terminal.waitFor("Use TLS (MQTT over TLS, port 8883)? [Y/n]: "))
        terminal.send("\n")
        #expect(terminal.waitFor("MQTT port [8883]: "))
        terminal.send("\n")
        #expect(terminal.waitFor("Provision device key: "))
        terminal.send("KEY-42\n")
        #expect(terminal.waitFor("Provision device secret (not shown): "))
        terminal.send("very-secret-value\n")
        #expect(terminal.waitFor("Device name [10000000abcdef12, from the board serial]: "))
        terminal.send("\n")
        #expect(TestSupport.waitUntil(timeout: .seconds(30)) { !process.isRunning })
        #expect(process.terminationStatus == 0, "\(terminal.output)")

        let shown = terminal.output
        #expect(shown.contains("tb.example.org"))  // echoed as typed
        #expect(shown.contains("KEY-42"))
        #expect(!shown.contains("very-secret-value"))  // never echoed
        let config = try ConfigurationLoader.load(path: path)
        #expect(config.server.host == "tb.example.org")
        #expect(config.server.port == 8883)
        #expect(config.server.tls == TLSSettings(verifyHostname: true))
        #expect(config.provisioning.deviceKey == "KEY-42")
        #expect(config.provisioning.deviceSecret.revealed == "very-secret-value")
        #expect(config.device.nameTemplate == "{id}")
        #expect(try self.mode(path) == 0o600)
        let stdout = try String(contentsOf: stdoutURL, encoding: .utf8)
        #expect(stdout == "wrote \(path) (mode 0600); device name \"10000000abcdef12\"\n")
    }
}

/// A pseudo-terminal pair: the test holds the leader side; the child gets the follower side as its terminal.
final class PseudoTerminal: @unchecked Sendable {
    let leaderFD: Int32
    let follower: FileHandle
    private var buffer: [UInt8] = []

    init() throws {
        // posix_openpt, unlockpt and ptsname are not visible through Glibc: do what they do.
        let fd = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { throw TestSupportError("no pseudo-terminal: /dev/ptmx: errno \(errno)") }
        var unlock: Int32 = 0
        var number: UInt32 = 0
        // TIOCSPTLCK = _IOW('T', 0x31, int) and TIOCGPTN = _IOR('T', 0x30, unsigned int) (asm-generic: x86-64, arm64),
        // macros Swift cannot import.
        let setLock: UInt = 0x4004_5431, getNumber: UInt = 0x8004_5430
        guard ioctl(fd, setLock, &unlock) == 0, ioctl(fd, getNumber, &number) == 0 else {
            close(fd)
            throw TestSupportError("cannot set up the pseudo-terminal: errno \(errno)")
        }
        let name = "/dev/pts/\(number)"
        let followerFD = open(name, O_RDWR | O_NOCTTY)
        guard followerFD >= 0 else {
            close(fd)
            throw TestSupportError("cannot open \(name): errno \(errno)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.leaderFD = fd
        self.follower = FileHandle(fileDescriptor: followerFD, closeOnDealloc: true)
    }

    deinit { close(self.leaderFD) }

    /// Everything the terminal showed so far.
    var output: String {
        self.drain()
        return String(decoding: self.buffer, as: UTF8.self)
    }

    private func drain() {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(self.leaderFD, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            self.buffer.append(contentsOf: chunk[0..<n])
        }
    }

    func waitFor(_ text: String) -> Bool {
        TestSupport.waitUntil(timeout: .seconds(30)) { self.output.contains(text) }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(self.leaderFD, $0.baseAddress, $0.count) }
    }
}
