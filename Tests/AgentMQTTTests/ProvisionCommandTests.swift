import AgentCore
import AgentMQTT
import AgentTestSupport
import Foundation
import Synchronization
import TBJSON
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent provision | status | reset | connect-test`, run as the built binary against mosquitto with a
/// responder playing ThingsBoard's provisioning side.
@Suite(.serialized) struct ProvisionCommandTests {
    final class Answers: Sendable {
        let next = Mutex<[String?]>([])
        func set(_ answers: [String?]) { self.next.withLock { $0 = answers } }
        func take() -> String? {
            self.next.withLock { answers in answers.isEmpty ? nil : answers.removeFirst() }
        }
    }

    struct Setup {
        let directory: URL
        let config: URL
        let stateDirectory: String
        var credentialsPath: String { self.stateDirectory + "/credentials.json" }
        var previousPath: String { self.stateDirectory + "/credentials.previous.json" }
    }

    static func setup(port: Int, timeout: String = "5s", extra: String = "") throws -> Setup {
        let directory = try TestSupport.makeTemporaryDirectory("provision-cli")
        let state = directory.path + "/state/tb-agent"
        let config = directory.appendingPathComponent("config.toml")
        let sysroot = TestSupport.packageRoot.appendingPathComponent("board/simulated/sysroot").path
        try """
        [server]
        host = "127.0.0.1"
        port = \(port)

        [provisioning]
        device_key = "key-123"
        device_secret = "secret-456"
        timeout = "\(timeout)"
        \(extra)

        [device]
        name_template = "sim-{id}"
        sysroot = "\(sysroot)"
        state_dir = "\(state)"
        """.write(to: config, atomically: true, encoding: .utf8)
        return Setup(directory: directory, config: config, stateDirectory: state)
    }

    /// Runs the binary on a thread of its own: waiting for it must not hold one of the few cooperative threads
    /// the responder needs to answer (the machine has two cores).
    static func agent(_ arguments: [String], _ setup: Setup) async throws -> CommandResult {
        let config = setup.config.path
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try TestSupport.tbAgent(arguments + ["--config", config], timeout: .seconds(60)) })
            }.start()
        }
    }

    static func mode(_ path: String) -> mode_t {
        var status = stat()
        guard stat(path, &status) == 0 else { return 0 }
        return status.st_mode & 0o7777
    }

    static func token(_ value: String) -> String {
        #"{"credentialsValue":"\#(value)","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#
    }

    @Test func provisionStoresOnceThenReportsAndForceReplacesOnlyOnSuccess() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let answers = Answers()
        let responder = try await ProvisionResponder(port: broker.port) { _ in answers.take().map { Array($0.utf8) } }
        let setup = try Self.setup(port: broker.port)
        let name = try await Self.agent(["identity"], setup).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(name.hasPrefix("sim-"))

        // First run: asks, stores 0600 in a 0700 directory.
        answers.set([Self.token("token-AAAA-1111")])
        let first = try await Self.agent(["provision"], setup)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("provisioned as \(name) (ACCESS_TOKEN, issued "))
        #expect(first.stdout.contains("for 127.0.0.1:\(broker.port)"))
        #expect(Self.mode(setup.credentialsPath) == 0o600)
        #expect(Self.mode(setup.stateDirectory) == 0o700)
        let stored = try String(contentsOfFile: setup.credentialsPath, encoding: .utf8)
        #expect(stored.contains("token-AAAA-1111"))
        for output in [first.stdout, first.stderr] {
            #expect(!output.contains("token-AAAA-1111"))
            #expect(!output.contains("secret-456"))
        }
        let request = try JSONValue.parse(try #require(responder.received.first))
        #expect(request.serialized == #"{"deviceName":"\#(name)","provisionDeviceKey":"key-123","provisionDeviceSecret":"secret-456"}"#)

        // Second run: says so, exits 0, does not ask.
        let second = try await Self.agent(["provision"], setup)
        #expect(second.status == 0)
        #expect(second.stdout.contains("already provisioned as \(name) (ACCESS_TOKEN, issued "))
        #expect(responder.received.count == 1)

        // Status: identity and type, secret masked.
        let status = try await Self.agent(["status"], setup)
        #expect(status.status == 0)
        #expect(status.stdout.contains(name))
        #expect(status.stdout.contains("ACCESS_TOKEN"))
        #expect(status.stdout.contains("******"))
        #expect(!status.stdout.contains("token-AAAA-1111"))

        // --force with a FAILURE answer: refused, the stored credentials stay.
        answers.set([#"{"errorMsg":"Failed to provision device!","status":"FAILURE"}"#])
        let refused = try await Self.agent(["provision", "--force"], setup)
        #expect(refused.status == 69)
        #expect(refused.stderr.contains("refused to provision device \"\(name)\""))
        #expect(try String(contentsOfFile: setup.credentialsPath, encoding: .utf8) == stored)

        // --force with SUCCESS: replaced, the old generation kept.
        answers.set([Self.token("token-BBBB-2222")])
        let forced = try await Self.agent(["provision", "--force"], setup)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try String(contentsOfFile: setup.credentialsPath, encoding: .utf8).contains("token-BBBB-2222"))
        #expect(try String(contentsOfFile: setup.previousPath, encoding: .utf8) == stored)

        // connect-test: mosquitto accepts any user name, so the token connects.
        let connect = try await Self.agent(["connect-test"], setup)
        #expect(connect.status == 0, "\(connect.stderr)")
        #expect(connect.stdout.contains("connected to 127.0.0.1:\(broker.port) as \(name)"))

        // reset: refuses without --yes, then forgets and keeps the previous generation.
        let unconfirmed = try await Self.agent(["reset"], setup)
        #expect(unconfirmed.status == 64)
        #expect(unconfirmed.stderr.contains("--yes"))
        #expect(FileManager.default.fileExists(atPath: setup.credentialsPath))
        let reset = try await Self.agent(["reset", "--yes"], setup)
        #expect(reset.status == 0)
        #expect(reset.stdout.contains("forgot the credentials of \(name)"))
        #expect(!FileManager.default.fileExists(atPath: setup.credentialsPath))
        #expect(try String(contentsOfFile: setup.previousPath, encoding: .utf8).contains("token-BBBB-2222"))
        let after = try await Self.agent(["status"], setup)
        #expect(after.status == 3)
        #expect(after.stdout.contains("not provisioned"))
        await responder.stop()
    }

    @Test func notFoundStoresNothing() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let responder = try await ProvisionResponder(port: broker.port) { _ in
            Array(#"{"errorMsg":"Provision data was not found!","status":"NOT_FOUND"}"#.utf8)
        }
        let setup = try Self.setup(port: broker.port)
        let result = try await Self.agent(["provision"], setup)
        #expect(result.status == 69)
        #expect(result.stderr.contains("did not accept the provision key or secret"))
        #expect(!result.stderr.contains("secret-456"))
        #expect(!FileManager.default.fileExists(atPath: setup.credentialsPath))
        #expect(try await Self.agent(["status"], setup).status == 3)
        await responder.stop()
    }

    @Test func withheldAnswerTimesOut() async throws {
        let broker = try MosquittoBroker()
        defer { broker.stop() }
        let responder = try await ProvisionResponder(port: broker.port) { _ in nil }
        let setup = try Self.setup(port: broker.port, timeout: "1s")
        let result = try await Self.agent(["provision"], setup)
        #expect(result.status == 75)
        #expect(result.stderr.contains("within 1s"))
        #expect(responder.received.count == 1)
        await responder.stop()
    }

    @Test func unreachableServerNamesHostAndPort() async throws {
        let port = try TestSupport.freePort()
        let setup = try Self.setup(port: port)
        let result = try await Self.agent(["provision"], setup)
        #expect(result.status == 69)
        #expect(result.stderr.contains("127.0.0.1:\(port)"))
        #expect(result.stderr.contains("[server] host and port"))
    }

    @Test func configurationErrorsExit78() throws {
        let directory = try TestSupport.makeTemporaryDirectory("provision-cli")
        let config = directory.appendingPathComponent("config.toml")
        try "[server]\nport = 1883\n".write(to: config, atomically: true, encoding: .utf8)
        for command in [["provision"], ["status"], ["connect-test"], ["reset", "--yes"]] {
            let result = try TestSupport.tbAgent(command + ["--config", config.path])
            #expect(result.status == 78, "\(command)")
            #expect(result.stderr.contains(config.path))
        }
    }

    /// The server forgets the device (here: a broker restarted on the same port with authentication):
    /// `connect-test` reports the rejection with its own exit status.
    @Test func revokedCredentialsAreRejected() async throws {
        let broker = try MosquittoBroker()
        let port = broker.port
        let responder = try await ProvisionResponder(port: port) { _ in Array(Self.token("token-CCCC-3333").utf8) }
        let setup = try Self.setup(port: port)
        #expect(try await Self.agent(["provision"], setup).status == 0)
        await responder.stop()
        broker.stop()

        let passwords = setup.directory.appendingPathComponent("passwd")
        let made = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/mosquitto_passwd"), ["-c", "-b", passwords.path, "someone-else", "pw"])
        try #require(made.status == 0)
        let conf = setup.directory.appendingPathComponent("auth.conf")
        try "listener \(port) 127.0.0.1\nallow_anonymous false\npassword_file \(passwords.path)\n"
            .write(to: conf, atomically: true, encoding: .utf8)
        let strict = try ChildProcess(URL(fileURLWithPath: "/usr/sbin/mosquitto"), ["-c", conf.path])
        defer { strict.stop() }
        try #require(TestSupport.waitUntil { TestSupport.isListening(port: port) }, "mosquitto did not restart on \(port): \(strict.stderr)")

        let result = try await Self.agent(["connect-test"], setup)
        #expect(result.status == 77)
        #expect(result.stderr.contains("rejected the credentials"))
        #expect(result.stderr.contains("CONNACK 5"))
        #expect(!result.stderr.contains("token-CCCC-3333"))
    }
}
