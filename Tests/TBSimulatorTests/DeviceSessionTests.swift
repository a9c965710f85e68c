import Foundation
import TBJSON
import Testing
@testable import TBSimulator

@Suite("Device sessions over MQTT")
struct DeviceSessionTests {
    @Test("CONNACK codes: 5 for unknown tokens, 2 for unknown client ids, v5 0x86/0x85/0x87; sessionPresent = !clean")
    func connackCodes() async throws {
        try await Harness.with { sim in
            func code(_ level: UInt8, _ clientID: String, _ user: String?, _ password: String? = nil, clean: Bool = true,
                      expect expected: (Bool, UInt8), sourceLocation: SourceLocation = #_sourceLocation) throws {
                let client = try RawMQTTClient(port: sim.mqttPort)
                let ack = try client.connect(level: level, clientID: clientID, username: user, password: password, clean: clean)
                #expect(ack.sessionPresent == expected.0 && ack.code == expected.1,
                        "CONNACK \(ack.code) sessionPresent \(ack.sessionPresent)", sourceLocation: sourceLocation)
                if ack.code != 0 { #expect(client.closesWithoutPacket(), sourceLocation: sourceLocation) }
            }
            try code(4, "x", "unknown-token", expect: (false, 5))
            try code(4, "", "unknown-token", clean: false, expect: (true, 5))
            try code(4, "unknown-client", nil, expect: (false, 2))
            try code(3, "unknown-client", nil, expect: (false, 2))
            try code(4, "x", "user-1", "wrong", expect: (false, 5))
            try code(5, "x", "unknown-token", expect: (false, 0x86))
            try code(5, "unknown-client", nil, expect: (false, 0x85))
            try code(5, "", "u", "p", expect: (false, 0x87))
            // Tokens ignore password and client id; MQTT_BASIC needs every stored field.
            try code(4, "whatever", "known-token-0001", "any-password", clean: false, expect: (true, 0))
            try code(4, "cid-1", "user-1", "pw-1", expect: (false, 0))
            try code(5, "cid-1", "user-1", "pw-1", expect: (false, 0))
        }
    }

    @Test("unsupported protocol level, malformed and oversized packets close with nothing sent")
    func decodeFailures() async throws {
        try await Harness.with({ $0.maxPacketSize = 1024 }) { sim in
            let level6 = try RawMQTTClient(port: sim.mqttPort)
            level6.send(Packet.connect(level: 6))
            #expect(level6.closesWithoutPacket())
            let garbage = try RawMQTTClient(port: sim.mqttPort)
            garbage.send([0x10, 0x03, 0xFF, 0xFF, 0xFF])
            #expect(garbage.closesWithoutPacket())
            let big = try Harness.device(sim, token: "known-token-0001")
            big.send(Packet.publish("v1/devices/me/telemetry", "{\"a\":\"" + String(repeating: "x", count: 2000) + "\"}", qos: 1, packetID: 1))
            #expect(big.closesWithoutPacket())
            let fine = try Harness.device(sim, token: "known-token-0001")
            fine.send(Packet.publish("v1/devices/me/telemetry", "{\"a\":\"" + String(repeating: "x", count: 900) + "\"}", qos: 1, packetID: 1))
            #expect(try fine.expectPacket().type == 4)
        }
    }

