import AgentCore
import AgentPlatform
import AgentService
import AgentSimulated
import AgentTestSupport
import Foundation
import Synchronization
import TBJSON
import Testing

/// The run loop in-process: the in-memory broker instead of a socket, a manual clock instead of time.
@Suite(.serialized) struct RuntimeTests {
    @Test func firstStartProvisionsStoresConnectsAndPublishes() async throws {
        let h = try RuntimeHarness(stored: nil)
        h.start()
        try await h.until("online") { h.state == "online" }
        #expect(h.provisioner.sessions.withLock { $0 } == 1)
        #expect(h.store.load() == .accessToken(Secret("new-token")))
        #expect(h.broker.attempts.map(\.credentials) == [.accessToken(Secret("new-token"))])
        try await h.until("subscribed") { h.broker.subscriptions.count == 4 }  // with getSessionLimits' answers
        // The client attributes follow once the loop knows the subscriptions are done (they go through the limits).
        try await h.until("announced") { h.broker.published(topic: "v1/devices/me/attributes").count == 1 }
        // The first sample is due at start; then one every interval.
        try await h.until("first reading") { h.telemetry().count == 1 }
        try await h.advance(by: .seconds(20))
        try await h.until("three readings") { h.telemetry().count == 3 }
        let stamps = h.telemetry().compactMap { $0["ts"]?.int64Value }
        #expect(stamps == stamps.sorted() && Set(stamps).count == 3)
        await h.stop()
    }

    /// Finding 1: a burst of sampleNow RPCs started one read each, on the cooperative pool. Now one read is in
    /// flight and the burst is merged into one pending read; every RPC is still answered.
    @Test func sampleNowBurstIsCoalescedIntoOneRead() async throws {
        let board = SlowBoard(autoFinish: false)
        let h = try RuntimeHarness(board: board, options: { $0.inboxLimit = 1000 })
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("the start-up read") { board.requests.count == 1 }
        for id in 1...300 { h.rpc(id, "sampleNow") }
        try await h.until("all answered") { h.replies().count == 300 }
        #expect(board.requests.count == 1)  // the start-up read is still under way: nothing else started
        #expect(board.readsUnderWay == 1)
        #expect(board.finishReads() == 1)
        try await h.until("the merged read") { board.requests.count == 2 }
        #expect(board.finishReads() == 1)
        try await Task.sleep(for: .milliseconds(50))
        #expect(board.requests.count == 2)
        #expect(h.status["state"]?.stringValue == "online")
        await h.stop()
    }

