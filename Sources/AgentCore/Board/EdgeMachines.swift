/// A state machine driven by a line's raw edges and the time: what a line watcher runs on its thread.
///
/// `deadline` tells the watcher when to call `tick` at the latest; between deadlines it sleeps until an edge.
public protocol EdgeMachine: Sendable {
    associatedtype Output: Sendable
    mutating func edge(_ event: EdgeEvent) -> [Output]
    mutating func tick(now: Duration) -> [Output]
    var deadline: Duration? { get }
}

extension Debouncer: EdgeMachine {
    public typealias Output = EdgeEvent
}

/// A debounced line that also reports its raw edges (`tb-agent gpio watch --raw`).
public struct WatchedLine: EdgeMachine {
    public enum Output: Sendable, Equatable {
        /// A raw edge as the kernel reported it.
        case edge(EdgeEvent)
        /// A debounced change.
        case change(EdgeEvent)
    }

    public private(set) var debouncer: Debouncer
    public let reportsRawEdges: Bool

    public init(initial: LineLevel, at time: Duration, debounce: Duration, reportRawEdges: Bool) {
        self.debouncer = Debouncer(initial: initial, at: time, window: debounce)
        self.reportsRawEdges = reportRawEdges
    }

    public mutating func edge(_ event: EdgeEvent) -> [Output] {
        let changes = self.debouncer.edge(event)
        // In time order: a change that settled before this edge, the edge, then the change it makes at once
        // (with no debounce window).
        let before = changes.filter { $0.timestamp < event.timestamp }.map(Output.change)
        let after = changes.filter { $0.timestamp >= event.timestamp }.map(Output.change)
        return before + (self.reportsRawEdges ? [.edge(event)] : []) + after
    }

    public mutating func tick(now: Duration) -> [Output] { self.debouncer.tick(now: now).map(Output.change) }
    public var deadline: Duration? { self.debouncer.deadline }
}

/// The re-provision button: debounce, then long-press detection.
public struct ButtonWatch: EdgeMachine {
    public enum Output: Sendable, Equatable {
        case change(EdgeEvent)
        case button(LongPressDetector.Event)
    }

    public private(set) var debouncer: Debouncer
    public private(set) var detector: LongPressDetector
    /// What the detector said when watching started (a button pressed at start is ignored).
    public let startEvents: [LongPressDetector.Event]

    /// - Parameter initial: the logical level when watching starts (`.high` = pressed).
    public init(initial: LineLevel, at time: Duration, debounce: Duration, hold: Duration, stuckAfter: Duration? = nil) {
        self.debouncer = Debouncer(initial: initial, at: time, window: debounce)
        var detector = LongPressDetector(hold: hold, stuckAfter: stuckAfter)
        self.startEvents = detector.start(pressed: initial.isHigh, at: time)
        self.detector = detector
    }

    public mutating func edge(_ event: EdgeEvent) -> [Output] {
        var outputs: [Output] = []
        for change in self.debouncer.edge(event) {
            outputs += self.changed(change)
        }
        // The detector's own deadline (the threshold) may have passed before this edge arrived.
        outputs += self.detector.tick(now: event.timestamp).map(Output.button)
        return outputs
    }

    public mutating func tick(now: Duration) -> [Output] {
        var outputs: [Output] = []
        for change in self.debouncer.tick(now: now) {
            outputs += self.changed(change)
        }
        outputs += self.detector.tick(now: now).map(Output.button)
        return outputs
    }

    private mutating func changed(_ change: EdgeEvent) -> [Output] {
        // Threshold first: a press that lasted past `hold` reports "held" before its release.
        var outputs = self.detector.tick(now: change.timestamp).map(Output.button)
        outputs.append(.change(change))
        outputs += self.detector.buttonChanged(pressed: change.level.isHigh, at: change.timestamp).map(Output.button)
        return outputs
    }

    public var deadline: Duration? {
        switch (self.debouncer.deadline, self.detector.deadline) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    public var feedback: LongPressDetector.Feedback { self.detector.feedback }
}

/// A pulse counter's line: counts debounced rising edges (the line going active).
public struct CounterWatch: EdgeMachine {
    public typealias Output = EdgeEvent

    public private(set) var debouncer: Debouncer

    public init(initial: LineLevel, at time: Duration, debounce: Duration) {
        self.debouncer = Debouncer(initial: initial, at: time, window: debounce)
    }

    public mutating func edge(_ event: EdgeEvent) -> [EdgeEvent] { self.debouncer.edge(event).filter(\.level.isHigh) }
    public mutating func tick(now: Duration) -> [EdgeEvent] { self.debouncer.tick(now: now).filter(\.level.isHigh) }
    public var deadline: Duration? { self.debouncer.deadline }
}
