import AgentCore
import AgentTestSupport
import Foundation
import Synchronization
import TBJSON
import Testing

#if canImport(Glibc)
import Glibc
#endif

// End-to-end harness: real `tb-agent run` processes against a real `tb-sim` on loopback. Every test has its own
// temporary folders and free ports, and stops what it started by PID.
//
// The tests run concurrently (Swift Testing's default) and the cooperative pool has one thread per core, so
// nothing here blocks a pool thread for long: waiting polls with `Task.sleep`, and calls that can block (spawning,
// stopping a process, an RPC through the control interface) run on a thread of their own (`offPool`).

/// The device name the simulated board derives: `name_template = "sim-{id}"` with the serial from its sysroot.
let simulatedDeviceName = "sim-00000000c0ffee42"

/// Runs `body` on a new thread and waits for it without holding a cooperative-pool thread.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
@discardableResult
func eventually(_ timeout: Duration = .seconds(15), every interval: Duration = .milliseconds(100),
                _ condition: () throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try condition()
}

/// `eventually` for a condition that has to await (a status query, an RPC).
@discardableResult
func eventuallyAsync(_ timeout: Duration = .seconds(15), every interval: Duration = .milliseconds(250),
                     _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Lets time pass (the time a button is held, an outage lasts): never used as an assertion.
func pause(_ duration: Duration) async { try? await Task.sleep(for: duration) }

/// Milliseconds since the epoch, as the agent stamps readings.
func wallClockMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

// MARK: - the simulated board

/// A writable copy of `board/simulated/` (its `gpio/` lines and `sysroot/`) with a configuration written by the
/// test: the server's port, `state_dir` inside the copy, intervals and extra sections.
final class BoardCopy: Sendable {
    let directory: URL
    var configURL: URL { self.directory.appendingPathComponent("config.toml") }
    var stateDirectory: URL { self.directory.appendingPathComponent("state") }
    var credentialsURL: URL { self.stateDirectory.appendingPathComponent("credentials.json") }
    var spoolDirectory: URL { self.stateDirectory.appendingPathComponent("spool") }

    init() throws {
        self.directory = try TestSupport.makeTemporaryDirectory("e2e-board")
        let source = TestSupport.packageRoot.appendingPathComponent("board/simulated")
        for folder in ["gpio", "sysroot"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(folder), to: self.directory.appendingPathComponent(folder))
        }
    }

    /// The sensors of `board/simulated/config.toml`, each as a `[[sensors]]` block; `intervals` sets a sensor's own
    /// `interval`.
    static func sensors(_ names: [String], intervals: [String: String] = [:]) -> String {
        let blocks: [String: String] = [
            "door_closed": "kind = \"gpio\"\nline = \"GPIO17\"\nbias = \"pull-up\"\ndebounce = \"20ms\"",
            "rain_pulses": "kind = \"counter\"\nline = \"GPIO23\"\nbias = \"pull-down\"\ndebounce = \"5ms\"",
            "temperature": "kind = \"ds18b20\"",
            "cpu_temperature": "kind = \"thermal\"\nzone = \"thermal_zone0\"",
            "air_temperature": "kind = \"iio\"\ndevice = \"dht11\"\nchannel = \"in_temp_input\"\nscale = 0.001",
            "humidity": "kind = \"iio\"\ndevice = \"dht11\"\nchannel = \"in_humidityrelative_input\"\nscale = 0.001",
        ]
        return names.map { name in
            var text = "[[sensors]]\nname = \"\(name)\"\n" + (blocks[name] ?? "")
            if let interval = intervals[name] { text += "\ninterval = \"\(interval)\"" }
            return text + "\n"
        }.joined(separator: "\n")
    }

    static let everySensor = ["door_closed", "rain_pulses", "temperature", "cpu_temperature", "air_temperature", "humidity"]

    /// Writes `config.toml` for a server on 127.0.0.1:`port`.
    /// `provisioning` replaces the `[provisioning]` table's keys (the simulated profile's key and secret);
    /// `serverTLS` is a `[server.tls]` table's keys.
    func writeConfig(port: Int, interval: String = "10s", sensors: String, reprovisionHold: String = "1s",
                     maxBackoff: String = "2s", provisioning: String? = nil, serverTLS: String? = nil, extra: String = "") throws {
        try """
        [server]
        host = "127.0.0.1"
        port = \(port)
        max_backoff = "\(maxBackoff)"
        \(serverTLS.map { "[server.tls]\n" + $0 } ?? "")

        [provisioning]
        \(provisioning ?? "device_key = \"\(E2ESim.provisionKey)\"\ndevice_secret = \"\(E2ESim.provisionSecret)\"")

        [device]
        name_template = "sim-{id}"
        sysroot = "sysroot"
        state_dir = "state"

        [telemetry]
        interval = "\(interval)"

        [gpio]
        backend = "simulated"
        simulated_dir = "gpio"

        \(sensors)
        [button]
        line = "GPIO27"
        bias = "pull-up"
        active_low = true
        debounce = "50ms"
        reprovision_hold = "\(reprovisionHold)"

        [led]
        line = "GPIO22"

        \(extra)
        """.write(to: self.configURL, atomically: true, encoding: .utf8)
    }

    func url(_ relative: String) -> URL { self.directory.appendingPathComponent(relative) }

    func read(_ relative: String) throws -> String { try String(contentsOf: self.url(relative), encoding: .utf8) }

    /// Writes a file of the copy in place (sensor values, line levels), as the kernel would change it.
    func write(_ relative: String, _ text: String) throws {
        let handle = try FileHandle(forWritingTo: self.url(relative))
        defer { try? handle.close() }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(text.utf8))
    }

    /// Replaces a sensor file at once (a reader sees the old or the new value, never an empty file).
    func replace(_ relative: String, _ text: String) throws {
        try Data(text.utf8).write(to: self.url(relative), options: .atomic)
    }

    /// Holds the button (wired to ground: pressed reads 0) for `duration`, then releases it.
    func longPress(_ duration: Duration) async throws {
        try self.write("gpio/GPIO27", "0\n")
        await pause(duration)
        try self.write("gpio/GPIO27", "1\n")
    }

    /// The stored credentials file's bytes, nil when there is none.
    func credentialsData() -> Data? { try? Data(contentsOf: self.credentialsURL) }

    /// The access token in `credentials.json`.
    func storedToken() -> String? {
        guard let data = self.credentialsData(), let json = try? JSONValue.parse(Array(data)) else { return nil }
        return json["payload"]?["credentials"]?["token"]?.stringValue
    }

    /// Every reading in the spool's segments that the spool's state does not count as acknowledged: what the
    /// agent has taken and must still deliver. Read from the files as the agent left them on the file system.
    func spooledReadings() throws -> [DataPoint] {
        try SpoolFiles.readings(in: self.spoolDirectory)
    }
}

