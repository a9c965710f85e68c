import AgentCore
import AgentPlatform
import AgentService
import AgentSimulated
import AgentTestSupport
import Foundation
import Logging
import Synchronization
import TBJSON

/// The credential store in memory, with its pending generation.
final class MemoryStore: CredentialKeeping {
    let stored: Mutex<DeviceCredentials?>
    let pending: Mutex<DeviceCredentials?>
    let saves = Mutex(0)
    let pendingSaves = Mutex(0)
    let blocked: String?

    init(_ credentials: DeviceCredentials? = nil, pending: DeviceCredentials? = nil, blocked: String? = nil) {
        self.stored = Mutex(credentials)
        self.pending = Mutex(pending)
        self.blocked = blocked
    }

    func inventory() -> CredentialInventory {
        CredentialInventory(stored: self.load() != nil, pending: self.loadPending() != nil, blocked: self.blocked)
    }

    func load() -> DeviceCredentials? { self.stored.withLock { $0 } }

    func save(_ credentials: DeviceCredentials) throws(AgentError) {
        self.stored.withLock { $0 = credentials }
        self.pending.withLock { $0 = nil }
        self.saves.withLock { $0 += 1 }
    }

    func loadPending() -> DeviceCredentials? { self.pending.withLock { $0 } }

    func savePending(_ credentials: DeviceCredentials) throws(AgentError) {
        self.pending.withLock { $0 = credentials }
        self.pendingSaves.withLock { $0 += 1 }
    }

    func commitPending(_ credentials: DeviceCredentials) throws(AgentError) {
        self.stored.withLock { $0 = credentials }
        self.pending.withLock { $0 = nil }
        self.saves.withLock { $0 += 1 }
    }

    func discardPending() throws(AgentError) { self.pending.withLock { $0 = nil } }
}

/// A provisioner that answers from a list (then with the last answer) and counts its sessions.
/// The clock floor in memory.
final class MemoryClockFloor: ClockFloorKeeping {
    let value: Mutex<Int64?>
    let saves = Mutex(0)
    init(_ value: Int64? = nil) { self.value = Mutex(value) }
    func load() -> Int64? { self.value.withLock { $0 } }
    func save(_ milliseconds: Int64) throws(AgentError) {
        self.value.withLock { $0 = milliseconds }
        self.saves.withLock { $0 += 1 }
    }
}

final class ScriptedProvisioner: Provisioning {
    let answers: Mutex<[Result<DeviceCredentials, AgentError>]>
    let sessions = Mutex(0)

    init(_ answers: [Result<DeviceCredentials, AgentError>]) { self.answers = Mutex(answers) }

    func provision() async -> Result<DeviceCredentials, AgentError> {
        self.sessions.withLock { $0 += 1 }
        return self.answers.withLock { answers in
            answers.count > 1 ? answers.removeFirst() : (answers.first ?? .failure(AgentError(.provisioningFailed, "no answer")))
        }
    }
}

/// A board whose reads finish when the test says so (a slow DS18B20), counting how many were asked for.
final class SlowBoard: BoardIO {
    struct State {
        var waiting: [@Sendable ([(String, JSONValue)]) -> Void] = []
        var requests: [[String]?] = []
        var led: [LEDState] = []
        var autoFinish: Bool
    }
    let state: Mutex<State>
    let value: Mutex<Double> = Mutex(21.5)

    let emitter = Mutex<(@Sendable (BoardEvent) -> Void)?>(nil)

    init(autoFinish: Bool = true) { self.state = Mutex(State(autoFinish: autoFinish)) }

    func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError) { self.emitter.withLock { $0 = emit } }

    /// Sends a board event (a button gesture) as the board's watcher would.
    func emit(_ event: BoardEvent) { self.emitter.withLock { $0 }?(event) }

    func sample(_ names: [String]?, done: @escaping @Sendable ([(String, JSONValue)]) -> Void) {
        let now = self.state.withLock { state -> Bool in
            state.requests.append(names)
            if state.autoFinish { return true }
            state.waiting.append(done)
            return false
        }
        if now { done([("temp", .double(self.value.withLock { $0 }))]) }
    }

    /// Finishes the reads under way; returns how many.
    @discardableResult
    func finishReads() -> Int {
        let waiting = self.state.withLock { state in
            defer { state.waiting = [] }
            return state.waiting
        }
        let value = self.value.withLock { $0 }
        for done in waiting { done([("temp", .double(value))]) }
        return waiting.count
    }

    var requests: [[String]?] { self.state.withLock { $0.requests } }
    var readsUnderWay: Int { self.state.withLock { $0.waiting.count } }
    var leds: [LEDState] { self.state.withLock { $0.led } }

    func show(_ state: LEDState) { self.state.withLock { $0.led.append(state) } }
    func health() -> JSONValue { .object([]) }
    func stop() {}
}

/// One runtime in-process: in-memory broker, manual clock, memory store, scripted provisioner, slow board.
final class RuntimeHarness: @unchecked Sendable {
    static let wallStart: Int64 = AgentBuild.timestampMilliseconds + 86_400_000

