import AgentCore

#if canImport(Glibc)
import Glibc
#endif

/// The system's clocks: `ContinuousClock` (which counts suspended time too) for timers and ages, `CLOCK_REALTIME`
/// for timestamps.
public struct SystemClock: AgentClock {
    private let origin: ContinuousClock.Instant

    public init() { self.origin = ContinuousClock.now }

    public func now() -> Duration { ContinuousClock.now - self.origin }

    public func wallMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public func sleep(until deadline: Duration) async throws {
        try await Task.sleep(until: self.origin.advanced(by: deadline), clock: .continuous)
    }
}