    @Test("telemetry: PUBACK even for QoS 2; bad JSON closes 3.1.1 without PUBACK; v5 gets 0x99 and stays")
    func telemetry() async throws {
        try await Harness.with { sim in
            let v3 = try Harness.device(sim, token: "known-token-0001")
            v3.send(Packet.publish("v1/devices/me/telemetry", #"{"temperature":21.5}"#, qos: 2, packetID: 11))
            let ack = try v3.expectPacket()
            #expect(ack.type == 4 && ack.body == [0, 11])
            v3.send(Packet.publish("v1/devices/me/telemetry", "{oops", qos: 1, packetID: 12))
            #expect(v3.closesWithoutPacket())

            let v5 = try Harness.device(sim, token: "known-token-0001", level: 5)
            v5.send(Packet.publish("v1/devices/me/telemetry", "[1,2]", qos: 1, packetID: 3, v5: true))
            #expect(try v5.expectPacket().body == [0, 3, 0x99])
            v5.send(Packet.publish("v1/devices/me/telemetry", #"{"humidity":"40"}"#, qos: 1, packetID: 4, v5: true))
            #expect(try v5.expectPacket().body == [0, 4])
            let (status, json) = try Harness.control(sim, "GET", "/devices/known/telemetry")
            #expect(status == 200)
            let values = json["entries"]?.arrayValue?.compactMap { $0["values"] } ?? []
            #expect(values == [.object([("temperature", .number("21.5"))]), .object([("humidity", .integer(40))])])
        }
    }

    @Test("PUBLISH sent right behind CONNECT is processed after CONNACK")
    func queuedBeforeAuth() async throws {
        try await Harness.with { sim in
            let client = try RawMQTTClient(port: sim.mqttPort)
            client.send(Packet.connect(username: "known-token-0001") + Packet.publish("v1/devices/me/telemetry", #"{"early":1}"#, qos: 1, packetID: 2))
            #expect(try client.expectPacket().type == 2)
            #expect(try client.expectPacket().body == [0, 2])
        }
    }

    @Test("unknown topics get PUBACK and the session stays; only exact filters are granted")
    func topicsAndFilters() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            client.send(Packet.publish("some/other/topic", "x", qos: 1, packetID: 5))
            #expect(try client.expectPacket().body == [0, 5])
            client.send(Packet.subscribe(6, [("v1/devices/me/attributes", 1), ("v1/devices/me/rpc/request/+", 2),
                                              ("v1/devices/me/#", 1), ("#", 0), ("v1/devices/me/attributes/response/+", 0)]))
            #expect(try client.expectPacket().body == [0, 6, 1, 1, 0x80, 0x80, 0])
            client.send(Packet.pingreq)
            #expect(try client.expectPacket().type == 13)
            let v5 = try Harness.device(sim, token: "pre-1-token-0001", level: 5)
            v5.send(Packet.subscribe(1, [("v1/devices/me/#", 1)], v5: true))
            #expect(try v5.expectPacket().body == [0, 1, 0, 0x8F])
            v5.send(Packet.unsubscribe(2, ["nothing"], v5: true))
            #expect(try v5.expectPacket().body == [0, 2, 0, 0x11])
        }
    }

    @Test("a second session with the same credentials closes the first (v5 DISCONNECT 0x8E, v3 bare close)")
    func takeover() async throws {
        try await Harness.with { sim in
            let first = try Harness.device(sim, token: "known-token-0001", level: 5)
            let second = try Harness.device(sim, token: "known-token-0001", level: 4)
            let disconnect = try first.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x8E)
            #expect(first.closesWithoutPacket())
            _ = try Harness.device(sim, token: "known-token-0001", level: 4)
            #expect(second.closesWithoutPacket())
        }
    }

    @Test("revoking closes the session (v5 0x98) and the old token then gets CONNACK 5")
    func revoke() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001", level: 5)
            #expect(try Harness.control(sim, "POST", "/devices/known/revoke").0 == 200)
            let disconnect = try client.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x98)
            let again = try RawMQTTClient(port: sim.mqttPort)
            #expect(try again.connect(username: "known-token-0001").code == 5)
            let deleted = try Harness.device(sim, token: "pre-1-token-0001")
            #expect(try Harness.control(sim, "DELETE", "/devices/pre-1").0 == 200)
            #expect(deleted.closesWithoutPacket())
        }
    }

    @Test("inactivity closes a silent session; PINGREQ counts as activity")
    func inactivity() async throws {
        try await Harness.with({ $0.timings.inactivityTimeout = .seconds(1) }) { sim in
            let pinging = try Harness.device(sim, token: "known-token-0001")
            let silent = try Harness.device(sim, token: "pre-1-token-0001", level: 5)
            // Ping every ~50 ms until the silent session is closed: the pinging one must never go idle that long.
            var disconnect: ReceivedPacket? = nil
            let deadline = Date().addingTimeInterval(10)
            while disconnect == nil && Date() < deadline {
                pinging.send(Packet.pingreq)
                #expect(try pinging.expectPacket().type == 13)
                if case .packet(let p) = silent.read(timeout: 0.05) { disconnect = p }
            }
            let packet = try #require(disconnect)
            #expect(packet.type == 14 && packet.body.first == 0x83)
            #expect(silent.closesWithoutPacket())
            pinging.send(Packet.pingreq)
            #expect(try pinging.expectPacket().type == 13)
        }
    }

