/// The compression step of a hash that consumes fixed-size blocks.
protocol BlockCompressor: Sendable {
    static var blockSize: Int { get }
    init()
    /// Consumes one block of exactly `blockSize` bytes.
    mutating func compress(_ block: UnsafeRawBufferPointer)
}

/// Cuts a byte stream into blocks for a ``BlockCompressor``: full blocks go straight from the caller's buffer, the
/// remainder waits in `pending`.
struct BlockBuffer<Compressor: BlockCompressor>: Sendable {
    var compressor = Compressor()
    /// Fewer than `blockSize` bytes not yet compressed.
    var pending: [UInt8] = []
    /// Every byte fed so far.
    var length: UInt64 = 0

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        let size = Compressor.blockSize
        self.length &+= UInt64(bytes.count)
        var offset = 0
        if !self.pending.isEmpty {
            let take = min(size - self.pending.count, bytes.count)
            self.pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
            offset = take
            if self.pending.count == size {
                let block = self.pending
                block.withUnsafeBytes { self.compressor.compress($0) }
                self.pending.removeAll(keepingCapacity: true)
            }
        }
        while bytes.count - offset >= size {
            self.compressor.compress(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size]))
            offset += size
        }
        if offset < bytes.count {
            self.pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        }
    }

    /// Merkle–Damgård padding (MD5, SHA-2): 0x80, zeros, then the message length in bits in a field of
    /// `lengthFieldSize` bytes; returns the compressor after the last block.
    func paddedCompressor(lengthFieldSize: Int, bigEndian: Bool) -> Compressor {
        let size = Compressor.blockSize
        var tail = self.pending
        tail.append(0x80)
        while tail.count % size != size - lengthFieldSize { tail.append(0) }
        let bits = self.length &* 8
        var field = [UInt8](repeating: 0, count: lengthFieldSize)
        for i in 0..<8 {
            let byte = UInt8(truncatingIfNeeded: bits >> UInt64(8 * i))
            field[bigEndian ? lengthFieldSize - 1 - i : i] = byte
        }
        tail += field
        var compressor = self.compressor
        tail.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                compressor.compress(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + size]))
                offset += size
            }
        }
        return compressor
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadBigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }

    @inline(__always)
    func loadLittleEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) | UInt32(self[offset + 1]) << 8 | UInt32(self[offset + 2]) << 16 | UInt32(self[offset + 3]) << 24
    }

    @inline(__always)
    func loadBigEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(self.loadBigEndianUInt32(at: offset)) << 32 | UInt64(self.loadBigEndianUInt32(at: offset + 4))
    }

    @inline(__always)
    func loadLittleEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(self.loadLittleEndianUInt32(at: offset)) | UInt64(self.loadLittleEndianUInt32(at: offset + 4)) << 32
    }
}

// Concrete rather than on FixedWidthInteger: a generic rotation was left unspecialised and cost 90 % of SHA-256.
extension UInt32 {
    @inline(__always)
    func rotatedLeft(_ n: UInt32) -> UInt32 { (self &<< n) | (self &>> (32 &- n)) }

    @inline(__always)
    func rotatedRight(_ n: UInt32) -> UInt32 { (self &>> n) | (self &<< (32 &- n)) }
}

extension UInt64 {
    @inline(__always)
    func rotatedLeft(_ n: UInt64) -> UInt64 { (self &<< n) | (self &>> (64 &- n)) }

    @inline(__always)
    func rotatedRight(_ n: UInt64) -> UInt64 { (self &>> n) | (self &<< (64 &- n)) }
}

extension FixedWidthInteger {
    /// The value's bytes, most significant first.
    var bigEndianBytes: [UInt8] {
        (0..<Self.bitWidth / 8).map { UInt8(truncatingIfNeeded: self >> (Self.bitWidth - 8 - 8 * $0)) }
    }

    /// The value's bytes, least significant first.
    var littleEndianBytes: [UInt8] {
        (0..<Self.bitWidth / 8).map { UInt8(truncatingIfNeeded: self >> (8 * $0)) }
    }
}
