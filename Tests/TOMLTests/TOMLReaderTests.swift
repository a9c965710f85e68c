import TBJSON
import TBTOML
import Testing

/// The reader beyond toml-test: positions of keys and values, positioned errors with their key path, limits.
@Suite struct TOMLReaderTests {
    func parse(_ text: String) throws -> TOMLTable { try TOMLParser.parse(text) }

    func error(_ text: String) -> TOMLError? {
        do {
            let root = try TOMLParser.parse(text)
            Issue.record("accepted: \(TOMLTaggedJSON.encode(root).serialized)")
            return nil
        } catch {
            return error
        }
    }

    func pos(_ line: Int, _ column: Int) -> TOMLPosition { TOMLPosition(line: line, column: column) }

    @Test func keysAndValuesCarryTheirPositions() throws {
        let root = try self.parse(
            """
            # comment
            title = "x"
              port = 1883
            device."odd key" = 'v'

            [server.tls]
            ca = "ca.pem"

            [[sensors]]
            name = "a"
            [[sensors]]
              name = "b"
            list = [
              1,
              { x = 2 },
            ]
            """)
        #expect(root.keys == ["title", "port", "device", "server", "sensors"])
        #expect(root.entry("title")?.keyPosition == self.pos(2, 1))
        #expect(root["title"]?.position == self.pos(2, 9))
        #expect(root.entry("port")?.keyPosition == self.pos(3, 3))
        #expect(root["port"]?.integer == 1883)
        let device = try #require(root["device"])
        #expect(device.position == self.pos(4, 1))
        #expect(device.table?.entry("odd key")?.keyPosition == self.pos(4, 8))
        // [server.tls]: server is created on the way, tls by the header; both at their key in it.
        #expect(root.entry("server")?.keyPosition == self.pos(6, 2))
        #expect(root["server"]?.table?.entry("tls")?.keyPosition == self.pos(6, 9))
        #expect(root.value(at: [.key("server"), .key("tls"), .key("ca")])?.position == self.pos(7, 6))
        // [[sensors]]: the array at its first header, each table at its own.
        let sensors = try #require(root["sensors"])
        #expect(sensors.position == self.pos(9, 3))
        #expect(sensors.array?.map(\.position) == [self.pos(9, 3), self.pos(11, 3)])
        #expect(root.value(at: [.key("sensors"), .index(1), .key("name")])?.string == "b")
        #expect(sensors.array?[1].table?.entry("name")?.keyPosition == self.pos(12, 3))
        let list = try #require(root.value(at: [.key("sensors"), .index(1), .key("list")])?.array)
        #expect(list.map(\.position) == [self.pos(14, 3), self.pos(15, 3)])
        #expect(list[1].table?.entry("x")?.keyPosition == self.pos(15, 5))
    }

    @Test func columnsCountCharactersNotBytesAndSkipTheByteOrderMark() throws {
        let root = try self.parse("\u{FEFF}a = \"é\u{1F600}\"\nb = 1\n")
        #expect(root.entry("a")?.keyPosition == self.pos(1, 1))
        let error = try #require(self.error("\u{FEFF}é = \"é\"\n"))
        #expect(error.position == self.pos(1, 1))
        let late = try #require(self.error("a = \"é\u{1F600}\" x\n"))
        #expect(late.position == self.pos(1, 10))
    }

    @Test func crlfIsOneLineBreakAndALoneCarriageReturnIsRefused() throws {
        let root = try self.parse("a = 1\r\nb = \"\"\"x\r\ny\"\"\"\r\n")
        #expect(root.entry("b")?.keyPosition == self.pos(2, 1))
        #expect(root["b"]?.string == "x\ny")
        let error = try #require(self.error("a = 1\rb = 2\n"))
        #expect(error.position == self.pos(1, 6))
        #expect(error.message.contains("carriage return"))
    }

