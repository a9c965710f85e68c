import TBJSON

/// A ThingsBoard rate limit, `"cap:seconds,cap:seconds"` (for example `"20:1,600:60"`): every pair is a token bucket
/// holding `cap` tokens that refills greedily at `cap / seconds` per second, as bucket4j does.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public struct Bucket: Sendable, Hashable {
        public var capacity: Double
        public var seconds: Double
    }

    public let buckets: [Bucket]
    public let description: String

    /// Parses the text; `nil` with a reason when it is not `cap:seconds` pairs of positive integers.
    public init(_ text: String) throws(SimulatorError) {
        var buckets: [Bucket] = []
        for pair in text.split(separator: ",") where !String(pair).trimmingWhitespace().isEmpty {
            let parts = pair.split(separator: ":").map { String($0).trimmingWhitespace() }
            guard parts.count == 2, let cap = Int(parts[0]), let seconds = Int(parts[1]), cap > 0, seconds > 0 else {
                throw SimulatorError("rate limit \"\(text)\" must be pairs like \"20:1,600:60\" (messages:seconds)")
            }
            buckets.append(Bucket(capacity: Double(cap), seconds: Double(seconds)))
        }
        guard !buckets.isEmpty else { throw SimulatorError("rate limit \"\(text)\" is empty") }
        self.buckets = buckets
        self.description = text
    }
}

/// The optional per-device limits (all off by default, like ThingsBoard CE's default tenant profile).
public struct RateLimits: Sendable, Hashable {
    public var messages: RateLimit?
    public var telemetryMessages: RateLimit?
    public var telemetryDataPoints: RateLimit?

    public init(messages: RateLimit? = nil, telemetryMessages: RateLimit? = nil, telemetryDataPoints: RateLimit? = nil) {
        self.messages = messages
        self.telemetryMessages = telemetryMessages
        self.telemetryDataPoints = telemetryDataPoints
    }

    /// The `rateLimits` member of the `getSessionLimits` answer: the configured texts, `null` when not set.
    public var json: JSONValue {
        .object([
            ("messages", self.messages.map { .string($0.description) } ?? .null),
            ("telemetryMessages", self.telemetryMessages.map { .string($0.description) } ?? .null),
            ("telemetryDataPoints", self.telemetryDataPoints.map { .string($0.description) } ?? .null),
        ])
    }
}

/// Token buckets of one limit for one device.
struct TokenBuckets {
    let limit: RateLimit
    var tokens: [Double]
    var last: Double

    init(_ limit: RateLimit, now: Double) {
        self.limit = limit
        self.tokens = limit.buckets.map(\.capacity)
        self.last = now
    }

    /// Takes `amount` tokens from every bucket if all have them; `false` (nothing taken) otherwise.
    mutating func tryConsume(_ amount: Double, now: Double) -> Bool {
        let elapsed = max(0, now - self.last)
        self.last = now
        for (i, bucket) in self.limit.buckets.enumerated() {
            self.tokens[i] = min(bucket.capacity, self.tokens[i] + elapsed * bucket.capacity / bucket.seconds)
        }
        guard self.tokens.allSatisfy({ $0 >= amount }) else { return false }
        for i in self.tokens.indices { self.tokens[i] -= amount }
        return true
    }
}

/// The rate-limit state of one device.
struct DeviceRateState {
    var messages: TokenBuckets?
    var telemetryMessages: TokenBuckets?
    var telemetryDataPoints: TokenBuckets?

    init(_ limits: RateLimits, now: Double) {
        self.messages = limits.messages.map { TokenBuckets($0, now: now) }
        self.telemetryMessages = limits.telemetryMessages.map { TokenBuckets($0, now: now) }
        self.telemetryDataPoints = limits.telemetryDataPoints.map { TokenBuckets($0, now: now) }
    }

    /// Checks one message (and, for telemetry, its data points); returns the name of the exceeded limit, if any.
    mutating func admit(telemetryDataPoints: Int?, now: Double) -> String? {
        if self.messages != nil, self.messages?.tryConsume(1, now: now) == false { return "messages" }
        guard let points = telemetryDataPoints else { return nil }
        if self.telemetryMessages != nil, self.telemetryMessages?.tryConsume(1, now: now) == false { return "telemetryMessages" }
        if self.telemetryDataPoints != nil, self.telemetryDataPoints?.tryConsume(Double(points), now: now) == false {
            return "telemetryDataPoints"
        }
        return nil
    }
}
