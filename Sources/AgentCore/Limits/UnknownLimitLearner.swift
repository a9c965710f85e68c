/// Learns limits the agent was not told: a connection that closes right after a publish, with publishes still
/// unacknowledged, is how ThingsBoard refuses a message over a rate limit or over its packet size (no PUBACK, the
/// connection closed; MQTT 3.1.1 says nothing more). The learner then halves the batch, backs off, counts it
/// (`agent_rate_limited`) and logs it once with the fix; after a run of acknowledged publishes the batch grows back
/// slowly. A state machine: inputs return actions, time is passed in.
public struct UnknownLimitLearner: Sendable {
    public struct Settings: Sendable, Equatable {
        /// A close counts when it comes within this of the last publish.
        public var window: Duration = .seconds(2)
        /// The first back-off; each further cut doubles it, up to `maxBackOff`.
        public var backOff: Duration = .seconds(5)
        public var maxBackOff: Duration = .seconds(300)
        /// The caps never go below these (one reading per PUBLISH; a small packet).
        public var minDataPoints: Int = 1
        public var minBytes: Int = 512
        /// After this many acknowledged publishes in a row, and `growthInterval` since the last cut or growth, the
        /// caps grow by a quarter; past `release` times their value at the cut they are lifted.
        public var growthStreak: Int = 20
        public var growthInterval: Duration = .seconds(60)

        public init() {}
    }

    public enum Action: Sendable, Equatable {
        /// New caps for `PublishBudget` (nil: no cap of the learner's).
        case setCaps(dataPoints: Int?, bytes: Int?)
        /// Publish no telemetry before this (monotonic) time, and reconnect no earlier either.
        case backOff(until: Duration)
        /// Add one to `agent_rate_limited`.
        case countRateLimited
        /// Log this warning (the first time only; later ones are only counted).
        case warn(String)
    }

    public let settings: Settings
    /// The learner's caps on one PUBLISH (nil: none).
    public private(set) var dataPointCap: Int? = nil
    public private(set) var byteCap: Int? = nil
    /// Times a close was taken as an unknown limit.
    public private(set) var rateLimited: UInt64 = 0
    /// Cuts in a row without a recovery: the back-off doubles with each.
    public private(set) var consecutiveCuts = 0
    public private(set) var backOffUntil: Duration? = nil

    /// Publishes handed over and not acknowledged on this connection: their data points and bytes.
    private var outstanding: [UInt64: (dataPoints: Int, bytes: Int)] = [:]
    private var nextToken: UInt64 = 0
    private var lastPublish: Duration? = nil
    private var streak = 0
    private var lastChange: Duration? = nil
    private var warned = false
    /// The caps when first cut: growing past them lifts the caps.
    private var releaseDataPoints: Int? = nil
    private var releaseBytes: Int? = nil

    public init(settings: Settings = .init()) { self.settings = settings }

    /// A telemetry PUBLISH was handed over: its data points and its remaining length. Returns a token to give back
    /// with its PUBACK.
    public mutating func published(dataPoints: Int, bytes: Int, now: Duration) -> UInt64 {
        self.nextToken &+= 1
        // Bounded: at most the in-flight window is outstanding; a link that never reports is cut off here.
        if self.outstanding.count >= 1024, let oldest = self.outstanding.keys.min() { self.outstanding[oldest] = nil }
        self.outstanding[self.nextToken] = (dataPoints, bytes)
        self.lastPublish = now
        return self.nextToken
    }

    /// A PUBACK for the publish `token`.
    public mutating func acknowledged(_ token: UInt64, now: Duration) -> [Action] {
        guard self.outstanding.removeValue(forKey: token) != nil else { return [] }
        self.streak += 1
        guard self.dataPointCap != nil || self.byteCap != nil, self.streak >= self.settings.growthStreak,
            now - (self.lastChange ?? .zero) >= self.settings.growthInterval
        else { return [] }
        self.streak = 0
        self.lastChange = now
        self.consecutiveCuts = 0
        func grow(_ cap: Int?, _ release: Int?) -> Int? {
            guard let cap else { return nil }
            let grown = cap + max(1, cap / 4)
            if let release, grown >= release * 2 { return nil }
            return grown
        }
        self.dataPointCap = grow(self.dataPointCap, self.releaseDataPoints)
        self.byteCap = grow(self.byteCap, self.releaseBytes)
        return [.setCaps(dataPoints: self.dataPointCap, bytes: self.byteCap)]
    }

    /// The publish `token` was not handed over after all: it is no longer outstanding.
    public mutating func withdrawn(_ token: UInt64) { self.outstanding[token] = nil }

    /// The connection closed. Taken as an unknown limit when publishes were unacknowledged and the last one was
    /// handed over within `window` of the close; otherwise an ordinary disconnect (nothing to do).
    public mutating func connectionClosed(now: Duration) -> [Action] {
        let unacknowledged = self.outstanding.values
        let last = self.lastPublish
        self.outstanding = [:]
        self.lastPublish = nil
        self.streak = 0
        guard !unacknowledged.isEmpty, let last, now - last <= self.settings.window else { return [] }

        let largestPoints = unacknowledged.map(\.dataPoints).max() ?? 1
        let largestBytes = unacknowledged.map(\.bytes).max() ?? self.settings.minBytes
        if self.releaseDataPoints == nil { self.releaseDataPoints = largestPoints }
        if self.releaseBytes == nil { self.releaseBytes = largestBytes }
        self.dataPointCap = max(self.settings.minDataPoints, min(self.dataPointCap ?? Int.max, largestPoints) / 2)
        self.byteCap = max(self.settings.minBytes, min(self.byteCap ?? Int.max, largestBytes) / 2)
        self.rateLimited &+= 1
        // Doubled per cut in a row, capped at every step (no overflow whatever the settings).
        var delay = min(self.settings.backOff, self.settings.maxBackOff)
        for _ in 0..<min(self.consecutiveCuts, 62) where delay < self.settings.maxBackOff {
            delay = delay > self.settings.maxBackOff / 2 ? self.settings.maxBackOff : delay * 2
        }
        self.consecutiveCuts += 1
        self.backOffUntil = now + delay
        self.lastChange = now

        var actions: [Action] = [
            .setCaps(dataPoints: self.dataPointCap, bytes: self.byteCap), .backOff(until: now + delay), .countRateLimited,
        ]
        if !self.warned {
            self.warned = true
            actions.append(.warn(
                "the server closed the connection right after a publish, without acknowledging \(unacknowledged.count) of them: "
                    + "a rate limit or packet-size limit this agent was not told about (servers before ThingsBoard 3.8 do not "
                    + "answer getSessionLimits). Sending at most \(self.dataPointCap ?? 0) data points and \(self.byteCap ?? 0) bytes "
                    + "per message and waiting \(DurationText.format(delay)); the batch grows back while messages are acknowledged. "
                    + "Fix: set [server.rate_limits] to the tenant profile's transport limits (messages, telemetry_messages, "
                    + "telemetry_data_points, max_payload_size), or raise them on the server. Further ones are only counted "
                    + "(agent_rate_limited)"))
        }
        return actions
    }

    /// The agent ended the session itself (a DISCONNECT of its own, a reconnect it chose): its unacknowledged
    /// publishes tell nothing about limits.
    public mutating func sessionEnded() {
        self.outstanding = [:]
        self.lastPublish = nil
        self.streak = 0
    }

    /// May telemetry go out at `now`? False during a back-off.
    public func mayPublish(now: Duration) -> Bool { self.backOffUntil.map { now >= $0 } ?? true }
}
