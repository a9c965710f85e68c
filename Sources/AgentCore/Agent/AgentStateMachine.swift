/// The agent's decisions, as a pure state machine: every input returns the actions to carry out, with no I/O,
/// no clock and no locks (time comes in as `now`, a monotonic offset; randomness from the injected generator).
///
/// start → provisioning (no stored credentials) or connecting → online ⇄ offline (buffering); a person must act
/// when provisioning is refused. Re-provisioning (long press, RPC, or repeated CONNACK 5) never throws away
/// working credentials: new ones replace the stored ones only after they have connected once.
public struct AgentStateMachine<RNG: RandomNumberGenerator>: Sendable where RNG: Sendable {
    public enum State: Sendable, Equatable {
        case idle
        /// No stored credentials: asking the server for some.
        case provisioning
        /// Credentials in hand, a connection attempt under way.
        case connecting
        case online
        /// Disconnected and waiting to retry; readings are spooled meanwhile.
        case offline
        /// Provisioning was refused (key/secret wrong, or the name exists): retried slowly, a person should act.
        case needsPerson(String)
        case stopped
    }

    /// Which credentials a connection attempt uses.
    public enum CredentialsChoice: Sendable, Equatable {
        case stored
        /// Fresh from a re-provisioning, not yet stored: they replace the stored ones once they connect.
        case candidate
    }

    public enum ReprovisionTrigger: String, Sendable, Equatable {
        case button, remote, credentialsRejected
    }

    public enum ProvisionOutcome: Sendable, Equatable {
        case success
        /// NOT_FOUND or FAILURE: the server said no; the message says what a person should do.
        case refused(String)
        /// No usable answer (unreachable, closed, timed out): try again later.
        case failed(String)
    }

    public enum ConnectFailure: Sendable, Equatable {
        /// CONNACK 5: the server does not accept these credentials.
        case credentialsRejected
        /// Anything else: unreachable, CONNACK 2/3, closed.
        case transient(String)
    }

    public enum Timer: Sendable, Equatable, Hashable {
        case retry
        /// The connection has held long enough to reset the backoff.
        case connectionStable
        /// The temporary error display after a refused re-provisioning is over.
        case errorDisplayOver
    }

    public enum Action: Sendable, Equatable {
        case provision(reprovision: Bool)
        case connect(CredentialsChoice)
        /// Store the provisioned credentials (first provisioning) before using them.
        case storeProvisionedCredentials
        /// The candidate credentials connected once: store them in place of the old ones.
        case commitCandidate
        /// The candidate credentials did not work: forget them.
        case discardCandidate
        case disconnect
        /// Subscribe to shared attributes and RPC, publish client attributes, request shared attributes.
        case announce
        case startTimer(Timer, after: Duration)
        case cancelTimer(Timer)
        case setLED(LEDState)
        case log(LogLevel, String)
        case flushSpool
    }

    public enum LogLevel: Sendable, Equatable { case info, warning, error }

    public struct Settings: Sendable, Equatable {
        public var backoffBase: Duration
        public var backoffCap: Duration
        /// A connection that holds this long resets the backoff.
        public var stableAfter: Duration
        /// CONNACK 5 this many times in a row starts a re-provisioning.
        public var rejectionsBeforeReprovision: Int
        /// Delay between connection attempts while rejections are being counted (so the first re-provisioning
        /// comes within 30 s of the first rejection).
        public var rejectionRetryDelay: Duration
        /// At most this many automatic re-provisioning attempts per hour.
        public var reprovisionsPerHour: Int
        /// How long the error pattern shows after a refused re-provisioning.
        public var errorDisplay: Duration

        public init(
            backoffBase: Duration = .seconds(1), backoffCap: Duration = .seconds(300), stableAfter: Duration = .seconds(60),
            rejectionsBeforeReprovision: Int = 3, rejectionRetryDelay: Duration = .seconds(5), reprovisionsPerHour: Int = 4,
            errorDisplay: Duration = .seconds(10)
        ) {
            self.backoffBase = backoffBase
            self.backoffCap = backoffCap
            self.stableAfter = stableAfter
            self.rejectionsBeforeReprovision = rejectionsBeforeReprovision
            self.rejectionRetryDelay = rejectionRetryDelay
            self.reprovisionsPerHour = reprovisionsPerHour
            self.errorDisplay = errorDisplay
        }
    }

    public private(set) var state: State = .idle
    public private(set) var led: LEDState = .off
    public let settings: Settings
    private var backoff: Backoff
    private var random: RNG
    private var hasStoredCredentials = false
    /// A re-provisioning under way (the provisioning session runs beside the main one).
    public private(set) var reprovisioning: ReprovisionTrigger? = nil
    /// The connection attempt under way uses the candidate credentials.
    private var tryingCandidate = false
    private var consecutiveRejections = 0
    /// When automatic re-provisioning attempts were made, to bound them per hour.
    private var automaticReprovisions: [Duration] = []
    private var showingError = false
    private var identifying = false
    private var buttonHeldPastThreshold = false

