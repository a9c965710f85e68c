import TBJSON

/// A ThingsBoard rate limit, `"cap:seconds,cap:seconds"` (for example `"20:1,600:60"`): every pair is a token bucket
/// holding `cap` tokens that starts full and refills greedily at `cap / seconds` per second, as bucket4j does for
/// `TbRateLimits`. Every pair applies at once.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    public struct Bucket: Sendable, Hashable {
        public var capacity: Double
        public var seconds: Double
    }

    public let buckets: [Bucket]
    /// The text as configured: what `getSessionLimits` reports.
    public let description: String

    /// Parses the text.
    ///
    /// - Throws: ``SimulatorError`` when it is not `cap:seconds` pairs of positive integers.
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

    /// The smallest capacity: a message costing more can never pass.
    public var smallestCapacity: Double { self.buckets.map(\.capacity).min() ?? 0 }
}

/// The three per-device limits of a ThingsBoard tenant profile (`transportDeviceMsgRateLimit`,
/// `transportDeviceTelemetryMsgRateLimit`, `transportDeviceTelemetryDataPointsRateLimit`); `nil` is unlimited, as
/// in ThingsBoard CE's default tenant profile.
public struct RateLimits: Sendable, Hashable {
    public var messages: RateLimit?
    public var telemetryMessages: RateLimit?
    public var telemetryDataPoints: RateLimit?

    public init(messages: RateLimit? = nil, telemetryMessages: RateLimit? = nil, telemetryDataPoints: RateLimit? = nil) {
        self.messages = messages
        self.telemetryMessages = telemetryMessages
        self.telemetryDataPoints = telemetryDataPoints
    }

    /// The configured text of one limit, `"none"` when unset (for logs).
    public func text(_ name: RateLimitName) -> String {
        let limit: RateLimit? = switch name {
        case .messages: self.messages
        case .telemetryMessages: self.telemetryMessages
        case .telemetryDataPoints: self.telemetryDataPoints
        }
        return limit?.description ?? "none"
    }

    /// No limit at all.
    public var isUnlimited: Bool { self.messages == nil && self.telemetryMessages == nil && self.telemetryDataPoints == nil }

    /// The `rateLimits` member of the `getSessionLimits` answer: the configured texts, `null` when not set.
    public var json: JSONValue {
        .object([
            ("messages", self.messages.map { .string($0.description) } ?? .null),
            ("telemetryMessages", self.telemetryMessages.map { .string($0.description) } ?? .null),
            ("telemetryDataPoints", self.telemetryDataPoints.map { .string($0.description) } ?? .null),
        ])
    }

    /// Reads `{"messages": "10:1", "telemetryMessages": null, ...}` (the control interface's and registry's form).
    ///
    /// - Throws: ``SimulatorError`` for a member that is neither a limit text nor `null`, or an unknown member.
    public init(json: JSONValue) throws(SimulatorError) {
        guard case .object(let members) = json else {
            throw SimulatorError("rateLimits must be an object such as {\"messages\": \"20:1,600:60\"}")
        }
        self.init()
        for (key, value) in members {
            let limit: RateLimit?
            if value.isNull {
                limit = nil
            } else if let text = value.stringValue {
                limit = try RateLimit(text)
            } else {
                throw SimulatorError("rateLimits.\(key) must be a string such as \"20:1,600:60\" or null")
            }
            switch key {
            case "messages": self.messages = limit
            case "telemetryMessages": self.telemetryMessages = limit
            case "telemetryDataPoints": self.telemetryDataPoints = limit
            default:
                throw SimulatorError("rateLimits has an unknown member \"\(key)\" (known: messages, telemetryMessages, telemetryDataPoints)")
            }
        }
    }
}

/// What one message costs, as ThingsBoard's `DefaultTransportRateLimitService.checkEntityRateLimit` charges it:
/// a message carrying data points (telemetry or attributes with at least one key) takes one telemetry-message token
/// and one data-point token per key, and nothing from the messages bucket; everything else (session open and close,
/// subscriptions, attribute requests, RPC, claims, and posts with no key) takes one messages token.
public enum RateCharge: Sendable, Hashable {
    case message
    case dataPoints(Int)

