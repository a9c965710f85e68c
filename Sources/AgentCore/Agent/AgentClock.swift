/// The time the run loop sees: a monotonic clock for timers and ages, the wall clock for timestamps, and a way to
/// wait. The system implements it with `CLOCK_MONOTONIC`/`CLOCK_REALTIME`; tests drive a manual clock
/// (`ManualClock`, AgentSimulated) and step it, forward or, for the wall clock, back.
public protocol AgentClock: Sendable {
    /// Monotonic time since an arbitrary origin.
    func now() -> Duration
    /// Milliseconds since the Unix epoch, as the system clock says (it may be wrong, or step).
    func wallMilliseconds() -> Int64
    /// The kernel says the wall clock is synchronised (NTP): then it is trusted even when it reads earlier than the
    /// newest stored timestamp (which a clock once set wrong into the future left behind).
    func isSynchronized() -> Bool
    /// Returns once `now() >= deadline`, or throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Duration) async throws
}

/// Where the newest stored timestamp survives restarts (`ClockFloorFile`): the clock must not read earlier.
public protocol ClockFloorKeeping: Sendable {
    func load() -> Int64?
    func save(_ milliseconds: Int64) throws(AgentError)
}
