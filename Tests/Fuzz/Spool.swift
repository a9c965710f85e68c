@testable import AgentCore

/// The spool's record format: `SpoolRecord.scan(_:)`.
///
/// Two halves per input:
/// - the input as a segment: no crash; the valid prefix and the damage add up to the input; the records found are
///   byte for byte the valid prefix (so every one has a matching CRC and a length within the limit);
/// - records made from the input (payloads split at 0xFF), then torn (cut) or damaged (one byte changed) at an
///   offset the input chooses: the scan returns exactly the records that end before the damage.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpool(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let scan = SpoolRecord.scan(bytes)
    require(scan.validLength + scan.damagedBytes == bytes.count && scan.validLength >= 0, "lengths do not add up")
    require(scan.damaged == (scan.validLength < bytes.count), "damaged flag wrong")
    let reencoded = scan.records.flatMap(\.encoded)
    require(reencoded == Array(bytes[..<scan.validLength]), "the records are not the valid prefix")
    for record in scan.records {
        require(record.payload.count <= SpoolRecord.maxPayloadSize, "a record over the size limit")
    }
    SpoolFuzz.damaged(bytes)
    return 0
}

enum SpoolFuzz {
    static func damaged(_ bytes: [UInt8]) {
        guard bytes.count >= 3 else { return }
        let records = bytes.dropFirst(3).split(separator: 0xFF, omittingEmptySubsequences: false).prefix(32)
            .enumerated().map { SpoolRecord(sequence: UInt64($0.offset) &* 0x0101_0101 &+ UInt64(bytes[0]), payload: Array($0.element)) }
        var segment: [UInt8] = []
        var ends: [Int] = []
        for record in records {
            segment += record.encoded
            ends.append(segment.count)
        }
        require(SpoolRecord.scan(segment).records == records, "an intact segment lost records")
        let offset = (Int(bytes[1]) << 8 | Int(bytes[2])) % segment.count
        let intact = records.count - ends.filter { $0 > offset }.count
        if bytes[0] & 1 == 0 {
            let torn = Array(segment[..<offset])
            let found = SpoolRecord.scan(torn)
            require(found.records == Array(records.prefix(intact)), "cut at \(offset): \(found.records.count) records, expected \(intact)")
            require(found.validLength == (intact == 0 ? 0 : ends[intact - 1]), "cut at \(offset): wrong valid length")
        } else {
            var damaged = segment
            damaged[offset] ^= bytes[0] | 1
            let found = SpoolRecord.scan(damaged)
            require(found.records == Array(records.prefix(intact)), "byte \(offset) changed: \(found.records.count) records, expected \(intact)")
        }
    }
}
