import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Issue 12, claiming: `tb-agent claim` against tb-sim, then a person's claim through tb-sim's copy of
/// ThingsBoard's claim endpoint.
@Suite("End to end: claiming")
struct ClaimingTests {
    static let secret = "e2e-claim-s3cret"

    static func board(_ sim: E2ESim, claiming: Bool = true) throws -> BoardCopy {
        let board = try BoardCopy()
        try board.writeConfig(
            port: sim.mqttPort, sensors: BoardCopy.sensors(["cpu_temperature"]),
            extra: claiming ? "[claiming]\nsecret_file = \"claim-secret\"\nduration = \"20m\"\n" : "")
        try "\(Self.secret)\n".write(to: board.url("claim-secret"), atomically: true, encoding: .utf8)
        chmod(board.url("claim-secret").path, 0o600)
        return board
    }

    func claim(_ board: BoardCopy, _ extra: [String] = []) throws -> CommandResult {
        try TestSupport.tbAgent(["claim", "--config", board.configURL.path] + extra)
    }

    @Test("tb-agent claim: the request reaches tb-sim with the secret and window; the right secret claims, a wrong one does not; nothing prints the secret")
    func claimThenAPersonClaims() async throws {
        let sim = try await E2ESim.start()
        try await withProcesses({ [] }, sim) {
        let board = try Self.board(sim)

        let unprovisioned = try self.claim(board)
        #expect(unprovisioned.status == 3, "\(unprovisioned.stderr)")
        #expect(unprovisioned.stderr.contains("tb-agent provision"))

        let provisioned = try TestSupport.tbAgent(["provision", "--config", board.configURL.path])
        try #require(provisioned.status == 0, "\(provisioned.stderr)")

        let result = try self.claim(board, ["--duration", "10m", "--log-level", "debug"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("does not say whether it accepted it"))
        #expect(result.stdout.contains("Within 10m"))
        #expect(result.stdout.contains("\"\(simulatedDeviceName)\""))
        #expect(!result.stdout.contains(Self.secret) && !result.stderr.contains(Self.secret))

        let pending = try #require(try await sim.control("GET", "/devices/\(simulatedDeviceName)/claim").body["pending"])
        #expect(pending["secretKey"]?.stringValue == Self.secret)
        #expect((pending["expiresAt"]?.int64Value ?? 0) - (pending["storedAt"]?.int64Value ?? 0) == 600_000)

        // A second request in the window changes nothing (ThingsBoard's put-if-absent); the agent still exits 0.
        let again = try self.claim(board)
        #expect(again.status == 0)
        #expect(try await sim.control("GET", "/devices/\(simulatedDeviceName)/claim").body["pending"] == pending)

        let wrong = try await sim.control("POST", "/customer/device/\(simulatedDeviceName)/claim", #"{"secretKey":"guess"}"#)
        #expect(wrong.status == 400 && wrong.body == .string("FAILURE"))
        // The failed attempt evicted the claim, as in ThingsBoard: the device asks again (default window: 20m).
        #expect(try self.claim(board).status == 0)
        let renewed = try #require(try await sim.control("GET", "/devices/\(simulatedDeviceName)/claim").body["pending"])
        #expect((renewed["expiresAt"]?.int64Value ?? 0) - (renewed["storedAt"]?.int64Value ?? 0) == 1_200_000)
        let right = try await sim.control(
            "POST", "/customer/device/\(simulatedDeviceName)/claim", "{\"secretKey\":\"\(Self.secret)\"}")
        #expect(right.status == 200)
        #expect(right.body["response"]?.stringValue == "SUCCESS")
        #expect(!sim.events("claim").description.contains(Self.secret), "tb-sim's event log shows the secret in full")
        }
    }

    @Test("without [claiming] claim exits 78 naming the table; a bad --duration is a usage error; the secret is no option")
    func configurationAndUsageErrors() async throws {
        let sim = try await E2ESim.start()
        try await withProcesses({ [] }, sim) {
        let board = try Self.board(sim, claiming: false)
        let missing = try self.claim(board)
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("no [claiming] table"))
        let short = try self.claim(board, ["--duration", "1s"])
        #expect(short.status == 64)
        #expect(short.stderr.contains("out of range"))
        let secretOption = try self.claim(board, ["--secret", "x"])
        #expect(secretOption.status == 64)
        }
    }

    @Test("three short presses of the running agent's button send one claim request; the LED shows claiming; the log names no secret")
    func buttonGesture() async throws {
        let sim = try await E2ESim.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            // Pressed on a thread of its own: paused on a busy cooperative pool, a press could last past the 0.6 s
            // of a short press, or the three past the gesture's 2 s.
            try await offPool {
                for _ in 0..<3 {
                    try board.write("gpio/GPIO27", "0\n")
                    usleep(150_000)
                    try board.write("gpio/GPIO27", "1\n")
                    usleep(200_000)
                }
            }
            try #require(await eventuallyAsync(.seconds(10)) {
                (try? await sim.control("GET", "/devices/\(simulatedDeviceName)/claim"))?.body["pending"]?["secretKey"]?.stringValue == Self.secret
            }, "no claim registered; agent log:\n\(agent.log.suffix(3000))")
            let pending = try #require(try await sim.control("GET", "/devices/\(simulatedDeviceName)/claim").body["pending"])
            #expect((pending["expiresAt"]?.int64Value ?? 0) - (pending["storedAt"]?.int64Value ?? 0) == 1_200_000)
            try #require(await eventuallyAsync(.seconds(10)) { (try? await agent.status())?["led"]?.stringValue == "claiming" })
            try #require(await eventually(.seconds(10)) { agent.log.contains("claim request sent with the button") })
            #expect(!agent.log.contains(Self.secret))
            #expect(sim.provisionRequests().count == 1, "the short presses re-provisioned")
            let right = try await sim.control(
                "POST", "/customer/device/\(simulatedDeviceName)/claim", "{\"secretKey\":\"\(Self.secret)\"}")
            #expect(right.status == 200)
            // tb-agent claim beside the running agent: its session replaces the agent's for a moment, and it says so.
            let config = board.configURL.path
            let beside = try await offPool { try TestSupport.tbAgent(["claim", "--config", config]) }
            #expect(beside.status == 0, "\(beside.stderr)")
            #expect(beside.stderr.contains("warning: the agent is running"))
            try #require(await eventuallyAsync(.seconds(20)) { (try? await agent.status())?["state"]?.stringValue == "online" })
        }
    }
}
