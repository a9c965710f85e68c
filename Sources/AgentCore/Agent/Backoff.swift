/// Exponential backoff with full jitter: the n-th retry waits a uniformly random time in
/// `0 ... min(cap, base × 2ⁿ)`, so that a thousand boards that lost power together do not reconnect in step
/// (AWS Architecture Blog, "Exponential Backoff And Jitter"). A connection that held for `stableAfter` resets it.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration
    public private(set) var attempt: Int = 0

    public init(base: Duration = .seconds(1), cap: Duration = .seconds(300)) {
        self.base = base
        self.cap = max(cap, base)
    }

    /// The ceiling of the next delay (before jitter).
    public var ceiling: Duration {
        // base × 2^attempt, without overflowing: past 2^20 the cap has long been reached.
        let factor = Int64(1) << Int64(min(self.attempt, 20))
        let scaled = self.base * factor
        return min(scaled, self.cap)
    }

    /// The next delay, drawn from `0 ... ceiling`, and one more attempt counted.
    public mutating func next(using random: inout some RandomNumberGenerator) -> Duration {
        let ceiling = self.ceiling
        self.attempt += 1
        let nanos = ceiling.nanoseconds
        guard nanos > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanos, using: &random))
    }

    public mutating func reset() { self.attempt = 0 }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled + attoseconds / 1_000_000_000
    }

    /// Whole milliseconds (saturating).
    public var milliseconds: Int64 { self.nanoseconds / 1_000_000 }
}

/// A small, fast, seedable generator (SplitMix64) for tests and simulations that must repeat exactly.
/// Production code uses `SystemRandomNumberGenerator`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { self.state = seed }
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
