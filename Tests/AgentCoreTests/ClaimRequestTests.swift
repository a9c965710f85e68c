import AgentCore
import TBJSON
import Testing

@Suite struct ClaimRequestTests {
    @Test func payloadIsThingsBoardsClaimMessage() throws {
        let request = ClaimRequest(secret: Secret("se\"cret"), duration: .seconds(90))
        #expect(ClaimRequest.topic == "v1/devices/me/claim")
        let json = try JSONValue.parse(request.payload)
        #expect(json["secretKey"] == .string("se\"cret"))
        #expect(json["durationMs"] == .integer(90_000))
    }

    @Test func durationNeverBecomesTheServersDefault() {
        // 0 would mean ThingsBoard's 24 h: the request always says its own window.
        #expect(ClaimRequest(secret: Secret("s"), duration: .zero).durationMs == 1)
        #expect(ClaimRequest(secret: Secret("s"), duration: .milliseconds(1500)).durationMs == 1500)
    }

    @Test func settingsAndOverride() {
        let settings = ClaimingSettings(secret: Secret("s"))
        #expect(ClaimRequest(settings).duration == .seconds(3600))
        #expect(ClaimRequest(settings, duration: .seconds(60)).duration == .seconds(60))
    }

    @Test func instructionsNameTheDeviceAndWindowButNotTheSecret() {
        let text = ClaimRequest(secret: Secret("hunter2"), duration: .seconds(600)).instructions(deviceName: "pi-42")
        #expect(text.contains("\"pi-42\"") && text.contains("10m") && text.contains("does not say whether"))
        #expect(!text.contains("hunter2"))
        #expect(!"\(ClaimRequest(secret: Secret("hunter2"), duration: .seconds(1)))".contains("hunter2"))
    }
}
