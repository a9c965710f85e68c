/// The time the run loop sees: a monotonic clock for timers and ages, the wall clock for timestamps, and a way to
/// wait. The system implements it with `CLOCK_MONOTONIC`/`CLOCK_REALTIME`; tests drive a manual clock
/// (`ManualClock`, AgentSimulated) and step it, forward or, for the wall clock, back.
public protocol AgentClock: Sendable {
    /// Monotonic time since an arbitrary origin.
    func now() -> Duration
    /// Milliseconds since the Unix epoch, as the system clock says (it may be wrong, or step).
    func wallMilliseconds() -> Int64
    /// Returns once `now() >= deadline`, or throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Duration) async throws
}
