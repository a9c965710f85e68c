import AgentCore
import Testing

/// Issue 10, finding 8: which hosts plain MQTT may go to (the provision secret and the token travel in it).
@Suite struct NetworkExposureTests {
    @Test(arguments: ["localhost", "LOCALHOST", "localhost.", "box.localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"])
    func loopbackHosts(_ host: String) {
        #expect(NetworkExposure.isLoopback(host))
        #expect(NetworkExposure.plaintextWarning(ServerSettings(host: host, port: 1883)) == nil)
    }

    @Test(arguments: ["thingsboard.cloud", "tb.local", "192.168.1.10", "10.0.0.1", "128.0.0.1", "127.0.0", "127.0.0.256",
                      "localhost.example.com", "::2"])
    func hostsOffThisMachine(_ host: String) throws {
        #expect(!NetworkExposure.isLoopback(host))
        let warning = try #require(NetworkExposure.plaintextWarning(ServerSettings(host: host, port: 1883)))
        #expect(warning.contains("plain MQTT") && warning.contains("[server.tls]") && warning.contains("8883"))
        #expect(NetworkExposure.plaintextWarning(ServerSettings(host: host, port: 8883, tls: TLSSettings())) == nil)
    }
}
