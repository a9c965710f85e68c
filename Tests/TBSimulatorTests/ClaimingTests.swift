import TBJSON
import Testing
@testable import TBSimulator

@Suite("Claiming: ThingsBoard's claim cache and claim endpoint")
struct ClaimBookTests {
    @Test("put-if-absent: a repeated request within the window keeps the first secret and expiry")
    func putIfAbsent() {
        var book = ClaimBook()
        #expect(book.register(device: "d", secretKey: "first", durationMs: 60_000, now: 1_000)
            == .stored(ClaimRecord(secretKey: "first", expiresAt: 61_000, storedAt: 1_000)))
        #expect(book.register(device: "d", secretKey: "second", durationMs: 120_000, now: 2_000)
            == .kept(ClaimRecord(secretKey: "first", expiresAt: 61_000, storedAt: 1_000)))
        #expect(book.claim(device: "d", secretKey: "second", customer: "c", now: 3_000) == .failure)
    }

    @Test("durationMs 0 or negative takes the server default (24 h unless configured)")
    func defaultDuration() {
        var book = ClaimBook()
        guard case .stored(let record) = book.register(device: "d", secretKey: "s", durationMs: 0, now: 0) else {
            Issue.record("not stored")
            return
        }
        #expect(record.expiresAt == 86_400_000)
        var settings = ClaimingSettings()
        settings.defaultDuration = .seconds(90)
        var short = ClaimBook(settings: settings)
        #expect(short.register(device: "d", secretKey: "s", durationMs: -5, now: 10)
            == .stored(ClaimRecord(secretKey: "s", expiresAt: 90_010, storedAt: 10)))
    }

    @Test("claim: the right secret succeeds once; then the device is CLAIMED and refuses new claim requests")
    func success() {
        var book = ClaimBook()
        _ = book.register(device: "d", secretKey: "s", durationMs: 60_000, now: 0)
        #expect(book.claim(device: "d", secretKey: "s", customer: "Customer A", now: 59_999) == .success)
        #expect(book.customers["d"] == "Customer A")
        #expect(book.claim(device: "d", secretKey: "s", customer: "Customer B", now: 60_000) == .claimed)
        guard case .refused = book.register(device: "d", secretKey: "s", durationMs: 0, now: 70_000) else {
            Issue.record("a claimed device registered a claim")
            return
        }
        #expect(book.reclaim(device: "d") == "Customer A")
        #expect(book.register(device: "d", secretKey: "t", durationMs: 0, now: 80_000)
            == .stored(ClaimRecord(secretKey: "t", expiresAt: 80_000 + 86_400_000, storedAt: 80_000)))
    }

    @Test("a wrong secret or a closed window fails and evicts the entry: the device must ask again")
    func failureEvicts() {
        var book = ClaimBook()
        _ = book.register(device: "d", secretKey: "s", durationMs: 60_000, now: 0)
        #expect(book.claim(device: "d", secretKey: "wrong", customer: "c", now: 1) == .failure)
        #expect(book.claim(device: "d", secretKey: "s", customer: "c", now: 2) == .failure)
        _ = book.register(device: "d", secretKey: "s", durationMs: 60_000, now: 10)
        #expect(book.claim(device: "d", secretKey: "s", customer: "c", now: 60_011) == .failure)
        #expect(book.claim(device: "d", secretKey: "", customer: "c", now: 60_012) == .failure)
    }

    @Test("an empty secret matches only an empty secret")
    func emptySecret() {
        var book = ClaimBook()
        _ = book.register(device: "d", secretKey: "", durationMs: 0, now: 0)
        #expect(book.claim(device: "d", secretKey: "", customer: "c", now: 1) == .success)
    }

    @Test("an expired entry still blocks a new request until the claim cache drops it")
    func cacheTimeToLive() {
        var settings = ClaimingSettings()
        settings.cacheTimeToLive = .seconds(10)
        var book = ClaimBook(settings: settings)
        _ = book.register(device: "d", secretKey: "old", durationMs: 1_000, now: 0)
        #expect(book.register(device: "d", secretKey: "new", durationMs: 1_000, now: 5_000)
            == .kept(ClaimRecord(secretKey: "old", expiresAt: 1_000, storedAt: 0)))
        #expect(book.register(device: "d", secretKey: "new", durationMs: 1_000, now: 10_000)
            == .stored(ClaimRecord(secretKey: "new", expiresAt: 11_000, storedAt: 10_000)))
    }

    @Test("without allowClaimingByDefault only a device with claimingAllowed registers")
    func claimingAllowed() {
        var settings = ClaimingSettings()
        settings.allowClaimingByDefault = false
        var book = ClaimBook(settings: settings)
        guard case .refused = book.register(device: "d", secretKey: "s", durationMs: 0, now: 0) else {
            Issue.record("registered without claimingAllowed")
            return
        }
        book.setClaimingAllowed(true, device: "d")
        guard case .stored = book.register(device: "d", secretKey: "s", durationMs: 0, now: 0) else {
            Issue.record("not registered with claimingAllowed")
            return
        }
    }
}

