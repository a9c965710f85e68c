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
        if let first = readings.first, readings.allSatisfy({ $0.timestamp == first.timestamp }) {
            // One sampling round (the usual case): no grouping needed.
            var values: [(String, JSONValue)] = []
            values.reserveCapacity(readings.count)
            for reading in readings {
                if let i = values.firstIndex(where: { $0.0 == reading.key }) {
                    values[i].1 = reading.value
                } else {
                    values.append((reading.key, reading.value))
                }
            }
            return [Entry(timestamp: first.timestamp, values: values)]
        }
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

    /// `Entry(timestamp:values:).json.serialized`, as bytes, appended to `out` (encoding is on the path of every
    /// reading: building the JSON tree, or strings on the way, cost more than the rest of that path).
    static func serialize(timestamp: Int64, values: some Collection<(String, JSONValue)>, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"ts":"#.utf8)
        JSONValue.writeInteger(timestamp, to: &out)
        out.append(contentsOf: #","values":{"#.utf8)
        var first = true
        for (key, value) in values {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONValue.writeString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            value.write(to: &out)
        }
        out.append(contentsOf: "}}".utf8)
    }

    static func serialize(timestamp: Int64, values: [(String, JSONValue)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(24 + 24 * values.count)
        self.serialize(timestamp: timestamp, values: values, into: &out)
        return out
    }

    /// The payload of one reading, `payloads([reading]).payloads[0]` without the arrays around it; nil when it is
    /// too large to send.
    public static func payload(key: String, value: JSONValue, timestamp: Int64, maxPayloadBytes: Int = defaultMaxPayloadBytes)
        -> [UInt8]?
    {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        out.append(UInt8(ascii: "["))
        self.serialize(timestamp: timestamp, values: CollectionOfOne((key, value)), into: &out)
        out.append(UInt8(ascii: "]"))
        return out.count <= maxPayloadBytes ? out : nil
    }

    /// Payloads, each a JSON array under `maxPayloadBytes`. An entry too large on its own is split by keys; a
    /// single value too large to send at all is left out and returned in `rejected`.
    public static func payloads(_ readings: [Reading], maxPayloadBytes: Int = defaultMaxPayloadBytes)
        -> (payloads: [[UInt8]], rejected: [Reading])
    {
        var payloads: [[UInt8]] = []
        var rejected: [Reading] = []
        // The payload being filled: "[" and the entries so far, comma-separated ("]" is added when it is done).
        var current: [UInt8] = []
        // A reading or a round of a few: room for it without growing on the way.
        current.reserveCapacity(min(maxPayloadBytes, 64 + 48 * readings.count))
        current.append(UInt8(ascii: "["))
        var count = 0

        func flush() {
            if count > 0 {
                current.append(UInt8(ascii: "]"))
                payloads.append(current)
            }
            current = [UInt8(ascii: "[")]
            count = 0
        }
        func add(_ text: [UInt8]) {
            let cost = text.count + (count == 0 ? 0 : 1)
            if current.count + 1 + cost > maxPayloadBytes { flush() }
            if count > 0 { current.append(UInt8(ascii: ",")) }
            current += text
            count += 1
        }
        /// Writes the entry into the payload being filled when it fits there (the usual case: no copy); returns
        /// false, leaving the payload as it was, when it does not.
        func addInPlace(_ timestamp: Int64, _ values: some Collection<(String, JSONValue)>) -> Bool {
            let start = current.count
            if count > 0 { current.append(UInt8(ascii: ",")) }
            self.serialize(timestamp: timestamp, values: values, into: &current)
            guard current.count + 1 <= maxPayloadBytes else {
                current.removeSubrange(start...)
                return false
            }
            count += 1
            return true
        }
        func addEntry(_ timestamp: Int64, _ values: [(String, JSONValue)]) {
            if addInPlace(timestamp, values) { return }
            let text = self.serialize(timestamp: timestamp, values: values)
            if text.count + 2 <= maxPayloadBytes {
                add(text)
                return
            }
            // Split the entry by keys.
            for (key, value) in values {
                let single = self.serialize(timestamp: timestamp, values: [(key, value)])
                if single.count + 2 <= maxPayloadBytes {
                    add(single)
                } else {
                    rejected.append(Reading(key: key, value: value, timestamp: timestamp))
                }
            }
        }

        if readings.count == 1, addInPlace(readings[0].timestamp, CollectionOfOne((readings[0].key, readings[0].value))) {
            // One reading (a digital input's change): no grouping.
        } else {
            for entry in entries(readings) { addEntry(entry.timestamp, entry.values) }
        }
        if count > 0 {
            current.append(UInt8(ascii: "]"))
            payloads.append(current)
        }
        return (payloads, rejected)
    }
}

extension TelemetryEncoder {
    /// One PUBLISH's worth of spooled records, oldest first: their entries concatenated into one JSON array of at
    /// most `maxPayloadBytes` (always at least the first record), and the records' sequence numbers.
    public static func batch(_ records: [SpoolRecord], maxPayloadBytes: Int = defaultMaxPayloadBytes)
        -> (payload: [UInt8], sequences: [UInt64])
    {
        var count = 0
        var size = 2
        for record in records {
            let cost = record.payload.count - 2 + (count == 0 ? 0 : 1)
            if count > 0 && size + cost > maxPayloadBytes { break }
            count += 1
            size += cost
        }
        let batch = records.prefix(count)
        if count == 1, let only = batch.first, only.payload.first == UInt8(ascii: "["), only.payload.last == UInt8(ascii: "]") {
            // One record: its payload is already the array (one reading per PUBLISH, or a lone reading).
            return (only.payload, [only.sequence])
        }
        var payload: [UInt8] = [UInt8(ascii: "[")]
        payload.reserveCapacity(size)
        for (i, record) in batch.enumerated() {
            if i > 0 { payload.append(UInt8(ascii: ",")) }
            if record.payload.count >= 2 { payload += record.payload[1..<(record.payload.count - 1)] }
        }
        payload.append(UInt8(ascii: "]"))
        return (payload, batch.map(\.sequence))
    }
}
