import AgentHost
import CProcessControl

#if canImport(Glibc)
import Glibc
#endif

/// What every tb-agent command does first, since most of them hold the provision secret or the device's
/// credentials in memory: the process is made non-dumpable (`PR_SET_DUMPABLE` 0). The kernel then writes no core
/// dump of it (one would hold the token and the secret), and other processes of the same user can neither attach
/// to it (ptrace) nor read its memory or environment through /proc/PID (the files there belong to root).
/// The systemd unit adds `LimitCORE=0`.
public enum ProcessHardening {
    /// Makes the process non-dumpable; false when the kernel refused (the command goes on: this is a safeguard).
    @discardableResult
    public static func makeNonDumpable() -> Bool {
        tb_prctl_set_dumpable(0) == 0
    }

    /// Bounds the C allocator for a process that runs for years on a board with little memory (`tb-agent run`):
    /// at most two malloc arenas, blocks of 64 KiB and more mapped on their own and returned to the kernel when
    /// freed, free memory at the top of the heap returned above 128 KiB. Without it, a flood of large server
    /// messages leaves megabytes freed but resident. False when glibc refused a setting (the agent goes on).
    @discardableResult
    public static func boundHeap() -> Bool {
        tb_malloc_bound() == 1
    }

    /// Gives back the pages of the program and its libraries that only the start touched (`tb-agent run`, once
    /// started): configuration and TOML parsing, the command line, the hardware identity, the dynamic linker's
    /// relocation tables. Every read-only mapping of a file is advised `MADV_PAGEOUT`: its clean pages that no other
    /// process maps are dropped, and whatever the agent touches again is read back from the file. Nothing can be
    /// lost: a page that differs from the file (a relocated read-only page) is anonymous memory, which
    /// `MADV_PAGEOUT` can only move to swap, and writable mappings are not touched. About 2.5 MB of a 15 MB resident
    /// set on x86_64. Returns the bytes advised (0 on a kernel older than 5.4, which refuses the advice).
    @discardableResult
    public static func releaseStartupPages(maps: String = "/proc/self/maps") -> Int {
        guard case .success(let bytes) = POSIXFile.read(maps, limit: 4 << 20) else { return 0 }
        var advised = 0
        for range in Self.readOnlyFileMappings(String(decoding: bytes, as: UTF8.self)) {
            guard let start = UnsafeMutableRawPointer(bitPattern: range.start) else { continue }
            let length = Int(range.end - range.start)
            if tb_madvise_pageout(start, length) == 0 { advised += length }
        }
        return advised
    }

    /// The mappings of a `/proc/PID/maps` text that are backed by a file and not writable.
    public static func readOnlyFileMappings(_ maps: String) -> [(start: UInt, end: UInt)] {
        var out: [(start: UInt, end: UInt)] = []
        for line in maps.split(separator: "\n") {
            // start-end perms offset dev inode [path], the path padded with spaces (and a path may hold some)
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[4] != "0", fields[5].first == "/",
                  fields[1].count == 4, fields[1].dropFirst().first == "-" else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                  end > start else { continue }
            out.append((start, end))
        }
        return out
    }

    /// Whether the process may be dumped (or attached to by its user): false after `makeNonDumpable()`.
    public static var isDumpable: Bool { tb_prctl_get_dumpable() == 1 }
}
