import TBJSON

/// The limits a ThingsBoard session works under: what `getSessionLimits` answers (ThingsBoard ≥ 3.8), or what
/// `[server] rate_limits` configures for servers that do not answer. A nil field is "no limit".
public struct SessionLimits: Sendable, Hashable {
    /// The largest MQTT packet the server decodes, compared with the packet's remaining length
    /// (`transport.mqtt.netty.max_payload_size`, 65536 by default); above it the server closes the connection.
    public var maxPayloadSize: Int?
    /// At most this many QoS 1 messages awaiting their PUBACK.
    public var maxInflightMessages: Int?
    /// Charged one token by every message without data points (attribute requests, RPC replies, subscriptions…).
    public var messages: RateLimit?
    /// Charged one token by every telemetry or attribute post with data points.
    public var telemetryMessages: RateLimit?
    /// Charged one token per data point of a telemetry or attribute post.
    public var telemetryDataPoints: RateLimit?

    public init(
        maxPayloadSize: Int? = nil, maxInflightMessages: Int? = nil, messages: RateLimit? = nil,
        telemetryMessages: RateLimit? = nil, telemetryDataPoints: RateLimit? = nil
    ) {
        self.maxPayloadSize = maxPayloadSize
        self.maxInflightMessages = maxInflightMessages
        self.messages = messages
        self.telemetryMessages = telemetryMessages
        self.telemetryDataPoints = telemetryDataPoints
    }

    /// No limit at all (ThingsBoard CE's default tenant profile).
    public static let none = SessionLimits()

    /// The smallest packet limit accepted: below it not even one reading fits.
    public static let minPayloadSize = 256
    /// MQTT's largest remaining length (268,435,455 bytes).
    public static let maxPayloadSizeBound = 268_435_455
    /// MQTT packet ids are 16 bits.
    public static let maxInflightBound = 65_535

    /// The in-flight window to use: the agent's own, lowered to the server's.
    public func inFlightWindow(agent: Int) -> Int { max(1, min(agent, self.maxInflightMessages ?? agent)) }
}

/// `[server] rate_limits`: ask the server (`"auto"`, the default), with no limits assumed when it does not answer;
/// or limits written out, used when the server does not answer (ThingsBoard before 3.8).
public enum RateLimitSettings: Sendable, Hashable {
    case auto
    case explicit(SessionLimits)

    /// The limits in force until (and unless) the server answers.
    public var fallback: SessionLimits {
        switch self {
        case .auto: return .none
        case .explicit(let limits): return limits
        }
    }
}

/// The client-side RPC `getSessionLimits`: the request, and the answer as ThingsBoard's MQTT transport sends it
/// (`MqttTransportHandler`): `{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"10:1,300:60",
/// "telemetryMessages":…,"telemetryDataPoints":…}}`, each limit a profile string or null.
public enum SessionLimitsProtocol {
    public static let method = "getSessionLimits"
    public static let requestPrefix = "v1/devices/me/rpc/request/"
    public static let responsePrefix = "v1/devices/me/rpc/response/"
    /// Subscribed to on connect, so that the answer arrives.
    public static let responseFilter = "v1/devices/me/rpc/response/+"
    /// An answer larger than this is not read (a real one is under 300 bytes).
    public static let maxAnswerBytes = 16 * 1024

