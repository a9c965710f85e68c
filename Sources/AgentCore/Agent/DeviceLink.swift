/// The port between the run loop and an MQTT session with the server: what the loop needs, and nothing of how.
/// libmosquitto implements it (`MosquittoLinks`, AgentMQTT); the in-memory broker implements it for tests
/// (`InMemoryBroker`, AgentSimulated).
///
/// A link is one session: connect once, then subscribe and publish, then it closes (asked or not) and is done.
/// Every callback may come from any thread; the loop turns them into its own events.
public protocol DeviceLinks: Sendable {
    /// A new session as the device with `credentials`; nothing goes on the network yet. At most `inFlight` QoS 1
    /// PUBLISHes of the session await their PUBACK at once: later ones wait in the link, in order, and go out as
    /// PUBACKs make room, without the caller (so a caller that hands over more is woken less often).
    ///
    /// - Throws: `AgentError` when these credentials cannot be used at all (an X.509 pair without TLS, a value
    ///   the MQTT library refuses): the code says whether the credentials are to blame (`.credentialsRejected`).
    func link(for credentials: DeviceCredentials, deviceName: String, inFlight: Int) throws(AgentError) -> any DeviceLink
}

public protocol DeviceLink: AnyObject, Sendable {
    /// Sends CONNECT and waits for the CONNACK. After `.connected`, `events` gets the server's messages and, once,
    /// `.closed`; it is called from the link's own thread.
    func connect(events: @escaping @Sendable (LinkEvent) -> Void) async -> LinkConnectOutcome
    /// Subscribes to each filter and waits for the SUBACKs: false for a filter the server refused.
    func subscribe(_ filters: [String]) async throws(AgentError) -> [Bool]
    /// Hands a QoS 1 message over now, so that messages leave in the order of the calls (beyond the `inFlight`
    /// window they wait in the link). `done` is called once, from any thread: true on the PUBACK, false when the
    /// session ended first.
    ///
    /// - Throws: `AgentError` when the message cannot be handed over (not connected, too large); `done` is then
    ///   never called.
    func publish(_ topic: String, payload: [UInt8], done: (@Sendable (Bool) -> Void)?) throws(AgentError)
    /// Sends DISCONNECT and waits (bounded) for the session to end.
    func disconnect() async
}

public enum LinkConnectOutcome: Sendable, Equatable {
    case connected
    /// The server refused these credentials (CONNACK 4 or 5): they will never work.
    case rejected(String)
    /// Anything else (unreachable, timeout, closed before the CONNACK, CONNACK 2/3): try again later.
    case failed(String)
}

public enum LinkEvent: Sendable, Equatable {
    case message(topic: String, payload: [UInt8])
    /// A message larger than the link's limit arrived and was dropped unread.
    case oversized(topic: String, bytes: Int)
    /// The session ended; the text says why.
    case closed(String)
}
