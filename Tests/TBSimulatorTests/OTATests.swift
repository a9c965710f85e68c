import Foundation
import TBChecksum
import TBJSON
import Testing
@testable import TBSimulator

extension ReceivedPacket {
    /// A PUBLISH's topic and raw payload bytes (chunks are binary).
    func publishBytes(v5: Bool = false) -> (topic: String, payload: [UInt8]) {
        let len = Int(self.body[0]) << 8 | Int(self.body[1])
        let topic = String(decoding: self.body[2..<2 + len], as: UTF8.self)
        var i = 2 + len + (self.qos > 0 ? 2 : 0)
        if v5 { i += 1 + Int(self.body[i]) }
        return (topic, Array(self.body[i...]))
    }
}

/// The package the session tests serve: 100 bytes, so chunks of 32 are 32, 32, 32 and 4 bytes.
enum OTAFixture {
    static let data: [UInt8] = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

    static func upload(_ sim: Simulator, title: String = "board-fw", version: String = "2.0", type: String = "FIRMWARE",
                       algorithm: String? = nil, extra: String = "") throws -> String {
        var body = #"{"title":"\#(title)","version":"\#(version)","type":"\#(type)","data":"\#(Data(data).base64EncodedString())""#
        if let algorithm { body += #","checksumAlgorithm":"\#(algorithm)""# }
        body += extra + "}"
        let (status, json) = try Harness.control(sim, "POST", "/otaPackages", body)
        guard status == 201, let id = json["id"]?.stringValue else { throw TestFailure("upload: \(status) \(json)") }
        return id
    }

    /// The fixture package uploaded and assigned to "known", and a session of "known" (not subscribed).
    static func assignedDevice(_ sim: Simulator) throws -> (packageID: String, client: RawMQTTClient) {
        let id = try self.upload(sim)
        let (status, body) = try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(id)"}"#)
        guard status == 200 else { throw TestFailure("assignment: \(status) \(body)") }
        return (id, try Harness.device(sim, token: "known-token-0001"))
    }

    /// A device session of "known" subscribed to shared attributes (SUBACK read).
    static func subscribedDevice(_ sim: Simulator, level: UInt8 = 4) throws -> RawMQTTClient {
        let client = try Harness.device(sim, token: "known-token-0001", level: level)
        client.send(Packet.subscribe(1, [("v1/devices/me/attributes", 1), ("v2/fw/response/+/chunk/+", 1)], v5: level == 5))
        let suback = try client.expectPacket(timeout: 5, "SUBACK")
        guard suback.type == 9 else { throw TestFailure("expected SUBACK, got \(suback)") }
        return client
    }

    /// The next PUBLISH (PUBACKs skipped), as topic and bytes; acknowledged when QoS 1.
    static func nextPublish(_ client: RawMQTTClient, v5: Bool = false) throws -> (topic: String, payload: [UInt8]) {
        while true {
            let packet = try client.expectPacket(timeout: 5, "a PUBLISH")
            guard packet.type == 3 else { continue }
            if let id = packet.publish(v5: v5).packetID { client.send(Packet.puback(id)) }
            return packet.publishBytes(v5: v5)
        }
    }

    static func request(_ client: RawMQTTClient, _ topic: String, size: String, packetID: UInt16 = 9, v5: Bool = false) {
        client.send(Packet.publish(topic, Array(size.utf8), qos: 1, packetID: packetID, v5: v5))
    }

    /// A chunk request answered as a served one is: its PUBACK, then the response (returned).
    static func chunk(_ client: RawMQTTClient, _ topic: String, size: String,
                      packetID: UInt16 = 9) throws -> (topic: String, payload: [UInt8]) {
        self.request(client, topic, size: size, packetID: packetID)
        let puback = try client.expectPacket(timeout: 5, "PUBACK")
        guard puback.type == 4, puback.body == [UInt8(packetID >> 8), UInt8(packetID & 0xFF)] else {
            throw TestFailure("expected PUBACK \(packetID), got \(puback)")
        }
        return try self.nextPublish(client)
    }
}

@Suite("OTA: ThingsBoard's package store, chunk arithmetic and shared attributes (no sockets)")
struct OTAModelTests {
    @Test("CaffeineOtaPackageCache.get: size < 1 is the whole package, past the end is empty, Java's int overflow sends nothing")
    func chunks() {
        let data = OTAFixture.data
        #expect(OtaPackage.chunk(of: data, size: 0, index: 5) == data)
        #expect(OtaPackage.chunk(of: data, size: -3, index: 0) == data)
        #expect(OtaPackage.chunk(of: data, size: 32, index: 0) == Array(data[0..<32]))
        #expect(OtaPackage.chunk(of: data, size: 32, index: 3) == Array(data[96..<100]))
        #expect(OtaPackage.chunk(of: data, size: 32, index: 4) == [])
        #expect(OtaPackage.chunk(of: data, size: 100, index: 1) == [])
        #expect(OtaPackage.chunk(of: [], size: 32, index: 0) == [])
        // 65536 × 40000 wraps to a negative int: System.arraycopy throws.
        #expect(OtaPackage.chunk(of: data, size: 65536, index: 40000) == nil)
        // 65536 × 65536 wraps to 0: ThingsBoard serves the first chunk again.
        #expect(OtaPackage.chunk(of: data, size: 65536, index: 65536) == data)
    }

