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
