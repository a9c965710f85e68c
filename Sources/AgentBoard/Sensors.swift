import AgentCore
import AgentGPIO
import Synchronization

/// One sensor's reading and how it has been doing.
public struct SensorReport: Sendable {
    public let name: String
    public let kind: SensorSettings.Kind
    /// What to publish: this read's value, or the last good one while it is fresh; nil when there is none.
    public let value: SensorValue?
    public let health: SensorHealth
    public let status: SensorHealth.Status
    /// `ok`, or the failures, the last good value and its age, and the last error.
    public let summary: String
}

/// What sensors read through.
public struct SensorEnvironment: Sendable {
    public var files: any BoardFiles
    public var gpio: any GPIOBackend
    public var counters: CounterStore
    /// `[telemetry] interval`, for the freshness window of sensors without their own `interval`.
    public var telemetryInterval: Duration
    /// How retries wait (tests pass one that does not). Reads run on the board's sampling thread, never on
    /// Swift's cooperative pool, so this blocks.
    public var sleep: @Sendable (Duration) -> Void
    /// The monotonic clock.
    public var now: @Sendable () -> Duration

    public init(
        files: any BoardFiles, gpio: any GPIOBackend, counters: CounterStore, telemetryInterval: Duration = .seconds(10),
        sleep: @escaping @Sendable (Duration) -> Void = SensorEnvironment.blockingSleep,
        now: @escaping @Sendable () -> Duration = { MonotonicClock.now() }
    ) {
        self.files = files
        self.gpio = gpio
        self.counters = counters
        self.telemetryInterval = telemetryInterval
        self.sleep = sleep
        self.now = now
    }
}

extension SensorEnvironment {
    /// Sleeps the calling thread (the sampling thread; never Swift's cooperative pool).
    public static func blockingSleep(_ duration: Duration) { BoardThread.sleep(for: duration) }
}

/// A configured sensor. A failing sensor reports its failure in its health and never throws: the others carry on.
public protocol BoardSensor: AnyObject, Sendable {
    var settings: SensorSettings { get }
    /// Reads once (with retries where the kind calls for them). Blocks (a DS18B20 takes ~750 ms): call it from a
    /// thread of its own (`BoardRuntime`'s sampling thread) or a command, never from Swift's cooperative pool.
    func read() -> SensorReport
    /// Starts watching the line (gpio and counter sensors); a no-op for file sensors.
    func start() throws(AgentError)
    /// Stops watching and saves what must survive a restart (a counter's total).
    func stop()
}

extension BoardSensor {
    public func start() throws(AgentError) {}
    public func stop() {}
}

/// Builds the sensors of a configuration.
public enum BoardSensors {
    public static func make(_ settings: [SensorSettings], environment: SensorEnvironment) -> [any BoardSensor] {
        settings.map { sensor -> any BoardSensor in
            switch sensor.kind {
            case .ds18b20, .iio, .thermal: return FileBackedSensor(sensor, environment: environment)
            case .gpio: return DigitalInputSensor(sensor, environment: environment)
            case .counter: return PulseCounterSensor(sensor, environment: environment)
            }
        }
    }

    /// Reads every sensor once, in order.
    public static func readAll(_ sensors: [any BoardSensor]) -> [SensorReport] {
        var reports: [SensorReport] = []
        for sensor in sensors { reports.append(sensor.read()) }
        return reports
    }
}

/// Health bookkeeping shared by the sensor kinds.
final class SensorRecord: Sendable {
    let settings: SensorSettings
    let policy: ReadRetryPolicy
    let health = Mutex(SensorHealth())

    init(_ settings: SensorSettings, environment: SensorEnvironment) {
        self.settings = settings
        self.policy = ReadRetryPolicy.for(settings, interval: environment.telemetryInterval)
    }

    func success(_ value: SensorValue, at time: Duration) -> SensorReport {
        self.report(at: time) { $0.recordSuccess(value, at: time) }
    }

    func failure(_ failure: SensorFailure, at time: Duration) -> SensorReport {
        self.report(at: time) { $0.recordFailure(failure, at: time) }
    }

