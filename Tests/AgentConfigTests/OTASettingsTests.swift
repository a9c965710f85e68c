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
        let config = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
        #expect(config.ota == OTASettings(enabled: false, title: "weather-station", chunkSize: 32 << 10))
    }

    @Test("a chunk size above 60 KiB, below 1 KiB, an empty title and an unknown key are positioned problems",
          arguments: ["chunk_size = \"64KiB\"", "chunk_size = 512", "title = \"\"", "chunksize = 1024"])
    func refused(_ line: String) {
        let text = Self.base + "[ota]\n" + line + "\n"
        do {
            _ = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
            Issue.record("accepted \(line)")
        } catch {
            let problem = error.problems.first
            #expect(problem?.line == text.split(separator: "\n", omittingEmptySubsequences: false).count - 1, "\(error.problems)")
            if line.hasPrefix("chunk_size") { #expect(problem?.message.contains("\(line.hasSuffix("512") ? 512 : 65536) bytes is out of range") == true, "\(error.problems)") }
        }
    }
}
