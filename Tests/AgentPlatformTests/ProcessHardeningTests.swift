import AgentPlatform
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

    /// The dumpable flag is what keeps secrets out of core dumps and away from ptrace.
    @Test func makeNonDumpableClearsTheDumpableFlag() {
        #expect(ProcessHardening.makeNonDumpable())
        #expect(!ProcessHardening.isDumpable)
    }
}
