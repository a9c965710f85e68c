import AgentCore
import AgentPlatform
import AgentTestSupport
import Foundation
import Testing

@Suite struct SpoolTests {
    func payload(_ i: Int) -> [UInt8] { Array(#"[{"ts":\#(1_700_000_000_000 + i),"values":{"n":\#(i)}}]"#.utf8) }

    @Test func replaysOldestFirstAndTrimsAsAcknowledged() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let spool = try Spool(directory: dir.path, settings: .init(segmentBytes: 600, syncInterval: .zero))
        let sequences = try (0..<40).map { try spool.append(self.payload($0)) }
        #expect(spool.status.depth == 40)
        let first = try spool.pending(limit: 10)
        #expect(first.map(\.payload) == (0..<10).map(self.payload))
        // Out-of-order acknowledgements: trimmed only once contiguous.
        try spool.acknowledge(sequences[1..<10])
        #expect(spool.acknowledgedThrough == 0)
        try spool.acknowledge([sequences[0]])
        #expect(spool.acknowledgedThrough == sequences[9])
        #expect(spool.status.depth == 30)
        #expect(try spool.pending(limit: 1).first?.payload == self.payload(10))
        try spool.acknowledge(sequences[10...])
        #expect(spool.status.depth == 0)
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".seg") }
        #expect(segments.count <= 1)
    }

    @Test func survivesARestartWithEveryUnacknowledgedRecord() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        var sequences: [UInt64] = []
        do {
            let spool = try Spool(directory: dir.path, settings: .init(segmentBytes: 500, syncInterval: .zero))
            for i in 0..<25 { sequences.append(try spool.append(self.payload(i))) }
            try spool.acknowledge(sequences[0..<5])
            try spool.sync()
        }
        let reopened = try Spool(directory: dir.path, settings: .init(segmentBytes: 500, syncInterval: .zero))
        #expect(try reopened.pending(limit: 100).map(\.payload) == (5..<25).map(self.payload))
        // New appends continue the sequence.
        let next = try reopened.append(self.payload(25))
        #expect(next == sequences.last! + 1)
    }

    @Test func tornTailIsCutAndEverythingBeforeItKept() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        do {
            let spool = try Spool(directory: dir.path, settings: .init(syncInterval: .zero))
            for i in 0..<10 { try spool.append(self.payload(i)) }
        }
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasSuffix(".seg") })
        let url = dir.appendingPathComponent(segment)
        var bytes = try Data(contentsOf: url)
        bytes.removeLast(7)  // a power cut in the middle of the last write
        try bytes.write(to: url)
        let spool = try Spool(directory: dir.path, settings: .init(syncInterval: .zero))
        #expect(try spool.pending(limit: 100).map(\.payload) == (0..<9).map(self.payload))
        #expect(spool.status.recoveredDamage > 0)
        // Appends after recovery are readable (they are not written behind garbage).
        try spool.append(self.payload(99))
        let again = try Spool(directory: dir.path, settings: .init(syncInterval: .zero))
        #expect(try again.pending(limit: 100).map(\.payload) == (0..<9).map(self.payload) + [self.payload(99)])
    }

    @Test func fullSpoolDropsTheOldestAndCountsThem() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let spool = try Spool(directory: dir.path, settings: .init(maxBytes: 2000, segmentBytes: 500, syncInterval: .zero))
        for i in 0..<100 { try spool.append(self.payload(i)) }
        let status = spool.status
        #expect(status.bytes <= 2000)
        #expect(status.dropped > 0)
        #expect(UInt64(status.depth) + status.dropped == 100)
        // What is left is the newest, in order.
        let left = try spool.pending(limit: 1000).map(\.payload)
        #expect(left == (100 - left.count..<100).map(self.payload))
    }

    /// Found by the fault suite: damage in a segment before the last one left a hole in the sequence, the
    /// watermark stopped below it, and every later reading was re-sent after each restart and never trimmed.
    @Test func damageInAnEarlierSegmentDoesNotStopTheWatermark() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let settings = SpoolSettings(segmentBytes: 600, syncInterval: .zero)
        do {
            let spool = try Spool(directory: dir.path, settings: settings)
            for i in 0..<40 { try spool.append(self.payload(i)) }
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".seg") }.sorted()
        try #require(segments.count >= 3)
        let url = dir.appendingPathComponent(segments[0])
        var bytes = [UInt8](try Data(contentsOf: url))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: url)

        let spool = try Spool(directory: dir.path, settings: settings)
        #expect(spool.recoveryNotes.count == 1)
        #expect(spool.recoveryNotes.first?.contains(segments[0]) == true)
        let pending = try spool.pending(limit: 1000)
        try spool.acknowledge(pending.map(\.sequence))
        #expect(spool.acknowledgedThrough == pending.last?.sequence)
        #expect(spool.status.depth == 0)
        try spool.sync()
        let reopened = try Spool(directory: dir.path, settings: settings)
        #expect(try reopened.pending(limit: 1000).isEmpty)
        #expect(reopened.recoveryNotes.isEmpty)
    }

    /// A crash after a trim and before the watermark reached state.json leaves the same kind of hole.
    @Test func segmentsTrimmedBeforeACrashDoNotStopTheWatermark() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let settings = SpoolSettings(segmentBytes: 600, syncInterval: .zero)
        do {
            let spool = try Spool(directory: dir.path, settings: settings)
            for i in 0..<40 { try spool.append(self.payload(i)) }
            try spool.sync()
        }
        // The oldest segment acknowledged and trimmed, state.json not yet updated.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".seg") }.sorted()
        try FileManager.default.removeItem(at: dir.appendingPathComponent(segments[0]))
        let spool = try Spool(directory: dir.path, settings: settings)
        let pending = try spool.pending(limit: 1000)
        try spool.acknowledge(pending.map(\.sequence))
        #expect(spool.status.depth == 0)
        #expect(spool.acknowledgedThrough == pending.last?.sequence)
    }

    /// Several records in one call (one write per segment) leave the same segments as one call per record:
    /// the same files, the same bytes, the same sequence numbers, recovered the same after a restart.
    @Test func appendingInBatchesWritesWhatAppendingOneByOneWrites() throws {
        let settings = SpoolSettings(segmentBytes: 600, syncInterval: .zero)
        let oneByOne = try TestSupport.makeTemporaryDirectory("spool")
        let batched = try TestSupport.makeTemporaryDirectory("spool")
        do {
            let single = try Spool(directory: oneByOne.path, settings: settings)
            for i in 0..<80 { try single.append(self.payload(i)) }
            let batches = try Spool(directory: batched.path, settings: settings)
            var next = 0
            for size in [1, 7, 13, 0, 25, 2, 32] {
                try batches.append(contentsOf: (next..<(next + size)).map(self.payload))
                next += size
            }
            #expect(next == 80)
            #expect(try batches.pending(limit: 100).map(\.payload) == (0..<80).map(self.payload))
            let expected = try single.pending(limit: 100).map(\.sequence)
            #expect(try batches.pending(limit: 100).map(\.sequence) == expected)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: oneByOne.path).filter { $0.hasSuffix(".seg") }.sorted()
        #expect(names.count > 3)
        #expect(try FileManager.default.contentsOfDirectory(atPath: batched.path).filter { $0.hasSuffix(".seg") }.sorted() == names)
        for name in names {
            let expected = try Data(contentsOf: oneByOne.appendingPathComponent(name))
            #expect(try Data(contentsOf: batched.appendingPathComponent(name)) == expected, "\(name)")
        }
        let reopened = try Spool(directory: batched.path, settings: settings)
        #expect(try reopened.pending(limit: 100).map(\.payload) == (0..<80).map(self.payload))
    }

    /// A batch flash refuses is kept in memory whole, in order, before what flash takes later.
    @Test func aRefusedBatchIsKeptInMemoryInOrder() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let blocker = dir.appendingPathComponent("state")
        try Data("not a directory".utf8).write(to: blocker)
        let spool = try Spool(directory: blocker.appendingPathComponent("spool").path, settings: .init(syncInterval: .zero))
        #expect(throws: AgentError.self) { try spool.append(contentsOf: (0..<5).map(self.payload)) }
        #expect(spool.status.inMemory == 5)
        try FileManager.default.removeItem(at: blocker)
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try spool.append(contentsOf: (5..<9).map(self.payload))
        #expect(spool.problem == nil)
        let pending = try spool.pending(limit: 100)
        #expect(pending.map(\.payload) == (0..<9).map(self.payload))
        #expect(pending.map(\.sequence) == Array(pending[0].sequence..<(pending[0].sequence + 9)))
    }

    /// Found by the fault suite: on a full or read-only file system every append failed and the reading was gone,
    /// so an agent online with a full disk published nothing, and one with a read-only state directory did not
    /// start. Records flash does not take are kept in memory and sent from there.
    @Test func keepsRecordsInMemoryWhileFlashDoesNotTakeThem() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        // A file where the state directory should be: every write fails, even for root.
        let blocker = dir.appendingPathComponent("state")
        try Data("not a directory".utf8).write(to: blocker)
        let spool = try Spool(directory: blocker.appendingPathComponent("spool").path, settings: .init(syncInterval: .zero))
        #expect(spool.problem != nil)
        for i in 0..<5 {
            #expect(throws: AgentError.self) { try spool.append(self.payload(i)) }
        }
        #expect(try spool.pending(limit: 100).map(\.payload) == (0..<5).map(self.payload))
        #expect(spool.status.depth == 5)
        #expect(spool.status.inMemory == 5)

        // Flash works again: new records go to it, the ones in memory are still sent, oldest first.
        try FileManager.default.removeItem(at: blocker)
        try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)
        try spool.append(self.payload(5))
        #expect(spool.problem == nil)
        let pending = try spool.pending(limit: 100)
        #expect(pending.map(\.payload) == (0..<6).map(self.payload))
        try spool.acknowledge(pending.map(\.sequence))
        #expect(spool.status.depth == 0)
        #expect(spool.status.inMemory == 0)
        #expect(spool.acknowledgedThrough == pending.last?.sequence)
    }

    @Test func memoryIsBoundedAndWhatItDropsIsCounted() throws {
        let dir = try TestSupport.makeTemporaryDirectory("spool")
        let blocker = dir.appendingPathComponent("state")
        try Data().write(to: blocker)
        let spool = try Spool(directory: blocker.appendingPathComponent("spool").path, settings: .init(maxBytes: 500, syncInterval: .zero))
        for i in 0..<30 { _ = try? spool.append(self.payload(i)) }
        let left = try spool.pending(limit: 100)
        #expect(left.reduce(0) { $0 + $1.payload.count } <= 500)
        #expect(left.map(\.payload) == (30 - left.count..<30).map(self.payload))
        #expect(spool.status.dropped == UInt64(30 - left.count))
        // The dropped ones are never acknowledged: the watermark steps over them. (The state cannot be saved: the
        // error is for reporting.)
        #expect(throws: AgentError.self) { try spool.acknowledge(left.map(\.sequence)) }
        #expect(spool.acknowledgedThrough == left.last?.sequence)
        #expect(spool.status.depth == 0)
    }

    @Test func randomDamageNeverLosesRecordsBeforeIt() throws {
        var rng = SplitMix64(seed: 99)
        for round in 0..<40 {
            let dir = try TestSupport.makeTemporaryDirectory("spool")
            do {
                let spool = try Spool(directory: dir.path, settings: .init(syncInterval: .zero))
                for i in 0..<30 { try spool.append(self.payload(i)) }
            }
            let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasSuffix(".seg") })
            let url = dir.appendingPathComponent(segment)
            var bytes = [UInt8](try Data(contentsOf: url))
            let offset = Int.random(in: 0..<bytes.count, using: &rng)
            if round % 2 == 0 { bytes = Array(bytes.prefix(offset)) } else { bytes[offset] ^= 0x5A }
            try Data(bytes).write(to: url)
            let spool = try Spool(directory: dir.path, settings: .init(syncInterval: .zero))
            let left = try spool.pending(limit: 1000).map(\.payload)
            #expect(left == (0..<left.count).map(self.payload), "round \(round)")
            let recordSize = SpoolRecord(sequence: 1, payload: self.payload(0)).encoded.count
            #expect(left.count >= offset / recordSize - 1)
        }
    }
}