    /// Finding 3: each identify RPC started a timer task that stayed. Now there is one deadline, and only the
    /// ticker sleeps on the clock whatever the server sends.
    @Test func identifyFloodKeepsOneTimer() async throws {
        let h = try RuntimeHarness(options: { $0.inboxLimit = 10_000 })
        h.start()
        try await h.until("online") { h.state == "online" }
        for id in 1...2000 { h.rpc(id, "identify", params: #""30s""#) }
        try await h.until("all answered") { h.replies().count == 2000 }
        #expect(h.clock.sleeperCount <= 1)
        #expect(h.status["led"]?.stringValue == "identify")
        try await h.advance(by: .seconds(31), step: .seconds(1))
        try await h.until("identify over") { h.status["led"]?.stringValue == "online" }
        #expect(h.clock.sleeperCount <= 1)
        await h.stop()
    }

    /// The inbox is bounded in bytes too: messages that would take it past `inboxByteLimit` are dropped and counted.
    /// The status socket exists only once there is a status to tell: the first answer, taken as soon as the
    /// socket appears, is the agent's state, never `null` (the socket used to open before the first snapshot).
    @Test func theStatusSocketsFirstAnswerIsAStatus() async throws {
        let socketPath = try TestSupport.makeTemporaryDirectory("status").path + "/status.sock"
        let h = try RuntimeHarness(options: { $0.statusSocketPath = socketPath })
        let first = Mutex<JSONValue?>(nil)
        let polling = Atomic<Bool>(true)
        let poller = try JoinableThread {
            while polling.load(ordering: .acquiring) {
                if access(socketPath, F_OK) == 0, let answer = StatusSocketServer.query(path: socketPath) {
                    first.withLock { $0 = answer }
                    return
                }
                usleep(200)
            }
        }
        h.start()
        try await h.until("the status socket answers") { first.withLock { $0 } != nil }
        polling.store(false, ordering: .releasing)
        poller.join()
        let answer = first.withLock { $0 }
        #expect(answer?["state"]?.stringValue != nil, "first answer: \(String(describing: answer))")
        await h.stop()
    }

    @Test func inboxIsBoundedInBytes() async throws {
        let h = try RuntimeHarness(options: { $0.inboxLimit = 10_000; $0.inboxByteLimit = 2_000 })
        h.start()
        try await h.until("online") { h.state == "online" }
        let padding = String(repeating: "a", count: 3_000)
        h.rpc(1, "getStatus", params: "\"\(padding)\"")
        h.rpc(2, "getStatus")
        try await h.until("the small one answered") { h.replies().count == 1 }
        #expect(h.replies().first?.topic == "v1/devices/me/rpc/response/2")
        #expect(h.status["droppedMessages"]?.int64Value == 1)
        await h.stop()
    }

    /// A server that sends RPCs faster than it takes their replies (no PUBACK) gets at most `pendingRepliesLimit`
    /// replies under way; the rest are dropped and counted instead of queueing in the MQTT library without bound.
    @Test func repliesTheServerDoesNotTakeAreBounded() async throws {
        let h = try RuntimeHarness(options: { $0.inboxLimit = 10_000; $0.pendingRepliesLimit = 8 })
        h.start()
        try await h.until("online") { h.state == "online" }
        h.broker.holdAcks(true)
        for id in 1...200 { h.rpc(id, "identify", params: #""30s""#) }
        try await h.until("all handled") { h.status["droppedReplies"]?.int64Value == 192 }
        #expect(h.replies().count == 8)
        // Once the server takes them, replies flow again.
        h.broker.grantAcks()
        h.rpc(201, "getStatus")
        try await h.until("answered after the PUBACKs") { h.replies().count == 9 }
        #expect(h.replies().last?.topic == "v1/devices/me/rpc/response/201")
        await h.stop()
    }

    /// Finding 3: a payload above the limit is dropped before the loop sees it, and counted.
    @Test func oversizedServerMessageIsDroppedAndCounted() async throws {
        let h = try RuntimeHarness()
        h.start()
        try await h.until("online") { h.state == "online" }
        let big = Array(#"{"method":"getStatus","params":""#.utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 100_000) + Array(#""}"#.utf8)
        h.broker.send(topic: "v1/devices/me/rpc/request/1", payload: big)
        h.rpc(2, "getStatus")
        try await h.until("the small one answered") { h.replies().count == 1 }
        #expect(h.replies().first?.topic == "v1/devices/me/rpc/response/2")
        #expect(h.status["droppedMessages"]?.int64Value == 1)
        await h.stop()
    }

    /// Server messages beyond the inbox are dropped and counted, never queued without bound.
    @Test func inboxIsBounded() async throws {
        let h = try RuntimeHarness(options: { $0.inboxLimit = 4 })
        h.start()
        try await h.until("online") { h.state == "online" }
        // The getSessionLimits answer is a server message too: in before the flood, not one of its four.
        try await h.until("the limits answered") { h.status["sessionLimitsSource"]?.stringValue == "server" }
        for id in 1...5000 { h.rpc(id, "getStatus") }
        try await h.until("settled") {
            h.replies().count + Int(h.status["droppedMessages"]?.int64Value ?? 0) == 5000
        }
        #expect(h.replies().count >= 4)
        await h.stop()
    }

    /// Finding 3: `interval_<anything>` for sensors that do not exist is not kept (and not requested).
    @Test func unknownIntervalAttributesChangeNothing() async throws {
        let h = try RuntimeHarness(interval: .seconds(10))
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("first reading") { h.telemetry().count == 1 }
        var members: [(String, JSONValue)] = []
        for i in 0..<2000 { members.append(("interval_ghost\(i)", .integer(1))) }
        members.append(("interval_temp", .string("2s")))
        h.broker.send(topic: "v1/devices/me/attributes", payload: JSONValue.object(members).serializedBytes)
        try await Task.sleep(for: .milliseconds(50))
        try await h.advance(by: .seconds(4), step: .milliseconds(250))
        try await h.until("the 2 s interval applies") { h.telemetry().count >= 3 }
        await h.stop()
    }

    /// Readings taken offline are spooled and sent in order once the connection is back; PUBLISHes awaiting
    /// their PUBACK stay within the window.
    @Test func outageSpoolsAndReplaysInOrderWithinTheWindow() async throws {
        let h = try RuntimeHarness(interval: .seconds(1), options: { $0.inFlightWindow = 2; $0.recordsPerPublish = 1 })
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("first reading") { h.telemetry().count == 1 }
        h.broker.script([.fail("unreachable")], otherwise: .fail("unreachable"))
        h.broker.drop()
        try await h.until("offline") { h.state == "offline" }
        try await h.advance(by: .seconds(10), step: .milliseconds(500))
        h.broker.script([], otherwise: .accept)
        h.broker.holdAcks(true)
        try await h.advance(by: .seconds(600), step: .seconds(5))
        try await h.until("online again") { h.state == "online" }
        // The window: two unacknowledged PUBLISHes after the reconnect (the announcement's or telemetry, whichever
        // the link got first); the loop hands over more, which wait in the link.
        try await h.until("the window is full") { h.broker.unacknowledged == 2 }
        let before = h.broker.published.count
        try await Task.sleep(for: .milliseconds(50))
        #expect(h.broker.published.count == before)
        #expect(h.broker.unacknowledged == 2)
        for _ in 0..<40 {
            h.broker.grantAcks()
            #expect(h.broker.unacknowledged <= 2)
            try await Task.sleep(for: .milliseconds(5))
        }
        h.broker.holdAcks(false)
        h.broker.grantAcks()
        try await h.advance(by: .seconds(1))
        try await h.until("drained") { (h.status["spoolDepth"]?.int64Value ?? 1) == 0 }
        let stamps = h.telemetry().compactMap { $0["ts"]?.int64Value }
        #expect(stamps.count >= 12)
        #expect(stamps == stamps.sorted())
        await h.stop()
    }

    /// A clock that reads before the build time holds readings with their monotonic time, and gives them their
    /// real time once it is set.
    @Test func readingsWaitForAPlausibleClock() async throws {
        let h = try RuntimeHarness(interval: .seconds(1))
        h.clock.setWall(86_400_000)  // 1970-01-02: no RTC, no NTP yet
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.advance(by: .seconds(3), step: .milliseconds(250))
        #expect(h.telemetry().isEmpty)
        #expect(h.status["clockSet"] == .bool(false))
        let set = RuntimeHarness.wallStart
        h.clock.setWall(set)
        try await h.advance(by: .seconds(1), step: .milliseconds(250))
        try await h.until("held readings sent") { h.telemetry().count >= 4 }
        let stamps = h.telemetry().compactMap { $0["ts"]?.int64Value }
        #expect(stamps == stamps.sorted())
        #expect(stamps.first.map { set - $0 >= 3000 && set - $0 <= 4500 } == true)
        await h.stop()
    }
}

extension RuntimeTests {
    /// Issue 10, finding 9: the newest stored timestamp was never loaded at start, so a clock set back (a board
    /// without RTC that booted at fake-hwclock's last save) stamped readings earlier than ones already sent. The
    /// floor is loaded, checked, saved hourly and at shutdown.
    @Test func aClockBehindTheStoredFloorHoldsReadingsAndTheFloorIsSaved() async throws {
        let floor = RuntimeHarness.wallStart + 3_600_000  // an hour ahead of the clock
        let h = try RuntimeHarness(interval: .seconds(1), clockFloor: floor, options: { $0.clockFloorSaveInterval = .seconds(10) })
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.advance(by: .seconds(3), step: .milliseconds(250))
        #expect(h.telemetry().isEmpty)
        #expect(h.status["clockSet"] == .bool(false))
        #expect((h.status["heldReadings"]?.int64Value ?? 0) >= 3)
        // NTP steps the clock past the floor: held readings go out, stamped when they were taken.
        h.clock.setWall(floor + 10_000)
        try await h.advance(by: .seconds(1), step: .milliseconds(250))
        try await h.until("held readings sent") { h.telemetry().count >= 4 }
        let stamps = h.telemetry().compactMap { $0["ts"]?.int64Value }
        #expect(stamps == stamps.sorted())
        #expect(stamps.allSatisfy { $0 >= floor })
        try await h.advance(by: .seconds(10), step: .seconds(1))
        try await h.until("the floor saved") { (h.clockFloor.load() ?? 0) > floor }
        await h.stop()
        #expect((h.clockFloor.load() ?? 0) >= stamps.last ?? .max)
    }

    /// A synchronised clock is trusted even behind a stored floor (which a clock once set into the future left):
    /// otherwise the board would hold readings until that future date.
    @Test func aSynchronisedClockOverridesAFloorFromTheFuture() async throws {
        let future = RuntimeHarness.wallStart + 365 * 86_400_000
        let h = try RuntimeHarness(interval: .seconds(1), clockFloor: future)
        h.clock.setSynchronized(true)
        h.start()
        try await h.until("online") { h.state == "online" }
        try await h.until("readings sent") { h.telemetry().count >= 1 }
        #expect(h.status["clockSet"] == .bool(true))
        await h.stop()
        #expect((h.clockFloor.load() ?? .max) < future)
    }
}