    @Test(arguments: [
        // text, line, column, key path, part of the message
        ("[server]\nhost = \"x\"\nport = 18 83\n", 3, 11, "server.port", "expected the end of the line after the value, saw '8'"),
        ("[é]\n", 1, 2, "", "a table name must start with a letter, a digit, _, - or a quote, saw 'é' (U+00E9)"),
        ("[[[x]]]\n", 1, 3, "", "saw '['"),
        ("a = [}\n", 1, 6, "a[0]", "expected a value or ']' in the array, saw '}'"),
        ("a = {b = [1,\n  }]}\n", 2, 3, "a.b[1]", "saw '}'"),
        ("a = [\u{2028}]\n", 1, 6, "a[0]", "saw '\u{2028}' (U+2028)"),
        ("[device]\nt = 1979-05-27T:00:00\n", 2, 16, "device.t", "a date-time needs a time after 'T'"),
        ("x = [1, 2026-01-01tx:1]\n", 1, 20, "x[1]", "needs a time after 't'"),
        ("a = 1\na = 2\n", 2, 1, "a", "a is defined twice: it is already an integer (defined at 1:5)"),
        ("[a]\nx = 1\n[a]\n", 3, 2, "a", "the table [a] is defined twice (first at 1:2)"),
        ("a = {x = 1}\na.y = 2\n", 2, 1, "a.y", "a is an inline table (defined at 1:5), not a table: an inline table cannot be extended"),
        ("a = [1]\n[[a]]\n", 2, 3, "a", "values cannot be extended"),
        ("[[a]]\n[a]\n", 2, 2, "a", "write [[a]] to add a table to it"),
        ("[a.b]\nx = 1\n[a]\nb.y = 2\n", 4, 1, "a.b.y", "dotted keys cannot add to it"),
        ("s = \"a\\qb\"\n", 1, 7, "s", "\\'q' is not an escape"),
        ("s = \"\\uD800\"\n", 1, 6, "s", "U+D800 is not a Unicode scalar value"),
        ("s = \"ab\ncd\"\n", 1, 8, "s", "no closing quote on its line"),
        ("i = 9223372036854775808\n", 1, 5, "i", "does not fit in a 64-bit signed integer"),
        ("i = 0x1_0000_0000_0000_0000\n", 1, 5, "i", "does not fit in a 64-bit signed integer"),
        ("i = 1__0\n", 1, 6, "i", "an underscore in a number must be between two digits"),
        ("i = 012\n", 1, 5, "i", "leading zeros"),
        ("f = 1e400\n", 1, 5, "f", "too large for a 64-bit float"),
        ("d = 2023-02-29\n", 1, 13, "d", "day 29 does not exist in 2023-02"),
        ("t = 24:00:00\n", 1, 5, "t", "hour 24 is out of range"),
        ("t = 07:32\n", 1, 10, "t", "TOML 1.0 times are HH:MM:SS"),
        ("b = True\n", 1, 5, "b", "'True' is not a value"),
        ("a = { b = 1, }\n", 1, 14, "a", "a comma cannot follow the last key of an inline table"),
        ("a = { b = 1\n}\n", 1, 12, "a", "an inline table must be written on one line"),
        ("# bell \u{07}\n", 1, 8, "", "control character U+0007 is not allowed in a comment"),
        ("a = \"\"\"\nx\n", 3, 1, "a", "the multi-line string opened at 1:5 is not closed"),
        ("a.b = 1\na.b.c = 2\n", 2, 3, "a.b.c", "a.b is an integer (defined at 1:7), not a table"),
        ("x = 1 # ok\n= 2\n", 2, 1, "", "expected a key"),
    ])
    func errorsArePositionedAndNameTheKey(_ text: String, _ line: Int, _ column: Int, _ path: String, _ message: String) throws {
        let error = try #require(self.error(text))
        #expect(error.position == self.pos(line, column), "\(error)")
        #expect(TOMLPathComponent.render(error.keyPath) == path, "\(error.keyPath)")
        #expect(error.message.contains(message), "\(error.message)")
        #expect(error.description(file: "f.toml").hasPrefix("f.toml:\(line):\(column): "))
    }