    private func report(at time: Duration, _ update: (inout SensorHealth) -> Void) -> SensorReport {
        let health = self.health.withLock { health -> SensorHealth in
            update(&health)
            return health
        }
        return SensorReport(
            name: self.settings.name, kind: self.settings.kind,
            value: health.freshValue(now: time, within: self.policy.freshness), health: health,
            status: health.status(now: time, freshness: self.policy.freshness),
            summary: health.summary(now: time, freshness: self.policy.freshness))
    }
}

/// `ds18b20`, `iio`, `thermal`: a file below the system root. Transient failures (a DHT's EIO) are retried; a
/// failed read still reports the last good value while it is fresh.
final class FileBackedSensor: BoardSensor {
    let record: SensorRecord
    let environment: SensorEnvironment
    var settings: SensorSettings { self.record.settings }

    init(_ settings: SensorSettings, environment: SensorEnvironment) {
        self.record = SensorRecord(settings, environment: environment)
        self.environment = environment
    }

    func read() -> SensorReport {
        let reader = FileSensor(self.settings)
        var attempt = 1
        while true {
            do {
                let value = try reader.read(self.environment.files)
                return self.record.success(.number(value), at: self.environment.now())
            } catch {
                if self.record.policy.shouldRetry(after: error, attempt: attempt) {
                    attempt += 1
                    self.environment.sleep(self.record.policy.pause)
                    continue
                }
                let message = attempt > 1 ? SensorFailure(error.kind, "\(error.message) (\(attempt) attempts)") : error
                return self.record.failure(message, at: self.environment.now())
            }
        }
    }
}

/// `gpio`: a digital input, debounced, reported as true/false (or 1/0 with `report_as = "number"`).
public final class DigitalInputSensor: BoardSensor {
    let record: SensorRecord
    let environment: SensorEnvironment
    private let watcher = Mutex<LineWatcher<Debouncer>?>(nil)
    public var settings: SensorSettings { self.record.settings }

    init(_ settings: SensorSettings, environment: SensorEnvironment) {
        self.record = SensorRecord(settings, environment: environment)
        self.environment = environment
    }

    private func line() throws(SensorFailure) -> LineAddress {
        guard let line = self.settings.line else {
            throw SensorFailure(.malformed, "sensor '\(self.settings.name)': a \(self.settings.kind.rawValue) sensor needs `line` (or `chip` and `offset`)")
        }
        return line
    }

    private var request: InputRequest {
        InputRequest(bias: self.settings.bias, activeLow: self.settings.activeLow, edges: true,
                     consumer: "tb-agent \(self.settings.name)", debounce: self.settings.debounce)
    }

    /// Debounced changes, as the line settles: what the agent reports on every change. Starts watching if
    /// needed.
    public func changes() throws(AgentError) -> AsyncThrowingStream<EdgeEvent, any Error> {
        try self.start()
        guard let watcher = self.watcher.withLock({ $0 }) else {
            throw AgentError(.hardwareUnavailable, "sensor '\(self.settings.name)' is not watching its line")
        }
        return watcher.outputs
    }

    public func start() throws(AgentError) {
        guard self.watcher.withLock({ $0 }) == nil else { return }
        let line: LineAddress
        do {
            line = try self.line()
        } catch {
            throw AgentError(.invalidConfiguration, error.message)
        }
        let input = try self.environment.gpio.input(line, self.request)
        let debounce = self.settings.debounce
        let watcher = try LineWatcher(input: input) { level, time in
            Debouncer(initial: level, at: time, window: debounce)
        }
        self.watcher.withLock { $0 = watcher }
    }

    public func stop() {
        self.watcher.withLock { watcher in
            watcher?.stop()
            watcher = nil
        }
    }

