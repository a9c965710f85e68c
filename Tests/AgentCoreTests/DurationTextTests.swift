import AgentCore
import Testing

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("10s", .seconds(10)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)), ("1.5s", .milliseconds(1500)), ("20 ms", .milliseconds(20)),
    ])
    func parses(_ text: String, _ expected: Duration) {
        #expect(DurationText.parse(text) == expected)
    }

    @Test(arguments: ["", "10", "ten seconds", "5x", "-1s", "s", "1e3s"])
    func rejects(_ text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test(arguments: [Duration.milliseconds(20), .seconds(10), .seconds(300), .seconds(5400), .milliseconds(1500)])
    func formatRoundTrips(_ d: Duration) {
        #expect(DurationText.parse(DurationText.format(d)) == d)
    }

    @Test func secretsAreMasked() {
        let s = Secret("hunter2")
        #expect(!"\(s)".contains("hunter2"))
        #expect(!String(reflecting: s).contains("hunter2"))
        #expect(s.revealed == "hunter2")
    }
}
