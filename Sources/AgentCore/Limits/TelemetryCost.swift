import TBJSON

/// What a PUBLISH costs on a ThingsBoard server: its data points (charged to the data-point limit) and the size the
/// server compares with `maxPayloadSize`.
public enum TelemetryCost {
    /// Data points of a telemetry (or attribute) payload as ThingsBoard counts them (`JsonConverter`, then
    /// `DefaultTransportService`): for each entry, its top-level keys whose value is not null, summed over the
    /// entries. An entry is `{"ts":…,"values":{…}}` when it has both `ts` and `values` (only the values count),
    /// else a plain object of keys; the payload is one entry or an array of them. A nested object or array is one
    /// data point; a key written twice in one entry is one (the last one wins, as in Gson). Nil when ThingsBoard
    /// would refuse the payload (not an object or array of objects; `ts` with a `values` that is not an object).
    public static func dataPoints(_ payload: JSONValue) -> Int? {
        switch payload {
        case .object:
            return self.entryDataPoints(payload)
        case .array(let entries):
            var total = 0
            for entry in entries {
                guard let n = self.entryDataPoints(entry) else { return nil }
                total += n
            }
            return total
        default:
            return nil
        }
    }

    /// `dataPoints(_:)` on a payload's bytes; nil when it is not JSON either.
    public static func dataPoints(_ payload: [UInt8]) -> Int? {
        guard let value = try? JSONValue.parse(payload, lenient: true) else { return nil }
        return self.dataPoints(value)
    }

    static func entryDataPoints(_ entry: JSONValue) -> Int? {
        guard let members = entry.objectMembers else { return nil }
        let keyed: [(String, JSONValue)]
        if let ts = entry["ts"], let values = entry["values"] {
            // ThingsBoard reads `ts` as a long and `values` as an object, and refuses the message otherwise.
            guard let inner = values.objectMembers else { return nil }
            switch ts {
            case .integer, .number, .string: break
            default: return nil
            }
            keyed = inner
        } else {
            keyed = members
        }
        // The last value of each key decides whether it counts.
        var last: [String: Bool] = [:]
        for (key, value) in keyed { last[key] = !value.isNull }
        return last.values.reduce(0) { $0 + ($1 ? 1 : 0) }
    }

    /// The MQTT 3.1.1 remaining length of a PUBLISH: what ThingsBoard compares with `maxPayloadSize`
    /// (`transport.mqtt.netty.max_payload_size`, Netty's MqttDecoder): the topic's 2-byte length and bytes, the
    /// 2-byte packet id at QoS 1 and 2, then the payload. (MQTT 5 adds its properties; this agent speaks 3.1.1.)
    public static func remainingLength(topic: String, payloadBytes: Int, qos: Int = 1) -> Int {
        2 + topic.utf8.count + (qos > 0 ? 2 : 0) + payloadBytes
    }

    /// The largest payload that fits in `maxPayloadSize` on `topic` at QoS 1.
    public static func maxPayloadBytes(topic: String, maxPayloadSize: Int) -> Int {
        max(0, maxPayloadSize - self.remainingLength(topic: topic, payloadBytes: 0))
    }
}