// MARK: - readings

/// One value of one key at one timestamp: how the tests identify a reading.
struct PointID: Hashable, Comparable, CustomStringConvertible {
    var key: String
    var ts: Int64
    static func < (a: PointID, b: PointID) -> Bool { (a.ts, a.key) < (b.ts, b.key) }
    var description: String { "\(self.key)@\(self.ts)" }
}

struct DataPoint: CustomStringConvertible {
    var id: PointID
    var value: JSONValue
    var description: String { "\(self.id)=\(self.value.serialized)" }

    /// Whether `other` carries the same value after ThingsBoard's type rules (22.0 arrives as the long 22).
    func sameValue(_ other: JSONValue) -> Bool {
        if let a = self.value.doubleValue, let b = other.doubleValue { return abs(a - b) < 1e-9 }
        return self.value == other
    }
}

/// A telemetry message as tb-sim logged it.
struct TelemetryEvent {
    var session: Int64
    /// Server time of arrival (ms).
    var received: Int64
    var readings: [DataPoint]
}

// MARK: - tb-sim

/// tb-sim with the simulated board's device profile, and readers of its event log.
final class E2ESim: Sendable {
    static let provisionKey = "SIMULATED-PROVISION-KEY"
    static let provisionSecret = "e2e-provision-secret"

    let process: TBSimProcess

    /// `profileExtra`: TOML appended to the board's profile (its `[profiles.rate_limits]`).
    /// `config`: more TOML after the board's profile (more `[[profiles]]`); `arguments`: more tb-sim flags.
    static func start(profileExtra: String = "", config: String = "", arguments: [String] = []) async throws -> E2ESim {
        try await offPool {
            E2ESim(process: try TBSimProcess(config: """
                [[profiles]]
                name = "simulated-boards"
                provision_key = "\(E2ESim.provisionKey)"
                provision_secret = "\(E2ESim.provisionSecret)"
                \(profileExtra)
                \(config)
                """, arguments: arguments))
        }
    }

    private init(process: TBSimProcess) { self.process = process }

    var mqttPort: Int { self.process.mqttPort }
    /// The TLS listener's port, when started with `--mqtts-port`.
    var mqttsPort: Int? { self.process.mqttsPort }

    func stop() async { _ = try? await offPool { self.process.child.stop() } }

