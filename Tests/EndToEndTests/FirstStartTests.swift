import AgentTestSupport
import Foundation
import TBJSON
import Testing

@Suite("End to end: first start and restart")
struct FirstStartTests {
    /// The values the simulated board's sysroot holds, computed from its files as the kernel ABIs define them.
    static func expectedValues(_ board: BoardCopy) throws -> [String: JSONValue] {
        func millis(_ text: String) throws -> Double {
            guard let value = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw TestSupportError("not a number: \(text)")
            }
            return value / 1000
        }
        let w1 = try board.read("sysroot/sys/bus/w1/devices/28-00000a1b2c3d/w1_slave")
        let t = try #require(w1.range(of: "t=")).upperBound
        return [
            "temperature": .double(try millis(String(w1[t...]))),
            "cpu_temperature": .double(try millis(board.read("sysroot/sys/class/thermal/thermal_zone0/temp"))),
            "air_temperature": .double(try millis(board.read("sysroot/sys/bus/iio/devices/iio:device0/in_temp_input"))),
            "humidity": .double(try millis(board.read("sysroot/sys/bus/iio/devices/iio:device0/in_humidityrelative_input"))),
            // A reed switch with the pull-up: the line reads 1 while the door is closed.
            "door_closed": .bool(try board.read("gpio/GPIO17").trimmingCharacters(in: .whitespacesAndNewlines) == "1"),
            "rain_pulses": .integer(0),
        ]
    }

    @Test("first start provisions and publishes the board's readings with their values and times; a restart reuses the stored credentials")
    func firstStartThenRestart() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(BoardCopy.everySensor))
        let expected = try Self.expectedValues(board)
        #expect(expected["temperature"]?.doubleValue == 23.125)  // the DS18B20 in board/simulated reads t=23125
        var agents: [AgentProcess] = []

        try await withProcesses({ agents }, sim) {
            let started = wallClockMilliseconds()
            agents.append(try await AgentProcess.start(board))
            let agent = agents[0]

            // Every configured sensor arrives with the value its file holds.
            let arrived = await eventually(.seconds(30)) {
                Set(sim.readings().map(\.id.key)).isSuperset(of: expected.keys)
            }
            try #require(arrived, "not every sensor arrived: \(sim.readings().prefix(20)); agent log:\n\(agent.log)")
            for event in sim.telemetry() {
                for point in event.readings {
                    guard let value = expected[point.id.key] else { continue }
                    #expect(point.sameValue(value), "\(point) but the board's file says \(value.serialized)")
                    // Taken while this test ran, and sent at once (the server received it within seconds).
                    #expect(point.id.ts >= started - 1000 && point.id.ts <= event.received, "\(point) received at \(event.received)")
                    #expect(event.received - point.id.ts < 10_000, "\(point) received at \(event.received)")
                }
            }

            // Provisioned exactly once, and what the server issued is what the board stored.
            #expect(sim.provisionRequests().count == 1)
            #expect(sim.provisionDecisions().first?["status"]?.stringValue == "SUCCESS")
            let token = try #require(board.storedToken(), "no credentials stored in \(board.credentialsURL.path)")
            #expect(try sim.device()?["credentials"]?["token"]?.stringValue == token)
            let stored = board.credentialsData()

            // A new value in a sensor file is what the next readings report.
            try board.replace("sysroot/sys/class/thermal/thermal_zone0/temp", "51250\n")
            try #require(await eventually(.seconds(20)) {
                sim.readings(of: "cpu_temperature").contains { $0.value.doubleValue == 51.25 }
            }, "the changed thermal zone never showed in telemetry")

            // Restart (after Ctrl-C: SIGINT stops it like SIGTERM): the stored credentials are used; no second
            // provisioning.
            #expect(await agent.terminate(SIGINT) == 0, "agent log:\n\(agent.log)")
            let connectsBefore = sim.deviceConnects().count
            let readingsBefore = sim.readings().count
            let restarted = wallClockMilliseconds()
            agents.append(try await AgentProcess.start(board))
            try #require(await eventually(.seconds(30)) {
                sim.readings().dropFirst(readingsBefore).contains { $0.id.ts >= restarted }
            }, "no telemetry after the restart; agent log:\n\(agents[1].log)")
            #expect(sim.provisionRequests().count == 1, "the restart provisioned again")
            let connects = sim.deviceConnects().dropFirst(connectsBefore)
            #expect(connects.contains { $0["returnCode"]?.int64Value == 0 && $0["username"]?.stringValue == masked(token) })
            #expect(board.credentialsData() == stored, "credentials.json changed across a restart")
        }
    }
}
