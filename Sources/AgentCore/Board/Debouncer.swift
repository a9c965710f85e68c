/// Turns a bouncing line into clean level changes: a new level counts only once the line has held it, without
/// any edge, for the whole `window`.
///
/// This waits for a stable level; it is not a rate limit that drops edges inside a window after the first one
/// (which reports the first bounce and can miss the final level). A 2 ms burst of bounces on a 20 ms window gives
/// exactly one change, stamped with the time of the last edge, which is when the line became stable.
///
/// A state machine with no clock of its own: feed it edges (`edge(_:)`) and the time now (`tick(now:)`); both
/// return the changes to report, and `deadline` says when to call `tick` next. Timestamps are on one monotonic
/// clock (the kernel's event clock).
public struct Debouncer: Sendable {
    /// A debounced change: the new level and the time the line settled at it.
    public typealias Change = EdgeEvent

    public let window: Duration
    /// The debounced level.
    public private(set) var level: LineLevel
    /// The raw level last seen, and since when.
    public private(set) var rawLevel: LineLevel
    public private(set) var rawSince: Duration

    /// - Parameters:
    ///   - initial: the level read when the line was requested.
    ///   - time: when it was read.
    ///   - window: how long a level must hold to count (zero reports every edge).
    public init(initial: LineLevel, at time: Duration, window: Duration) {
        self.window = max(window, .zero)
        self.level = initial
        self.rawLevel = initial
        self.rawSince = time
    }

    /// When the pending level (if any) becomes stable; nil when nothing is pending.
    public var deadline: Duration? {
        self.rawLevel == self.level ? nil : self.rawSince + self.window
    }

    /// Feeds one raw edge; returns the change it settles, if any.
    ///
    /// A pending level that had already held for the whole window before this edge is reported first: late
    /// delivery of events never turns a real change into a bounce. Two edges reporting the same level mean one
    /// edge in between was missed, so the level was not stable: the wait restarts either way.
    public mutating func edge(_ event: EdgeEvent) -> [Change] {
        var changes = self.settle(atOrBefore: event.timestamp)
        self.rawLevel = event.level
        self.rawSince = max(event.timestamp, self.rawSince)
        if self.window == .zero, self.rawLevel != self.level {
            self.level = self.rawLevel
            changes.append(Change(level: self.level, timestamp: self.rawSince))
        }
        return changes
    }

    /// Feeds the time now; returns the change that has become stable, if any.
    public mutating func tick(now: Duration) -> [Change] {
        self.settle(atOrBefore: now)
    }

    private mutating func settle(atOrBefore time: Duration) -> [Change] {
        guard let deadline = self.deadline, deadline <= time else { return [] }
        return self.accept()
    }

    private mutating func accept() -> [Change] {
        self.level = self.rawLevel
        return [Change(level: self.level, timestamp: self.rawSince)]
    }
}
