import AgentCore
import Testing

@Suite struct SpoolRecordTests {
    func segment(_ n: Int) -> ([SpoolRecord], [UInt8]) {
        let records = (0..<n).map { i in
            SpoolRecord(sequence: UInt64(100 + i), payload: Array(#"{"ts":\#(1_700_000_000_000 + i),"values":{"t":\#(i)}}"#.utf8))
        }
        return (records, records.flatMap(\.encoded))
    }

    @Test func crcMatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func roundTrips() {
        let (records, bytes) = self.segment(50)
        let scan = SpoolRecord.scan(bytes)
        #expect(scan.records == records)
        #expect(!scan.damaged)
    }

    @Test func everyTruncationKeepsEveryCompleteRecordBeforeIt() {
        let (records, bytes) = self.segment(20)
        var boundaries: [Int] = [0]
        for r in records { boundaries.append(boundaries.last! + r.encoded.count) }
        for cut in 0...bytes.count {
            let scan = SpoolRecord.scan(Array(bytes.prefix(cut)))
            let complete = boundaries.lastIndex(where: { $0 <= cut }) ?? 0
            #expect(scan.records == Array(records.prefix(complete)), "cut at \(cut)")
            #expect(scan.validLength == boundaries[complete])
        }
    }

    @Test func corruptionAnywhereKeepsTheRecordsBeforeTheDamage() {
        let (records, bytes) = self.segment(20)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<300 {
            var damaged = bytes
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            damaged[at] ^= UInt8.random(in: 1...255, using: &rng)
            let scan = SpoolRecord.scan(damaged)
            // Every record returned is one that was written, in order, and all before the damaged one are kept.
            #expect(scan.records == Array(records.prefix(scan.records.count)))
            var start = 0
            var damagedIndex = 0
            for (i, r) in records.enumerated() {
                if at >= start && at < start + r.encoded.count { damagedIndex = i }
                start += r.encoded.count
            }
            #expect(scan.records.count == damagedIndex)
        }
    }
}
