import AgentTestSupport
import Foundation
import TBJSON
import Testing

enum TestSupportFolder {
    static func make() throws -> String { try TestSupport.makeTemporaryDirectory("tb-sim-test").path }
}

@Suite("tb-sim executable")
struct BinaryTests {
    @Test("starts from a TOML file on free ports, reports them, logs events, and refuses a bad file with exit 78")
    func runsFromTOML() throws {
        let dir = try TestSupport.makeTemporaryDirectory("tb-sim-bin")
        let config = dir.appendingPathComponent("sim.toml")
        try """
        [server]
        mqtt_port = 0
        control_port = 0
        [timings]
        provision_close_delay = "2s"
        [[profiles]]
        name = "sensors"
        provision_key = "k"
        provision_secret = "s"
        [[devices]]
        name = "board-1"
        profile = "sensors"
        token = "board-1-token"
        """.write(to: config, atomically: true, encoding: .utf8)
        let ready = dir.appendingPathComponent("ready.json")
        let events = dir.appendingPathComponent("events.jsonl")
        let sim = try ChildProcess(TestSupport.binary("tb-sim"), ["--config", config.path, "--ready-file", ready.path,
                                                                   "--event-log", events.path])
        defer { sim.stop() }
        #expect(TestSupport.waitUntil(timeout: .seconds(20)) { FileManager.default.fileExists(atPath: ready.path) })
        let info = try JSONValue.parse(String(contentsOf: ready, encoding: .utf8))
        let port = try #require(info["mqttPort"]?.int64Value)
        #expect(info["controlPort"]?.int64Value != nil)
        #expect(sim.stdout.contains("\"mqttPort\":\(port)"))
        let client = try RawMQTTClient(port: Int(port))
        #expect(try client.connect(username: "board-1-token").code == 0)
        client.send(Packet.publish("v1/devices/me/telemetry", #"{"t":1}"#, qos: 1, packetID: 1))
        #expect(try client.expectPacket().type == 4)
        #expect(TestSupport.waitUntil { ((try? String(contentsOf: events, encoding: .utf8)) ?? "").contains(#""event":"telemetry","session":1,"device":"board-1""#) })

        let bad = dir.appendingPathComponent("bad.toml")
        try "[[profiles]]\nname = \"p\"\nstrategy = \"SOMETIMES\"\n".write(to: bad, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(TestSupport.binary("tb-sim"), ["--config", bad.path, "--port", "0"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("profiles[0].strategy"))
    }

    @Test("a configuration that is not TOML, or has a value of the wrong type, is refused at its line and column")
    func positionsConfigurationProblems() throws {
        let dir = try TestSupport.makeTemporaryDirectory("tb-sim-bin")
        let cases = [
            // toml++ (TOMLKit) aborted the process on this one.
            ("[server]\nhost = \"h\"\n[=]\n", ":3:2: a table name must start with"),
            ("[server]\nmqtt_port = 18 83\n", ":2:16: server.mqtt_port: expected the end of the line"),
            ("[server]\n  mqtt_port = \"1883\"\n", ":2:3: server.mqtt_port: must be an integer"),
            ("[timings]\ninactivity_timeout = \"1e300s\"\n", ":2:1: timings.inactivity_timeout: must be seconds"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let file = dir.appendingPathComponent("bad-\(index).toml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let result = try TestSupport.run(TestSupport.binary("tb-sim"), ["--config", file.path, "--port", "0"])
            #expect(result.status == 78, "\(text): \(result.stderr)")
            #expect(result.stderr.contains(file.path + expected), "\(result.stderr)")
        }
    }
}

@Suite("TBSimProcess test helper")
struct TBSimProcessTests {
    @Test("starts tb-sim on free ports; the control interface revokes a device and the event log says so")
    func helper() throws {
        let sim = try TBSimProcess(config: """
            [[profiles]]
            name = "sensors"
            provision_key = "k"
            provision_secret = "s"
            [[devices]]
            name = "board-9"
            profile = "sensors"
            token = "board-9-token"
            """)
        defer { sim.stop() }
        let client = try RawMQTTClient(port: sim.mqttPort)
        #expect(try client.connect(username: "board-9-token").code == 0)
        let (status, body) = try sim.control("POST", "/devices/board-9/revoke")
        #expect(status == 200 && body.contains(#""credentials":null"#))
        #expect(client.closesWithoutPacket())
        let again = try RawMQTTClient(port: sim.mqttPort)
        #expect(try again.connect(username: "board-9-token").code == 5)
        #expect(!sim.events(containing: #""event":"credentials_revoked""#, #""device":"board-9""#).isEmpty)
        #expect(try sim.control("GET", "/devices/nobody").status == 404)
        // A query of empty keys and values (`?=`, `?&=&`) once indexed an empty split and stopped tb-sim.
        for query in ["?=", "?&=&", "?==", "?key="] {
            #expect(try sim.control("GET", "/devices/board-9/telemetry\(query)").status == 200, "\(query)")
        }
        #expect(try sim.control("GET", "/devices/nobody").status == 404, "tb-sim still answers")
    }
}
