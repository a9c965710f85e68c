import AgentCore
import Synchronization

/// A clock that moves only when told: `advance(by:)` wakes the sleepers whose deadline has come, in deadline
/// order; `setWall(_:)` steps the wall clock (forward or back) without touching the monotonic one.
public final class ManualClock: AgentClock {
    private struct Sleeper {
        let deadline: Duration
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Duration = .zero
        var wall: Int64
        var synchronized = false
        var sleepers: [Int: Sleeper] = [:]
        var cancelledEarly: Set<Int> = []
        var nextID = 0
    }

    private let state: Mutex<State>

    /// Starts at monotonic zero and the given wall time (milliseconds since the epoch).
    public init(wallMilliseconds: Int64) { self.state = Mutex(State(wall: wallMilliseconds)) }

    public func now() -> Duration { self.state.withLock { $0.now } }

    public func wallMilliseconds() -> Int64 { self.state.withLock { $0.wall } }

    public func isSynchronized() -> Bool { self.state.withLock { $0.synchronized } }

    /// Says whether the kernel would report the clock synchronised (NTP).
    public func setSynchronized(_ synchronized: Bool) { self.state.withLock { $0.synchronized = synchronized } }

    /// How many tasks are sleeping on this clock.
    public var sleeperCount: Int { self.state.withLock { $0.sleepers.count } }

    /// The earliest deadline anyone sleeps until.
    public var nextDeadline: Duration? { self.state.withLock { $0.sleepers.values.map(\.deadline).min() } }

    public func sleep(until deadline: Duration) async throws {
        let id = self.state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = self.state.withLock { state in
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = self.state.withLock { state -> Sleeper? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelledEarly.insert(id)
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves both clocks forward and wakes whoever's deadline has come.
    public func advance(by duration: Duration) {
        let due = self.state.withLock { state -> [Sleeper] in
            state.now += duration
            state.wall += duration.milliseconds
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers[id] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Steps the wall clock (NTP's first answer, or a clock set back); the monotonic clock does not move.
    public func setWall(_ milliseconds: Int64) { self.state.withLock { $0.wall = milliseconds } }
}
