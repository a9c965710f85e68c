import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Readings taken while the server is unreachable live in the spool and arrive afterwards, in order, with the
/// time they were taken.
///
/// What the agent took is read from its spool files (every record above the acknowledged watermark) while it is
/// cut off, or after it was killed or stopped: exactly the readings it still owes the server. Each of them must
/// reach tb-sim with its original timestamp and value. Besides, the 100 ms sensor's timestamps as received must have
/// no hole of seconds (outside the time the agent was not running), so readings that never reached the spool would
/// show too.
@Suite("End to end: outages, kill -9 and the spool")
struct OutageTests {
    /// A 100 ms sensor (about 10 readings a second) and a 1 s one.
    static func fastBoard(_ sim: E2ESim, extra: String = "") throws -> BoardCopy {
        let board = try BoardCopy()
        try board.writeConfig(
            port: sim.mqttPort, interval: "1s",
            sensors: BoardCopy.sensors(["cpu_temperature", "temperature"], intervals: ["cpu_temperature": "100ms"]),
            extra: extra)
        return board
    }

    /// The ISSUE's 30 s outage (the suite's only one that long; the others end theirs as soon as they are ready).
    @Test("a 30 s outage at 10 readings/s: afterwards every reading arrives, in order, with its original timestamp")
    func thirtySecondOutage() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.fastBoard(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 20 },
                         "no telemetry before the outage; agent log:\n\(agent.log)")

            _ = try await sim.control("POST", "/outage", #"{"seconds":30}"#)
            await pause(.seconds(25))
            let status = try await agent.status()
            #expect(["offline", "connecting"].contains(status["state"]?.stringValue ?? ""), "\(status.serialized)")
            #expect((status["spoolDepth"]?.int64Value ?? 0) > 0, "\(status.serialized)")
            let owed = try board.spooledReadings()
            try #require(owed.count >= 50, "too few readings spooled during the outage for a meaningful test: \(owed.count)")

            let outageStart = try #require(sim.events("outage_started").first?["ts"]?.int64Value)
            try await Self.expectDelivered(owed, sim: sim, agent: agent, label: "30 s outage")
            // The spooled readings were taken during the outage and arrive after it, still with those times.
            let during = Set(sim.readings().filter { $0.id.ts > outageStart && $0.id.ts < outageStart + 25_000 }.map(\.id))
            #expect(during.count >= 50, "readings with a time inside the outage: \(during.count)")
            #expect(owed.allSatisfy { $0.id.ts >= outageStart - 5_000 }, "the spool still held readings from well before the outage")
        }
    }

    @Test("kill -9 during an outage and a restart: every reading spooled before the kill still arrives")
    func killDuringOutage() async throws {
        let sim = try await E2ESim.start()
        // sync_interval 0: each record is fsynced at once. A kill -9 leaves the page cache alone, so this matters
        // for a power cut rather than for this test; it keeps the test honest about what is on flash.
        let board = try Self.fastBoard(sim, extra: "[spool]\nsync_interval = \"0s\"\n")
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 20 },
                         "no telemetry before the outage; agent log:\n\(agents[0].log)")

            _ = try await sim.control("POST", "/outage", #"{"seconds":120}"#)
            await pause(.seconds(4))
            let killed = wallClockMilliseconds()
            await agents[0].kill9()
            let owedAtKill = try board.spooledReadings()
            try #require(owedAtKill.count >= 10, "too few readings spooled before the kill: \(owedAtKill.count)")

            agents.append(try await AgentProcess.start(board))
            let restarted = agents[1]
            // The restarted agent keeps spooling while the outage lasts.
            try #require(await eventually(.seconds(20)) {
                ((try? board.spooledReadings()) ?? []).contains { $0.id.ts > killed }
            }, "the restarted agent spooled nothing; agent log:\n\(restarted.log)")
            await pause(.seconds(2))
            let owed = try board.spooledReadings()
            #expect(Set(owed.map(\.id)).isSuperset(of: owedAtKill.map(\.id)), "the restart lost spooled readings")

            _ = try await sim.control("POST", "/outage", #"{"seconds":0}"#)
            try await Self.expectDelivered(owed, sim: sim, agent: restarted, label: "kill -9", stoppedAt: killed)
        }
    }

    // MARK: the delivery check shared by the outage, kill and SIGTERM tests

    /// Waits until every `owed` reading has reached tb-sim and live readings flow again, then checks values, order,
    /// duplicates and holes.
    ///
    /// - Parameter stoppedAt: when the agent was killed or stopped (and restarted later): the hole spanning this
    ///   time is the only one allowed.
    static func expectDelivered(_ owed: [DataPoint], sim: E2ESim, agent: AgentProcess, label: String,
                                stoppedAt: Int64? = nil) async throws {
        let owedIDs = Set(owed.map(\.id))
        // Distinct readings of one key never share a timestamp (ThingsBoard would keep only one of them).
        let stampedAlike = Dictionary(grouping: owed, by: \.id).filter { $0.value.count > 1 }.keys.sorted()
        #expect(stampedAlike.isEmpty, "\(label): \(stampedAlike.count) timestamps carry several spooled readings of one key, first \(stampedAlike.prefix(5))")
        let arrived = await eventually(.seconds(60), every: .milliseconds(250)) {
            Set(sim.readings().map(\.id)).isSuperset(of: owedIDs)
        }
        let missing = owedIDs.subtracting(sim.readings().map(\.id)).sorted()
        try #require(arrived, "\(label): \(missing.count) of \(owedIDs.count) spooled readings never arrived, first \(missing.prefix(5)); agent log:\n\(agent.log.suffix(4000))")
        // Live again: readings taken after the last owed one arrive too.
        let lastOwed = owed.map(\.id.ts).max() ?? 0
        try #require(await eventually(.seconds(30)) {
            sim.readings(of: "cpu_temperature").contains { $0.id.ts > lastOwed + 1000 }
        }, "\(label): no live telemetry after the replay")

        let events = sim.telemetry()
        let received = events.flatMap(\.readings)
        let byID = Dictionary(grouping: received, by: \.id)

        // The original timestamps and values.
        for point in owed {
            let arrivals = byID[point.id] ?? []
            #expect(arrivals.allSatisfy { point.sameValue($0.value) }, "\(label): \(point) arrived as \(arrivals)")
        }

        // In order: per key, the first arrivals' timestamps only grow.
        var seen = Set<PointID>()
        var lastFirstArrival: [String: Int64] = [:]
        var outOfOrder: [String] = []
        for point in received where seen.insert(point.id).inserted {
            if let last = lastFirstArrival[point.id.key], point.id.ts <= last { outOfOrder.append("\(point.id) after ts \(last)") }
            lastFirstArrival[point.id.key] = point.id.ts
        }
        #expect(outOfOrder.isEmpty, "\(label): \(outOfOrder.count) readings arrived out of order, first \(outOfOrder.prefix(5))")

        // Duplicates: only QoS 1 redeliveries, i.e. a reading sent again on a later session because the PUBACK of
        // the first delivery was lost with the connection (or with the killed agent's unsaved watermark). Never
        // twice on one session. Their number is bounded by what can be in flight (and, after a kill, by what was
        // acknowledged after the spool last saved its watermark).
        var sessionsByID: [PointID: [Int64]] = [:]
        for event in events {
            for point in event.readings { sessionsByID[point.id, default: []].append(event.session) }
        }
        let duplicated = sessionsByID.filter { $0.value.count > 1 }
        let duplicates = duplicated.values.reduce(0) { $0 + $1.count - 1 }
        let sameSession = duplicated.filter { Set($0.value).count != $0.value.count }
        // (Seen once: readings a busy agent loop stamped with the time it got to them, several rounds of the 100 ms
        // sensor with one timestamp. ThingsBoard would have kept one of them.)
        #expect(sameSession.isEmpty, "\(label): one key and timestamp delivered more than once on one session (a resend within a session, or distinct readings stamped alike): \(sameSession.sorted { $0.key < $1.key }.prefix(5))")
        #expect(duplicates <= 64, "\(label): \(duplicates) duplicate deliveries")

        // No hole: the 100 ms sensor's timestamps, as received, never pause for seconds while an agent ran.
        let times = Set(received.filter { $0.id.key == "cpu_temperature" }.map(\.id.ts)).sorted()
        var holes: [String] = []
        for (a, b) in zip(times, times.dropFirst()) where b - a > 3_000 {
            if let stoppedAt, a <= stoppedAt && b >= stoppedAt { continue }
            holes.append("\(a)→\(b)")
        }
        #expect(holes.isEmpty, "\(label): no readings for seconds at \(holes)")
        print("\(label): \(owedIDs.count) spooled readings delivered, \(received.count) received in all, \(duplicates) duplicate deliveries (QoS 1 redeliveries)")
    }
}