    public static func requestTopic(id: Int) -> String { self.requestPrefix + String(id) }
    public static func responseTopic(id: Int) -> String { self.responsePrefix + String(id) }
    public static let requestPayload: [UInt8] = Array(#"{"method":"getSessionLimits","params":{}}"#.utf8)

    /// Reads an answer. Absent and null fields are "no limit"; unknown fields (`gatewayRateLimits`) are ignored.
    ///
    /// - Throws: `SessionLimitsError` naming the field that is wrong, or saying the server answered with an error
    ///   (older servers hand the request to the rule engine, which may answer `{"error":"timeout"}` after 60 s).
    public static func parseAnswer(_ payload: [UInt8]) throws(SessionLimitsError) -> SessionLimits {
        guard payload.count <= self.maxAnswerBytes else {
            throw SessionLimitsError(field: "", reason: .notAnAnswer("\(payload.count) bytes, more than \(self.maxAnswerBytes)"))
        }
        let body: JSONValue
        do {
            body = try JSONValue.parse(payload, maxDepth: 8)
        } catch {
            throw SessionLimitsError(field: "", reason: .notAnAnswer(error.description))
        }
        guard body.objectMembers != nil else { throw SessionLimitsError(field: "", reason: .notAnAnswer("not a JSON object")) }
        if let error = body["error"], !error.isNull {
            throw SessionLimitsError(field: "error", reason: .serverError(String((error.stringValue ?? error.serialized).prefix(200))))
        }
        var limits = SessionLimits()
        limits.maxPayloadSize = try self.integer(
            body, "maxPayloadSize", SessionLimits.minPayloadSize...SessionLimits.maxPayloadSizeBound)
        limits.maxInflightMessages = try self.integer(body, "maxInflightMessages", 1...SessionLimits.maxInflightBound)
        switch body["rateLimits"] {
        case nil, .null?:
            break
        case .object?:
            let rates = body["rateLimits"] ?? .null
            limits.messages = try self.limit(rates, "messages")
            limits.telemetryMessages = try self.limit(rates, "telemetryMessages")
            limits.telemetryDataPoints = try self.limit(rates, "telemetryDataPoints")
        case let other?:
            throw SessionLimitsError(field: "rateLimits", reason: .wrongType(expected: "an object", found: Self.kind(other)))
        }
        return limits
    }

    static func integer(_ body: JSONValue, _ field: String, _ range: ClosedRange<Int>) throws(SessionLimitsError) -> Int? {
        guard let value = body[field], !value.isNull else { return nil }
        guard let number = value.int64Value else {
            throw SessionLimitsError(field: field, reason: .wrongType(expected: "an integer", found: Self.kind(value)))
        }
        guard number >= Int64(range.lowerBound), number <= Int64(range.upperBound) else {
            throw SessionLimitsError(field: field, reason: .outOfRange(value: String(number), range: range))
        }
        return Int(number)
    }

    static func limit(_ rates: JSONValue, _ field: String) throws(SessionLimitsError) -> RateLimit? {
        let path = "rateLimits." + field
        guard let value = rates[field], !value.isNull else { return nil }
        guard let text = value.stringValue else {
            throw SessionLimitsError(field: path, reason: .wrongType(expected: "a string like \"10:1,300:60\"", found: Self.kind(value)))
        }
        do {
            return try RateLimit.parse(text)
        } catch {
            throw SessionLimitsError(field: path, reason: .badLimit(error))
        }
    }

    static func kind(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .number: return "a number (\(value.serialized.prefix(40)))"
        case .string(let s): return "a string (\"\(s.prefix(40))\")"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// A `getSessionLimits` answer the agent cannot use; the configured limits stay in force.
public struct SessionLimitsError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case notAnAnswer(String)
        case serverError(String)
        case wrongType(expected: String, found: String)
        case outOfRange(value: String, range: ClosedRange<Int>)
        case badLimit(RateLimitError)
    }

    /// The field at fault (`maxPayloadSize`, `rateLimits.telemetryDataPoints`), empty for the whole answer.
    public var field: String
    public var reason: Reason

    public init(field: String, reason: Reason) {
        self.field = field
        self.reason = reason
    }

    public var description: String {
        let fix = "; the configured [server] rate_limits stay in force"
        switch self.reason {
        case .notAnAnswer(let why):
            return "the getSessionLimits answer is unusable (\(why))\(fix)"
        case .serverError(let text):
            return "the server answered getSessionLimits with an error (\"\(text)\"): it is probably older than ThingsBoard 3.8\(fix)"
        case .wrongType(let expected, let found):
            return "getSessionLimits answer: \(self.field) is \(found), expected \(expected)\(fix)"
        case .outOfRange(let value, let range):
            return "getSessionLimits answer: \(self.field) = \(value) is out of range (\(range.lowerBound) to \(range.upperBound))\(fix)"
        case .badLimit(let error):
            return "getSessionLimits answer: \(self.field): \(error)\(fix)"
        }
    }
}
