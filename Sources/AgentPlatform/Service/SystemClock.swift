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

    public func isSynchronized() -> Bool { Self.kernelClockSynchronized() }

    /// adjtimex(2) with modes 0 reads the kernel's clock state; TIME_ERROR (5) means unsynchronised. Glibc's Swift
    /// module does not export <sys/timex.h>, so the call goes through dlsym with the C calling convention and a
    /// zeroed buffer larger than `struct timex` (208 bytes on x86_64 and aarch64).
    static func kernelClockSynchronized() -> Bool {
        typealias AdjTimeX = @convention(c) (UnsafeMutableRawPointer) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "adjtimex") else { return false }
        let adjtimex = unsafeBitCast(symbol, to: AdjTimeX.self)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 512)
        let state = adjtimex(buffer)
        return state >= 0 && state != 5
    }

    public func sleep(until deadline: Duration) async throws {
        try await Task.sleep(until: self.origin.advanced(by: deadline), clock: .continuous)
    }
}
