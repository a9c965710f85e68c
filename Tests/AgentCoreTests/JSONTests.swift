import TBJSON
import Testing

@Suite struct JSONTests {
    @Test func keepsMemberOrderAndBytes() throws {
        let text = #"{"credentialsValue":"Ab3","credentialsType":"ACCESS_TOKEN","status":"SUCCESS"}"#
        let value = try JSONValue.parse(text)
        #expect(value.serialized == text)
        #expect(value["status"]?.stringValue == "SUCCESS")
    }

    @Test func numbersKeepTheirPrecision() throws {
        let value = try JSONValue.parse(#"[23.125, 1e-7, 9223372036854775807, 9223372036854775808, -0]"#)
        #expect(value.serialized == "[23.125,1e-7,9223372036854775807,9223372036854775808,0]")
        #expect(value.arrayValue?[0].doubleValue == 23.125)
    }

    /// The byte writer (telemetry's) and the string writer give the same text: escapes, control characters,
    /// multi-byte scalars, integers at both ends, nesting.
    @Test func bytesAndTextAgree() throws {
        let strings = ["", "plain", "q\"uote", "back\\slash", "nl\n cr\r tab\t bs\u{08} ff\u{0C}", "ctl\u{01}\u{1F}\u{7F}",
                       "é ü 温度 🌡️", "mixed \u{00}\"\\ é\u{1B}"]
        var values: [JSONValue] = [.null, .bool(true), .bool(false), .number("1e-7"), .double(23.125)]
        values += [0, 1, -1, 9, 10, -10, 1234567890, .max, .min].map { JSONValue.integer($0) }
        values += strings.map { JSONValue.string($0) }
        values.append(.array(values))
        values.append(.object(strings.enumerated().map { ($0.element, values[$0.offset % values.count]) }))
        values.append(.object([("nested", .object([("a", .array([.integer(-5), .string("\u{02}")]))]))]))
        for value in values {
            #expect(String(decoding: value.serializedBytes, as: UTF8.self) == value.serialized)
            var appended = Array("prefix".utf8)
            value.write(to: &appended)
            #expect(appended == Array("prefix".utf8) + Array(value.serialized.utf8))
        }
    }

    @Test func stringsRoundTripEscapes() throws {
        let original: JSONValue = .string("quote \" backslash \\ newline \n tab \t nul \u{0} é 😀")
        #expect(try JSONValue.parse(original.serialized) == original)
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "nul", "\"\\x\"", "01", "{'a':1}", "{a:1}", "[1] 2", "\"\\ud800\""])
    func strictRejects(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func lenientAcceptsWhatGsonAccepts() throws {
        let value = try JSONValue.parse("{provisionDeviceKey: 'K', 'deviceName': abc-1, n: 2}", lenient: true)
        #expect(value["provisionDeviceKey"] == "K")
        #expect(value["deviceName"] == "abc-1")
        #expect(value["n"] == 2)
    }

    @Test func depthIsLimited() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
    }

    @Test func doublesAreWrittenExactly() {
        #expect(JSONValue.double(23.125).serialized == "23.125")
        #expect(JSONValue.double(21).serialized == "21")
        #expect(JSONValue.double(.nan) == .null)
    }
}