    let broker = InMemoryBroker()
    let clock = ManualClock(wallMilliseconds: RuntimeHarness.wallStart)
    let store: MemoryStore
    let provisioner: ScriptedProvisioner
    let board: SlowBoard
    let clockFloor: MemoryClockFloor
    let directory: URL
    let runtime: AgentRuntime
    private var task: Task<Void, any Error>? = nil

    static let token = DeviceCredentials.accessToken(Secret("stored-token"))

    init(
        stored: DeviceCredentials? = RuntimeHarness.token, pending: DeviceCredentials? = nil, blocked: String? = nil,
        provisioning: [Result<DeviceCredentials, AgentError>] = [.success(.accessToken(Secret("new-token")))],
        board: SlowBoard = SlowBoard(), interval: Duration = .seconds(10), clockFloor: Int64? = nil,
        rateLimits: RateLimitSettings = .auto, claiming: ClaimingSettings? = nil,
        options: (inout AgentRuntime.Options) -> Void = { _ in }
    ) throws {
        self.clockFloor = MemoryClockFloor(clockFloor)
        self.store = MemoryStore(stored, pending: pending, blocked: blocked)
        self.provisioner = ScriptedProvisioner(provisioning)
        self.board = board
        self.directory = try TestSupport.makeTemporaryDirectory("runtime")
        var configuration = AgentConfiguration(
            server: ServerSettings(host: "127.0.0.1", port: 1883),
            provisioning: ProvisioningSettings(deviceKey: "key", deviceSecret: Secret("secret")),
            device: DeviceSettings(stateDir: self.directory.path),
            telemetry: TelemetrySettings(interval: interval))
        configuration.sensors = [SensorSettings(name: "temp", kind: .thermal)]
        configuration.server.rateLimits = rateLimits
        configuration.claiming = claiming
        var runtimeOptions = AgentRuntime.Options()
        runtimeOptions.figuresInterval = .seconds(3600)
        options(&runtimeOptions)
        var logger = Logger(label: "runtime-test")
        logger.logLevel = .critical
        self.runtime = AgentRuntime(
            configuration: configuration, deviceName: "dev-1",
            ports: AgentRuntime.Ports(
                links: self.broker, store: self.store, provisioner: self.provisioner, board: board,
                notifier: SystemdNotifier(environment: [:]), clock: self.clock, clockFloor: self.clockFloor),
            spoolDirectory: self.directory.path + "/spool", logger: logger, options: runtimeOptions)
    }

    func start() {
        let runtime = self.runtime
        self.task = Task { try await runtime.run() }
    }

    /// Cancels the loop and waits for it to stop.
    func stop() async {
        self.task?.cancel()
        _ = await self.task?.result
        try? FileManager.default.removeItem(at: self.directory)
    }

    var status: JSONValue { self.runtime.status }
    var state: String? { self.status["state"]?.stringValue }

    /// Waits (real time, bounded) until `condition` holds: the loop runs on the cooperative pool beside the test.
    /// 30 s: on a loaded 2-core machine (the whole suite, builds and a VM beside it) the pool's two threads were
    /// seen busy for over 10 s, and four runtime tests timed out together waiting to be online.
    func until(_ what: String, timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else { throw TestSupportError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Advances the manual clock in steps, letting the loop handle what falls due at each.
    func advance(by total: Duration, step: Duration = .milliseconds(500)) async throws {
        var left = total
        while left > .zero {
            let d = min(step, left)
            self.clock.advance(by: d)
            left -= d
            try await Task.sleep(for: .milliseconds(3))
        }
    }

    /// Advances the manual clock step by step until `condition` holds, at most `limit` of manual time. For waits
    /// the budget paces (a drain under rate limits): a loop that lags behind the steps on a busy machine loses the
    /// tokens that overflow the bucket meanwhile, so a fixed advance can end before the drain does.
    func advanceUntil(_ what: String, limit: Duration = .seconds(300), step: Duration = .milliseconds(250),
                      _ condition: () -> Bool) async throws {
        var advanced = Duration.zero
        while !condition() {
            guard advanced < limit else { throw TestSupportError("not \(what) after \(limit) of the manual clock") }
            self.clock.advance(by: step)
            advanced += step
            try await Task.sleep(for: .milliseconds(3))
        }
    }

    func rpc(_ id: Int, _ method: String, params: String = "null") {
        self.broker.send(topic: "v1/devices/me/rpc/request/\(id)", payload: Array(#"{"method":"\#(method)","params":\#(params)}"#.utf8))
    }

    func replies() -> [InMemoryBroker.Published] {
        self.broker.published.filter { $0.topic.hasPrefix("v1/devices/me/rpc/response/") }
    }

    func telemetry() -> [JSONValue] {
        self.broker.published(topic: "v1/devices/me/telemetry").flatMap { (try? JSONValue.parse($0.payload))?.arrayValue ?? [] }
    }
}
