import TBJSON

/// What one telemetry PUBLISH may hold under the limits in force.
public struct PublishBudget: Sendable, Equatable {
    /// Data points per PUBLISH: the smallest data-point window at 80 % (`RateLimiter.maxDataPointsPerMessage`),
    /// lowered by `UnknownLimitLearner.dataPointCap`; nil for no limit.
    public var maxDataPoints: Int?
    /// Payload bytes per PUBLISH: `maxPayloadSize` less the topic and packet id (`TelemetryCost.maxPayloadBytes`),
    /// lowered by `UnknownLimitLearner.byteCap`.
    public var maxPayloadBytes: Int
    /// Spooled records per PUBLISH (one record is one sampling round).
    public var maxRecords: Int

    public init(maxDataPoints: Int? = nil, maxPayloadBytes: Int = TelemetryEncoder.defaultMaxPayloadBytes, maxRecords: Int = 64) {
        self.maxDataPoints = maxDataPoints.map { max(1, $0) }
        self.maxPayloadBytes = max(16, maxPayloadBytes)
        self.maxRecords = max(1, maxRecords)
    }

    /// The budget for `limits` (and what the learner allows), on the telemetry topic.
    public static func from(
        _ limits: SessionLimits, fraction: Double = 0.8, learner: UnknownLimitLearner? = nil, maxRecords: Int = 64
    ) -> PublishBudget {
        var dataPoints = limits.telemetryDataPoints.map { limit in
            limit.windows.map { TokenBucket(window: $0, fraction: fraction, now: .zero).capacity }.min() ?? Int.max
        }
        var bytes = limits.maxPayloadSize.map {
            TelemetryCost.maxPayloadBytes(topic: TelemetryEncoder.topic, maxPayloadSize: $0)
        } ?? TelemetryEncoder.defaultMaxPayloadBytes
        if let cap = learner?.dataPointCap { dataPoints = min(dataPoints ?? cap, cap) }
        if let cap = learner?.byteCap { bytes = min(bytes, cap) }
        return PublishBudget(maxDataPoints: dataPoints, maxPayloadBytes: bytes, maxRecords: maxRecords)
    }
}

/// One PUBLISH the planner chose.
public struct PlannedPublish: Sendable, Equatable {
    public enum Covers: Sendable, Equatable {
        /// Whole records, oldest first.
        case records([UInt64])
        /// Part `index` (0-based) of `count` of one record too large for one PUBLISH.
        case part(sequence: UInt64, index: Int, count: Int)
    }

    /// A JSON array of `{"ts":…,"values":{…}}` entries.
    public var payload: [UInt8]
    /// As ThingsBoard counts them (`TelemetryCost.dataPoints`) when the budget has a data-point limit; without one,
    /// one per record (a lower bound, not worth a JSON parse of every record on the hot path: it only charges the
    /// telemetry-message bucket, which needs more than zero, and sizes what the unknown-limit learner cuts to).
    public var dataPoints: Int
    public var covers: Covers
    /// Readings of this record that fit in no PUBLISH (each alone is over the budget): left out, to be reported
    /// and counted. Only on a record's first part.
    public var dropped: [Reading] = []

    /// Records to acknowledge in the spool when this PUBLISH's PUBACK arrives: a split record with its last part
    /// (its parts leave in order on one connection, and the server closes the connection on the first it refuses).
    public var acknowledges: [UInt64] {
        switch self.covers {
        case .records(let sequences): return sequences
        case .part(let sequence, let index, let count): return index == count - 1 ? [sequence] : []
        }
    }

    /// Where the send cursor stands once this PUBLISH is handed over (nil: still inside a split record).
    public var sentThrough: UInt64? {
        switch self.covers {
        case .records(let sequences): return sequences.last
        case .part(let sequence, let index, let count): return index == count - 1 ? sequence : nil
        }
    }

    /// The next part to ask for (`PublishPlanner.next(_:budget:part:)`), or nil after a record's last part.
    public var nextPart: Int? {
        if case .part(_, let index, let count) = self.covers, index + 1 < count { return index + 1 }
        return nil
    }
}

/// Splits spooled telemetry into PUBLISHes that the server accepts: no PUBLISH carries more data points than the
/// smallest data-point window allows, nor more bytes than its payload limit. Pure: the same records and budget give
/// the same plan, so a split record can be resumed part by part.
public enum PublishPlanner {
    public enum Step: Sendable, Equatable {
        case publish(PlannedPublish)
        /// A record that no PUBLISH can carry, even key by key (each of its readings alone is over the budget), or
        /// that is not telemetry: acknowledge it so that the spool moves on, and report `reason` (never retried).
        case unsendable(sequence: UInt64, reason: String, dropped: [Reading])
        /// No records.
        case nothing
    }

