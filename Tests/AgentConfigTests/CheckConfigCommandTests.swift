import AgentConfig
import AgentCore
import AgentTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent check-config` on the shipped examples and on the broken fixtures.
/// Serialized: each case runs `tb-agent check-config` and waits for it on the thread it runs on; the cases side by side
/// held both of a two-core machine's cooperative threads for seconds at the start of a run, starving every other test.
@Suite(.serialized) struct CheckConfigCommandTests {
    static func files(_ folder: String) -> [String] {
        let dir = TestSupport.packageRoot.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    static let examples = Self.files("board/examples")
    static let broken = Self.files("Tests/Fixtures/configs/broken")

    @Test func thereIsAnExamplePerBoard() {
        let profiles = Self.files("board").map { URL(fileURLWithPath: $0).lastPathComponent }
        let examples = Self.examples.map { URL(fileURLWithPath: $0).lastPathComponent }
        #expect(profiles.count == 6)
        #expect(profiles == examples)
    }

    @Test(arguments: Self.examples)
    func acceptsEveryExample(_ path: String) throws {
        let result = try TestSupport.tbAgent(["check-config", "--config", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("\(path): OK"))
        // The examples' secret file is world-readable in a checkout, and the boards' examples name a remote host
        // over plain MQTT: warnings, never problems.
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.allSatisfy { $0.hasPrefix("warning: ") }, "\(result.stderr)")
    }

    @Test(arguments: Self.files("board"))
    func everyBoardProfileLoads(_ path: String) throws {
        let profile = try BoardProfiles.load(path: path)
        #expect(profile.header.count == 40)
        #expect(profile.statusLED == "ACT")
        #expect(profile.buttonLine.flatMap(profile.pin(forLine:)) == 13)
        #expect(profile.offset(forLine: "GPIO17") == 17)
        #expect(profile.pin(forLine: "GPIO17") == 11)
    }

    @Test func boardProfilesNameTheirChips() throws {
        let chips = try Self.files("board").map { try BoardProfiles.load(path: $0) }
            .map { "\($0.name)=\($0.gpioChip)" }
        #expect(chips == [
            "raspberrypi-3b-plus=pinctrl-bcm2835", "raspberrypi-4b=pinctrl-bcm2711", "raspberrypi-5=pinctrl-rp1",
            "raspberrypi-cm4=pinctrl-bcm2711", "raspberrypi-zero-2w=pinctrl-bcm2835", "simulated=simulated",
        ])
    }

    /// Each broken file lists what it must produce: `# expect: LINE:COLUMN: key.path:` (or `-:` for no position),
    /// one per problem, and `# expect-text: …` for text that must appear.
    @Test(arguments: Self.broken)
    func rejectsEveryBrokenConfigWithPositionedProblems(_ path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let expected = text.split(separator: "\n").filter { $0.hasPrefix("# expect: ") }.map { $0.dropFirst(10) }
        let texts = text.split(separator: "\n").filter { $0.hasPrefix("# expect-text: ") }.map { String($0.dropFirst(15)) }
        #expect(!expected.isEmpty, "the fixture lists no expected problems")
        let result = try TestSupport.tbAgent(["check-config", "--config", path])
        #expect(result.status == 78)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.count == expected.count, "\(result.stderr)")
        for item in expected {
            let prefix = item.hasPrefix("-: ") ? "\(path): \(item.dropFirst(3))" : "\(path):\(item)"
            #expect(lines.contains { $0.hasPrefix(prefix) }, "no line starts with \(prefix):\n\(result.stderr)")
        }
        for snippet in texts { #expect(result.stderr.contains(snippet), "missing \(snippet)") }
    }

    @Test func missingFileIsAConfigurationError() throws {
        let result = try TestSupport.tbAgent(["check-config", "--config", "/nonexistent/config.toml"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("/nonexistent/config.toml: cannot read the configuration (no such file)"))
    }

    // MARK: issue 10, finding 8: secrets in clear

    /// A valid configuration in a folder of its own, with the secret inline or in a file of `secretMode`.
    func configuration(host: String, port: Int = 1883, tls: Bool = false, secretFile: Bool = true,
                       configMode: mode_t = 0o600, secretMode: mode_t = 0o600) throws -> (config: String, secret: String) {
        let dir = try TestSupport.makeTemporaryDirectory("audit")
        let secret = dir.appendingPathComponent("provision-secret").path
        try "s3cret-provision-value\n".write(toFile: secret, atomically: true, encoding: .utf8)
        chmod(secret, secretMode)
        let config = dir.appendingPathComponent("config.toml").path
        try """
            [server]
            host = "\(host)"
            port = \(port)
            \(tls ? "\n[server.tls]\nverify_hostname = true\n" : "")
            [provisioning]
            device_key = "KEY"
            \(secretFile ? "device_secret_file = \"provision-secret\"" : "device_secret = \"s3cret-provision-value\"")

            [device]
            name_template = "dev"
            """.write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, configMode)
        return (config, secret)
    }

    @Test func plainMQTTToAHostOffThisMachineIsAWarningNamingTLS() throws {
        let (config, _) = try self.configuration(host: "tb.example.com")
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("\(config): OK"))
        #expect(result.stderr.contains("warning: [server] tb.example.com:1883 is reached over plain MQTT"), "\(result.stderr)")
        #expect(result.stderr.contains("[server.tls]") && result.stderr.contains("8883"))
        #expect(!result.stderr.contains("s3cret"))
    }

    @Test(arguments: ["127.0.0.1", "localhost", "::1", "127.1.2.3"])
    func plainMQTTOnThisMachineIsFine(_ host: String) throws {
        let (config, _) = try self.configuration(host: host)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func tlsToAHostOffThisMachineIsFine() throws {
        let (config, _) = try self.configuration(host: "tb.example.com", port: 8883, tls: true)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty, "\(result.stderr)")
    }

    @Test func aSecretFileOthersMayReadIsAWarningNamingChmod600() throws {
        let (config, secret) = try self.configuration(host: "127.0.0.1", secretMode: 0o644)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: \(secret) holds the provision device secret and is readable by every user (mode 644)"), "\(result.stderr)")
        #expect(result.stderr.contains("chmod 600 \(secret)"))
        #expect(!result.stderr.contains("s3cret"))
        // The configuration refers to the file and holds no secret: its own mode does not matter.
        let (referring, _) = try self.configuration(host: "127.0.0.1", configMode: 0o644)
        #expect(try TestSupport.tbAgent(["check-config", "--config", referring]).stderr.isEmpty)
    }

    @Test func aConfigurationHoldingTheSecretThatOthersMayReadIsAWarning() throws {
        let (config, _) = try self.configuration(host: "127.0.0.1", secretFile: false, configMode: 0o604)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: \(config) holds the provision device secret and is readable by every user"), "\(result.stderr)")
        #expect(result.stderr.contains("chmod 600 \(config)"))
        let (tight, _) = try self.configuration(host: "127.0.0.1", secretFile: false, configMode: 0o600)
        #expect(try TestSupport.tbAgent(["check-config", "--config", tight]).stderr.isEmpty)
    }

    @Test func aClaimingSecretOthersMayReadIsAWarning() throws {
        let (config, _) = try self.configuration(host: "127.0.0.1")
        let claimSecret = URL(fileURLWithPath: config).deletingLastPathComponent().appendingPathComponent("claim-secret").path
        try "claim-s3cret\n".write(toFile: claimSecret, atomically: true, encoding: .utf8)
        chmod(claimSecret, 0o644)
        let text = try String(contentsOfFile: config, encoding: .utf8) + "\n[claiming]\nsecret_file = \"claim-secret\"\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        chmod(config, 0o600)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("warning: \(claimSecret) holds the claiming secret and is readable by every user"), "\(result.stderr)")
        #expect(!result.stderr.contains("s3cret"))
    }

    @Test(.enabled(if: geteuid() == 0, "chgrp to another group needs root"))
    func aSecretFileReadableByAnotherGroupIsAWarning() throws {
        let (config, secret) = try self.configuration(host: "127.0.0.1", secretMode: 0o640)
        // A group that is neither root's, nor tb-agent, nor the owner's own.
        #expect(chown(secret, 0, 100) == 0)
        let result = try TestSupport.tbAgent(["check-config", "--config", config])
        #expect(result.status == 0)
        #expect(result.stderr.contains("holds the provision device secret and is readable by the group"), "\(result.stderr)")
        // Root's group: fine (as the package's 0640 root:tb-agent is).
        #expect(chown(secret, 0, 0) == 0)
        #expect(try TestSupport.tbAgent(["check-config", "--config", config]).stderr.isEmpty)
    }
}
