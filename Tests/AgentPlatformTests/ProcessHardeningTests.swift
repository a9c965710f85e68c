import AgentHost
import AgentPlatform
import Foundation
import CProcessControl
import Glibc
import Testing

/// What `tb-agent run` does to its own process before it starts.
@Suite struct ProcessHardeningTests {
    /// After `boundHeap()`, a large block is mapped on its own (glibc's IS_MMAPPED bit in the chunk's size word), so
    /// that freeing it gives it back to the kernel, and the next one is too: without it, glibc raises its threshold
    /// to the size of the first large block freed and serves the next ones from the heap, where they stay resident.
    /// In a process of its own (an exit test): the suites running alongside would leave free chunks in the heap.
    @Test func largeBlocksAreMappedOnTheirOwnAfterBoundHeap() async {
        await #expect(processExitsWith: .success) {
            guard ProcessHardening.boundHeap() else { exit(2) }
            for size in [1024 * 1024, 1024 * 1024, 512 * 1024, 2048 * 1024] {
                guard let block = malloc(size) else { exit(3) }
                let sizeWord = block.load(fromByteOffset: -MemoryLayout<UInt>.size, as: UInt.self)
                if sizeWord & 0x2 == 0 { exit(1) }
                free(block)
            }
        }
    }

    /// `releaseStartupPages()` drops the resident pages of read-only file mappings (a mapping touched whole has
    /// nearly none left afterwards, and reads the file's bytes again when touched), and loses nothing: a private mapping written
    /// and then made read-only (what the dynamic linker does to relocated data) keeps what was written.
    /// In a process of its own: it advises every mapping of the process. Only where the kernel acts on the advice:
    /// qemu-user (the aarch64 test run) accepts `madvise(MADV_PAGEOUT)` and ignores it; the next test still runs there.
    @Test(.enabled(if: kernelActsOnPageout(), "madvise(MADV_PAGEOUT) is accepted and ignored here (qemu-user)"))
    func startupPagesAreGivenBackAndNothingIsLost() async {
        await #expect(processExitsWith: .success) {
            let pages = 64
            let size = pages * Int(getpagesize())
            guard let (readOnly, relocated) = mappedFile(pages: pages, filledWith: 0x5A) else { exit(12) }
            var sum = 0
            for page in 0..<pages {
                sum += Int(readOnly.load(fromByteOffset: page * size / pages, as: UInt8.self))
                relocated.storeBytes(of: 0xA5, toByteOffset: page * size / pages, as: UInt8.self)
            }
            guard sum == 0x5A * pages, mprotect(relocated, size, PROT_READ) == 0 else { exit(13) }
            guard residentKiB(of: readOnly) == size / 1024, residentKiB(of: relocated) == size / 1024 else { exit(14) }

            guard ProcessHardening.releaseStartupPages() >= 2 * size else { exit(15) }

            // All of it, but a page the kernel has not yet put on its LRU lists cannot be reclaimed.
            guard let left = residentKiB(of: readOnly), left <= size / 1024 / 4 else { exit(16) }
            for page in 0..<pages {
                guard readOnly.load(fromByteOffset: page * size / pages, as: UInt8.self) == 0x5A,
                      relocated.load(fromByteOffset: page * size / pages, as: UInt8.self) == 0xA5 else { exit(17) }
            }
            exit(0)
        }
    }

    /// Wherever the advice is ignored or acted on, nothing is lost: a read-only mapping reads the file's bytes, and a
    /// private mapping written and then made read-only keeps what was written.
    @Test func releasingStartupPagesLosesNothing() async {
        await #expect(processExitsWith: .success) {
            let pages = 16
            let size = pages * Int(getpagesize())
            guard let (readOnly, relocated) = mappedFile(pages: pages, filledWith: 0x3C) else { exit(12) }
            for page in 0..<pages {
                relocated.storeBytes(of: 0xC3, toByteOffset: page * size / pages, as: UInt8.self)
            }
            guard mprotect(relocated, size, PROT_READ) == 0 else { exit(13) }
            guard ProcessHardening.releaseStartupPages() >= size else { exit(15) }
            for page in 0..<pages {
                guard readOnly.load(fromByteOffset: page * size / pages, as: UInt8.self) == 0x3C,
                      relocated.load(fromByteOffset: page * size / pages, as: UInt8.self) == 0xC3 else { exit(17) }
            }
            exit(0)
        }
    }

    /// Only mappings of a file that the process cannot write are advised.
    @Test func onlyReadOnlyFileMappingsAreChosen() {
        let maps = """
            55d0c0000000-55d0c0100000 r--p 00000000 fe:01 1234 /usr/bin/tb-agent
            55d0c0100000-55d0c0900000 r-xp 00100000 fe:01 1234                       /usr/bin/tb-agent
            55d0c0900000-55d0c0a00000 rw-p 00900000 fe:01 1234 /usr/bin/tb-agent
            55d0c0a00000-55d0c0b00000 rw-p 00000000 00:00 0 [heap]
            7f0000000000-7f0000001000 r--p 00000000 00:00 0
            7f0000001000-7f0000002000 r--s 00000000 fe:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
            7f0000002000-7f0000003000 r-xp 00000000 00:00 0 [vdso]
            7f0000003000-7f0000004000 r--p 00000000 fe:01 77                  /path with spaces/lib.so (deleted)
            not a line
            """
        let chosen = ProcessHardening.readOnlyFileMappings(maps)
        #expect(chosen.map(\.start) == [0x55d0_c000_0000, 0x55d0_c010_0000, 0x7f00_0000_1000, 0x7f00_0000_3000])
        #expect(chosen.map(\.end) == [0x55d0_c010_0000, 0x55d0_c090_0000, 0x7f00_0000_2000, 0x7f00_0000_4000])
    }

    /// The dumpable flag is what keeps secrets out of core dumps and away from ptrace.
    @Test func makeNonDumpableClearsTheDumpableFlag() {
        #expect(ProcessHardening.makeNonDumpable())
        #expect(!ProcessHardening.isDumpable)
    }
}

