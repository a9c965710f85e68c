import Foundation
import TBJSON
import Testing
@testable import TBSimulator

@Suite("Rate limits: ThingsBoard's token buckets and what each message costs")
struct RateLimitModelTests {
    @Test("buckets start full, every window applies, refill is greedy (cap/seconds per second)")
    func buckets() throws {
        let limits = RateLimits(messages: try RateLimit("10:1,15:60"))
        var state = DeviceRateState()
        for i in 0..<10 { #expect(state.admit(.message, limits: limits, now: 100) == nil, "message \(i)") }
        #expect(state.admit(.message, limits: limits, now: 100) == .messages)
        // A quarter second refills 2.5 tokens of the 10:1 window (and 0.0625 of the 15:60 one, which has 5 left).
        #expect(state.admit(.message, limits: limits, now: 100.25) == nil)
        #expect(state.admit(.message, limits: limits, now: 100.25) == nil)
        #expect(state.admit(.message, limits: limits, now: 100.25) == .messages)
        // After a second the 10:1 window is full again, but the minute window has about 3 tokens left.
        for _ in 0..<3 { #expect(state.admit(.message, limits: limits, now: 101.5) == nil) }
        #expect(state.admit(.message, limits: limits, now: 101.5) == .messages)
    }

    @Test("telemetry takes a telemetry-message token and one data-point token per key, never a messages token")
    func charges() throws {
        let limits = RateLimits(messages: try RateLimit("1:60"), telemetryMessages: try RateLimit("3:60"),
                                telemetryDataPoints: try RateLimit("5:60"))
        var state = DeviceRateState()
        #expect(RateCharge.post(dataPoints: 0) == .message)
        #expect(RateCharge.post(dataPoints: 3) == .dataPoints(3))
        #expect(state.admit(.dataPoints(3), limits: limits, now: 0) == nil)
        #expect(state.admit(.dataPoints(2), limits: limits, now: 0) == nil)
        #expect(state.admit(.message, limits: limits, now: 0) == nil)
        #expect(state.admit(.message, limits: limits, now: 0) == .messages)
        // Data points are out; the telemetry-message token is spent anyway, as in checkEntityRateLimit's `&&`.
        #expect(state.admit(.dataPoints(1), limits: limits, now: 0) == .telemetryDataPoints)
        #expect(state.admit(.dataPoints(1), limits: limits, now: 0) == .telemetryMessages)
    }

    @Test("a message with more data points than the smallest capacity can never pass")
    func neverPasses() throws {
        let limits = RateLimits(telemetryDataPoints: try RateLimit("100:60,4:1"))
        var state = DeviceRateState()
        #expect(try RateLimit("100:60,4:1").smallestCapacity == 4)
        #expect(state.admit(.dataPoints(5), limits: limits, now: 0) == .telemetryDataPoints)
        #expect(state.admit(.dataPoints(5), limits: limits, now: 1_000) == .telemetryDataPoints)
        #expect(state.admit(.dataPoints(4), limits: limits, now: 1_000) == nil)
    }

    @Test("a changed limit starts over full; an unchanged one keeps its state; removing it lifts it")
    func changes() throws {
        var limits = RateLimits(messages: try RateLimit("1:60"), telemetryMessages: try RateLimit("1:60"))
        var state = DeviceRateState()
        #expect(state.admit(.message, limits: limits, now: 0) == nil)
        #expect(state.admit(.dataPoints(1), limits: limits, now: 0) == nil)
        limits.messages = try RateLimit("2:60")
        #expect(state.admit(.message, limits: limits, now: 0) == nil)
        #expect(state.admit(.dataPoints(1), limits: limits, now: 0) == .telemetryMessages)
        limits.telemetryMessages = nil
        #expect(state.admit(.dataPoints(1), limits: limits, now: 0) == nil)
    }

    @Test("limit texts, the JSON form and ThingsBoard versions are parsed strictly, with reasons")
    func parsing() throws {
        #expect(throws: SimulatorError.self) { try RateLimit("10") }
        #expect(throws: SimulatorError.self) { try RateLimit("0:1") }
        #expect(throws: SimulatorError.self) { try RateLimit(" , ") }
        #expect(try RateLimit(" 10:1 , 300:60 ").buckets.count == 2)
        let limits = try RateLimits(json: try JSONValue.parse(#"{"messages":"10:1","telemetryMessages":null}"#))
        #expect(limits.messages?.description == "10:1" && limits.telemetryMessages == nil)
        #expect(limits.json.serialized == #"{"messages":"10:1","telemetryMessages":null,"telemetryDataPoints":null}"#)
        #expect(throws: SimulatorError.self) { try RateLimits(json: try JSONValue.parse(#"{"msgs":"10:1"}"#)) }
        #expect(throws: SimulatorError.self) { try RateLimits(json: try JSONValue.parse(#"{"messages":10}"#)) }
        #expect(try ThingsBoardVersion("3.7").answersSessionLimits == false)
        #expect(try ThingsBoardVersion("3.7.9").answersSessionLimits == false)
        #expect(try ThingsBoardVersion("3.8").answersSessionLimits)
        #expect(try ThingsBoardVersion("4.2.1.1") == ThingsBoardVersion(major: 4, minor: 2, patch: 1))
        for bad in ["3", "3.x", "", "v3.8", "3..8"] {
            #expect(throws: SimulatorError.self, "\(bad)") { try ThingsBoardVersion(bad) }
        }
    }
}

@Suite("Rate limits over MQTT")
struct RateLimitSessionTests {
    /// Adds a profile "limited" with its own limits (and version) and a device "lim" (token "lim-token-0001") in it.
    static func limitedProfile(_ limits: RateLimits?, version: String? = nil) -> (inout SimulatorConfiguration) -> Void {
        { c in
            c.profiles.append(DeviceProfile(name: "limited", strategy: .disabled, rateLimits: limits,
                                            thingsboardVersion: version.flatMap { try? ThingsBoardVersion($0) }))
            c.devices.append(SimDevice(name: "lim", profile: "limited", credentials: .accessToken("lim-token-0001"), createdTime: 9))
        }
    }

    static func drops(_ sim: Simulator, _ device: String) throws -> JSONValue? {
        try Harness.control(sim, "GET", "/devices/\(device)").1["droppedForRateLimits"]
    }

    @Test("CONNECT and attribute/RPC SUBSCRIBEs cost message tokens, telemetry and getSessionLimits do not; over the limit: no PUBACK, DISCONNECT 0x83")
    func messagesLimit() async throws {
        let limits = RateLimits(messages: try RateLimit("4:60"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001", level: 5)                          // 1
            for id: UInt16 in 1...3 {
                client.send(Packet.publish("v1/devices/me/rpc/request/\(id)", #"{"method":"getSessionLimits","params":{}}"#,
                                           qos: 1, packetID: id, v5: true))
                #expect(try client.expectPacket().body == [0, UInt8(id)])
                #expect(try client.expectPacket().publish(v5: true).topic == "v1/devices/me/rpc/response/\(id)")
            }
            for id: UInt16 in 4...8 {
                client.send(Packet.publish("v1/devices/me/telemetry", #"{"n":1}"#, qos: 1, packetID: id, v5: true))
                #expect(try client.expectPacket().body == [0, UInt8(id)])
            }
            // Response filters are registered locally only: free.
            client.send(Packet.subscribe(9, [("v1/devices/me/rpc/response/+", 1), ("v1/devices/me/attributes/response/+", 1),
                                             ("v1/devices/me/attributes", 1)], v5: true))                     // 2
            #expect(try client.expectPacket().body == [0, 9, 0, 1, 1, 1])
            client.send(Packet.publish("v1/devices/me/attributes/request/1", "{}", qos: 1, packetID: 10, v5: true))  // 3
            #expect(try client.expectPacket().body == [0, 10])
            #expect(try client.expectPacket().publish(v5: true).topic == "v1/devices/me/attributes/response/1")
            // The fifth charge (4 is the claim) fails: the RPC subscription is granted but never active.
            client.send(Packet.publish("v1/devices/me/claim", "", qos: 1, packetID: 11, v5: true))          // 4
            #expect(try client.expectPacket().body == [0, 11])
            client.send(Packet.subscribe(12, [("v1/devices/me/rpc/request/+", 1)], v5: true))
            #expect(try client.expectPacket().body == [0, 12, 0, 1])
            #expect(try Harness.control(sim, "GET", "/sessions").1.arrayValue?.first?["subscriptions"]?["v1/devices/me/rpc/request/+"] == nil)
            client.send(Packet.publish("v1/devices/me/rpc/response/5", #"{"ok":1}"#, qos: 1, packetID: 13, v5: true))
            let disconnect = try client.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x83, "\(disconnect)")
            #expect(client.closesWithoutPacket())
            #expect(try Self.drops(sim, "lim") == .object([("total", .integer(2)), ("messages", .integer(2)),
                                                            ("telemetryMessages", .integer(0)), ("telemetryDataPoints", .integer(0))]))
            #expect(try Self.drops(sim, "known")?["total"] == .integer(0))
        }
    }

    @Test("data points are counted as ThingsBoard counts them: keys of every {ts,values}, nulls skipped, an object is one")
    func dataPoints() async throws {
        let limits = RateLimits(telemetryMessages: try RateLimit("4:60"), telemetryDataPoints: try RateLimit("6:60"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001")
            client.send(Packet.publish("v1/devices/me/telemetry", #"[{"ts":1,"values":{"a":1,"b":2}},{"ts":2,"values":{"a":3}}]"#,
                                       qos: 1, packetID: 1))                                                   // 3 points
            #expect(try client.expectPacket().body == [0, 1])
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"a":1,"b":null,"c":{"x":1,"y":2}}"#, qos: 1, packetID: 2))
            #expect(try client.expectPacket().body == [0, 2])                                                 // 5 points
            client.send(Packet.publish("v1/devices/me/attributes", #"{"fw":"1.0"}"#, qos: 1, packetID: 3))     // 6 points
            #expect(try client.expectPacket().body == [0, 3])
            // An empty post carries no data point: it is a plain message (and there is no messages limit).
            client.send(Packet.publish("v1/devices/me/telemetry", "{}", qos: 1, packetID: 4))
            #expect(try client.expectPacket().body == [0, 4])
            // The seventh point: dropped, no PUBACK, a bare close in MQTT 3.1.1 (the message token is spent).
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"z":1}"#, qos: 1, packetID: 5))
            #expect(client.closesWithoutPacket())
            let (_, telemetry) = try Harness.control(sim, "GET", "/devices/lim/telemetry")
            #expect(telemetry["received"] == .integer(4))  // two entries, one, and the empty post's
            // Four telemetry messages are used up now, so the next one fails on that limit.
            let again = try Harness.device(sim, token: "lim-token-0001")
            again.send(Packet.publish("v1/devices/me/attributes", #"{"x":1}"#, qos: 1, packetID: 1))
            #expect(again.closesWithoutPacket())
            let drops = try Self.drops(sim, "lim")
            #expect(drops?["telemetryDataPoints"] == .integer(1) && drops?["telemetryMessages"] == .integer(1))
        }
    }

    @Test("more data points in one message than the smallest capacity never pass, even on a fresh session")
    func tooManyPoints() async throws {
        let limits = RateLimits(telemetryDataPoints: try RateLimit("100:60,2:1"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            for _ in 0..<2 {
                let client = try Harness.device(sim, token: "lim-token-0001", level: 5)
                client.send(Packet.publish("v1/devices/me/telemetry", #"{"a":1,"b":2,"c":3}"#, qos: 1, packetID: 1, v5: true))
                let disconnect = try client.expectPacket()
                #expect(disconnect.type == 14 && disconnect.body.first == 0x83)
                try await Task.sleep(for: .milliseconds(1100))
            }
        }
    }

    @Test("greedy refill over MQTT: a limit of 2:4 lets one more message through 2.2 s later, not two")
    func refill() async throws {
        // Half a token per second: wide margins, so that a loaded machine does not change the outcome.
        let limits = RateLimits(telemetryMessages: try RateLimit("2:4"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001")
            for id: UInt16 in 1...2 {
                client.send(Packet.publish("v1/devices/me/telemetry", #"{"n":1}"#, qos: 1, packetID: id))
                #expect(try client.expectPacket().body == [0, UInt8(id)])
            }
            // Slept on this thread, not with Task.sleep: a Task.sleep ends when a thread of the cooperative pool
            // is free again, which on a busy two-core machine was seconds late, time enough for the bucket to
            // refill two tokens and let message 4 through. The elapsed time is checked so that a late wake-up
            // says so instead of failing on the message.
            let slept = ContinuousClock().measure { usleep(2_200_000) }
            try #require(slept < .milliseconds(3500), "the 2.2 s sleep took \(slept): the bucket would refill further")
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"n":1}"#, qos: 1, packetID: 3))
            #expect(try client.expectPacket().body == [0, 3])
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"n":1}"#, qos: 1, packetID: 4))
            #expect(client.closesWithoutPacket())
        }
    }

    @Test("a rate-limited CONNECT gets CONNACK 3 (v5 0x9F, then DISCONNECT 0x96) and does not take the session over")
    func connect() async throws {
        let limits = RateLimits(messages: try RateLimit("1:60"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let first = try Harness.device(sim, token: "lim-token-0001", level: 5)
            let v3 = try RawMQTTClient(port: sim.mqttPort)
            #expect(try v3.connect(level: 4, username: "lim-token-0001").code == 3)
            #expect(v3.closesWithoutPacket())
            let v5 = try RawMQTTClient(port: sim.mqttPort)
            #expect(try v5.connect(level: 5, username: "lim-token-0001").code == 0x9F)
            let disconnect = try v5.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x96, "\(disconnect)")
            #expect(v5.closesWithoutPacket())
            // The first session was not taken over.
            first.send(Packet.pingreq)
            #expect(try first.expectPacket().type == 13)
            #expect(try Self.drops(sim, "lim")?["messages"] == .integer(2))
            // Other profiles' devices use the simulator's limits (none here).
            _ = try Harness.device(sim, token: "known-token-0001")
        }
    }

    @Test("a session's close is charged too: with 2:60, connect and disconnect use the tokens and the next CONNECT is refused")
    func closeCharged() async throws {
        let limits = RateLimits(messages: try RateLimit("2:60"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001")
            client.send(Packet.disconnect)
            #expect(client.closesWithoutPacket())
            try await Task.sleep(for: .milliseconds(200))
            let again = try RawMQTTClient(port: sim.mqttPort)
            #expect(try again.connect(username: "lim-token-0001").code == 3)
            // The close's charge is silent: only the refused CONNECT counts as dropped.
            #expect(try Self.drops(sim, "lim")?["total"] == .integer(1))
        }
    }

    @Test("a rate-limited UNSUBSCRIBE of attributes is acknowledged but never reaches the device actor: pushes go on")
    func unsubscribe() async throws {
        let limits = RateLimits(messages: try RateLimit("2:60"))
        try await Harness.with(Self.limitedProfile(limits)) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001")                                      // 1
            client.send(Packet.subscribe(1, [("v1/devices/me/attributes", 1)]))                                  // 2
            #expect(try client.expectPacket().body == [0, 1, 1])
            client.send(Packet.unsubscribe(2, ["v1/devices/me/attributes"]))
            #expect(try client.expectPacket().type == 11)
            #expect(try Harness.control(sim, "POST", "/devices/lim/attributes", #"{"k":2}"#).0 == 200)
            let push = try client.expectPacket().publish()
            #expect(push.topic == "v1/devices/me/attributes" && push.payload == #"{"k":2}"#)
            #expect(try Self.drops(sim, "lim")?["messages"] == .integer(1))
        }
    }

    @Test("deleting a device forgets its buckets and drops, even though its session's close comes after")
    func deletion() async throws {
        try await Harness.with({ $0.rateLimits = RateLimits(messages: try? RateLimit("5:60")) }) { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            #expect(try await sim.onLoop { sim.rateState["known"] != nil })
            #expect(try Harness.control(sim, "DELETE", "/devices/known").0 == 200)
            #expect(client.closesWithoutPacket())
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await sim.onLoop { sim.rateState["known"] == nil && sim.rateLimitDrops["known"] == nil })
        }
    }

    @Test("getSessionLimits: the device's profile limits as strings, null where unset, the payload limit and queue size; a gateway's shape")
    func sessionLimits() async throws {
        let limits = RateLimits(messages: try RateLimit("10:1,300:60"), telemetryDataPoints: try RateLimit("100:1"))
        try await Harness.with({ c in
            Self.limitedProfile(limits)(&c)
            c.maxPacketSize = 32768
            c.rateLimits = RateLimits(telemetryMessages: try? RateLimit("20:1"))
        }) { sim in
            for (token, expected) in [
                ("lim-token-0001", #"{"messages":"10:1,300:60","telemetryMessages":null,"telemetryDataPoints":"100:1"}"#),
                ("known-token-0001", #"{"messages":null,"telemetryMessages":"20:1","telemetryDataPoints":null}"#),
            ] {
                let client = try Harness.device(sim, token: token)
                client.send(Packet.publish("v1/devices/me/rpc/request/7", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 1))
                #expect(try client.expectPacket().body == [0, 1])
                let answer = try client.expectPacket().publish()
                #expect(answer.topic == "v1/devices/me/rpc/response/7")
                #expect(answer.payload == #"{"maxPayloadSize":32768,"maxInflightMessages":100,"rateLimits":"# + expected + "}")
            }
            // A gateway gets ThingsBoard's gateway shape; tb-sim has no gateway limits of its own.
            #expect(try Harness.control(sim, "POST", "/devices",
                #"{"name":"gw","profile":"limited","gateway":true,"credentials":{"type":"ACCESS_TOKEN","token":"gw-token-0001"}}"#).0 == 201)
            let gateway = try Harness.device(sim, token: "gw-token-0001")
            gateway.send(Packet.publish("v1/devices/me/rpc/request/1", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 1))
            #expect(try gateway.expectPacket().body == [0, 1])
            #expect(try gateway.expectPacket().publish().payload == #"{"maxPayloadSize":32768,"maxInflightMessages":100,"rateLimits":{"messages":"10:1,300:60","telemetryMessages":null,"telemetryDataPoints":"100:1"},"gatewayRateLimits":{"messages":null,"telemetryMessages":null,"telemetryDataPoints":null}}"#)
        }
    }

    @Test("a profile older than 3.8: getSessionLimits is an ordinary client-side RPC (pending, charged, timed out)")
    func olderServer() async throws {
        let limits = RateLimits(messages: try RateLimit("3:60"))
        try await Harness.with({ c in
            Self.limitedProfile(limits, version: "3.7.1")(&c)
            c.timings.clientRPCTimeout = .milliseconds(500)
        }) { sim in
            let client = try Harness.device(sim, token: "lim-token-0001")                                      // 1
            client.send(Packet.publish("v1/devices/me/rpc/request/1", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 1))
            #expect(try client.expectPacket().body == [0, 1])                                                   // 2
            let pending = try Harness.control(sim, "GET", "/devices/lim/client-rpc").1
            #expect(pending.arrayValue?.first?["method"] == .string("getSessionLimits"))
            let timeout = try client.expectPacket(timeout: 3).publish()
            #expect(timeout.topic == "v1/devices/me/rpc/response/1" && timeout.payload == #"{"error":"timeout"}"#)
            client.send(Packet.publish("v1/devices/me/rpc/request/2", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 2))
            #expect(try client.expectPacket().body == [0, 2])                                                   // 3
            client.send(Packet.publish("v1/devices/me/rpc/request/3", #"{"method":"getSessionLimits","params":{}}"#, qos: 1, packetID: 3))
            #expect(client.closesWithoutPacket())
            let profile = try Harness.control(sim, "GET", "/profiles").1.arrayValue?.first { $0["name"] == .string("limited") }
            #expect(profile?["thingsboardVersion"] == .string("3.7.1"))
        }
    }

    @Test("max_payload_size is compared with the remaining length: equal passes, one more closes (v5: DISCONNECT 0x81)")
    func payloadSize() async throws {
        try await Harness.with({ $0.maxPacketSize = 1024 }) { sim in
            // Remaining length = 2 + 23 (topic) + 2 (packet id) [+ 1 (v5 properties)] + payload.
            func payload(_ size: Int) -> String { #"{"a":""# + String(repeating: "x", count: size - 8) + #""}"# }
            let v3 = try Harness.device(sim, token: "known-token-0001")
            v3.send(Packet.publish("v1/devices/me/telemetry", payload(997), qos: 1, packetID: 1))
            #expect(try v3.expectPacket().body == [0, 1])
            v3.send(Packet.publish("v1/devices/me/telemetry", payload(998), qos: 1, packetID: 2))
            #expect(v3.closesWithoutPacket())
            let v5 = try Harness.device(sim, token: "known-token-0001", level: 5)
            v5.send(Packet.publish("v1/devices/me/telemetry", payload(996), qos: 1, packetID: 1, v5: true))
            #expect(try v5.expectPacket().body == [0, 1])
            v5.send(Packet.publish("v1/devices/me/telemetry", payload(997), qos: 1, packetID: 2, v5: true))
            let disconnect = try v5.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x81, "\(disconnect)")
            #expect(v5.closesWithoutPacket())
        }
    }

    @Test("the control interface sets a profile's limits and version, and refuses bad ones with the reason")
    func control() async throws {
        try await Harness.with { sim in
            let (status, body) = try Harness.control(sim, "POST", "/profiles",
                #"{"name":"paced","rateLimits":{"messages":"2:60"},"thingsboardVersion":"4.2"}"#)
            #expect(status == 201)
            #expect(body["rateLimits"]?["messages"] == .string("2:60") && body["thingsboardVersion"] == .string("4.2.0"))
            #expect(try Harness.control(sim, "POST", "/devices",
                #"{"name":"p1","profile":"paced","credentials":{"type":"ACCESS_TOKEN","token":"p1-token-0001"}}"#).0 == 201)
            #expect(try Harness.control(sim, "GET", "/devices/p1").1["rateLimits"]?["messages"] == .string("2:60"))
            // Two CONNECTs (the second takes over; the first's close then finds no token), and the third is refused.
            let first = try Harness.device(sim, token: "p1-token-0001")
            let second = try Harness.device(sim, token: "p1-token-0001")
            #expect(first.closesWithoutPacket())
            let third = try RawMQTTClient(port: sim.mqttPort)
            #expect(try third.connect(username: "p1-token-0001").code == 3)
            let bad = try Harness.control(sim, "POST", "/profiles", #"{"name":"x","rateLimits":{"messages":"fast"}}"#)
            #expect(bad.0 == 400 && (bad.1["error"]?.stringValue ?? "").contains("20:1,600:60"))
            let badVersion = try Harness.control(sim, "POST", "/profiles", #"{"name":"x","thingsboardVersion":"new"}"#)
            #expect(badVersion.0 == 400)
            withExtendedLifetime(second) {}
        }
    }
}
