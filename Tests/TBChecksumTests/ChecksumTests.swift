import TBChecksum
import Testing

@Suite("OTA checksums: ThingsBoard's seven algorithms, in ThingsBoard's byte order")
struct ChecksumTests {
    @Test("every algorithm at lengths around each block boundary matches Python's hashlib, zlib and mmh3")
    func vectors() throws {
        for (length, name, expected) in ChecksumVectors.table {
            let algorithm = try #require(ChecksumAlgorithm(name: name))
            #expect(algorithm.hex(of: ChecksumVectors.pattern(length)) == expected, "\(name) of \(length) bytes")
        }
    }

    @Test("fed in pieces of every size, each algorithm gives the one-shot digest")
    func streaming() {
        let bytes = ChecksumVectors.pattern(300)
        for algorithm in ChecksumAlgorithm.allCases {
            let whole = algorithm.hex(of: bytes)
            for piece in [1, 3, 4, 7, 16, 63, 64, 65, 128, 129] {
                var checksum = Checksum(algorithm)
                var offset = 0
                while offset < bytes.count {
                    checksum.update(bytes[offset..<min(offset + piece, bytes.count)])
                    offset += piece
                }
                #expect(checksum.hexDigest() == whole, "\(algorithm) in pieces of \(piece)")
            }
        }
    }

    @Test("the reference's published values: CRC32 of 123456789 is stored as 2639f4cb; Guava's Murmur3_128 vector")
    func referenceValues() {
        #expect(ChecksumAlgorithm.crc32.hex(of: Array("123456789".utf8)) == "2639f4cb")
        #expect(CRC32.hex(Array("123456789".utf8)) == "2639f4cb")
        // Guava's HashTestUtils / MurmurHash3 reference (h1 = 0xe34bbc7bbc071b6c, h2 = 0x7a433ca9c49a9347).
        #expect(ChecksumAlgorithm.murmur3_128.hex(of: Array("The quick brown fox jumps over the lazy dog".utf8))
            == "6c1b07bc7bbc4be347939ac4a93c437a")
        #expect(ChecksumAlgorithm.murmur3_32.hex(of: []) == "00000000")
    }

    @Test("SHA-256: FIPS 180-4 vectors and a million a's")
    func sha256() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("algorithm names: ThingsBoard's spelling, any case; digest lengths")
    func names() {
        #expect(ChecksumAlgorithm(name: "sha256") == .sha256)
        #expect(ChecksumAlgorithm(name: "Murmur3_128") == .murmur3_128)
        #expect(ChecksumAlgorithm(name: "SHA1") == nil)
        for algorithm in ChecksumAlgorithm.allCases {
            #expect(Checksum(algorithm).finalize().count == algorithm.digestLength)
        }
    }
}
