import AgentCore
import AgentService
import AgentSimulated
import AgentTestSupport
import Synchronization
import TBJSON
import Testing

/// Issue 10, the credentials' part, with the run loop in-process: re-provisioning that cannot brick (finding 2),
/// credentials that may be neither used nor replaced (finding 7), one re-provisioning budget (finding 11).
@Suite(.serialized) struct CredentialRuntimeTests {
    static let new = DeviceCredentials.accessToken(Secret("new-token"))

    @Test func aDroppedFirstConnectAfterReprovisioningKeepsAndRetriesTheNewCredentials() async throws {
        let h = try RuntimeHarness()
        h.start()
        try await h.until("online") { h.state == "online" }
        h.broker.script([.fail("the connection was lost"), .fail("no answer within 30s")])
        h.rpc(1, "reprovision")
        try await h.until("the first try of the new credentials") { h.broker.attempts.count == 2 }
        try await h.until("its failure handled") { h.broker.attempts.last?.outcome != nil && h.state != "connecting" }
        // Stored as pending before they were tried, the old ones still stored.
        #expect(h.store.loadPending() == Self.new)
        #expect(h.store.load() == RuntimeHarness.token)
        #expect(h.state == "offline")
        try await h.advance(by: .seconds(30), step: .milliseconds(250))
        try await h.until("online with the new credentials") { h.state == "online" && h.broker.attempts.count == 4 }
        #expect(h.broker.attempts.dropFirst().map(\.credentials) == [Self.new, Self.new, Self.new])
        #expect(h.store.load() == Self.new)
        #expect(h.store.loadPending() == nil)
        #expect(h.provisioner.sessions.withLock { $0 } == 1)
        #expect(h.status["led"]?.stringValue == "online")
        await h.stop()
    }

    @Test func aRejectedCandidateWhileTheStoredCredentialsAreRejectedAsksForAPerson() async throws {
        let h = try RuntimeHarness()
        h.broker.accept(only: [])  // the device was deleted; and the new credentials are rejected too
        h.start()
        try await h.until("the re-provisioning after three rejections") {
            h.provisioner.sessions.withLock { $0 } >= 1 && h.broker.attempts.count >= 4
        } advancing: { try await h.advance(by: .milliseconds(500), step: .milliseconds(250)) }
        try await h.until("a person asked for") { h.state == "needs-attention" }
        // It keeps trying, within the budget: at most 4 provisioning sessions in the hour.
        try await h.advance(by: .seconds(1800), step: .seconds(5))
        #expect(h.provisioner.sessions.withLock { $0 } <= 4)
        #expect(h.state == "needs-attention" || h.state == "connecting")
        #expect(h.status["led"]?.stringValue == "attention")
        #expect(h.status["problem"]?.stringValue?.contains("delete this device on the server") == true)
        #expect(h.store.loadPending() == nil)
        #expect(h.store.load() == RuntimeHarness.token)
        await h.stop()
    }

    @Test func aRestartTriesThePendingCredentialsFirst() async throws {
        let h = try RuntimeHarness(pending: Self.new)
        h.start()
        try await h.until("online") { h.state == "online" }
        #expect(h.broker.attempts.map(\.credentials) == [Self.new])
        #expect(h.store.load() == Self.new)
        #expect(h.store.loadPending() == nil)
        #expect(h.provisioner.sessions.withLock { $0 } == 0)
        await h.stop()
    }

    @Test func aRestartFallsBackToTheStoredCredentialsOnlyWhenThePendingOnesAreRejected() async throws {
        let h = try RuntimeHarness(pending: Self.new)
        h.broker.accept(only: [RuntimeHarness.token])
        h.start()
        try await h.until("online") { h.state == "online" }
        #expect(h.broker.attempts.map(\.credentials) == [Self.new, RuntimeHarness.token])
        #expect(h.store.load() == RuntimeHarness.token)
        #expect(h.store.loadPending() == nil)
        await h.stop()
    }

    @Test func credentialsThatMayNotBeReplacedNeitherConnectNorProvision() async throws {
        let reason = "credentials.json was written by a newer tb-agent (format 2): upgrade tb-agent, or move the file away"
        let h = try RuntimeHarness(stored: nil, blocked: reason)
        h.start()
        try await h.until("a person asked for") { h.state == "needs-attention" }
        try await h.advance(by: .seconds(900), step: .seconds(30))
        #expect(h.broker.attempts.isEmpty)
        #expect(h.provisioner.sessions.withLock { $0 } == 0)
        #expect(h.status["problem"]?.stringValue?.contains("newer tb-agent") == true)
        await h.stop()
    }

    /// 300 `reprovision` RPCs made 19 provisioning sessions in one second.
    @Test func aReprovisionRPCFloodStaysWithinTheBudget() async throws {
        let h = try RuntimeHarness(
            provisioning: [.failure(AgentError(.provisioningRefused, "FAILURE: the name exists"))],
            options: { $0.inboxLimit = 1000 })
        h.start()
        try await h.until("online") { h.state == "online" }
        for id in 1...300 {
            h.rpc(id, "reprovision")
            if id % 10 == 0 { try await Task.sleep(for: .milliseconds(2)) }
        }
        try await h.until("all answered") { h.replies().count == 300 }
        try await Task.sleep(for: .milliseconds(50))
        let sessions = h.provisioner.sessions.withLock { $0 }
        #expect(sessions >= 1 && sessions <= 4)
        let replies = h.replies().compactMap { try? JSONValue.parse($0.payload) }
        #expect(replies.filter { $0["reprovision"]?.stringValue == "started" }.count == sessions)
        let refused = replies.filter { $0["retryAfterSeconds"] != nil }
        #expect(!refused.isEmpty)
        #expect(refused.allSatisfy { ($0["retryAfterSeconds"]?.int64Value ?? 0) > 3000 })
        #expect(h.state == "online")
        await h.stop()
    }
}

extension RuntimeHarness {
    /// `until`, advancing the manual clock between checks (for what waits on timers).
    func until(_ what: String, timeout: Duration = .seconds(20), _ condition: () -> Bool,
               advancing: () async throws -> Void) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else {
                throw TestSupportError("timed out waiting until \(what): \(self.status.serialized), \(self.broker.attempts.count) connects, \(self.provisioner.sessions.withLock { $0 }) provisioning sessions")
            }
            try await advancing()
        }
    }
}
