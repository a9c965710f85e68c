import AgentCore
import TBJSON
import Testing

@Suite struct TelemetryCostTests {
    func points(_ text: String) -> Int? { TelemetryCost.dataPoints(Array(text.utf8)) }

    @Test func countsAsThingsBoardCounts() {
        // The reference's example: 1 message, 3 data points.
        #expect(self.points(#"[{"ts":1,"values":{"a":1,"b":2}},{"ts":2,"values":{"a":3}}]"#) == 3)
        #expect(self.points(#"{"a":1,"b":"x","c":true}"#) == 3)
        #expect(self.points(#"{"ts":1,"values":{"a":1}}"#) == 1)
        // Nulls are skipped; a nested object or array is one; a key twice in one entry is one (the last decides).
        #expect(self.points(#"{"ts":1,"values":{"a":null,"b":{"x":1,"y":2},"c":[1,2,3]}}"#) == 2)
        #expect(self.points(#"{"a":1,"a":2}"#) == 1)
        #expect(self.points(#"{"a":1,"a":null}"#) == 0)
        // `ts` without `values` is an ordinary key.
        #expect(self.points(#"{"ts":1,"a":2}"#) == 2)
        // A mix of shapes in one array.
        #expect(self.points(#"[{"a":1},{"ts":5,"values":{"b":1,"c":2}}]"#) == 3)
        #expect(self.points("[]") == 0)
    }

    @Test func payloadsThingsBoardRefusesHaveNoCount() {
        #expect(self.points("42") == nil)
        #expect(self.points("[1]") == nil)
        #expect(self.points(#"{"ts":1,"values":5}"#) == nil)
        #expect(self.points(#"{"ts":null,"values":{"a":1}}"#) == nil)
        #expect(self.points("not json") == nil)
    }

    @Test func theSizeComparedIsTheRemainingLength() {
        // 2-byte topic length + 23-byte topic + 2-byte packet id + payload.
        #expect(TelemetryCost.remainingLength(topic: "v1/devices/me/telemetry", payloadBytes: 100) == 127)
        #expect(TelemetryCost.remainingLength(topic: "v1/devices/me/telemetry", payloadBytes: 100, qos: 0) == 125)
        #expect(TelemetryCost.maxPayloadBytes(topic: "v1/devices/me/telemetry", maxPayloadSize: 65536) == 65509)
    }
}

@Suite struct PublishPlannerTests {
    /// A spooled record as the agent writes it: one entry of `keys` readings at `ts`.
    func record(_ sequence: UInt64, ts: Int64 = 1000, keys: Int, valueBytes: Int = 1) -> SpoolRecord {
        let readings = (0..<keys).map { Reading(key: "k\($0)", value: .string(String(repeating: "v", count: valueBytes)), timestamp: ts) }
        let payload = TelemetryEncoder.payloads(readings, maxPayloadBytes: 1 << 20).payloads[0]
        return SpoolRecord(sequence: sequence, payload: payload)
    }

    func publish(_ step: PublishPlanner.Step) -> PlannedPublish? {
        if case .publish(let p) = step { return p }
        Issue.record("expected a publish, got \(step)")
        return nil
    }

    @Test func wholeRecordsUpToTheDataPointWindow() throws {
        let records = (1...10).map { self.record(UInt64($0), ts: Int64($0), keys: 3) }
        let budget = PublishBudget(maxDataPoints: 8, maxPayloadBytes: 65000, maxRecords: 64)
        let p = try #require(self.publish(PublishPlanner.next(records, budget: budget)))
        #expect(p.covers == .records([1, 2]))
        #expect(p.dataPoints == 6)
        #expect(TelemetryCost.dataPoints(p.payload) == 6)
        #expect(p.acknowledges == [1, 2])
        #expect(p.sentThrough == 2)
        #expect(p.nextPart == nil)
        // The payload is the records' entries in one array.
        let value = try JSONValue.parse(p.payload)
        #expect(value.arrayValue?.count == 2)
    }

    @Test func bytesAndRecordCountBoundABatchToo() throws {
        let records = (1...10).map { self.record(UInt64($0), ts: Int64($0), keys: 1, valueBytes: 100) }
        let size = records[0].payload.count
        let byBytes = try #require(self.publish(PublishPlanner.next(records, budget: PublishBudget(maxPayloadBytes: 3 * size))))
        #expect(byBytes.covers == .records([1, 2, 3]))
        #expect(byBytes.payload.count <= 3 * size)
        let byCount = try #require(self.publish(PublishPlanner.next(records, budget: PublishBudget(maxRecords: 4))))
        #expect(byCount.covers == .records([1, 2, 3, 4]))
        #expect(PublishPlanner.next([], budget: PublishBudget()) == .nothing)
    }