    /// The event log, one JSON object per line (a line still being written is skipped).
    func events(_ kind: String? = nil) -> [JSONValue] {
        self.process.eventLines().compactMap { line in
            if let kind, !line.contains("\"event\":\"\(kind)\"") { return nil }
            return try? JSONValue.parse(line)
        }
    }

    func telemetry(device: String = simulatedDeviceName) -> [TelemetryEvent] {
        self.events("telemetry").compactMap { event in
            guard event["device"]?.stringValue == device else { return nil }
            var readings: [DataPoint] = []
            for entry in event["entries"]?.arrayValue ?? [] {
                guard let ts = entry["ts"]?.int64Value else { continue }
                for (key, value) in entry["values"]?.objectMembers ?? [] {
                    readings.append(DataPoint(id: PointID(key: key, ts: ts), value: value))
                }
            }
            return TelemetryEvent(session: event["session"]?.int64Value ?? -1, received: event["ts"]?.int64Value ?? 0, readings: readings)
        }
    }

    /// Every reading received, in order of arrival (duplicates included).
    func readings(device: String = simulatedDeviceName) -> [DataPoint] { self.telemetry(device: device).flatMap(\.readings) }

    func readings(of key: String, device: String = simulatedDeviceName) -> [DataPoint] {
        self.readings(device: device).filter { $0.id.key == key }
    }

    func provisionRequests() -> [JSONValue] { self.events("provision_request") }
    func provisionDecisions() -> [JSONValue] { self.events("provision_decision") }

    /// CONNECT attempts of device sessions (not provisioning), accepted or refused.
    func deviceConnects() -> [JSONValue] {
        self.events("connect").filter { $0["kind"]?.stringValue != "provision" }
    }

    /// The masked user name (the token's first four characters and "…") each session connected with.
    func sessionUsernames() -> [Int64: String] {
        var out: [Int64: String] = [:]
        for event in self.events("connect") {
            if let session = event["session"]?.int64Value { out[session] = event["username"]?.stringValue ?? "" }
        }
        return out
    }

    /// The device as the control interface shows it (credentials in full).
    func device(_ name: String = simulatedDeviceName) throws -> JSONValue? {
        let (status, body) = try self.process.control("GET", "/devices/\(name)")
        return status == 200 ? try JSONValue.parse(body) : nil
    }

    func control(_ method: String, _ path: String, _ body: String = "") async throws -> (status: Int, body: JSONValue) {
        let process = self.process
        let (status, text) = try await offPool { try process.control(method, path, body) }
        return (status, (try? JSONValue.parse(text)) ?? .string(text))
    }

    /// A server-side RPC; returns the device's reply.
    func rpc(_ method: String, params: String = "{}", device: String = simulatedDeviceName) async throws -> JSONValue {
        let (status, body) = try await self.control("POST", "/devices/\(device)/rpc",
                                                    "{\"method\":\"\(method)\",\"params\":\(params),\"timeout\":20}")
        guard status == 200, let response = body["response"] else {
            throw TestSupportError("RPC \(method) got HTTP \(status): \(body.serialized)")
        }
        return response
    }
}

/// Masks a token as tb-sim's event log does: its first four characters and "…".
func masked(_ token: String) -> String { String(token.prefix(4)) + "…" }

// MARK: - the agent

/// `tb-agent run --config F` on a board copy, started and stopped by PID.
final class AgentProcess: Sendable {
    let child: ChildProcess
    let board: BoardCopy

    /// `fileSizeLimit`: no file may grow past this many 512-byte blocks (RLIMIT_FSIZE, SIGXFSZ ignored): writes past
    /// it fail with EFBIG as on a full disk (the fault suite's stand-in when it cannot mount a small tmpfs).
    static func start(_ board: BoardCopy, environment: [String: String] = [:], fileSizeLimit: Int? = nil) async throws -> AgentProcess {
        let arguments = ["run", "--config", board.configURL.path, "--log-level", "debug"]
        let child = try await offPool {
            guard let fileSizeLimit else {
                return try ChildProcess(TestSupport.binary("tb-agent"), arguments, environment: environment)
            }
            return try ChildProcess(
                URL(fileURLWithPath: "/bin/sh"),
                ["-c", "trap '' XFSZ; ulimit -f \(fileSizeLimit) && exec \"$0\" \"$@\"", TestSupport.binary("tb-agent").path] + arguments,
                environment: environment)
        }
        return AgentProcess(child: child, board: board)
    }

    private init(child: ChildProcess, board: BoardCopy) {
        self.child = child
        self.board = board
    }

    var isRunning: Bool { self.child.isRunning }
    var log: String { self.child.stderr + self.child.stdout }

