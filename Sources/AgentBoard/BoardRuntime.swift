import AgentCore
import AgentGPIO
import Logging
import Synchronization
import TBJSON

/// The board as `run` drives it: the configured sensors, digital inputs reporting each debounced change, the
/// button's long press, and the status LED. Sensor reads run on a thread of its own (`BoardWorker`).
public final class BoardRuntime: BoardIO {
    let configuration: AgentConfiguration
    let environment: SensorEnvironment
    let sensors: [any BoardSensor]
    let led: LEDController?
    let logger: Logger
    private let button = Mutex<ButtonMonitor?>(nil)
    /// The latest report of each sensor, for its health.
    private let reports = Mutex<[String: SensorReport]>([:])
    /// The tasks that forward line changes and button events; cancelled by `stop()`.
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let worker: BoardWorker

    /// The board of `configuration` (paths resolved, see `BoardSetup.resolvingPaths`) over `gpio`.
    ///
    /// - Throws: `AgentError.hardwareUnavailable` when the sampling thread cannot be started.
    public init(_ configuration: AgentConfiguration, gpio: any GPIOBackend, logger: Logger) throws(AgentError) {
        self.configuration = configuration
        self.environment = BoardSetup.sensorEnvironment(configuration, gpio: gpio)
        self.worker = try BoardWorker()
        self.sensors = BoardSensors.make(configuration.sensors, environment: self.environment)
        self.logger = logger
        var led: LEDController? = nil
        if let settings = configuration.led {
            do {
                led = try LEDController(output: try BoardSetup.led(settings, files: self.environment.files, gpio: self.environment.gpio))
            } catch {
                logger.error("the status LED cannot be driven; the agent runs without it", metadata: ["error": "\(error.message)"])
            }
        }
        self.led = led
    }

    public func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError) {
        var problems: [String] = []
        for sensor in self.sensors {
            do {
                try sensor.start()
            } catch {
                problems.append(error.message)
                continue
            }
            guard let digital = sensor as? DigitalInputSensor else { continue }
            let name = sensor.settings.name
            let asNumber = sensor.settings.reportAsNumber
            let stream: AsyncThrowingStream<EdgeEvent, any Error>
            do {
                stream = try digital.changes()
            } catch {
                problems.append(error.message)
                continue
            }
            let task = Task {
                do {
                    for try await change in stream {
                        emit(.reading(key: name, value: asNumber ? .integer(change.level.isHigh ? 1 : 0) : .bool(change.level.isHigh)))
                    }
                } catch {
                    emit(.notice("sensor '\(name)' stopped watching its line: \(error)"))
                }
            }
            self.tasks.withLock { $0.append(task) }
        }
        if let settings = self.configuration.button {
            do {
                let monitor = try ButtonMonitor(backend: self.environment.gpio, settings: settings, led: self.led)
                self.button.withLock { $0 = monitor }
                for event in monitor.startEvents { emit(.notice("button: \(event)")) }
                let stream = monitor.outputs
                let task = Task {
                    // At most one gesture every 10 s reaches the agent, whatever the button does; the agent sends
                    // at most one claim request per claim window.
                    var gesture = MultiPressDetector(cooldown: MultiPressDetector.boardCooldown)
                    do {
                        for try await output in stream {
                            guard case .button(let event) = output else { continue }
                            switch gesture.handle(event) {
                            case .gesture?: emit(.claimRequested)
                            case .refused(_, let retryIn)?:
                                emit(.notice("button: three short presses again within 10 s: ignored (the next counts in \(BoardTime.seconds(retryIn)))"))
                            case nil: break
                            }
                            switch event {
                            case .reprovisionRequested: emit(.reprovisionRequested)
                            case .stuck: emit(.notice("button: \(event)"))
                            default: break
                            }
                        }
                    } catch {
                        emit(.notice("the button stopped being watched: \(error)"))
                    }
                }
                self.tasks.withLock { $0.append(task) }
            } catch {
                problems.append("button: \(error.message)")
            }
        }
        if !problems.isEmpty {
            throw AgentError(.hardwareUnavailable, problems.joined(separator: "; "))
        }
    }

    public func sample(_ names: [String]?, done: @escaping @Sendable ([(String, JSONValue)]) -> Void) {
        let queued = self.worker.submit { done(self.readNow(names)) }
        if !queued { done([]) }
    }

    /// Reads the named sensors (all when nil) on the calling thread, which blocks.
    func readNow(_ names: [String]?) -> [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        for sensor in self.sensors where names.map({ $0.contains(sensor.settings.name) }) ?? true {
            let report = sensor.read()
            self.reports.withLock { $0[report.name] = report }
            guard let value = report.value else { continue }
            out += Self.telemetry(name: report.name, value: value)
        }
        return out
    }

    /// A sensor value as telemetry: a counter gives its total under its name and its rate as `NAME_rate`.
    static func telemetry(name: String, value: SensorValue) -> [(String, JSONValue)] {
        switch value {
        case .bool(let b): return [(name, .bool(b))]
        case .integer(let i): return [(name, .integer(i))]
        case .number(let d): return [(name, .double(d))]
        case .counter(let count, let rate):
            var out: [(String, JSONValue)] = [(name, .integer(Int64(clamping: count)))]
            if let rate { out.append((name + "_rate", .double(rate))) }
            return out
        }
    }

    public func show(_ state: LEDState) { self.led?.show(state) }

    public func health() -> JSONValue {
        let now = self.environment.now()
        let reports = self.reports.withLock { $0 }
        return .object(self.sensors.map { sensor in
            guard let report = reports[sensor.settings.name] else {
                return (sensor.settings.name, ["status": "unknown"])
            }
            let health = report.health
            var fields: [(String, JSONValue)] = [
                ("status", .string(report.status.rawValue)),
                ("consecutiveFailures", .integer(Int64(health.consecutiveFailures))),
            ]
            if let age = health.age(now: now) { fields.append(("ageSeconds", .integer(age.components.seconds))) }
            if let value = health.lastGoodValue { fields.append(("lastGood", .string(value.description))) }
            if let error = health.lastError { fields.append(("lastError", .string(error))) }
            return (sensor.settings.name, .object(fields))
        })
    }

    public func stop() {
        for task in self.tasks.withLock({ $0 }) { task.cancel() }
        self.worker.stop()
        self.button.withLock { $0?.stop() }
        for sensor in self.sensors { sensor.stop() }
        self.led?.stop()
    }
}
