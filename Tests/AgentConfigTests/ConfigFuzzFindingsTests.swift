import AgentConfig
import AgentCore
import Testing

/// Configuration files `scripts/fuzz.sh config` found to abort the process inside TOMLKit's toml++ 3.4.0 (a failed
/// internal assertion, not a parse error), the TOML reader before TBTOML, kept as regression tests: each is a
/// positioned syntax error that names the key it was reading.
@Suite struct ConfigFuzzFindingsTests {
    static let minimal = """
        [server]
        host = "tb.example.com"

        [provisioning]
        device_key = "KEY"
        device_secret = "SECRET"

        """

    func problems(_ text: String) -> [ConfigurationProblem] {
        do {
            _ = try ConfigurationLoader.parse(text, path: "/etc/tb-agent/config.toml")
            Issue.record("expected problems")
            return []
        } catch {
            return error.problems
        }
    }

    @Test(arguments: [
        // A table name starting with a character no key can start with.
        ("[é]\n", 1, 2, "", "saw 'é' (U+00E9)"),
        ("\n\n[[ é ]]\n", 3, 4, "", "saw 'é'"),
        ("[[[sensors]]]\n", 1, 3, "", "saw '['"),
        ("\u{FEFF}[/button]\n", 1, 2, "", "saw '/'"),
        ("[server]\nhost = \"h\"\n[=]\n", 3, 2, "", "saw '='"),
        // A date with T and no time after it.
        ("[device]\nname_template = 1979-05-27T:00:00\n", 2, 28, "device.name_template", "needs a time after 'T'"),
        ("x = [1, 2026-01-01tx:1]\n", 1, 20, "x[1]", "needs a time after 't'"),
        // An array element starting with '}' or a Unicode line separator.
        ("a = [}\n", 1, 6, "a[0]", "saw '}'"),
        ("a = {b = [1,\n  }]}\n", 2, 3, "a.b[1]", "saw '}'"),
        ("a = [\u{2028}]\n", 1, 6, "a[0]", "saw '\u{2028}' (U+2028)"),
    ])
    func textThatAbortedTOMLKitIsASyntaxError(
        _ text: String, _ line: Int, _ column: Int, _ keyPath: String, _ message: String
    ) throws {
        let found = self.problems(text)
        #expect(found.count == 1, "\(found)")
        let problem = try #require(found.first)
        #expect(problem.line == line && problem.column == column, "\(problem)")
        #expect(problem.keyPath == keyPath)
        let prefix = (keyPath.isEmpty ? "" : keyPath + ": ") + "TOML syntax error: "
        #expect(problem.message.hasPrefix(prefix), "\(problem.message)")
        #expect(problem.message.contains(message), "\(problem.message)")
        #expect(problem.description.hasPrefix("/etc/tb-agent/config.toml:\(line):\(column): \(prefix)"))
    }

    /// The same characters where TOML allows them are not mistaken for the mistakes above.
    @Test func theSameTextInsideStringsAndCommentsIsFine() throws {
        let text = Self.minimal + """
            # [é] and 1979-05-27Tx:1 in a comment
            [device]
            name_template = "pi-{serial}" # [é]
            state_dir = '''
            [é]
            1979-05-27Tx:1
            '''

            ["quoted name"]
            when = 1979-05-27T07:32:00Z
            """
        let found = self.problems(text)
        // Only the unknown table and the multi-line state_dir are problems; nothing is a syntax error.
        #expect(!found.isEmpty)
        #expect(found.allSatisfy { !$0.message.contains("TOML syntax error") }, "\(found)")
        #expect(found.contains { $0.message.contains("unknown table") }, "\(found)")
    }

    /// The key locator that positioned keys for TOMLKit recursed once per nesting level, so a few thousand `[`
    /// overflowed the stack; the reader refuses more than 128 levels with a parse error.
    @Test(arguments: ["[", "{b="])
    func deeplyNestedValuesAreAnErrorNotACrash(_ opening: String) throws {
        let text = "a = " + String(repeating: opening, count: 20_000) + "\n"
        let problem = try #require(self.problems(text).first)
        #expect(problem.line == 1)
        #expect(problem.message.contains("TOML syntax error"), "\(problem.message)")
        #expect(problem.message.contains("nest deeper than 128 levels"), "\(problem.message)")
    }

    /// A board profile goes through the same parser.
    @Test func aBoardProfileThatAbortedTOMLKitIsASyntaxError() throws {
        #expect {
            try BoardProfiles.parse("title = \"x\"\n[é]\n", path: "/etc/tb-agent/boards/x.toml", name: "x")
        } throws: { error in
            guard let error = error as? ConfigurationFileError, let problem = error.problems.first else { return false }
            return problem.line == 2 && problem.column == 2 && problem.message.contains("table name")
        }
    }

    /// A configuration is read whole, so its size is bounded (1 MiB; real ones are a few kilobytes).
    @Test func anOversizedFileIsRefused() throws {
        let text = Self.minimal + "# " + String(repeating: "x", count: 1 << 20) + "\n"
        let problem = try #require(self.problems(text).first)
        #expect(problem.line == 1 && problem.column == 1)
        #expect(problem.message.contains("at most 1048576 bytes"), "\(problem.message)")
    }
}
