import TBJSON

/// Gives readings their timestamps, or holds them while the wall clock cannot be trusted (`ClockSanity`).
///
/// The stamp is the wall clock now less the readings' age on the monotonic clock: a loop that gets to readings late
/// must not give five rounds of a 100 ms sensor one timestamp (ThingsBoard keeps one value per key and timestamp),
/// and a wall clock set between taking and recording (NTP's first answer) is not trusted before it is. Held
/// readings keep their monotonic time and are stamped, oldest first, once the clock is plausible; beyond `limit`
/// the oldest are dropped and counted.
public struct ReadingStamper: Sendable {
    public struct Held: Sendable, Equatable {
        public var taken: Duration
        public var key: String
        public var value: JSONValue
    }

    public enum Notice: Sendable, Equatable {
        /// The clock reads before `floor` (ms since the epoch): readings are held from now on.
        case holding(floor: Int64)
        /// A synchronised clock read before the stored floor: the floor was wrong and is lowered.
        case floorCorrected
    }

    public private(set) var sanity: ClockSanity
    public let limit: Int
    public private(set) var held: [Held] = []
    /// Held readings dropped because more than `limit` waited.
    public private(set) var dropped: UInt64 = 0
    /// The newest timestamp given: each group gets a later one, so that no two rounds share a timestamp even when
    /// the loop was preempted between reading the monotonic clock and the wall clock (ThingsBoard would keep one).
    public private(set) var lastStamp: Int64 = .min

    public init(sanity: ClockSanity, limit: Int = 10_000) {
        self.sanity = sanity
        self.limit = max(1, limit)
    }

    public var isHolding: Bool { !self.held.isEmpty }

    /// The timestamp of a reading taken at monotonic `taken` when it can be stored at once (the wall clock is
    /// plausible and no reading is held): what `stamp` gives it, without the groups around it (a digital input's
    /// change, the usual case). Nil otherwise, having changed nothing: then `stamp` it.
    public mutating func stampNow(taken: Duration, now: Duration, wall: Int64) -> Int64? {
        guard self.held.isEmpty, self.sanity.isPlausible(wall) else { return nil }
        let ts = self.unique(ClockSanity.rebase(monotonicTaken: min(taken, now), monotonicNow: now, wallNow: wall))
        self.sanity.observeStored(min(ts, wall))
        return ts
    }

    /// Stamps `values` taken at monotonic `taken`. Returns the readings to store now, one group per time they were
    /// taken, oldest first (held ones before these), or nothing while the clock is not plausible; `synchronized`
    /// is asked only when the clock looks wrong (it is a system call).
    public mutating func stamp(
        _ values: [(String, JSONValue)], taken: Duration, now: Duration, wall: Int64, synchronized: () -> Bool
    ) -> (groups: [[Reading]], notices: [Notice]) {
        guard !values.isEmpty else { return ([], []) }
        let taken = min(taken, now)
        var notices: [Notice] = []
        if !self.sanity.isPlausible(wall), synchronized(), self.sanity.correct(to: wall) {
            notices.append(.floorCorrected)
        }
        guard self.sanity.isPlausible(wall) else {
            if self.held.isEmpty { notices.append(.holding(floor: self.sanity.floor)) }
            self.held += values.map { Held(taken: taken, key: $0.0, value: $0.1) }
            if self.held.count > self.limit {
                let excess = self.held.count - self.limit
                self.held.removeFirst(excess)
                self.dropped += UInt64(excess)
            }
            return ([], notices)
        }
        var groups: [[Reading]] = []
        if !self.held.isEmpty {
            let held = self.held
            self.held = []
            for group in Dictionary(grouping: held, by: \.taken).sorted(by: { $0.key < $1.key }) {
                let ts = self.unique(ClockSanity.rebase(monotonicTaken: group.key, monotonicNow: now, wallNow: wall))
                groups.append(group.value.map { Reading(key: $0.key, value: $0.value, timestamp: ts) })
            }
        }
        let ts = self.unique(ClockSanity.rebase(monotonicTaken: taken, monotonicNow: now, wallNow: wall))
        groups.append(values.map { Reading(key: $0.0, value: $0.1, timestamp: ts) })
        // A stamp moved past the wall clock to keep stamps unique (a burst within one millisecond) says nothing
        // about the clock: the floor stays at the wall clock, or the next reading would be taken for a clock set
        // back and held (until a later reading, possibly never).
        self.sanity.observeStored(min(ts, wall))
        return (groups, notices)
    }

    /// `ts`, or one millisecond after the last timestamp given if it is not later.
    private mutating func unique(_ ts: Int64) -> Int64 {
        let stamp = self.lastStamp == .min ? ts : max(ts, self.lastStamp + 1)
        self.lastStamp = stamp
        return stamp
    }
}