    /// The charge of a telemetry or attribute post with this many data points.
    public static func post(dataPoints: Int) -> RateCharge { dataPoints > 0 ? .dataPoints(dataPoints) : .message }
}

/// The names of the three limits, as `getSessionLimits`, the event log and the control interface spell them.
public enum RateLimitName: String, Sendable, Hashable, CaseIterable {
    case messages
    case telemetryMessages
    case telemetryDataPoints
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
        self.last = max(self.last, now)
        for (i, bucket) in self.limit.buckets.enumerated() {
            self.tokens[i] = min(bucket.capacity, self.tokens[i] + elapsed * bucket.capacity / bucket.seconds)
        }
        guard self.tokens.allSatisfy({ $0 >= amount }) else { return false }
        for i in self.tokens.indices { self.tokens[i] -= amount }
        return true
    }
}

/// The rate-limit state of one device: kept across its sessions, as ThingsBoard keeps it per device id.
struct DeviceRateState {
    var messages: TokenBuckets?
    var telemetryMessages: TokenBuckets?
    var telemetryDataPoints: TokenBuckets?

    init() {}

    /// A limit whose text changed starts over with full buckets; an unchanged one keeps its state (ThingsBoard's
    /// `DefaultTransportRateLimitService.merge`).
    private static func sync(_ buckets: inout TokenBuckets?, _ limit: RateLimit?, now: Double) {
        guard let limit else {
            buckets = nil
            return
        }
        if buckets?.limit != limit { buckets = TokenBuckets(limit, now: now) }
    }

    /// Charges one message against `limits`; returns the exceeded limit, if any. As in ThingsBoard, a telemetry
    /// message whose data points do not fit has still used its telemetry-message token.
    mutating func admit(_ charge: RateCharge, limits: RateLimits, now: Double) -> RateLimitName? {
        Self.sync(&self.messages, limits.messages, now: now)
        Self.sync(&self.telemetryMessages, limits.telemetryMessages, now: now)
        Self.sync(&self.telemetryDataPoints, limits.telemetryDataPoints, now: now)
        switch charge {
        case .message:
            if self.messages?.tryConsume(1, now: now) == false { return .messages }
        case .dataPoints(let points):
            if self.telemetryMessages?.tryConsume(1, now: now) == false { return .telemetryMessages }
            if self.telemetryDataPoints?.tryConsume(Double(points), now: now) == false { return .telemetryDataPoints }
        }
        return nil
    }
}

/// The ThingsBoard version a device profile stands for, as far as the device API differs: `getSessionLimits` is
/// answered by the transport from 3.8 on and is an ordinary client-side RPC before.
public struct ThingsBoardVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(major: Int, minor: Int, patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// Parses `"3.7"`, `"3.7.1"` or `"4.2.1.1"` (parts after the third are ignored).
    ///
    /// - Throws: ``SimulatorError`` when the text is not dot-separated numbers.
    public init(_ text: String) throws(SimulatorError) {
        let parts = text.trimmingWhitespace().split(separator: ".", omittingEmptySubsequences: false)
        let numbers = parts.compactMap { part in part.allSatisfy(\.isASCII) ? Int(part) : nil }
        guard parts.count >= 2, numbers.count == parts.count, numbers.allSatisfy({ $0 >= 0 }) else {
            throw SimulatorError("ThingsBoard version \"\(text)\" must look like \"3.7\" or \"4.2.1\"")
        }
        self.init(major: numbers[0], minor: numbers[1], patch: numbers.count > 2 ? numbers[2] : 0)
    }

    /// The first version whose transport answers `getSessionLimits` itself.
    public static let sessionLimits = ThingsBoardVersion(major: 3, minor: 8)

    public var answersSessionLimits: Bool { self >= Self.sessionLimits }

    public var description: String { "\(self.major).\(self.minor).\(self.patch)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }
}
