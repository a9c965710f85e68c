import AgentBoard
import AgentCore
import AgentGPIO
import AgentService
import Logging
import Synchronization
import TBJSON

/// The board as `run` drives it: the configured sensors, digital inputs reporting each debounced change, the
/// button's long press, and the status LED.
final class BoardRuntime: BoardIO {
    let configuration: AgentConfiguration
    let environment: SensorEnvironment
    let sensors: [any BoardSensor]
    let led: LEDController?
    let logger: Logger
    private let button = Mutex<ButtonMonitor?>(nil)
    /// The latest report of each sensor, for its health.
    private let reports = Mutex<[String: SensorReport]>([:])
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(_ configuration: AgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.environment = BoardSetup.sensorEnvironment(configuration)
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

    func start(emit: @escaping @Sendable (BoardEvent) -> Void) throws(AgentError) {
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
                    do {
                        for try await output in stream {
                            guard case .button(let event) = output else { continue }
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

    func sample(_ names: [String]?) async -> [(String, JSONValue)] {
        var out: [(String, JSONValue)] = []
        for sensor in self.sensors where names.map({ $0.contains(sensor.settings.name) }) ?? true {
            let report = await sensor.read()
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

    func show(_ state: LEDState) { self.led?.show(state) }

    func health() -> JSONValue {
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

    func stop() {
        for task in self.tasks.withLock({ $0 }) { task.cancel() }
        self.button.withLock { $0?.stop() }
        for sensor in self.sensors { sensor.stop() }
        self.led?.stop()
    }
}

enum BoardSetupForRun {
    static func make(_ config: AgentConfiguration, configurationFile: String, logger: Logger) throws -> (any BoardIO)? {
        if config.sensors.isEmpty && config.button == nil && config.led == nil { return nil }
        return BoardRuntime(BoardSetup.resolvingPaths(config, configurationFile: configurationFile), logger: logger)
    }

    static var versionAttributes: [(String, JSONValue)] {
        [("libgpiodVersion", .string(LibgpiodBackend.libraryVersion))]
    }
}
