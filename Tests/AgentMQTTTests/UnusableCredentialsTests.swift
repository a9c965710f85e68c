import AgentCore
import AgentMQTT
import Testing

/// Issue 10, finding 4: libmosquitto refuses credentials it cannot send (`mosquitto_username_pw_set` and
/// `mosquitto_new` fail); that failed on every connect, counted as a network error, and the agent retried forever.
/// It is a rejection: the agent's rejection path (count, re-provision, ask a person) takes over.
@Suite struct UnusableCredentialsTests {
    static func options(clientID: String = "rpi-0001", username: String?, password: String? = nil) -> MQTTConnectOptions {
        MQTTConnectOptions(
            host: "127.0.0.1", port: 1, clientID: clientID, username: username.map(Secret.init),
            password: password.map(Secret.init))
    }

    static func refusal(_ options: MQTTConnectOptions) -> MQTTError? {
        do {
            _ = try MosquittoClient(options)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        ("a user name with a control character", UnusableCredentialsTests.options(username: "Zq9\u{01}Wv8")),
        ("a user name with DEL", UnusableCredentialsTests.options(username: "Zq9\u{7F}Wv8")),
        ("a user name with U+FFFF", UnusableCredentialsTests.options(username: "Zq9" + String(Character(Unicode.Scalar(0xFFFF)!)) + "Wv8")),
        ("a user name with a NUL", UnusableCredentialsTests.options(username: "Zq9\u{0}Wv8")),
        ("a client id with DEL", UnusableCredentialsTests.options(clientID: "Zq9\u{7F}Wv8", username: nil)),
        ("a client id with a line break", UnusableCredentialsTests.options(clientID: "Zq9\nWv8", username: "user")),
        ("a password with a NUL", UnusableCredentialsTests.options(username: "user", password: "Zq9\u{0}Wv8")),
    ])
    func libmosquittosRefusalIsARejection(_ what: String, _ options: MQTTConnectOptions) throws {
        let error = try #require(Self.refusal(options), "libmosquitto accepted \(what)")
        guard case .credentialsUnusable = error else {
            Issue.record("\(what): \(error)")
            return
        }
        #expect(error.agentError.code == .credentialsRejected, "\(what)")
        #expect(error.agentError.message.contains("provision again"))
        #expect(!error.agentError.description.contains("Zq9"), "\(what): the message shows the credential")
    }

    @Test func ordinaryCredentialsAreAccepted() {
        #expect(Self.refusal(Self.options(username: "A1b2C3d4E5f6G7h8I9j0")) == nil)
        #expect(Self.refusal(Self.options(clientID: "ünïcödé-🙂", username: "user", password: "pass word")) == nil)
    }
}
