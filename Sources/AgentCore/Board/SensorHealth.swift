/// A sensor's value, ready to publish.
public enum SensorValue: Sendable, Equatable, CustomStringConvertible {
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    /// A pulse counter: the total (kept across restarts) and pulses per second over the last interval (nil until
    /// a first interval has passed).
    case counter(count: UInt64, ratePerSecond: Double?)

    public var description: String {
        switch self {
        case .bool(let value): return value ? "true" : "false"
        case .integer(let value): return "\(value)"
        case .number(let value): return "\(value)"
        case .counter(let count, let rate):
            guard let rate else { return "count=\(count)" }
            return "count=\(count) rate=\(SensorParsers.round(rate, precision: 3))/s"
        }
    }

    /// A gpio sensor's level as configured by `report_as`.
    public static func level(_ level: LineLevel, asNumber: Bool) -> SensorValue {
        asNumber ? .integer(level.isHigh ? 1 : 0) : .bool(level.isHigh)
    }
}

/// How a sensor has been doing: what later issues publish as the sensor's health.
public struct SensorHealth: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        /// Never read yet.
        case unknown
        /// The last read worked.
        case ok
        /// The last read failed, but the last good value is still fresh enough to report.
        case stale
        /// The last read failed and there is no fresh value.
        case failing
    }

    public private(set) var consecutiveFailures = 0
    public private(set) var totalReads = 0
    public private(set) var totalFailures = 0
    public private(set) var lastGoodValue: SensorValue?
    public private(set) var lastGoodAt: Duration?
    public private(set) var lastError: String?
    public private(set) var lastErrorAt: Duration?

    public init() {}

    public mutating func recordSuccess(_ value: SensorValue, at time: Duration) {
        self.totalReads += 1
        self.consecutiveFailures = 0
        self.lastGoodValue = value
        self.lastGoodAt = time
    }

    public mutating func recordFailure(_ failure: SensorFailure, at time: Duration) {
        self.totalReads += 1
        self.totalFailures += 1
        self.consecutiveFailures += 1
        self.lastError = failure.message
        self.lastErrorAt = time
    }

    /// How old the last good value is.
    public func age(now: Duration) -> Duration? { self.lastGoodAt.map { max(now - $0, .zero) } }

    /// The last good value if it is at most `window` old.
    public func freshValue(now: Duration, within window: Duration) -> SensorValue? {
        guard let age = self.age(now: now), age <= window else { return nil }
        return self.lastGoodValue
    }

    public func status(now: Duration, freshness: Duration) -> Status {
        if self.totalReads == 0 { return .unknown }
        if self.consecutiveFailures == 0 { return .ok }
        return self.freshValue(now: now, within: freshness) == nil ? .failing : .stale
    }

    /// One line for people: `ok`, or the failures, the last good value and its age, and the last error.
    public func summary(now: Duration, freshness: Duration) -> String {
        let status = self.status(now: now, freshness: freshness)
        guard status != .ok, status != .unknown else { return status.rawValue }
        var parts = ["\(self.consecutiveFailures) consecutive failure\(self.consecutiveFailures == 1 ? "" : "s")"]
        if let value = self.lastGoodValue, let age = self.age(now: now) {
            parts.append("last good \(value) \(BoardTime.seconds(age)) ago")
        } else {
            parts.append("no good reading yet")
        }
        if let error = self.lastError { parts.append("last error: \(error)") }
        return "\(status.rawValue) (\(parts.joined(separator: "; ")))"
    }
}

/// A pulse counter's arithmetic: the running total and the rate between samples.
public struct CounterTally: Sendable, Equatable {
    public private(set) var count: UInt64
    private var sampledCount: UInt64
    private var sampledAt: Duration?

    public init(count: UInt64 = 0) {
        self.count = count
        self.sampledCount = count
    }

    public mutating func pulse(_ pulses: UInt64 = 1) {
        self.count &+= pulses
    }

    /// The total, the pulses since the previous sample, and pulses per second since then (nil at the first
    /// sample, which only starts the interval).
    public mutating func sample(at time: Duration) -> (count: UInt64, delta: UInt64, ratePerSecond: Double?) {
        let delta = self.count &- self.sampledCount
        var rate: Double? = nil
        if let previous = self.sampledAt, time > previous {
            let (seconds, attoseconds) = (time - previous).components
            rate = Double(delta) / (Double(seconds) + Double(attoseconds) / 1e18)
        }
        self.sampledCount = self.count
        self.sampledAt = time
        return (self.count, delta, rate)
    }

    /// The counter's state file: the count in decimal and a newline.
    public static func encode(_ count: UInt64) -> String { "\(count)\n" }

    /// Reads a counter's state file; nil when it does not hold a count.
    public static func decode(_ text: String) -> UInt64? { UInt64(BoardText.trim(text)) }
}
