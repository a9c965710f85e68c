/// Whether the wall clock can be trusted to stamp readings. A board without a real-time clock boots in 1970
/// (or at the last time fake-hwclock saved) until NTP answers; the kernel's "synchronised" flag is not enough,
/// since containers and boards without network time never set it. The clock is taken as unsynchronised while
/// it reads earlier than the agent's build time or than the newest timestamp the agent has stored.
public struct ClockSanity: Sendable, Equatable {
    /// Milliseconds since the epoch below which the clock is certainly wrong (the agent's build time).
    public var floor: Int64

    public init(buildTime: Int64, newestStored: Int64? = nil) {
        self.floor = max(buildTime, newestStored ?? 0)
    }

    public func isPlausible(_ now: Int64) -> Bool { now >= self.floor }

    /// Remembers a newer stored timestamp (the clock must not go back behind it either).
    public mutating func observeStored(_ timestamp: Int64) { self.floor = max(self.floor, timestamp) }

    /// Readings taken while the clock was wrong carry the monotonic time they were taken at; once the clock is
    /// plausible, they are rebased: wall = now − (monotonicNow − monotonicTaken).
    public static func rebase(monotonicTaken: Duration, monotonicNow: Duration, wallNow: Int64) -> Int64 {
        wallNow - (monotonicNow - monotonicTaken).milliseconds
    }
}