    @Test("attributes: publish, request with comma-string keys, {} for all, empty sections omitted")
    func attributes() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            client.send(Packet.publish("v1/devices/me/attributes", #"{"fw":"1.2","mode":"auto","n":"5"}"#, qos: 1, packetID: 1))
            #expect(try client.expectPacket().body == [0, 1])
            #expect(try Harness.control(sim, "POST", "/devices/known/attributes", #"{"interval":5}"#).0 == 200)
            client.send(Packet.publish("v1/devices/me/attributes/request/7", #"{"clientKeys":"mode,n","sharedKeys":"interval"}"#, qos: 1, packetID: 2))
            #expect(try client.expectPacket().body == [0, 2])
            let response = try client.expectPacket().publish()
            #expect(response.topic == "v1/devices/me/attributes/response/7")
            #expect(response.payload == #"{"client":{"mode":"auto","n":5},"shared":{"interval":5}}"#)
            client.send(Packet.publish("v1/devices/me/attributes/request/8", "{}", qos: 0))
            #expect(try client.expectPacket().publish().payload == #"{"client":{"fw":1.2,"mode":"auto","n":5},"shared":{"interval":5}}"#)
            client.send(Packet.publish("v1/devices/me/attributes/request/9", #"{"sharedKeys":"missing"}"#, qos: 0))
            #expect(try client.expectPacket().publish().payload == "{}")
            client.send(Packet.publish("v1/devices/me/attributes", "[1]", qos: 1, packetID: 3))
            #expect(client.closesWithoutPacket())
        }
    }

    @Test("shared attribute updates are pushed only after subscribing")
    func sharedPush() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            #expect(try Harness.control(sim, "POST", "/devices/known/attributes", #"{"before":1}"#).0 == 200)
            client.send(Packet.subscribe(1, [("v1/devices/me/attributes", 1)]))
            #expect(try client.expectPacket().type == 9)
            #expect(try Harness.control(sim, "POST", "/devices/known/attributes", #"{"interval":10,"name":"x"}"#).0 == 200)
            let push = try client.expectPacket()
            #expect(push.qos == 1)
            #expect(push.publish().topic == "v1/devices/me/attributes")
            #expect(push.publish().payload == #"{"interval":10,"name":"x"}"#)
            client.send(Packet.puback(push.publish().packetID ?? 0))
            #expect(try Harness.control(sim, "DELETE", "/devices/known/attributes?keys=name").0 == 200)
            #expect(try client.expectPacket().publish().payload == #"{"deleted":["name"]}"#)
        }
    }

    @Test("server-side RPC: queued until subscribe, body {method,params}, reply returned to the caller")
    func serverRPC() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            async let call = Task.detached {
                try Harness.control(sim, "POST", "/devices/known/rpc", #"{"method":"setGpio","params":{"pin":4,"value":1},"timeout":10}"#)
            }.value
            try await Task.sleep(for: .milliseconds(200))
            client.send(Packet.subscribe(1, [("v1/devices/me/rpc/request/+", 1)]))
            #expect(try client.expectPacket().type == 9)
            let request = try client.expectPacket()
            let publish = request.publish()
            #expect(publish.topic == "v1/devices/me/rpc/request/0")
            #expect(publish.payload == #"{"method":"setGpio","params":{"pin":4,"value":1}}"#)
            client.send(Packet.puback(publish.packetID ?? 0))
            client.send(Packet.publish("v1/devices/me/rpc/response/0", #"{"ok":true}"#, qos: 1, packetID: 3))
            #expect(try client.expectPacket().body == [0, 3])
            let (status, json) = try await call
            #expect(status == 200)
            #expect(json["response"] == .object([("ok", .bool(true))]))
        }
    }

    @Test("client-side RPC: getSessionLimits answered at once, others time out with {\"error\":\"timeout\"}")
    func clientRPC() async throws {
        try await Harness.with({ $0.timings.clientRPCTimeout = .milliseconds(300) }) { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            client.send(Packet.publish("v1/devices/me/rpc/request/1", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 1))
            #expect(try client.expectPacket().body == [0, 1])
            let limits = try client.expectPacket().publish()
            #expect(limits.topic == "v1/devices/me/rpc/response/1")
            #expect(limits.payload == #"{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}"#)
            client.send(Packet.publish("v1/devices/me/rpc/request/2", #"{"method":"getTime","params":{}}"#, qos: 0))
            let timeout = try client.expectPacket(timeout: 3).publish()
            #expect(timeout.topic == "v1/devices/me/rpc/response/2")
            #expect(timeout.payload == #"{"error":"timeout"}"#)
        }
    }

    @Test("optional rate limits: over the limit, no PUBACK and a close; a limited SUBSCRIBE is granted but inactive")
    func rateLimits() async throws {
        try await Harness.with({ $0.rateLimits.messages = try? RateLimit("3:60") }) { sim in
            let client = try Harness.device(sim, token: "known-token-0001", level: 5)                 // CONNECT: 1
            client.send(Packet.publish("v1/devices/me/rpc/request/1", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 1, v5: true))
            #expect(try client.expectPacket().body == [0, 1])
            #expect(try client.expectPacket().publish(v5: true).payload.contains(#""rateLimits":{"messages":"3:60","telemetryMessages":null"#))
            for id: UInt16 in 2...3 {                                                                  // claims: 2, 3
                client.send(Packet.publish("v1/devices/me/claim", "", qos: 1, packetID: id, v5: true))
                #expect(try client.expectPacket().body == [0, UInt8(id)])
            }
            // The three tokens are used up: the subscription is granted but not registered, so no push arrives.
            client.send(Packet.subscribe(5, [("v1/devices/me/attributes", 1)], v5: true))
            #expect(try client.expectPacket().body == [0, 5, 0, 1])
            #expect(try Harness.control(sim, "POST", "/devices/known/attributes", #"{"k":1}"#).1["shared"] == .object([("k", .integer(1))]))
            guard case .timeout = client.read(timeout: 0.3) else {
                Issue.record("a rate-limited subscription received a push")
                return
            }
            // Telemetry is charged to the telemetry limits (none here), not to the messages limit.
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"n":1}"#, qos: 1, packetID: 6, v5: true))
            #expect(try client.expectPacket().body == [0, 6])
            client.send(Packet.publish("v1/devices/me/claim", "", qos: 1, packetID: 7, v5: true))
            let disconnect = try client.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x83)
            #expect(client.closesWithoutPacket())
        }
    }

    @Test("outage: every connection closes and new ones are refused for the duration")
    func outage() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            #expect(try Harness.control(sim, "POST", "/outage", #"{"seconds":3}"#).0 == 200)
            #expect(client.closesWithoutPacket())
            let refused = try RawMQTTClient(port: sim.mqttPort)
            refused.send(Packet.connect(username: "known-token-0001"))
            #expect(refused.closesWithoutPacket())
            try await Task.sleep(for: .milliseconds(3300))
            _ = try Harness.device(sim, token: "known-token-0001")
        }
    }

    @Test("refuse-connects: the next device CONNECTs are dropped (or get the given CONNACK); armed by a provisioning, only the provisioned device's")
    func refuseConnects() async throws {
        try await Harness.with { sim in
            #expect(try Harness.control(sim, "POST", "/refuse-connects", #"{"count":2,"returnCode":3}"#).0 == 200)
            for _ in 0..<2 {
                let refused = try RawMQTTClient(port: sim.mqttPort)
                #expect(try refused.connect(username: "known-token-0001").code == 3)
                #expect(refused.closesWithoutPacket())
            }
            _ = try Harness.device(sim, token: "known-token-0001")
            #expect(try Harness.control(sim, "POST", "/refuse-connects", #"{"count":0}"#).0 == 400)

            // Armed by the next successful provisioning, for the device it provisioned only.
            #expect(try Harness.control(sim, "POST", "/refuse-connects", #"{"count":1,"afterProvisioning":true}"#).0 == 200)
            _ = try Harness.device(sim, token: "known-token-0001")
            let body = try Harness.provision(sim, #"{"deviceName":"fresh","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#)
            let token = try #require(try JSONValue.parse(body)["credentialsValue"]?.stringValue)
            _ = try Harness.device(sim, token: "known-token-0001", clientID: "other")
            let dropped = try RawMQTTClient(port: sim.mqttPort)
            dropped.send(Packet.connect(username: token))
            #expect(dropped.closesWithoutPacket())
            _ = try Harness.device(sim, token: token)
        }
    }
}

@Suite("Registry file and the tb-sim executable")
struct ExecutableTests {
    @Test("a restart with the same registry file remembers provisioned devices")
    func registryRestart() async throws {
        let dir = try TestSupportFolder.make()
        let path = dir + "/registry.json"
        let token = try await Harness.with({ $0.registryPath = path }) { sim in
            let body = try Harness.provision(sim, #"{"deviceName":"kept","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#)
            return try #require(try JSONValue.parse(body)["credentialsValue"]?.stringValue)
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try await Harness.with({ $0.registryPath = path }) { sim in
            _ = try Harness.device(sim, token: token)
            #expect(try Harness.provision(sim, #"{"deviceName":"kept","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#)
                == #"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#)
        }
    }
}
