/// Decides what a press of the button means: held for `hold` and then released, it asks for re-provisioning;
/// released earlier, it does nothing.
///
/// Protections against a reset nobody asked for (a stuck or inverted button, a button wired to the wrong pin):
/// - a button already pressed when the agent starts is ignored until it has been seen released;
/// - a button held much longer than anyone would (`stuckAfter`) is treated as stuck: its release does nothing.
///
/// Fed debounced levels (`pressed` = the logical level is high, `active_low` already applied) and the time now;
/// returns events, and says what the LED should show (`feedback`) and when to call `tick` next (`deadline`).
public struct LongPressDetector: Sendable {
    public enum Event: Sendable, Equatable, CustomStringConvertible {
        /// The button was pressed when watching started: ignored until released.
        case ignoredPressedAtStart(at: Duration)
        /// A button that was pressed at start has been released: presses count from now on.
        case armed(at: Duration)
        case pressed(at: Duration)
        /// Held for `hold`: releasing now asks for re-provisioning (the LED says "release now").
        case thresholdReached(at: Duration)
        /// Held for `stuckAfter`: this press no longer counts.
        case stuck(at: Duration)
        case released(at: Duration, heldFor: Duration)
        /// Released after the threshold: the core should re-provision.
        case reprovisionRequested(at: Duration)

        public var description: String {
            switch self {
            case .ignoredPressedAtStart: return "ignored: the button is pressed at start; it counts once released"
            case .armed: return "armed: the button was released"
            case .pressed: return "pressed"
            case .thresholdReached: return "held: release now to re-provision"
            case .stuck: return "stuck: held too long, this press is ignored"
            case .released(_, let heldFor): return "released after \(BoardTime.seconds(heldFor))"
            case .reprovisionRequested: return "reprovision-requested"
            }
        }
    }

    /// What the status LED should show over its normal pattern.
    public enum Feedback: Sendable, Equatable {
        case none
        /// Pressed, threshold not reached yet.
        case holding
        /// Past the threshold: release now.
        case releaseNow
    }

    private enum State: Sendable, Equatable {
        case notStarted
        case waitingForRelease
        case idle
        case pressed(since: Duration)
        case pastThreshold(since: Duration)
        case stuck(since: Duration)
    }

    public let hold: Duration
    public let stuckAfter: Duration
    private var state: State = .notStarted

    /// - Parameters:
    ///   - hold: `reprovision_hold`.
    ///   - stuckAfter: how long a press may last and still count; by default four times `hold`, at least
    ///     `hold` + 5 s.
    public init(hold: Duration, stuckAfter: Duration? = nil) {
        self.hold = max(hold, .zero)
        self.stuckAfter = stuckAfter ?? max(self.hold * 4, self.hold + .seconds(5))
    }

    /// Gives the level when watching starts.
    public mutating func start(pressed: Bool, at time: Duration) -> [Event] {
        guard self.state == .notStarted else { return self.buttonChanged(pressed: pressed, at: time) }
        if pressed {
            self.state = .waitingForRelease
            return [.ignoredPressedAtStart(at: time)]
        }
        self.state = .idle
        return []
    }

    /// Feeds a debounced level change.
    public mutating func buttonChanged(pressed: Bool, at time: Duration) -> [Event] {
        switch (self.state, pressed) {
        case (.notStarted, _):
            return self.start(pressed: pressed, at: time)
        case (.waitingForRelease, false):
            self.state = .idle
            return [.armed(at: time)]
        case (.idle, true):
            self.state = .pressed(since: time)
            var events: [Event] = [.pressed(at: time)]
            events += self.tick(now: time)
            return events
        case (.pressed(let since), false), (.stuck(let since), false):
            self.state = .idle
            return [.released(at: time, heldFor: time - since)]
        case (.pastThreshold(let since), false):
            self.state = .idle
            return [.released(at: time, heldFor: time - since), .reprovisionRequested(at: time)]
        case (.waitingForRelease, true), (.idle, false), (.pressed, true), (.pastThreshold, true), (.stuck, true):
            return []
        }
    }

    /// Feeds the time now: reports the threshold and a stuck button.
    public mutating func tick(now: Duration) -> [Event] {
        switch self.state {
        case .pressed(let since) where now - since >= self.hold:
            self.state = .pastThreshold(since: since)
            return [.thresholdReached(at: since + self.hold)] + self.tick(now: now)
        case .pastThreshold(let since) where now - since >= self.stuckAfter:
            self.state = .stuck(since: since)
            return [.stuck(at: since + self.stuckAfter)]
        default:
            return []
        }
    }

    /// When `tick` has something to report next; nil when only a level change can change anything.
    public var deadline: Duration? {
        switch self.state {
        case .pressed(let since): return since + self.hold
        case .pastThreshold(let since): return since + self.stuckAfter
        default: return nil
        }
    }

    public var feedback: Feedback {
        switch self.state {
        case .pressed: return .holding
        case .pastThreshold: return .releaseNow
        default: return .none
        }
    }

    /// Whether presses count (false while a button pressed at start has not been released yet).
    public var isArmed: Bool {
        switch self.state {
        case .notStarted, .waitingForRelease: return false
        default: return true
        }
    }
}

/// Formatting of board times for people and the command line.
public enum BoardTime {
    /// Seconds with up to three decimals: `1.5s`, `0.02s`, `5s`.
    public static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        let sign = millis < 0 ? "-" : ""
        let magnitude = millis.magnitude
        var text = "\(sign)\(magnitude / 1000)"
        var fraction = magnitude % 1000
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: 3 - digits.count) + digits
            while digits.hasSuffix("0") {
                digits.removeLast()
                fraction /= 10
            }
            text += "." + digits
        }
        return text + "s"
    }
}
