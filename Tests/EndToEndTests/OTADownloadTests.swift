import AgentTestSupport
import Foundation
import TBChecksum
import TBJSON
import Testing

/// Issue 13, the download: a real tb-agent fetches a package tb-sim serves as ThingsBoard does, resumes it after an
/// outage and after `kill -9`, and verifies it. The server's limits (20 messages a second, 600 a minute) pace the
/// chunk requests, so a 256 KiB package in 2 KiB chunks takes about ten seconds: long enough to interrupt.
/// Serialized: five agents downloading at once on a 2-core machine starve the in-process runtime tests' wall-clock waits.
@Suite("End to end: OTA download", .serialized)
struct OTADownloadEndToEndTests {
    static let package: [UInt8] = (0..<(256 << 10)).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 9)) }
    static let chunkSize = 2 << 10

    static func board(_ sim: E2ESim) throws -> BoardCopy {
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]),
                              extra: "[ota]\nchunk_size = \"2KiB\"\n")
        return board
    }

    static func start() async throws -> E2ESim {
        try await E2ESim.start(profileExtra: AgentRateLimitTests.profileLimits)
    }

    /// Uploads the package (checksum computed by tb-sim, or the `wrongChecksum` given) and assigns it to the device.
    static func assign(_ sim: E2ESim, algorithm: String = "SHA256", wrongChecksum: String? = nil) async throws {
        var body = #"{"title":"tb-agent","version":"9.9.9","type":"FIRMWARE","checksumAlgorithm":"\#(algorithm)""#
        if let wrongChecksum { body += #","checksum":"\#(wrongChecksum)","acceptWrongChecksum":true"# }
        body += #","data":"\#(Data(package).base64EncodedString())"}"#
        let upload = try await sim.control("POST", "/otaPackages", body)
        let id = try #require(upload.body["id"]?.stringValue, "upload: \(upload.status) \(upload.body)")
        let assigned = try await sim.control("POST", "/devices/\(simulatedDeviceName)/firmware", #"{"packageId":"\#(id)"}"#)
        try #require(assigned.status == 200, "assignment: \(assigned.body)")
    }

    /// The chunk requests tb-sim served, in order: (session, request id, index).
    static func chunks(_ sim: E2ESim) -> [(session: Int64, requestID: String, index: Int)] {
        sim.events("ota_chunk").map {
            ($0["session"]?.int64Value ?? -1, $0["requestId"]?.stringValue ?? "", Int($0["chunk"]?.int64Value ?? -1))
        }
    }

    static func states(_ sim: E2ESim) async throws -> [String] {
        let body = try await sim.control("GET", "/devices/\(simulatedDeviceName)/fwStates").body
        return body["firmware"]?["states"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Downloaded whole and verified; then checked before it is handed over, which this package (bytes, not a
    /// program) fails: the agent says so and removes it.
    static func verified(_ sim: E2ESim, _ agent: AgentProcess) async throws {
        let done = await eventuallyAsync(.seconds(90)) { (try? await Self.states(sim))?.last == "FAILED" }
        let states = try await Self.states(sim)
        try #require(done, "not verified: \(states); agent log:\n\(agent.log.suffix(4000))")
        #expect(Array(states.prefix(3)) == ["QUEUED", "INITIATED", "DOWNLOADING"])
        #expect(Array(states.suffix(3)) == ["DOWNLOADED", "VERIFIED", "FAILED"])
        #expect(states.filter { $0 == "FAILED" }.count == 1)
        let error = try await Self.lastError(sim)
        #expect(error.contains("is not a program (no ELF header)"), "fw_error: \(error)")
        #expect(!FileManager.default.fileExists(atPath: agent.board.stateDirectory.appendingPathComponent("ota/package.part").path))
        #expect(!FileManager.default.fileExists(atPath: agent.board.stateDirectory.appendingPathComponent("ota/ready").path))
    }

    static func lastError(_ sim: E2ESim) async throws -> String {
        let history = try await sim.control("GET", "/devices/\(simulatedDeviceName)/fwStates").body["firmware"]?["history"]?.arrayValue ?? []
        return history.compactMap { $0["values"]?["fw_error"]?.stringValue }.last ?? ""
    }

    @Test("a package assigned to the device is downloaded in chunks and verified; telemetry keeps flowing; status and LED show the download")
    func downloadsAndVerifies() async throws {
        let sim = try await Self.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            try await Self.assign(sim, algorithm: "MURMUR3_128")
            try #require(await eventuallyAsync(.seconds(20)) {
                let status = try? await agent.status()
                return status?["ota"]?["state"]?.stringValue == "downloading" && status?["led"]?.stringValue == "updating"
            }, "status never showed the download; agent log:\n\(agent.log.suffix(3000))")
            try await Self.verified(sim, agent)
            let chunks = Self.chunks(sim)
            #expect(chunks.map(\.index) == Array(0..<128), "each chunk once, in order")
            let first = try #require(sim.events("ota_chunk").first?["ts"]?.int64Value)
            let last = try #require(sim.events("ota_chunk").last?["ts"]?.int64Value)
            let during = sim.readings(of: "cpu_temperature").count { $0.id.ts > first && $0.id.ts < last }
            #expect(during >= 2, "telemetry stopped during the download (\(last - first) ms)")
            try #require(await eventuallyAsync(.seconds(10)) { (try? await agent.status())?["ota"]?["state"]?.stringValue == "failed" })
            let config = board.configURL.path
            let human = try await offPool { try TestSupport.tbAgent(["status", "--config", config]) }
            #expect(human.stdout.contains("firmware:    tb-agent 0.1.0; update tb-agent 9.9.9 FAILED: tb-agent 9.9.9 (262144 bytes, MURMUR3_128) is not a program"), "\(human.stdout)")
        }
    }

    @Test("a checksum mismatch is FAILED with an fw_error that says what to do, and the partial file is removed")
    func checksumMismatch() async throws {
        let sim = try await Self.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            try await Self.assign(sim, wrongChecksum: String(repeating: "0", count: 64))
            let failed = await eventuallyAsync(.seconds(90)) { (try? await Self.states(sim))?.last == "FAILED" }
            let states = try await Self.states(sim)
            try #require(failed, "no FAILED: \(states); agent log:\n\(agent.log.suffix(3000))")
            #expect(Array(states.suffix(2)) == ["DOWNLOADED", "FAILED"])
            let error = try await Self.lastError(sim)
            #expect(error.hasPrefix("checksum mismatch"), "fw_error: \(error)")
            #expect(error.contains("upload the package again"))
            #expect(!FileManager.default.fileExists(atPath: board.stateDirectory.appendingPathComponent("ota/package.part").path))
            #expect(agent.isRunning)
        }
    }

    /// tb-sim, an online agent and the package assigned; returns once `chunks` chunks were served.
    static func midDownload(_ chunks: Int, _ body: (E2ESim, BoardCopy, AgentProcess, inout [AgentProcess]) async throws -> Void) async throws {
        let sim = try await Self.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            let (agent, _) = try await ReprovisionTests.online(board, sim, &agents)
            try await Self.assign(sim)
            try #require(await eventually(.seconds(40)) { Self.chunks(sim).count >= chunks }, "too slow; agent log:\n\(agent.log.suffix(3000))")
            try await body(sim, board, agent, &agents)
        }
    }

    @Test("an outage mid-download: the next session asks with a new request id for the next missing chunk, never chunk 0 again")
    func resumesAfterOutage() async throws {
        try await Self.midDownload(30) { sim, _, agent, _ in
            _ = try await sim.control("POST", "/outage", #"{"seconds":3}"#)
            let before = Self.chunks(sim)
            try await Self.verified(sim, agent)
            let chunks = Self.chunks(sim)
            let firstSession = try #require(before.first?.session)
            let cut = try #require(before.last?.index)
            let later = chunks.filter { $0.session != firstSession }
            let resumedAt = try #require(later.first, "no chunk after the outage")
            #expect(resumedAt.index == cut || resumedAt.index == cut + 1, "resumed at \(resumedAt.index), the outage came after chunk \(cut)")
            #expect(resumedAt.requestID != before.last?.requestID, "the request id was reused in a new session")
            #expect(!later.contains { $0.index == 0 }, "started again from zero")
        }
    }

    @Test("kill -9 mid-download: the restarted agent resumes from the durable part, never from chunk 0")
    func resumesAfterRestart() async throws {
        // Past the first sync (128 KiB: 64 chunks).
        try await Self.midDownload(80) { sim, board, agent, agents in
            await agent.kill9()
            let before = Self.chunks(sim)
            let restarted = try await AgentProcess.start(board)
            agents.append(restarted)
            try await Self.verified(sim, restarted)
            let later = Array(Self.chunks(sim).dropFirst(before.count))
            let resumedAt = try #require(later.first?.index, "no chunk after the restart")
            #expect(resumedAt >= 64 && resumedAt <= (before.last?.index ?? 0) + 1, "resumed at chunk \(resumedAt)")
            #expect(!later.contains { $0.index == 0 })
            #expect(restarted.log.contains("resuming the download"))
        }
    }

    @Test("a full disk mid-download (files limited to 64 KiB) is FAILED with the reason, the partial file removed, the agent still publishing")
    func fullDisk() async throws {
        let sim = try await Self.start()
        let board = try Self.board(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            // Provisioned first with no limit (the credentials), then run with every file capped at 64 KiB.
            let provisioned = try TestSupport.tbAgent(["provision", "--config", board.configURL.path])
            try #require(provisioned.status == 0, "\(provisioned.stderr)")
            let agent = try await AgentProcess.start(board, fileSizeLimit: 128)
            agents.append(agent)
            try #require(await eventually(.seconds(30)) { !sim.readings().isEmpty }, "no telemetry; agent log:\n\(agent.log)")
            try await Self.assign(sim)
            let failed = await eventuallyAsync(.seconds(60)) { (try? await Self.states(sim))?.last == "FAILED" }
            let states = try await Self.states(sim)
            try #require(failed, "no FAILED: \(states); agent log:\n\(agent.log.suffix(3000))")
            let history = try await sim.control("GET", "/devices/\(simulatedDeviceName)/fwStates").body["firmware"]?["history"]?.arrayValue ?? []
            let error = history.compactMap { $0["values"]?["fw_error"]?.stringValue }.last ?? ""
            #expect(error.hasPrefix("the disk is full"), "fw_error: \(error)")
            #expect(!FileManager.default.fileExists(atPath: board.stateDirectory.appendingPathComponent("ota/package.part").path))
            let before = sim.readings(of: "cpu_temperature").count
            try #require(await eventually(.seconds(15)) { sim.readings(of: "cpu_temperature").count > before + 2 }, "telemetry stopped")
            #expect(agent.isRunning)
        }
    }
}
