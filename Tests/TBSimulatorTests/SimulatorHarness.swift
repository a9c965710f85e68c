import AgentTestSupport
import Foundation
import TBJSON
@testable import TBSimulator
#if canImport(Glibc)
import Glibc
#endif

/// Starts an in-process simulator on free ports with a test tenant, and talks to its control interface.
struct Harness {
    static let key = "prov-key"
    static let secret = "prov-secret"
    static let preKey = "pre-key"
    static let preSecret = "pre-secret"

    /// A configuration with an ALLOW_CREATE profile "sensors", a CHECK_PRE_PROVISIONED profile "fleet" holding the
    /// device "pre-1" (token "pre-1-token-0001"), and the device "known" (token "known-token-0001").
    static func configuration() -> SimulatorConfiguration {
        var c = SimulatorConfiguration()
        c.mqttPort = 0
        c.controlPort = 0
        c.profiles = [
            DeviceProfile(name: "sensors", provisionKey: key, provisionSecret: secret, strategy: .allowCreateNewDevices),
            DeviceProfile(name: "fleet", provisionKey: preKey, provisionSecret: preSecret, strategy: .checkPreProvisionedDevices),
            DeviceProfile(name: "closed", provisionKey: "closed-key", provisionSecret: nil, strategy: .disabled),
        ]
        c.devices = [
            SimDevice(name: "pre-1", profile: "fleet", credentials: .accessToken("pre-1-token-0001"), createdTime: 1),
            SimDevice(name: "known", profile: "sensors", credentials: .accessToken("known-token-0001"), createdTime: 2),
            SimDevice(name: "basic-1", profile: "sensors",
                      credentials: .mqttBasic(MQTTBasicCredentials(clientID: "cid-1", userName: "user-1", password: "pw-1")),
                      createdTime: 3),
        ]
        return c
    }

    static func with<T>(_ configure: (inout SimulatorConfiguration) -> Void = { _ in },
                        _ body: (Simulator) async throws -> T) async throws -> T {
        var c = configuration()
        configure(&c)
        let simulator = try await Simulator.start(c)
        do {
            let result = try await body(simulator)
            await simulator.stop()
            return result
        } catch {
            await simulator.stop()
            throw error
        }
    }

    /// A provision session: CONNECT as `provision`, optionally SUBSCRIBE, PUBLISH the request at QoS 1.
    static func provisionClient(_ sim: Simulator, level: UInt8 = 4, subscribeQoS: UInt8? = 1) throws -> RawMQTTClient {
        let client = try RawMQTTClient(port: sim.mqttPort)
        let ack = try client.connect(level: level, clientID: "dev-\(UUID().uuidString.prefix(6))", username: "provision")
        guard ack.code == 0 else { throw TestFailure("provision CONNACK \(ack.code)") }
        if let qos = subscribeQoS {
            client.send(Packet.subscribe(1, [("/provision/response", qos)], v5: level == 5))
            let suback = try client.expectPacket(timeout: 5, "SUBACK")
            guard suback.type == 9 else { throw TestFailure("expected SUBACK, got \(suback)") }
        }
        return client
    }

    /// Sends a provision request and returns the response body, checking the PUBACK comes first.
    static func provision(_ sim: Simulator, _ request: String, level: UInt8 = 4) throws -> String {
        let client = try provisionClient(sim, level: level)
        client.send(Packet.publish("/provision/request", request, qos: 1, packetID: 7, v5: level == 5))
        let puback = try client.expectPacket(timeout: 5, "PUBACK")
        guard puback.type == 4, puback.body.prefix(2) == [0, 7] else { throw TestFailure("expected PUBACK 7, got \(puback)") }
        let response = try client.expectPacket(timeout: 5, "provision response")
        guard response.type == 3 else { throw TestFailure("expected PUBLISH, got \(response)") }
        let publish = response.publish(v5: level == 5)
        guard publish.topic == "/provision/response" else { throw TestFailure("response on \(publish.topic)") }
        client.send(Packet.puback(publish.packetID ?? 0))
        client.send(Packet.disconnect)
        return publish.payload
    }

    /// A connected device session.
    static func device(_ sim: Simulator, token: String, level: UInt8 = 4, clientID: String = "dev") throws -> RawMQTTClient {
        let client = try RawMQTTClient(port: sim.mqttPort)
        let ack = try client.connect(level: level, clientID: clientID, username: token)
        guard ack.code == 0 else { throw TestFailure("device CONNACK \(ack.code)") }
        return client
    }

    /// One HTTP request to the control interface; returns status and parsed JSON body.
    static func control(_ sim: Simulator, _ method: String, _ path: String, _ body: String = "") throws -> (Int, JSONValue) {
        guard let port = sim.controlPort else { throw TestFailure("control interface disabled") }
        let (status, text) = try TestSupport.httpRequest(port: port, method, path, body, timeoutSeconds: 30)
        return (status, try JSONValue.parse(text))
    }
}
