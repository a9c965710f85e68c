/// A chunk request topic, matched as ThingsBoard's `MqttTopics` patterns are with `Matcher.find()`:
/// `v2/fw/request/(?<requestId>\d+)/chunk/(?<chunk>\d+)` anywhere in the topic (`v2/sw/...` for software).
struct OtaChunkRequest: Equatable {
    var type: OtaPackageType
    /// The request id as the device wrote it: ThingsBoard keys its per-session caches by this text.
    var requestID: String
    /// The chunk index's digits; `Integer.parseInt` may still overflow on them.
    var chunkDigits: String

    init(type: OtaPackageType, requestID: String, chunkDigits: String) {
        self.type = type
        self.requestID = requestID
        self.chunkDigits = chunkDigits
    }

    /// The first match in `topic`, firmware before software, or `nil` when neither pattern is found.
    init?(topic: String) {
        let bytes = Array(topic.utf8)
        for type in OtaPackageType.allCases {
            if let found = Self.find(in: bytes, prefix: Array("v2/\(type.prefix)/request/".utf8)) {
                self.init(type: type, requestID: found.0, chunkDigits: found.1)
                return
            }
        }
        return nil
    }

    private static func find(in bytes: [UInt8], prefix: [UInt8]) -> (String, String)? {
        let middle = Array("/chunk/".utf8)
        var start = 0
        while start + prefix.count <= bytes.count {
            if bytes[start..<start + prefix.count].elementsEqual(prefix) {
                var i = start + prefix.count
                let idStart = i
                while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
                let idEnd = i
                if idEnd > idStart, i + middle.count <= bytes.count, bytes[i..<i + middle.count].elementsEqual(middle) {
                    i += middle.count
                    let chunkStart = i
                    while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
                    if i > chunkStart {
                        return (String(decoding: bytes[idStart..<idEnd], as: UTF8.self),
                                String(decoding: bytes[chunkStart..<i], as: UTF8.self))
                    }
                }
            }
            start += 1
        }
        return nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// The topic ThingsBoard answers on: the request id as given, the chunk index as the parsed number.
    func responseTopic(chunk: Int32) -> String { "v2/\(self.type.prefix)/response/\(self.requestID)/chunk/\(chunk)" }

    /// Every OTA error goes to the firmware error topic, software requests' too (`sendOtaPackageError`).
    static let errorTopic = "v2/fw/error"
}

/// Why ThingsBoard's core refuses an OTA request (`TransportProtos.ResponseStatus`), sent as text on `v2/fw/error`.
enum OtaRequestError: String, Error {
    case notFound = "NOT_FOUND"
    case failure = "FAILURE"
    case payloadTooLarge = "PAYLOAD_TOO_LARGE"
}