    /// SIGTERM (or `signal`); waits up to `timeout` for the exit and returns the exit status (nil: still running,
    /// then killed).
    func terminate(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async -> Int32? {
        self.child.signal(signal)
        let exited = await eventually(timeout, every: .milliseconds(20)) { !self.child.isRunning }
        if !exited { self.child.signal(SIGKILL) }
        let child = self.child
        let status = try? await offPool { () -> Int32 in
            child.waitUntilExit()
            return child.terminationStatus
        }
        return exited ? status : nil
    }

    /// `kill -9`: no chance to flush or disconnect.
    func kill9() async {
        self.child.signal(SIGKILL)
        let child = self.child
        _ = try? await offPool { child.waitUntilExit() }
    }

    /// What the running agent tells `tb-agent status --json` over its socket.
    func status() async throws -> JSONValue {
        let config = self.board.configURL.path
        let result = try await offPool { try TestSupport.tbAgent(["status", "--json", "--config", config], timeout: .seconds(20)) }
        return try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// Stops the agent and tb-sim whatever happens in a test.
func withProcesses<T>(_ agents: () -> [AgentProcess], _ sim: E2ESim, _ body: () async throws -> T) async throws -> T {
    do {
        let value = try await body()
        for agent in agents() where agent.isRunning { _ = await agent.terminate() }
        await sim.stop()
        return value
    } catch {
        for agent in agents() where agent.isRunning { await agent.kill9() }
        await sim.stop()
        throw error
    }
}

// MARK: - the spool, read from its files

enum SpoolFiles {
    /// The readings of every record above the acknowledged watermark in `state.json`.
    static func readings(in directory: URL) throws -> [DataPoint] {
        var acknowledged: UInt64 = 0
        if let data = try? Data(contentsOf: directory.appendingPathComponent("state.json")),
           let state = try? JSONValue.parse(Array(data)), let acked = state["acked"]?.int64Value {
            acknowledged = UInt64(acked)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".seg") }.sorted()
        var out: [DataPoint] = []
        for name in names {
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else { continue }  // trimmed meanwhile
            for record in SpoolRecord.scan(Array(data)).records where record.sequence > acknowledged {
                let entries = try JSONValue.parse(record.payload)
                for entry in entries.arrayValue ?? [] {
                    guard let ts = entry["ts"]?.int64Value else { continue }
                    for (key, value) in entry["values"]?.objectMembers ?? [] {
                        out.append(DataPoint(id: PointID(key: key, ts: ts), value: value))
                    }
                }
            }
        }
        return out
    }
}

// MARK: - systemd's notification socket, played by the test

/// A datagram socket bound to a path, standing in for systemd's `$NOTIFY_SOCKET`: records every notification with
/// the time it arrived.
///
/// `stop()` closes the socket only after the receiving thread has ended (it used to wait for it 2 s at most and
/// close anyway: a thread still in its loop would then `recv` on whatever socket got the number next).
final class NotifySocket: Sendable {
    struct Notification: Sendable {
        var at: ContinuousClock.Instant
        var lines: [String]
    }

    let path: String
    private let fd: Int32
    private let received = Mutex<[Notification]>([])
    private let stopped = Atomic<Bool>(false)
    private let thread = Mutex<JoinableThread?>(nil)

    init(directory: URL) throws {
        self.path = directory.appendingPathComponent("notify.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket(AF_UNIX, SOCK_DGRAM) failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(self.path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw TestSupportError("the socket path \(self.path) is too long for a UNIX socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw TestSupportError("bind(\(self.path)) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
        do {
            let thread = try JoinableThread { [self] in self.receive() }
            self.thread.withLock { $0 = thread }
        } catch {
            close(fd)
            unlink(self.path)
            throw error
        }
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !self.stopped.load(ordering: .acquiring) {
            let n = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { continue }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            let lines = text.split(separator: "\n").map(String.init)
            self.received.withLock { $0.append(Notification(at: ContinuousClock.now, lines: lines)) }
        }
    }

    var notifications: [Notification] { self.received.withLock { $0 } }

    /// True once the receiving thread has ended (always, after `stop()` returns).
    var receiverEnded: Bool { self.thread.withLock { $0 }?.isFinished ?? true }

    /// Arrival times of the notifications holding `line`.
    func times(of line: String) -> [ContinuousClock.Instant] {
        self.notifications.filter { $0.lines.contains(line) }.map(\.at)
    }

    /// Stops receiving and closes the socket (once).
    func stop() async {
        guard !self.stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = shutdown(self.fd, CInt(SHUT_RDWR))  // recv returns at once rather than after its 100 ms timeout
        let thread = self.thread.withLock { $0 }
        _ = try? await offPool { thread?.join() }
        close(self.fd)
        unlink(self.path)
    }
}
