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

extension BoardThread {
    /// Blocks the calling thread (never call it on Swift's cooperative pool).
    static func sleep(for duration: Duration) {
        guard duration > .zero else { return }
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

/// A thread of its own that runs blocking jobs one at a time, in order (the sensor reads): the cooperative pool
/// stays free, so the loop (and with it the systemd watchdog) runs however long a read takes.
final class BoardWorker: Sendable {
    private final class Shared: Sendable {
        struct Queue {
            var jobs: [@Sendable () -> Void] = []
            var stopping = false
        }
        let queue = Mutex(Queue())
        // A counting semaphore: one post per job, one for the stop. Allocated once, destroyed in deinit.
        nonisolated(unsafe) let semaphore: UnsafeMutablePointer<sem_t>

        init() {
            self.semaphore = .allocate(capacity: 1)
            sem_init(self.semaphore, 0, 0)
        }

        deinit {
            sem_destroy(self.semaphore)
            self.semaphore.deallocate()
        }

        func run() {
            while true {
                while sem_wait(self.semaphore) != 0 && errno == EINTR {}
                let job: (@Sendable () -> Void)? = self.queue.withLock { queue in
                    queue.jobs.isEmpty ? nil : queue.jobs.removeFirst()
                }
                if let job {
                    job()
                    continue
                }
                if self.queue.withLock({ $0.stopping }) { return }
            }
        }
    }

    private let shared = Shared()
    private let thread: BoardThread
    /// At most this many jobs wait; more are refused (the caller keeps one in flight, so this is a safety net).
    let capacity: Int

    init(capacity: Int = 4) throws(AgentError) {
        let shared = self.shared
        self.capacity = capacity
        self.thread = try BoardThread { shared.run() }
    }

    /// Queues `job`; false when the queue is full or the worker is stopping (the job then never runs).
    @discardableResult
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let capacity = self.capacity
        let queued = self.shared.queue.withLock { queue -> Bool in
            guard !queue.stopping, queue.jobs.count < capacity else { return false }
            queue.jobs.append(job)
            return true
        }
        if queued { sem_post(self.shared.semaphore) }
        return queued
    }

    /// Lets the job under way finish, drops the queued ones, and joins the thread.
    func stop() {
        let first = self.shared.queue.withLock { queue -> Bool in
            defer { queue.stopping = true; queue.jobs = [] }
            return !queue.stopping
        }
        if first { sem_post(self.shared.semaphore) }
        self.thread.join()
    }
}