    @Test("the chunk topic is found as Matcher.find() finds it; the request id keeps its text")
    func topics() {
        #expect(OtaChunkRequest(topic: "v2/fw/request/7/chunk/0") == OtaChunkRequest(type: .firmware, requestID: "7", chunkDigits: "0"))
        #expect(OtaChunkRequest(topic: "v2/sw/request/007/chunk/12x") == OtaChunkRequest(type: .software, requestID: "007", chunkDigits: "12"))
        #expect(OtaChunkRequest(topic: "v2/fw/request/a/chunk/0") == nil)
        #expect(OtaChunkRequest(topic: "v2/fw/request/1/chunk/") == nil)
        #expect(OtaChunkRequest(type: .software, requestID: "007", chunkDigits: "12").responseTopic(chunk: 12) == "v2/sw/response/007/chunk/12")
    }

    @Test("uploads: the checksum is computed for every algorithm, checked when given, titles and versions unique, sizes bounded")
    func uploads() throws {
        var limits = OtaBook.Limits()
        limits.maxPackageSize = 200
        limits.maxPackages = ChecksumAlgorithm.allCases.count + 1
        var book = OtaBook(limits: limits)
        for (i, algorithm) in ChecksumAlgorithm.allCases.enumerated() {
            var upload = OtaUpload(type: .firmware, title: "t", version: "\(i)")
            upload.package.data = OTAFixture.data
            upload.package.checksumAlgorithm = algorithm
            let package = try book.add(upload, now: 0)
            #expect(package.checksum == algorithm.hex(of: OTAFixture.data))
        }
        var duplicate = OtaUpload(type: .software, title: "t", version: "0")
        duplicate.package.url = "http://example/x"
        #expect(throws: SimulatorError.self) { try book.add(duplicate, now: 0) }
        var wrong = OtaUpload(type: .firmware, title: "w", version: "1")
        wrong.package.data = OTAFixture.data
        wrong.package.checksum = "00"
        #expect(throws: SimulatorError.self) { try book.add(wrong, now: 0) }
        wrong.acceptWrongChecksum = true
        #expect(try book.add(wrong, now: 0).checksum == "00")
        var tooMany = OtaUpload(type: .firmware, title: "x", version: "1")
        tooMany.package.url = "http://example/y"
        #expect(throws: SimulatorError.self) { try book.add(tooMany, now: 0) }
        var small = OtaBook(limits: limits)
        var big = OtaUpload(type: .firmware, title: "big", version: "1")
        big.package.data = [UInt8](repeating: 0, count: 201)
        #expect(throws: SimulatorError.self) { try small.add(big, now: 0) }
    }

