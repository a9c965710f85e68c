/// A checksum computed piece by piece: feed bytes with ``update(_:)-(UnsafeRawBufferPointer)``, then read the digest
/// with ``finalize()`` (which leaves the function as it was, so more bytes may follow).
///
/// The digest bytes are in ThingsBoard's order: the standard byte order for MD5 and the SHA-2 family, little-endian
/// for CRC32 and the MurmurHash3 functions (Guava's `HashCode.toString()`, which ThingsBoard stores).
public protocol ChecksumFunction: Sendable {
    init()
    /// Feeds more bytes.
    mutating func update(_ bytes: UnsafeRawBufferPointer)
    /// The digest of everything fed so far.
    func finalize() -> [UInt8]
}

extension ChecksumFunction {
    /// Feeds more bytes.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            self.update(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { self.update($0) }
        }
    }

    /// The digest of `bytes` as lower-case hexadecimal text.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var function = Self()
        function.update(bytes)
        return Hex.encode(function.finalize())
    }
}

/// Lower-case hexadecimal text.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