    public func read() -> SensorReport {
        let now = self.environment.now()
        // While watching, the debounced level; otherwise a one-off read of the line.
        if let watcher = self.watcher.withLock({ $0 }) {
            return self.record.success(.level(watcher.machine.level, asNumber: self.settings.reportAsNumber), at: now)
        }
        do {
            var request = self.request
            request.edges = false
            let input = try self.environment.gpio.input(try self.lineOrConfigurationError(), request)
            let level = try input.read()
            return self.record.success(.level(level, asNumber: self.settings.reportAsNumber), at: now)
        } catch {
            return self.record.failure(SensorFailure(.hardware, error.message), at: now)
        }
    }

    private func lineOrConfigurationError() throws(AgentError) -> LineAddress {
        do {
            return try self.line()
        } catch {
            throw AgentError(.invalidConfiguration, error.message)
        }
    }
}

/// `counter`: counts debounced rising edges (flow meters, rain gauges, anemometers); reports the total, which
/// survives restarts, and the rate over the last interval.
public final class PulseCounterSensor: BoardSensor {
    let record: SensorRecord
    let environment: SensorEnvironment
    /// In a class so the watcher thread's callback can share it.
    private final class Tally: Sendable {
        let value: Mutex<CounterTally>
        init(_ count: UInt64) { self.value = Mutex(CounterTally(count: count)) }
    }
    private let tally: Tally
    private let saved: Mutex<UInt64>
    private let loadError: AgentError?
    private let watcher = Mutex<LineWatcher<CounterWatch>?>(nil)
    public var settings: SensorSettings { self.record.settings }

    init(_ settings: SensorSettings, environment: SensorEnvironment) {
        self.record = SensorRecord(settings, environment: environment)
        self.environment = environment
        var count: UInt64 = 0
        var loadError: AgentError? = nil
        do {
            count = try environment.counters.load(settings.name)
        } catch {
            loadError = error
        }
        self.loadError = loadError
        self.tally = Tally(count)
        self.saved = Mutex(count)
    }

    public func start() throws(AgentError) {
        guard self.watcher.withLock({ $0 }) == nil else { return }
        guard let line = self.settings.line else {
            throw AgentError(.invalidConfiguration, "sensor '\(self.settings.name)': a counter sensor needs `line` (or `chip` and `offset`)")
        }
        let request = InputRequest(bias: self.settings.bias, activeLow: self.settings.activeLow, edges: true,
                                   consumer: "tb-agent \(self.settings.name)", debounce: self.settings.debounce)
        let input = try self.environment.gpio.input(line, request)
        let debounce = self.settings.debounce
        let tally = self.tally
        let watcher = try LineWatcher(input: input, onStep: { _, pulses in
            if !pulses.isEmpty { tally.value.withLock { $0.pulse(UInt64(pulses.count)) } }
        }) { level, time in
            CounterWatch(initial: level, at: time, debounce: debounce)
        }
        _ = self.tally.value.withLock { $0.sample(at: self.environment.now()) }
        self.watcher.withLock { $0 = watcher }
    }

    /// Stops counting and saves the total.
    public func stop() {
        self.watcher.withLock { watcher in
            watcher?.stop()
            watcher = nil
        }
        _ = try? self.save()
    }

    /// The total so far.
    public var count: UInt64 { self.tally.value.withLock { $0.count } }

    /// Saves the total if it changed since the last save.
    @discardableResult
    public func save() throws(AgentError) -> Bool {
        let count = self.count
        guard self.saved.withLock({ $0 }) != count else { return false }
        try self.environment.counters.save(self.settings.name, count: count)
        self.saved.withLock { $0 = count }
        return true
    }

    /// Samples the count and the rate since the previous read, and saves the total (once per interval).
    public func read() -> SensorReport {
        let now = self.environment.now()
        let sample = self.tally.value.withLock { $0.sample(at: now) }
        let watching = self.watcher.withLock { $0 } != nil
        do {
            try self.save()
        } catch {
            return self.record.failure(SensorFailure(.ioError, error.message), at: now)
        }
        if let loadError = self.loadError, sample.count == 0 {
            return self.record.failure(SensorFailure(.ioError, loadError.message), at: now)
        }
        return self.record.success(.counter(count: sample.count, ratePerSecond: watching ? sample.ratePerSecond : nil),
                                   at: now)
    }
}
