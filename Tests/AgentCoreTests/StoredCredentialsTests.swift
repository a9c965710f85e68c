import AgentCore
import TBChecksum
import TBJSON
import Testing

@Suite struct SupportTests {
    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (Int64(951_782_400), "2000-02-29T00:00:00Z"),
        (Int64(1_780_000_000), "2026-05-28T20:26:40Z"), (Int64(-1), "1969-12-31T23:59:59Z"),
        (Int64(4_102_444_799), "2099-12-31T23:59:59Z"),
    ])
    func utcTimestamps(_ seconds: Int64, _ text: String) {
        #expect(UTCTimestamp(secondsSinceEpoch: seconds).iso8601 == text)
        #expect(UTCTimestamp(iso8601: text)?.secondsSinceEpoch == seconds)
    }

    @Test func utcTimestampParsingVariants() {
        #expect(UTCTimestamp(iso8601: "2026-05-28T20:26:40.123Z")?.secondsSinceEpoch == 1_780_000_000)
        #expect(UTCTimestamp(iso8601: "2026-05-28T20:26:40+00:00")?.secondsSinceEpoch == 1_780_000_000)
        for bad in ["", "2026-05-28", "2026-13-01T00:00:00Z", "2026-05-28T20:26:40+02:00", "2026-05-28 20:26:40Z"] {
            #expect(UTCTimestamp(iso8601: bad) == nil, "\(bad)")
        }
    }
}

@Suite struct StoredCredentialsTests {
    static let record = StoredCredentials(
        server: ServerEndpoint(host: "tb.example.com", port: 1883), deviceName: "rpi-1",
        credentials: .accessToken(Secret("token-XYZ")), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))

    @Test func documentIsReadableAndChecksummed() throws {
        let text = String(decoding: Self.record.document, as: UTF8.self)
        #expect(text.contains("\"token\": \"token-XYZ\""))  // in the clear: protected by the file mode
        #expect(text.contains("\"issuedAt\": \"2026-05-28T20:26:40Z\""))
        #expect(text.contains("\"host\": \"tb.example.com\""))
        let value = try JSONValue.parse(Self.record.document)
        let payload = try #require(value["payload"])
        #expect(value["sha256"]?.stringValue == SHA256.hex(payload.serializedBytes))
        #expect(try StoredCredentials(document: Self.record.document) == Self.record)
    }

    @Test func rejectsWhatIsNotItsOwn() throws {
        let good = String(decoding: Self.record.document, as: UTF8.self)
        let cases: [(String, String)] = [
            ("", "empty"),
            (good.replacing("\"format\": 1", with: "\"format\": 2"), "format 2"),
            (good.replacing("token-XYZ", with: "token-XYY"), "checksum"),
            (good.replacing("\"sha256\"", with: "\"sha1\""), "checksum"),
            (String(good.dropLast(10)), "not JSON"),
        ]
        for (text, expected) in cases {
            do {
                _ = try StoredCredentials(document: Array(text.utf8))
                Issue.record("accepted: \(expected)")
            } catch {
                #expect(error.reason.contains(expected), "\(error.reason)")
            }
        }
    }

    @Test func descriptionIsMasked() {
        #expect(Self.record.description == "rpi-1 (ACCESS_TOKEN, issued 2026-05-28T20:26:40Z) for tb.example.com:1883")
        #expect(!"\(Self.record.credentials)".contains("token-XYZ"))
        let basic = DeviceCredentials.mqttBasic(clientId: "c", username: "u", password: Secret("pw-SECRET"))
        #expect(!"\(basic)".contains("pw-SECRET"))
        #expect("\(basic)".contains("\"u\""))
    }

    @Test func ipv6EndpointsAreBracketed() {
        #expect(ServerEndpoint(host: "::1", port: 1883).description == "[::1]:1883")
    }
}
