import AgentCore
import TBJSON
import Testing

@Suite struct RemoteControlTests {
    func rpc(_ body: String, id: String = "7") -> RemoteControl.RPC? {
        RemoteControl.parseRPC(topic: "v1/devices/me/rpc/request/\(id)", payload: Array(body.utf8))
    }

    @Test func knownMethods() {
        #expect(self.rpc(#"{"method":"getStatus","params":{}}"#)?.result == .success(.getStatus))
        #expect(self.rpc(#"{"method":"sampleNow"}"#)?.result == .success(.sampleNow))
        #expect(self.rpc(#"{"method":"reprovision","params":null}"#)?.result == .success(.reprovision))
        #expect(self.rpc(#"{"method":"identify","params":{"seconds":5}}"#)?.result == .success(.identify(.seconds(5))))
        #expect(self.rpc(#"{"method":"identify","params":"2m"}"#)?.result == .success(.identify(.seconds(120))))
        #expect(self.rpc(#"{"method":"identify"}"#)?.result == .success(.identify(.seconds(30))))
        #expect(self.rpc(#"{"method":"getStatus"}"#, id: "42")?.responseTopic == "v1/devices/me/rpc/response/42")
    }

    @Test(arguments: [
        #"{"method":"reboot"}"#, #"not json"#, #"{"params":1}"#, #"[1,2]"#, #"{"method":"identify","params":{"seconds":-1}}"#,
        #"{"method":"identify","params":"forever"}"#, "",
    ])
    func badRequestsGetAnErrorReplyNotACrash(_ body: String) throws {
        let rpc = try #require(self.rpc(body))
        guard case .failure(let error) = rpc.result else {
            Issue.record("accepted \(body)")
            return
        }
        #expect(error.reply["error"]?.stringValue?.isEmpty == false)
    }

    @Test func otherTopicsAreNotRPCs() {
        #expect(RemoteControl.parseRPC(topic: "v1/devices/me/attributes", payload: []) == nil)
        #expect(RemoteControl.parseRPC(topic: "v1/devices/me/rpc/request/", payload: []) == nil)
    }

    @Test func intervalOverridesFollowSharedAttributes() throws {
        var o = RemoteControl.IntervalOverrides()
        #expect(o.apply(try JSONValue.parse(#"{"interval":"30s","interval_door":5,"other":1}"#), sensors: ["door"]).isEmpty)
        #expect(o.interval(for: "door", configured: .seconds(10)) == .seconds(5))
        #expect(o.interval(for: "temperature", configured: .seconds(10)) == .seconds(30))
        #expect(o.apply(try JSONValue.parse(#"{"deleted":["interval"]}"#), sensors: ["door"]).isEmpty)
        #expect(o.interval(for: "temperature", configured: .seconds(10)) == .seconds(10))
        let problems = o.apply(try JSONValue.parse(#"{"interval":"0s","interval_door":"soon"}"#), sensors: ["door"])
        #expect(problems.count == 2)
        #expect(o.interval(for: "door", configured: .seconds(10)) == .seconds(5))
        // An attributes response on connect.
        #expect(o.apply(try JSONValue.parse(#"{"shared":{"interval":"1m"}}"#), sensors: ["door"]).isEmpty)
        #expect(o.all == .seconds(60))
    }

    /// Issue 10, finding 3: every `interval_<anything>` was kept (400,000 keys: +42 MB). Only configured sensors
    /// count now; the rest is one problem line.
    @Test func intervalOverridesKeepOnlyConfiguredSensors() {
        var o = RemoteControl.IntervalOverrides()
        var members: [(String, JSONValue)] = (0..<50_000).map { ("interval_ghost\($0)", .integer(5)) }
        members.append(("interval_door", .integer(7)))
        let problems = o.apply(.object(members), sensors: ["door"])
        #expect(o.perSensor == ["door": .seconds(7)])
        #expect(problems.count == 1)
        #expect(problems.first?.contains("ignored 50000 shared attribute(s)") == true)
    }

    /// A flood of bad values gives at most 8 lines, and the good values after them still apply.
    @Test func manyBadValuesAreReportedBoundedlyAndDoNotHideGoodOnes() {
        var o = RemoteControl.IntervalOverrides()
        var members: [(String, JSONValue)] = (0..<20).map { _ in ("interval", .string("soon")) }
        members.append(("interval_door", .integer(7)))
        let problems = o.apply(.object(members), sensors: ["door"])
        #expect(problems.count == 8)
        #expect(o.perSensor == ["door": .seconds(7)])
    }
}
