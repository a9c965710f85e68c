import AgentCore
import Synchronization
import TextSearch

/// An MQTT server in memory, for the run loop's tests: it implements the loop's port (`DeviceLinks`), so the
/// loop runs in-process with no socket. A test decides how connects end, holds or grants PUBACKs, sends the
/// server's messages, drops the connection, and reads what the device published.
///
/// Like libmosquitto, a link keeps at most its `inFlight` PUBLISHes awaiting their PUBACK (every one counts, with
/// a completion or not): later ones wait in the link, in order, and are published as PUBACKs make room.
public final class InMemoryBroker: DeviceLinks {
    public struct Published: Sendable, Equatable {
        public let session: Int
        public let topic: String
        public let payload: [UInt8]
        public var text: String { String(decoding: self.payload, as: UTF8.self) }
    }

    /// How the next connect ends.
    public enum ConnectScript: Sendable, Equatable {
        case accept
        case reject(String)
        case fail(String)
        /// The connect waits until `releaseConnect()` (or the task is cancelled).
        case hold
    }

    /// A connect as the broker saw it.
    public struct ConnectAttempt: Sendable, Equatable {
        public let credentials: DeviceCredentials
        public let outcome: LinkConnectOutcome?
    }

    struct Session {
        let id: Int
        var events: (@Sendable (LinkEvent) -> Void)?
        var open: Bool
        let inFlight: Int
        /// Published and awaiting their PUBACK (while PUBACKs are held), oldest first: their completions.
        var pendingAcks: [(@Sendable (Bool) -> Void)?] = []
        /// Handed over beyond the window: not published yet.
        var waiting: [(topic: String, payload: [UInt8], done: (@Sendable (Bool) -> Void)?)] = []

        /// Publishes what waits while the window has room: PUBACKs held, they join `pendingAcks`; otherwise their
        /// completions are returned, to be called at once.
        mutating func release(holdAcks: Bool, into published: inout [Published]) -> [@Sendable (Bool) -> Void] {
            var acked: [@Sendable (Bool) -> Void] = []
            while !self.waiting.isEmpty, !holdAcks || self.pendingAcks.count < self.inFlight {
                let next = self.waiting.removeFirst()
                published.append(Published(session: self.id, topic: next.topic, payload: next.payload))
                if holdAcks {
                    self.pendingAcks.append(next.done)
                } else if let done = next.done {
                    acked.append(done)
                }
            }
            return acked
        }

        /// Ends the session's messages: every completion, those awaiting a PUBACK and those never published.
        mutating func takeAll() -> [@Sendable (Bool) -> Void] {
            defer {
                self.pendingAcks = []
                self.waiting = []
            }
            return self.pendingAcks.compactMap { $0 } + self.waiting.compactMap(\.done)
        }
    }

    struct State {
        var script: [ConnectScript] = []
        var defaultScript: ConnectScript = .accept
        /// Credentials the server accepts (nil: any).
        var accepted: [DeviceCredentials]? = nil
        var attempts: [ConnectAttempt] = []
        var published: [Published] = []
        var subscriptions: [String] = []
        var sessions: [Int: Session] = [:]
        var current: Int? = nil
        var nextSession = 0
        var holdAcks = false
        var heldConnect: CheckedContinuation<LinkConnectOutcome, Never>? = nil
        var maxIncomingPayload: Int
        /// The answer to `getSessionLimits` (nil: none, as a server before ThingsBoard 3.8).
        var sessionLimitsAnswer: [UInt8]? = InMemoryBroker.noLimitsAnswer
    }

