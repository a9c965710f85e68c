/// CRC-32 (ISO-HDLC, zlib's): reflected polynomial 0xEDB88320. The digest is the value's bytes little-endian, as
/// Guava's `Hashing.crc32()` writes it: "123456789" (0xCBF43926) is `2639f4cb`.
public struct CRC32: ChecksumFunction {
    private var crc: UInt32 = 0xFFFF_FFFF

    private static let table: [UInt32] = (0..<256).map { index -> UInt32 in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = self.crc
        for byte in bytes { crc = Self.table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        self.crc = crc
    }

    /// The CRC as a number (zlib's `crc32`).
    public var value: UInt32 { ~self.crc }

    public func finalize() -> [UInt8] { self.value.littleEndianBytes }
}
