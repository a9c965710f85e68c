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
/// Events added as `limited` (a server's messages) are bounded: at most `limit` of them wait at once, their `cost`
/// (bytes) adds up to at most `costLimit`, and adding one more is refused (`.full`; the caller counts it). Other events (acknowledgements, readings, timers) are
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
        /// What a limited event counts against `costLimit`.
        var cost: Int
    }

    /// A growable ring of entries in storage of its own: a slot holds an initialised entry exactly while it is in
    /// the ring, and entries move in and out without a copy (an array of optionals copied, checked and destroyed
    /// one on every append and take). The capacity is a power of two. Only ever used under the queue's lock.
    final class Ring {
        private var storage: UnsafeMutablePointer<Entry>
        private(set) var capacity: Int
        private var head = 0
        private(set) var count = 0

        /// The capacity a ring starts with, and goes back to once a burst has drained.
        static var initialCapacity: Int { 16 }
        /// Emptied rings up to this size are kept for the next events.
        static var keptCapacity: Int { 256 }

        init() {
            self.capacity = Self.initialCapacity
            self.storage = .allocate(capacity: Self.initialCapacity)
        }

        deinit {
            while self.popFirst() != nil {}
            self.storage.deallocate()
        }

        func append(_ entry: consuming Entry) {
            if self.count == self.capacity { self.grow() }
            (self.storage + ((self.head &+ self.count) & (self.capacity &- 1))).initialize(to: entry)
            self.count += 1
        }

        func popFirst() -> Entry? {
            guard self.count > 0 else { return nil }
            let entry = (self.storage + self.head).move()
            self.head = (self.head &+ 1) & (self.capacity &- 1)
            self.count -= 1
            if self.count == 0 {
                self.head = 0
                if self.capacity > Self.keptCapacity {
                    // A burst grew the ring: give the memory back once it has drained.
                    self.storage.deallocate()
                    self.capacity = Self.initialCapacity
                    self.storage = .allocate(capacity: Self.initialCapacity)
                }
            }
            return entry
        }

        private func grow() {
            let larger = UnsafeMutablePointer<Entry>.allocate(capacity: self.capacity * 2)
            // The oldest entries run from `head` to the end of the storage, the rest from its start.
            let first = min(self.count, self.capacity - self.head)
            larger.moveInitialize(from: self.storage + self.head, count: first)
            (larger + first).moveInitialize(from: self.storage, count: self.count - first)
            self.storage.deallocate()
            self.storage = larger
            self.capacity *= 2
            self.head = 0
        }
    }

    struct State {
        let ring = Ring()
        /// Limited events in the ring.
        var limitedWaiting = 0
        /// The cost of the limited events in the ring.
        var limitedCost = 0
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
    /// The costs of the limited events waiting add up to at most this.
    public let costLimit: Int
    private let state = Mutex(State())

    public init(limit: Int = .max, costLimit: Int = .max) {
        self.limit = max(0, limit)
        self.costLimit = max(0, costLimit)
    }

    /// Adds `event` after every event added before it (from any thread), and wakes the consumer if it waits (for a
    /// non-`urgent` event, only if enough of them wait now).
    @discardableResult
    public func append(_ event: consuming Event, limited: Bool = false, cost: Int = 0, urgent: Bool = true) -> Outcome {
        let cost = limited ? max(0, cost) : 0
        var entry: Entry? = Entry(event: event, limited: limited, urgent: urgent, cost: cost)
        // The waiter is resumed once: whoever takes it out of the state under the lock resumes it, after unlocking.
        let (outcome, waiter): (Outcome, UnsafeContinuation<Void, Never>?) = self.state.withLock { state in
            guard !state.closed else { return (.closed, nil) }
            if limited {
                guard state.limitedWaiting < self.limit, cost <= self.costLimit - state.limitedCost else { return (.full, nil) }
                state.limitedWaiting += 1
                state.limitedCost += cost
            }
            state.ring.append(entry.take()!)
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
            if entry.limited {
                state.limitedWaiting -= 1
                state.limitedCost -= entry.cost
            }
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
