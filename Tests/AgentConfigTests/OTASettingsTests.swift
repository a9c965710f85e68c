import AgentConfig
import AgentCore
import Testing

/// `[ota]`: defaults, and chunk sizes the server or the agent's inbox would refuse, with a positioned message.
@Suite struct OTASettingsTests {
    static let base = ConfigurationLoaderTests.minimal

    @Test func defaultsWithoutTheTable() throws {
        let config = try ConfigurationLoader.parse(Self.base, path: "/etc/tb-agent/config.toml")
        #expect(config.ota == OTASettings(enabled: true, title: "tb-agent", chunkSize: 16 << 10))
    }

    @Test func allKeys() throws {
        let text = Self.base + "[ota]\nenabled = false\ntitle = \"weather-station\"\nchunk_size = \"32KiB\"\n"
            + "confirm_after = \"30s\"\nwindow = \"10m\"\nrestart_command = [\"/usr/local/bin/restart-agent\", \"now\"]\n"
            + "backup_directory = \"/srv/backup\"\n[ota.software]\ncommand = [\"/usr/local/bin/install-app\", \"--quiet\"]\ntimeout = \"2m\"\n"
        let config = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
        var expected = OTASettings(
            enabled: false, title: "weather-station", chunkSize: 32 << 10, confirmAfter: .seconds(30), window: .seconds(600),
            restartCommand: ["/usr/local/bin/restart-agent", "now"], backupDirectory: "/srv/backup")
        expected.softwareCommand = ["/usr/local/bin/install-app", "--quiet"]
        expected.softwareTimeout = .seconds(120)
        #expect(config.ota == expected)
    }

    @Test("a chunk size above 60 KiB, below 1 KiB, an empty title and an unknown key are positioned problems",
          arguments: [
            "chunk_size = \"64KiB\"", "chunk_size = 512", "title = \"\"", "chunksize = 1024", "window = \"30s\"",
            "confirm_after = \"10m\"", "restart_command = \"systemctl restart tb-agent\"", "restart_command = []",
            "restart_command = [\"systemctl\", 1]", "backup_directory = \"backup\"", "[ota.software]\ntimeout = \"1m\"",
            "[ota.software]\ncommand = \"install-app\"", "[ota.software]\ncommand = [\"x\"]\nretries = 2",
          ])
    func refused(_ line: String) {
        let text = Self.base + "[ota]\n" + line + "\n"
        do {
            _ = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
            Issue.record("accepted \(line)")
        } catch {
            let problem = error.problems.first
            let last = text.split(separator: "\n", omittingEmptySubsequences: false).count - 1
            // A missing key is reported at its table's header.
            #expect(problem?.line == (line.hasPrefix("[ota.software]\ntimeout") ? last - 1 : last), "\(error.problems)")
            if line.hasPrefix("window") { #expect(problem?.message.contains("is not longer than confirm_after") == true, "\(error.problems)") }
            if line.hasPrefix("confirm_after") { #expect(problem?.message.contains("is not shorter than the window") == true, "\(error.problems)") }
            if line.hasPrefix("restart_command") { #expect(problem?.message.contains("expected a command as an array of strings") == true, "\(error.problems)") }
            if line.hasPrefix("chunk_size") { #expect(problem?.message.contains("\(line.hasSuffix("512") ? 512 : 65536) bytes is out of range") == true, "\(error.problems)") }
        }
    }
}
