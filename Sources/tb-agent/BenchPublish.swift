import AgentCommandLine
import AgentCore
import AgentMQTT
import AgentPlatform
import AgentService
import Logging
import ServiceLifecycle
import Synchronization
import TBJSON
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent bench-publish`: the telemetry path of `run`, driven as fast as it goes, for `scripts/bench.sh`.
///
/// It runs the real `AgentRuntime` (readings → `TelemetryEncoder` → `Spool` → `MosquittoClient`, with the same
/// in-flight window and batching) against the `[server]` of the configuration, with fixed credentials instead of
/// provisioning (any MQTT broker that accepts a user name will do) and a board that hands over `--readings`
/// readings at once as soon as the agent is online. It waits until the agent reports every one of them
/// acknowledged (PUBACK), then prints one JSON line with the time and CPU that took.
struct BenchPublish: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-publish",
        abstract: "Benchmark: publish N readings through the agent's telemetry path and wait for every PUBACK.",
        discussion: """
            Uses [server] and [spool] of the configuration and a fresh spool in [device] state_dir/bench-spool; \
            no provisioning (the user name is --token). Prints {"readings":N,"seconds":S,"readingsPerSecond":R,\
            "cpuSeconds":C,"maxRSSKiB":K,"rateLimited":L,"reconnects":N} on standard output. Used by scripts/bench.sh.
            """,
        shouldDisplay: false)

    static let readings = Option<Int>("readings", help: "How many readings to publish.", default: 20_000)
    static let inFlight = Option<Int>(
        "in-flight", help: "PUBLISHes awaiting their PUBACK at most (the agent's default).",
        default: AgentRuntime.Options().inFlightWindow)
    static let recordsPerPublish = Option<Int>(
        "records-per-publish", help: "Spooled records per PUBLISH at most (the agent's default; 1 sends every reading on its own).",
        default: AgentRuntime.Options().recordsPerPublish)
    static let token = Option<String>(
        "token", help: "The MQTT user name (an access token for ThingsBoard; anything for a plain broker).", default: "bench-token")
    static let timeout = Option<Int>("timeout", help: "Seconds to wait for every acknowledgement before giving up.", default: 300)

    static var arguments: [ArgumentSpec] {
        GlobalOptions.arguments + [
            Self.readings.spec, Self.inFlight.spec, Self.recordsPerPublish.spec, Self.token.spec, Self.timeout.spec,
        ]
    }

    var global: GlobalOptions
    var readings: Int
    var inFlight: Int
    var recordsPerPublish: Int
    var token: String
    var timeout: Int

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.readings = try values.value(Self.readings)
        self.inFlight = try values.value(Self.inFlight)
        self.recordsPerPublish = try values.value(Self.recordsPerPublish)
        self.token = try values.value(Self.token)
        self.timeout = try values.value(Self.timeout)
    }

    func validate() throws {
        guard self.readings > 0, self.inFlight > 0, self.recordsPerPublish > 0 else {
            throw ValidationError("--readings, --in-flight and --records-per-publish must be positive")
        }
    }

    func run() async throws {
        let logger = LinkCommand.logger(self.global)
        var config = try LinkCommand.loadConfiguration(self.global)
        config.sensors = []
        config.button = nil
        config.led = nil
        let spoolDirectory = config.device.stateDir + "/bench-spool"
        _ = try LinkCommand.run { () throws(AgentError) in try StateDirectory.ensure(config.device.stateDir) }

        let board = BurstBoard()
        var options = AgentRuntime.Options()
        options.inFlightWindow = self.inFlight
        options.recordsPerPublish = self.recordsPerPublish
        options.figuresInterval = .seconds(3600)
        let ports = AgentRuntime.Ports(
            links: MosquittoLinks(server: config.server, logger: logger), store: FixedCredentials(token: Secret(self.token)),
            provisioner: NoProvisioning(), board: board, notifier: SystemdNotifier(environment: [:]))
        let runtime = AgentRuntime(
            configuration: config, deviceName: "bench-publish", ports: ports, spoolDirectory: spoolDirectory,
            spoolSettings: config.spool, logger: logger, options: options)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [runtime], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))

        let count = self.readings
        let deadline = ContinuousClock.now + .seconds(self.timeout)
        let outcome = try await withThrowingTaskGroup(of: Result<BenchResult, BenchFailure>?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask {
                let result = await Self.drive(board: board, status: { runtime.status }, readings: count, deadline: deadline)
                await group.triggerGracefulShutdown()
                return result
            }
            var outcome: Result<BenchResult, BenchFailure>? = nil
            for try await value in tasks where value != nil { outcome = value }
            return outcome
        }
        switch outcome {
        case .success(let result):
            print(result.json.serialized)
        case .failure(let failure):
            CommandOutput.error("tb-agent bench-publish: \(failure.message)")
            throw ExitCode(ExitStatus.unavailable)
        case nil:
            CommandOutput.error("tb-agent bench-publish: stopped before the readings were acknowledged")
            throw ExitCode(ExitStatus.software)
        }
    }

    /// Waits until the agent is online, hands over the readings, and waits until all are acknowledged. `status` is
    /// the loop's latest status document (what the status socket would answer, without a socket and a JSON parse
    /// per look: the figures are the agent's, not the benchmark's).
    static func drive(
        board: BurstBoard, status: @Sendable () -> JSONValue, readings: Int, deadline: ContinuousClock.Instant
    ) async
        -> Result<BenchResult, BenchFailure>
    {
        // Online: connected, subscribed and announced; the spool is empty.
        while true {
            if status()["state"]?.stringValue == "online" { break }
            if ContinuousClock.now > deadline { return .failure(BenchFailure(message: "the agent did not get online (is the broker running?)")) }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let start = ContinuousClock.now
        let cpuBefore = ProcessCPU.seconds()
        board.burst(readings)
        // A short poll of the loop's latest snapshot keeps the benchmark's own cost out of the figures.
        while true {
            if let published = status()["published"]?.int64Value, published >= Int64(readings) { break }
            if ContinuousClock.now > deadline {
                return .failure(BenchFailure(message: "not every reading was acknowledged within the timeout"))
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        let elapsed = ContinuousClock.now - start
        let cpu = ProcessCPU.seconds() - cpuBefore
        let final = status()
        return .success(
            BenchResult(
                readings: readings, elapsed: elapsed, cpuSeconds: cpu, maxRSSKiB: ProcessCPU.maxRSSKiB(),
                rateLimited: final["rateLimited"]?.int64Value ?? 0, reconnects: final["reconnects"]?.int64Value ?? 0))
    }
}

struct BenchResult: Sendable {
    var readings: Int
    var elapsed: Duration
    var cpuSeconds: Double
    var maxRSSKiB: Int
    /// Connections the server closed right after a publish (`agent_rate_limited`), and reconnects.
    var rateLimited: Int64 = 0
    var reconnects: Int64 = 0

    var json: JSONValue {
        let seconds = Double(self.elapsed.components.seconds) + Double(self.elapsed.components.attoseconds) / 1e18
        return [
            "readings": .integer(Int64(self.readings)),
            "seconds": .double(seconds),
            "readingsPerSecond": .double(seconds > 0 ? Double(self.readings) / seconds : 0),
            "cpuSeconds": .double(self.cpuSeconds),
            "maxRSSKiB": .integer(Int64(self.maxRSSKiB)),
            "rateLimited": .integer(self.rateLimited),
            "reconnects": .integer(self.reconnects),
        ]
    }
}

struct BenchFailure: Error, Sendable {
    var message: String
}

/// The process's CPU time (user + system, every thread) and peak resident set size, from getrusage.
enum ProcessCPU {
    static func seconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    static func maxRSSKiB() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss)
    }
}

/// A board with no sensors that hands over a burst of readings when told: the same `.reading` events a digital
/// input sends, so each one takes the agent's path for a reading (stamp, encode, spool, publish).
final class BurstBoard: BoardIO {
    private let emit = CallbackSlot<BoardEvent>()

    func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError) {
        self.emit.set(emit)
    }

    func burst(_ count: Int) {
        for i in 0..<count {
            guard self.emit(.reading(key: "bench", value: .integer(Int64(i)))) else { return }
        }
    }

    func sample(_ names: [String]?, done: @escaping @Sendable ([(String, JSONValue)]) -> Void) { done([]) }
    func show(_ state: LEDState) {}
    func health() -> JSONValue { .object([]) }
    func stop() {}
}

/// Credentials that are simply there: the benchmark never provisions.
struct FixedCredentials: CredentialKeeping {
    let token: Secret
    func inventory() -> CredentialInventory { CredentialInventory(stored: true) }
    func load() -> DeviceCredentials? { .accessToken(self.token) }
    func save(_ credentials: DeviceCredentials) throws(AgentError) {}
    func loadPending() -> DeviceCredentials? { nil }
    func savePending(_ credentials: DeviceCredentials) throws(AgentError) {}
    func commitPending(_ credentials: DeviceCredentials) throws(AgentError) {}
    func discardPending() throws(AgentError) {}
}

struct NoProvisioning: Provisioning {
    func provision() async -> Result<DeviceCredentials, AgentError> {
        .failure(AgentError(.invalidConfiguration, "bench-publish does not provision: it connects with --token"))
    }
}
