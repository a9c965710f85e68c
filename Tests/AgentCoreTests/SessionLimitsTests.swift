import AgentCore
import Testing

@Suite struct SessionLimitsAnswerTests {
    func parse(_ text: String) throws(SessionLimitsError) -> SessionLimits {
        try SessionLimitsProtocol.parseAnswer(Array(text.utf8))
    }

    @Test func readsTheAnswerAsThingsBoardSendsIt() throws {
        let limits = try self.parse(
            #"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"10:1,300:60","telemetryMessages":"20:1","telemetryDataPoints":"10:1,300:60"},"gatewayRateLimits":{"messages":"1:1"}}"#)
        #expect(limits.maxPayloadSize == 65536)
        #expect(limits.maxInflightMessages == 100)
        #expect(limits.messages?.description == "10:1,300:60")
        #expect(limits.telemetryMessages?.description == "20:1")
        #expect(limits.telemetryDataPoints?.windows.count == 2)
        #expect(limits.inFlightWindow(agent: 16) == 16)
        #expect(limits.inFlightWindow(agent: 500) == 100)
    }

    @Test func nullAndAbsentFieldsAreNoLimit() throws {
        let ce = try self.parse(
            #"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}"#)
        #expect(ce == SessionLimits(maxPayloadSize: 65536, maxInflightMessages: 100))
        #expect(try self.parse("{}") == .none)
        #expect(try self.parse(#"{"rateLimits":null,"maxPayloadSize":null}"#) == .none)
        #expect(try self.parse(#"{"rateLimits":{"messages":""}}"#) == .none)
    }

    @Test(arguments: [
        (#"{"maxPayloadSize":"big"}"#, "maxPayloadSize is a string"),
        (#"{"maxPayloadSize":10}"#, "maxPayloadSize = 10 is out of range"),
        (#"{"maxPayloadSize":99999999999}"#, "maxPayloadSize = 99999999999 is out of range"),
        (#"{"maxInflightMessages":0}"#, "maxInflightMessages = 0 is out of range"),
        (#"{"maxInflightMessages":70000}"#, "maxInflightMessages = 70000 is out of range"),
        (#"{"rateLimits":[]}"#, "rateLimits is an array"),
        (#"{"rateLimits":{"telemetryDataPoints":300}}"#, "rateLimits.telemetryDataPoints is a number"),
        (#"{"rateLimits":{"messages":"10/1"}}"#, "rateLimits.messages: \"10/1\""),
        (#"{"error":"timeout"}"#, "older than ThingsBoard 3.8"),
        ("[1]", "not a JSON object"),
        ("nope", "unusable"),
    ])
    func badAnswersNameTheField(_ text: String, _ expected: String) {
        do {
            _ = try self.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error)")
            #expect(error.description.contains("rate_limits stay in force"), "\(error)")
        }
    }

    @Test func aHugeAnswerIsNotRead() {
        let huge = Array(("{\"x\":\"" + String(repeating: "a", count: SessionLimitsProtocol.maxAnswerBytes) + "\"}").utf8)
        #expect(throws: SessionLimitsError.self) { try SessionLimitsProtocol.parseAnswer(huge) }
    }

    @Test func theRequestIsTheBuiltInMethod() {
        #expect(String(decoding: SessionLimitsProtocol.requestPayload, as: UTF8.self) == #"{"method":"getSessionLimits","params":{}}"#)
        #expect(SessionLimitsProtocol.requestTopic(id: 7) == "v1/devices/me/rpc/request/7")
    }
}

@Suite struct SessionLimitsExchangeTests {
    static let answer = Array(#"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":"10:1","telemetryMessages":"10:1","telemetryDataPoints":"10:1"}}"#.utf8)

    @Test func asksOnEveryConnectAndAppliesTheAnswer() {
        var exchange = SessionLimitsExchange(settings: .auto)
        let first = exchange.connected(now: .zero)
        #expect(first == [.send(topic: "v1/devices/me/rpc/request/1", payload: SessionLimitsProtocol.requestPayload)])
        #expect(exchange.awaitingAnswer)
        #expect(exchange.deadline == .seconds(10))
        // Another RPC's response is not ours.
        #expect(exchange.received(topic: "v1/devices/me/rpc/response/2", payload: Self.answer) == nil)
        let actions = exchange.received(topic: "v1/devices/me/rpc/response/1", payload: Self.answer)
        guard case .apply(let limits, .server)? = actions?.first else {
            Issue.record("\(String(describing: actions))")
            return
        }
        #expect(limits.maxInflightMessages == 100)
        #expect(exchange.source == .server)
        #expect(!exchange.awaitingAnswer)
        // Reconnect: asked again with a new id; the same answer changes nothing.
        #expect(exchange.connected(now: .seconds(60)) == [
            .send(topic: "v1/devices/me/rpc/request/2", payload: SessionLimitsProtocol.requestPayload)
        ])
        #expect(exchange.received(topic: "v1/devices/me/rpc/response/2", payload: Self.answer) == [])
    }

    @Test func noAnswerInTimeLeavesTheConfiguredLimitsAndSaysSoOnce() {
        let configured = SessionLimits(maxPayloadSize: 32768, telemetryDataPoints: RateLimiterTests.limit("100:60"))
        var exchange = SessionLimitsExchange(settings: .explicit(configured), timeout: .seconds(5))
        #expect(exchange.limits == configured)
        _ = exchange.connected(now: .seconds(1))
        #expect(exchange.tick(now: .seconds(5)) == [])
        let timedOut = exchange.tick(now: .seconds(6))
        #expect(timedOut.count == 1)
        if case .log(.info, let text)? = timedOut.first {
            #expect(text.contains("did not answer getSessionLimits within 5s"))
            #expect(text.contains("data points 100:60"))
        } else {
            Issue.record("\(timedOut)")
        }
        // A late answer to the timed-out request is not taken.
        #expect(exchange.received(topic: "v1/devices/me/rpc/response/1", payload: Self.answer) == nil)
        _ = exchange.connected(now: .seconds(100))
        #expect(exchange.tick(now: .seconds(200)) == [])
        #expect(exchange.limits == configured)
    }

    @Test func anUnusableAnswerFallsBackWithAWarning() {
        var exchange = SessionLimitsExchange(settings: .auto)
        _ = exchange.connected(now: .zero)
        _ = exchange.received(topic: "v1/devices/me/rpc/response/1", payload: Self.answer)
        _ = exchange.connected(now: .seconds(1))
        let actions = exchange.received(topic: "v1/devices/me/rpc/response/2", payload: Array(#"{"error":"timeout"}"#.utf8)) ?? []
        #expect(actions.first == .apply(.none, .configured))
        guard case .log(.warning, let text)? = actions.last else {
            Issue.record("\(actions)")
            return
        }
        #expect(text.contains("older than ThingsBoard 3.8"))
        #expect(exchange.source == .configured)
    }

    @Test func aClosedSessionWaitsNoLonger() {
        var exchange = SessionLimitsExchange(settings: .auto)
        _ = exchange.connected(now: .zero)
        exchange.disconnected()
        #expect(!exchange.awaitingAnswer)
        #expect(exchange.deadline == nil)
    }
}
