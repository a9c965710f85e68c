import AgentCore
import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// `tb-agent provision`, `status`, `connect-test` end to end against `tb-sim`, ThingsBoard's device API simulator.
@Suite(.serialized) struct TBSimProvisionTests {
    typealias CLI = ProvisionCommandTests

    static func profile(_ strategy: String = "ALLOW_CREATE_NEW_DEVICES", devices: String = "") -> String {
        """
        [[profiles]]
        name = "sensors"
        provision_key = "key-123"
        provision_secret = "secret-456"
        strategy = "\(strategy)"
        \(devices)
        """
    }

    /// Runs blocking work (starting, driving and stopping tb-sim) on a thread of its own, off the two cooperative
    /// threads that the other suites' timing-sensitive tests share.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    static func startSim(_ config: String) async throws -> TBSimProcess {
        try await Self.offPool { try TBSimProcess(config: config) }
    }

    static func control(_ sim: TBSimProcess, _ method: String, _ path: String, _ body: String = "") async throws -> Int {
        try await Self.offPool { try sim.control(method, path, body).status }
    }

    static func stop(_ sim: TBSimProcess) async {
        _ = try? await Self.offPool { sim.stop() }
    }

    static func storedCredentials(_ setup: CLI.Setup) throws -> JSONValue? {
        try JSONValue.parse(Array(Data(contentsOf: URL(fileURLWithPath: setup.credentialsPath))))["payload"]?["credentials"]
    }

    @Test func accessTokenFromProvisioningToRevocation() async throws {
        let sim = try await Self.startSim(Self.profile())
        let setup = try CLI.setup(port: sim.mqttPort)
        let name = try await CLI.agent(["identity"], setup).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let first = try await CLI.agent(["provision"], setup)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("provisioned as \(name) (ACCESS_TOKEN"))
        #expect(CLI.mode(setup.credentialsPath) == 0o600)
        let token = try #require(try Self.storedCredentials(setup)?["token"]?.stringValue)
        #expect(!first.stdout.contains(token) && !first.stderr.contains(token))
        #expect(sim.events(containing: "\"event\":\"provision_request\"").count == 1)
        #expect(try await Self.control(sim, "GET", "/devices/\(name)") == 200)

        let second = try await CLI.agent(["provision"], setup)
        #expect(second.status == 0)
        #expect(second.stdout.contains("already provisioned as \(name)"))
        #expect(sim.events(containing: "\"event\":\"provision_request\"").count == 1)

        let connect = try await CLI.agent(["connect-test"], setup)
        #expect(connect.status == 0, "\(connect.stderr)")

        // The name exists now: ThingsBoard (and tb-sim) answer FAILURE; the stored credentials stay.
        let stored = try String(contentsOfFile: setup.credentialsPath, encoding: .utf8)
        let again = try await CLI.agent(["provision", "--force"], setup)
        #expect(again.status == 69)
        #expect(again.stderr.contains("exists already"))
        #expect(try String(contentsOfFile: setup.credentialsPath, encoding: .utf8) == stored)

        // Revoked on the server: CONNACK 5, reported as rejected credentials.
        #expect(try await Self.control(sim, "POST", "/devices/\(name)/revoke") == 200)
        let rejected = try await CLI.agent(["connect-test"], setup)
        #expect(rejected.status == 77)
        #expect(rejected.stderr.contains("rejected the credentials (CONNACK 5"))
        #expect(!rejected.stderr.contains(token))
        await Self.stop(sim)
    }

    @Test func mqttBasicCredentialsWork() async throws {
        let sim = try await Self.startSim(Self.profile())
        let setup = try CLI.setup(
            port: sim.mqttPort,
            extra: "credentials_type = \"MQTT_BASIC\"\nclient_id = \"cid-1\"\nusername = \"user-1\"\npassword = \"pw-basic-1\"")
        let result = try await CLI.agent(["provision", "--verify"], setup)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("(MQTT_BASIC"))
        #expect(result.stdout.contains("connected to 127.0.0.1:\(sim.mqttPort) with the new credentials"))
        let credentials = try #require(try Self.storedCredentials(setup))
        #expect(credentials == ["clientId": "cid-1", "username": "user-1", "password": "pw-basic-1"])
        let status = try await CLI.agent(["status"], setup)
        #expect(status.stdout.contains("MQTT_BASIC client id \"cid-1\", user name \"user-1\", password ******"))
        #expect(!status.stdout.contains("pw-basic-1"))
        await Self.stop(sim)
    }

    @Test func preProvisionedDeviceGetsItsCredentialsOnce() async throws {
        // The device name comes from the simulated board's hardware.
        let probe = try CLI.setup(port: 1)
        let name = try await CLI.agent(["identity"], probe).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let sim = try await Self.startSim(Self.profile("CHECK_PRE_PROVISIONED_DEVICES", devices: """
            [[devices]]
            name = "\(name)"
            profile = "sensors"
            credentials_type = "ACCESS_TOKEN"
            token = "pre-provisioned-token-9"
            """))
        let setup = try CLI.setup(port: sim.mqttPort)
        let result = try await CLI.agent(["provision"], setup)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Self.storedCredentials(setup)?["token"] == "pre-provisioned-token-9")
        #expect(try await CLI.agent(["connect-test"], setup).status == 0)
        // A second claim is refused and keeps what is stored.
        let again = try await CLI.agent(["provision", "--force"], setup)
        #expect(again.status == 69)
        #expect(try Self.storedCredentials(setup)?["token"] == "pre-provisioned-token-9")
        await Self.stop(sim)
    }

    @Test func wrongSecretIsNotFound() async throws {
        let sim = try await Self.startSim(Self.profile().replacing("secret-456", with: "another-secret"))
        let setup = try CLI.setup(port: sim.mqttPort)
        let result = try await CLI.agent(["provision"], setup)
        #expect(result.status == 69)
        #expect(result.stderr.contains("did not accept the provision key or secret"))
        #expect(!result.stderr.contains("secret-456"))
        #expect(!FileManager.default.fileExists(atPath: setup.credentialsPath))
        await Self.stop(sim)
    }

    @Test func withheldAndDroppedAnswers() async throws {
        let sim = try await Self.startSim(Self.profile())
        let setup = try CLI.setup(port: sim.mqttPort, timeout: "1s")

        #expect(try await Self.control(sim, "POST", "/provisioning", #"{"mode":"withhold"}"#) == 200)
        let withheld = try await CLI.agent(["provision"], setup)
        #expect(withheld.status == 75)
        #expect(withheld.stderr.contains("no answer to the provision request"))

        #expect(try await Self.control(sim, "POST", "/provisioning", #"{"mode":"close"}"#) == 200)
        let closed = try await CLI.agent(["provision"], setup)
        #expect(closed.status == 69)
        #expect(closed.stderr.contains("closed the connection without answering the provision request"))
        #expect(!FileManager.default.fileExists(atPath: setup.credentialsPath))

        // Back to normal: the same board provisions.
        #expect(try await Self.control(sim, "DELETE", "/provisioning") == 200)
        #expect(try await CLI.agent(["provision"], setup).status == 0)
        await Self.stop(sim)
    }
}