/// The resident KiB of the mapping that starts at `address`, from /proc/self/smaps.
private func residentKiB(of address: UnsafeMutableRawPointer) -> Int? {
    // Not Foundation's String(contentsOfFile:): it reads a /proc file (size 0) only up to its first page.
    guard case .success(let bytes) = POSIXFile.read("/proc/self/smaps", limit: 16 << 20) else { return nil }
    let smaps = String(decoding: bytes, as: UTF8.self)
    let start = String(UInt(bitPattern: address), radix: 16) + "-"
    var inMapping = false
    for line in smaps.split(separator: "\n") {
        if let first = line.first, first.isHexDigit, line.contains("-"), line.split(separator: " ").count >= 5 {
            inMapping = line.hasPrefix(start)
        } else if inMapping, line.hasPrefix("Rss:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        }
    }
    return nil
}

/// Whether `madvise(MADV_PAGEOUT)` drops the resident pages of a file mapping here: a probe on a mapping of its own,
/// counted with mincore(2). qemu-user returns success for the advice and does nothing.
private func kernelActsOnPageout() -> Bool {
    let pages = 64
    let pageSize = Int(getpagesize())
    let size = pages * pageSize
    guard let (mapping, writable) = mappedFile(pages: pages, filledWith: 1) else { return false }
    defer {
        munmap(mapping, size)
        munmap(writable, size)
    }
    var sum = 0
    for page in 0..<pages { sum += Int(mapping.load(fromByteOffset: page * pageSize, as: UInt8.self)) }
    guard sum == pages, tb_madvise_pageout(mapping, size) == 0 else { return false }
    var vector = [UInt8](repeating: 0, count: pages)
    guard mincore(mapping, size, &vector) == 0 else { return false }
    return vector.filter { $0 & 1 != 0 }.count < pages / 2
}

/// A file of `pages` pages of `byte`, written and fsynced, unlinked, then mapped twice: read-only, and private and
/// writable (as the dynamic linker maps data it relocates). Nil when any step fails.
private func mappedFile(pages: Int, filledWith byte: UInt8) -> (readOnly: UnsafeMutableRawPointer, writable: UnsafeMutableRawPointer)? {
    let size = pages * Int(getpagesize())
    let path = "/tmp/tb-agent-pageout-\(getpid())-\(byte)"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    unlink(path)
    let content = [UInt8](repeating: byte, count: size)
    guard content.withUnsafeBytes({ write(fd, $0.baseAddress, size) }) == size, fsync(fd) == 0,
          let readOnly = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), readOnly != MAP_FAILED,
          let writable = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), writable != MAP_FAILED
    else { return nil }
    return (readOnly, writable)
}
