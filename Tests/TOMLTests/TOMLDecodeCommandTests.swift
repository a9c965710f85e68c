import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// `tb-agent toml-decode`, toml-test's decoder interface: TOML on stdin, tagged JSON on stdout and exit 0, or the
/// positioned error on stderr and exit 1.
@Suite struct TOMLDecodeCommandTests {
    @Test func decodesToTaggedJSON() throws {
        let result = try TestSupport.tbAgent(
            ["toml-decode"], stdin: "title = \"x\"\n[server]\nport = 1883\nratio = 0.5\nwhen = 1979-05-27T07:32:00Z\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        let json = try JSONValue.parse(result.stdout)
        #expect(json == [
            "title": ["type": "string", "value": "x"],
            "server": [
                "port": ["type": "integer", "value": "1883"],
                "ratio": ["type": "float", "value": "0.5"],
                "when": ["type": "datetime", "value": "1979-05-27T07:32:00Z"],
            ],
        ])
    }

    @Test func invalidTOMLIsAPositionedErrorAndExit1() throws {
        let result = try TestSupport.tbAgent(["toml-decode"], stdin: "[server]\nhost = \"x\"\nport = 18 83\n")
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "stdin:3:11: server.port: expected the end of the line after the value, saw '8'\n")
    }

    @Test func isHiddenFromTheHelp() throws {
        let help = try TestSupport.tbAgent(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("check-config"))
        #expect(!help.stdout.contains("toml-decode"))
    }

    /// A sample of toml-test's cases through the binary, as toml-test's own harness would run them.
    @Test func agreesWithTheSuiteThroughTheBinary() throws {
        let sample = TOMLTestSuite.valid.enumerated().filter { $0.offset % 15 == 0 }.map(\.element)
            + TOMLTestSuite.invalid.enumerated().filter { $0.offset % 25 == 0 }.map(\.element)
        #expect(sample.count >= 30)
        for name in sample {
            // (stdin is given as text here: cases that are not UTF-8 are left to the in-process tests.)
            guard let input = try? String(contentsOf: TOMLTestSuite.root.appendingPathComponent(name), encoding: .utf8)
            else { continue }
            let result = try TestSupport.tbAgent(["toml-decode"], stdin: input)
            if name.hasPrefix("valid/") {
                #expect(result.status == 0, "\(name): \(result.stderr)")
                let expected = try JSONValue.parse(
                    try Data(contentsOf: TOMLTestSuite.root.appendingPathComponent(String(name.dropLast(5)) + ".json")),
                    maxDepth: 1000)
                var differences: [String] = []
                TaggedJSONComparison.compare(try JSONValue.parse(result.stdout, maxDepth: 1000), expected, "", &differences)
                #expect(differences.isEmpty, "\(name): \(differences)")
            } else {
                #expect(result.status == 1, "\(name): \(result.stdout)")
                #expect(result.stderr.hasPrefix("stdin:"), "\(name): \(result.stderr)")
            }
        }
    }
}
