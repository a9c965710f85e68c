import AgentCore
import TBJSON
import Testing

@Suite struct AgentStateMachineTests {
    typealias Machine = AgentStateMachine<SplitMix64>

    func machine(_ settings: Machine.Settings = .init()) -> Machine {
        Machine(settings: settings, random: SplitMix64(seed: 42))
    }

    func retryDelay(_ actions: [Machine.Action]) -> Duration? {
        for case .startTimer(.retry, let after) in actions { return after }
        return nil
    }

    @Test func firstStartProvisionsThenStoresThenConnects() {
        var m = self.machine()
        let start = m.start(hasStoredCredentials: false)
        #expect(start.contains(.provision(reprovision: false)))
        #expect(m.led == .provisioning)
        let done = m.provisioningFinished(.success, now: .seconds(1))
        #expect(done.prefix(2) == [.storeProvisionedCredentials, .connect(.stored)])
        #expect(m.state == .connecting)
        #expect(m.led == .connecting)
        let online = m.connected(now: .seconds(2))
        #expect(online.contains(.announce))
        #expect(online.contains(.flushSpool))
        #expect(m.state == .online)
        #expect(m.led == .online)
    }

    @Test func storedCredentialsConnectWithoutProvisioning() {
        var m = self.machine()
        let start = m.start(hasStoredCredentials: true)
        #expect(start.contains(.connect(.stored)))
        #expect(!start.contains(.provision(reprovision: false)))
    }

