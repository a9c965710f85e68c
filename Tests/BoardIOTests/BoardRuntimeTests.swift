import AgentBoard
import AgentCore
import AgentSimulated
import Foundation
import Logging
import Synchronization
import TBJSON
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The board as `run` drives it.
@Suite(.serialized) struct BoardRuntimeTests {
    /// Issue 10, finding 1: sensor files were read with blocking calls on Swift's cooperative pool (a DS18B20
    /// takes ~750 ms), so a burst of reads starved the loop and the watchdog. Reads now run on the board's own
    /// thread: `sample` returns at once even while the read blocks (here on a FIFO nobody writes yet).
    @Test func sampleReturnsAtOnceWhileTheReadBlocksOnItsOwnThread() async throws {
        let board = try TemporaryBoard()
        defer { board.remove() }
        let zone = board.sysroot.appendingPathComponent("sys/class/thermal/thermal_zone0/temp")
        try FileManager.default.removeItem(at: zone)
        #expect(mkfifo(zone.path, 0o600) == 0)
        var configuration = AgentConfiguration(
            server: ServerSettings(host: "127.0.0.1"),
            provisioning: ProvisioningSettings(deviceKey: "k", deviceSecret: Secret("s")),
            device: DeviceSettings(sysroot: board.sysroot.path, stateDir: board.root.appendingPathComponent("state").path))
        configuration.sensors = [SensorSettings(name: "cpu", kind: .thermal)]
        let runtime = try BoardRuntime(configuration, gpio: board.backend, logger: Logger(label: "test"))
        let results = Mutex<[[(String, JSONValue)]]>([])
        let clock = ContinuousClock()
        let started = clock.now
        runtime.sample(nil) { values in results.withLock { $0.append(values) } }
        #expect(clock.now - started < .milliseconds(100))
        try await Task.sleep(for: .milliseconds(200))
        #expect(results.withLock { $0.isEmpty })  // still blocked in open(2) on the FIFO
        // The sensor answers: the read finishes on its thread and hands the value over.
        let writer = open(zone.path, O_WRONLY)
        #expect(writer >= 0)
        _ = "48500\n".withCString { write(writer, $0, 6) }
        close(writer)
        let deadline = clock.now + .seconds(10)
        while results.withLock({ $0.isEmpty }) && clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        let values = results.withLock { $0.first } ?? []
        #expect(values.count == 1 && values.first?.0 == "cpu" && values.first?.1 == .double(48.5))
        runtime.stop()
    }
}
