/// When to read which sensors, with at most one read in flight.
///
/// Sensors that share an interval form one group, read together and sent as one entry (one timestamp). Each group
/// keeps its rhythm on a fixed grid whatever a read costs. A group that falls due while a read is under way, and
/// every on-demand request (the `sampleNow` RPC), is merged into one pending request: a burst of a thousand RPCs
/// costs one extra read, not a thousand.
public struct SamplingSchedule: Sendable, Equatable {
    /// Which sensors to read.
    public enum Request: Sendable, Equatable {
        case all
        /// Sorted, without duplicates.
        case names([String])

        /// The sensor names, nil for all.
        public var names: [String]? {
            if case .names(let names) = self { return names }
            return nil
        }

        public func merged(with other: Request) -> Request {
            switch (self, other) {
            case (.names(let a), .names(let b)): return .names(Array(Set(a + b)).sorted())
            default: return .all
            }
        }
    }

    /// Sensor names by interval.
    public private(set) var groups: [Duration: [String]] = [:]
    private var due: [Duration: Duration] = [:]
    public private(set) var inFlight = false
    public private(set) var pending: Request? = nil
    /// Requests merged into one already pending (for the figures).
    public private(set) var coalesced: UInt64 = 0

    public init() {}

    /// Sets the groups (interval → sensor names). A group that is new or changed is due now; an unchanged one
    /// keeps its grid. Returns false when nothing changed.
    public mutating func configure(_ groups: [Duration: [String]], now: Duration) -> Bool {
        let normalized = groups.filter { !$0.value.isEmpty }.mapValues { $0.sorted() }
        guard normalized != self.groups else { return false }
        var due: [Duration: Duration] = [:]
        for (interval, names) in normalized {
            due[interval] = self.groups[interval] == names ? (self.due[interval] ?? now) : now
        }
        self.groups = normalized
        self.due = due
        return true
    }

    /// When the next group falls due.
    public var nextDeadline: Duration? { self.due.values.min() }

    /// The groups due at `now` move to their next slot; returns the read to start now, or nil (none due, or a
    /// read under way: then it is pending).
    public mutating func tick(now: Duration) -> Request? {
        var request: Request? = nil
        for (interval, deadline) in self.due where deadline <= now {
            var next = deadline + interval
            if next <= now { next = now + interval }  // late (a busy loop, a suspended board): skip, keep the rhythm
            self.due[interval] = next
            let names = Request.names(self.groups[interval] ?? [])
            request = request.map { $0.merged(with: names) } ?? names
        }
        guard let request else { return nil }
        return self.start(request)
    }

    /// An on-demand read of every sensor: the read to start now, or nil when merged into the pending one.
    public mutating func requestAll() -> Request? { self.start(.all) }

    /// The read under way finished: returns the pending read, which starts now.
    public mutating func finished() -> Request? {
        self.inFlight = false
        guard let pending = self.pending else { return nil }
        self.pending = nil
        self.inFlight = true
        return pending
    }

    private mutating func start(_ request: Request) -> Request? {
        guard self.inFlight else {
            self.inFlight = true
            return request
        }
        if self.pending != nil { self.coalesced += 1 }
        self.pending = self.pending.map { $0.merged(with: request) } ?? request
        return nil
    }
}
