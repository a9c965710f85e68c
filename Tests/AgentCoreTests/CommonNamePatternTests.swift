import AgentCore
import Testing

/// `CommonNamePattern`: group 1 of the first match, as ThingsBoard's `Matcher.find()` and `group(1)`, for the subset
/// of Java regex the agent supports; anything else is refused by name.
@Suite struct CommonNamePatternTests {
    func name(_ pattern: String, _ commonName: String) throws -> String? {
        try CommonNamePattern(parsing: pattern).deviceName(in: commonName)
    }

    @Test func thingsBoardsDocumentedForms() throws {
        #expect(try self.name("(.*)", "DeviceA") == "DeviceA")
        #expect(try self.name(#"(.*)\.company.com"#, "DeviceA.company.com") == "DeviceA")
        #expect(try self.name("(.*)@company.com", "DeviceA@company.com") == "DeviceA")
        #expect(try self.name(#"(.*)\.devices\.example\.com"#, "sim-1.devices.example.com") == "sim-1")
        // find(): unanchored, leftmost, greedy.
        #expect(try self.name("dev-(.+)", "x dev-42 y") == "42 y")
        #expect(try self.name("([^.]+)", "sim-1.devices.example.com") == "sim-1")
        #expect(try self.name(#"^device-([0-9a-f]+)$"#, "device-c0ffee") == "c0ffee")
        #expect(try self.name(#"^device-([0-9a-f]+)$"#, "device-c0ffee-2") == nil)
        #expect(try self.name(#"(\d+)"#, "board 0042 rev 2") == "0042")
        #expect(try self.name(#"(\w+)\.example\.com"#, "a-b.example.com") == "b")
        #expect(try self.name(#"(.*)\.example\.com"#, "sim-1.example.org") == nil)
        // An unescaped "." matches any character, as in Java.
        #expect(try self.name("(.*).company.com", "DeviceA@company-com") == "DeviceA")
        // An optional group part.
        #expect(try self.name("(dev-?[0-9]+)", "dev12") == "dev12")
    }

    @Test(arguments: [
        ("a|b", "alternatives"), ("(a){2}", "quantifier after the group"), ("a{2}(.*)", "counted repetition"),
        ("((a))", "nested groups"), ("(?<n>.*)", "(?…)"), ("(a)(b)", "only one group"), ("abc", "no group"),
        ("(.*?)", "lazy"), (#"(\1)"#, "escape \\1"), ("(.*", "without \")\""), ("[a-(.*)", "range"),
    ])
    func unsupportedConstructsAreRefusedByName(pattern: String, fragment: String) {
        #expect {
            _ = try CommonNamePattern(parsing: pattern)
        } throws: { error in
            "\(error)".contains(fragment)
        }
    }
}