    @Test("the shared attributes of a binary and of a URL package, in ThingsBoard's order")
    func attributes() {
        let binary = OtaPackage(id: "ota-1", type: .firmware, title: "fw", version: "1.1", tag: nil, url: nil,
                                checksumAlgorithm: .crc32, checksum: "2639f4cb", data: OTAFixture.data, createdTime: 0)
        #expect(JSONValue.object(binary.sharedAttributes.set) == JSONValue.object([
            ("fw_title", "fw"), ("fw_version", "1.1"), ("fw_size", 100), ("fw_checksum_algorithm", "CRC32"),
            ("fw_checksum", "2639f4cb"),
        ]))
        #expect(binary.sharedAttributes.deleted == ["fw_url"])
        let link = OtaPackage(id: "ota-2", type: .software, title: "app", version: "3", tag: "beta", url: "https://h/app",
                              checksumAlgorithm: nil, checksum: nil, data: nil, createdTime: 0)
        #expect(JSONValue.object(link.sharedAttributes.set) == JSONValue.object([
            ("sw_title", "app"), ("sw_version", "3"), ("sw_tag", "beta"), ("sw_url", "https://h/app"),
        ]))
        #expect(link.sharedAttributes.deleted == ["sw_size", "sw_checksum_algorithm", "sw_checksum"])
    }
}

@Suite("OTA over MQTT and the control interface", .serialized)
struct OTASessionTests {
    @Test("assignment: QUEUED then INITIATED, fw_url deleted then the fw_* attributes pushed; attribute requests return them")
    func assignmentPushes() async throws {
        try await Harness.with { sim in
            let client = try OTAFixture.subscribedDevice(sim)
            let id = try OTAFixture.upload(sim, algorithm: "CRC32")
            let (status, _) = try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(id)"}"#)
            #expect(status == 200)
            let deleted = try OTAFixture.nextPublish(client)
            #expect(deleted.topic == "v1/devices/me/attributes")
            #expect(try JSONValue.parse(deleted.payload) == ["deleted": ["fw_url"]])
            let pushed = try OTAFixture.nextPublish(client)
            let expected: JSONValue = .object([
                ("fw_title", "board-fw"), ("fw_version", "2.0"), ("fw_size", 100), ("fw_checksum_algorithm", "CRC32"),
                ("fw_checksum", .string(ChecksumAlgorithm.crc32.hex(of: OTAFixture.data))),
            ])
            #expect(try JSONValue.parse(pushed.payload) == expected)
            client.send(Packet.publish("v1/devices/me/attributes/request/4",
                                       #"{"sharedKeys":"fw_checksum,fw_checksum_algorithm,fw_size,fw_title,fw_version"}"#))
            let response = try OTAFixture.nextPublish(client)
            #expect(response.topic == "v1/devices/me/attributes/response/4")
            #expect(try JSONValue.parse(response.payload)["shared"]?["fw_size"] == 100)
            let states = try Harness.control(sim, "GET", "/devices/known/fwStates").1
            #expect(states["firmware"]?["states"] == ["QUEUED", "INITIATED"])
            #expect(states["firmware"]?["package"]?["id"] == .string(id))
            #expect(states["firmware"]?["assignedTo"] == "device")
            #expect(states["software"]?["states"] == [])
            let target = states["firmware"]?["history"]?.arrayValue?.first?["values"]
            #expect(target?["target_fw_title"] == "board-fw" && target?["target_fw_version"] == "2.0")
            // Assigning the same package again changes nothing: no new states, no push.
            _ = try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(id)"}"#)
            #expect(try Harness.control(sim, "GET", "/devices/known/fwStates").1["firmware"]?["states"] == ["QUEUED", "INITIATED"])
        }
    }

    @Test("chunks: sized chunks, the last one short, an empty payload past the end, size 0 the whole package, an empty payload the remembered size")
    func chunkAnswers() async throws {
        try await Harness.with { sim in
            let (_, client) = try OTAFixture.assignedDevice(sim)
            var received: [UInt8] = []
            for index in 0..<5 {
                let chunk = try OTAFixture.chunk(client, "v2/fw/request/1/chunk/\(index)", size: "32", packetID: UInt16(10 + index))
                #expect(chunk.topic == "v2/fw/response/1/chunk/\(index)")
                #expect(chunk.payload.count == [32, 32, 32, 4, 0][index])
                received += chunk.payload
            }
            #expect(received == OTAFixture.data)
            #expect(try OTAFixture.chunk(client, "v2/fw/request/1/chunk/2", size: "").payload == Array(OTAFixture.data[64..<96]),
                    "the size remembered for request 1")
            #expect(try OTAFixture.chunk(client, "v2/fw/request/2/chunk/0", size: "").payload == OTAFixture.data,
                    "no size ever given: the whole package")
            let whole = try OTAFixture.chunk(client, "v2/fw/request/3/chunk/7", size: "0")
            #expect(whole.topic == "v2/fw/response/3/chunk/7" && whole.payload == OTAFixture.data)
            let padded = try OTAFixture.chunk(client, "v2/fw/request/04/chunk/001", size: "50")
            #expect(padded.topic == "v2/fw/response/04/chunk/1" && padded.payload == Array(OTAFixture.data[50..<100]))
            let events = try Harness.control(sim, "GET", "/sessions").1
            #expect(events.arrayValue?.count == 1, "the session stays open")
        }
    }

