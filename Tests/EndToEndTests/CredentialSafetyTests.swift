import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Issue 10: credentials a downgrade cannot destroy (finding 7) and one re-provisioning budget for the RPC too
/// (finding 11), with real `tb-agent run` processes against tb-sim.
@Suite("End to end: credentials safety")
struct CredentialSafetyTests {
    /// With today's main the agent took the newer file for damage, provisioned again (the device had been deleted)
    /// and overwrote it.
    @Test("a credentials file written by a newer tb-agent is neither used nor replaced: no provisioning, a person asked")
    func newerCredentialsFormat() async throws {
        let sim = try await E2ESim.start()
        let board = try ReprovisionTests.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            #expect(await agent.terminate() == 0)
            _ = try await sim.control("DELETE", "/devices/\(simulatedDeviceName)")
            let written = try #require(board.credentialsData())
            let newer = Data(String(decoding: written, as: UTF8.self).replacingOccurrences(of: "\"format\": 1,", with: "\"format\": 2,").utf8)
            #expect(newer != written)
            try newer.write(to: board.credentialsURL)
            let requests = sim.provisionRequests().count
            let connects = sim.deviceConnects().count

            let restarted = try await AgentProcess.start(board)
            agents.append(restarted)
            try #require(await eventuallyAsync(.seconds(20), every: .milliseconds(250)) {
                (try? await restarted.status())?["state"]?.stringValue == "needs-attention"
            }, "the agent does not ask for a person; agent log:\n\(restarted.log.suffix(3000))")
            let status = try await restarted.status()
            #expect(status["led"]?.stringValue == "attention")
            #expect(status["problem"]?.stringValue?.contains("newer tb-agent (format 2") == true)
            #expect(status["problem"]?.stringValue?.contains("move the file away") == true)
            await pause(.seconds(3))
            #expect(sim.provisionRequests().count == requests, "the agent provisioned over a newer credentials file")
            #expect(sim.deviceConnects().count == connects, "the agent connected with credentials it cannot read")
            #expect(board.credentialsData() == newer, "the newer credentials file was changed")
            #expect(restarted.log.contains("written by a newer tb-agent"))
        }
    }

    /// With today's main 300 `reprovision` RPCs made 19 provisioning sessions in one second.
    @Test("a flood of reprovision RPCs starts at most the hourly budget of provisioning sessions; the others are told when")
    func reprovisionRPCFlood() async throws {
        let sim = try await E2ESim.start()
        let board = try ReprovisionTests.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, token) = try await ReprovisionTests.online(board, sim, &agents)
            let before = sim.provisionRequests().count
            var replies: [JSONValue] = []
            for _ in 0..<30 { replies.append(try await sim.rpc("reprovision")) }
            // Every started one gets FAILURE (the name exists): wait until they have all been answered.
            try #require(await eventually(.seconds(20)) { sim.provisionDecisions().count == sim.provisionRequests().count })
            await pause(.seconds(1))
            let sessions = sim.provisionRequests().count - before
            #expect(sessions >= 1 && sessions <= 4, "\(sessions) provisioning sessions for 30 RPCs")
            let refused = replies.filter { $0["retryAfterSeconds"] != nil }
            #expect(!refused.isEmpty, "no reply says when the next re-provisioning is allowed: \(replies.map(\.serialized))")
            for reply in refused {
                #expect(reply["error"]?.stringValue?.contains("at most 4 an hour") == true)
                #expect((reply["retryAfterSeconds"]?.int64Value ?? 0) > 3000)
            }
            #expect(agent.log.contains("the next one is allowed in"))
            // Still online with the same credentials.
            #expect(board.storedToken() == token)
            let readings = sim.readings().count
            try #require(await eventually(.seconds(10)) { sim.readings().count > readings + 4 })
        }
    }
}
