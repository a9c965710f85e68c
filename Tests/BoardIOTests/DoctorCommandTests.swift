import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent doctor` on the simulated board: one line per check, the fix on failures, exit 1 when one failed.
@Suite("tb-agent doctor", .serialized)
struct DoctorCommandTests {
    /// A copy of the simulated board pointing at `port` with its state in a temporary folder.
    func board(port: Int) throws -> (config: String, board: URL) {
        let board = try BoardCommandTests.copyOfSimulatedBoard()
        let config = board.appendingPathComponent("config.toml")
        var text = try String(contentsOf: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "port = 1883", with: "port = \(port)")
        text = text.replacingOccurrences(
            of: "state_dir = \"state\"",
            with: "state_dir = \"\(board.appendingPathComponent("state").path)\"")
        try text.write(to: config, atomically: true, encoding: .utf8)
        return (config.path, board)
    }

    func verdicts(_ stdout: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in stdout.split(separator: "\n") where !line.hasPrefix(" ") {
            let verdict = String(line.prefix(4)).trimmingCharacters(in: .whitespaces)
            let rest = line.dropFirst(6)
            guard let colon = rest.firstIndex(of: ":") else { continue }
            out[String(rest[..<colon])] = verdict
        }
        return out
    }

    @Test func healthyBoardWithAServerPasses() throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let (config, _) = try self.board(port: broker.port)
        let result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let v = self.verdicts(result.stdout)
        for check in ["configuration", "identity", "state directory", "sensor door_closed line", "button line",
                      "sensor temperature", "sensor humidity", "status LED", "server"] {
            #expect(v[check] == "ok", "\(check): \(result.stdout)")
        }
        #expect(v["credentials"] == "WARN")  // not provisioned yet: the agent will provision
        #expect(v["GPIO library"] == "ok")
        // The simulated board is in use, and the line still names the libgpiod API the binary is built for.
        let library = result.stdout.split(separator: "\n").first { $0.contains("GPIO library:") } ?? ""
        #expect(library.contains("the simulated board in "), "\(library)")
        #expect(library.contains(" (v1 API)") || library.contains(" (v2 API)"), "\(library)")
        #expect(v["clock"] != "FAIL")
    }

    @Test func eachProblemIsAFailingLineWithItsFix() throws {
        let (config, board) = try self.board(port: try TestSupport.freePort())  // nothing listens there
        try "72 01 4b 46 7f ff 0e 10 57 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n".write(
            to: board.appendingPathComponent("sysroot/sys/bus/w1/devices/28-00000a1b2c3d/w1_slave"),
            atomically: true, encoding: .utf8)
        // The state directory is a file: nothing can be written there.
        try "".write(to: board.appendingPathComponent("state"), atomically: true, encoding: .utf8)
        // A button line whose file is missing, with no bias to create it: like a line that does not exist.
        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "line = \"GPIO27\"                  # to ground, with the pull-up: pressed reads 0\nbias = \"pull-up\"", with: "line = \"GPIO27\"\nbias = \"as-is\"")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: board.appendingPathComponent("gpio/GPIO27"))
        let result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(result.status == 1)
        let v = self.verdicts(result.stdout)
        #expect(v["sensor temperature"] == "FAIL", "\(result.stdout)")
        #expect(v["server"] == "FAIL")
        #expect(v["state directory"] == "FAIL")
        #expect(v["button line"] == "FAIL")
        #expect(v["sensor humidity"] == "ok")
        #expect(result.stdout.contains("does not answer within 3 s: check [server] port"))
        #expect(result.stdout.contains("GPIO27"))
    }

    @Test func invalidConfigurationStopsAtTheFirstCheckWithItsProblems() throws {
        let (config, _) = try self.board(port: 1883)
        try (try String(contentsOfFile: config, encoding: .utf8) + "\n[spool]\nmax_sise = \"5MiB\"\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(result.status == 1)
        #expect(result.stdout.hasPrefix("FAIL  configuration"))
        #expect(result.stdout.contains("spool.max_sise"))
    }

    /// Issue 10, finding 10: an unusable spool directory (the agent then keeps readings in memory only) is a failing
    /// line with its fix, not "ok" everywhere.
    @Test func anUnusableSpoolDirectoryIsAFailingLineWithItsFix() throws {
        let (config, board) = try self.board(port: try TestSupport.freePort())
        let state = board.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: false)
        chmod(state.path, 0o700)
        let healthy = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(self.verdicts(healthy.stdout)["spool"] == "ok", "\(healthy.stdout)")

        let spool = state.appendingPathComponent("spool")
        try "not a directory".write(to: spool, atomically: true, encoding: .utf8)
        let result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(result.status == 1)
        #expect(self.verdicts(result.stdout)["spool"] == "FAIL", "\(result.stdout)")
        #expect(result.stdout.contains("rm \(spool.path)"), "\(result.stdout)")
        #expect(result.stdout.contains("in memory"))
    }

    /// Issue 10, finding 5: a state directory others may write in is a failing line naming chmod 700.
    @Test func aStateDirectoryOthersMayWriteInIsAFailingLine() throws {
        let (config, board) = try self.board(port: try TestSupport.freePort())
        let state = board.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: false)
        chmod(state.path, 0o777)
        let result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(self.verdicts(result.stdout)["state directory"] == "FAIL", "\(result.stdout)")
        #expect(result.stdout.contains("chmod 700 \(state.path)"), "\(result.stdout)")
    }

    /// Issue 10, findings 8 and 12: a secret file other users may read, and plain MQTT to a host off this machine,
    /// are warnings with their fix.
    @Test func secretsInTheClearAreWarnings() throws {
        let (config, board) = try self.board(port: try TestSupport.freePort())
        let secret = board.deletingLastPathComponent().appendingPathComponent("examples/provision-secret.example").path
        chmod(secret, 0o644)
        var result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(self.verdicts(result.stdout)["secrets"] == "WARN", "\(result.stdout)")
        #expect(result.stdout.contains("\(secret) holds the provision device secret and is readable by every user"), "\(result.stdout)")
        #expect(result.stdout.contains("chmod 600 \(secret)"))

        chmod(secret, 0o600)
        result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(self.verdicts(result.stdout)["secrets"] == "ok", "\(result.stdout)")

        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "host = \"127.0.0.1\"", with: "host = \"tb.example.invalid\"")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        result = try TestSupport.tbAgent(["doctor", "--config", config])
        #expect(self.verdicts(result.stdout)["secrets"] == "WARN", "\(result.stdout)")
        #expect(result.stdout.contains("plain MQTT"), "\(result.stdout)")
    }
}
