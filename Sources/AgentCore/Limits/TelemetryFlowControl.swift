/// The run loop's one entry point for issue 12: the server's limits (`SessionLimitsExchange`), the token buckets
/// (`RateLimiter`), the batch planner (`PublishPlanner`), the unknown-limit learner (`UnknownLimitLearner`) and the
/// live/replay share (`LiveReplayShare`), composed. Pure: the loop feeds it events and the time, and carries out
/// what it returns; it never sleeps, reads a clock or touches the network.
///
/// How the run loop uses it (one instance for the life of the process, so that the buckets outlive sessions as the
/// server's do):
/// - CONNACK 0: subscribe to `SessionLimitsProtocol.responseFilter` with the other filters, then carry out
///   `connected(now:)` (it returns the `getSessionLimits` PUBLISH); set a deadline at `deadline` and call
///   `tick(now:)` when it passes.
/// - A message on `v1/devices/me/rpc/response/…`: `received(topic:payload:now:)` first; nil means it is not the
///   limits' answer.
/// - Pump: while `next(live:replay:inFlight:now:)` returns `.publish`, hand it to the link, call `sent` and keep the
///   token with the PUBLISH (its PUBACK calls `acknowledged`); advance that source's cursor to `sentThrough` when it
///   is set; on `.wait(until:)` set a deadline; on `.unsendable` acknowledge the record in the spool, log and count.
/// - Every other PUBLISH (client attributes, attribute request, RPC replies): `decision(forOther:bytes:now:)`, then
///   `sentOther`.
/// - The link closes by itself: `closed(now:)` (hold the reconnect, count, warn); the agent closes it: `retired()`.
public struct TelemetryFlowControl: Sendable {
    public struct Settings: Sendable {
        /// The agent's own in-flight window (`AgentRuntime.Options.inFlightWindow`); the server's may lower it.
        public var inFlightWindow: Int = 16
        /// Spooled records per PUBLISH at most (`AgentRuntime.Options.recordsPerPublish`).
        public var recordsPerPublish: Int = 64
        /// The share of every server window used.
        public var fraction: Double = 0.8
        public var answerTimeout: Duration = .seconds(10)
        public var liveShare: Double = 0.5
        public var replayReserve: Double = 0.25
        public var learner = UnknownLimitLearner.Settings()

        public init() {}
    }

    public enum Action: Sendable, Equatable {
        /// Publish this (QoS 1) now: the `getSessionLimits` request.
        case send(topic: String, payload: [UInt8])
        case info(String)
        case warning(String)
        /// Add one to `agent_rate_limited`.
        case countRateLimited
        /// Wait before reconnecting until at least this (monotonic) time.
        case holdReconnect(until: Duration)
    }

    public enum Next: Sendable, Equatable {
        /// Send this PUBLISH now (then call `sent`).
        case publish(PlannedPublish, LiveReplayShare.Source)
        /// Nothing may go before this time (tokens, a back-off): set a deadline and ask again then.
        case wait(until: Duration)
        /// Not now, and no time helps: the in-flight window is full (ask again on a PUBACK), or the limits are being
        /// asked for (ask again on the answer or at `deadline`).
        case blocked
        /// A record that can never be sent: acknowledge it in the spool (so that it is not retried), log `reason` and
        /// count `dropped` readings.
        case unsendable(sequence: UInt64, LiveReplayShare.Source, reason: String, dropped: [Reading])
        /// Nothing waiting.
        case idle
    }

    public let settings: Settings
    public private(set) var exchange: SessionLimitsExchange
    public private(set) var limiter: RateLimiter
    public private(set) var learner: UnknownLimitLearner
    public private(set) var share: LiveReplayShare
    /// A record being sent in parts: its source, sequence and the next part.
    public private(set) var resume: (source: LiveReplayShare.Source, sequence: UInt64, part: Int)? = nil

