import AgentConfig
import AgentCore
import Testing

/// `[server] rate_limits`: "auto" or a table of ThingsBoard limit strings, with positioned problems.
@Suite struct RateLimitSettingsTests {
    static let file = "/etc/tb-agent/config.toml"

    func config(_ server: String, tail: String = "") throws(ConfigurationFileError) -> AgentConfiguration {
        let text = "[server]\nhost = \"tb.example.com\"\n" + server + "\n[provisioning]\ndevice_key = \"KEY\"\ndevice_secret = \"SECRET\"\n" + tail
        return try ConfigurationLoader.parse(text, path: Self.file)
    }

    func problems(_ server: String, tail: String = "") -> [ConfigurationProblem] {
        do {
            _ = try self.config(server, tail: tail)
            Issue.record("accepted \(server) \(tail)")
            return []
        } catch {
            return error.problems
        }
    }

    @Test func autoIsTheDefault() throws {
        #expect(try self.config("").server.rateLimits == .auto)
        #expect(try self.config("rate_limits = \"auto\"").server.rateLimits == .auto)
    }

    @Test func explicitLimitsAsATable() throws {
        let config = try self.config("", tail: """

            [server.rate_limits]
            messages = "10:1,300:60"
            telemetry_messages = "10:1,300:60"
            telemetry_data_points = "10:1,300:60"
            max_payload_size = "64KiB"
            max_inflight_messages = 100
            """)
        guard case .explicit(let limits) = config.server.rateLimits else {
            Issue.record("\(config.server.rateLimits)")
            return
        }
        #expect(limits.messages?.description == "10:1,300:60")
        #expect(limits.telemetryDataPoints?.windows.count == 2)
        #expect(limits.maxPayloadSize == 65536)
        #expect(limits.maxInflightMessages == 100)
        // Only some limits, inline: the others are "no limit".
        let inline = try self.config("rate_limits = { telemetry_data_points = \"100:60\" }")
        #expect(inline.server.rateLimits == .explicit(SessionLimits(telemetryDataPoints: RateLimit(windows: [.init(capacity: 100, seconds: 60)]))))
    }

    @Test func anInvalidLimitStringIsAPositionedProblemWithTheFix() {
        let found = self.problems("", tail: "\n[server.rate_limits]\nmessages = \"10:1\"\ntelemetry_data_points = \"10/1,300:60\"\n")
        #expect(found.count == 1)
        let problem = found.first
        #expect(problem?.keyPath == "server.rate_limits.telemetry_data_points")
        #expect(problem?.line == 10)
        #expect(problem?.column == 1)
        #expect(problem?.message.contains("\"10/1\" in \"10/1,300:60\" is not a window") == true, "\(String(describing: problem))")
        #expect(problem?.description.hasPrefix("\(Self.file):10:1: ") == true)
    }

    @Test(arguments: [
        ("rate_limits = \"automatic\"", "server.rate_limits", "expected \"auto\""),
        ("rate_limits = \"10:1,300:60\"", "server.rate_limits", "belongs to one of the limits"),
        ("rate_limits = 5", "server.rate_limits", "expected \"auto\" or [server.rate_limits]"),
        ("rate_limits = { message = \"10:1\" }", "server.rate_limits.message", "did you mean \"messages\""),
        ("rate_limits = { messages = 10 }", "server.rate_limits.messages", "expected a ThingsBoard rate limit"),
        ("rate_limits = { messages = \"0:1\" }", "server.rate_limits.messages", "capacity must be from 1"),
        ("rate_limits = { max_payload_size = 10 }", "server.rate_limits.max_payload_size", "out of range"),
        ("rate_limits = { max_inflight_messages = 0 }", "server.rate_limits.max_inflight_messages", "out of range"),
        ("rate_limit = \"auto\"", "server.rate_limit", "did you mean \"rate_limits\""),
    ])
    func problemsNameTheKeyAndTheFix(_ line: String, _ key: String, _ expected: String) {
        let found = self.problems(line)
        #expect(found.count == 1, "\(found)")
        guard let problem = found.first else { return }
        #expect(problem.keyPath == key, "\(problem)")
        #expect(problem.line == 3, "\(problem)")
        #expect(problem.message.contains(expected), "\(problem)")
    }
}