    @Test func refusedProvisioningNeedsAPersonAndRetriesSlowly() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: false)
        let refused = m.provisioningFinished(.refused("the server did not accept the provision key"), now: .zero)
        #expect(m.state == .needsPerson("the server did not accept the provision key"))
        #expect(m.led == .attention)
        #expect(self.retryDelay(refused) == m.settings.backoffCap)
        let retry = m.timerFired(.retry, now: .seconds(300))
        #expect(retry.contains(.provision(reprovision: false)))
    }

    @Test func disconnectsBackOffWithFullJitterUpToTheCapAndResetAfterAStableMinute() {
        var m = self.machine(.init(backoffBase: .seconds(1), backoffCap: .seconds(300)))
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        var ceilings: [Duration] = []
        var delays: [Duration] = []
        _ = m.disconnected(reason: "closed", now: .zero)
        for i in 0..<12 {
            _ = m.timerFired(.retry, now: .seconds(i))
            let failed = m.connectFailed(.transient("refused"), now: .seconds(i))
            guard let d = self.retryDelay(failed) else {
                Issue.record("no retry scheduled")
                return
            }
            delays.append(d)
            ceilings.append(min(.seconds(1) * (1 << min(i + 1, 20)), .seconds(300)))
        }
        for (d, c) in zip(delays, ceilings) { #expect(d >= .zero && d <= c) }
        // Jitter: not all equal, and the late ones spread over the capped range.
        #expect(Set(delays.map(\.nanoseconds)).count > 6)
        // A stable connection resets the backoff: the next delay is within the first ceiling again.
        _ = m.timerFired(.retry, now: .seconds(100))
        _ = m.connected(now: .seconds(100))
        _ = m.timerFired(.connectionStable, now: .seconds(160))
        let again = m.disconnected(reason: "closed", now: .seconds(200))
        #expect((self.retryDelay(again) ?? .seconds(999)) <= .seconds(1))
    }

    @Test func fleetReconnectsSpreadOut() {
        // 1000 boards that lost the server together: their first retries should not land in the same second.
        var perSecond: [Int64: Int] = [:]
        for seed in 0..<1000 {
            var m = Machine(settings: .init(), random: SplitMix64(seed: UInt64(seed)))
            _ = m.start(hasStoredCredentials: true)
            _ = m.connected(now: .zero)
            _ = m.disconnected(reason: "outage", now: .zero)
            var t = Duration.zero
            for _ in 0..<5 {  // the outage outlasts a few retries
                let a = m.timerFired(.retry, now: t)
                #expect(a.contains(.connect(.stored)))
                t += self.retryDelay(m.connectFailed(.transient("down"), now: t)) ?? .zero
            }
            perSecond[t.nanoseconds / 1_000_000_000, default: 0] += 1
        }
        #expect((perSecond.values.max() ?? 0) <= 100)
    }

    @Test func threeRejectionsStartABoundedReprovisionWithin30Seconds() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        var t = Duration.zero
        var reprovisionAt: Duration? = nil
        for _ in 0..<3 {
            let a = m.connectFailed(.credentialsRejected, now: t)
            // Every rejection is logged (the fault suite found the first ones silent).
            #expect(a.contains { if case .log(.warning, _) = $0 { return true } else { return false } })
            if a.contains(.provision(reprovision: true)) {
                reprovisionAt = t
                break
            }
            t += self.retryDelay(a) ?? .seconds(999)
            #expect(m.timerFired(.retry, now: t).contains(.connect(.stored)))
        }
        #expect(reprovisionAt != nil)
        #expect((reprovisionAt ?? .seconds(999)) <= .seconds(30))
        #expect(m.reprovisioning == .credentialsRejected)
    }

    @Test func automaticReprovisioningIsBoundedPerHour() {
        var m = self.machine(.init(reprovisionsPerHour: 2))
        _ = m.start(hasStoredCredentials: true)
        var t = Duration.zero
        var attempts = 0
        for _ in 0..<60 {
            let a = m.connectFailed(.credentialsRejected, now: t)
            if a.contains(.provision(reprovision: true)) {
                attempts += 1
                // The name exists on the server: FAILURE.
                let r = m.provisioningFinished(.refused("name exists"), now: t)
                t += self.retryDelay(r) ?? .seconds(1)
            } else {
                t += self.retryDelay(a) ?? .seconds(1)
            }
            _ = m.timerFired(.retry, now: t)
            if t > .seconds(3000) { break }
        }
        #expect(attempts == 2)
    }

    @Test func longPressKeepsOldCredentialsWhenTheNameIsTaken() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        let press = m.reprovisionRequested(.button, now: .seconds(10))
        #expect(press.contains(.provision(reprovision: true)))
        #expect(m.state == .online)  // the main session stays up
        let refused = m.provisioningFinished(.refused("name exists"), now: .seconds(11))
        #expect(!refused.contains(.disconnect))
        #expect(!refused.contains(.commitCandidate))
        #expect(m.led == .attention)
        #expect(m.state == .online)
        _ = m.timerFired(.errorDisplayOver, now: .seconds(21))
        #expect(m.led == .online)
    }

    @Test func newCredentialsReplaceTheOldOnlyAfterConnecting() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        _ = m.reprovisionRequested(.remote, now: .seconds(1))
        let ok = m.provisioningFinished(.success, now: .seconds(2))
        #expect(ok.contains(.connect(.candidate)))
        #expect(!ok.contains(.commitCandidate))
        let connected = m.connected(now: .seconds(3))
        #expect(connected.contains(.commitCandidate))
        #expect(m.reprovisioning == nil)
    }

    @Test func candidateThatFailsIsDiscardedAndTheOldOnesUsed() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        _ = m.reprovisionRequested(.button, now: .seconds(1))
        _ = m.provisioningFinished(.success, now: .seconds(2))
        let failed = m.connectFailed(.credentialsRejected, now: .seconds(3))
        #expect(failed.contains(.discardCandidate))
        #expect(failed.contains(.connect(.stored)))
        #expect(!failed.contains(.commitCandidate))
    }

    @Test func ledShowsReleaseNowAndIdentifyOverTheState() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        #expect(m.buttonHeldPastThreshold(true) == [.setLED(.releaseNow)])
        #expect(m.buttonHeldPastThreshold(false) == [.setLED(.online)])
        #expect(m.identify(true) == [.setLED(.identify)])
        #expect(m.identify(false) == [.setLED(.online)])
    }

    @Test func shutdownFlushesAndDisconnects() {
        var m = self.machine()
        _ = m.start(hasStoredCredentials: true)
        _ = m.connected(now: .zero)
        let a = m.shutdown()
        #expect(a.contains(.flushSpool))
        #expect(a.contains(.disconnect))
        #expect(m.led == .off)
        #expect(m.timerFired(.retry, now: .seconds(5)).isEmpty)
    }
}

