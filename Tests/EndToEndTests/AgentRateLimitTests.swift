import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Issue 12 end to end: tb-sim enforces ThingsBoard's per-device limits (dropping a message over one and closing the
/// session) and answers `getSessionLimits` (or, as a server older than 3.8, leaves it unanswered); the agent asks,
/// paces itself by the server's answer or by its configuration, and drains a backlog without one drop.
@Suite("End to end: the server's rate limits")
struct AgentRateLimitTests {
    /// 20 data points a second and 600 a minute (ThingsBoard's "10:1,300:60" doubled, so that the test is short): a
    /// backlog in one PUBLISH (as the agent sends without limits) would never pass.
    static let profileLimits = """
        [profiles.rate_limits]
        messages = "20:1,600:60"
        telemetry_messages = "20:1,600:60"
        telemetry_data_points = "20:1,600:60"
        """

    /// Where the agent learns the limits: from the server (ThingsBoard 3.8 and later answer `getSessionLimits`), or,
    /// from a server older than 3.8 (which leaves the request unanswered), from `[server.rate_limits]`.
    enum Source: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case server, configured
        var testDescription: String {
            self == .server ? "limits from getSessionLimits" : "a server older than 3.8: limits from [server.rate_limits]"
        }
        var profileExtra: String {
            self == .server ? AgentRateLimitTests.profileLimits : "thingsboard_version = \"3.7\"\n" + AgentRateLimitTests.profileLimits
        }
        var agentExtra: String {
            self == .server ? "" : """
                [server.rate_limits]
                messages = "20:1,600:60"
                telemetry_messages = "20:1,600:60"
                telemetry_data_points = "20:1,600:60"
                """
        }
    }

    @Test("after an outage the agent drains its backlog within the server's limits: no rate-limit drop, every reading once, each source in order",
          arguments: Source.allCases)
    func backlogDrainsWithinTheLimits(source: Source) async throws {
        let sim = try await E2ESim.start(profileExtra: source.profileExtra)
        let board = try BoardCopy()
        // 2 readings a second from the 500 ms sensor, one from the 1 s sensor: 3 data points a second, below the
        // 8 a second the agent allows itself (80 % of 600:60), so that the backlog drains.
        try board.writeConfig(
            port: sim.mqttPort, interval: "1s",
            sensors: BoardCopy.sensors(["cpu_temperature", "temperature"], intervals: ["cpu_temperature": "500ms"]),
            extra: source.agentExtra)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 4 },
                         "no telemetry; agent log:\n\(agent.log)")
            let status = try await agent.status()
            #expect(status["sessionLimitsSource"]?.stringValue == source.rawValue, "\(status.serialized)")
            #expect(status["sessionLimits"]?.stringValue?.contains("data points 20:1,600:60") == true, "\(status.serialized)")

            _ = try await sim.control("POST", "/outage", #"{"seconds":6}"#)
            await pause(.seconds(5))
            let owed = try board.spooledReadings()
            try #require(owed.count >= 10, "too few readings spooled during the outage: \(owed.count)")
            let owedIDs = Set(owed.map(\.id))
            let drained = await eventually(.seconds(40), every: .milliseconds(250)) {
                Set(sim.readings().map(\.id)).isSuperset(of: owedIDs)
            }
            let missing = owedIDs.subtracting(sim.readings().map(\.id)).sorted()
            try #require(drained, "\(missing.count) of \(owedIDs.count) spooled readings never arrived, first \(missing.prefix(5)); agent log:\n\(agent.log.suffix(4000))")
            // Live again after the backlog.
            let lastOwed = owed.map(\.id.ts).max() ?? 0
            try #require(await eventually(.seconds(20)) {
                sim.readings(of: "cpu_temperature").contains { $0.id.ts > lastOwed + 1000 }
            }, "no live telemetry after the replay")

            // Not one message over a limit: tb-sim would have dropped it and closed the session.
            let drops = try #require(try sim.device()?["droppedForRateLimits"])
            #expect(drops["total"]?.int64Value == 0, "tb-sim dropped messages for rate limits: \(drops.serialized); agent log:\n\(agent.log.suffix(4000))")
            #expect(try await agent.status()["rateLimited"]?.int64Value == 0)
            #expect(sim.events("rate_limited").isEmpty, "\(sim.events("rate_limited").map(\.serialized))")

            let events = sim.telemetry()
            // No PUBLISH over 80 % of the smallest data-point window.
            let largest = events.map(\.readings.count).max() ?? 0
            #expect(largest <= 16, "a PUBLISH of \(largest) data points")
            // Every reading once (no session was cut, so nothing was sent again).
            let received = events.flatMap(\.readings)
            #expect(received.count == Set(received.map(\.id)).count, "readings arrived twice")
            for point in owed {
                let arrival = received.first { $0.id == point.id }
                #expect(arrival.map { point.sameValue($0.value) } == true, "\(point) arrived as \(String(describing: arrival))")
            }
            // In order within each source: on each session, the backlog (readings taken before it came up) oldest
            // first and live readings oldest first; live readings may overtake the backlog (they share the budget).
            for session in Set(events.map(\.session)) {
                let stamps = events.filter { $0.session == session }.flatMap(\.readings).map(\.id.ts)
                let split = stamps.contains { boundary in
                    let backlog = stamps.filter { $0 <= boundary }
                    let live = stamps.filter { $0 > boundary }
                    return backlog == backlog.sorted() && live == live.sorted()
                }
                #expect(split, "session \(session): neither the backlog nor the live readings in order: \(stamps)")
            }
            // The drain rate, for the record.
            let outageEnd = (sim.events("outage_ended").first?["ts"]?.int64Value) ?? 0
            let lastArrival = events.filter { $0.readings.contains { owedIDs.contains($0.id) } }.map(\.received).max() ?? 0
            let drainedPoints = events.filter { $0.received > outageEnd && $0.received <= lastArrival }.reduce(0) { $0 + $1.readings.count }
            let rate = Double(drainedPoints) * 1000 / Double(max(1, lastArrival - outageEnd))
            print("rate limits e2e (\(source.testDescription)): \(owedIDs.count) backlogged readings drained in \(lastArrival - outageEnd) ms after the outage (\(drainedPoints) data points, \(Int(rate)) a second; limits 20 a second and 10 a second over a minute), largest PUBLISH \(largest) data points, \(received.count) readings received, 0 rate-limit drops")
        }
    }

    /// A server older than 3.8 that says nothing of its limits, and an agent told nothing either: tb-sim closes the
    /// connection on a PUBLISH over its packet size (as Netty does), the agent takes the unacknowledged publish as a
    /// limit it did not know, halves its batch, backs off, counts it and says once how to fix it, and the backlog
    /// still arrives.
    @Test("a limit nobody told the agent: it halves its batch after the cut, counts it, says once how to fix it, and the backlog arrives")
    func anUnknownLimitIsLearned() async throws {
        // 1536 bytes: above what the agent sends when connected (its client attributes, one round of readings),
        // below the first PUBLISH of a 16-second backlog.
        let sim = try await E2ESim.start(profileExtra: """
            thingsboard_version = "3.7"

            [server]
            max_packet_size = 1536
            """)
        let board = try BoardCopy()
        try board.writeConfig(
            port: sim.mqttPort, interval: "1s",
            sensors: BoardCopy.sensors(["cpu_temperature", "temperature"], intervals: ["cpu_temperature": "500ms"]))
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 4 },
                         "no telemetry; agent log:\n\(agent.log)")
            #expect(try await agent.status()["sessionLimitsSource"]?.stringValue == "configured")

            _ = try await sim.control("POST", "/outage", #"{"seconds":16}"#)
            await pause(.seconds(15))
            let owed = try board.spooledReadings()
            let owedIDs = Set(owed.map(\.id))
            try #require(owed.count >= 40, "too few readings spooled during the outage: \(owed.count)")
            let drained = await eventually(.seconds(90), every: .milliseconds(250)) {
                Set(sim.readings().map(\.id)).isSuperset(of: owedIDs)
            }
            let missing = owedIDs.subtracting(sim.readings().map(\.id)).sorted()
            try #require(drained, "\(missing.count) of \(owedIDs.count) spooled readings never arrived; agent log:\n\(agent.log.suffix(4000))")

            let rateLimited = try await agent.status()["rateLimited"]?.int64Value ?? 0
            #expect(rateLimited >= 1, "the agent never took a cut for a limit; agent log:\n\(agent.log.suffix(4000))")
            let warnings = agent.log.components(separatedBy: "a rate limit or packet-size limit this agent was not told about").count - 1
            #expect(warnings == 1, "the fix was said \(warnings) times; agent log:\n\(agent.log.suffix(4000))")
            #expect(agent.log.contains("Fix: set [server.rate_limits]"))
            #expect(!sim.events("decode_error").isEmpty, "tb-sim never closed a connection for the packet size")
            print("unknown limit e2e: \(owedIDs.count) backlogged readings arrived after \(rateLimited) cut(s), \(sim.events("decode_error").count) oversized PUBLISH(es) refused")
        }
    }
}