    /// The next PUBLISH from `records` (oldest first, as `Spool.pending` returns them). `part` resumes a record
    /// that was split (`PlannedPublish.nextPart`); the first record is then that record.
    public static func next(_ records: [SpoolRecord], budget: PublishBudget, part: Int = 0) -> Step {
        guard let first = records.first else { return .nothing }
        if part > 0 { return self.split(first, budget: budget, part: part) }
        var inner: [ArraySlice<UInt8>] = []
        var sequences: [UInt64] = []
        var size = 2
        var points = 0
        let counting = budget.maxDataPoints != nil
        for record in records.prefix(budget.maxRecords) {
            guard let body = self.innerEntries(record.payload),
                let n = counting ? TelemetryCost.dataPoints(record.payload) : 1
            else {
                if sequences.isEmpty {
                    return .unsendable(sequence: record.sequence, reason: "the spooled record is not telemetry JSON", dropped: [])
                }
                break
            }
            let cost = body.count + (inner.isEmpty ? 0 : 1)
            let fits = size + cost <= budget.maxPayloadBytes && points + n <= (budget.maxDataPoints ?? Int.max)
            if !fits {
                if sequences.isEmpty { return self.split(record, budget: budget, part: 0) }
                break
            }
            inner.append(body)
            sequences.append(record.sequence)
            size += cost
            points += n
        }
        var payload: [UInt8] = [UInt8(ascii: "[")]
        payload.reserveCapacity(size)
        for (i, body) in inner.enumerated() {
            if i > 0 { payload.append(UInt8(ascii: ",")) }
            payload += body
        }
        payload.append(UInt8(ascii: "]"))
        return .publish(PlannedPublish(payload: payload, dataPoints: points, covers: .records(sequences)))
    }

    /// The bytes between a record's `[` and `]` (a record is a JSON array of entries); a lone object is its own body.
    static func innerEntries(_ payload: [UInt8]) -> ArraySlice<UInt8>? {
        guard let open = payload.firstIndex(where: { !Self.isSpace($0) }),
            let close = payload.lastIndex(where: { !Self.isSpace($0) }), open < close
        else { return nil }
        switch (payload[open], payload[close]) {
        case (UInt8(ascii: "["), UInt8(ascii: "]")): return payload[(open + 1)..<close]
        case (UInt8(ascii: "{"), UInt8(ascii: "}")): return payload[open...close]
        default: return nil
        }
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    /// Part `part` of a record too large for one PUBLISH: its entries packed greedily, an entry too large split by
    /// keys, a key too large alone dropped.
    static func split(_ record: SpoolRecord, budget: PublishBudget, part: Int) -> Step {
        guard let value = try? JSONValue.parse(record.payload, lenient: true) else {
            return .unsendable(sequence: record.sequence, reason: "the spooled record is not telemetry JSON", dropped: [])
        }
        let entries = value.arrayValue ?? [value]
        var pieces: [(payload: [UInt8], points: Int)] = []
        var dropped: [Reading] = []
        var current: [UInt8] = [UInt8(ascii: "[")]
        var currentPoints = 0
        let maxPoints = budget.maxDataPoints ?? Int.max

        func flush() {
            if currentPoints > 0 || current.count > 1 {
                current.append(UInt8(ascii: "]"))
                pieces.append((current, currentPoints))
            }
            current = [UInt8(ascii: "[")]
            currentPoints = 0
        }
        func fitsAlone(_ text: [UInt8], _ points: Int) -> Bool { text.count + 2 <= budget.maxPayloadBytes && points <= maxPoints }
        func add(_ text: [UInt8], _ points: Int) {
            let separator = current.count > 1 ? 1 : 0
            if current.count + separator + text.count + 1 > budget.maxPayloadBytes || currentPoints + points > maxPoints { flush() }
            if current.count > 1 { current.append(UInt8(ascii: ",")) }
            current += text
            currentPoints += points
        }

        for entry in entries {
            guard let ts = entry["ts"]?.int64Value, let members = entry["values"]?.objectMembers else {
                return .unsendable(
                    sequence: record.sequence, reason: "the spooled record is not {\"ts\":…,\"values\":{…}} telemetry", dropped: [])
            }
            // Nulls are not data points and ThingsBoard skips them: leave them out. A key written twice: the last.
            var values: [(String, JSONValue)] = []
            for (key, value) in members where !value.isNull {
                if let i = values.firstIndex(where: { $0.0 == key }) { values[i].1 = value } else { values.append((key, value)) }
            }
            guard !values.isEmpty else { continue }
            let whole = TelemetryEncoder.serialize(timestamp: ts, values: values)
            if fitsAlone(whole, values.count) {
                add(whole, values.count)
                continue
            }
            for (key, value) in values {
                let single = TelemetryEncoder.serialize(timestamp: ts, values: [(key, value)])
                if fitsAlone(single, 1) {
                    add(single, 1)
                } else {
                    dropped.append(Reading(key: key, value: value, timestamp: ts))
                }
            }
        }
        flush()
        guard !pieces.isEmpty else {
            let limit = budget.maxDataPoints.map { "\($0) data points and " } ?? ""
            return .unsendable(
                sequence: record.sequence,
                reason: "no reading of the spooled record fits in one PUBLISH (at most \(limit)\(budget.maxPayloadBytes) payload bytes)",
                dropped: dropped)
        }
        // A budget that changed since the record was started: start it again (the server keeps one value per key and
        // timestamp, so a part sent twice does no harm).
        let index = part < pieces.count ? part : 0
        var publish = PlannedPublish(
            payload: pieces[index].payload, dataPoints: pieces[index].points,
            covers: .part(sequence: record.sequence, index: index, count: pieces.count))
        if index == 0 { publish.dropped = dropped }
        return .publish(publish)
    }
}