    public init(rateLimits: RateLimitSettings, settings: Settings = .init(), now: Duration) {
        self.settings = settings
        self.exchange = SessionLimitsExchange(settings: rateLimits, timeout: settings.answerTimeout)
        self.limiter = RateLimiter(limits: rateLimits.fallback, fraction: settings.fraction, now: now)
        self.learner = UnknownLimitLearner(settings: settings.learner)
        self.share = LiveReplayShare(liveShare: settings.liveShare, reserve: settings.replayReserve)
    }

    /// The limits in force.
    public var limits: SessionLimits { self.limiter.limits }
    /// Whether a rate limit applies to telemetry, so that live readings and the backlog share its budget; without
    /// one `next` sends the backlog first.
    public var sharesBudget: Bool { self.limits.telemetryMessages != nil || self.limits.telemetryDataPoints != nil }
    /// PUBLISHes awaiting their PUBACK at most.
    public var inFlightWindow: Int { self.limits.inFlightWindow(agent: self.settings.inFlightWindow) }
    /// What one PUBLISH may hold now.
    public var budget: PublishBudget {
        PublishBudget.from(self.limits, fraction: self.settings.fraction, learner: self.learner, maxRecords: self.settings.recordsPerPublish)
    }
    /// When `tick(now:)` is due (the answer's time box).
    public var deadline: Duration? { self.exchange.deadline }

    // MARK: session events

    /// CONNACK 0: ask for the limits (the CONNECT itself cost a regular-message token on the server).
    public mutating func connected(now: Duration) -> [Action] {
        self.limiter.consume(dataPoints: 0, now: now)
        self.resume = nil
        return self.carry(self.exchange.connected(now: now), now: now)
    }

    /// A message on an RPC response topic; nil when it is not the limits' answer (handle it as before).
    public mutating func received(topic: String, payload: [UInt8], now: Duration) -> [Action]? {
        guard let actions = self.exchange.received(topic: topic, payload: payload) else { return nil }
        return self.carry(actions, now: now)
    }

    public mutating func tick(now: Duration) -> [Action] { self.carry(self.exchange.tick(now: now), now: now) }

    /// The session closed without the agent asking (not on a DISCONNECT of its own).
    public mutating func closed(now: Duration) -> [Action] {
        self.exchange.disconnected()
        self.resume = nil
        var out: [Action] = []
        for action in self.learner.connectionClosed(now: now) {
            switch action {
            case .setCaps: break  // read through `budget`
            case .backOff(let until): out.append(.holdReconnect(until: until))
            case .countRateLimited: out.append(.countRateLimited)
            case .warn(let text): out.append(.warning(text))
            }
        }
        return out
    }

    /// The agent ended the session itself: nothing to learn from it.
    public mutating func retired() {
        self.exchange.disconnected()
        self.resume = nil
        self.learner.sessionEnded()
    }

    // MARK: telemetry

