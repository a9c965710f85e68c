/// The agent's side of one ThingsBoard rate-limit window: a token bucket that refills greedily (continuously, as
/// Bucket4j's greedy refill does on the server), kept at a fraction (80 %) of the server's window: it holds at most
/// `capacity` = max(1, ⌊80 % of the window⌋) tokens and refills at 80 % of the server's rate. Spending only what
/// this bucket holds keeps the server's bucket at least as full as this one, whatever the timing.
///
/// Time is passed in (monotonic `Duration`s); nothing here reads a clock or sleeps.
public struct TokenBucket: Sendable, Equatable {
    /// The server's window.
    public let window: RateLimitWindow
    /// The most tokens this bucket holds.
    public let capacity: Int
    /// Tokens per second.
    public let refillRate: Double
    public private(set) var tokens: Double
    public private(set) var updatedAt: Duration

    /// - Parameters:
    ///   - fraction: the share of the server's window used (0.8, ThingsBoard's SDK's `TB_DEFAULT_RATE_LIMIT_PERCENTAGE`).
    ///   - startFull: false (the default) starts empty, refilling from `now`: the server's bucket for this device
    ///     outlives sessions and restarts, so what it holds when the agent starts is unknown. An empty start costs
    ///     one token's refill time, not a window.
    public init(window: RateLimitWindow, fraction: Double = 0.8, now: Duration, startFull: Bool = false) {
        // A window built by hand (not parsed) may hold zeros: treat them as 1, so that no rate is zero or infinite.
        let fraction = fraction.isFinite ? min(max(fraction, 0.01), 1) : 0.8
        let share = Double(max(1, window.capacity)) * fraction
        self.window = window
        self.capacity = max(1, Int(share.rounded(.down)))
        self.refillRate = min(Double(self.capacity), share) / Double(max(1, window.seconds))
        self.tokens = startFull ? Double(self.capacity) : 0
        self.updatedAt = now
    }

    /// Tokens available at `now` (never more than `capacity`; time going backwards adds none).
    public func available(at now: Duration) -> Double {
        let elapsed = max(0, Self.seconds(now - self.updatedAt))
        return min(Double(self.capacity), self.tokens + elapsed * self.refillRate)
    }

    /// How long until `cost` tokens can be spent while leaving `reserve` tokens in the bucket; nil when `cost` is
    /// more than the bucket ever holds. The reserve shrinks as far as needed for `cost` to fit.
    public func delay(for cost: Int, reserve: Double = 0, now: Duration) -> Duration? {
        guard cost <= self.capacity else { return nil }
        guard cost > 0 else { return .zero }
        let needed = Double(cost) + min(max(0, reserve), Double(self.capacity - cost))
        let missing = needed - self.available(at: now)
        guard missing > 1e-9 else { return .zero }
        return Self.duration(seconds: missing / self.refillRate)
    }

    /// Spends `cost` tokens at `now` (the level may go below zero if the caller did not wait: it then pays back).
    public mutating func consume(_ cost: Int, now: Duration) {
        let level = self.available(at: now)
        self.tokens = level - Double(max(0, cost))
        if now > self.updatedAt { self.updatedAt = now }
    }

    static func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) / 1e18
    }

    /// Seconds rounded up to the next whole millisecond (a wait a little long is safe; a little short is not),
    /// capped at a day.
    static func duration(seconds: Double) -> Duration {
        guard seconds.isFinite else { return .seconds(86_400) }
        let ms = (min(seconds, 86_400) * 1000 - 1e-6).rounded(.up)
        return .milliseconds(Int64(max(0, ms)))
    }
}