    public init(settings: Settings = .init(), random: RNG) {
        self.settings = settings
        self.backoff = Backoff(base: settings.backoffBase, cap: settings.backoffCap)
        self.random = random
    }

    // MARK: inputs

    public mutating func start(hasStoredCredentials: Bool) -> [Action] {
        self.hasStoredCredentials = hasStoredCredentials
        if hasStoredCredentials {
            self.state = .connecting
            return [.connect(.stored)] + self.updateLED()
        }
        self.state = .provisioning
        return [.log(.info, "no stored credentials: provisioning"), .provision(reprovision: false)] + self.updateLED()
    }

    public mutating func provisioningFinished(_ outcome: ProvisionOutcome, now: Duration) -> [Action] {
        if let trigger = self.reprovisioning {
            return self.reprovisioningFinished(outcome, trigger: trigger, now: now)
        }
        guard self.state == .provisioning || self.isNeedsPerson else { return [] }
        switch outcome {
        case .success:
            self.hasStoredCredentials = true
            self.backoff.reset()
            self.state = .connecting
            return [.storeProvisionedCredentials, .connect(.stored)] + self.updateLED()
        case .refused(let message):
            // A person must act on the server; keep asking, slowly, so the board recovers by itself once they do.
            self.state = .needsPerson(message)
            let delay = self.settings.backoffCap
            return [.log(.error, message), .startTimer(.retry, after: delay)] + self.updateLED()
        case .failed(let message):
            self.state = .provisioning
            let delay = self.backoff.next(using: &self.random)
            return [.log(.warning, message), .startTimer(.retry, after: delay)] + self.updateLED()
        }
    }

    public mutating func connected(now: Duration) -> [Action] {
        guard self.state == .connecting else { return [] }
        self.state = .online
        self.consecutiveRejections = 0
        var actions: [Action] = []
        if self.tryingCandidate {
            self.tryingCandidate = false
            self.reprovisioning = nil
            actions.append(.commitCandidate)
            actions.append(.log(.info, "the new credentials connected: they replace the old ones"))
        }
        actions += [.announce, .flushSpool, .startTimer(.connectionStable, after: self.settings.stableAfter)]
        return actions + self.updateLED()
    }

    public mutating func connectFailed(_ failure: ConnectFailure, now: Duration) -> [Action] {
        guard self.state == .connecting else { return [] }
        var actions: [Action] = [.cancelTimer(.connectionStable)]
        if self.tryingCandidate {
            // The new credentials did not work: go back to the old ones, which are still stored.
            self.tryingCandidate = false
            self.reprovisioning = nil
            self.state = .connecting
            return actions + [
                .discardCandidate, .log(.warning, "the new credentials did not connect; keeping the stored ones"),
                .connect(.stored),
            ] + self.updateLED()
        }
        self.state = .offline
        switch failure {
        case .credentialsRejected:
            self.consecutiveRejections += 1
            if self.consecutiveRejections >= self.settings.rejectionsBeforeReprovision {
                if self.mayReprovisionAutomatically(now: now) {
                    self.automaticReprovisions.append(now)
                    self.reprovisioning = .credentialsRejected
                    actions += [
                        .log(.warning, "the server rejected the stored credentials \(self.consecutiveRejections) times in a row (device deleted or credentials changed on the server): provisioning again"),
                        .provision(reprovision: true),
                    ]
                } else {
                    actions += [
                        .log(.error, "the server keeps rejecting the stored credentials and the re-provisioning limit (\(self.settings.reprovisionsPerHour) per hour) is reached: check the device on the server"),
                        .startTimer(.retry, after: self.backoff.next(using: &self.random)),
                    ]
                }
            } else {
                // Said every time: otherwise nothing in the log tells why the agent is not online.
                actions += [
                    .log(.warning, "the server rejected the stored credentials (\(self.consecutiveRejections) time(s) in a row; at \(self.settings.rejectionsBeforeReprovision) the agent provisions again): the device may have been deleted or its credentials changed on the server; trying again in \(DurationText.format(self.settings.rejectionRetryDelay))"),
                    .startTimer(.retry, after: self.settings.rejectionRetryDelay),
                ]
            }
        case .transient(let reason):
            self.consecutiveRejections = 0
            actions += [.log(.warning, reason), .startTimer(.retry, after: self.backoff.next(using: &self.random))]
        }
        return actions + self.updateLED()
    }

