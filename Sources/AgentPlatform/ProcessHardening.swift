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

    /// Whether the process may be dumped (or attached to by its user): false after `makeNonDumpable()`.
    public static var isDumpable: Bool { tb_prctl_get_dumpable() == 1 }
}
