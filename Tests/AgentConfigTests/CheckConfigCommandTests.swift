import AgentConfig
import AgentTestSupport
import Foundation
import Testing

/// `tb-agent check-config` on the shipped examples and on the broken fixtures.
@Suite struct CheckConfigCommandTests {
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
        #expect(result.stderr.isEmpty)
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
}
