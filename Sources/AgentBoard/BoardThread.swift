import AgentCore
import AgentGPIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A dedicated OS thread for a loop that blocks in `poll` (a line watcher, the LED).
///
/// Blocking calls must not run on Swift's cooperative pool, which has one thread per core (two on the boards this
/// targets): one blocked watcher would halve the agent.
final class BoardThread: Sendable {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private let thread: Mutex<pthread_t?>

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () -> Void) throws(AgentError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            guard let context else { return nil }
            Unmanaged<Body>.fromOpaque(context).takeRetainedValue().run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(context).release()
            throw AgentError(.hardwareUnavailable, "cannot start a thread: \(String(cString: strerror(rc)))")
        }
        self.thread = Mutex(thread)
    }

    /// Waits for the thread to end (at most once; a no-op on the thread itself).
    func join() {
        let thread = self.thread.withLock { thread -> pthread_t? in
            defer { thread = nil }
            return thread
        }
        guard let thread else { return }
        if pthread_equal(thread, pthread_self()) != 0 {
            pthread_detach(thread)
            return
        }
        pthread_join(thread, nil)
    }

    deinit {
        if let thread = self.thread.withLock({ $0 }) { pthread_detach(thread) }
    }
}

/// A pipe whose read end polls readable after `wake()`: how another thread interrupts a `poll`.
final class WakePipe: Sendable {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws(AgentError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw AgentError(.hardwareUnavailable, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.readEnd = fds[0]
        self.writeEnd = fds[1]
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(self.writeEnd, &byte, 1)
    }

    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(self.readEnd, $0.baseAddress, $0.count) }) > 0 {}
    }

    deinit {
        close(self.readEnd)
        close(self.writeEnd)
    }
}

enum BoardPoll {
    /// Which of the descriptors polled readable (or hung up); empty after the timeout. `until` is a time on the
    /// monotonic clock; nil waits without a timeout.
    static func wait(_ descriptors: [Int32], until deadline: Duration?) -> Set<Int32> {
        var fds = descriptors.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var timeout: Int32 = -1
        if let deadline {
            let remaining = deadline - MonotonicClock.now()
            if remaining <= .zero {
                timeout = 0
            } else {
                let (seconds, attoseconds) = remaining.components
                // Round up: waking a little late is harmless; early would spin until the deadline.
                let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
                timeout = Int32(clamping: millis)
            }
        }
        let rc = poll(&fds, nfds_t(fds.count), timeout)
        guard rc > 0 else { return [] }
        return Set(fds.filter { $0.revents != 0 }.map(\.fd))
    }
}
