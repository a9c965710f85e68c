import AgentCore
import AgentService
import AgentSimulated
import Foundation
import TBJSON
import Testing

/// The claiming gesture in the run loop: one claim request per window, the `claiming` LED for the window.
@Suite(.serialized) struct RuntimeClaimingTests {
    static let claiming = ClaimingSettings(secret: Secret("gesture-s3cret"), duration: .seconds(60))

    @Test func theGestureSendsOneClaimRequestPerWindowAndShowsClaiming() async throws {
        let h = try RuntimeHarness(claiming: Self.claiming)
        h.start()
        try await h.until("online") { h.state == "online" }
        h.board.emit(.claimRequested)
        try await h.until("the claim request") { h.broker.published(topic: "v1/devices/me/claim").count == 1 }
        let payload = try JSONValue.parse(h.broker.published(topic: "v1/devices/me/claim")[0].payload)
        #expect(payload["secretKey"] == .string("gesture-s3cret"))
        #expect(payload["durationMs"] == .integer(60_000))
        try await h.until("the claiming LED") { h.status["led"]?.stringValue == "claiming" }
        #expect(h.board.leds.contains(.claiming))

        // A chattering button within the window sends nothing more (ThingsBoard would keep the first anyway).
        for _ in 0..<50 { h.board.emit(.claimRequested) }
        try await h.advance(by: .seconds(30), step: .seconds(1))
        #expect(h.broker.published(topic: "v1/devices/me/claim").count == 1)
        #expect(h.status["led"]?.stringValue == "claiming")

        try await h.advance(by: .seconds(31), step: .seconds(1))
        try await h.until("the window is over") { h.status["led"]?.stringValue == "online" }
        h.board.emit(.claimRequested)
        try await h.until("a second request after the window") { h.broker.published(topic: "v1/devices/me/claim").count == 2 }
        #expect(h.status.serialized.range(of: "gesture-s3cret") == nil)
        await h.stop()
    }

    @Test func withoutClaimingTheGestureSendsNothing() async throws {
        let h = try RuntimeHarness()
        h.start()
        try await h.until("online") { h.state == "online" }
        h.board.emit(.claimRequested)
        try await h.advance(by: .seconds(2), step: .milliseconds(500))
        #expect(h.broker.published(topic: "v1/devices/me/claim").isEmpty)
        #expect(h.status["led"]?.stringValue == "online")
        await h.stop()
    }
}