    /// ThingsBoard CE's answer with its default tenant profile: no rate limits.
    public static let noLimitsAnswer = Array(
        #"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}"#.utf8)

    let state: Mutex<State>

    /// `maxIncomingPayload`: larger server messages reach the device as `.oversized`, as libmosquitto's
    /// callback reports them.
    public init(maxIncomingPayload: Int = 64 * 1024) {
        self.state = Mutex(State(maxIncomingPayload: maxIncomingPayload))
    }

    // MARK: scripting

    /// The next connects end as listed, then as `otherwise`.
    public func script(_ outcomes: [ConnectScript], otherwise: ConnectScript = .accept) {
        self.state.withLock {
            $0.script = outcomes
            $0.defaultScript = otherwise
        }
    }

    /// Only these credentials connect; others get CONNACK 5.
    public func accept(only credentials: [DeviceCredentials]?) { self.state.withLock { $0.accepted = credentials } }

    /// How the server answers `getSessionLimits` once the request is published (nil: it never answers).
    public func answerSessionLimits(_ answer: [UInt8]?) { self.state.withLock { $0.sessionLimitsAnswer = answer } }

    /// Answers the `getSessionLimits` requests among `published` (just published), as ThingsBoard 3.8 does.
    func answerRequests(_ published: ArraySlice<Published>) {
        let prefix = "v1/devices/me/rpc/request/"
        for message in published where message.topic.hasPrefix(prefix) && message.text.includes("\"getSessionLimits\"") {
            guard let answer = self.state.withLock({ $0.sessionLimitsAnswer }) else { continue }
            self.send(topic: "v1/devices/me/rpc/response/" + message.topic.dropFirst(prefix.count), payload: answer)
        }
    }

    /// While true, PUBACKs are held until `grantAcks()`.
    public func holdAcks(_ hold: Bool) { self.state.withLock { $0.holdAcks = hold } }

    /// Sends the held PUBACKs; what waited behind them is published (and, PUBACKs still held, waits for its own).
    public func grantAcks() {
        let (acks, released) = self.state.withLock { state -> ([@Sendable (Bool) -> Void], ArraySlice<Published>) in
            guard let id = state.current, var session = state.sessions[id] else { return ([], []) }
            var acks = session.pendingAcks.compactMap { $0 }
            session.pendingAcks = []
            let before = state.published.count
            acks += session.release(holdAcks: state.holdAcks, into: &state.published)
            state.sessions[id] = session
            return (acks, state.published[before...])
        }
        self.answerRequests(released)
        for ack in acks { ack(true) }
    }

    /// PUBLISHes of the connected session awaiting their PUBACK.
    public var unacknowledged: Int {
        self.state.withLock { state in state.current.flatMap { state.sessions[$0]?.pendingAcks.count } ?? 0 }
    }

    /// Ends a held connect as `outcome`.
    public func releaseConnect(_ outcome: LinkConnectOutcome = .connected) {
        let waiter = self.state.withLock { state in
            defer { state.heldConnect = nil }
            return state.heldConnect
        }
        waiter?.resume(returning: outcome)
    }

    /// The server sends a message to the connected device; false when none is connected.
    @discardableResult
    public func send(topic: String, payload: [UInt8]) -> Bool {
        let (events, limit) = self.state.withLock { state in
            (state.current.flatMap { state.sessions[$0]?.events }, state.maxIncomingPayload)
        }
        guard let events else { return false }
        if payload.count > limit {
            events(.oversized(topic: topic, bytes: payload.count))
        } else {
            events(.message(topic: topic, payload: payload))
        }
        return true
    }

    /// The connection drops (the network, or the server closing it): unacknowledged messages fail.
    public func drop(reason: String = "connection lost") {
        let (events, acks) = self.state.withLock { state -> ((@Sendable (LinkEvent) -> Void)?, [@Sendable (Bool) -> Void]) in
            guard let id = state.current, var session = state.sessions[id], session.open else { return (nil, []) }
            session.open = false
            let acks = session.takeAll()
            state.sessions[id] = session
            state.current = nil
            return (session.events, acks)
        }
        for ack in acks { ack(false) }
        events?(.closed(reason))
    }

    // MARK: observing

    public var attempts: [ConnectAttempt] { self.state.withLock { $0.attempts } }
    public var published: [Published] { self.state.withLock { $0.published } }
    public var subscriptions: [String] { self.state.withLock { $0.subscriptions } }
    public var isConnected: Bool { self.state.withLock { $0.current != nil } }
    /// Sessions the broker has seen open at once (more than one means two sessions overlapped).
    public var openSessions: Int { self.state.withLock { $0.sessions.values.filter(\.open).count } }
    public func published(topic: String) -> [Published] { self.published.filter { $0.topic == topic } }

    // MARK: DeviceLinks

    public func link(for credentials: DeviceCredentials, deviceName: String, inFlight: Int) throws(AgentError)
        -> any DeviceLink
    {
        let id = self.state.withLock { state -> Int in
            state.nextSession += 1
            state.sessions[state.nextSession] = Session(id: state.nextSession, events: nil, open: false, inFlight: max(1, inFlight))
            return state.nextSession
        }
        return Link(broker: self, session: id, credentials: credentials)
    }

    final class Link: DeviceLink {
        let broker: InMemoryBroker
        let session: Int
        let credentials: DeviceCredentials

        init(broker: InMemoryBroker, session: Int, credentials: DeviceCredentials) {
            self.broker = broker
            self.session = session
            self.credentials = credentials
        }

        func connect(events: @escaping @Sendable (LinkEvent) -> Void) async -> LinkConnectOutcome {
            let script = self.broker.state.withLock { state -> ConnectScript in
                state.sessions[self.session]?.events = events
                if let accepted = state.accepted, !accepted.contains(self.credentials) {
                    return .reject("CONNACK 5: not authorized")
                }
                return state.script.isEmpty ? state.defaultScript : state.script.removeFirst()
            }
            var outcome: LinkConnectOutcome
            switch script {
            case .accept: outcome = .connected
            case .reject(let text): outcome = .rejected(text)
            case .fail(let text): outcome = .failed(text)
            case .hold:
                outcome = await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        self.broker.state.withLock { $0.heldConnect = continuation }
                    }
                } onCancel: {
                    self.broker.releaseConnect(.failed("cancelled"))
                }
            }
            self.broker.state.withLock { state in
                state.attempts.append(ConnectAttempt(credentials: self.credentials, outcome: outcome))
                if outcome == .connected {
                    // ThingsBoard keeps one session per device: the newest wins, the old one is closed.
                    state.sessions[self.session]?.open = true
                    state.current = self.session
                }
            }
            return outcome
        }

