import Foundation
import TBJSON
import Testing
@testable import TBSimulator

@Suite("Provision sessions over MQTT")
struct ProvisionSessionTests {
    @Test("ACCESS_TOKEN: PUBACK, then the byte-exact response with a generated 20-character token that connects")
    func accessToken() async throws {
        try await Harness.with { sim in
            let body = try Harness.provision(sim, #"{"deviceName":"dev-abc","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#)
            let json = try JSONValue.parse(body)
            let token = try #require(json["credentialsValue"]?.stringValue)
            #expect(token.count == 20 && token.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
            #expect(body == #"{"credentialsValue":"\#(token)","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
            let device = try Harness.device(sim, token: token)
            device.send(Packet.pingreq)
            #expect(try device.expectPacket().type == 13)
        }
    }

    @Test("both strategies, all credential types, NOT_FOUND and FAILURE bodies")
    func responses() async throws {
        try await Harness.with { sim in
            func check(_ request: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
                let got = try Harness.provision(sim, request)
                #expect(got == expected, sourceLocation: sourceLocation)
            }
            let k = #""provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret""#
            try check(#"{"deviceName":"t1",\#(k),"token":"my-token-0001"}"#, #"{"credentialsValue":"my-token-0001","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
            try check(#"{"deviceName":"b1",\#(k),"credentialsType":"MQTT_BASIC","clientId":"c1","username":"u1","password":"p1"}"#, #"{"credentialsValue":{"clientId":"c1","userName":"u1","password":"p1"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
            try check(#"{"deviceName":"b2",\#(k),"credentialsType":"MQTT_BASIC","username":"u2"}"#, #"{"credentialsValue":{"clientId":null,"userName":"u2","password":null},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#)
            try check(#"{"deviceName":"x1",\#(k),"credentialsType":"X509_CERTIFICATE","hash":"MIIBfakecert=="}"#, #"{"credentialsValue":"MIIBfakecert==","credentialsType":"X509_CERTIFICATE","status":"SUCCESS"}"#)
            let notFound = #"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#
            let failure = #"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#
            try check(#"{"deviceName":"n1","provisionDeviceKey":"prov-key","provisionDeviceSecret":"wrong"}"#, notFound)
            try check(#"{"deviceName":"n1","provisionDeviceKey":"nope","provisionDeviceSecret":"prov-secret"}"#, notFound)
            try check(#"{"deviceName":"n1","provisionDeviceKey":"closed-key","provisionDeviceSecret":"x"}"#, notFound)
            try check(#"{"deviceName":"t1",\#(k)}"#, failure)
            try check(#"{"deviceName":"  ",\#(k)}"#, failure)
            try check(#"{"deviceName":"t2",\#(k),"token":"my-token-0001"}"#, failure)
            let pre = #""provisionDeviceKey":"pre-key","provisionDeviceSecret":"pre-secret""#
            try check(#"{"deviceName":"pre-1",\#(pre),"token":"ignored"}"#, #"{"credentialsValue":"pre-1-token-0001","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
            try check(#"{"deviceName":"pre-1",\#(pre)}"#, failure)
            try check(#"{"deviceName":"known",\#(pre)}"#, failure)
            try check(#"{"deviceName":"ghost",\#(pre)}"#, failure)
            // Lenient JSON: unquoted keys, single quotes.
            try check("{deviceName:'len-1',provisionDeviceKey:'prov-key',provisionDeviceSecret:prov-secret,token:'len-token-01'}", #"{"credentialsValue":"len-token-01","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#)
        }
    }

    @Test("response QoS follows the subscription, and is 1 without one; the server closes after the delay")
    func responseQoSAndClose() async throws {
        try await Harness.with({ $0.timings.provisionCloseDelay = .milliseconds(300) }) { sim in
            for (subscribe, expected) in [(UInt8?.some(0), UInt8(0)), (nil, UInt8(1))] {
                let client = try Harness.provisionClient(sim, subscribeQoS: subscribe)
                client.send(Packet.publish("/provision/request", #"{"provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#, qos: 1, packetID: 3))
                #expect(try client.expectPacket().type == 4)
                let response = try client.expectPacket()
                #expect(response.type == 3 && response.qos == expected)
                #expect(response.publish().topic == "/provision/response")
                #expect(client.closesWithoutPacket(timeout: 5))
            }
        }
    }

    @Test("missing key or a JSON null: PUBACK, then a close with no response")
    func silentClose() async throws {
        try await Harness.with { sim in
            for request in [#"{"provisionDeviceSecret":"prov-secret","deviceName":"m1"}"#,
                            #"{"provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret","deviceName":null}"#] {
                let client = try Harness.provisionClient(sim)
                client.send(Packet.publish("/provision/request", request, qos: 1, packetID: 5))
                let puback = try client.expectPacket()
                #expect(puback.type == 4 && puback.body == [0, 5])
                #expect(client.closesWithoutPacket())
            }
        }
    }

    @Test("non-JSON: MQTT 3.1.1 closes without PUBACK; MQTT 5 gets PUBACK 0x99 and stays")
    func notJSON() async throws {
        try await Harness.with { sim in
            let v3 = try Harness.provisionClient(sim)
            v3.send(Packet.publish("/provision/request", "not json {", qos: 1, packetID: 5))
            #expect(v3.closesWithoutPacket())
            let v5 = try Harness.provisionClient(sim, level: 5)
            v5.send(Packet.publish("/provision/request", "not json {", qos: 1, packetID: 5, v5: true))
            let puback = try v5.expectPacket()
            #expect(puback.type == 4 && puback.body == [0, 5, 0x99])
            v5.send(Packet.pingreq)
            #expect(try v5.expectPacket().type == 13)
        }
    }

    @Test("only /provision/response is granted; publishing elsewhere gets PUBACK and a close")
    func sessionRules() async throws {
        try await Harness.with { sim in
            let v3 = try Harness.provisionClient(sim, subscribeQoS: nil)
            v3.send(Packet.subscribe(2, [("/provision/response", 2), ("v1/devices/me/attributes", 1), ("#", 0)]))
            let suback = try v3.expectPacket()
            #expect(suback.type == 9 && suback.body == [0, 2, 1, 0x80, 0x80])
            v3.send(Packet.pingreq)
            #expect(try v3.expectPacket().type == 13)
            v3.send(Packet.publish("v1/devices/me/telemetry", "{}", qos: 1, packetID: 9))
            let puback = try v3.expectPacket()
            #expect(puback.type == 4 && puback.body == [0, 9])
            #expect(v3.closesWithoutPacket())

            let v5 = try Harness.provisionClient(sim, level: 5, subscribeQoS: nil)
            v5.send(Packet.subscribe(2, [("/provision/response", 1), ("other", 1)], v5: true))
            #expect(try v5.expectPacket().body == [0, 2, 0, 1, 0x8F])
            v5.send(Packet.publish("other/topic", "{}", qos: 1, packetID: 4, v5: true))
            #expect(try v5.expectPacket().body == [0, 4, 0x90])
            let disconnect = try v5.expectPacket()
            #expect(disconnect.type == 14)
            #expect(v5.closesWithoutPacket())
        }
    }

    @Test("client id `provision` also opens a provision session")
    func clientIDProvision() async throws {
        try await Harness.with { sim in
            let client = try RawMQTTClient(port: sim.mqttPort)
            #expect(try client.connect(clientID: "provision", username: "not-a-token").code == 0)
            client.send(Packet.publish("/provision/request", #"{"deviceName":"cid-prov","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#, qos: 1, packetID: 1))
            #expect(try client.expectPacket().type == 4)
            #expect(try client.expectPacket().publish().payload.contains("\"status\":\"SUCCESS\""))
        }
    }

    @Test("control interface: withheld, delayed and dropped provisioning")
    func provisioningModes() async throws {
        try await Harness.with { sim in
            #expect(try Harness.control(sim, "POST", "/provisioning", #"{"mode":"withhold"}"#).0 == 200)
            let withheld = try Harness.provisionClient(sim)
            withheld.send(Packet.publish("/provision/request", #"{"deviceName":"w1","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#, qos: 1, packetID: 1))
            guard case .timeout = withheld.read(timeout: 0.5) else {
                Issue.record("a withheld request got an answer")
                return
            }
            #expect(try Harness.control(sim, "POST", "/provisioning", #"{"mode":"close","device":"c1"}"#).0 == 200)
            #expect(try Harness.control(sim, "POST", "/provisioning", #"{"mode":"delay","seconds":1.5}"#).0 == 200)
            let closed = try Harness.provisionClient(sim)
            closed.send(Packet.publish("/provision/request", #"{"deviceName":"c1","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#, qos: 1, packetID: 1))
            #expect(closed.closesWithoutPacket())
            let delayed = try Harness.provisionClient(sim)
            delayed.send(Packet.publish("/provision/request", #"{"deviceName":"d1","provisionDeviceKey":"prov-key","provisionDeviceSecret":"prov-secret"}"#, qos: 1, packetID: 1))
            guard case .timeout = delayed.read(timeout: 0.2) else {
                Issue.record("the delayed answer came at once")
                return
            }
            #expect(try delayed.expectPacket(timeout: 5).type == 4)
            #expect(try delayed.expectPacket(timeout: 5).publish().payload.contains("SUCCESS"))
            #expect(try Harness.control(sim, "DELETE", "/provisioning").0 == 200)
        }
    }
}