@Suite struct TelemetryEncoderTests {
    @Test func batchesConcatenateSpooledRecordsUpToThePayloadLimit() {
        let records = (1...5).map { i in
            SpoolRecord(sequence: UInt64(i), payload: Array(#"[{"ts":\#(i),"values":{"t":\#(i)}}]"#.utf8))
        }
        let (payload, sequences) = TelemetryEncoder.batch(records, maxPayloadBytes: 1000)
        #expect(sequences == [1, 2, 3, 4, 5])
        #expect(String(decoding: payload, as: UTF8.self).hasPrefix(#"[{"ts":1,"values":{"t":1}},{"ts":2,"#))
        #expect((try? JSONValue.parse(payload))?.arrayValue?.count == 5)
        // A limit that fits two records: two, in order; a record larger than the limit still goes alone.
        let two = TelemetryEncoder.batch(records, maxPayloadBytes: 2 + 2 * (records[0].payload.count - 2) + 1)
        #expect(two.sequences == [1, 2])
        let one = TelemetryEncoder.batch(records, maxPayloadBytes: 3)
        #expect(one.sequences == [1])
        #expect(one.payload == records[0].payload)
    }

    @Test func groupsByTimestampInTimeOrder() throws {
        let readings = [
            Reading(key: "b", value: 2, timestamp: 2000), Reading(key: "a", value: .double(23.125), timestamp: 1000),
            Reading(key: "c", value: true, timestamp: 1000),
        ]
        let (payloads, rejected) = TelemetryEncoder.payloads(readings)
        #expect(rejected.isEmpty)
        #expect(payloads.count == 1)
        #expect(String(decoding: payloads[0], as: UTF8.self)
            == #"[{"ts":1000,"values":{"a":23.125,"c":true}},{"ts":2000,"values":{"b":2}}]"#)
    }

    @Test func splitsUnderThePacketLimitWithoutLosingAReading() throws {
        let readings = (0..<5000).map { Reading(key: "temperature", value: .double(Double($0) / 8), timestamp: 1_700_000_000_000 + Int64($0)) }
        let (payloads, rejected) = TelemetryEncoder.payloads(readings, maxPayloadBytes: 4096)
        #expect(rejected.isEmpty)
        #expect(payloads.count > 1)
        var seen: [Int64] = []
        for p in payloads {
            #expect(p.count <= 4096)
            let value = try JSONValue.parse(p)
            for entry in value.arrayValue ?? [] { seen.append(entry["ts"]?.int64Value ?? -1) }
        }
        #expect(seen == readings.map(\.timestamp))
    }

    @Test func payloadIsExactlyTheJSONOfItsEntries() throws {
        var rng = SplitMix64(seed: 7)
        let keys = ["t", "door_closed", "quote\"d", "back\\slash", "line\nbreak", "tab\t", "ctl\u{01}", "ünï", "emoji🙂"]
        let values: [JSONValue] = [
            .integer(-3), .double(23.125), .bool(true), .null, .string("a \"b\" \\ c\n"), .array([1, .string("x")]),
            .object([("k", .integer(1))]),
        ]
        for _ in 0..<50 {
            let readings = (0..<Int.random(in: 1...12, using: &rng)).map { _ in
                Reading(
                    key: keys[Int.random(in: 0..<keys.count, using: &rng)],
                    value: values[Int.random(in: 0..<values.count, using: &rng)],
                    timestamp: 1_700_000_000_000 + Int64.random(in: 0...2, using: &rng))
            }
            let (payloads, rejected) = TelemetryEncoder.payloads(readings)
            #expect(rejected.isEmpty)
            let expected = "[" + TelemetryEncoder.entries(readings).map(\.json.serialized).joined(separator: ",") + "]"
            #expect(payloads.map { String(decoding: $0, as: UTF8.self) } == [expected])
            #expect(try JSONValue.parse(payloads[0]) == JSONValue.parse(Array(expected.utf8)))
        }
    }

    /// One reading's payload on its own is the payload `payloads` makes of it, and nil where that rejects it.
    @Test func aSingleReadingsPayloadIsWhatPayloadsMakes() {
        let values: [JSONValue] = [.integer(-3), .double(23.125), .bool(false), .null, .string("a \"b\" \\ c\n\u{01}"), .array([1])]
        for (i, value) in values.enumerated() {
            let reading = Reading(key: i % 2 == 0 ? "door" : "ünï \"k\"", value: value, timestamp: 1_796_000_000_000 + Int64(i))
            #expect(TelemetryEncoder.payload(key: reading.key, value: reading.value, timestamp: reading.timestamp)
                == TelemetryEncoder.payloads([reading]).payloads.first)
        }
        let big = Reading(key: "blob", value: .string(String(repeating: "x", count: 5000)), timestamp: 1)
        #expect(TelemetryEncoder.payload(key: big.key, value: big.value, timestamp: 1, maxPayloadBytes: 1000) == nil)
        #expect(TelemetryEncoder.payloads([big], maxPayloadBytes: 1000).payloads.isEmpty)
    }

    @Test func oversizedSingleValueIsRejectedNotSent() {
        let big = Reading(key: "blob", value: .string(String(repeating: "x", count: 5000)), timestamp: 1)
        let small = Reading(key: "t", value: 1, timestamp: 1)
        let (payloads, rejected) = TelemetryEncoder.payloads([big, small], maxPayloadBytes: 1000)
        #expect(rejected == [big])
        #expect(payloads.map { String(decoding: $0, as: UTF8.self) } == [#"[{"ts":1,"values":{"t":1}}]"#])
    }
}

@Suite struct ClockSanityTests {
    @Test func clockBeforeBuildTimeOrStoredDataIsNotTrusted() {
        var c = ClockSanity(buildTime: 1_790_000_000_000)
        #expect(!c.isPlausible(0))  // 1970 after a boot without RTC
        #expect(c.isPlausible(1_790_000_000_001))
        c.observeStored(1_800_000_000_000)
        #expect(!c.isPlausible(1_795_000_000_000))
    }

    @Test func aSynchronisedClockIsTrustedFromTheBuildTimeAndCorrectsTheFloor() {
        var c = ClockSanity(buildTime: 1_790_000_000_000, newestStored: 1_900_000_000_000)
        #expect(!c.isPlausible(1_800_000_000_000))
        #expect(c.isPlausible(1_800_000_000_000, synchronized: true))
        #expect(!c.isPlausible(1_700_000_000_000, synchronized: true))  // before the build: wrong whatever NTP says
        let corrected = c.correct(to: 1_800_000_000_000)
        #expect(corrected)
        #expect(c.floor == 1_800_000_000_000)
        let beforeBuild = c.correct(to: 1_700_000_000_000)
        #expect(!beforeBuild)
        #expect(c.isPlausible(1_800_000_000_000))
    }

    @Test func rebasesReadingsTakenBeforeSync() {
        let wall = ClockSanity.rebase(monotonicTaken: .seconds(10), monotonicNow: .seconds(70), wallNow: 1_800_000_060_000)
        #expect(wall == 1_800_000_000_000)
    }
}
