import AgentCore
import TBJSON
import Testing

/// Inputs `scripts/fuzz.sh` found to crash a parser or break one of its properties, kept as regression tests.
@Suite struct FuzzFindingsTests {
    func rpc(_ body: String, id: String = "7") -> RemoteControl.RPC? {
        RemoteControl.parseRPC(topic: RemoteControl.rpcRequestPrefix + id, payload: Array(body.utf8))
    }

    /// `Int64(seconds * 1000)` trapped on a number no duration can hold: any server RPC could stop the agent.
    @Test(arguments: [
        #"{"method":"identify","params":301e300}"#, #"{"method":"identify","params":{"seconds":-1e300}}"#,
        #"{"method":"identify","params":"1e300"}"#, #"{"method":"identify","params":"nan"}"#,
        #"{"method":"identify","params":"-inf"}"#, #"{"method":"identify","params":{"duration":"infinity"}}"#,
    ])
    func identifyWithAnImpossibleDurationIsAnErrorReply(_ body: String) throws {
        let rpc = try #require(self.rpc(body))
        guard case .failure(let error) = rpc.result else {
            Issue.record("accepted \(body): \(rpc.result)")
            return
        }
        #expect(error.message.contains("between 0 and 1 hour"))
    }

    /// The same conversion in shared attributes: the update is ignored with a problem, the others still apply.
    @Test func intervalWithAnImpossibleValueIsIgnored() throws {
        var overrides = RemoteControl.IntervalOverrides()
        let update = try JSONValue.parse(#"{"interval":1e300,"interval_a":"nan","interval_b":"-inf","interval_c":"5s"}"#)
        let problems = overrides.apply(update, sensors: ["a", "b", "c"])
        #expect(problems.count == 3)
        #expect(problems.allSatisfy { $0.contains("ignored") })
        #expect(overrides.all == nil)
        #expect(overrides.perSensor == ["c": .seconds(5)])
    }

    /// Compared as Characters, an id starting with a combining mark merged with the topic's "/" and the request went
    /// unanswered; MQTT topic levels are bytes.
    @Test func anRPCIdStartingWithACombiningMarkIsAnswered() throws {
        let id = "\u{07F2}1"
        let rpc = try #require(self.rpc(#"{"method":"getStatus"}"#, id: id))
        #expect(rpc.id == id)
        #expect(rpc.responseTopic == RemoteControl.rpcResponsePrefix + id)
        #expect(rpc.result == .success(.getStatus))
        // A "/" inside the id, even with a combining mark on it, is another topic level: not a request.
        #expect(self.rpc(#"{"method":"getStatus"}"#, id: "1/\u{301}") == nil)
    }

    /// A torn or hand-edited credentials file could put the token where a key belongs; the JSON parser quoted keys
    /// in its errors, so the token reached the log.
    @Test func aDamagedCredentialsFileDoesNotShowTheToken() throws {
        let token = "tok5e3c9a1b77d04f2e"
        let stored = StoredCredentials(
            server: ServerEndpoint(host: "tb.example.com", port: 1883), deviceName: "rpi-0001",
            credentials: .accessToken(Secret(token)), issuedAt: UTCTimestamp(secondsSinceEpoch: 1_780_000_000))
        let text = String(decoding: stored.document, as: UTF8.self)
        let edited = text.replacing(#""token": "#, with: "")
        #expect(edited.contains("{\n      \"\(token)\"\n"))
        #expect(throws: CredentialDocumentError.self) { try StoredCredentials(document: Array(edited.utf8)) }
        do throws(CredentialDocumentError) {
            _ = try StoredCredentials(document: Array(edited.utf8))
        } catch {
            #expect(error.description.hasPrefix("not JSON"))
            #expect(!error.description.contains(token))
        }
        #expect(throws: JSONParseError(offset: 7, reason: "expected ':' after an object key")) {
            try JSONValue.parse(#"{"abc" 1}"#)
        }
    }

    /// A raw value too large once scaled came back as infinity, which counted as a reading.
    @Test(arguments: [("9.9e299\n", 1e10), ("55555555555551\n", 1e300), ("-1e299", -1e300)])
    func anIIOValueOutOfRangeIsMalformed(_ text: String, _ scale: Double) {
        #expect {
            try SensorParsers.iio(text, scale: scale, offset: 0, file: "in_temp_raw")
        } throws: { error in
            guard let failure = error as? SensorFailure else { return false }
            return failure.kind == .malformed && failure.message.hasPrefix("in_temp_raw: ") && failure.message.contains("out of range")
        }
        #expect((try? SensorParsers.iio("9.9e299", scale: 1, offset: 0)) == 9.9e299)
    }
}