    @Test("PAYLOAD_TOO_LARGE: a chunk size over the payload limit gets the error on v2/fw/error, no PUBACK, then a close")
    func payloadTooLarge() async throws {
        try await Harness.with { sim in
            let (_, client) = try OTAFixture.assignedDevice(sim)
            OTAFixture.request(client, "v2/fw/request/1/chunk/0", size: "65537")
            let error = try client.expectPacket()
            #expect(error.type == 3, "the error comes first, with no PUBACK before it")
            #expect(error.publishBytes().topic == "v2/fw/error")
            #expect(String(decoding: error.publishBytes().payload, as: UTF8.self) == "PAYLOAD_TOO_LARGE")
            #expect(client.closesWithoutPacket())
        }
    }

    @Test("NOT_FOUND without a package and FAILURE for a URL package, software's too on v2/fw/error; MQTT 5 gets DISCONNECT 0x83")
    func refusals() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            OTAFixture.request(client, "v2/sw/request/1/chunk/0", size: "32")
            let notFound = try client.expectPacket().publishBytes()
            #expect(notFound.topic == "v2/fw/error" && notFound.payload == Array("NOT_FOUND".utf8))
            #expect(client.closesWithoutPacket())

            let (status, link) = try Harness.control(sim, "POST", "/otaPackages",
                                                     #"{"title":"app","version":"1","type":"SOFTWARE","url":"https://example.com/app.bin"}"#)
            #expect(status == 201)
            let linkID = try #require(link["id"]?.stringValue)
            _ = try Harness.control(sim, "POST", "/devices/known/software", #"{"packageId":"\#(linkID)"}"#)
            let v5 = try Harness.device(sim, token: "known-token-0001", level: 5)
            OTAFixture.request(v5, "v2/sw/request/1/chunk/0", size: "32", v5: true)
            let failure = try v5.expectPacket().publishBytes(v5: true)
            #expect(failure.topic == "v2/fw/error" && failure.payload == Array("FAILURE".utf8))
            let disconnect = try v5.expectPacket()
            #expect(disconnect.type == 14 && disconnect.body.first == 0x83)
            let attributes = try Harness.control(sim, "GET", "/devices/known/attributes").1["shared"]
            #expect(attributes?["sw_url"] == "https://example.com/app.bin" && attributes?["sw_size"] == nil)
        }
    }

