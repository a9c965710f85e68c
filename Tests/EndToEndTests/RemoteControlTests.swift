import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// What the server can ask: shared-attribute intervals and the RPC methods.
@Suite("End to end: shared attributes and RPC")
struct RemoteControlTests {
    /// Median gap between consecutive timestamps (ms).
    static func medianGap(_ times: [Int64]) -> Int64? {
        let sorted = Set(times).sorted()
        let gaps = zip(sorted, sorted.dropFirst()).map { $1 - $0 }.sorted()
        return gaps.isEmpty ? nil : gaps[gaps.count / 2]
    }

    @Test("shared attributes change the interval for all sensors and per sensor, without a restart, and are requested again on connect")
    func sharedAttributeIntervals() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        // An hour between readings, as configured: anything faster comes from the shared attributes.
        try board.writeConfig(port: sim.mqttPort, interval: "1h", sensors: BoardCopy.sensors(["temperature", "cpu_temperature"]))
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { !sim.readings(of: "temperature").isEmpty },
                         "no telemetry; agent log:\n\(agent.log)")
            #expect(sim.readings(of: "temperature").count == 1)

            // `interval` for every sensor, as a number of seconds.
            let pushed = wallClockMilliseconds()
            let (status, body) = try await sim.control("POST", "/devices/\(simulatedDeviceName)/attributes", #"{"interval":0.2}"#)
            #expect(status == 200, "\(body.serialized)")
            try #require(await eventually(.seconds(20)) { sim.readings(of: "temperature").count >= 12 },
                         "the interval change did not take effect; agent log:\n\(agent.log.suffix(3000))")
            let fast = sim.readings(of: "temperature").map(\.id.ts).filter { $0 >= pushed }
            let gap = try #require(Self.medianGap(fast))
            #expect(gap >= 150 && gap <= 1000, "readings \(gap) ms apart after interval = 0.2")

            // `interval_<sensor>` beats `interval`: temperature back to an hour, cpu_temperature stays fast.
            _ = try await sim.control("POST", "/devices/\(simulatedDeviceName)/attributes", #"{"interval_temperature":"1h"}"#)
            let cpuCount = sim.readings(of: "cpu_temperature").count
            try #require(await eventually(.seconds(20)) { sim.readings(of: "cpu_temperature").count >= cpuCount + 20 })
            // Over the last ten fast cpu_temperature readings (about 2 s), temperature has at most one: the first
            // round of its new hourly sampler. At 200 ms it would have about ten.
            let lastCPU = sim.readings(of: "cpu_temperature").suffix(10).map(\.id.ts)
            let window = try #require(lastCPU.min())...(try #require(lastCPU.max()))
            let temperatures = sim.readings(of: "temperature").filter { window.contains($0.id.ts) }
            #expect(temperatures.count <= 1, "temperature still every \(Self.medianGap(temperatures.map(\.id.ts)) ?? 0) ms")

            // A restart asks for the shared attributes on connect: the fast interval applies without a push.
            #expect(await agent.terminate() == 0)
            let restarted = wallClockMilliseconds()
            agents.append(try await AgentProcess.start(board))
            try #require(await eventually(.seconds(30)) {
                sim.readings(of: "cpu_temperature").filter { $0.id.ts >= restarted }.count >= 10
            }, "the restarted agent did not apply the stored shared attributes; agent log:\n\(agents[1].log)")
            #expect(sim.readings(of: "temperature").filter { $0.id.ts >= restarted }.count <= 2)
        }
    }

    @Test("RPC: getStatus, sampleNow, identify and reprovision answer; unknown methods and bad params get an error reply")
    func rpcMethods() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        let sensors = ["door_closed", "temperature", "cpu_temperature", "humidity"]
        try board.writeConfig(port: sim.mqttPort, interval: "1h", sensors: BoardCopy.sensors(sensors))
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]
            try #require(await eventually(.seconds(30)) { !sim.readings(of: "temperature").isEmpty },
                         "no telemetry; agent log:\n\(agent.log)")

            // getStatus: state, uptime, spool depth and each sensor's health.
            let status = try await sim.rpc("getStatus")
            #expect(status["state"]?.stringValue == "online", "\(status.serialized)")
            #expect((status["uptimeSeconds"]?.int64Value ?? -1) >= 0, "\(status.serialized)")
            #expect((status["spoolDepth"]?.int64Value ?? -1) >= 0, "\(status.serialized)")
            let health = try #require(status["sensors"]?.objectMembers, "\(status.serialized)")
            #expect(Set(health.map(\.0)) == Set(sensors))
            #expect(health.allSatisfy { $0.1["status"]?.stringValue != nil }, "\(status.serialized)")

            // sampleNow: a round of every sensor now, though the interval is an hour.
            let before = sim.readings(of: "temperature").count
            let sampled = try await sim.rpc("sampleNow")
            #expect(sampled["sampling"]?.int64Value == Int64(sensors.count), "\(sampled.serialized)")
            try #require(await eventually(.seconds(15)) { sim.readings(of: "temperature").count > before },
                         "sampleNow published nothing")
            #expect(sim.readings(of: "humidity").count >= 2)

            // identify: the LED shows the identify pattern for the time asked, then online again.
            let identify = try await sim.rpc("identify", params: #"{"seconds":4}"#)
            #expect(identify["identify"]?.stringValue == "4s", "\(identify.serialized)")
            #expect(try await sim.rpc("getStatus")["led"]?.stringValue == "identify")
            try #require(await eventuallyAsync(.seconds(15)) { try await sim.rpc("getStatus")["led"]?.stringValue == "online" },
                         "the identify pattern did not end")

            // Bad requests get an error reply, and the agent goes on.
            let unknown = try await sim.rpc("reboot")
            #expect(unknown["error"]?.stringValue?.contains("unknown method") == true, "\(unknown.serialized)")
            for params in [#""soon""#, #"{"seconds":-1}"#, #"{"seconds":"a while"}"#, "[1,2]"] {
                let reply = try await sim.rpc("identify", params: params)
                #expect(reply["error"]?.stringValue != nil, "identify \(params) answered \(reply.serialized)")
            }
            #expect(try await sim.rpc("getStatus")["state"]?.stringValue == "online")

            // reprovision: started; the name exists, so the server says FAILURE and the old credentials stay.
            let credentials = board.credentialsData()
            let reprovision = try await sim.rpc("reprovision")
            #expect(reprovision["reprovision"]?.stringValue == "started", "\(reprovision.serialized)")
            try #require(await eventually(.seconds(30)) { sim.provisionDecisions().count >= 2 },
                         "the reprovision RPC did not provision; agent log:\n\(agent.log.suffix(3000))")
            #expect(sim.provisionDecisions()[1]["status"]?.stringValue == "FAILURE")
            try #require(await eventuallyAsync(.seconds(20)) {
                let status = try await sim.rpc("getStatus")
                return status["state"]?.stringValue == "online" && status["reprovisioning"] == nil
            })
            #expect(board.credentialsData() == credentials)
            #expect(agent.isRunning)
        }
    }
}
