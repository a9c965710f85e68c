import NIOCore
import TBJSON
import Testing
@testable import TBSimulator

@Suite("Provision request parsing and decisions")
struct ProvisioningModelTests {
    @Test("missing key or secret, and JSON null anywhere, are runtime errors (PUBACK and close, no response)")
    func runtimeErrors() {
        let cases = [
            #"{"provisionDeviceSecret":"S"}"#,
            #"{"provisionDeviceKey":"K"}"#,
            #"{"provisionDeviceKey":null,"provisionDeviceSecret":"S"}"#,
            #"{"provisionDeviceKey":"K","provisionDeviceSecret":"S","deviceName":null}"#,
            #"{"provisionDeviceKey":"K","provisionDeviceSecret":"S","clientId":null}"#,
            #"{"provisionDeviceKey":"K","provisionDeviceSecret":"S","credentialsType":"PLAIN"}"#,
            #"{"provisionDeviceKey":"K","provisionDeviceSecret":"S","gateway":null}"#,
        ]
        for text in cases {
            #expect(throws: PayloadError.self) { try ProvisionRequest.parse(Array(text.utf8)) }
            do {
                _ = try ProvisionRequest.parse(Array(text.utf8))
            } catch {
                guard case .runtime = error else {
                    Issue.record("\(text) should be a runtime error, got \(error)")
                    continue
                }
            }
        }
    }

    @Test("non-JSON and non-object payloads are adaptor errors")
    func adaptorErrors() {
        for text in ["not json {", "[1,2]", "", "\"x\""] {
            do {
                _ = try ProvisionRequest.parse(Array(text.utf8))
                Issue.record("\(text) parsed")
            } catch {
                guard case .adaptor = error else {
                    Issue.record("\(text) should be an adaptor error, got \(error)")
                    continue
                }
            }
        }
    }

    @Test("lenient JSON with unquoted keys and single quotes is accepted")
    func lenient() throws {
        let request = try ProvisionRequest.parse(Array("{deviceName:'a b',provisionDeviceKey:K,provisionDeviceSecret:'S',gateway:'true'}".utf8))
        #expect(request.deviceName == "a b")
        #expect(request.provisionDeviceKey == "K")
        #expect(request.provisionDeviceSecret == "S")
        #expect(request.gateway)
        #expect(request.credentialsType == .accessToken)
    }

    func registry() -> DeviceRegistry {
        var r = DeviceRegistry()
        try? r.upsertProfile(DeviceProfile(name: "p", provisionKey: "K", provisionSecret: "S", strategy: .allowCreateNewDevices))
        try? r.upsertProfile(DeviceProfile(name: "q", provisionKey: "K2", provisionSecret: "S2", strategy: .checkPreProvisionedDevices))
        try? r.upsertProfile(DeviceProfile(name: "off", provisionKey: "K3", provisionSecret: nil, strategy: .disabled))
        try? r.addDevice(SimDevice(name: "pre", profile: "q", credentials: .accessToken("pre-token"), createdTime: 0))
        try? r.addDevice(SimDevice(name: "other", profile: "p", credentials: .accessToken("other-token"), createdTime: 0))
        return r
    }

