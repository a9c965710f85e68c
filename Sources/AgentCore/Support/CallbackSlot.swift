import Synchronization

/// A callback set once and called from any thread, many times: how a C library's thread hands events to Swift.
///
/// Not `Mutex<(@Sendable (Argument) -> Void)?>`: reading a closure out of a `Mutex` through `withLock { $0 }` writes
/// it back re-abstracted, wrapped in two more reabstraction thunks, on every call (Swift 6.2 and 6.3, debug and
/// release). The chain grows by one link per event: each call walks it (quadratic time) and, near 100,000 events,
/// overflows the calling thread's stack. Measured on the agent: 20,000 server messages left 1.9 MB of the network
/// thread's stack in use. Held in a struct, the closure is copied as it is.
public final class CallbackSlot<Argument: Sendable>: Sendable {
    private struct Stored: Sendable {
        let call: @Sendable (Argument) -> Void
    }

    private let stored = Mutex<Stored?>(nil)

    public init() {}

    /// Sets (or replaces) the callback.
    public func set(_ call: @escaping @Sendable (Argument) -> Void) {
        self.stored.withLock { $0 = Stored(call: call) }
    }

    public var isSet: Bool { self.stored.withLock { $0 != nil } }

    /// Calls the callback, outside the lock; false when none is set.
    @discardableResult
    public func callAsFunction(_ argument: Argument) -> Bool {
        guard let stored = self.stored.withLock({ $0 }) else { return false }
        stored.call(argument)
        return true
    }
}
