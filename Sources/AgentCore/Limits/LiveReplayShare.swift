/// Live telemetry (readings taken since the session came up) and replay (the backlog spooled while offline) share
/// one rate budget. Replay must never starve live readings: while both wait, live gets at least `liveShare` of the
/// data points sent; while only one waits it gets everything; and replay leaves `reserve` of each token bucket
/// unspent, so that a live reading that arrives while the backlog drains finds tokens waiting.
///
/// Weighted fair queueing by data points: each source's spending divided by its weight; the one behind goes next.
/// A source that has nothing waiting banks no credit (its count catches up with the other's when it comes back).
public struct LiveReplayShare: Sendable, Equatable {
    public enum Source: Sendable, Equatable { case live, replay }

    /// Live's share of the data points while both wait (0 < share < 1).
    public let liveShare: Double
    /// The share of each bucket's capacity replay leaves unspent (`RateLimiter.decision(…reserve:)`).
    public let reserve: Double
    /// Data points spent, divided by each source's weight.
    public private(set) var liveUsage: Double = 0
    public private(set) var replayUsage: Double = 0

    public init(liveShare: Double = 0.5, reserve: Double = 0.25) {
        self.liveShare = min(max(liveShare, 0.05), 0.95)
        self.reserve = min(max(reserve, 0), 0.9)
    }

    /// Which source sends next; nil when neither has anything waiting.
    public mutating func next(liveWaiting: Bool, replayWaiting: Bool) -> Source? {
        switch (liveWaiting, replayWaiting) {
        case (false, false): return nil
        case (true, false):
            self.replayUsage = max(self.replayUsage, self.liveUsage)
            return .live
        case (false, true):
            self.liveUsage = max(self.liveUsage, self.replayUsage)
            return .replay
        case (true, true):
            return self.liveUsage <= self.replayUsage ? .live : .replay
        }
    }

    /// The reserve to ask the rate limiter with for `source`.
    public func reserve(for source: Source) -> Double { source == .live ? 0 : self.reserve }

    /// `source` sent a PUBLISH of `dataPoints` (a message without data points counts as one).
    public mutating func charge(_ source: Source, dataPoints: Int) {
        let cost = Double(max(1, dataPoints))
        switch source {
        case .live: self.liveUsage += cost / self.liveShare
        case .replay: self.replayUsage += cost / (1 - self.liveShare)
        }
        // Keep the numbers small: only the difference matters.
        let floor = min(self.liveUsage, self.replayUsage)
        if floor > 1e9 {
            self.liveUsage -= floor
            self.replayUsage -= floor
        }
    }
}
