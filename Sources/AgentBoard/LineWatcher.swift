import AgentCore
import AgentGPIO
import Synchronization

/// Watches an input line on its own thread and runs an `EdgeMachine` (a debouncer, the button) on its edges.
///
/// The thread sleeps in `poll` on the line's event descriptor, a wake-up pipe and the machine's next deadline:
/// no polling loop, and `stop()` (or dropping the last reference, or cancelling the consumer of `outputs`) ends it
/// at once and releases the line.
public final class LineWatcher<Machine: EdgeMachine>: Sendable {
    /// What the watcher thread and its owner share.
    private final class Shared: Sendable {
        let input: any GPIOInput
        let machine: Mutex<Machine>
        let stopped = Atomic<Bool>(false)
        let wake: WakePipe
        let continuation: AsyncThrowingStream<Machine.Output, any Error>.Continuation
        let onStep: (@Sendable (Machine, [Machine.Output]) -> Void)?

        init(input: any GPIOInput, machine: Machine, wake: WakePipe,
             continuation: AsyncThrowingStream<Machine.Output, any Error>.Continuation,
             onStep: (@Sendable (Machine, [Machine.Output]) -> Void)?) {
            self.input = input
            self.machine = Mutex(machine)
            self.wake = wake
            self.continuation = continuation
            self.onStep = onStep
        }

        func run() {
            while !self.stopped.load(ordering: .acquiring) {
                let deadline = self.machine.withLock { $0.deadline }
                let ready = BoardPoll.wait([self.input.eventDescriptor, self.wake.readEnd], until: deadline)
                if self.stopped.load(ordering: .acquiring) { break }
                if ready.contains(self.wake.readEnd) { self.wake.drain() }
                let edges: [EdgeEvent]
                do {
                    edges = ready.contains(self.input.eventDescriptor) ? try self.input.readEdges() : []
                } catch {
                    self.continuation.finish(throwing: error)
                    return
                }
                let now = MonotonicClock.now()
                let (outputs, snapshot) = self.machine.withLock { machine -> ([Machine.Output], Machine) in
                    var outputs: [Machine.Output] = []
                    for edge in edges { outputs += machine.edge(edge) }
                    outputs += machine.tick(now: now)
                    return (outputs, machine)
                }
                // The step's side effects first (the button's LED feedback), then the outputs: whoever reacts to
                // an output (the loop, a test) finds the LED already showing what the step decided.
                self.onStep?(snapshot, outputs)
                for output in outputs { self.continuation.yield(output) }
            }
            self.continuation.finish()
        }
    }

    private let shared: Shared
    private let thread: Mutex<BoardThread?>

    /// What the machine reports, in order. Ends when the watcher stops; throws if the line fails.
    public let outputs: AsyncThrowingStream<Machine.Output, any Error>
    public var input: any GPIOInput { self.shared.input }

    /// Reads the line's level, builds the machine from it and starts watching.
    ///
    /// - Parameters:
    ///   - input: a line requested with `edges: true`.
    ///   - onStep: called on the watcher thread after each step with the machine and what it reported, before the
    ///     outputs are yielded (the button uses it to update the LED without a hop through the consumer).
    ///   - makeMachine: builds the machine from the level and the time it was read.
    public init(
        input: any GPIOInput, onStep: (@Sendable (Machine, [Machine.Output]) -> Void)? = nil,
        makeMachine: (LineLevel, Duration) -> Machine
    ) throws(AgentError) {
        let time = MonotonicClock.now()
        let level = try input.read()
        let machine = makeMachine(level, time)
        let (stream, continuation) = AsyncThrowingStream<Machine.Output, any Error>.makeStream()
        let shared = Shared(input: input, machine: machine, wake: try WakePipe(), continuation: continuation,
                            onStep: onStep)
        self.shared = shared
        self.outputs = stream
        self.thread = Mutex(nil)
        continuation.onTermination = { [weak shared] _ in
            shared?.stopped.store(true, ordering: .releasing)
            shared?.wake.wake()
        }
        let thread = try BoardThread { shared.run() }
        self.thread.withLock { $0 = thread }
    }

    /// The machine as of its last step.
    public var machine: Machine { self.shared.machine.withLock { $0 } }

    /// Stops watching and waits for the thread to end.
    public func stop() {
        self.shared.stopped.store(true, ordering: .releasing)
        self.shared.wake.wake()
        self.thread.withLock { $0 }?.join()
    }

    deinit { self.stop() }
}
