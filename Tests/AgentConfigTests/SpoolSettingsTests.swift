import AgentConfig
import AgentCore
import Testing

@Suite struct SpoolSettingsTests {
    func parse(_ spool: String) throws(ConfigurationFileError) -> AgentConfiguration {
        try ConfigurationLoader.parse(ConfigurationLoaderTests.minimal + "[spool]\n" + spool, path: "/etc/tb-agent/config.toml")
    }

    @Test func defaultsWhenAbsent() throws {
        let config = try ConfigurationLoader.parse(ConfigurationLoaderTests.minimal, path: "/etc/tb-agent/config.toml")
        #expect(config.spool == SpoolSettings())
    }

    @Test func sizesWithUnitsAndTheSyncInterval() throws {
        let config = try self.parse("max_size = \"16MiB\"\nsegment_size = 262144\nsync_interval = \"0s\"\n")
        #expect(config.spool.maxBytes == 16 << 20)
        #expect(config.spool.segmentBytes == 262_144)
        #expect(config.spool.syncInterval == .zero)
    }

    @Test(arguments: [
        ("max_size = \"lots\"\n", "spool.max_size"), ("max_size = \"1KiB\"\n", "spool.max_size"),
        ("sync_interval = 5\n", "spool.sync_interval"), ("max_size = \"1MiB\"\nsegment_size = \"1MiB\"\n", "spool.segment_size"),
        ("max_sise = \"1MiB\"\n", "spool.max_sise"),
    ])
    func problemsNameTheKeyAndItsLine(_ text: String, _ key: String) {
        do {
            _ = try self.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.problems.count == 1)
            let line = error.description
            #expect(line.contains(key), "\(line)")
            #expect(line.hasPrefix("/etc/tb-agent/config.toml:"), "\(line)")
        }
    }
}
