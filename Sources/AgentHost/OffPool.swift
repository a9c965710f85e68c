#if canImport(Glibc)
import Glibc
#endif

/// Runs a blocking call (a TLS handshake to explain a failure, a child process) on a thread of its own and awaits its result: never
/// on Swift's cooperative pool, which has one thread per core (two on the boards this targets).
public enum OffPool {
    private final class Job: @unchecked Sendable {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Falls back to running `body` here when no thread can be started (it still completes).
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let job = Job { continuation.resume(returning: body()) }
            let context = Unmanaged.passRetained(job).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { context in
                guard let context else { return nil }
                Unmanaged<Job>.fromOpaque(context).takeRetainedValue().body()
                return nil
            }, context)
            if rc == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<Job>.fromOpaque(context).takeRetainedValue().body()
            }
        }
    }
}