    @Test("decision table: NOT_FOUND, FAILURE and SUCCESS cases")
    func decisionTable() {
        var r = self.registry()
        func status(_ request: ProvisionRequest) -> ProvisionStatus { r.provision(request, now: 0).status }
        #expect(status(ProvisionRequest(deviceName: "a", provisionDeviceKey: "", provisionDeviceSecret: "S")) == .notFound)
        #expect(status(ProvisionRequest(deviceName: "a", provisionDeviceKey: "nope", provisionDeviceSecret: "S")) == .notFound)
        #expect(status(ProvisionRequest(deviceName: "a", provisionDeviceKey: "K", provisionDeviceSecret: "wrong")) == .notFound)
        #expect(status(ProvisionRequest(deviceName: "a", provisionDeviceKey: "K3", provisionDeviceSecret: "x")) == .notFound)
        #expect(status(ProvisionRequest(deviceName: "   ", provisionDeviceKey: "K", provisionDeviceSecret: "S")) == .failure)
        #expect(status(ProvisionRequest(deviceName: "other", provisionDeviceKey: "K", provisionDeviceSecret: "S")) == .failure)
        #expect(status(ProvisionRequest(deviceName: "pre", provisionDeviceKey: "K", provisionDeviceSecret: "S")) == .failure)
        #expect(status(ProvisionRequest(deviceName: "dup", provisionDeviceKey: "K", provisionDeviceSecret: "S", token: "other-token")) == .failure)
        #expect(status(ProvisionRequest(deviceName: "b1", provisionDeviceKey: "K", provisionDeviceSecret: "S",
                                        credentialsType: .mqttBasic, clientID: "c", password: "p")) == .failure)
        // Pre-provisioned: missing device, device in another profile, then first success, then FAILURE.
        #expect(status(ProvisionRequest(deviceName: "ghost", provisionDeviceKey: "K2", provisionDeviceSecret: "S2")) == .failure)
        #expect(status(ProvisionRequest(deviceName: "other", provisionDeviceKey: "K2", provisionDeviceSecret: "S2")) == .failure)
        let first = r.provision(ProvisionRequest(deviceName: "pre", provisionDeviceKey: "K2", provisionDeviceSecret: "S2",
                                                 token: "ignored-token"), now: 0)
        #expect(first.status == .success)
        #expect(first.credentials == .accessToken("pre-token"))
        #expect(status(ProvisionRequest(deviceName: "pre", provisionDeviceKey: "K2", provisionDeviceSecret: "S2")) == .failure)
    }

    @Test("a missing name gets a random 20-character alphanumeric name; no credentials get a generated token")
    func generated() throws {
        var r = self.registry()
        let result = r.provision(ProvisionRequest(deviceName: nil, provisionDeviceKey: "K", provisionDeviceSecret: "S",
                                                  credentialsType: .mqttBasic), now: 0)
        #expect(result.status == .success)
        let name = try #require(result.deviceName)
        #expect(name.count == 20 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        guard case .accessToken(let token)? = result.credentials else {
            Issue.record("expected a generated access token, got \(String(describing: result.credentials))")
            return
        }
        #expect(token.count == 20 && token.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
        #expect(r.device(named: name)?.provisionState == "provisioned")
        let again = r.provision(ProvisionRequest(deviceName: " trimmed ", provisionDeviceKey: "K", provisionDeviceSecret: "S"), now: 0)
        #expect(again.deviceName == "trimmed")
    }

    @Test("response bodies are byte-exact in ThingsBoard's key order")
    func responseBodies() {
        #expect(ProvisionResult(status: .success, credentials: .accessToken("Ab3"), deviceName: "d", reason: "").responseBody.serialized
            == #"{"credentialsValue":"Ab3","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
        let basic = DeviceCredentials.mqttBasic(MQTTBasicCredentials(clientID: "c", userName: nil, password: "p"))
        #expect(ProvisionResult(status: .success, credentials: basic, deviceName: "d", reason: "").responseBody.serialized
            == #"{"credentialsValue":{"clientId":"c","userName":null,"password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
        #expect(ProvisionResult.notFound("x").responseBody.serialized == #"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#)
        #expect(ProvisionResult.failure("x").responseBody.serialized == #"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#)
    }

    @Test("authentication: token ignores password and client id; MQTT_BASIC fields must match")
    func authentication() throws {
        var r = self.registry()
        try r.addDevice(SimDevice(name: "b", profile: "p",
                                  credentials: .mqttBasic(MQTTBasicCredentials(clientID: "cid", userName: "u", password: "pw")), createdTime: 0))
        try r.addDevice(SimDevice(name: "c", profile: "p",
                                  credentials: .mqttBasic(MQTTBasicCredentials(clientID: "only-cid", userName: nil, password: nil)), createdTime: 0))
        try r.addDevice(SimDevice(name: "u", profile: "p",
                                  credentials: .mqttBasic(MQTTBasicCredentials(clientID: nil, userName: "only-user", password: "x")), createdTime: 0))
        #expect(r.authenticate(clientID: "anything", username: "other-token", password: "whatever")?.name == "other")
        #expect(r.authenticate(clientID: "", username: "other-token", password: nil)?.name == "other")
        #expect(r.authenticate(clientID: "cid", username: "u", password: "pw")?.name == "b")
        #expect(r.authenticate(clientID: "cid", username: "u", password: "bad") == nil)
        #expect(r.authenticate(clientID: "cid", username: "u", password: nil) == nil)
        #expect(r.authenticate(clientID: "only-cid", username: nil, password: nil)?.name == "c")
        #expect(r.authenticate(clientID: "any", username: "only-user", password: "x")?.name == "u")
        #expect(r.authenticate(clientID: "any", username: "only-user", password: nil) == nil)
        #expect(r.authenticate(clientID: "nobody", username: nil, password: nil) == nil)
    }
}

@Suite("Telemetry and attribute conversion")
struct PayloadConverterTests {
    func values(_ text: String) throws -> String {
        let entries = try PayloadConverter.telemetry(Array(text.utf8), serverTime: 42)
        return JSONValue.array(entries.map(\.json)).serialized
    }