/// The client-side rate limiter for one session's limits: a token bucket per window of each ThingsBoard limit,
/// charged as the server charges (`DefaultTransportRateLimitService.checkLimits`): a message with data points
/// costs one telemetry-message token and one data-point token per point; a message without costs one
/// regular-message token.
public struct RateLimiter: Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case now
        case wait(Duration)
        /// Never sendable under these limits: split it, or drop it and say so.
        case never(Impossible)
    }

    public enum Impossible: Sendable, Equatable, CustomStringConvertible {
        /// More data points than the smallest data-point window allows (at the fraction used).
        case tooManyDataPoints(Int, limit: Int)
        /// A packet larger than the server's `maxPayloadSize`.
        case tooLarge(bytes: Int, limit: Int)

        public var description: String {
            switch self {
            case .tooManyDataPoints(let n, let limit):
                return "\(n) data points in one message, more than the server's data-point limit allows (\(limit) at 80 % of its smallest window)"
            case .tooLarge(let bytes, let limit):
                return "a \(bytes)-byte packet, larger than the server's maxPayloadSize (\(limit) bytes)"
            }
        }
    }

    public private(set) var limits: SessionLimits
    public let fraction: Double
    private(set) var messages: [TokenBucket]
    private(set) var telemetryMessages: [TokenBucket]
    private(set) var dataPoints: [TokenBucket]

    public init(limits: SessionLimits, fraction: Double = 0.8, now: Duration, startFull: Bool = false) {
        self.limits = limits
        self.fraction = fraction
        func buckets(_ limit: RateLimit?) -> [TokenBucket] {
            (limit?.windows ?? []).map { TokenBucket(window: $0, fraction: fraction, now: now, startFull: startFull) }
        }
        self.messages = buckets(limits.messages)
        self.telemetryMessages = buckets(limits.telemetryMessages)
        self.dataPoints = buckets(limits.telemetryDataPoints)
    }

    /// New limits (a new answer to `getSessionLimits`): windows that did not change keep their level, new ones
    /// start as `init` starts them.
    public mutating func update(_ limits: SessionLimits, now: Duration, startFull: Bool = false) {
        func carry(_ old: [TokenBucket], _ limit: RateLimit?) -> [TokenBucket] {
            (limit?.windows ?? []).map { window in
                old.first(where: { $0.window == window })
                    ?? TokenBucket(window: window, fraction: self.fraction, now: now, startFull: startFull)
            }
        }
        self.messages = carry(self.messages, limits.messages)
        self.telemetryMessages = carry(self.telemetryMessages, limits.telemetryMessages)
        self.dataPoints = carry(self.dataPoints, limits.telemetryDataPoints)
        self.limits = limits
    }

    /// The most data points one message may carry (nil: no data-point limit).
    public var maxDataPointsPerMessage: Int? { self.dataPoints.map(\.capacity).min() }

    /// When a message of `dataPoints` data points and `bytes` of remaining length (`TelemetryCost.remainingLength`;
    /// nil: not checked) may be sent. `reserve` (0 to 1) leaves that share of each bucket's capacity unspent:
    /// replay asks with a reserve so that live readings find tokens waiting (`LiveReplayShare`).
    public func decision(dataPoints: Int, bytes: Int?, reserve: Double = 0, now: Duration) -> Decision {
        if let bytes, let limit = self.limits.maxPayloadSize, bytes > limit {
            return .never(.tooLarge(bytes: bytes, limit: limit))
        }
        let charged: [(TokenBucket, Int)]
        if dataPoints > 0 {
            if let limit = self.maxDataPointsPerMessage, dataPoints > limit {
                return .never(.tooManyDataPoints(dataPoints, limit: limit))
            }
            charged = self.telemetryMessages.map { ($0, 1) } + self.dataPoints.map { ($0, dataPoints) }
        } else {
            charged = self.messages.map { ($0, 1) }
        }
        var wait = Duration.zero
        for (bucket, cost) in charged {
            let share = max(0, min(1, reserve)) * Double(bucket.capacity)
            guard let delay = bucket.delay(for: cost, reserve: share, now: now) else {
                // Only the data-point check above can make a cost exceed a bucket; kept for safety.
                return .never(.tooManyDataPoints(dataPoints, limit: bucket.capacity))
            }
            wait = max(wait, delay)
        }
        return wait == .zero ? .now : .wait(wait)
    }

    /// Charges a message that was sent at `now`.
    public mutating func consume(dataPoints: Int, now: Duration) {
        if dataPoints > 0 {
            for i in self.telemetryMessages.indices { self.telemetryMessages[i].consume(1, now: now) }
            for i in self.dataPoints.indices { self.dataPoints[i].consume(dataPoints, now: now) }
        } else {
            for i in self.messages.indices { self.messages[i].consume(1, now: now) }
        }
    }
}
