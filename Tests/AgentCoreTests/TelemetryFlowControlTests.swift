import AgentCore
import TBJSON
import Testing

/// The composed flow: what the run loop will call.
@Suite struct TelemetryFlowControlTests {
    static let answer = Array(
        #"{"maxPayloadSize":65536,"maxInflightMessages":4,"rateLimits":{"messages":"10:1","telemetryMessages":"10:1,300:60","telemetryDataPoints":"10:1,300:60"}}"#.utf8)

    func record(_ sequence: UInt64, keys: Int = 1) -> SpoolRecord {
        let readings = (0..<keys).map { Reading(key: "k\($0)", value: .integer(Int64($0)), timestamp: Int64(sequence)) }
        return SpoolRecord(sequence: sequence, payload: TelemetryEncoder.payloads(readings).payloads[0])
    }

    /// A flow that has connected and got `answer`.
    func connected(now: Duration = .zero) -> TelemetryFlowControl {
        var flow = TelemetryFlowControl(rateLimits: .auto, now: now)
        let actions = flow.connected(now: now)
        #expect(actions == [.send(topic: "v1/devices/me/rpc/request/1", payload: SessionLimitsProtocol.requestPayload)])
        _ = flow.received(topic: "v1/devices/me/rpc/response/1", payload: Self.answer, now: now)
        return flow
    }

    @Test func telemetryWaitsForTheAnswerThenFollowsIt() {
        var flow = TelemetryFlowControl(rateLimits: .auto, now: .zero)
        _ = flow.connected(now: .zero)
        #expect(flow.next(live: [], replay: [self.record(1)], inFlight: 0, now: .zero) == .blocked)
        #expect(flow.deadline == .seconds(10))
        let info = flow.received(topic: "v1/devices/me/rpc/response/1", payload: Self.answer, now: .zero)
        #expect(info?.count == 1)
        #expect(flow.inFlightWindow == 4)
        #expect(flow.budget.maxDataPoints == 8)
        // Buckets start empty: the first one-point message waits for the slowest window (240:60 → 4 a second).
        #expect(flow.next(live: [self.record(1)], replay: [], inFlight: 0, now: .zero) == .wait(until: .milliseconds(250)))
        guard case .publish(let p, .live) = flow.next(live: [self.record(1)], replay: [], inFlight: 0, now: .milliseconds(250)) else {
            Issue.record("expected a publish")
            return
        }
        #expect(p.covers == .records([1]))
        _ = flow.sent(p, .live, now: .milliseconds(250))
        // The server's in-flight window.
        #expect(flow.next(live: [self.record(2)], replay: [], inFlight: 4, now: .seconds(5)) == .blocked)
    }

    /// With no limits known and no backlog, live readings do not wait for the answer (a server that never answers
    /// would delay each by the time box); a backlog does, and live readings behind it. Configured limits hold
    /// everything until the answer.
    @Test func liveReadingsGoWhileTheAnswerIsAwaitedWhenNoLimitsAreKnown() throws {
        var flow = TelemetryFlowControl(rateLimits: .auto, now: .zero)
        _ = flow.connected(now: .zero)
        // One record at a time: a burst does not go out before the limits are known.
        guard case .publish(let p, .live) = flow.next(live: [self.record(5), self.record(6)], replay: [], inFlight: 0, now: .zero) else {
            Issue.record("expected a live publish")
            return
        }
        #expect(p.covers == .records([5]))
        _ = flow.sent(p, .live, now: .zero)
        #expect(flow.next(live: [self.record(6)], replay: [], inFlight: 1, now: .zero) == .blocked)
        #expect(flow.next(live: [self.record(6)], replay: [self.record(1)], inFlight: 0, now: .zero) == .blocked)
        #expect(flow.next(live: [], replay: [self.record(1)], inFlight: 0, now: .zero) == .blocked)
        var limited = TelemetryFlowControl(
            rateLimits: .explicit(SessionLimits(telemetryDataPoints: try RateLimit.parse("10:1"))), now: .zero)
        _ = limited.connected(now: .zero)
        #expect(limited.next(live: [self.record(5)], replay: [], inFlight: 0, now: .seconds(1)) == .blocked)
    }

    /// Without a rate limit there is no budget to share: the backlog goes first, in order.
    @Test func withoutRateLimitsTheBacklogGoesFirst() {
        var flow = TelemetryFlowControl(rateLimits: .auto, now: .zero)
        _ = flow.connected(now: .zero)
        _ = flow.tick(now: .seconds(10))
        guard case .publish(let p, .replay) = flow.next(live: [self.record(5)], replay: [self.record(1)], inFlight: 0, now: .seconds(10)) else {
            Issue.record("expected the backlog first")
            return
        }
        #expect(p.covers == .records([1]))
    }

    @Test func noAnswerFallsBackAndSendsUnlimited() {
        var flow = TelemetryFlowControl(rateLimits: .auto, now: .zero)
        _ = flow.connected(now: .zero)
        let actions = flow.tick(now: .seconds(10))
        #expect(actions.count == 1)
        guard case .publish(let p, .replay) = flow.next(live: [], replay: (1...100).map { self.record($0) }, inFlight: 0, now: .seconds(10)) else {
            Issue.record("expected a publish")
            return
        }
        #expect(p.covers == .records(Array(1...64)))
        #expect(flow.inFlightWindow == 16)
    }

    @Test func replayLeavesLiveItsShareAndSplitRecordsFinishFirst() {
        var flow = self.connected()
        var now = Duration.seconds(100)  // buckets full by now
        var live = [self.record(1000), self.record(1001)]
        var replay = [self.record(1, keys: 20), self.record(2)]
        var order: [String] = []
        for _ in 0..<40 {
            switch flow.next(live: live, replay: replay, inFlight: 0, now: now) {
            case .publish(let p, let source):
                _ = flow.sent(p, source, now: now)
                order.append("\(source == .live ? "L" : "R")\(p.covers)")
                if let through = p.sentThrough {
                    if source == .live { live.removeAll { $0.sequence <= through } } else { replay.removeAll { $0.sequence <= through } }
                }
            case .wait(let until): now = until
            case .idle: break
            default: Issue.record("unexpected")
            }
            if live.isEmpty && replay.isEmpty { break }
        }
        // Live first (it banks nothing but goes first when it comes back), then the 20-point record in parts of at
        // most 8, uninterrupted, then the rest.
        #expect(order.first?.hasPrefix("Lrecords([1000, 1001])") == true, "\(order)")
        let parts = order.filter { $0.contains("part(sequence: 1") }
        #expect(parts.count == 3, "\(order)")
        #expect(live.isEmpty && replay.isEmpty)
    }

    @Test func aCutAfterAPublishIsLearnedAndTheAgentsOwnDisconnectIsNot() {
        var flow = self.connected()
        let now = Duration.seconds(100)
        guard case .publish(let p, let source) = flow.next(live: [], replay: [self.record(1, keys: 6)], inFlight: 0, now: now) else {
            Issue.record("expected a publish")
            return
        }
        _ = flow.sent(p, source, now: now)
        flow.retired()
        #expect(flow.budget.maxDataPoints == 8)
        _ = flow.connected(now: now)
        _ = flow.received(topic: "v1/devices/me/rpc/response/2", payload: Self.answer, now: now)
        let q = flow.next(live: [], replay: [self.record(1, keys: 6)], inFlight: 0, now: now + .seconds(10))
        guard case .publish(let p2, let s2) = q else {
            Issue.record("expected a publish: \(q)")
            return
        }
        _ = flow.sent(p2, s2, now: now + .seconds(10))
        let actions = flow.closed(now: now + .seconds(10))
        #expect(actions.contains(.countRateLimited))
        #expect(actions.contains(.holdReconnect(until: now + .seconds(15))))
        #expect(actions.contains { if case .warning = $0 { return true } else { return false } })
        #expect(flow.budget.maxDataPoints == 3)
        #expect(flow.next(live: [self.record(5)], replay: [], inFlight: 0, now: now + .seconds(11)) == .wait(until: now + .seconds(15)))
    }

    @Test func otherMessagesAreChargedToTheirBucket() {
        var flow = self.connected()
        // After the CONNECT and the request (2 regular tokens) at 0 with an empty 8:1 bucket, a reply waits.
        #expect(flow.decision(forOther: 0, bytes: 100, now: .seconds(1)) == .now)
        for _ in 0..<8 { flow.sentOther(dataPoints: 0, now: .seconds(1)) }
        #expect(flow.decision(forOther: 0, bytes: 100, now: .seconds(1)) == .wait(.milliseconds(125)))
        #expect(flow.decision(forOther: 0, bytes: 70000, now: .seconds(1)) == .never(.tooLarge(bytes: 70000, limit: 65536)))
    }
}