    /// What to send next. `live` and `replay` are each source's pending records, oldest first (`Spool.pending`
    /// split at the spool's last sequence when the session came up); `inFlight` the PUBLISHes awaiting a PUBACK
    /// (while the answer is awaited, one at most goes).
    public mutating func next(live: [SpoolRecord], replay: [SpoolRecord], inFlight: Int, now: Duration) -> Next {
        guard !live.isEmpty || !replay.isEmpty else { return .idle }
        var live = live
        var budget = self.budget
        if self.exchange.awaitingAnswer {
            // No limits known (`"auto"`, and no answer with limits so far) and no backlog: live readings go at once,
            // as a server without limits (or one older than 3.8, which never answers) would otherwise delay every
            // reading by the time box after every connect; but one record at a time, so that a burst of them does
            // not go out under limits about to be learned. A backlog waits, and live readings behind it (they would
            // overtake it). With limits known, everything waits for the answer.
            guard self.limits == .none, replay.isEmpty, inFlight == 0 else { return .blocked }
            budget.maxRecords = 1
        } else if !self.sharesBudget, !replay.isEmpty {
            // No rate limit: nothing to share, and the backlog goes first, so that readings leave in order.
            live = []
        }
        guard inFlight < self.inFlightWindow else { return .blocked }
        if !self.learner.mayPublish(now: now), let until = self.learner.backOffUntil { return .wait(until: until) }
        // A record sent in parts finishes first.
        let source: LiveReplayShare.Source
        if let resume = self.resume, (resume.source == .live ? live : replay).first?.sequence == resume.sequence {
            source = resume.source
        } else {
            self.resume = nil
            guard let chosen = self.share.next(liveWaiting: !live.isEmpty, replayWaiting: !replay.isEmpty) else { return .idle }
            source = chosen
        }
        let records = source == .live ? live : replay
        let part = self.resume?.part ?? 0
        switch PublishPlanner.next(records, budget: budget, part: part) {
        case .nothing:
            return .idle
        case .unsendable(let sequence, let reason, let dropped):
            self.resume = nil
            return .unsendable(sequence: sequence, source, reason: reason, dropped: dropped)
        case .publish(let publish):
            let bytes = TelemetryCost.remainingLength(topic: TelemetryEncoder.topic, payloadBytes: publish.payload.count)
            switch self.limiter.decision(
                dataPoints: publish.dataPoints, bytes: bytes, reserve: self.share.reserve(for: source), now: now)
            {
            case .now:
                return .publish(publish, source)
            case .wait(let delay):
                return .wait(until: now + delay)
            case .never(let why):
                // The planner keeps within the budget, so only limits that changed under it get here: drop it.
                self.resume = nil
                let sequence: UInt64
                switch publish.covers {
                case .records(let sequences): sequence = sequences.first ?? 0
                case .part(let s, _, _): sequence = s
                }
                return .unsendable(sequence: sequence, source, reason: why.description, dropped: [])
            }
        }
    }

    /// `publish` (from `next`) was handed to the link at `now`. Returns the token to give back with its PUBACK.
    public mutating func sent(_ publish: PlannedPublish, _ source: LiveReplayShare.Source, now: Duration) -> UInt64 {
        self.limiter.consume(dataPoints: publish.dataPoints, now: now)
        self.share.charge(source, dataPoints: publish.dataPoints)
        if case .part(let sequence, _, _) = publish.covers, let next = publish.nextPart {
            self.resume = (source, sequence, next)
        } else {
            self.resume = nil
        }
        let bytes = TelemetryCost.remainingLength(topic: TelemetryEncoder.topic, payloadBytes: publish.payload.count)
        return self.learner.published(dataPoints: publish.dataPoints, bytes: bytes, now: now)
    }

    /// The PUBACK of the PUBLISH `token` arrived.
    public mutating func acknowledged(_ token: UInt64, now: Duration) {
        _ = self.learner.acknowledged(token, now: now)
    }

    /// The PUBLISH `token` (from `sent`) could not be handed over after all (the session was ending): it says
    /// nothing about limits. Its tokens stay spent (waiting a little longer is safe).
    public mutating func withdrawn(_ token: UInt64) {
        self.learner.withdrawn(token)
        self.resume = nil
    }

    /// Whether any other message the agent sends (client attributes, attribute requests, RPC replies) may go now,
    /// charged as the server charges it: `.now`, `.wait(d)`, or `.never` for one over the smallest data-point window
    /// or the packet limit. Call `sentOther` once it is sent.
    public func decision(forOther dataPoints: Int, bytes: Int, now: Duration) -> RateLimiter.Decision {
        self.limiter.decision(dataPoints: dataPoints, bytes: bytes, now: now)
    }

    public mutating func sentOther(dataPoints: Int, now: Duration) {
        self.limiter.consume(dataPoints: dataPoints, now: now)
    }

    private mutating func carry(_ actions: [SessionLimitsExchange.Action], now: Duration) -> [Action] {
        var out: [Action] = []
        for action in actions {
            switch action {
            case .send(let topic, let payload):
                // The request is a message without data points.
                self.limiter.consume(dataPoints: 0, now: now)
                out.append(.send(topic: topic, payload: payload))
            case .apply(let limits, _):
                self.limiter.update(limits, now: now)
            case .log(.info, let text): out.append(.info(text))
            case .log(.warning, let text): out.append(.warning(text))
            }
        }
        return out
    }
}