    @Test("a chunk size that is no int is a RuntimeException: PUBACK, then the session closed")
    func badChunkSize() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001", level: 5)
            OTAFixture.request(client, "v2/fw/request/1/chunk/0", size: "32 bytes", v5: true)
            let puback = try client.expectPacket()
            #expect(puback.type == 4 && puback.body.prefix(2) == [0, 9] && puback.body.dropFirst(2).first == 0x83)
            #expect(try client.expectPacket().type == 14)
        }
    }

    @Test("profiles: devices without a package of their own get the profile's; unassigning falls back to it, then deletes every key")
    func profileAssignment() async throws {
        try await Harness.with { sim in
            let client = try OTAFixture.subscribedDevice(sim)
            let first = try OTAFixture.upload(sim, version: "1.0")
            let second = try OTAFixture.upload(sim, version: "2.0")
            #expect(try Harness.control(sim, "POST", "/devices/basic-1/firmware", #"{"packageId":"\#(second)"}"#).0 == 200)
            let (status, body) = try Harness.control(sim, "POST", "/profiles/sensors/firmware", #"{"packageId":"\#(first)"}"#)
            #expect(status == 200 && body["package"] == .string(first))
            _ = try OTAFixture.nextPublish(client)
            #expect(try JSONValue.parse(OTAFixture.nextPublish(client).payload)["fw_version"] == "1.0")
            #expect(try Harness.control(sim, "GET", "/devices/known/fwStates").1["firmware"]?["assignedTo"] == "profile")
            #expect(try Harness.control(sim, "GET", "/devices/basic-1/fwStates").1["firmware"]?["package"]?["version"] == "2.0",
                    "a device with its own package keeps it")
            // The device's own package, then unassigned: back to the profile's.
            _ = try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(second)"}"#)
            _ = try OTAFixture.nextPublish(client)
            #expect(try JSONValue.parse(OTAFixture.nextPublish(client).payload)["fw_version"] == "2.0")
            _ = try Harness.control(sim, "DELETE", "/devices/known/firmware")
            _ = try OTAFixture.nextPublish(client)
            #expect(try JSONValue.parse(OTAFixture.nextPublish(client).payload)["fw_version"] == "1.0")
            _ = try Harness.control(sim, "POST", "/profiles/sensors/firmware", #"{"packageId":null}"#)
            let removed = try JSONValue.parse(OTAFixture.nextPublish(client).payload)
            #expect(removed == ["deleted": .array(OtaPackage.allAttributeKeys(.firmware).map(JSONValue.string))])
            #expect(try Harness.control(sim, "GET", "/devices/known/attributes").1["shared"] == .object([]))
            #expect(try Harness.control(sim, "GET", "/devices/known/fwStates").1["firmware"]?["states"]
                == ["QUEUED", "INITIATED", "QUEUED", "INITIATED", "QUEUED", "INITIATED"])
        }
    }

    @Test("the device's fw_state telemetry joins the history; the control API refuses what ThingsBoard refuses")
    func historyAndControl() async throws {
        try await Harness.with { sim in
            let (id, client) = try OTAFixture.assignedDevice(sim)
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"fw_state":"DOWNLOADING","current_fw_version":"v1","temperature":3}"#))
            _ = try client.expectPacket()
            client.send(Packet.publish("v1/devices/me/telemetry", #"{"fw_state":"FAILED","fw_error":"disk full"}"#, packetID: 2))
            _ = try client.expectPacket()
            let firmware = try Harness.control(sim, "GET", "/devices/known/fwStates").1["firmware"]
            #expect(firmware?["states"] == ["QUEUED", "INITIATED", "DOWNLOADING", "FAILED"])
            let last = firmware?["history"]?.arrayValue?.last
            #expect(last?["source"] == "device" && last?["values"] == ["fw_state": "FAILED", "fw_error": "disk full"])
            #expect(firmware?["history"]?.arrayValue?[2]["values"] == ["fw_state": "DOWNLOADING", "current_fw_version": "v1"])

            #expect(try Harness.control(sim, "POST", "/devices/known/software", #"{"packageId":"\#(id)"}"#).0 == 400,
                    "a firmware package cannot be assigned as software")
            #expect(try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"ota-99"}"#).0 == 404)
            #expect(try Harness.control(sim, "POST", "/devices/nobody/firmware", #"{"packageId":"\#(id)"}"#).0 == 404)
            #expect(try Harness.control(sim, "POST", "/profiles/nothing/firmware", #"{"packageId":"\#(id)"}"#).0 == 404)
            #expect(try Harness.control(sim, "POST", "/otaPackages", #"{"title":"x","version":"1","checksumAlgorithm":"SHA1"}"#).0 == 400)
            #expect(try Harness.control(sim, "POST", "/otaPackages", #"{"title":"x","version":"1","data":"!!"}"#).0 == 400)
            let listed = try Harness.control(sim, "GET", "/otaPackages").1
            #expect(listed.arrayValue?.count == 1 && listed.arrayValue?.first?["dataSize"] == 100)

            // A package created empty cannot be assigned until its data is uploaded raw.
            let (created, empty) = try Harness.control(sim, "POST", "/otaPackages", #"{"title":"raw","version":"1","checksumAlgorithm":"MURMUR3_128"}"#)
            #expect(created == 201)
            let emptyID = try #require(empty["id"]?.stringValue)
            #expect(try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(emptyID)"}"#).0 == 400)
            let raw = "raw package bytes"
            let (uploaded, withData) = try Harness.control(sim, "POST", "/otaPackages/\(emptyID)/data", raw)
            #expect(uploaded == 200)
            #expect(withData["checksum"] == .string(ChecksumAlgorithm.murmur3_128.hex(of: Array(raw.utf8))))
            #expect(try Harness.control(sim, "POST", "/otaPackages/\(emptyID)/data?checksum=00", raw).0 == 400, "its data is set already")
            #expect(try Harness.control(sim, "POST", "/devices/known/firmware", #"{"packageId":"\#(emptyID)"}"#).0 == 200)
        }
    }

    @Test("rate limits: only a request id new to the session reaches the core and is charged; over the limit, no PUBACK and a close")
    func rateLimitedRequests() async throws {
        try await Harness.with({ $0.rateLimits.messages = try? RateLimit("3:60") }) { sim in
            // CONNECT is one message and request id 1 the second; its later chunks come from the session's cache.
            let (_, client) = try OTAFixture.assignedDevice(sim)
            for index in 0..<4 {
                #expect(try OTAFixture.chunk(client, "v2/fw/request/1/chunk/\(index)", size: "32").payload.count == [32, 32, 32, 4][index])
            }
            #expect(try OTAFixture.chunk(client, "v2/fw/request/2/chunk/0", size: "32").payload.count == 32, "the third message")
            OTAFixture.request(client, "v2/fw/request/3/chunk/0", size: "32")
            #expect(client.closesWithoutPacket())
            #expect(try Harness.control(sim, "GET", "/devices/known").1["droppedForRateLimits"]?["messages"] == 1)
        }
    }

    @Test("SUBSCRIBE: v2/fw/response/+/chunk/+ and v2/fw/error are granted, v2/fw/response/+ is refused")
    func subscriptions() async throws {
        try await Harness.with { sim in
            let client = try Harness.device(sim, token: "known-token-0001")
            client.send(Packet.subscribe(3, [("v2/fw/response/+/chunk/+", 1), ("v2/fw/error", 1), ("v2/fw/response/+", 1),
                                             ("v2/sw/response/+/chunk/+", 0)]))
            let suback = try client.expectPacket()
            #expect(suback.type == 9 && suback.body == [0, 3, 1, 1, 0x80, 0])
        }
    }
}
