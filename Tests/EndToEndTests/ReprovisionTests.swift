import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Re-provisioning that cannot brick a board: revoked credentials, and the long press with the name taken or the
/// device deleted on the server.
@Suite("End to end: re-provisioning")
struct ReprovisionTests {
    static func board(_ sim: E2ESim) throws -> BoardCopy {
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "250ms", sensors: BoardCopy.sensors(["cpu_temperature", "temperature"]))
        return board
    }

    /// Starts the agent and waits for its first telemetry; returns the agent and the token it stored.
    static func online(_ board: BoardCopy, _ sim: E2ESim, _ agents: inout [AgentProcess]) async throws -> (AgentProcess, String) {
        let agent = try await AgentProcess.start(board)
        agents.append(agent)
        try #require(await eventually(.seconds(30)) { !sim.readings().isEmpty }, "no telemetry; agent log:\n\(agent.log)")
        let token = try #require(board.storedToken(), "no credentials stored")
        return (agent, token)
    }

    static func ts(_ event: JSONValue) -> Int64 { event["ts"]?.int64Value ?? 0 }

    /// Telemetry readings received after `time` (server clock), with the session that carried them.
    static func telemetry(after time: Int64, _ sim: E2ESim) -> [TelemetryEvent] {
        sim.telemetry().filter { $0.received > time }
    }

    @Test("revoked credentials: CONNACK 5 three times, a re-provisioning within 30 s, FAILURE retried boundedly; once the device is deleted the new credentials are stored and used")
    func revokedCredentials() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, oldToken) = try await Self.online(board, sim, &agents)
            let oldCredentials = board.credentialsData()

            _ = try await sim.control("POST", "/devices/\(simulatedDeviceName)/revoke")
            try #require(await eventually(.seconds(45)) { sim.provisionRequests().count >= 2 },
                         "no re-provisioning after the revocation; agent log:\n\(agent.log)")
            let rejections = sim.deviceConnects().filter { $0["returnCode"]?.int64Value == 5 }
            let firstRejection = try #require(rejections.first.map(Self.ts))
            let reprovision = Self.ts(sim.provisionRequests()[1])
            #expect(rejections.filter { Self.ts($0) < reprovision }.count >= 3, "re-provisioned before three rejections")
            #expect(reprovision - firstRejection <= 30_000, "the first re-provisioning came \(reprovision - firstRejection) ms after the first rejection")
            // ThingsBoard answers FAILURE: the name exists (revoking keeps the device).
            try #require(await eventually(.seconds(15)) { sim.provisionDecisions().count >= 2 })
            #expect(sim.provisionDecisions()[1]["status"]?.stringValue == "FAILURE")
            #expect(board.credentialsData() == oldCredentials, "a refused re-provisioning changed credentials.json")

            // Retried, but boundedly: again only after three more rejections, never in a tight loop.
            try #require(await eventually(.seconds(45)) { sim.provisionRequests().count >= 3 },
                         "the board gave up re-provisioning; agent log:\n\(agent.log)")
            let again = Self.ts(sim.provisionRequests()[2])
            let between = sim.deviceConnects().filter { $0["returnCode"]?.int64Value == 5 && Self.ts($0) > reprovision && Self.ts($0) < again }
            #expect(between.count >= 3, "re-provisioned again after \(between.count) rejections")
            #expect(again - reprovision >= 5_000, "re-provisioning attempts \(again - reprovision) ms apart")

            // Deleted on the server: the next re-provisioning creates the device again.
            let deleted = wallClockMilliseconds()
            _ = try await sim.control("DELETE", "/devices/\(simulatedDeviceName)")
            try #require(await eventually(.seconds(60)) { (board.storedToken() ?? oldToken) != oldToken },
                         "no new credentials stored after the deletion; agent log:\n\(agent.log.suffix(4000))")
            let newToken = try #require(board.storedToken())
            #expect(try sim.device()?["credentials"]?["token"]?.stringValue == newToken)
            #expect(sim.provisionDecisions().last?["status"]?.stringValue == "SUCCESS")
            // …and used: telemetry flows on a session opened with the new token.
            let sessions = sim.sessionUsernames()
            try #require(await eventually(.seconds(20)) {
                Self.telemetry(after: deleted, sim).contains { sim.sessionUsernames()[$0.session] == masked(newToken) }
            }, "no telemetry with the new credentials; sessions \(sessions)")
            let requests = sim.provisionRequests().count
            let readings = sim.readings().count
            try #require(await eventually(.seconds(20)) { sim.readings().count >= readings + 8 })
            #expect(sim.provisionRequests().count == requests, "provisioned again after the new credentials worked")
            #expect(board.storedToken() == newToken)
        }
    }

    @Test("a long press while the name is taken keeps the old credentials working: same session, same credentials.json, error LED then online")
    func longPressNameTaken() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, token) = try await Self.online(board, sim, &agents)
            let credentials = board.credentialsData()
            let session = try #require(sim.telemetry().last?.session)

            try await board.longPress(.milliseconds(1600))  // reprovision_hold is 1s
            try #require(await eventually(.seconds(30)) { sim.provisionDecisions().count >= 2 },
                         "the long press did not re-provision; agent log:\n\(agent.log)")
            let decision = sim.provisionDecisions()[1]
            #expect(decision["status"]?.stringValue == "FAILURE")
            let refusedAt = Self.ts(decision)

            // The error pattern shows for a while, then the LED says online again.
            #expect(await eventuallyAsync(.seconds(5), every: .milliseconds(100)) {
                (try? await agent.status())?["led"]?.stringValue == "attention"
            }, "no error pattern after the refusal")
            try #require(await eventuallyAsync(.seconds(20), every: .milliseconds(500)) {
                (try? await agent.status())?["led"]?.stringValue == "online"
            }, "the LED did not return to online")

            // Still publishing with the old token on the session that never closed.
            try #require(await eventually(.seconds(20)) { Self.telemetry(after: refusedAt + 500, sim).count >= 4 })
            let after = Self.telemetry(after: refusedAt, sim)
            #expect(after.allSatisfy { $0.session == session }, "telemetry moved to sessions \(Set(after.map(\.session)))")
            #expect(sim.sessionUsernames()[session] == masked(token))
            #expect(board.credentialsData() == credentials, "credentials.json changed")
            #expect(try sim.device()?["credentials"]?["token"]?.stringValue == token)
        }
    }

    @Test("a long press after the device was deleted on the server gets new credentials, uses them, and keeps them across a restart")
    func longPressAfterDeletion() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, oldToken) = try await Self.online(board, sim, &agents)

            let deleted = wallClockMilliseconds()
            _ = try await sim.control("DELETE", "/devices/\(simulatedDeviceName)")
            try await board.longPress(.milliseconds(1600))
            try #require(await eventually(.seconds(30)) { (board.storedToken() ?? oldToken) != oldToken },
                         "no new credentials stored; agent log:\n\(agent.log.suffix(4000))")
            #expect(agent.log.contains("long press"), "the re-provisioning did not come from the button")
            let newToken = try #require(board.storedToken())
            #expect(try sim.device()?["credentials"]?["token"]?.stringValue == newToken)
            try #require(await eventually(.seconds(20)) {
                Self.telemetry(after: deleted, sim).contains { sim.sessionUsernames()[$0.session] == masked(newToken) }
            }, "no telemetry with the new credentials; agent log:\n\(agent.log.suffix(4000))")

            // Kept: a restart connects with them and does not provision again.
            #expect(await agent.terminate() == 0)
            let requests = sim.provisionRequests().count
            let restarted = wallClockMilliseconds()
            agents.append(try await AgentProcess.start(board))
            try #require(await eventually(.seconds(30)) {
                Self.telemetry(after: restarted, sim).contains { sim.sessionUsernames()[$0.session] == masked(newToken) }
            }, "no telemetry with the new credentials after a restart; agent log:\n\(agents[1].log)")
            #expect(sim.provisionRequests().count == requests)
            #expect(board.storedToken() == newToken)
        }
    }

    /// Issue 10, finding 2: one network blip during re-provisioning locked the board out. The agent discarded the
    /// new credentials on any failure of their first connect, went back to the old (deleted) ones, and ThingsBoard
    /// answered FAILURE to every later re-provisioning (the device exists, with the discarded credentials).
    @Test("the first connects after a re-provisioning are dropped: the new credentials stay stored, are tried again and end up in use, no person needed")
    func droppedFirstConnectAfterReprovisioning() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, oldToken) = try await Self.online(board, sim, &agents)
            // The next two CONNECTs with the credentials the next provisioning issues are dropped (no CONNACK).
            let armed = try await sim.control("POST", "/refuse-connects", #"{"count":2,"afterProvisioning":true}"#)
            try #require(armed.status == 200, "tb-sim refused the set-up: \(armed.body.serialized)")

            let deleted = wallClockMilliseconds()
            _ = try await sim.control("DELETE", "/devices/\(simulatedDeviceName)")
            try await board.longPress(.milliseconds(1600))
            try #require(await eventually(.seconds(30)) {
                let decisions = sim.provisionDecisions()
                return decisions.count >= 2 && decisions.last?["status"]?.stringValue == "SUCCESS"
            },
                         "no successful re-provisioning; agent log:\n\(agent.log.suffix(4000))")
            let newToken = try #require(try sim.device()?["credentials"]?["token"]?.stringValue)
            #expect(newToken != oldToken)

            // Both first connects with the new credentials were dropped…
            try #require(await eventually(.seconds(20)) {
                sim.deviceConnects().filter { $0["kind"]?.stringValue == "dropped" }.count == 2
            }, "the new credentials were not tried twice; agent log:\n\(agent.log.suffix(4000))")
            let dropped = sim.deviceConnects().filter { $0["kind"]?.stringValue == "dropped" }
            #expect(dropped.allSatisfy { $0["username"]?.stringValue == masked(newToken) })
            // …and the agent kept them, tried again, and publishes with them.
            try #require(await eventually(.seconds(30)) {
                Self.telemetry(after: deleted, sim).contains { sim.sessionUsernames()[$0.session] == masked(newToken) }
            }, "no telemetry with the new credentials after the dropped connects; agent log:\n\(agent.log.suffix(4000))")
            #expect(board.storedToken() == newToken)
            #expect(!FileManager.default.fileExists(atPath: board.stateDirectory.appendingPathComponent("credentials.pending.json").path),
                    "the pending generation was not committed")
            #expect(agent.log.contains("stored (pending until they connect)"))
            // No person needed: online, nothing more asked of the server.
            let requests = sim.provisionRequests().count
            try #require(await eventuallyAsync(.seconds(10), every: .milliseconds(250)) {
                (try? await agent.status())?["led"]?.stringValue == "online"
            }, "the LED does not say online")
            #expect(sim.provisionRequests().count == requests)
            let refused = sim.provisionDecisions().filter { $0["status"]?.stringValue == "FAILURE" }
            #expect(refused.isEmpty, "the agent provisioned again after the new credentials were issued")
        }
    }
}
