import AgentCore
import TBJSON
import Testing

/// Issue 10, finding 4: credentials the agent cannot use were stored (a token with a control character, U+FFFF or a
/// NUL, a client id with DEL); libmosquitto then refused them on every connect, the error counted as transient, and
/// the agent retried forever, offline, never asking for a person. Finding 7: a newer format is not damage.
@Suite struct CredentialValidationTests {
    /// "Zq9" + the character + "Wv8" (built from the scalar: the compiler refuses some of them as literals).
    static func token(_ scalar: UInt32) -> String { "Zq9" + String(Character(Unicode.Scalar(scalar)!)) + "Wv8" }

    static let unusable: [(String, String)] = [
        (token(0x01), "control character"), (token(0x0A), "control character"), (token(0x09), "control character"),
        (token(0x7F), "control character"), (token(0x85), "control character"), (token(0x9F), "control character"),
        (token(0x00), "NUL"), (token(0xFFFF), "noncharacter"), (token(0xFFFE), "noncharacter"),
        (token(0xFDD0), "noncharacter"), (token(0x1FFFF), "noncharacter"), (token(0x10FFFE), "noncharacter"),
        ("", "empty"), (String(repeating: "t", count: 257), "257 bytes"), (String(repeating: "é", count: 129), "258 bytes"),
    ]

    @Test(arguments: CredentialValidationTests.unusable)
    func whatMQTTCannotCarryIsRefusedWithoutShowingIt(_ text: String, _ kind: String) throws {
        let problem = try #require(DeviceCredentials.problem(in: text, "the access token"))
        #expect(problem.contains("the access token"))
        #expect(problem.contains(kind))
        #expect(!problem.contains("Zq9") && !problem.contains("Wv8") && !problem.contains("ttt") && !problem.contains("éé"))
    }

    @Test(arguments: [
        "A1b2C3d4E5f6G7h8I9j0", "with space", "ünïcödé", "emoji🙂", "quote\"back\\slash", "\u{A0}nbsp", "\u{FFFD}",
        String(repeating: "t", count: 256),
    ])
    func ordinaryCredentialsPass(_ text: String) {
        #expect(DeviceCredentials.problem(in: text, "the access token") == nil)
        #expect(DeviceCredentials.accessToken(Secret(text)).problem == nil)
    }

    @Test func everyMQTTField() {
        #expect(DeviceCredentials.mqttBasic(clientId: "c\u{7F}", username: "u", password: nil).problem?.contains("client id") == true)
        #expect(DeviceCredentials.mqttBasic(clientId: "c", username: "u\u{0}", password: nil).problem?.contains("user name") == true)
        #expect(DeviceCredentials.mqttBasic(clientId: "c", username: "u", password: Secret(Self.token(0xFFFF))).problem?.contains("password") == true)
        #expect(DeviceCredentials.mqttBasic(clientId: "", username: "u", password: nil).problem?.contains("empty") == true)
        #expect(DeviceCredentials.mqttBasic(clientId: nil, username: nil, password: nil).problem != nil)
        #expect(DeviceCredentials.mqttBasic(clientId: "c", username: nil, password: nil).problem == nil)
        // A PEM certificate has line breaks: it goes to TLS, not into the CONNECT.
        #expect(DeviceCredentials.x509Certificate(certificate: "-----BEGIN\nX\n-----END\n", certificateFile: nil, keyFile: nil).problem == nil)
    }

    /// The reply decoder refuses them: a refused outcome (a person must act), not stored.
    @Test(arguments: [
        #"{"credentialsValue":"Zq9\u0001Wv8","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":"Zq9\u0000Wv8","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":"Zq9\uffffWv8","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#,
        #"{"credentialsValue":"Zq9\nWv8","status":"SUCCESS"}"#,
        #"{"credentialsValue":{"clientId":"c\u007f","userName":"u","password":"p"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#,
        #"{"credentialsValue":{"clientId":"c","userName":"u","password":"Zq9\u0002Wv8"},"credentialsType":"MQTT_BASIC","status":"SUCCESS"}"#,
    ])
    func provisioningRefusesUnusableCredentials(_ reply: String) {
        do {
            let decoded = try ProvisionResponse.decode(Array(reply.utf8))
            Issue.record("accepted: \(decoded)")
        } catch {
            guard case .unusableCredentials = error else {
                Issue.record("\(error)")
                return
            }
            #expect(error.agentError.code == .provisioningRefused)
            #expect(error.description.contains("not stored"))
            #expect(error.description.contains("delete the device on the server"))
            #expect(!error.description.contains("Zq9"))
        }
    }

    @Test func aProvisionRequestForUnusableCredentialsIsAConfigurationError() {
        let request = ProvisionRequest(
            deviceName: "rpi-1", provisionDeviceKey: "key", provisionDeviceSecret: Secret("secret"),
            credentialsType: .accessToken, token: Secret("tok\u{01}en"))
        #expect {
            try request.validate()
        } throws: { error in
            guard let error = error as? AgentError else { return false }
            return error.code == .invalidConfiguration && error.message.contains("[provisioning] token")
                && !error.message.contains("tok\u{01}en")
        }
    }

    /// What an older agent stored is checked when it is read back: as good as none.
    @Test func storedUnusableCredentialsDoNotLoad() {
        let record = StoredCredentials(
            server: ServerEndpoint(host: "tb.example.com", port: 1883), deviceName: "rpi-1",
            credentials: .accessToken(Secret("tok\u{01}en")), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))
        #expect {
            try StoredCredentials(document: record.document)
        } throws: { error in
            guard let error = error as? CredentialDocumentError else { return false }
            return error.newerFormat == nil && error.reason.contains("cannot be used") && error.reason.contains("control character")
        }
    }

    static func document(format: String) -> [UInt8] {
        let record = StoredCredentials(
            server: ServerEndpoint(host: "tb.example.com", port: 1883), deviceName: "rpi-1",
            credentials: .accessToken(Secret("token")), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))
        guard case .object(var members) = try? JSONValue.parse(record.document), members.first?.0 == "format",
            let value = try? JSONValue.parse(Array(format.utf8))
        else { return [] }
        members[0] = ("format", value)
        return JSONValue.object(members).serializedBytes
    }

    @Test func aNewerFormatIsNotDamage() throws {
        #expect(throws: CredentialDocumentError(newerFormat: 2)) { try StoredCredentials(document: Self.document(format: "2")) }
        #expect(CredentialDocumentError(newerFormat: 2).reason.contains("newer tb-agent (format 2"))
        for damaged in ["0", "-1", "\"2\"", "1.5"] {
            #expect {
                try StoredCredentials(document: Self.document(format: damaged))
            } throws: { error in
                (error as? CredentialDocumentError)?.newerFormat == nil
            }
        }
        #expect(try StoredCredentials(document: Self.document(format: "1")).deviceName == "rpi-1")
    }
}