    @Test func invalidUTF8IsRefusedAtItsByte() throws {
        var bytes = Array("a = 1\nb = \"x".utf8)
        bytes += [0xC3, 0x28, 0x22, 0x0A]
        #expect(throws: TOMLError.self) { try TOMLParser.parse(bytes: bytes) }
        do {
            _ = try TOMLParser.parse(bytes: bytes)
        } catch {
            #expect(error.position == self.pos(2, 7))
            #expect(error.message.contains("0xC3"))
            #expect(error.message.contains("not UTF-8"))
        }
        // Overlong forms and surrogates are not UTF-8 either.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]] {
            #expect(throws: TOMLError.self) { try TOMLParser.parse(bytes: Array("s = \"".utf8) + bad + [0x22]) }
        }
    }

    @Test(arguments: ["[", "{b=", "a.", "[{a="])
    func nestingIsBoundedWithoutTrapping(_ opening: String) throws {
        let text: String
        if opening == "a." {
            text = String(repeating: "a.", count: 20_000) + "a = 1\n"
        } else {
            text = "a = " + String(repeating: opening, count: 20_000) + "\n"
        }
        let error = try #require(self.error(text))
        #expect(error.line == 1)
        #expect(error.message.contains("nest deeper than 128 levels"), "\(error.message)")
        let header = try #require(self.error("[" + Array(repeating: "t", count: 5_000).joined(separator: ".") + "]\n"))
        #expect(header.message.contains("nest deeper than 128 levels"))
    }

    @Test func nestingUpToTheLimitIsRead() throws {
        let depth = 127
        let text = "a = " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
        var value = try #require(try self.parse(text)["a"])
        var levels = 1
        while let inner = value.array?.first {
            value = inner
            levels += 1
        }
        #expect(levels == depth)
        #expect(throws: TOMLError.self) { try TOMLParser.parse(text, maxDepth: 100) }
    }

    /// Keys are compared by their bytes: "é" as one scalar and as "e" with a combining accent are two keys.
    @Test func keysAreComparedByTheirBytes() throws {
        let root = try self.parse("\"\u{E9}\" = 1\n\"e\u{301}\" = 2\n")
        #expect(root.count == 2)
        #expect(root.entries.map(\.value.integer) == [1, 2])
        #expect(root["e\u{301}"]?.integer == 2)
        #expect(self.error("\"\u{E9}\" = 1\n\"\\u00E9\" = 2\n")?.message.contains("defined twice") == true)
    }

    @Test func sizeIsBounded() {
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = 1\n", maxBytes: 3) }
    }

    @Test func inlineTablesAndArraysAreCompleteButHeadersCanGoThroughImplicitTables() throws {
        let root = try self.parse(
            """
            [a.b.c]
            x = 1
            [a]
            y = 2
            [fruit]
            apple.color = "red"
            [fruit.apple.texture]
            smooth = true
            """)
        #expect(root.value(at: [.key("a"), .key("b"), .key("c"), .key("x")])?.integer == 1)
        #expect(root.value(at: [.key("fruit"), .key("apple"), .key("texture"), .key("smooth")])?.boolean == true)
        #expect(self.error("[fruit]\napple.color = 1\n[fruit.apple]\n")?.message.contains("defined with dotted keys") == true)
        #expect(self.error("a = { b = { c = 1 } }\n[a.b]\n") != nil)
        #expect(self.error("a = [{ b = 1 }]\n[a.c]\n") != nil)
    }

    @Test func valuesOfEveryKind() throws {
        let root = try self.parse(
            """
            s = "tab\\there \\u00E9 \\U0001F600"
            l = 'C:\\path'
            m = \"\"\"
            one \\
              two\"\"\"
            i = [0xff, 0o17, 0b101, -9_223_372_036_854_775_808, +42]
            f = [1.5, -0.0, 6.02e23, inf, -inf, nan]
            b = [true, false]
            odt = 1979-05-27 07:32:00.999999999-07:00
            ldt = 1979-05-27T07:32:00
            ld = 1979-05-27
            lt = 00:32:00.5
            """)
        #expect(root["s"]?.string == "tab\there é \u{1F600}")
        #expect(root["l"]?.string == "C:\\path")
        #expect(root["m"]?.string == "one two")
        #expect(root["i"]?.array?.compactMap(\.integer) == [255, 15, 5, Int64.min, 42])
        let floats = (root["f"]?.array ?? []).compactMap { $0.float }
        #expect(floats.count == 6)
        #expect(floats[1] == 0 && floats[1].sign == .minus)
        #expect(floats[2] == 6.02e23 && floats[3] == .infinity && floats[4] == -.infinity && floats[5].isNaN)
        guard case .offsetDateTime(let odt)? = root["odt"]?.kind else {
            Issue.record("odt: \(String(describing: root["odt"]))")
            return
        }
        #expect(odt.description == "1979-05-27T07:32:00.999999999-07:00")
        #expect(odt.offsetMinutes == -420 && odt.time.nanosecond == 999_999_999)
        #expect(root["ldt"]?.kind == .localDateTime(TOMLDateTime(
            date: TOMLDate(year: 1979, month: 5, day: 27), time: TOMLTime(hour: 7, minute: 32, second: 0), offsetMinutes: nil)))
        #expect(root["ld"]?.kind == .localDate(TOMLDate(year: 1979, month: 5, day: 27)))
        #expect(root["lt"]?.kind == .localTime(TOMLTime(hour: 0, minute: 32, second: 0, fraction: "5")))
        #expect(TOMLTaggedJSON.encode(try #require(root["lt"])) == ["type": "time-local", "value": "00:32:00.5"])
    }

    /// The comparison the conformance tests rely on does see differences.
    @Test func taggedJSONComparisonFindsDifferences() throws {
        func differences(_ a: String, _ b: String) throws -> [String] {
            var found: [String] = []
            TaggedJSONComparison.compare(try JSONValue.parse(a), try JSONValue.parse(b), "", &found)
            return found
        }
        let int1 = #"{"a": {"type": "integer", "value": "1"}}"#
        #expect(try differences(int1, int1).isEmpty)
        #expect(try !differences(int1, #"{"a": {"type": "integer", "value": "2"}}"#).isEmpty)
        #expect(try !differences(int1, #"{"a": {"type": "float", "value": "1"}}"#).isEmpty)
        #expect(try !differences(int1, #"{"b": {"type": "integer", "value": "1"}}"#).isEmpty)
        #expect(try !differences(#"{"a": []}"#, #"{"a": [{"type": "bool", "value": "true"}]}"#).isEmpty)
        #expect(try differences(#"{"f": {"type": "float", "value": "nan"}}"#, #"{"f": {"type": "float", "value": "-nan"}}"#).isEmpty)
        #expect(try differences(#"{"f": {"type": "float", "value": "1e+06"}}"#, #"{"f": {"type": "float", "value": "1000000.0"}}"#).isEmpty)
        #expect(try differences(
            #"{"d": {"type": "datetime", "value": "1987-07-05T17:45:56.600Z"}}"#,
            #"{"d": {"type": "datetime", "value": "1987-07-05 17:45:56.6+00:00"}}"#).isEmpty)
        #expect(try !differences(
            #"{"d": {"type": "datetime", "value": "1987-07-05T17:45:56.61Z"}}"#,
            #"{"d": {"type": "datetime", "value": "1987-07-05T17:45:56.6Z"}}"#).isEmpty)
    }
}
