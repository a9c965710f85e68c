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
            ("[rate_limits]\nmessages = \"lots\"\n", ":2:1: rate_limits.messages: rate limit \"lots\" must be pairs like"),
            ("[[profiles]]\nname = \"p\"\n[profiles.rate_limits]\nmesages = \"1:1\"\n",
             ":4:1: profiles[0].rate_limits.mesages: unknown key (known: messages, telemetry_data_points, telemetry_messages)"),
            ("[[profiles]]\nname = \"p\"\nrate_limits = \"1:1\"\n", ":3:1: profiles[0].rate_limits: must be a table"),
            ("[[profiles]]\nname = \"p\"\nthingsboard_version = \"latest\"\n",
             ":3:1: profiles[0].thingsboard_version: ThingsBoard version \"latest\" must look like \"3.7\""),
            ("[[ota_packages]]\ntitle = \"t\"\nversion = \"1\"\nurl = \"https://h/f\"\nchecksum_algorithm = \"SHA1\"\n",
             ":5:1: ota_packages[0].checksum_algorithm: \"SHA1\" is not one of MD5, SHA256"),
            ("[[ota_packages]]\ntitle = \"t\"\nversion = \"1\"\nfile = \"/nonexistent/fw.bin\"\n",
             ": ota_packages[0].file: /nonexistent/fw.bin cannot be read"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let file = dir.appendingPathComponent("bad-\(index).toml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let result = try TestSupport.run(TestSupport.binary("tb-sim"), ["--config", file.path, "--port", "0"])
            #expect(result.status == 78, "\(text): \(result.stderr)")
            #expect(result.stderr.contains(file.path + expected), "\(result.stderr)")
        }
        let unknown = dir.appendingPathComponent("unknown-device.toml")
        try "[[ota_packages]]\ntitle = \"t\"\nversion = \"1\"\nurl = \"https://h/f\"\ndevices = [\"nobody\"]\n"
            .write(to: unknown, atomically: true, encoding: .utf8)
        let result = try TestSupport.run(TestSupport.binary("tb-sim"), ["--config", unknown.path, "--port", "0"])
        #expect(result.status == 78)
        #expect(result.stderr.contains(#"[[ota_packages]] "t" version "1": no device named "nobody""#), "\(result.stderr)")
    }
}

@Suite("tb-sim executable: rate limits from TOML")
struct BinaryRateLimitTests {
    @Test("[rate_limits] is the default; a profile's rate_limits table and thingsboard_version replace it for its devices")
    func profileLimits() throws {
        let sim = try TBSimProcess(config: """
            [rate_limits]
            messages = "100:1"
            [[profiles]]
            name = "old"
            thingsboard_version = "3.7"
            [profiles.rate_limits]
            messages = "1:60"
            telemetry_data_points = "10:1,300:60"
            [[profiles]]
            name = "inline"
            rate_limits = { telemetry_messages = "5:1" }
            [[devices]]
            name = "old-1"
            profile = "old"
            token = "old-1-token"
            [[devices]]
            name = "inline-1"
            profile = "inline"
            token = "inline-1-token"
            """)
        defer { sim.stop() }
        let (status, body) = try sim.control("GET", "/profiles")
        #expect(status == 200)
        #expect(body.contains(#""rateLimits":{"messages":"1:60","telemetryMessages":null,"telemetryDataPoints":"10:1,300:60"},"thingsboardVersion":"3.7.0""#), "\(body)")
        #expect(body.contains(#""rateLimits":{"messages":null,"telemetryMessages":"5:1","telemetryDataPoints":null},"thingsboardVersion":null"#), "\(body)")
        // The one message token goes to the CONNECT; the next CONNECT of the device is refused.
        let first = try RawMQTTClient(port: sim.mqttPort)
        #expect(try first.connect(username: "old-1-token").code == 0)
        let second = try RawMQTTClient(port: sim.mqttPort)
        #expect(try second.connect(username: "old-1-token").code == 3)
        #expect(try sim.control("GET", "/devices/old-1").body.contains(#""droppedForRateLimits":{"total":1,"messages":1"#))
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
