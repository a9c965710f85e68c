/// ThingsBoard's OTA checksum algorithms (`ChecksumAlgorithm.java`), spelled as ThingsBoard spells them in
/// `fw_checksum_algorithm`.
public enum ChecksumAlgorithm: String, Sendable, Hashable, CaseIterable {
    case md5 = "MD5"
    case sha256 = "SHA256"
    case sha384 = "SHA384"
    case sha512 = "SHA512"
    case crc32 = "CRC32"
    case murmur3_32 = "MURMUR3_32"
    case murmur3_128 = "MURMUR3_128"

    /// The algorithm named `name`, ignoring case (`sha256` and `SHA256` are the same), or `nil`.
    public init?(name: String) {
        var upper = ""
        for scalar in name.unicodeScalars {
            upper.unicodeScalars.append((0x61...0x7A).contains(scalar.value) ? Unicode.Scalar(UInt8(scalar.value - 0x20)) : scalar)
        }
        self.init(rawValue: upper)
    }

    /// The length of the digest in bytes.
    public var digestLength: Int {
        switch self {
        case .md5, .murmur3_128: return 16
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        case .crc32, .murmur3_32: return 4
        }
    }

    /// The checksum of `bytes` as ThingsBoard writes it: lower-case hex, in ThingsBoard's byte order.
    public func hex(of bytes: some Sequence<UInt8>) -> String {
        var checksum = Checksum(self)
        checksum.update(bytes)
        return checksum.hexDigest()
    }
}

/// A running checksum of any of ThingsBoard's algorithms, for data that arrives in pieces (an OTA package written
/// chunk by chunk).
public struct Checksum: Sendable {
    public let algorithm: ChecksumAlgorithm
    private var function: any ChecksumFunction

    public init(_ algorithm: ChecksumAlgorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .md5: self.function = MD5()
        case .sha256: self.function = SHA256()
        case .sha384: self.function = SHA384()
        case .sha512: self.function = SHA512()
        case .crc32: self.function = CRC32()
        case .murmur3_32: self.function = Murmur3x86_32()
        case .murmur3_128: self.function = Murmur3x64_128()
        }
    }

    /// Feeds more bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        self.function.update(bytes)
    }

    /// Feeds more bytes.
    public mutating func update(_ bytes: some Sequence<UInt8>) {
        self.function.update(bytes)
    }

    /// The digest of everything fed so far, in ThingsBoard's byte order.
    public func finalize() -> [UInt8] { self.function.finalize() }

    /// The digest as ThingsBoard writes it in `fw_checksum`: lower-case hex.
    public func hexDigest() -> String { Hex.encode(self.finalize()) }
}