        func subscribe(_ filters: [String]) async throws(AgentError) -> [Bool] {
            let open = self.broker.state.withLock { state -> Bool in
                guard state.sessions[self.session]?.open == true else { return false }
                state.subscriptions += filters
                return true
            }
            guard open else { throw AgentError(.brokerUnavailable, "not connected") }
            return filters.map { _ in true }
        }

        func publish(_ topic: String, payload: [UInt8], done: (@Sendable (Bool) -> Void)?) throws(AgentError) {
            let outcome = self.broker.state.withLock { state -> ([@Sendable (Bool) -> Void], ArraySlice<Published>)? in
                guard var session = state.sessions[self.session], session.open else { return nil }
                session.waiting.append((topic, payload, done))
                let before = state.published.count
                let acks = session.release(holdAcks: state.holdAcks, into: &state.published)
                state.sessions[self.session] = session
                return (acks, state.published[before...])
            }
            guard let (acks, released) = outcome else { throw AgentError(.brokerUnavailable, "not connected") }
            self.broker.answerRequests(released)
            for ack in acks { ack(true) }
        }

        func disconnect() async {
            let (events, acks) = self.broker.state.withLock { state -> ((@Sendable (LinkEvent) -> Void)?, [@Sendable (Bool) -> Void]) in
                guard var session = state.sessions[self.session], session.open else { return (nil, []) }
                session.open = false
                let acks = session.takeAll()
                state.sessions[self.session] = session
                if state.current == self.session { state.current = nil }
                return (session.events, acks)
            }
            for ack in acks { ack(false) }
            events?(.closed("disconnected as asked"))
        }
    }
}
