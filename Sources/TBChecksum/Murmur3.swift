/// MurmurHash3 x86_32 with seed 0 (Guava's `Hashing.murmur3_32()` over bytes). The digest is the 32-bit value's
/// bytes little-endian, as Guava writes it.
public struct Murmur3x86_32: ChecksumFunction {
    private var buffer = BlockBuffer<Compressor>()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { self.buffer.update(bytes) }

    private static let c1: UInt32 = 0xcc9e_2d51
    private static let c2: UInt32 = 0x1b87_3593

    static func mixK(_ k: UInt32) -> UInt32 { (k &* c1).rotatedLeft(15) &* c2 }

    public func finalize() -> [UInt8] {
        var h = self.buffer.compressor.h
        let tail = self.buffer.pending
        if !tail.isEmpty {
            var k: UInt32 = 0
            for (i, byte) in tail.enumerated() { k |= UInt32(byte) << UInt32(8 * i) }
            h ^= Self.mixK(k)
        }
        h ^= UInt32(truncatingIfNeeded: self.buffer.length)
        h ^= h >> 16
        h &*= 0x85eb_ca6b
        h ^= h >> 13
        h &*= 0xc2b2_ae35
        h ^= h >> 16
        return h.littleEndianBytes
    }

    struct Compressor: BlockCompressor {
        static let blockSize = 4
        var h: UInt32 = 0

        init() {}

        mutating func compress(_ block: UnsafeRawBufferPointer) {
            self.h ^= Murmur3x86_32.mixK(block.loadLittleEndianUInt32(at: 0))
            self.h = self.h.rotatedLeft(13) &* 5 &+ 0xe654_6b64
        }
    }
}

/// MurmurHash3 x64_128 with seed 0 (Guava's `Hashing.murmur3_128()`). The digest is h1 then h2, each little-endian,
/// as Guava writes it.
public struct Murmur3x64_128: ChecksumFunction {
    private var buffer = BlockBuffer<Compressor>()

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) { self.buffer.update(bytes) }

    private static let c1: UInt64 = 0x87c3_7b91_1142_53d5
    private static let c2: UInt64 = 0x4cf5_ad43_2745_937f

    static func mixK1(_ k: UInt64) -> UInt64 { (k &* c1).rotatedLeft(31) &* c2 }
    static func mixK2(_ k: UInt64) -> UInt64 { (k &* c2).rotatedLeft(33) &* c1 }

    static func fmix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k &*= 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }

    public func finalize() -> [UInt8] {
        var h1 = self.buffer.compressor.h1
        var h2 = self.buffer.compressor.h2
        let tail = self.buffer.pending
        if tail.count > 8 {
            var k2: UInt64 = 0
            for i in 8..<tail.count { k2 |= UInt64(tail[i]) << UInt64(8 * (i - 8)) }
            h2 ^= Self.mixK2(k2)
        }
        if !tail.isEmpty {
            var k1: UInt64 = 0
            for i in 0..<min(tail.count, 8) { k1 |= UInt64(tail[i]) << UInt64(8 * i) }
            h1 ^= Self.mixK1(k1)
        }
        h1 ^= self.buffer.length
        h2 ^= self.buffer.length
        h1 &+= h2
        h2 &+= h1
        h1 = Self.fmix(h1)
        h2 = Self.fmix(h2)
        h1 &+= h2
        h2 &+= h1
        return h1.littleEndianBytes + h2.littleEndianBytes
    }

    struct Compressor: BlockCompressor {
        static let blockSize = 16
        var h1: UInt64 = 0
        var h2: UInt64 = 0

        init() {}

        mutating func compress(_ block: UnsafeRawBufferPointer) {
            self.h1 ^= Murmur3x64_128.mixK1(block.loadLittleEndianUInt64(at: 0))
            self.h1 = self.h1.rotatedLeft(27) &+ self.h2
            self.h1 = self.h1 &* 5 &+ 0x52dc_e729
            self.h2 ^= Murmur3x64_128.mixK2(block.loadLittleEndianUInt64(at: 8))
            self.h2 = self.h2.rotatedLeft(31) &+ self.h1
            self.h2 = self.h2 &* 5 &+ 0x3849_5ab5
        }
    }
}