@Suite("Claiming over MQTT and the control interface", .serialized)
struct ClaimSessionTests {
    @Test("v1/devices/me/claim: PUBACK and nothing else; the control API shows the claim and claims the device")
    func claimEndToEnd() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            client.send(Packet.publish("v1/devices/me/claim", #"{"secretKey":"abc123","durationMs":60000}"#, qos: 1, packetID: 3))
            #expect(try client.expectPacket().body == [0, 3])
            client.send(Packet.publish("v1/devices/me/claim", #"{"secretKey":"other","durationMs":60000}"#, qos: 1, packetID: 4))
            #expect(try client.expectPacket().body == [0, 4])
            guard case .timeout = client.read(timeout: 0.3) else {
                Issue.record("the claim request got an answer beyond its PUBACK")
                return
            }
            let (status, claim) = try Harness.control(sim, "GET", "/devices/known/claim")
            #expect(status == 200)
            #expect(claim["pending"]?["secretKey"] == .string("abc123"))
            #expect(claim["customer"] == .null)
            #expect(try Harness.control(sim, "GET", "/devices/known").1["claim"]?["pending"]?["secretKey"] == .string("abc123"))

            let wrong = try Harness.control(sim, "POST", "/customer/device/known/claim", #"{"secretKey":"other"}"#)
            #expect(wrong.0 == 400 && wrong.1 == .string("FAILURE"))
            // The failure evicted the entry: the device asks again, then the right secret wins.
            client.send(Packet.publish("v1/devices/me/claim", #"{"secretKey":"abc123"}"#, qos: 1, packetID: 5))
            #expect(try client.expectPacket().body == [0, 5])
            let right = try Harness.control(sim, "POST", "/customer/device/known/claim", #"{"secretKey":"abc123"}"#)
            #expect(right.0 == 200)
            #expect(right.1["response"] == .string("SUCCESS"))
            #expect(right.1["device"]?["claim"]?["customer"] == .string("Customer A"))
            let again = try Harness.control(sim, "POST", "/customer/device/known/claim", #"{"secretKey":"abc123"}"#)
            #expect(again.0 == 400 && again.1 == .string("CLAIMED"))
            #expect(try Harness.control(sim, "POST", "/customer/device/nobody/claim", #"{"secretKey":"x"}"#).0 == 404)
        }
    }

    @Test("an empty claim payload registers an empty secret with the default window; a durationMs that is no number closes")
    func payloads() async throws {
        try await Harness.with({ $0.claiming.defaultDuration = .seconds(5) }) { sim in
            let client = try Harness.device(sim, token: "known-token-0001", level: 5)
            client.send(Packet.publish("v1/devices/me/claim", "", qos: 1, packetID: 1, v5: true))
            #expect(try client.expectPacket().body == [0, 1])
            let pending = try Harness.control(sim, "GET", "/devices/known/claim").1["pending"]
            #expect(pending?["secretKey"] == .string(""))
            if let expires = pending?["expiresAt"]?.int64Value, let stored = pending?["storedAt"]?.int64Value {
                #expect(expires - stored == 5_000)
            } else {
                Issue.record("no expiry shown: \(String(describing: pending))")
            }
            client.send(Packet.publish("v1/devices/me/claim", #"{"durationMs":"soon"}"#, qos: 1, packetID: 2, v5: true))
            // Gson's NumberFormatException is a RuntimeException: PUBACK 0x83, then DISCONNECT 0x83.
            let puback = try client.expectPacket()
            #expect(puback.type == 4 && puback.body.prefix(2) == [0, 2] && puback.body.dropFirst(2).first == 0x83)
            #expect(try client.expectPacket().type == 14)
        }
    }
}