    @Test func aRecordOverTheWindowIsSentInPartsResumedByIndex() throws {
        let big = self.record(7, keys: 20)
        let records = [big, self.record(8, keys: 1)]
        let budget = PublishBudget(maxDataPoints: 8, maxPayloadBytes: 65000)
        var part = 0
        var seen = 0
        var acknowledged: [UInt64] = []
        var total = 0
        while true {
            let p = try #require(self.publish(PublishPlanner.next(records, budget: budget, part: part)))
            guard case .part(let sequence, let index, let count) = p.covers else {
                Issue.record("expected a part: \(p.covers)")
                return
            }
            #expect(sequence == 7 && index == part && count == 3)
            #expect(p.dataPoints <= 8)
            #expect(TelemetryCost.dataPoints(p.payload) == p.dataPoints)
            total += p.dataPoints
            acknowledged += p.acknowledges
            seen += 1
            guard let next = p.nextPart else {
                #expect(p.sentThrough == 7)
                break
            }
            #expect(p.sentThrough == nil)
            part = next
        }
        #expect(seen == 3)
        #expect(total == 20)
        #expect(acknowledged == [7])
        // After it, the next record goes whole.
        let after = try #require(self.publish(PublishPlanner.next([records[1]], budget: budget)))
        #expect(after.covers == .records([8]))
    }

    @Test func aReadingLargerThanAnyPublishIsReportedNotLoopedOn() throws {
        // One 2000-byte value under a 1000-byte budget, next to small ones.
        let readings = [
            Reading(key: "big", value: .string(String(repeating: "x", count: 2000)), timestamp: 5),
            Reading(key: "small", value: 1, timestamp: 5),
        ]
        let payload = TelemetryEncoder.payloads(readings, maxPayloadBytes: 1 << 20).payloads[0]
        let record = SpoolRecord(sequence: 3, payload: payload)
        let budget = PublishBudget(maxPayloadBytes: 1000)
        let p = try #require(self.publish(PublishPlanner.next([record], budget: budget)))
        #expect(p.covers == .part(sequence: 3, index: 0, count: 1))
        #expect(p.dropped.map(\.key) == ["big"])
        #expect(p.acknowledges == [3])
        // Nothing of it fits: unsendable, with the reading named, and never split again.
        let alone = SpoolRecord(sequence: 4, payload: TelemetryEncoder.payloads([readings[0]], maxPayloadBytes: 1 << 20).payloads[0])
        guard case .unsendable(let sequence, let reason, let dropped) = PublishPlanner.next([alone], budget: budget) else {
            Issue.record("expected unsendable")
            return
        }
        #expect(sequence == 4)
        #expect(reason.contains("1000 payload bytes"))
        #expect(dropped.map(\.key) == ["big"])
    }

    @Test func aRecordThatIsNotTelemetryIsUnsendable() {
        let junk = SpoolRecord(sequence: 9, payload: Array("garbage".utf8))
        guard case .unsendable(9, _, _) = PublishPlanner.next([junk], budget: PublishBudget()) else {
            Issue.record("expected unsendable")
            return
        }
    }

    @Test func aChangedBudgetRestartsASplitRecord() throws {
        let big = self.record(7, keys: 20)
        let p = try #require(self.publish(PublishPlanner.next([big], budget: PublishBudget(maxDataPoints: 15), part: 3)))
        #expect(p.covers == .part(sequence: 7, index: 0, count: 2))
    }

    @Test func theBudgetFollowsTheLimitsAndTheLearner() {
        let limits = SessionLimits(maxPayloadSize: 8192, telemetryDataPoints: RateLimiterTests.limit("10:1,300:60"))
        let budget = PublishBudget.from(limits)
        #expect(budget.maxDataPoints == 8)
        #expect(budget.maxPayloadBytes == 8192 - 27)
        #expect(PublishBudget.from(.none).maxDataPoints == nil)
        #expect(PublishBudget.from(.none).maxPayloadBytes == TelemetryEncoder.defaultMaxPayloadBytes)
        var learner = UnknownLimitLearner()
        _ = learner.published(dataPoints: 6, bytes: 4000, now: .zero)
        _ = learner.connectionClosed(now: .milliseconds(10))
        let lowered = PublishBudget.from(limits, learner: learner)
        #expect(lowered.maxDataPoints == 3)
        #expect(lowered.maxPayloadBytes == 2000)
    }
}
