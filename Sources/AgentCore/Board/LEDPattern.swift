/// What the status LED tells a person standing in front of the board.
public enum LEDState: String, Sendable, CaseIterable, Equatable {
    /// Off: the agent is not running (or has nothing to say).
    case off
    /// Asking the server for credentials: fast blink, 4 Hz.
    case provisioning
    /// Connecting to the server: slow blink, 1 Hz.
    case connecting
    /// Lost the server, retrying: slow blink, 1 Hz.
    case offline
    /// Offline and keeping telemetry to send later: slow blink, 1 Hz.
    case buffering
    /// Connected and publishing: steady on.
    case online
    /// A person must act (provisioning refused, credentials rejected, invalid configuration): double flash.
    case attention
    /// The button is pressed, re-provision threshold not reached yet: on, with a short dark gap every second.
    case buttonHeld = "button-held"
    /// The button has been held past the re-provision threshold: rapid flicker, "release now".
    case releaseNow = "release-now"
    /// "Which box is this?": three quick flashes, then a pause.
    case identify
    /// A claim request was sent with the button: a long flash and a short one, for the claim window.
    case claiming
    /// Online and downloading a firmware update: flashes that grow longer, then a pause.
    case updating

    /// The pattern this state shows.
    public var pattern: LEDPattern {
        switch self {
        case .off: return .steady(on: false)
        case .provisioning: return .blink(hertz: 4)
        case .connecting, .offline, .buffering: return .blink(hertz: 1)
        case .online: return .steady(on: true)
        case .attention:
            return LEDPattern(cycle: [
                .init(on: true, duration: .milliseconds(150)), .init(on: false, duration: .milliseconds(150)),
                .init(on: true, duration: .milliseconds(150)), .init(on: false, duration: .milliseconds(1050)),
            ])
        case .buttonHeld:
            return LEDPattern(cycle: [
                .init(on: true, duration: .milliseconds(900)), .init(on: false, duration: .milliseconds(100)),
            ])
        case .releaseNow: return .blink(hertz: 10)
        case .identify:
            return LEDPattern(cycle: [
                .init(on: true, duration: .milliseconds(100)), .init(on: false, duration: .milliseconds(150)),
                .init(on: true, duration: .milliseconds(100)), .init(on: false, duration: .milliseconds(150)),
                .init(on: true, duration: .milliseconds(100)), .init(on: false, duration: .milliseconds(1400)),
            ])
        case .claiming:
            return LEDPattern(cycle: [
                .init(on: true, duration: .milliseconds(1000)), .init(on: false, duration: .milliseconds(250)),
                .init(on: true, duration: .milliseconds(150)), .init(on: false, duration: .milliseconds(600)),
            ])
        case .updating:
            return LEDPattern(cycle: [
                .init(on: true, duration: .milliseconds(100)), .init(on: false, duration: .milliseconds(150)),
                .init(on: true, duration: .milliseconds(300)), .init(on: false, duration: .milliseconds(150)),
                .init(on: true, duration: .milliseconds(600)), .init(on: false, duration: .milliseconds(700)),
            ])
        }
    }

    /// The state shown while the button gives feedback, over the agent's own state.
    public func overlaid(with feedback: LongPressDetector.Feedback) -> LEDState {
        switch feedback {
        case .none: return self
        case .holding: return .buttonHeld
        case .releaseNow: return .releaseNow
        }
    }
}

/// An on/off timeline that repeats: a steady level, or a cycle of timed steps.
public struct LEDPattern: Sendable, Equatable {
    public struct Step: Sendable, Hashable {
        public var on: Bool
        public var duration: Duration
        public init(on: Bool, duration: Duration) {
            self.on = on
            self.duration = duration
        }
    }

    /// The steps of one period; a single step (or a zero-length cycle) is a steady level.
    public let cycle: [Step]

    public init(cycle: [Step]) {
        let kept = cycle.filter { $0.duration > .zero }
        self.cycle = kept.isEmpty ? [Step(on: cycle.first?.on ?? false, duration: .zero)] : kept
    }

    public static func steady(on: Bool) -> LEDPattern { LEDPattern(cycle: [Step(on: on, duration: .zero)]) }

    /// A square wave: half the period on, half off, starting on.
    public static func blink(hertz: Int) -> LEDPattern {
        let half = Duration.milliseconds(500) / max(hertz, 1)
        return LEDPattern(cycle: [Step(on: true, duration: half), Step(on: false, duration: half)])
    }

    public var period: Duration { self.cycle.reduce(.zero) { $0 + $1.duration } }

    /// Whether the pattern never changes.
    public var isSteady: Bool { self.period == .zero || Set(self.cycle.map(\.on)).count == 1 }

    /// The LED's level `elapsed` after the pattern started, and how long until it next changes (nil: never).
    public func level(at elapsed: Duration) -> (on: Bool, nextChangeIn: Duration?) {
        guard !self.isSteady else { return (self.cycle[0].on, nil) }
        let period = self.period
        var position = max(elapsed, .zero)
        // Duration has no remainder operator; go through nanoseconds, plenty for LED timing.
        let periodNanos = Self.nanoseconds(period)
        position = .nanoseconds(Self.nanoseconds(position) % periodNanos)
        var start = Duration.zero
        for (index, step) in self.cycle.enumerated() {
            let end = start + step.duration
            if position < end {
                // Skip over following steps with the same level: the LED does not change there.
                var until = end - position
                var next = (index + 1) % self.cycle.count
                while self.cycle[next].on == step.on {
                    until += self.cycle[next].duration
                    next = (next + 1) % self.cycle.count
                }
                return (step.on, until)
            }
            start = end
        }
        return (self.cycle[0].on, self.cycle[0].duration)
    }

    /// The level changes in `[0, duration)`: (time from the start, level). The first entry is at zero.
    public func timeline(for duration: Duration) -> [(at: Duration, on: Bool)] {
        var result: [(at: Duration, on: Bool)] = []
        var time = Duration.zero
        while time < duration {
            let (on, next) = self.level(at: time)
            result.append((time, on))
            guard let next else { break }
            time += next
        }
        return result
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

/// A sysfs LED's `trigger` file: the kernel lists every trigger and brackets the active one
/// (`none [mmc0] heartbeat`).
public struct LEDTriggerList: Sendable, Equatable {
    public var options: [String]
    public var current: String?

    public init(options: [String], current: String?) {
        self.options = options
        self.current = current
    }

    /// Parses the file; a lone word without brackets (a plain file standing in for sysfs) is the active trigger.
    public init(parsing text: String) {
        var options: [String] = []
        var current: String? = nil
        for word in text.split(whereSeparator: \.isWhitespace) {
            if word.hasPrefix("["), word.hasSuffix("]"), word.count >= 2 {
                let name = String(word.dropFirst().dropLast())
                options.append(name)
                current = name
            } else {
                options.append(String(word))
            }
        }
        if current == nil, options.count == 1 { current = options[0] }
        self.options = options
        self.current = current
    }

    /// The list with `trigger` bracketed, the way the kernel prints it.
    public func rendered(selecting trigger: String) -> String {
        var options = self.options
        if !options.contains(trigger) { options.insert(trigger, at: 0) }
        return options.map { $0 == trigger ? "[\($0)]" : $0 }.joined(separator: " ") + "\n"
    }
}
