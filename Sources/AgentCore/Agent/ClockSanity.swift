/// Whether the wall clock can be trusted to stamp readings. A board without a real-time clock boots in 1970
/// (or at the last time fake-hwclock saved) until NTP answers; the kernel's "synchronised" flag is not enough,
/// since containers and boards without network time never set it. The clock is taken as unsynchronised while
/// it reads earlier than the agent's build time or than the newest timestamp the agent has stored (kept across
/// restarts in `state_dir/clock-floor`). A clock the kernel reports synchronised (NTP) is trusted from the build
/// time on: otherwise a clock once set wrong into the future would leave a floor that holds readings for years.
public struct ClockSanity: Sendable, Equatable {
    /// The agent's build time: earlier is certainly wrong.
    public let buildTime: Int64
    /// Milliseconds since the epoch below which an unsynchronised clock is taken as wrong.
    public private(set) var floor: Int64

    public init(buildTime: Int64, newestStored: Int64? = nil) {
        self.buildTime = buildTime
        self.floor = max(buildTime, newestStored ?? 0)
    }

    public func isPlausible(_ now: Int64, synchronized: Bool = false) -> Bool {
        now >= (synchronized ? self.buildTime : self.floor)
    }

    /// A synchronised clock that reads earlier than the floor: the floor was wrong (left by a clock set into the
    /// future). It drops to `now`; returns true when it did.
    public mutating func correct(to now: Int64) -> Bool {
        guard now >= self.buildTime, now < self.floor else { return false }
        self.floor = now
        return true
    }

    /// Remembers a newer stored timestamp (the clock must not go back behind it either).
    public mutating func observeStored(_ timestamp: Int64) { self.floor = max(self.floor, timestamp) }

    /// Readings taken while the clock was wrong carry the monotonic time they were taken at; once the clock is
    /// plausible, they are rebased: wall = now − (monotonicNow − monotonicTaken).
    public static func rebase(monotonicTaken: Duration, monotonicNow: Duration, wallNow: Int64) -> Int64 {
        wallNow - (monotonicNow - monotonicTaken).milliseconds
    }
}
