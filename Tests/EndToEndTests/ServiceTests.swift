import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// `tb-agent run` as a systemd service: a clean stop that loses nothing, and the notification protocol.
@Suite("End to end: the service")
struct ServiceTests {
    @Test("SIGTERM with readings pending: exit 0 within 10 s, and after a restart and the server's return all of them arrive")
    func sigtermLosesNothing() async throws {
        let sim = try await E2ESim.start()
        let board = try OutageTests.fastBoard(sim)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board))
            try #require(await eventually(.seconds(30)) { sim.readings(of: "cpu_temperature").count >= 20 },
                         "no telemetry; agent log:\n\(agents[0].log)")

            _ = try await sim.control("POST", "/outage", #"{"seconds":120}"#)
            try #require(await eventually(.seconds(20)) { ((try? board.spooledReadings()) ?? []).count >= 20 },
                         "nothing spooled during the outage")
            let stopped = wallClockMilliseconds()
            let clock = ContinuousClock()
            let start = clock.now
            let status = await agents[0].terminate(timeout: .seconds(10))
            #expect(status == 0, "exit status \(status.map(String.init) ?? "none within 10 s"); agent log:\n\(agents[0].log.suffix(3000))")
            #expect(clock.now - start < .seconds(10))
            let owed = try board.spooledReadings()
            try #require(owed.count >= 20)

            agents.append(try await AgentProcess.start(board))
            _ = try await sim.control("POST", "/outage", #"{"seconds":0}"#)
            try await OutageTests.expectDelivered(owed, sim: sim, agent: agents[1], label: "SIGTERM", stoppedAt: stopped)
        }
    }

    @Test("systemd notifications: READY=1, WATCHDOG=1 about every WATCHDOG_USEC/4, STATUS=, and STOPPING=1 on SIGTERM")
    func watchdogProtocol() async throws {
        let sim = try await E2ESim.start()
        let board = try BoardCopy()
        try board.writeConfig(port: sim.mqttPort, interval: "1s", sensors: BoardCopy.sensors(["temperature"]))
        let notify = try NotifySocket(directory: board.directory)
        var agents: [AgentProcess] = []
        try await withProcesses({ agents }, sim) {
            agents.append(try await AgentProcess.start(board, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"]))
            let agent = agents[0]
            try #require(await eventually(.seconds(20)) { notify.times(of: "READY=1").count == 1 },
                         "no READY=1; agent log:\n\(agent.log)")
            try #require(await eventually(.seconds(20)) { notify.times(of: "WATCHDOG=1").count >= 8 },
                         "WATCHDOG=1 did not come repeatedly: \(notify.notifications.map(\.lines))")
            let beats = notify.times(of: "WATCHDOG=1")
            let gaps = zip(beats, beats.dropFirst()).map { $1 - $0 }.sorted()
            let median = gaps[gaps.count / 2]
            // Every quarter of WatchdogSec: a loop late by a busy moment still feeds within half of it.
            #expect(median >= .milliseconds(150) && median <= .milliseconds(400), "WATCHDOG=1 every \(median), expected about 250ms")
            #expect(gaps.last.map { $0 <= .milliseconds(500) } == true, "a gap of \(gaps.last ?? .zero) without WATCHDOG=1")
            try #require(await eventually(.seconds(20)) {
                notify.notifications.flatMap(\.lines).contains { $0.hasPrefix("STATUS=") && $0.contains("online") }
            }, "no STATUS= saying online: \(notify.notifications.map(\.lines))")
            #expect(notify.times(of: "STOPPING=1").isEmpty)

            #expect(await agent.terminate() == 0)
            try #require(await eventually(.seconds(5)) { !notify.times(of: "STOPPING=1").isEmpty }, "no STOPPING=1 on SIGTERM")
            // READY came first, STOPPING last.
            let ready = try #require(notify.times(of: "READY=1").first)
            let stopping = try #require(notify.times(of: "STOPPING=1").first)
            #expect(ready < stopping)
            #expect(beats.allSatisfy { $0 > ready })
        }
        await notify.stop()
        #expect(notify.receiverEnded, "the socket was closed while its receiving thread could still use the number")
    }
}