    @Test("type rules: long, double, cast strings, big numbers, JSON values, nulls skipped")
    func typeRules() throws {
        #expect(try self.values(#"{"a":1,"b":1.0,"c":"2.5","d":"7","e":true,"f":null,"g":{"x":[1]},"h":"abc","i":1e3,"j":12345678901234567890}"#)
            == #"[{"ts":42,"values":{"a":1,"b":1.0,"c":2.5,"d":7,"e":true,"g":{"x":[1]},"h":"abc","i":1000,"j":"12345678901234567890"}}]"#)
        #expect(try self.values(#"{"s":0.12345678901234567890}"#) == #"[{"ts":42,"values":{"s":"0.12345678901234567890"}}]"#)
        #expect(try self.values(#"{"big":1e20,"tiny":0.0001}"#) == #"[{"ts":42,"values":{"big":"100000000000000000000","tiny":1.0E-4}}]"#)
    }

    @Test("shapes: {ts,values}, arrays, ts only when both are present")
    func shapes() throws {
        #expect(try self.values(#"[{"ts":1700000000000,"values":{"t":21.5}},{"x":1}]"#)
            == #"[{"ts":1700000000000,"values":{"t":21.5}},{"ts":42,"values":{"x":1}}]"#)
        #expect(try self.values(#"{"ts":5,"x":1}"#) == #"[{"ts":42,"values":{"ts":5,"x":1}}]"#)
    }

    @Test("invalid telemetry: non-JSON, scalars, arrays of scalars are adaptor errors")
    func invalid() {
        for text in ["{bad", "42", "[1]", "", "\"s\""] {
            do {
                _ = try PayloadConverter.telemetry(Array(text.utf8), serverTime: 0)
                Issue.record("\(text) accepted")
            } catch {
                guard case .adaptor = error else {
                    Issue.record("\(text): \(error)")
                    continue
                }
            }
        }
        #expect(throws: PayloadError.self) { try PayloadConverter.attributes(Array("[{\"a\":1}]".utf8)) }
    }

    @Test("Java's Double.toString layout")
    func javaDoubles() {
        #expect(javaDoubleString(1.0) == "1.0")
        #expect(javaDoubleString(21.5) == "21.5")
        #expect(javaDoubleString(-0.5) == "-0.5")
        #expect(javaDoubleString(1e20) == "1.0E20")
        #expect(javaDoubleString(1.5e-5) == "1.5E-5")
        #expect(javaDoubleString(1234567.0) == "1234567.0")
        #expect(javaDoubleString(12345678.0) == "1.2345678E7")
        #expect(javaDoubleString(0.001) == "0.001")
    }
}

@Suite("MQTT codec")
struct CodecTests {
    func decode(_ bytes: [UInt8], version: MQTTProtocolVersion? = nil) throws(MQTTDecodeError) -> MQTTClientPacket {
        var buffer = ByteBuffer(bytes: bytes)
        guard let header = try MQTTDecoder.peekFixedHeader(buffer) else { throw MQTTDecodeError(.malformed, "short") }
        buffer.moveReaderIndex(forwardBy: header.headerLength)
        return try MQTTDecoder.decodePacket(firstByte: header.firstByte, body: buffer.getSlice(at: buffer.readerIndex, length: header.remainingLength) ?? ByteBuffer(),
                                            version: version)
    }

    @Test("CONNECT at levels 3, 4 and 5; other levels and bad MQTT 3.1 client ids are refused")
    func connect() throws {
        for level: UInt8 in [3, 4, 5] {
            guard case .connect(let c) = try self.decode(Packet.connect(level: level, clientID: "abc", username: "u", password: "p")) else {
                Issue.record("level \(level) not decoded as CONNECT")
                continue
            }
            #expect(c.version.rawValue == level && c.clientID == "abc" && c.username == "u" && c.passwordText == "p" && c.cleanSession)
        }
        #expect(throws: MQTTDecodeError.self) { try self.decode(Packet.connect(level: 6)) }
        #expect(throws: MQTTDecodeError.self) { try self.decode(Packet.connect(level: 3, clientID: "")) }
        #expect(throws: MQTTDecodeError.self) { try self.decode(Packet.connect(level: 3, clientID: String(repeating: "x", count: 24))) }
        #expect(throws: Never.self) { try self.decode(Packet.connect(level: 4, clientID: "")) }
    }

