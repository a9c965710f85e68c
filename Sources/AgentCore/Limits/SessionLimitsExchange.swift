/// Asks `getSessionLimits` after every CONNACK and decides which limits are in force: the server's answer when it
/// comes in time, else the configured ones (`[server] rate_limits`). Time-boxed: ThingsBoard before 3.8 hands the
/// request to the rule engine, which usually never answers. A state machine: inputs return actions, no I/O.
public struct SessionLimitsExchange: Sendable {
    public enum Source: Sendable, Equatable {
        /// `[server] rate_limits` (no limits with `"auto"`): no answer yet, none in time, or an unusable one.
        case configured
        case server
    }

    public enum Action: Sendable, Equatable {
        /// Publish `payload` on `topic` (QoS 1), after subscribing to `SessionLimitsProtocol.responseFilter`.
        case send(topic: String, payload: [UInt8])
        /// Use these limits from now on (rebuild the rate limiter, the planner's budget, the in-flight window).
        case apply(SessionLimits, Source)
        /// Say this once, at this level.
        case log(LogLevel, String)
    }

    public enum LogLevel: Sendable, Equatable { case info, warning }

    public let settings: RateLimitSettings
    public let timeout: Duration
    /// The limits in force and where they came from.
    public private(set) var limits: SessionLimits
    public private(set) var source: Source = .configured
    /// The request awaiting its answer and when it times out.
    public private(set) var pending: (id: Int, deadline: Duration)? = nil
    private var nextID = 1
    /// "no answer" is said once per run, not on every reconnect.
    private var toldNoAnswer = false

    public init(settings: RateLimitSettings, timeout: Duration = .seconds(10)) {
        self.settings = settings
        self.timeout = timeout
        self.limits = settings.fallback
    }

    /// When `tick(now:)` must be called.
    public var deadline: Duration? { self.pending?.deadline }

    /// True while the answer is awaited: telemetry waits too (bounded by `timeout`), so that a backlog does not
    /// burst out under limits that are not known yet.
    public var awaitingAnswer: Bool { self.pending != nil }

    /// A session is up (CONNACK 0): ask again; the limits may have changed on the server since the last session.
    public mutating func connected(now: Duration) -> [Action] {
        let id = self.nextID
        self.nextID = self.nextID >= Int(Int32.max) ? 1 : self.nextID + 1
        self.pending = (id, now + self.timeout)
        return [.send(topic: SessionLimitsProtocol.requestTopic(id: id), payload: SessionLimitsProtocol.requestPayload)]
    }

    /// The session closed: an answer can no longer come on it.
    public mutating func disconnected() { self.pending = nil }

    /// A message on an RPC response topic. Nil when it is not the answer awaited (another RPC's response, a late
    /// answer from an earlier session): the caller handles it as it would have.
    public mutating func received(topic: String, payload: [UInt8]) -> [Action]? {
        guard let pending = self.pending, topic == SessionLimitsProtocol.responseTopic(id: pending.id) else { return nil }
        self.pending = nil
        do {
            let answer = try SessionLimitsProtocol.parseAnswer(payload)
            let changed = answer != self.limits || self.source != .server
            self.limits = answer
            self.source = .server
            return changed ? [.apply(answer, .server), .log(.info, "session limits from the server: \(Self.describe(answer))")] : []
        } catch {
            return self.fallBack(.warning, error.description)
        }
    }

    /// The deadline passed: no answer in time.
    public mutating func tick(now: Duration) -> [Action] {
        guard let pending = self.pending, now >= pending.deadline else { return [] }
        self.pending = nil
        if self.toldNoAnswer { return self.fallBack(nil, "") }
        self.toldNoAnswer = true
        let what: String
        switch self.settings {
        case .auto:
            what = "no limits are assumed (rate_limits = \"auto\"); if the server enforces some, set them in [server.rate_limits] as the tenant profile has them"
        case .explicit(let configured):
            what = "the configured [server.rate_limits] stay in force (\(Self.describe(configured)))"
        }
        return self.fallBack(
            .info, "the server did not answer getSessionLimits within \(DurationText.format(self.timeout)) (ThingsBoard before 3.8 does not): \(what)")
    }

    private mutating func fallBack(_ level: LogLevel?, _ text: String) -> [Action] {
        var actions: [Action] = []
        let fallback = self.settings.fallback
        if self.source != .configured || self.limits != fallback { actions.append(.apply(fallback, .configured)) }
        self.limits = fallback
        self.source = .configured
        if let level { actions.append(.log(level, text)) }
        return actions
    }

    /// `max payload 65536 B, in flight 100, messages 10:1,300:60, telemetry messages none, data points 10:1,300:60`.
    public static func describe(_ limits: SessionLimits) -> String {
        func text(_ value: Int?) -> String { value.map(String.init) ?? "none" }
        return "max payload \(text(limits.maxPayloadSize)) B, in flight \(text(limits.maxInflightMessages)), "
            + "messages \(limits.messages?.description ?? "none"), telemetry messages \(limits.telemetryMessages?.description ?? "none"), "
            + "data points \(limits.telemetryDataPoints?.description ?? "none")"
    }
}
