import Synchronization

/// Events from any thread to the one task that handles them, oldest first: a ring of events under a lock and at
/// most one waiting continuation.
///
/// Adding an event takes the lock once, starts no task and, once the ring has grown to the load, allocates
/// nothing; it resumes the consumer only when the consumer is waiting, so events that arrive while it works cost
/// no wake-up. The consumer takes events one at a time (`next()`) and waits (`wait()`) only when none is left.
///
/// An event added as not `urgent` (a PUBACK while the window still has PUBLISHes in flight) takes its place in
/// line like any other but does not wake the consumer by itself: the consumer is woken by the next urgent event, or
/// once as many non-urgent ones wait as it said when it began to wait (`wait(quietLimit:)`). Each wake-up is a
/// thread hop, the largest cost of a PUBACK; this way one serves several.
///
/// Events added as `limited` (a server's messages) are bounded: at most `limit` of them wait at once, and adding
/// one more is refused (`.full`; the caller counts it). Other events (acknowledgements, readings, timers) are
/// never refused while the queue is open: losing one would lose a reading or a PUBACK.
///
/// `close()` ends the queue: later events are refused (`.closed`), those already queued are still taken, and
/// then `wait()` returns false. Cancelling the task that waits closes the queue too.
public final class EventQueue<Event: Sendable>: Sendable {
    public enum Outcome: Sendable, Equatable {
        case queued
        /// A limited event beyond the limit: not queued.
        case full
        /// The queue is closed: not queued.
        case closed
    }

    struct Entry {
        var event: Event
        var limited: Bool
        var urgent: Bool
    }

    /// A growable ring buffer; its capacity is a power of two.
    struct Ring {
        private var slots: [Entry?] = []
        private var head = 0
        private(set) var count = 0

        var capacity: Int { self.slots.count }

        mutating func append(_ entry: Entry) {
            if self.count == self.slots.count { self.grow() }
            self.slots[(self.head &+ self.count) & (self.slots.count &- 1)] = entry
            self.count += 1
        }

        mutating func popFirst() -> Entry? {
            guard self.count > 0 else { return nil }
            let entry = self.slots[self.head].take()
            self.head = (self.head &+ 1) & (self.slots.count &- 1)
            self.count -= 1
            if self.count == 0 {
                self.head = 0
                // A burst grew the ring: give the memory back once it has drained.
                if self.slots.count > Self.keptCapacity { self.slots = [] }
            }
            return entry
        }

        /// Emptied rings up to this size are kept for the next events.
        static var keptCapacity: Int { 256 }

        private mutating func grow() {
            let old = self.slots.count
            var slots = [Entry?](repeating: nil, count: max(16, old * 2))
            for i in 0..<self.count { slots[i] = self.slots[(self.head &+ i) & (old &- 1)].take() }
            self.slots = slots
            self.head = 0
        }
    }

    struct State {
        var ring = Ring()
        /// Limited events in the ring.
        var limitedWaiting = 0
        /// Events in the ring that were added as not urgent.
        var quietWaiting = 0
        var waiter: UnsafeContinuation<Void, Never>? = nil
        /// The waiter's `quietLimit`.
        var waiterQuietLimit = 1
        var closed = false

        /// True (events to take now), false (closed and empty), nil (wait).
        func ready(quietLimit: Int) -> Bool? {
            if self.ring.count > self.quietWaiting || (self.quietWaiting > 0 && self.quietWaiting >= quietLimit) { return true }
            if self.closed { return self.ring.count > 0 }
            return nil
        }
    }

    /// At most this many limited events wait at once.
    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int = .max) {
        self.limit = max(0, limit)
    }

    /// Adds `event` after every event added before it (from any thread), and wakes the consumer if it waits (for a
    /// non-`urgent` event, only if enough of them wait now).
    @discardableResult
    public func append(_ event: Event, limited: Bool = false, urgent: Bool = true) -> Outcome {
        // The waiter is resumed once: whoever takes it out of the state under the lock resumes it, after unlocking.
        let (outcome, waiter): (Outcome, UnsafeContinuation<Void, Never>?) = self.state.withLock { state in
            guard !state.closed else { return (.closed, nil) }
            if limited {
                guard state.limitedWaiting < self.limit else { return (.full, nil) }
                state.limitedWaiting += 1
            }
            state.ring.append(Entry(event: event, limited: limited, urgent: urgent))
            if !urgent { state.quietWaiting += 1 }
            guard urgent || state.quietWaiting >= state.waiterQuietLimit else { return (.queued, nil) }
            let waiter = state.waiter
            state.waiter = nil
            return (.queued, waiter)
        }
        waiter?.resume()
        return outcome
    }

    /// The oldest event, taken out of the queue; nil when there is none. Never waits.
    public func next() -> Event? {
        self.state.withLock { state in
            guard let entry = state.ring.popFirst() else { return nil }
            if entry.limited { state.limitedWaiting -= 1 }
            if !entry.urgent { state.quietWaiting -= 1 }
            return entry.event
        }
    }

    /// Waits until there are events to take (true) or the queue is closed and empty (false): an urgent event, or
    /// `quietLimit` non-urgent ones (fewer wait in line, untaken, until then). For the one task that consumes the
    /// queue: two tasks waiting at once is a programming error. Cancelling the task closes the queue.
    public func wait(quietLimit: Int = 1) async -> Bool {
        let quietLimit = max(1, quietLimit)
        if let ready = self.state.withLock({ $0.ready(quietLimit: quietLimit) }) { return ready }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state in
                    if state.ready(quietLimit: quietLimit) != nil { return true }
                    precondition(state.waiter == nil, "EventQueue: a second task waits on the same queue")
                    state.waiter = continuation
                    state.waiterQuietLimit = quietLimit
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.close()
        }
        // Woken by events, by close() or by cancellation (which closed the queue).
        return self.state.withLock { $0.ring.count > 0 || !$0.closed }
    }

    /// Refuses events from now on; those queued are still taken, then `wait()` returns false.
    public func close() {
        let waiter: UnsafeContinuation<Void, Never>? = self.state.withLock { state in
            state.closed = true
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// How many events wait (for tests and figures).
    public var count: Int { self.state.withLock { $0.ring.count } }

    /// True while the consumer is suspended in `wait()` (for tests).
    public var consumerIsWaiting: Bool { self.state.withLock { $0.waiter != nil } }
}
