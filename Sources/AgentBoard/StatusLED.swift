import AgentCore
import AgentGPIO
import Synchronization

/// Something that can be switched on and off to show the agent's state.
public protocol LEDOutput: AnyObject, Sendable {
    /// For messages: `ACT (sysfs)`, `GPIO22`.
    var name: String { get }
    func set(_ on: Bool) throws(AgentError)
    /// Hands the LED back: the sysfs LED gets its previous trigger again, a GPIO LED goes off.
    func release()
}

/// A LED the kernel drives (`/sys/class/leds/NAME/`): the agent sets its `trigger` to `none` while it runs and
/// restores the previous trigger (on a Raspberry Pi, `mmc0` for ACT) when it stops.
public final class SysfsLED: LEDOutput {
    public let name: String
    private let files: any BoardFiles
    private let directory: String
    private let onValue: String
    private let previous: LEDTriggerList
    private let released = Atomic<Bool>(false)

    public init(files: any BoardFiles, name: String) throws(AgentError) {
        self.name = "\(name) (sysfs)"
        self.files = files
        self.directory = "sys/class/leds/\(name)"
        let triggerText: String
        do {
            triggerText = try files.readText("\(self.directory)/trigger")
        } catch {
            if error.kind == .notFound {
                let leds = (try? files.list("sys/class/leds")) ?? []
                throw AgentError(.hardwareUnavailable, "LED '\(name)' not found (\(files.displayPath(self.directory))); LEDs on this board: \(leds.isEmpty ? "none" : leds.joined(separator: ", "))")
            }
            if error.kind == .permissionDenied {
                throw AgentError(.hardwareUnavailable, "\(error.path): permission denied: the agent must run as root (or be given write access to the LED with a udev rule) to drive LED '\(name)'")
            }
            throw AgentError(.hardwareUnavailable, "LED '\(name)': \(error)")
        }
        self.previous = LEDTriggerList(parsing: triggerText)
        let maximum = (try? files.readText("\(self.directory)/max_brightness")).map { String($0.filter { !$0.isWhitespace }) }
        self.onValue = maximum.flatMap { Int($0) }.map { $0 > 0 ? String($0) : "1" } ?? "1"
        try self.selectTrigger("none")
    }

    /// Writes the trigger. A plain file standing in for sysfs (the simulated board) keeps the kernel's bracketed
    /// format, so the next run still knows which trigger to restore.
    private func selectTrigger(_ trigger: String) throws(AgentError) {
        let path = "\(self.directory)/trigger"
        do {
            try self.files.writeText(trigger, to: path)
            let readBack = try self.files.readText(path)
            if !readBack.contains("[") {
                try self.files.writeText(self.previous.rendered(selecting: trigger), to: path)
            }
        } catch {
            throw AgentError(.hardwareUnavailable, "LED \(self.name): cannot set its trigger to '\(trigger)': \(error)")
        }
    }

    public func set(_ on: Bool) throws(AgentError) {
        do {
            try self.files.writeText((on ? self.onValue : "0") + "\n", to: "\(self.directory)/brightness")
        } catch {
            throw AgentError(.hardwareUnavailable, "LED \(self.name): \(error)")
        }
    }

    public func release() {
        guard !self.released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? self.set(false)
        if let trigger = self.previous.current, trigger != "none" {
            try? self.selectTrigger(trigger)
        }
    }

    deinit { self.release() }
}

/// A LED on a GPIO output line.
public final class GPIOLED: LEDOutput {
    public let name: String
    private let line: any GPIOOutput

    public init(backend: any GPIOBackend, line: LineAddress, activeLow: Bool) throws(AgentError) {
        self.name = line.description
        self.line = try backend.output(line, activeLow: activeLow, initial: .low, consumer: "tb-agent led")
    }

    public func set(_ on: Bool) throws(AgentError) { try self.line.write(LineLevel(on)) }

    public func release() { try? self.line.write(.low) }
}

/// Plays the LED pattern of the agent's state on its own thread, with the button's feedback on top.
public final class LEDController: Sendable {
    private struct State: Sendable {
        var base: LEDState
        var feedback: LongPressDetector.Feedback = .none
        var lastError: AgentError?
        var effective: LEDState { self.base.overlaid(with: self.feedback) }
    }

    private final class Shared: Sendable {
        let output: any LEDOutput
        let state: Mutex<State>
        let stopped = Atomic<Bool>(false)
        let wake: WakePipe

        init(output: any LEDOutput, state: LEDState, wake: WakePipe) {
            self.output = output
            self.state = Mutex(State(base: state))
            self.wake = wake
        }

        func run() {
            var shown: LEDState? = nil
            var startedAt = Duration.zero
            var lit: Bool? = nil
            while !self.stopped.load(ordering: .acquiring) {
                let now = MonotonicClock.now()
                let effective = self.state.withLock { $0.effective }
                if effective != shown {
                    shown = effective
                    startedAt = now
                }
                let (on, next) = effective.pattern.level(at: now - startedAt)
                if on != lit {
                    do {
                        try self.output.set(on)
                        lit = on
                    } catch {
                        self.state.withLock { $0.lastError = error }
                        lit = nil
                    }
                }
                // After a failed write, try again in a second rather than at the pattern's pace.
                let wait = lit == nil ? Duration.seconds(1) : next
                _ = BoardPoll.wait([self.wake.readEnd], until: wait.map { now + $0 })
                self.wake.drain()
            }
            self.output.release()
        }
    }

    private let shared: Shared
    private let thread: Mutex<BoardThread?>

    public init(output: any LEDOutput, initial: LEDState = .off) throws(AgentError) {
        // The pattern's first level is shown before this returns, so a caller that reports the state (`tb-agent
        // led`) never reports it while the LED still shows the previous one; the thread takes over from there.
        try? output.set(initial.pattern.level(at: .zero).on)
        let shared = Shared(output: output, state: initial, wake: try WakePipe())
        self.shared = shared
        self.thread = Mutex(nil)
        let thread = try BoardThread { shared.run() }
        self.thread.withLock { $0 = thread }
    }

    /// Shows `state` (its pattern starts over when the state changes).
    public func show(_ state: LEDState) {
        self.shared.state.withLock { $0.base = state }
        self.shared.wake.wake()
    }

    /// The button's feedback, shown over the state while the button is held.
    public func setFeedback(_ feedback: LongPressDetector.Feedback) {
        let changed = self.shared.state.withLock { state -> Bool in
            defer { state.feedback = feedback }
            return state.feedback != feedback
        }
        if changed { self.shared.wake.wake() }
    }

    /// The state shown now, feedback included.
    public var showing: LEDState { self.shared.state.withLock { $0.effective } }
    /// The last failure to drive the LED, if any.
    public var lastError: AgentError? { self.shared.state.withLock { $0.lastError } }
    public var outputName: String { self.shared.output.name }

    /// Stops the pattern and hands the LED back (previous trigger, or off).
    public func stop() {
        self.shared.stopped.store(true, ordering: .releasing)
        self.shared.wake.wake()
        self.thread.withLock { $0 }?.join()
    }

    deinit { self.stop() }
}
