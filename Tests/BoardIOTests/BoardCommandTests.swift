import AgentTestSupport
import Foundation
import Testing

/// `tb-agent sensors`, `gpio`, `led` and `button` on the simulated board, run as the built binary.
@Suite("Board commands on the simulated board", .serialized)
struct BoardCommandTests {
    static let config = TestSupport.packageRoot.appendingPathComponent("board/simulated/config.toml").path

    /// A copy of board/simulated (and the example secret its config names), to change without touching the repo.
    static func copyOfSimulatedBoard() throws -> URL {
        let root = try TestSupport.makeTemporaryDirectory("simboard")
        let board = root.appendingPathComponent("board")
        try FileManager.default.createDirectory(at: board.appendingPathComponent("examples"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestSupport.packageRoot.appendingPathComponent("board/simulated"), to: board.appendingPathComponent("simulated"))
        try FileManager.default.copyItem(
            at: TestSupport.packageRoot.appendingPathComponent("board/examples/provision-secret.example"),
            to: board.appendingPathComponent("examples/provision-secret.example"))
        return board.appendingPathComponent("simulated")
    }

    /// NAME → (kind, value, health) from the table `tb-agent sensors` prints.
    static func table(_ stdout: String) -> [String: (kind: String, value: String, health: String)] {
        var rows: [String: (String, String, String)] = [:]
        for line in stdout.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true).map(String.init)
            guard fields.count == 4 else { continue }
            let rest = fields[3].trimmingCharacters(in: .whitespaces)
            // VALUE may be `count=0`; HEALTH is what follows two or more spaces.
            let parts = rest.components(separatedBy: "  ").filter { !$0.isEmpty }
            rows[fields[0]] = (fields[1], fields[2], (parts.last ?? rest).trimmingCharacters(in: .whitespaces))
        }
        return rows
    }

    @Test("--version prints the version alone on its first line (packaging reads it there), then the libgpiod API")
    func versionNamesTheLibgpiodAPI() throws {
        let result = try TestSupport.tbAgent(["--version"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2, "\(result.stdout)")
        #expect(lines.first?.allSatisfy { $0.isNumber || $0 == "." } == true, "\(result.stdout)")
        let library = lines.last ?? ""
        #expect(library.hasPrefix("libgpiod "), "\(library)")
        #expect(library.hasSuffix(" (v1 API)") || library.hasSuffix(" (v2 API)"), "\(library)")
        // The API matches the library's major version: 1.x is v1, 2.x is v2.
        let major = library.dropFirst("libgpiod ".count).prefix { $0 != "." }
        #expect(library.hasSuffix(" (v\(major) API)"), "\(library)")
    }

    @Test("tb-agent sensors --config board/simulated/config.toml prints every sensor with its value and health")
    func sensors() throws {
        let result = try TestSupport.tbAgent(["sensors", "--config", Self.config])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = Self.table(result.stdout)
        #expect(result.stdout.hasPrefix("NAME"))
        #expect(rows.count == 6)
        #expect(rows["temperature"]?.kind == "ds18b20")
        #expect(rows["temperature"]?.value == "23.125")
        #expect(rows["cpu_temperature"]?.value == "48.312")
        #expect(rows["air_temperature"]?.value == "22.0")
        #expect(rows["humidity"]?.value == "48.0")
        #expect(rows["door_closed"]?.value == "true")
        #expect(rows["rain_pulses"]?.value.hasPrefix("count=") == true)
        #expect(rows.values.allSatisfy { $0.health == "ok" })
    }

    @Test("a failing sensor is reported with its error, the others still read, and the exit status says so")
    func failingSensor() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        try "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=85000\n".write(
            to: board.appendingPathComponent("sysroot/sys/bus/w1/devices/28-00000a1b2c3d/w1_slave"),
            atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(at: board.appendingPathComponent("sysroot/sys/class/thermal"))
        let result = try TestSupport.tbAgent(["sensors", "--config", board.appendingPathComponent("config.toml").path])
        #expect(result.status == 69)
        let rows = Self.table(result.stdout)
        #expect(rows.count == 6)
        #expect(rows["temperature"]?.value == "-")
        #expect(rows["temperature"]?.health.contains("failing") == true)
        #expect(rows["temperature"]?.health.contains("85000 is the DS18B20 power-on value") == true)
        #expect(rows["cpu_temperature"]?.health.contains("sys/class/thermal does not exist") == true)
        #expect(rows["humidity"]?.health == "ok")
    }

    @Test("an invalid configuration exits 78 with the file and line")
    func invalidConfiguration() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        let config = board.appendingPathComponent("config.toml")
        let text = try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "kind = \"ds18b20\"", with: "kind = \"ds18b21\"")
        try text.write(to: config, atomically: true, encoding: .utf8)
        let result = try TestSupport.tbAgent(["sensors", "--config", config.path])
        #expect(result.status == 78)
        #expect(result.stderr.contains("config.toml:"))
        #expect(result.stderr.contains("ds18b21"))
    }

    @Test("gpio read, set and list with --simulated-dir, without a configuration")
    func gpioReadSet() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        let dir = board.appendingPathComponent("gpio").path
        let read = try TestSupport.tbAgent(["gpio", "read", "GPIO17", "GPIO27", "--simulated-dir", dir])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout == "GPIO17=1\nGPIO27=1\n")
        let inverted = try TestSupport.tbAgent(["gpio", "read", "--active-low", "GPIO17", "--simulated-dir", dir])
        #expect(inverted.stdout == "GPIO17=0\n")
        let set = try TestSupport.tbAgent(["gpio", "set", "GPIO22", "1", "--simulated-dir", dir])
        #expect(set.status == 0, "\(set.stderr)")
        #expect((try? String(contentsOfFile: "\(dir)/GPIO22", encoding: .utf8)) == "1\n")
        let missing = try TestSupport.tbAgent(["gpio", "read", "GPIO99", "--simulated-dir", dir])
        #expect(missing.status == 69)
        #expect(missing.stderr.contains("GPIO99"))
        let number = try TestSupport.tbAgent(["gpio", "read", "17", "--simulated-dir", dir])
        #expect(number.status == 64)
        #expect(number.stderr.contains("GPIO17"))
        let list = try TestSupport.tbAgent(["gpio", "list", "--simulated-dir", dir])
        #expect(list.stdout.contains("GPIO27"))
    }

    @Test("gpio watch prints the initial level and then a debounced change with its timestamp")
    func gpioWatch() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        let dir = board.appendingPathComponent("gpio").path
        let child = try ChildProcess(TestSupport.binary("tb-agent"), [
            "gpio", "watch", "GPIO17", "--debounce", "20ms", "--count", "1", "--for", "20s", "--simulated-dir", dir,
        ])
        #expect(TestSupport.waitUntil { child.stdout.contains("initial GPIO17=1") })
        try "0\n".write(toFile: "\(dir)/GPIO17", atomically: false, encoding: .utf8)
        let status = child.wait(timeout: .seconds(20))
        #expect(status == 0, "\(child.stderr)")
        let lines = child.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.last?.hasPrefix("change GPIO17=0 t=") == true)
    }

    @Test("button reports a long press as a re-provision request; led --list names every pattern")
    func buttonAndLED() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        let dir = board.appendingPathComponent("gpio").path
        let child = try ChildProcess(TestSupport.binary("tb-agent"), [
            "button", "--line", "GPIO27", "--hold", "1s", "--debounce", "20ms", "--for", "20s", "--exit-on-request",
            "--simulated-dir", dir,
        ])
        #expect(TestSupport.waitUntil { child.stdout.contains("watching GPIO27") })
        try "0\n".write(toFile: "\(dir)/GPIO27", atomically: false, encoding: .utf8)
        #expect(TestSupport.waitUntil { child.stdout.contains("held t=") })
        try "1\n".write(toFile: "\(dir)/GPIO27", atomically: false, encoding: .utf8)
        #expect(child.wait(timeout: .seconds(20)) == 0, "\(child.stderr)")
        let events = child.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(events == ["watching", "pressed", "held", "released", "reprovision-requested"])

        let list = try TestSupport.tbAgent(["led", "--list"])
        for pattern in ["provisioning", "connecting", "offline", "buffering", "online", "attention", "release-now", "identify", "claiming"] {
            #expect(list.stdout.contains("\(pattern)\t"))
        }
    }

    @Test("button reports three short presses as a claim request, and a fourth right after as ignored")
    func buttonClaimGesture() throws {
        let board = try Self.copyOfSimulatedBoard()
        defer { try? FileManager.default.removeItem(at: board.deletingLastPathComponent().deletingLastPathComponent()) }
        let dir = board.appendingPathComponent("gpio").path
        let child = try ChildProcess(TestSupport.binary("tb-agent"), [
            "button", "--line", "GPIO27", "--hold", "1s", "--debounce", "20ms", "--for", "20s", "--simulated-dir", dir,
        ])
        #expect(TestSupport.waitUntil { child.stdout.contains("watching GPIO27") })
        for _ in 0..<6 {
            try "0\n".write(toFile: "\(dir)/GPIO27", atomically: false, encoding: .utf8)
            Thread.sleep(forTimeInterval: 0.1)
            try "1\n".write(toFile: "\(dir)/GPIO27", atomically: false, encoding: .utf8)
            Thread.sleep(forTimeInterval: 0.15)
        }
        #expect(TestSupport.waitUntil { child.stdout.contains("claim-ignored") }, "\(child.stdout)")
        _ = child.stop()
        let events = child.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(events.filter { $0 == "claim-requested" }.count == 1)
        #expect(!events.contains("reprovision-requested"))
    }
}