    public mutating func disconnected(reason: String, now: Duration) -> [Action] {
        guard self.state == .online else { return [] }
        self.state = .offline
        return [
            .cancelTimer(.connectionStable), .log(.warning, "disconnected: \(reason); buffering readings"),
            .startTimer(.retry, after: self.backoff.next(using: &self.random)),
        ] + self.updateLED()
    }

    public mutating func timerFired(_ timer: Timer, now: Duration) -> [Action] {
        switch timer {
        case .connectionStable:
            if self.state == .online { self.backoff.reset() }
            return []
        case .errorDisplayOver:
            self.showingError = false
            return self.updateLED()
        case .retry:
            switch self.state {
            case .offline:
                if self.reprovisioning == .credentialsRejected { return [] }
                self.state = .connecting
                return [.connect(.stored)] + self.updateLED()
            case .provisioning, .needsPerson:
                self.state = .provisioning
                return [.provision(reprovision: false)] + self.updateLED()
            default:
                return []
            }
        }
    }

    /// A long press on the button, or the `reprovision` RPC.
    public mutating func reprovisionRequested(_ trigger: ReprovisionTrigger, now: Duration) -> [Action] {
        guard self.reprovisioning == nil else {
            return [.log(.info, "a re-provisioning is already under way")]
        }
        switch self.state {
        case .online, .offline, .connecting:
            self.reprovisioning = trigger
            return [
                .log(.info, "re-provisioning (\(trigger.rawValue)); the current credentials stay in use until new ones have connected"),
                .provision(reprovision: true),
            ] + self.updateLED()
        case .provisioning, .needsPerson:
            self.state = .provisioning
            return [.cancelTimer(.retry), .provision(reprovision: false)] + self.updateLED()
        case .idle, .stopped:
            return []
        }
    }

    public mutating func buttonHeldPastThreshold(_ held: Bool) -> [Action] {
        self.buttonHeldPastThreshold = held
        return self.updateLED()
    }

    public mutating func identify(_ on: Bool) -> [Action] {
        self.identifying = on
        return self.updateLED()
    }

    public mutating func shutdown() -> [Action] {
        let wasConnected = self.state == .online || self.state == .connecting
        self.state = .stopped
        self.reprovisioning = nil
        var actions: [Action] = [.cancelTimer(.retry), .cancelTimer(.connectionStable), .flushSpool]
        if wasConnected { actions.append(.disconnect) }
        return actions + self.updateLED()
    }

    // MARK: helpers

    private var isNeedsPerson: Bool {
        if case .needsPerson = self.state { return true }
        return false
    }

    private mutating func reprovisioningFinished(_ outcome: ProvisionOutcome, trigger: ReprovisionTrigger, now: Duration)
        -> [Action]
    {
        switch outcome {
        case .success:
            // Try the new credentials on the main session; they are stored only once they connect.
            self.tryingCandidate = true
            self.state = .connecting
            return [.disconnect, .connect(.candidate)] + self.updateLED()
        case .refused(let message), .failed(let message):
            self.reprovisioning = nil
            var actions: [Action] = [.log(.error, "re-provisioning did not succeed, the current credentials stay in force: \(message)")]
            if case .refused = outcome {
                self.showingError = true
                actions.append(.startTimer(.errorDisplayOver, after: self.settings.errorDisplay))
            }
            if trigger == .credentialsRejected, self.state == .offline {
                // The stored credentials are dead: keep trying to connect (perhaps they come back), and let the
                // rejection count start the next bounded re-provisioning.
                self.consecutiveRejections = 0
                actions.append(.startTimer(.retry, after: self.backoff.next(using: &self.random)))
            }
            return actions + self.updateLED()
        }
    }

    private func mayReprovisionAutomatically(now: Duration) -> Bool {
        let recent = self.automaticReprovisions.filter { now - $0 < .seconds(3600) }
        return recent.count < self.settings.reprovisionsPerHour
    }

    private mutating func updateLED() -> [Action] {
        let signal: LEDState
        if self.buttonHeldPastThreshold {
            signal = .releaseNow
        } else if self.identifying {
            signal = .identify
        } else if self.showingError {
            signal = .attention
        } else {
            switch self.state {
            case .idle, .stopped: signal = .off
            case .provisioning: signal = .provisioning
            case .connecting:
                signal = self.reprovisioning != nil || self.tryingCandidate ? .provisioning : .connecting
            case .offline:
                signal = self.reprovisioning != nil ? .provisioning : .buffering
            case .online: signal = self.reprovisioning != nil ? .provisioning : .online
            case .needsPerson: signal = .attention
            }
        }
        guard signal != self.led else { return [] }
        self.led = signal
        return [.setLED(signal)]
    }
}
