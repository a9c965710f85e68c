import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A thread that can be waited for (Foundation's `Thread` cannot be joined).
///
/// For the test servers' loops that block on a descriptor: the owner wakes the loop (`shutdown`), joins the thread,
/// and only then closes the descriptor. Closing first frees the number while the thread may still be on its way
/// back into `accept` or `recv`; the kernel hands the lowest free number to the next socket opened, often the next
/// test's listener, and the stopped server's thread then serves that one.
public final class JoinableThread: Sendable {
    /// What the new thread runs and where it says it is done; retained by the thread until it ends.
    private final class Start: Sendable {
        let body: @Sendable () -> Void
        let finished = Atomic<Bool>(false)
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    private let start: Start
    private let thread: Mutex<pthread_t?>

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () -> Void) throws {
        let start = Start(body)
        let context = Unmanaged.passRetained(start).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            let start = Unmanaged<Start>.fromOpaque(context).takeRetainedValue()
            start.body()
            start.finished.store(true, ordering: .releasing)
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            throw TestSupportError("pthread_create failed: \(String(cString: strerror(rc)))")
        }
        self.start = start
        self.thread = Mutex(thread)
    }

    /// True once the body has returned.
    public var isFinished: Bool { self.start.finished.load(ordering: .acquiring) }

    /// Waits until the body has returned (the first call; later ones return at once).
    public func join() {
        let thread = self.thread.withLock { thread -> pthread_t? in
            defer { thread = nil }
            return thread
        }
        guard let thread else { return }
        precondition(pthread_equal(thread, pthread_self()) == 0, "a thread cannot join itself")
        pthread_join(thread, nil)
    }

    deinit {
        if let thread = self.thread.withLock({ $0 }) { pthread_detach(thread) }
    }
}
