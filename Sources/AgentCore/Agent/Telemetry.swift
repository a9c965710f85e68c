import TBJSON

/// One sensor value, stamped with the wall-clock time it was taken (milliseconds since the Unix epoch).
public struct Reading: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
    public var timestamp: Int64

    public init(key: String, value: JSONValue, timestamp: Int64) {
        self.key = key
        self.value = value
        self.timestamp = timestamp
    }
}

/// Turns readings into ThingsBoard telemetry payloads: `[{"ts":…,"values":{…}},…]`, readings with the same
/// timestamp grouped into one entry, entries in time order, each payload kept under `maxPayloadBytes`
/// (ThingsBoard closes the connection on a packet over 64 KiB; the topic and MQTT header need room too).
public enum TelemetryEncoder {
    public static let topic = "v1/devices/me/telemetry"
    public static let attributesTopic = "v1/devices/me/attributes"
    /// 64 KiB less room for the fixed header, topic and packet id.
    public static let defaultMaxPayloadBytes = 65536 - 128

    public struct Entry: Sendable, Equatable {
        public var timestamp: Int64
        public var values: [(String, JSONValue)]

        public static func == (a: Entry, b: Entry) -> Bool {
            a.timestamp == b.timestamp && JSONValue.object(a.values) == JSONValue.object(b.values)
        }

        public var json: JSONValue { ["ts": .integer(self.timestamp), "values": .object(self.values)] }
    }

    /// Groups readings by timestamp (stable: the order of keys within a timestamp is the order they came in;
    /// a later reading of the same key at the same timestamp replaces the earlier one, as ThingsBoard would).
    public static func entries(_ readings: [Reading]) -> [Entry] {
        var order: [Int64] = []
        var byTimestamp: [Int64: [(String, JSONValue)]] = [:]
        for reading in readings {
            if byTimestamp[reading.timestamp] == nil {
                order.append(reading.timestamp)
                byTimestamp[reading.timestamp] = []
            }
            if let i = byTimestamp[reading.timestamp]?.firstIndex(where: { $0.0 == reading.key }) {
                byTimestamp[reading.timestamp]?[i].1 = reading.value
            } else {
                byTimestamp[reading.timestamp]?.append((reading.key, reading.value))
            }
        }
        return order.sorted().map { Entry(timestamp: $0, values: byTimestamp[$0] ?? []) }
    }

    /// Payloads, each a JSON array under `maxPayloadBytes`. An entry too large on its own is split by keys; a
    /// single value too large to send at all is left out and returned in `rejected`.
    public static func payloads(_ readings: [Reading], maxPayloadBytes: Int = defaultMaxPayloadBytes)
        -> (payloads: [[UInt8]], rejected: [Reading])
    {
        var payloads: [[UInt8]] = []
        var rejected: [Reading] = []
        var current: [String] = []
        var currentBytes = 2  // "[" and "]"

        func flush() {
            if !current.isEmpty {
                payloads.append(Array(("[" + current.joined(separator: ",") + "]").utf8))
            }
            current = []
            currentBytes = 2
        }
        func add(_ text: String) {
            let cost = text.utf8.count + (current.isEmpty ? 0 : 1)
            if currentBytes + cost > maxPayloadBytes { flush() }
            current.append(text)
            currentBytes += text.utf8.count + (current.count > 1 ? 1 : 0)
        }

        for entry in entries(readings) {
            let text = entry.json.serialized
            if text.utf8.count + 2 <= maxPayloadBytes {
                add(text)
                continue
            }
            // Split the entry by keys.
            for (key, value) in entry.values {
                let single = Entry(timestamp: entry.timestamp, values: [(key, value)]).json.serialized
                if single.utf8.count + 2 <= maxPayloadBytes {
                    add(single)
                } else {
                    rejected.append(Reading(key: key, value: value, timestamp: entry.timestamp))
                }
            }
        }
        flush()
        return (payloads, rejected)
    }
}
