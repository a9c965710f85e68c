import AgentCore
import AgentService
import AgentSimulated
import TBJSON
import Testing

/// Issue 12 in the run loop: `getSessionLimits` after every connect, telemetry paced and split by the limits in
/// force, the configured limits when the server does not answer, and a close right after a publish taken as a limit
/// the agent was not told.
@Suite(.serialized) struct RuntimeLimitsTests {
    static let telemetryTopic = "v1/devices/me/telemetry"

    static func answer(dataPoints: String, messages: String = "null") -> [UInt8] {
        Array(
            #"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":\#(messages),"telemetryMessages":"\#(dataPoints)","telemetryDataPoints":"\#(dataPoints)"}}"#
                .utf8)
    }

    /// Data points (entries of one key each) of every telemetry PUBLISH, with its broker session.
    func batches(_ h: RuntimeHarness) -> [(session: Int, points: Int, stamps: [Int64])] {
        h.broker.published(topic: Self.telemetryTopic).map { message in
            let entries = (try? JSONValue.parse(message.payload))?.arrayValue ?? []
            let points = entries.reduce(0) { $0 + ($1["values"]?.objectMembers?.count ?? 0) }
            return (message.session, points, entries.compactMap { $0["ts"]?.int64Value })
        }
    }

    /// Every reading taken arrived (each read gives one), and once unless `resent` (PUBLISHes a closed session did
    /// not acknowledge are sent again).
    func expectEveryReading(_ h: RuntimeHarness, resent: Bool = false) async throws {
        try await h.until("every reading published") { Set(self.batches(h).flatMap(\.stamps)).count == h.board.requests.count }
        let stamps = self.batches(h).flatMap(\.stamps)
        if !resent { #expect(stamps.count == Set(stamps).count, "a reading arrived twice") }
    }

    /// The broker session of the latest `getSessionLimits` request, once there are `count` of them.
    func requestSession(_ h: RuntimeHarness, count: Int) async throws -> Int {
        let requests = { h.broker.published.filter { $0.topic.hasPrefix(SessionLimitsProtocol.requestPrefix) } }
        try await h.until("request \(count)") { requests().count >= count }
        return requests().last?.session ?? 0
    }

    /// Takes the device offline (connects fail) for `outage`, sampling once a second, then lets it back: advances
    /// the clock until it is online again.
    func outage(_ h: RuntimeHarness, _ outage: Duration) async throws {
        h.broker.script([.fail("unreachable")], otherwise: .fail("unreachable"))
        h.broker.drop()
        try await h.until("offline") { h.state == "offline" }
        try await h.advance(by: outage, step: .seconds(1))
        h.broker.script([], otherwise: .accept)
        try await self.untilOnline(h)
    }

    /// Advances the clock a second at a time until the device is online (the reconnect's back-off has grown).
    func untilOnline(_ h: RuntimeHarness) async throws {
        for _ in 0..<600 where h.state != "online" { try await h.advance(by: .seconds(1), step: .seconds(1)) }
        try await h.until("online again") { h.state == "online" }
    }

    @Test func asksForTheLimitsAfterEveryConnect() async throws {
        let h = try RuntimeHarness(interval: .seconds(1))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("asked") { h.broker.published(topic: "v1/devices/me/rpc/request/1").count == 1 }
        #expect(h.broker.published(topic: "v1/devices/me/rpc/request/1").first?.payload == SessionLimitsProtocol.requestPayload)
        #expect(h.broker.subscriptions.contains(SessionLimitsProtocol.responseFilter))
        try await h.until("the answer applied") { h.status["sessionLimitsSource"]?.stringValue == "server" }
        // The default answer (no limits) paces nothing: the first reading goes at once.
        try await h.until("first reading") { h.telemetry().count == 1 }
        try await self.outage(h, .seconds(3))
        try await h.until("asked again") { h.broker.published(topic: "v1/devices/me/rpc/request/2").count == 1 }
        try await h.until("the backlog sent") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        try await self.expectEveryReading(h)
        await h.stop()
    }

    /// The server's answer: no PUBLISH carries more data points than 80 % of the smallest window, and the backlog
    /// goes out paced by the buckets (8 a second), every reading once.
    @Test func theServersLimitsPaceAndSplitTheBacklog() async throws {
        let h = try RuntimeHarness(interval: .seconds(1))
        h.broker.answerSessionLimits(Self.answer(dataPoints: "10:1,600:60"))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("the answer applied") { h.status["sessionLimits"]?.stringValue?.contains("data points 10:1,600:60") == true }
        try await h.advance(by: .seconds(2), step: .milliseconds(250))
        try await h.until("first reading") { h.telemetry().count >= 1 }
        try await self.outage(h, .seconds(60))
        let session = try await self.requestSession(h, count: 2)
        // The clock stands still: at most one bucketful (8 data points) goes.
        try await Task.sleep(for: .milliseconds(100))
        let atOnce = self.batches(h).filter { $0.session == session }.reduce(0) { $0 + $1.points }
        #expect(atOnce <= 8)
        let sent = { self.batches(h).filter { $0.session == session }.reduce(0) { $0 + $1.points } }
        for second in 1...5 {
            try await h.advance(by: .seconds(1), step: .milliseconds(125))
            // The clock stands still between advances: waiting longer only lets a busy loop catch up.
            try await h.until("the backlog moves after \(second) s") { sent() >= 4 * (second - 1) }
            try await Task.sleep(for: .milliseconds(20))
            #expect(sent() <= 8 * (second + 1), "more than the bucket allows after \(second) s: \(sent())")
        }
        try await h.advanceUntil("drained") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        #expect(self.batches(h).allSatisfy { $0.points <= 8 })
        #expect(self.batches(h).contains { $0.points == 8 })  // 64 records a PUBLISH otherwise
        #expect(h.status["rateLimited"]?.int64Value == 0)
        try await self.expectEveryReading(h)
        await h.stop()
    }

    /// A server that does not answer: with `"auto"` live readings are not delayed; with limits configured they
    /// wait for the time box, then follow the configured limits.
    @Test func withoutAnAnswerTheConfiguredLimitsApply() async throws {
        let auto = try RuntimeHarness(interval: .seconds(1))
        auto.broker.answerSessionLimits(nil)
        auto.start()
        try await auto.until("online") { auto.state == "online" }
        try await auto.until("first reading, not delayed") { auto.telemetry().count == 1 }
        #expect(auto.status["sessionLimitsSource"]?.stringValue == "configured")
        await auto.stop()

        let limits = SessionLimits(telemetryDataPoints: try RateLimit.parse("5:1"))
        let h = try RuntimeHarness(interval: .seconds(1), rateLimits: .explicit(limits))
        h.broker.answerSessionLimits(nil)
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.advance(by: .seconds(9), step: .milliseconds(500))
        #expect(h.telemetry().isEmpty, "telemetry went before the time box under configured limits")
        try await h.advance(by: .seconds(2), step: .milliseconds(250))
        try await h.until("sent") { h.telemetry().count >= 4 }
        try await h.advanceUntil("drained") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        #expect(self.batches(h).allSatisfy { $0.points <= 4 })  // 80 % of 5
        #expect(h.status["sessionLimits"]?.stringValue?.contains("data points 5:1") == true)
        try await self.expectEveryReading(h)
        await h.stop()
    }

    /// A close right after a publish, its PUBACK missing: counted (`agent_rate_limited`), the batch halved, the
    /// reconnect held back (5 s, beyond the first reconnect's at most 1 s).
    @Test func aCloseRightAfterAPublishHalvesTheBatchAndBacksOff() async throws {
        let h = try RuntimeHarness(interval: .seconds(1))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("first reading") { h.telemetry().count == 1 }
        h.broker.holdAcks(true)
        try await self.outage(h, .seconds(40))
        let session = try await self.requestSession(h, count: 2)
        try await h.until("the backlog published") { self.batches(h).contains { $0.session == session && $0.points > 20 } }
        let largest = self.batches(h).filter { $0.session == session }.map(\.points).max() ?? 0
        let attempts = h.broker.attempts.count
        h.broker.holdAcks(false)
        h.broker.drop(reason: "closed by the server")
        try await h.until("counted") { h.status["rateLimited"]?.int64Value == 1 }
        try await h.advance(by: .seconds(4), step: .milliseconds(250))
        #expect(h.broker.attempts.count == attempts, "reconnected during the back-off")
        try await self.untilOnline(h)
        #expect(h.broker.attempts.count > attempts)
        try await h.advanceUntil("drained") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        let after = self.batches(h).filter { $0.session > session }
        #expect(!after.isEmpty)
        #expect(after.allSatisfy { $0.points <= largest / 2 }, "the batch was not halved: \(after.map(\.points)) after \(largest)")
        try await self.expectEveryReading(h, resent: true)
        await h.stop()
    }
}

extension RuntimeLimitsTests {
    /// The server's `maxInflightMessages` lowers the window: the link was made before the answer (with the agent's
    /// 16), so the loop itself hands over no more telemetry than the server allows; the next link is made with it.
    @Test func theServersInFlightWindowCapsTelemetryAwaitingPubacks() async throws {
        let h = try RuntimeHarness(interval: .seconds(1), options: { $0.recordsPerPublish = 1 })
        h.broker.answerSessionLimits(Array(#"{"maxPayloadSize":65536,"maxInflightMessages":2,"rateLimits":null}"#.utf8))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("the answer applied") { h.status["sessionLimits"]?.stringValue?.contains("in flight 2") == true }
        h.broker.holdAcks(true)
        try await h.advance(by: .seconds(10), step: .milliseconds(500))
        try await Task.sleep(for: .milliseconds(50))
        // Held PUBACKs: two telemetry PUBLISHes out (the first reading's went before the hold), the rest wait.
        let held = h.broker.published(topic: Self.telemetryTopic).count
        #expect(held <= 3, "\(held) telemetry PUBLISHes out with the server's window of 2")
        h.broker.holdAcks(false)
        h.broker.grantAcks()
        try await h.advanceUntil("drained") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        try await self.expectEveryReading(h)
        await h.stop()
    }

    /// RPC replies are charged to the message limit: one that would go over it is dropped and counted (the
    /// agent's bucket starts empty: what the server's holds is unknown), and answered once tokens are back.
    @Test func rpcRepliesOverTheMessageLimitAreDroppedAndCounted() async throws {
        let h = try RuntimeHarness(interval: .seconds(60))
        h.broker.answerSessionLimits(Self.answer(dataPoints: "100:1", messages: #""10:1""#))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("the answer applied") { h.status["sessionLimitsSource"]?.stringValue == "server" }
        h.rpc(1, "getStatus")
        try await h.until("dropped") { h.status["droppedReplies"]?.int64Value == 1 }
        #expect(h.replies().isEmpty)
        try await h.advance(by: .seconds(2), step: .milliseconds(250))
        h.rpc(2, "getStatus")
        try await h.until("answered") { h.replies().count == 1 }
        #expect(h.replies().first?.topic == "v1/devices/me/rpc/response/2")
        await h.stop()
    }
}

extension RuntimeLimitsTests {
    /// ThingsBoard counts every client attribute as a data point: eleven of them in one message never pass a
    /// 5-a-second window. They go in parts within the window, paced, after the answer.
    @Test func clientAttributesAreSplitToTheDataPointWindow() async throws {
        let h = try RuntimeHarness(interval: .seconds(60), options: { options in
            options.clientAttributes = (1...10).map { ("attribute\($0)", .integer(Int64($0))) }
        })
        h.broker.answerSessionLimits(Self.answer(dataPoints: "5:1"))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("the answer applied") { h.status["sessionLimitsSource"]?.stringValue == "server" }
        try await h.advance(by: .seconds(5), step: .milliseconds(250))
        let keys = { h.broker.published(topic: "v1/devices/me/attributes").map { (try? JSONValue.parse($0.payload))?.objectMembers?.map(\.0) ?? [] } }
        try await h.until("every attribute sent") { Set(keys().flatMap { $0 }).count == 11 }
        #expect(keys().allSatisfy { $0.count <= 4 }, "\(keys())")  // 80 % of 5
        #expect(h.broker.published.contains { $0.topic == "v1/devices/me/attributes/request/1" })
        #expect(h.status["rateLimited"]?.int64Value == 0)
        await h.stop()
    }
}
