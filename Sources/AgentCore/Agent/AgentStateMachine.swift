import TBJSON

/// The agent's decisions, as a pure state machine: every input returns the actions to carry out, with no I/O,
/// no clock and no locks (time comes in as `now`, a monotonic offset; randomness from the injected generator).
///
/// start → provisioning (no stored credentials) or connecting → online ⇄ offline (buffering); a person must act
/// when provisioning is refused, or when the server rejects the stored credentials and will not provision the device
/// again.
///
/// Re-provisioning (long press, RPC, or repeated CONNACK 5) cannot brick a board:
/// - the new credentials (the *candidate*) are stored on flash as a pending generation before they are tried, since
///   the server has created or updated the device for them and will not issue them again;
/// - a transient failure of their connect (timeout, refused or lost connection, CONNACK 3) retries them with
///   backoff; only the server's rejection (CONNACK 2/4/5, or libmosquitto refusing them) discards them;
/// - they replace the stored credentials once they have connected; until then the stored ones are kept;
/// - after a restart, pending credentials are tried first (the server has them), and the stored ones only once
///   the server rejected the pending ones;
/// - a rejected candidate, or a re-provisioning refused while the stored credentials are rejected too, means a
///   person must act (LED `.attention`; the log says what to do); the agent keeps retrying, boundedly, so it recovers
///   by itself once they have;
/// - every trigger (button, RPC, rejections) draws on one budget of `reprovisionsPerHour`.
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
        /// A person must act (the message says what to do); retried slowly, so the board recovers once they have.
        case needsPerson(String)
        case stopped
    }

    /// Which credentials a connection attempt uses.
    public enum CredentialsChoice: Sendable, Equatable {
        case stored
        /// Fresh from a re-provisioning, stored as the pending generation: they replace the stored ones once they
        /// connect.
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
        /// CONNACK 5 (or 2, 4): the server does not accept these credentials; or libmosquitto refused them.
        case credentialsRejected
        /// Anything else: unreachable, CONNACK 3, closed, timed out.
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
        /// Store the candidate credentials (from a re-provisioning) as the pending generation, before they are tried.
        case storeCandidate
        /// The candidate credentials connected once: they replace the stored ones (the pending generation becomes
        /// the current one).
        case commitCandidate
        /// The server rejected the candidate credentials: forget them (and the pending generation).
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

    /// The answer to a request to re-provision (button or RPC); `reply` is what the `reprovision` RPC returns.
    public enum ReprovisionAnswer: Sendable, Equatable, CustomStringConvertible {
        case started
        /// A re-provisioning (or the trial of its credentials) is under way already: nothing new was started.
        case alreadyUnderWay
        /// The budget of `limit` re-provisionings an hour is spent; the next is allowed in `nextAllowedIn`.
        case overBudget(limit: Int, nextAllowedIn: Duration)
        /// Not possible now; the reason says why and what to do.
        case unavailable(String)

        public var description: String {
            switch self {
            case .started: return "re-provisioning started"
            case .alreadyUnderWay: return "a re-provisioning is already under way"
            case .overBudget(let limit, let wait):
                return "re-provisioning refused: at most \(limit) an hour (the button, the reprovision RPC and rejected credentials together); the next one is allowed in \(AgentStateMachine.waitText(wait))"
            case .unavailable(let reason): return "re-provisioning refused: \(reason)"
            }
        }

        public var reply: JSONValue {
            switch self {
            case .started: return ["reprovision": "started"]
            case .alreadyUnderWay: return ["reprovision": "already under way"]
            case .overBudget(_, let wait):
                return [
                    "error": .string(self.description),
                    "retryAfterSeconds": .integer(AgentStateMachine.roundedUp(wait).components.seconds),
                ]
            case .unavailable: return ["error": .string(self.description)]
            }
        }
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
    /// A re-provisioning session under way (it runs beside the main one).
    public private(set) var reprovisioning: ReprovisionTrigger? = nil
    /// A provisioning session under way (first provisioning or re-provisioning).
    private var provisioningInFlight = false
    /// Candidate credentials exist (in memory and, normally, on flash as the pending generation): they are tried
    /// until they connect or the server rejects them.
    public private(set) var hasCandidate = false
    /// The connection attempt under way uses the candidate credentials.
    private var tryingCandidate = false
    /// The server rejected the stored credentials on their last attempt.
    private var storedRejected = false
    /// The server rejected the candidate: if it rejects the stored ones too, a person must act.
    private var candidateRejected = false
    private var consecutiveRejections = 0
    /// When re-provisioning sessions were started (every trigger), to bound them per hour.
    private var reprovisions: [Duration] = []
    /// Why a person must act, while they must.
    private var personNeeded: String? = nil
    /// The stored credentials may be neither used nor replaced (a newer format, unreadable): nothing is tried.
    private var blocked: String? = nil
    private var showingError = false
    private var identifying = false
    private var claimWindowOpen = false
    private var buttonHeldPastThreshold = false

    public init(settings: Settings = .init(), random: RNG) {
        self.settings = settings
        self.backoff = Backoff(base: settings.backoffBase, cap: settings.backoffCap)
        self.random = random
    }

    // MARK: inputs

    public mutating func start(hasStoredCredentials: Bool) -> [Action] {
        self.start(CredentialInventory(stored: hasStoredCredentials))
    }

    /// The start, with what the credential store holds.
    public mutating func start(_ inventory: CredentialInventory) -> [Action] {
        self.hasStoredCredentials = inventory.stored
        self.hasCandidate = inventory.pending
        if let blocked = inventory.blocked {
            // Provisioning would need to replace what cannot be replaced: wait for a person.
            self.blocked = blocked
            self.personNeeded = blocked
            self.state = .needsPerson(blocked)
            return [.log(.error, "the stored credentials cannot be used and must not be replaced; a person must act: \(blocked)")]
                + self.updateLED()
        }
        if inventory.pending {
            // The server issued these and has them: try them first; the stored ones only if the server rejects them.
            self.tryingCandidate = true
            self.state = .connecting
            return [
                .log(.info, "credentials from an unfinished re-provisioning are stored (pending): trying them first; the stored ones are kept until they connect, and used again only if the server rejects them"),
                .connect(.candidate),
            ] + self.updateLED()
        }
        if inventory.stored {
            self.state = .connecting
            return [.connect(.stored)] + self.updateLED()
        }
        self.state = .provisioning
        self.provisioningInFlight = true
        return [.log(.info, "no stored credentials: provisioning"), .provision(reprovision: false)] + self.updateLED()
    }

    public mutating func provisioningFinished(_ outcome: ProvisionOutcome, now: Duration) -> [Action] {
        if let trigger = self.reprovisioning {
            return self.reprovisioningFinished(outcome, trigger: trigger, now: now)
        }
        guard self.state == .provisioning || self.isNeedsPerson, self.blocked == nil else { return [] }
        self.provisioningInFlight = false
        switch outcome {
        case .success:
            self.hasStoredCredentials = true
            self.storedRejected = false
            self.personNeeded = nil
            self.backoff.reset()
            self.state = .connecting
            return [.storeProvisionedCredentials, .connect(.stored)] + self.updateLED()
        case .refused(let message):
            // A person must act on the server; keep asking, slowly, so the board recovers by itself once they do.
            self.personNeeded = message
            self.state = .needsPerson(message)
            let delay = self.settings.backoffCap
            return [.log(.error, message), .startTimer(.retry, after: delay)] + self.updateLED()
        case .failed(let message):
            self.state = self.personNeeded.map { .needsPerson($0) } ?? .provisioning
            let delay = self.backoff.next(using: &self.random)
            return [.log(.warning, message), .startTimer(.retry, after: delay)] + self.updateLED()
        }
    }

    public mutating func connected(now: Duration) -> [Action] {
        guard self.state == .connecting else { return [] }
        self.state = .online
        self.consecutiveRejections = 0
        self.storedRejected = false
        self.candidateRejected = false
        self.personNeeded = nil
        var actions: [Action] = []
        if self.tryingCandidate {
            self.tryingCandidate = false
            self.hasCandidate = false
            self.hasStoredCredentials = true
            actions.append(.commitCandidate)
            actions.append(.log(.info, "the new credentials connected: they replace the old ones"))
        }
        actions += [.announce, .flushSpool, .startTimer(.connectionStable, after: self.settings.stableAfter)]
        return actions + self.updateLED()
    }

    public mutating func connectFailed(_ failure: ConnectFailure, now: Duration) -> [Action] {
        guard self.state == .connecting else { return [] }
        let actions: [Action] = [.cancelTimer(.connectionStable)]
        if self.tryingCandidate {
            self.tryingCandidate = false
            return actions + self.candidateFailed(failure, now: now) + self.updateLED()
        }
        return actions + self.storedFailed(failure, now: now) + self.updateLED()
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
            case .offline, .needsPerson:
                if self.blocked != nil || self.reprovisioning == .credentialsRejected { return [] }
                if self.hasCandidate {
                    self.tryingCandidate = true
                    self.state = .connecting
                    return [.connect(.candidate)] + self.updateLED()
                }
                if self.hasStoredCredentials {
                    self.state = .connecting
                    return [.connect(.stored)] + self.updateLED()
                }
                return self.provisionFirst()
            case .provisioning:
                return self.provisionFirst()
            default:
                return []
            }
        }
    }

    /// A long press on the button, or the `reprovision` RPC.
    public mutating func reprovisionRequested(_ trigger: ReprovisionTrigger, now: Duration) -> [Action] {
        self.requestReprovision(trigger, now: now).actions
    }

    /// A long press on the button, or the `reprovision` RPC, with the answer to give (the RPC's reply).
    ///
    /// Every request that starts a provisioning session draws on the one budget of `reprovisionsPerHour`, shared
    /// with the automatic re-provisioning after rejections; a request over it starts nothing and says when the next
    /// one is allowed.
    public mutating func requestReprovision(_ trigger: ReprovisionTrigger, now: Duration)
        -> (answer: ReprovisionAnswer, actions: [Action])
    {
        if let blocked = self.blocked {
            let answer = ReprovisionAnswer.unavailable(blocked)
            return (answer, [.log(.error, answer.description)])
        }
        switch self.state {
        case .idle, .stopped:
            return (.unavailable("the agent is not running"), [])
        default:
            break
        }
        if self.provisioningInFlight || self.reprovisioning != nil || self.hasCandidate {
            let detail =
                self.hasCandidate
                ? "the credentials it issued are being tried (they stay stored until the server accepts or rejects them)"
                : "a provisioning session is running"
            return (.alreadyUnderWay, [.log(.info, "\(trigger.rawValue) re-provisioning request ignored: \(detail)")])
        }
        if let wait = self.reprovisionWait(now: now) {
            let answer = ReprovisionAnswer.overBudget(limit: self.settings.reprovisionsPerHour, nextAllowedIn: wait)
            return (answer, [.log(.warning, "\(trigger.rawValue): \(answer.description)")])
        }
        self.reprovisions.append(now)
        self.provisioningInFlight = true
        guard self.hasStoredCredentials else {
            // Nothing stored: this is the first provisioning, asked for again now.
            self.state = .provisioning
            return (
                .started,
                [.log(.info, "provisioning now (\(trigger.rawValue))"), .cancelTimer(.retry), .provision(reprovision: false)]
                    + self.updateLED()
            )
        }
        self.reprovisioning = trigger
        return (
            .started,
            [
                .log(.info, "re-provisioning (\(trigger.rawValue)); the current credentials stay in use until new ones have connected"),
                .provision(reprovision: true),
            ] + self.updateLED()
        )
    }

    public mutating func buttonHeldPastThreshold(_ held: Bool) -> [Action] {
        self.buttonHeldPastThreshold = held
        return self.updateLED()
    }

    public mutating func identify(_ on: Bool) -> [Action] {
        self.identifying = on
        return self.updateLED()
    }

    /// A claim request was sent with the button (true) or its window is over (false): the LED shows `claiming`
    /// while nothing needs a person and the agent is online.
    public mutating func claimWindow(_ open: Bool) -> [Action] {
        self.claimWindowOpen = open
        return self.updateLED()
    }

    public mutating func shutdown() -> [Action] {
        let wasConnected = self.state == .online || self.state == .connecting
        self.state = .stopped
        self.reprovisioning = nil
        self.provisioningInFlight = false
        var actions: [Action] = [.cancelTimer(.retry), .cancelTimer(.connectionStable), .flushSpool]
        if wasConnected { actions.append(.disconnect) }
        return actions + self.updateLED()
    }

    // MARK: helpers

    private var isNeedsPerson: Bool {
        if case .needsPerson = self.state { return true }
        return false
    }

    /// Where the machine waits between attempts: offline, or waiting for a person.
    private mutating func rest() {
        self.state = self.personNeeded.map { .needsPerson($0) } ?? .offline
    }

    private mutating func needPerson(_ message: String) -> [Action] {
        self.personNeeded = message
        if self.state != .connecting { self.state = .needsPerson(message) }
        return [.log(.error, message)]
    }

    private mutating func provisionFirst() -> [Action] {
        self.state = .provisioning
        self.provisioningInFlight = true
        return [.provision(reprovision: false)] + self.updateLED()
    }

    /// The candidate's connect failed.
    private mutating func candidateFailed(_ failure: ConnectFailure, now: Duration) -> [Action] {
        switch failure {
        case .transient(let reason):
            // A blip: the server has these credentials and will not issue others. Keep them and try again.
            self.rest()
            let delay = self.backoff.next(using: &self.random)
            return [
                .log(.warning, "the new credentials could not be tried (\(reason)); they are kept (pending) and tried again in \(Self.waitText(delay)): only the server's rejection discards them"),
                .startTimer(.retry, after: delay),
            ]
        case .credentialsRejected:
            self.hasCandidate = false
            var actions: [Action] = [.discardCandidate]
            if self.hasStoredCredentials && !self.storedRejected {
                // The stored ones may still work (a long press while they did, or a restart with pending credentials).
                self.candidateRejected = true
                self.state = .connecting
                actions += [
                    .log(.error, "the server rejected the new credentials it had issued (the device was deleted or its credentials changed on the server since): they are discarded; trying the stored ones"),
                    .connect(.stored),
                ]
                return actions
            }
            actions += self.needPerson(
                "the server rejected the new credentials it had issued\(self.hasStoredCredentials ? ", and it rejects the stored ones too" : ""): a person must act. ThingsBoard provisions a device only once: delete this device on the server (the agent then provisions it again by itself), or check the provision key and secret in [provisioning]")
            self.rest()
            let delay = self.hasStoredCredentials ? self.backoff.next(using: &self.random) : self.settings.backoffCap
            actions.append(.startTimer(.retry, after: delay))
            return actions
        }
    }

    /// The stored credentials' connect failed.
    private mutating func storedFailed(_ failure: ConnectFailure, now: Duration) -> [Action] {
        var actions: [Action] = []
        switch failure {
        case .credentialsRejected:
            self.consecutiveRejections += 1
            self.storedRejected = true
            if self.candidateRejected {
                self.candidateRejected = false
                actions += self.needPerson(
                    "the server rejected the new credentials it had issued and now rejects the stored ones too: a person must act. ThingsBoard provisions a device only once: delete this device on the server (the agent then provisions it again by itself), or check the provision key and secret in [provisioning]")
            }
            self.rest()
            if self.consecutiveRejections >= self.settings.rejectionsBeforeReprovision {
                if let wait = self.reprovisionWait(now: now) {
                    let message =
                        "the server keeps rejecting the stored credentials (the device was deleted or its credentials changed on the server) and the re-provisioning limit (\(self.settings.reprovisionsPerHour) per hour) is reached: a person must act; check the device on the server. The next re-provisioning is allowed in \(Self.waitText(wait))"
                    if self.personNeeded == nil {
                        actions += self.needPerson(message)
                        self.rest()
                    } else {
                        actions.append(.log(.error, message))
                    }
                    actions.append(.startTimer(.retry, after: self.backoff.next(using: &self.random)))
                } else {
                    self.reprovisions.append(now)
                    self.reprovisioning = .credentialsRejected
                    self.provisioningInFlight = true
                    actions += [
                        .log(.warning, "the server rejected the stored credentials \(self.consecutiveRejections) times in a row (device deleted or credentials changed on the server): provisioning again"),
                        .provision(reprovision: true),
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
            self.rest()
            actions += [.log(.warning, reason), .startTimer(.retry, after: self.backoff.next(using: &self.random))]
        }
        return actions
    }

    private mutating func reprovisioningFinished(_ outcome: ProvisionOutcome, trigger: ReprovisionTrigger, now: Duration)
        -> [Action]
    {
        self.reprovisioning = nil
        self.provisioningInFlight = false
        switch outcome {
        case .success:
            // Stored as the pending generation first (the server will not issue them again), then tried on the main
            // session; they replace the stored ones once they connect.
            self.hasCandidate = true
            self.tryingCandidate = true
            self.state = .connecting
            return [.storeCandidate, .disconnect, .connect(.candidate)] + self.updateLED()
        case .refused(let message), .failed(let message):
            var actions: [Action] = []
            let refused: Bool
            if case .refused = outcome { refused = true } else { refused = false }
            if refused {
                self.showingError = true
                actions.append(.startTimer(.errorDisplayOver, after: self.settings.errorDisplay))
            }
            let resting = self.state == .offline || self.isNeedsPerson
            if refused && self.storedRejected {
                // The stored credentials are rejected and the server will not provision the device again.
                actions += self.needPerson(
                    "the server rejects the stored credentials and refused to provision this device again: a person must act. \(message)")
            } else {
                actions.append(.log(.error, "re-provisioning did not succeed, the current credentials stay in force: \(message)"))
            }
            if trigger == .credentialsRejected || (refused && self.storedRejected), resting {
                // The stored credentials are dead: keep trying to connect (perhaps they come back), and let the
                // rejection count start the next bounded re-provisioning.
                self.consecutiveRejections = 0
                self.rest()
                actions.append(.startTimer(.retry, after: self.backoff.next(using: &self.random)))
            }
            return actions + self.updateLED()
        }
    }

    /// How long until the budget allows another re-provisioning, or nil if it does now.
    private mutating func reprovisionWait(now: Duration) -> Duration? {
        let window = Duration.seconds(3600)
        self.reprovisions.removeAll { now - $0 >= window }
        let limit = self.settings.reprovisionsPerHour
        guard limit > 0 else { return window }
        guard self.reprovisions.count >= limit else { return nil }
        // The oldest of the last `limit` leaves the window first.
        return self.reprovisions[self.reprovisions.count - limit] + window - now
    }

    /// A wait in whole seconds, rounded up.
    static func roundedUp(_ duration: Duration) -> Duration {
        let (seconds, attoseconds) = duration.components
        return .seconds(attoseconds > 0 ? seconds + 1 : seconds)
    }

    /// A wait as a person reads it, rounded up: `12 s`, `39 min`.
    static func waitText(_ duration: Duration) -> String {
        let seconds = Self.roundedUp(duration).components.seconds
        return seconds < 60 ? "\(seconds) s" : "\((seconds + 59) / 60) min"
    }

    private mutating func updateLED() -> [Action] {
        let signal: LEDState
        if self.buttonHeldPastThreshold {
            signal = .releaseNow
        } else if self.identifying {
            signal = .identify
        } else if self.showingError {
            signal = .attention
        } else if self.personNeeded != nil && self.state != .online && self.state != .stopped {
            signal = .attention
        } else if self.claimWindowOpen && self.state == .online && self.reprovisioning == nil {
            signal = .claiming
        } else {
            switch self.state {
            case .idle, .stopped: signal = .off
            case .provisioning: signal = .provisioning
            case .connecting:
                signal = self.reprovisioning != nil || self.tryingCandidate ? .provisioning : .connecting
            case .offline:
                signal = self.reprovisioning != nil || self.hasCandidate ? .provisioning : .buffering
            case .online: signal = self.reprovisioning != nil ? .provisioning : .online
            case .needsPerson: signal = .attention
            }
        }
        guard signal != self.led else { return [] }
        self.led = signal
        return [.setLED(signal)]
    }
}

/// What the credential store holds when the agent starts.
public struct CredentialInventory: Sendable, Equatable {
    /// Credentials for the configured server are stored (the current generation, or the previous one).
    public var stored: Bool
    /// Credentials from an unfinished re-provisioning are stored as the pending generation.
    public var pending: Bool
    /// Why the stored credentials may be neither used nor replaced (written by a newer tb-agent, unreadable):
    /// the agent neither connects nor provisions, and a person must act.
    public var blocked: String?

    public init(stored: Bool, pending: Bool = false, blocked: String? = nil) {
        self.stored = stored
        self.pending = pending
        self.blocked = blocked
    }
}
