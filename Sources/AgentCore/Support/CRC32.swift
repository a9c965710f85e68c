/// CRC-32 (IEEE 802.3, the zlib polynomial), for detecting torn or damaged records and files on flash.
public enum CRC32 {
    /// Four tables of 256 entries (slicing by 4): the first is the classic byte-at-a-time table, each next one
    /// advances a byte further, so that four bytes take four look-ups and no shifts between them.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 4 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            tables[i] = c
        }
        for k in 1..<4 {
            for i in 0..<256 {
                let previous = tables[(k - 1) * 256 + i]
                tables[k * 256 + i] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    public static func checksum(_ bytes: some Sequence<UInt8>, seed: UInt32 = 0) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ self.checksum(UnsafeRawBufferPointer($0), seed: seed) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { self.checksum($0, seed: seed) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        self.tables.withUnsafeBufferPointer { t in
            var crc = ~seed
            var i = 0
            let n = bytes.count
            while n - i >= 4 {
                crc ^= UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
                crc = t[768 + Int(crc & 0xFF)] ^ t[512 + Int((crc >> 8) & 0xFF)] ^ t[256 + Int((crc >> 16) & 0xFF)]
                    ^ t[Int(crc >> 24)]
                i += 4
            }
            while i < n {
                crc = t[Int((crc ^ UInt32(bytes[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
            return ~crc
        }
    }
}
