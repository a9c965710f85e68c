import AgentConfig
import AgentCore
import AgentTestSupport
import Foundation
import Testing

/// `[claiming]`: the secret (inline or from a file, never in a problem) and the window.
@Suite struct ClaimingSettingsTests {
    static let base = ConfigurationLoaderTests.minimal

    func problems(_ text: String) -> [ConfigurationProblem] {
        do {
            _ = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
            Issue.record("expected problems")
            return []
        } catch {
            return error.problems
        }
    }

    @Test func absentTableMeansNoClaiming() throws {
        #expect(try ConfigurationLoader.parse(Self.base, path: "/etc/tb-agent/config.toml").claiming == nil)
    }

    @Test func inlineSecretWithTheDefaultWindow() throws {
        let config = try ConfigurationLoader.parse(Self.base + "[claiming]\nsecret = \"claim-me-7\"\n", path: "/etc/tb-agent/config.toml")
        #expect(config.claiming == ClaimingSettings(secret: Secret("claim-me-7"), duration: .seconds(3600)))
    }

    @Test func secretFileAndDuration() throws {
        let dir = try TestSupport.makeTemporaryDirectory("claiming")
        try "file-secret\n".write(to: dir.appendingPathComponent("claim-secret"), atomically: true, encoding: .utf8)
        let text = Self.base + "[claiming]\nsecret_file = \"claim-secret\"\nduration = \"10m\"\n"
        let config = try ConfigurationLoader.parse(text, path: dir.appendingPathComponent("config.toml").path)
        #expect(config.claiming?.secret.revealed == "file-secret")
        #expect(config.claiming?.secretFile == dir.appendingPathComponent("claim-secret").path)
        #expect(config.claiming?.duration == .seconds(600))
    }

    @Test func bothSecretsAreRefusedWithoutShowingEither() {
        let problems = self.problems(Self.base + "[claiming]\nsecret = \"hunter2\"\nsecret_file = \"x\"\n")
        #expect(problems.map(\.keyPath) == ["claiming.secret_file"])
        #expect(problems.first?.line == 9)
        #expect(!problems.description.contains("hunter2"))
    }

    @Test func missingOrEmptySecret() {
        #expect(self.problems(Self.base + "[claiming]\nduration = \"1h\"\n").map(\.keyPath) == ["claiming.secret"])
        let empty = self.problems(Self.base + "[claiming]\nsecret = \"\"\n")
        #expect(empty.first?.message.contains("is empty") == true)
        let unreadable = self.problems(Self.base + "[claiming]\nsecret_file = \"/nonexistent/claim\"\n")
        #expect(unreadable.first?.message.contains("cannot read \"/nonexistent/claim\"") == true)
    }

    @Test func durationOutOfRangeAndTypos() {
        let short = self.problems(Self.base + "[claiming]\nsecret = \"s\"\nduration = \"5s\"\n")
        #expect(short.map(\.keyPath) == ["claiming.duration"])
        #expect(short.first?.message.contains("out of range") == true)
        let typo = self.problems(Self.base + "[claiming]\nsecret = \"s\"\nduraton = \"5m\"\n")
        #expect(typo.first?.message.contains("did you mean \"duration\"?") == true)
        let table = self.problems(Self.base + "[claming]\nsecret = \"s\"\n")
        #expect(table.first?.message.contains("did you mean \"claiming\"?") == true)
    }
}
