/// The on-flash format of one spooled record, and the scan that recovers records from a segment after a crash.
///
/// ```
/// offset  size  field
///      0     2  magic "tb"
///      2     1  format version (1)
///      3     4  payload length, little endian
///      7     8  sequence number, little endian
///     15     4  CRC-32 of bytes 2..<15 and of the payload
///     19     n  payload
/// ```
/// A record is valid only when its magic, version, length and checksum agree, so a torn tail (power cut in the
/// middle of a write) or damaged bytes are detected; the scan keeps every complete record before the damage.
public struct SpoolRecord: Sendable, Equatable {
    public static let magic: [UInt8] = [0x74, 0x62]  // "tb"
    public static let version: UInt8 = 1
    public static let headerSize = 19
    /// No record is larger than ThingsBoard's packet limit.
    public static let maxPayloadSize = 1 << 20

    public var sequence: UInt64
    public var payload: [UInt8]

    public init(sequence: UInt64, payload: [UInt8]) {
        self.sequence = sequence
        self.payload = payload
    }

    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + self.payload.count)
        Self.encode(sequence: self.sequence, payload: self.payload, into: &out)
        return out
    }

    /// Appends the on-flash form of the record `sequence`, `payload` to `out` (what `encoded` is), written in place:
    /// this runs for every reading.
    public static func encode(sequence: UInt64, payload: [UInt8], into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: Self.headerSize))
        out.append(contentsOf: payload)
        out.withUnsafeMutableBytes { raw in
            let header = UnsafeMutableRawBufferPointer(rebasing: raw[start..<(start + Self.headerSize)])
            header[0] = Self.magic[0]
            header[1] = Self.magic[1]
            header[2] = Self.version
            header.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: 3, as: UInt32.self)
            header.storeBytes(of: sequence.littleEndian, toByteOffset: 7, as: UInt64.self)
            let body = UnsafeRawBufferPointer(rebasing: raw[(start + Self.headerSize)...])
            let crc = CRC32.checksum(body, seed: CRC32.checksum(UnsafeRawBufferPointer(rebasing: header[2..<15])))
            header.storeBytes(of: crc.littleEndian, toByteOffset: 15, as: UInt32.self)
        }
    }

    /// What a scan of a segment found.
    public struct ScanResult: Sendable, Equatable {
        public var records: [SpoolRecord]
        /// Bytes from the start that hold valid records; anything after is damage or a torn tail.
        public var validLength: Int
        /// True when bytes after `validLength` were ignored.
        public var damaged: Bool { self.damagedBytes > 0 }
        public var damagedBytes: Int
    }

    /// Reads records from the start of `bytes` until the end or the first invalid record.
    public static func scan(_ bytes: [UInt8]) -> ScanResult {
        var records: [SpoolRecord] = []
        var offset = 0
        while offset < bytes.count {
            guard let (record, size) = self.decode(bytes, at: offset) else { break }
            records.append(record)
            offset += size
        }
        return ScanResult(records: records, validLength: offset, damagedBytes: bytes.count - offset)
    }

    static func decode(_ bytes: [UInt8], at offset: Int) -> (SpoolRecord, Int)? {
        guard bytes.count - offset >= self.headerSize,
            bytes[offset] == self.magic[0], bytes[offset + 1] == self.magic[1], bytes[offset + 2] == self.version
        else { return nil }
        let length = Int(self.readUInt32(bytes, offset + 3))
        guard length <= self.maxPayloadSize, bytes.count - offset - self.headerSize >= length else { return nil }
        let sequence = self.readUInt64(bytes, offset + 7)
        let stored = self.readUInt32(bytes, offset + 15)
        let payloadStart = offset + self.headerSize
        let payload = Array(bytes[payloadStart..<payloadStart + length])
        let crc = CRC32.checksum(payload, seed: CRC32.checksum(bytes[(offset + 2)..<(offset + 15)]))
        guard crc == stored else { return nil }
        return (SpoolRecord(sequence: sequence, payload: payload), self.headerSize + length)
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    static func readUInt32(_ b: [UInt8], _ o: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) }
    }

    static func readUInt64(_ b: [UInt8], _ o: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
    }
}