    @Test("MQTT 5 properties are parsed and skipped")
    func v5Properties() throws {
        // PUBLISH QoS 1 with a topic alias and a user property.
        let props: [UInt8] = [0x23, 0, 3, 0x26] + Packet.string("k") + Packet.string("v")
        let body = Packet.string("v1/devices/me/telemetry") + [0, 9] + Packet.varint(props.count) + props + Array("{}".utf8)
        guard case .publish(let p) = try self.decode(Packet.frame(0x32, body), version: .v5) else {
            Issue.record("not a PUBLISH")
            return
        }
        #expect(p.topic == "v1/devices/me/telemetry" && p.packetID == 9 && p.payload == Array("{}".utf8))
        #expect(p.properties.contains(.twoByte(id: 0x23, value: 3)))
    }

    @Test("wildcards in a PUBLISH topic and SUBSCRIBE without QoS 1 flags are malformed")
    func malformed() {
        #expect(throws: MQTTDecodeError.self) { try self.decode(Packet.publish("a/+", "x")) }
        var sub = Packet.subscribe(1, [("a", 0)])
        sub[0] = 0x80
        #expect(throws: MQTTDecodeError.self) { try self.decode(sub) }
    }

    @Test("server packets are encoded per protocol level")
    func encode() {
        func bytes(_ version: MQTTProtocolVersion, _ packet: MQTTServerPacket) -> [UInt8] {
            var out = ByteBuffer()
            MQTTEncoder.encode(MQTTOutbound(version: version, packet: packet), into: &out)
            return out.readBytes(length: out.readableBytes) ?? []
        }
        #expect(bytes(.v3_1_1, .connack(sessionPresent: true, returnCode: 5)) == [0x20, 2, 1, 5])
        #expect(bytes(.v5, .connack(sessionPresent: false, returnCode: 0x86)) == [0x20, 3, 0, 0x86, 0])
        #expect(bytes(.v3_1_1, .puback(packetID: 7, reasonCode: 0x99)) == [0x40, 2, 0, 7])
        #expect(bytes(.v5, .puback(packetID: 7, reasonCode: 0x99)) == [0x40, 3, 0, 7, 0x99])
        #expect(bytes(.v5, .puback(packetID: 7, reasonCode: 0)) == [0x40, 2, 0, 7])
        #expect(bytes(.v3_1_1, .suback(packetID: 1, returnCodes: [1, 0x80])) == [0x90, 4, 0, 1, 1, 0x80])
        #expect(bytes(.v5, .disconnect(reasonCode: 0x8E)) == [0xE0, 2, 0x8E, 0])
        #expect(bytes(.v3_1_1, .publish(MQTTPublish(topic: "t", payload: [0x41], qos: 1, packetID: 2)))
            == [0x32, 6, 0, 1, 0x74, 0, 2, 0x41])
    }

    @Test("CONNACK refusal codes: 5 for bad tokens, 2 for unknown client ids, never 4")
    func refusalCodes() {
        typealias H = MQTTSessionHandler
        #expect(H.v3ReturnCode(H.refusalCode(clientID: "", username: "tok", password: nil)) == 5)
        #expect(H.v3ReturnCode(H.refusalCode(clientID: "x", username: "tok", password: nil)) == 5)
        #expect(H.v3ReturnCode(H.refusalCode(clientID: "x", username: nil, password: nil)) == 2)
        #expect(H.v3ReturnCode(H.refusalCode(clientID: "", username: nil, password: nil)) == 5)
        #expect(H.v3ReturnCode(H.refusalCode(clientID: "x", username: "u", password: "p")) == 5)
        #expect(H.refusalCode(clientID: "", username: "tok", password: nil) == 0x86)
        #expect(H.refusalCode(clientID: "x", username: nil, password: nil) == 0x85)
        #expect(H.refusalCode(clientID: "", username: nil, password: nil) == 0x87)
        #expect(H.refusalCode(clientID: "", username: "u", password: "p") == 0x87)
        for code: UInt8 in [0x80, 0x85, 0x86, 0x87, 0x88] { #expect(H.v3ReturnCode(code) != 4) }
    }

    @Test("topic filter matching")
    func matching() {
        #expect(Topics.matches(filter: "v1/devices/me/rpc/request/+", topic: "v1/devices/me/rpc/request/12"))
        #expect(!Topics.matches(filter: "v1/devices/me/rpc/request/+", topic: "v1/devices/me/rpc/request/12/x"))
        #expect(Topics.matches(filter: "v1/#", topic: "v1/devices/me"))
        #expect(!Topics.matches(filter: "v1/devices/me/attributes", topic: "v1/devices/me/attributes/response/1"))
    }
}
