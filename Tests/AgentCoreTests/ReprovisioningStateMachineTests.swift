import AgentCore
import TBJSON
import Testing

/// Issue 10: re-provisioning that cannot brick a board (finding 2), and one budget for every trigger (finding 11).
@Suite struct ReprovisioningStateMachineTests {
    typealias Machine = AgentStateMachine<SplitMix64>

    func machine(_ settings: Machine.Settings = .init()) -> Machine {
        Machine(settings: settings, random: SplitMix64(seed: 7))
    }

    func retryDelay(_ actions: [Machine.Action]) -> Duration? {
        for case .startTimer(.retry, let after) in actions { return after }
        return nil
    }

    func errors(_ actions: [Machine.Action]) -> [String] {
        actions.compactMap { if case .log(.error, let text) = $0 { return text } else { return nil } }
    }

    /// Online with stored credentials, then rejected three times: an automatic re-provisioning is under way.
    func rejectedUntilReprovisioning(_ m: inout Machine, at t: inout Duration) {
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: t)
        _ = m.disconnected(reason: "device deleted on the server", now: t)
        for _ in 0..<10 {
            _ = m.timerFired(.retry, now: t)
            let a = m.connectFailed(.credentialsRejected, now: t)
            if a.contains(.provision(reprovision: true)) { return }
            t += self.retryDelay(a) ?? .seconds(5)
        }
        Issue.record("no re-provisioning after ten rejections")
    }

    // MARK: finding 2: the candidate is stored before it is tried, and only a rejection discards it

    @Test func newCredentialsAreStoredAsPendingBeforeTheyAreTried() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        _ = m.reprovisionRequested(.button, now: .seconds(1))
        let ok = m.provisioningFinished(.success, now: .seconds(2))
        let store = ok.firstIndex(of: .storeCandidate)
        let connect = ok.firstIndex(of: .connect(.candidate))
        #expect(store != nil && connect != nil && store! < connect!, "\(ok)")
        #expect(!ok.contains(.commitCandidate))
        #expect(m.hasCandidate)
    }

    /// The regression: today any failure of the candidate's first connect discards it.
    @Test(arguments: [
        "no answer from the MQTT server within 30s", "cannot connect to the MQTT server (Connection refused)",
        "the server closed the connection without answering the CONNECT", "the server is unavailable (CONNACK 3)",
        "the connection to the MQTT server was lost",
    ])
    func transientFailuresKeepAndRetryTheCandidateWithBackoff(_ reason: String) {
        var m = self.machine(.init(backoffBase: .seconds(1), backoffCap: .seconds(60)))
        var t = Duration.zero
        self.rejectedUntilReprovisioning(&m, at: &t)
        _ = m.provisioningFinished(.success, now: t)
        var delays: [Duration] = []
        for _ in 0..<8 {
            let failed = m.connectFailed(.transient(reason), now: t)
            #expect(!failed.contains(.discardCandidate), "the candidate was discarded after: \(reason)")
            #expect(!failed.contains(.connect(.stored)))
            #expect(!failed.contains { if case .provision = $0 { return true } else { return false } })
            let delay = try! #require(self.retryDelay(failed), "no retry after: \(reason)")
            delays.append(delay)
            t += delay
            #expect(m.timerFired(.retry, now: t).contains(.connect(.candidate)), "the retry does not use the candidate")
        }
        // Backoff: the later waits may be longer than the first ceiling, none beyond the cap.
        #expect(delays.allSatisfy { $0 <= .seconds(60) })
        #expect(delays.contains { $0 > .seconds(2) })
        #expect(m.led != .attention)
        let online = m.connected(now: t)
        #expect(online.contains(.commitCandidate))
        #expect(m.state == .online)
        #expect(m.led == .online)
        #expect(!m.hasCandidate)
    }

    @Test func aRejectedCandidateAfterRejectedStoredCredentialsNeedsAPerson() {
        var m = self.machine()
        var t = Duration.zero
        self.rejectedUntilReprovisioning(&m, at: &t)
        _ = m.provisioningFinished(.success, now: t)
        let rejected = m.connectFailed(.credentialsRejected, now: t)
        #expect(rejected.contains(.discardCandidate))
        #expect(!rejected.contains(.connect(.stored)))
        guard case .needsPerson(let message) = m.state else {
            Issue.record("state \(m.state) after the candidate was rejected")
            return
        }
        #expect(m.led == .attention)
        #expect(message.contains("delete this device on the server"))
        #expect(self.errors(rejected).contains(message))
        // It keeps trying (slowly, bounded), so it recovers once the person has deleted the device.
        let delay = try! #require(self.retryDelay(rejected))
        t += delay
        #expect(m.timerFired(.retry, now: t).contains(.connect(.stored)))
        #expect(m.led == .attention)
        var reprovisioned = false
        for _ in 0..<5 {
            let a = m.connectFailed(.credentialsRejected, now: t)
            if a.contains(.provision(reprovision: true)) {
                reprovisioned = true
                break
            }
            #expect(m.led == .attention)
            t += self.retryDelay(a) ?? .seconds(5)
            _ = m.timerFired(.retry, now: t)
        }
        #expect(reprovisioned)
        _ = m.provisioningFinished(.success, now: t)
        _ = m.connected(now: t)
        #expect(m.state == .online)
        #expect(m.led == .online)
    }

    @Test func aRejectedCandidateFallsBackToStoredCredentialsThatStillWork() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        _ = m.reprovisionRequested(.remote, now: .seconds(1))
        _ = m.provisioningFinished(.success, now: .seconds(2))
        let rejected = m.connectFailed(.credentialsRejected, now: .seconds(3))
        #expect(rejected.contains(.discardCandidate))
        #expect(rejected.contains(.connect(.stored)))
        #expect(m.state == .connecting)
        _ = m.connected(now: .seconds(4))
        #expect(m.state == .online)
        #expect(m.led == .online)
    }

    @Test func aRejectedCandidateThenRejectedStoredCredentialsNeedAPersonAtOnce() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        _ = m.reprovisionRequested(.button, now: .seconds(1))
        _ = m.provisioningFinished(.success, now: .seconds(2))
        _ = m.connectFailed(.credentialsRejected, now: .seconds(3))
        let stored = m.connectFailed(.credentialsRejected, now: .seconds(4))
        guard case .needsPerson = m.state else {
            Issue.record("state \(m.state): the stored credentials were rejected after the candidate")
            return
        }
        #expect(m.led == .attention)
        #expect(!self.errors(stored).isEmpty)
    }

    /// The regression: today the LED says "buffering" once the error display is over.
    @Test func aRefusedReprovisioningWhileTheStoredCredentialsAreRejectedNeedsAPerson() {
        var m = self.machine()
        var t = Duration.zero
        self.rejectedUntilReprovisioning(&m, at: &t)
        let refused = m.provisioningFinished(
            .refused("the server refused to provision device \"sim-1\" (FAILURE): delete it on the server"), now: t)
        guard case .needsPerson(let message) = m.state else {
            Issue.record("state \(m.state) after the refusal")
            return
        }
        #expect(message.contains("a person must act"))
        #expect(message.contains("delete it on the server"))
        #expect(m.led == .attention)
        _ = m.timerFired(.errorDisplayOver, now: t + .seconds(10))
        #expect(m.led == .attention, "the LED stopped asking for a person")
        // Still trying: the stored credentials, then (bounded) another re-provisioning.
        t += try! #require(self.retryDelay(refused))
        #expect(m.timerFired(.retry, now: t).contains(.connect(.stored)))
        #expect(m.led == .attention)
        let failed = m.connectFailed(.transient("unreachable"), now: t)
        #expect(m.led == .attention)
        #expect(self.retryDelay(failed) != nil)
    }

    @Test func aFailedReprovisioningIsRetriedWithoutAPerson() {
        var m = self.machine()
        var t = Duration.zero
        self.rejectedUntilReprovisioning(&m, at: &t)
        let failed = m.provisioningFinished(.failed("no answer to the provision request within 30s"), now: t)
        #expect(m.state == .offline)
        #expect(m.led == .buffering)
        #expect(self.retryDelay(failed) != nil)
    }

    // MARK: a restart with a pending generation

    @Test func aRestartTriesThePendingCredentialsFirst() {
        var m = self.machine()
        let start = m.start(CredentialInventory(stored: true, pending: true))
        #expect(start.contains(.connect(.candidate)))
        #expect(!start.contains(.connect(.stored)))
        let online = m.connected(now: .seconds(1))
        #expect(online.contains(.commitCandidate))
    }

    @Test func aRestartKeepsPendingCredentialsThroughTransientFailures() {
        var m = self.machine()
        _ = m.start(CredentialInventory(stored: true, pending: true))
        var t = Duration.zero
        for _ in 0..<5 {
            let failed = m.connectFailed(.transient("unreachable"), now: t)
            #expect(!failed.contains(.discardCandidate))
            t += self.retryDelay(failed) ?? .seconds(1)
            #expect(m.timerFired(.retry, now: t) .contains(.connect(.candidate)))
        }
    }

    @Test func aRestartFallsBackToTheStoredCredentialsOnlyOnRejection() {
        var m = self.machine()
        _ = m.start(CredentialInventory(stored: true, pending: true))
        let rejected = m.connectFailed(.credentialsRejected, now: .seconds(1))
        #expect(rejected.contains(.discardCandidate))
        #expect(rejected.contains(.connect(.stored)))
        _ = m.connected(now: .seconds(2))
        #expect(m.state == .online)
    }

    @Test func aRestartWithRejectedPendingAndNoStoredCredentialsNeedsAPersonAndAsksAgainSlowly() {
        var m = self.machine()
        _ = m.start(CredentialInventory(stored: false, pending: true))
        let rejected = m.connectFailed(.credentialsRejected, now: .seconds(1))
        #expect(rejected.contains(.discardCandidate))
        #expect(m.led == .attention)
        #expect(self.retryDelay(rejected) == m.settings.backoffCap)
        #expect(m.timerFired(.retry, now: .seconds(301)).contains(.provision(reprovision: false)))
    }

    // MARK: finding 7: credentials that may be neither used nor replaced

    @Test func blockedCredentialsAreNeitherUsedNorReplaced() {
        var m = self.machine()
        let reason = "credentials.json was written by a newer tb-agent (format 2): upgrade tb-agent, or move the file away"
        let start = m.start(CredentialInventory(stored: false, blocked: reason))
        #expect(!start.contains { if case .provision = $0 { return true } else { return false } })
        #expect(!start.contains { if case .connect = $0 { return true } else { return false } })
        #expect(self.errors(start).contains { $0.contains(reason) })
        #expect(m.state == .needsPerson(reason))
        #expect(m.led == .attention)
        let (answer, actions) = m.requestReprovision(.button, now: .seconds(1))
        #expect(answer == .unavailable(reason))
        #expect(!actions.contains(.provision(reprovision: false)))
        #expect(m.timerFired(.retry, now: .seconds(400)).isEmpty)
    }

    // MARK: finding 11: one budget for every trigger

    /// The regression: 300 `reprovision` RPCs made 19 provisioning sessions in one second.
    @Test func aFloodOfRPCsStartsAtMostTheBudget() {
        var m = self.machine(.init(reprovisionsPerHour: 4))
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        var sessions = 0
        var lastAnswer: Machine.ReprovisionAnswer? = nil
        for i in 0..<300 {
            let now = Duration.milliseconds(i * 3)
            let (answer, actions) = m.requestReprovision(.remote, now: now)
            lastAnswer = answer
            if actions.contains(.provision(reprovision: true)) {
                sessions += 1
                #expect(answer == .started)
                // The name exists: FAILURE, at once.
                _ = m.provisioningFinished(.refused("name exists"), now: now)
            }
        }
        #expect(sessions == 4)
        guard case .overBudget(let limit, let wait) = lastAnswer else {
            Issue.record("the last answer was \(String(describing: lastAnswer))")
            return
        }
        #expect(limit == 4)
        // The first one was at 0 s: the next is allowed an hour later.
        #expect(wait > .seconds(3598) && wait <= .seconds(3600))
        let reply = lastAnswer!.reply
        #expect(reply["retryAfterSeconds"]?.int64Value == 3600)
        #expect(reply["error"]?.stringValue?.contains("at most 4 an hour") == true)
        #expect(reply["error"]?.stringValue?.contains("allowed in 60 min") == true)
    }

    @Test func requestsWhileASessionRunsStartNothingAndSpendNothing() {
        var m = self.machine(.init(reprovisionsPerHour: 2))
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        #expect(m.requestReprovision(.remote, now: .zero).answer == .started)
        for i in 1...50 {
            let (answer, actions) = m.requestReprovision(i % 2 == 0 ? .remote : .button, now: .milliseconds(i))
            #expect(answer == .alreadyUnderWay)
            #expect(!actions.contains(.provision(reprovision: true)))
        }
        _ = m.provisioningFinished(.refused("name exists"), now: .seconds(1))
        #expect(m.requestReprovision(.button, now: .seconds(2)).answer == .started)
    }

    @Test func theButtonTheRPCAndRejectionsShareOneBudgetOverTime() {
        var m = self.machine(.init(rejectionRetryDelay: .seconds(5), reprovisionsPerHour: 3))
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        #expect(m.requestReprovision(.button, now: .seconds(0)).answer == .started)
        _ = m.provisioningFinished(.refused("name exists"), now: .seconds(1))
        #expect(m.requestReprovision(.remote, now: .seconds(600)).answer == .started)
        _ = m.provisioningFinished(.refused("name exists"), now: .seconds(601))
        // The device is deleted: rejections start the third, automatic one.
        var t = Duration.seconds(1200)
        _ = m.disconnected(reason: "deleted", now: t)
        var automatic = false
        for _ in 0..<5 {
            _ = m.timerFired(.retry, now: t)
            let a = m.connectFailed(.credentialsRejected, now: t)
            if a.contains(.provision(reprovision: true)) {
                automatic = true
                break
            }
            t += self.retryDelay(a) ?? .seconds(5)
        }
        #expect(automatic)
        _ = m.provisioningFinished(.refused("name exists"), now: t)
        // Spent: neither a person nor the rejections get another before the first leaves the hour.
        let (answer, actions) = m.requestReprovision(.button, now: .seconds(1300))
        #expect(answer == .overBudget(limit: 3, nextAllowedIn: .seconds(2300)))
        #expect(!actions.contains(.provision(reprovision: true)))
        #expect(actions.contains { if case .log(_, let text) = $0 { return text.contains("allowed in 39 min") } else { return false } })
        t = .seconds(1300)
        for _ in 0..<6 {
            _ = m.timerFired(.retry, now: t)
            let a = m.connectFailed(.credentialsRejected, now: t)
            #expect(!a.contains(.provision(reprovision: true)), "an automatic re-provisioning beyond the budget")
            t += self.retryDelay(a) ?? .seconds(5)
        }
        #expect(m.led == .attention)
        // An hour after the first, one more is allowed.
        let later = m.requestReprovision(.remote, now: .seconds(3601))
        #expect(later.answer == .started)
        #expect(later.actions.contains(.provision(reprovision: true)))
    }

    @Test func aRequestWithoutStoredCredentialsProvisionsNowAndCountsToo() {
        var m = self.machine(.init(reprovisionsPerHour: 1))
        _ = m.start(hasStoredCredentials: false)
        _ = m.provisioningFinished(.refused("NOT_FOUND: check the provision key"), now: .zero)
        let (answer, actions) = m.requestReprovision(.button, now: .seconds(10))
        #expect(answer == .started)
        #expect(actions.contains(.provision(reprovision: false)))
        _ = m.provisioningFinished(.refused("NOT_FOUND: check the provision key"), now: .seconds(11))
        guard case .overBudget = m.requestReprovision(.button, now: .seconds(20)).answer else {
            Issue.record("a second button press within the hour provisioned again")
            return
        }
    }
}
