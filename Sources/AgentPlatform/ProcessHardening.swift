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

    /// Whether the process may be dumped (or attached to by its user): false after `makeNonDumpable()`.
    public static var isDumpable: Bool { tb_prctl_get_dumpable() == 1 }
}
