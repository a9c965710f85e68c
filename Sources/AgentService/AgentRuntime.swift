import AgentCore
import AgentHost
import AgentPlatform
import Logging
import ServiceLifecycle
import Synchronization
import TBJSON
import UnixSignals

/// `tb-agent run`: the service. One task owns every piece of mutable state and handles one event at a time;
/// the decisions are the core's (`AgentStateMachine`, `SamplingSchedule`, `ClockSanity`, `TelemetryEncoder`),
/// this type only carries them out through its ports: the MQTT session (`DeviceLinks`), the credential store,
/// the provisioner, the board, the clock, systemd.
///
/// Work it starts has one owner and a bound: timers are deadlines in one table with one ticker task; the MQTT
/// session, its announcement, the provisioning session and the signal watcher each run in one owned task slot
/// (`TaskSlots`), cancelled with the loop; a PUBLISH's acknowledgement is a callback, not a task; sensor reads run
/// on the board's own thread, one at a time (`SamplingSchedule` coalesces the rest). Everything reaches the loop
/// through one `EventQueue`, in order; server messages in it are bounded (beyond the inbox limit they are dropped
/// and counted), and libmosquitto drops oversized ones unread.
public final class AgentRuntime: Service, CustomStringConvertible {
    public struct Options: Sendable {
        /// At most this many PUBLISHes awaiting their PUBACK (the link's window). The loop hands the link up to
        /// twice as many telemetry PUBLISHes: those beyond the window wait in the link, which sends the next one as
        /// soon as a PUBACK makes room, without a hop through the loop.
        public var inFlightWindow: Int = 16
        /// How many spooled records go into one PUBLISH at most (each record is one sampling round).
        public var recordsPerPublish: Int = 64
        public var machine: AgentStateMachine<SystemRandomNumberGenerator>.Settings = .init()
        /// Milliseconds since the epoch before which the wall clock is certainly wrong (the build time).
        public var clockFloor: Int64 = AgentBuild.timestampMilliseconds
        public var statusSocketPath: String? = nil
        /// Called once, when everything the start needed is done (just before READY=1): `tb-agent run` gives back
        /// the pages only the start touched (`ProcessHardening.releaseStartupPages`).
        public var whenStarted: (@Sendable () -> Void)? = nil
        /// Client attributes published on every connect (agent version, board, network…).
        public var clientAttributes: [(String, JSONValue)] = []
        /// How often the agent's own figures and the sensors' health go out as telemetry.
        public var figuresInterval: Duration = .seconds(60)
        /// Server messages (RPCs, attribute updates) waiting for the loop; more are dropped and counted.
        public var inboxLimit: Int = 64
        /// … and at most this many bytes of them (topics and payloads): 64 messages of up to 64 KiB each would
        /// otherwise hold 4 MiB.
        public var inboxByteLimit: Int = 256 * 1024
        /// At most this many RPC replies handed to the link and not yet done (PUBACK, or the session ended); a
        /// server that sends RPCs faster than it takes their replies gets no more replies, counted, instead of an
        /// outgoing queue in libmosquitto that grows without bound.
        public var pendingRepliesLimit: Int = 32
        /// Readings held while the clock is not trustworthy; older ones are dropped and counted.
        public var heldReadingsLimit: Int = 10_000
        /// How often a newer clock floor is saved (and at shutdown): few writes to flash.
        public var clockFloorSaveInterval: Duration = .seconds(3600)
        /// The server's limits (issue 12): the share of each window used, `getSessionLimits`' time box, the live and
        /// replay shares, the unknown-limit learner. Its `inFlightWindow` and `recordsPerPublish` are the two above.
        public var flowControl = TelemetryFlowControl.Settings()
        /// Where `ota/` (the firmware download) lives: the state directory; nil: no OTA (the `[ota]` table aside).
        public var otaStateDirectory: String? = nil
        /// The version this agent runs (`current_fw_version`).
        public var agentVersion: String = "0.0.0"
        /// How the download waits and syncs (`OTADownload.Settings`: timeout, tries, sync cadence); title and chunk
        /// size come from `[ota]`.
        public var otaTuning: (@Sendable (inout OTADownload.Settings) -> Void)? = nil
        public init() {}
    }

    /// What the loop works through.
    public struct Ports: Sendable {
        public var links: any DeviceLinks
        public var store: any CredentialKeeping
        public var provisioner: any Provisioning
        public var board: (any BoardIO)?
        public var notifier: SystemdNotifier
        public var clock: any AgentClock
        /// Where the newest stored timestamp survives restarts (nil: only the build time bounds the clock).
        public var clockFloor: (any ClockFloorKeeping)?

        public init(
            links: any DeviceLinks, store: any CredentialKeeping, provisioner: any Provisioning, board: (any BoardIO)?,
            notifier: SystemdNotifier, clock: any AgentClock = SystemClock(), clockFloor: (any ClockFloorKeeping)? = nil
        ) {
            self.clockFloor = clockFloor
            self.links = links
            self.store = store
            self.provisioner = provisioner
            self.board = board
            self.notifier = notifier
            self.clock = clock
        }
    }

    public let description = "tb-agent"
    let configuration: AgentConfiguration
    let deviceName: String
    let ports: Ports
    let spoolDirectory: String
    let spoolSettings: SpoolSettings
    let logger: Logger
    let options: Options
    let reload: (@Sendable () -> Result<AgentConfiguration, AgentError>)?
    /// The latest `getStatus` document, for the status socket's thread.
    let statusSnapshot = Mutex<JSONValue>(.null)
    let statusServer = Mutex<StatusSocketServer?>(nil)
    /// Server messages dropped: the inbox was full, or the payload was above the limit.
    let droppedMessages = Atomic<UInt64>(0)
    /// RPC replies handed to the link and not yet done (the loop adds, the link's completion removes).
    let pendingReplies = Atomic<Int>(0)
    /// RPC replies not sent because `pendingRepliesLimit` were still under way.
    let droppedReplies = Atomic<UInt64>(0)

    /// What a server message counts against `inboxByteLimit`.
    static func inboxCost(_ topic: String, _ payload: [UInt8]) -> Int { topic.utf8.count + payload.count }

    public init(
        configuration: AgentConfiguration, deviceName: String, ports: Ports, spoolDirectory: String,
        spoolSettings: SpoolSettings = .init(), logger: Logger, options: Options = .init(),
        reload: (@Sendable () -> Result<AgentConfiguration, AgentError>)? = nil
    ) {
        self.configuration = configuration
        self.deviceName = deviceName
        self.ports = ports
        self.spoolDirectory = spoolDirectory
        self.spoolSettings = spoolSettings
        self.logger = logger
        self.options = options
        self.reload = reload
    }

    public func run() async throws {
        var loop = Loop(runtime: self)
        try await loop.run()
    }

    /// The `getStatus` document as the loop last published it.
    public var status: JSONValue { self.statusSnapshot.withLock { $0 } }
}

/// The build time, so that a clock reading earlier than it is known to be wrong.
public enum AgentBuild {
    /// 2026-11-27 00:00:00 UTC; bump on release (a later value only makes the check stricter).
    public static let timestampMilliseconds: Int64 = 1_795_737_600_000
}

enum RuntimeEvent: Sendable {
    case connectFinished(session: Int, LinkConnectOutcome)
    case link(session: Int, LinkEvent)
    /// A telemetry PUBLISH is done: `sequences` are the spooled records its PUBACK acknowledges, `token` the flow
    /// control's (`TelemetryFlowControl.sent`).
    case published(session: Int, sequences: [UInt64], token: UInt64, ok: Bool)
    case announced(session: Int)
    case provisioned(Result<DeviceCredentials, AgentError>)
    /// Readings and the monotonic time they were taken, captured where they were taken: the loop may get to them
    /// later.
    case sampled([(String, JSONValue)], at: Duration)
    case board(BoardEvent, at: Duration)
    /// The ticker's deadline passed.
    case tick
    case reload
    /// The verified firmware package was checked off the loop: nil, it may be installed; otherwise why not.
    case otaInspected(OTAKind, problem: String?)
}

/// What the loop waits for, each at most once: the deadline table's keys.
enum Deadline: Hashable, Sendable {
    case machine(AgentStateMachine<SystemRandomNumberGenerator>.Timer)
    case identifyOver
    /// The window of a claim request sent with the button is over: the LED goes back.
    case claimWindowOver
    case watchdog
    case spoolSync
    case figures
    case sampling
    case saveClockFloor
    /// The `getSessionLimits` answer's time box (`TelemetryFlowControl.deadline`).
    case sessionLimits
    /// Telemetry waits for tokens or a back-off: pump again then.
    case pump
    /// A firmware or software chunk's timeout (`OTADownload.deadline`).
    case ota(OTAKind)
    /// This version is on trial after an update and has stayed online for `[ota] confirm_after`.
    case otaConfirm
    /// Look for the root step's outcome (after the confirmation).
    case otaOutcome
}

/// Tasks the loop owns, one per slot: starting a slot's task cancels the one before; the loop cancels and awaits
/// them all when it stops.
struct TaskSlots {
    enum Slot: Hashable {
        case ticker, connect, announce, provision, signals
        /// Checking a verified firmware package (`FirmwareInspector`) or installing a software package
        /// (`[ota.software] command`): a child process on a thread of its own.
        case otaInspect(OTAKind)
        /// Closing an old session (DISCONNECT waits for the server, bounded).
        case retire
    }

    private var tasks: [Slot: Task<Void, Never>] = [:]

    mutating func start(_ slot: Slot, _ body: @escaping @Sendable () async -> Void) {
        self.tasks.removeValue(forKey: slot)?.cancel()
        self.tasks[slot] = Task(operation: body)
    }

    /// Starts `body` after the slot's current task has finished (never two at once, none lost).
    mutating func chain(_ slot: Slot, _ body: @escaping @Sendable () async -> Void) {
        let previous = self.tasks[slot]
        self.tasks[slot] = Task {
            await previous?.value
            await body()
        }
    }

    mutating func cancel(_ slot: Slot) { self.tasks.removeValue(forKey: slot)?.cancel() }

    func isRunning(_ slot: Slot) -> Bool { self.tasks[slot] != nil }

    mutating func finished(_ slot: Slot) { self.tasks[slot] = nil }

    /// Cancels every task except `keep` (awaited) and waits for all of them.
    mutating func stopAll(except keep: Set<Slot> = []) async {
        for (slot, task) in self.tasks where !keep.contains(slot) { task.cancel() }
        for task in self.tasks.values { await task.value }
        self.tasks = [:]
    }
}

/// The event loop's state. A struct owned by the one task that runs `run()`: no locks needed.
struct Loop {
    typealias Machine = AgentStateMachine<SystemRandomNumberGenerator>
    /// While events keep coming, the ticker and the status snapshot are brought up to date every this many.
    static let statusEvery = 64

    let runtime: AgentRuntime
    var configuration: AgentConfiguration
    var machine: Machine
    /// Everything the loop handles, from any thread, in order; server messages in it are limited to the inbox.
    let queue: EventQueue<RuntimeEvent>
    var logger: Logger { self.runtime.logger }
    var ports: AgentRuntime.Ports { self.runtime.ports }
    var clock: any AgentClock { self.runtime.ports.clock }

    // Owned work
    var slots = TaskSlots()
    var deadlines: [Deadline: Duration] = [:]
    /// The deadline the ticker task sleeps until.
    var tickerTarget: Duration? = nil
    // MQTT
    var session = 0
    var link: (any DeviceLink)? = nil
    /// The session's connect has succeeded (events before it are the connect's business).
    var linkUp = false
    /// The session closed before its connect reported success.
    var closedEarly: String? = nil
    /// Until when a claim request sent with the button blocks another (ThingsBoard keeps the first for its window).
    var claimLockedUntil: Duration? = nil
    var candidate: DeviceCredentials? = nil
    // Telemetry
    /// The server's limits: what may be sent when (`TelemetryFlowControl`, one for the life of the process, so that
    /// its buckets outlive sessions as the server's do).
    var flow: TelemetryFlowControl
    /// Spooled records up to this one were there when the session came up: the backlog (replay); later ones are
    /// live. The two are sent through a cursor each.
    var replayBoundary: UInt64 = 0
    var sentReplay: UInt64 = 0
    var sentLive: UInt64 = 0
    /// The current link's in-flight window (the server's `maxInflightMessages` as known when it was created).
    var linkWindow = 1
    /// No reconnect before this (a limit the agent was not told closed the connection).
    var reconnectHold: Duration? = nil
    /// Connections closed right after a publish without its PUBACK (`agent_rate_limited`).
    var rateLimited: UInt64 = 0
    /// Readings dropped because no message the server accepts can carry them (`agent_readings_too_large`).
    var readingsTooLarge: UInt64 = 0
    var tooLargeLogged = false
    /// The announcement's messages that go through the limits as telemetry does, once the subscriptions are done
    /// (`announcementsReady`): the client attributes (split to the data-point window: ThingsBoard counts each key)
    /// and the shared-attribute request.
    var announcements: [(topic: String, payload: [UInt8], dataPoints: Int)] = []
    var announcementsReady = false
    /// Telemetry PUBLISHes handed to the link and not acknowledged yet (at most twice the window).
    var inFlight = 0
    /// The last `pump()` stopped because the in-flight window was full (more records may wait), not because the spool
    /// had no more to send.
    var windowFull = false
    var stamper: ReadingStamper
    /// Payloads of readings handled since the loop last wrote to the spool: written together (`spoolReadings()`),
    /// one write for all of them instead of one per reading, before the loop waits and every `statusEvery` events.
    var unspooled: [[UInt8]] = []
    /// Spooled records the server has acknowledged since the loop last told the spool: told together
    /// (`acknowledgeSpooled()`), once per run of events instead of once per PUBACK.
    var acknowledged: [UInt64] = []
    /// The floor as last saved (or loaded).
    var savedClockFloor: Int64? = nil
    var overrides = RemoteControl.IntervalOverrides()
    var sampling = SamplingSchedule()
    // Figures
    var reconnects = 0
    var published = 0
    var oversizedLogged = false
    var lastError: String? = nil
    /// Storage problems logged and when: a full or read-only file system fails every write, and each problem is
    /// logged once (again every 10 minutes), not once per reading.
    var storageLogged: [String: Duration] = [:]
    var spoolFailing = false
    enum LimitedLog: Hashable { case attributes, badRPC, replies }
    var limitedLogged: [LimitedLog: (at: Duration, suppressed: Int)] = [:]

    let spool: Spool
    // Firmware updates (`OTADownload`; nil when disabled)
    /// The firmware and the software download (none when OTA is off).
    var downloads: [OTAKind: OTADownload] = [:]
    let otaFiles: [OTAKind: OTAPartialFile]
    /// The firmware download (the agent itself).
    var ota: OTADownload? {
        get { self.downloads[.firmware] }
        set { self.downloads[.firmware] = newValue }
    }
    /// What the agent and the root step exchange in `state_dir/ota/` (nil when OTA is off).
    let updateFiles: UpdateFiles?
    /// This version was installed by an update and has not confirmed it yet.
    var trial: UpdateTicket? = nil
    var otaNotes: [String] = []
    /// The chunk request the download asked for, not handed to the link yet (the server's limits).
    var pendingChunks: [OTAKind: (topic: String, payload: [UInt8])] = [:]
    /// The LED state the machine asked for last (shown as `updating` while a download runs online).
    var machineLED: LEDState = .off
    var shownLED: LEDState? = nil

    init(runtime: AgentRuntime) {
        self.runtime = runtime
        self.spool = Spool(directoryOrMemory: runtime.spoolDirectory, settings: runtime.spoolSettings)
        self.configuration = runtime.configuration
        self.machine = Machine(settings: runtime.options.machine, random: SystemRandomNumberGenerator())
        self.queue = EventQueue(limit: runtime.options.inboxLimit, costLimit: runtime.options.inboxByteLimit)
        let stored = runtime.ports.clockFloor?.load()
        self.stamper = ReadingStamper(
            sanity: ClockSanity(buildTime: runtime.options.clockFloor, newestStored: stored), limit: runtime.options.heldReadingsLimit)
        self.savedClockFloor = stored
        var flowSettings = runtime.options.flowControl
        flowSettings.inFlightWindow = runtime.options.inFlightWindow
        flowSettings.recordsPerPublish = runtime.options.recordsPerPublish
        self.flow = TelemetryFlowControl(
            rateLimits: runtime.configuration.server.rateLimits, settings: flowSettings, now: runtime.ports.clock.now())
        self.linkWindow = self.flow.inFlightWindow
        let otaSettings = runtime.configuration.ota
        if otaSettings.enabled, let directory = runtime.options.otaStateDirectory {
            let file = OTAPartialFile(stateDirectory: directory)
            let (restored, notes) = file.restore()
            var settings = OTADownload.Settings(title: otaSettings.title, version: runtime.options.agentVersion, chunkSize: otaSettings.chunkSize)
            runtime.options.otaTuning?(&settings)
            let files = UpdateFiles(stateDirectory: directory)
            let handedOver = restored.map { files.ready()?.package == $0.package } ?? false
            self.updateFiles = files
            self.otaNotes = notes
            let firmware = OTADownload(settings: settings, restored: restored, handedOver: handedOver, outcome: files.outcome())
            // Software packages: their own partial file, and what was installed last.
            let softwareFile = OTAPartialFile(directory: directory + "/ota/software")
            let (softwareRestored, softwareNotes) = softwareFile.restore()
            let installed = softwareFile.installed()
            // The firmware's settings (chunk size, timeouts, tuning), for what runs now and of the other kind.
            var softwareSettings = settings
            softwareSettings.kind = .software
            softwareSettings.title = installed?.title ?? ""
            softwareSettings.version = installed?.version ?? ""
            if otaSettings.softwareCommand == nil {
                softwareSettings.refusal = "this agent has no [ota.software] command to install software packages with: add one to its configuration (the package's path is appended as its last argument), or assign software packages only to devices that have one"
            }
            self.otaFiles = [.firmware: file, .software: softwareFile]
            self.downloads = [.firmware: firmware, .software: OTADownload(settings: softwareSettings, restored: softwareRestored)]
            self.otaNotes += softwareNotes
            if let trial = files.trial(), trial.package.version == settings.version, files.confirmed() != settings.version {
                self.trial = trial
                self.otaNotes.append("this is \(trial.package) on trial after an update from \(trial.from): it confirms the update once it has stayed online for \(DurationText.format(otaSettings.confirmAfter))")
            }
        } else {
            self.otaFiles = [:]
            self.updateFiles = nil
        }
    }

    var now: Duration { self.clock.now() }

    // MARK: the loop

    mutating func run() async throws {
        let queue = self.queue
        let clock = self.clock
        if let board = self.ports.board {
            do {
                try board.start(emit: { queue.append(.board($0, at: clock.now())) })
            } catch {
                self.logger.error("the board could not be set up; sensors that need it will report failures", metadata: ["error": "\(error)"])
                self.lastError = error.description
            }
        }
        for note in self.spool.recoveryNotes + self.otaNotes { self.logger.warning("\(note)") }
        // The root step is at work (installing, or watching a trial this version may already have confirmed).
        if let files = self.updateFiles, self.ota?.phase.isUpdating == true || HostProcess.exists(files.trialPath) {
            self.setDeadline(.otaOutcome, after: .seconds(2))
        }
        self.startBackgroundWork()
        self.configureSampling()
        self.perform(self.machine.start(self.ports.store.inventory()))
        self.runtime.options.whenStarted?()
        self.ports.notifier.ready(status: "starting as \(self.runtime.deviceName)")
        self.armTicker()
        self.publishStatus()
        // Only now: a status socket opened before the first snapshot answered `null` (`tb-agent status --json`
        // right after a start printed it).
        self.startStatusSocket()

        // Graceful shutdown closes the queue: the loop handles what is already queued, then stops. (Not
        // `cancelOnGracefulShutdown()`: its merge with the shutdown signal cost more per event than the event itself,
        // a third of the CPU when publishing fast.) The readings handled are spooled (and published), the ticker and
        // the status snapshot brought up to date when the queue is empty and every `Self.statusEvery` events in
        // between: not once per event, which cost as much as a PUBLISH, and never later than a few events.
        await withGracefulShutdownHandler {
            var handled = 0
            while await queue.wait(quietLimit: self.acknowledgementsPerWakeUp) {
                while let event = queue.next() {
                    self.handle(event)
                    handled &+= 1
                    if handled % Self.statusEvery == 0 { self.caughtUp() }
                }
                self.caughtUp()
            }
        } onGracefulShutdown: {
            queue.close()
        }
        await self.shutdown()
    }

    /// What waits for the end of a run of events: the readings go to the spool and out, the ticker follows the
    /// deadlines, the status snapshot the state.
    mutating func caughtUp() {
        self.acknowledgeSpooled()
        self.spoolReadings()
        self.armTicker()
        self.publishStatus()
    }

    mutating func handle(_ event: RuntimeEvent) {
        switch event {
        case .connectFinished(let session, let outcome):
            guard session == self.session else { return }
            self.slots.finished(.connect)
            switch outcome {
            case .connected:
                self.linkUp = true
                if self.machine.reprovisioning == nil && self.candidate == nil { self.reconnects += 1 }
                self.perform(self.machine.connected(now: self.now))
                if let reason = self.closedEarly { self.linkClosed(reason) }
            case .rejected(let message):
                self.link = nil
                self.lastError = message
                self.perform(self.machine.connectFailed(.credentialsRejected, now: self.now))
            case .failed(let message):
                self.link = nil
                self.lastError = message
                self.perform(self.machine.connectFailed(.transient(message), now: self.now))
            }
        case .link(let session, let linkEvent):
            guard session == self.session else { return }
            switch linkEvent {
            case .closed(let reason):
                if self.linkUp { self.linkClosed(reason) } else { self.closedEarly = reason }
            case .message(let topic, let payload):
                self.received(topic: topic, payload: payload)
            case .oversized(let topic, let bytes):
                if !self.oversizedLogged {
                    self.oversizedLogged = true
                    self.logger.warning(
                        "dropped a server message of \(bytes) bytes on \(String(topic.prefix(120))) unread: it is above the agent's limit for incoming messages; further ones are only counted (agent_dropped_messages)")
                }
            }
        case .published(let session, let sequences, let token, let ok):
            guard session == self.session else { return }
            self.inFlight = max(0, self.inFlight - 1)
            if ok {
                self.flow.acknowledged(token, now: self.now)
                self.published += sequences.count
                self.acknowledged += sequences
                self.pump()
            }
        case .announced(let session):
            guard session == self.session else { return }
            self.slots.finished(.announce)
            // Subscribed: the client attributes and the attribute request may go (the answer's topic is listened to).
            self.announcementsReady = true
            self.pump()
        case .provisioned(let result):
            self.slots.finished(.provision)
            switch result {
            case .success(let credentials):
                if self.machine.reprovisioning != nil {
                    self.candidate = credentials
                } else {
                    // First provisioning: persist before anything else (ThingsBoard never returns them again).
                    do {
                        try self.ports.store.save(credentials)
                    } catch {
                        self.storageProblem(error)
                        self.perform(self.machine.provisioningFinished(.failed(error.message), now: self.now))
                        return
                    }
                }
                self.perform(self.machine.provisioningFinished(.success, now: self.now))
            case .failure(let error):
                self.lastError = error.message
                let outcome: Machine.ProvisionOutcome =
                    error.code == .provisioningRefused ? .refused(error.message) : .failed(error.message)
                self.perform(self.machine.provisioningFinished(outcome, now: self.now))
            }
        case .sampled(let values, let takenAt):
            self.record(values, at: takenAt)
            if let next = self.sampling.finished() { self.startSample(next) }
        case .board(let boardEvent, let takenAt):
            switch boardEvent {
            case .reading(let key, let value):
                self.record(key, value, at: takenAt)
            case .reprovisionRequested:
                self.logger.notice("long press: re-provisioning requested with the button")
                self.perform(self.machine.reprovisionRequested(.button, now: self.now))
            case .claimRequested:
                self.claimRequested()
            case .releaseNow(let held):
                self.perform(self.machine.buttonHeldPastThreshold(held))
            case .notice(let text):
                self.logger.warning("\(text)")
            }
        case .tick:
            self.tickerTarget = nil
            self.slots.finished(.ticker)
            self.fireDueDeadlines()
        case .reload:
            self.reloadConfiguration()
        case .otaInspected(let kind, let problem):
            self.slots.finished(.otaInspect(kind))
            if let actions = self.downloads[kind]?.inspected(problem: problem) { self.carryOutOTA(actions, kind) }
        }
    }

    /// Tells the spool which records the server acknowledged (they are trimmed once all before them are too).
    mutating func acknowledgeSpooled() {
        guard !self.acknowledged.isEmpty else { return }
        do { try self.spool.acknowledge(self.acknowledged) } catch { self.storageProblem(error) }
        self.acknowledged.removeAll(keepingCapacity: true)
    }

    mutating func linkClosed(_ reason: String) {
        // The server (or the network) closed it: right after a publish without its PUBACK, a limit the agent was
        // not told (the reconnect is held back; `perform` applies the hold to the retry timer).
        self.carryOut(self.flow.closed(now: self.now))
        self.link = nil
        self.linkUp = false
        self.closedEarly = nil
        self.inFlight = 0
        self.resetCursors()
        self.slots.cancel(.announce)
        self.otaDisconnected()
        self.lastError = reason
        self.perform(self.machine.disconnected(reason: reason, now: self.now))
    }

    // MARK: deadlines

    mutating func setDeadline(_ deadline: Deadline, after delay: Duration) {
        self.deadlines[deadline] = self.now + delay
    }

    /// Fires every deadline that has passed, oldest first.
    mutating func fireDueDeadlines() {
        let now = self.now
        let due = self.deadlines.filter { $0.value <= now }.sorted { $0.value < $1.value }
        for (deadline, _) in due {
            self.deadlines[deadline] = nil
            self.fire(deadline, now: now)
        }
    }

    mutating func fire(_ deadline: Deadline, now: Duration) {
        switch deadline {
        case .machine(let timer):
            self.perform(self.machine.timerFired(timer, now: now))
        case .identifyOver:
            self.perform(self.machine.identify(false))
        case .claimWindowOver:
            self.perform(self.machine.claimWindow(false))
        case .watchdog:
            // Fed from the loop itself: a hung loop stops feeding and systemd restarts the agent. Every quarter of
            // WatchdogSec, so that a loop late by a busy moment still feeds within half of it.
            self.ports.notifier.watchdog()
            if let interval = self.ports.notifier.watchdogInterval { self.setDeadline(.watchdog, after: interval / 2) }
        case .spoolSync:
            do { try self.spool.sync() } catch { self.storageProblem(error) }
            self.setDeadline(.spoolSync, after: self.spoolSyncInterval)
        case .figures:
            self.record(self.figures(), at: now)
            self.setDeadline(.figures, after: self.runtime.options.figuresInterval)
        case .sampling:
            if let request = self.sampling.tick(now: now) { self.startSample(request) }
            if let next = self.sampling.nextDeadline { self.deadlines[.sampling] = next }
        case .saveClockFloor:
            self.saveClockFloor()
            self.setDeadline(.saveClockFloor, after: self.runtime.options.clockFloorSaveInterval)
        case .sessionLimits:
            self.carryOut(self.flow.tick(now: now))
            self.deadlines[.sessionLimits] = self.flow.deadline
            self.pump()
        case .pump:
            self.pump()
        case .ota(let kind):
            if let actions = self.downloads[kind]?.tick(now: now) { self.carryOutOTA(actions, kind) }
        case .otaConfirm:
            guard let trial = self.trial, let files = self.updateFiles else { return }
            do throws(AgentError) {
                try files.confirm(version: trial.package.version)
                self.logger.notice("\(trial.package) stayed online for \(DurationText.format(self.configuration.ota.confirmAfter)): the update is confirmed; the root step makes it final")
                self.trial = nil
                self.setDeadline(.otaOutcome, after: .seconds(1))
            } catch {
                self.storageProblem(error)
                self.setDeadline(.otaConfirm, after: .seconds(10))
            }
        case .otaOutcome:
            guard let files = self.updateFiles else { return }
            if let outcome = files.outcome() {
                if let actions = self.ota?.outcome(outcome) { self.carryOutOTA(actions) }
            } else if HostProcess.exists(files.trialPath) || HostProcess.exists(files.readyPath) {
                // The root step is at work (installing, or waiting for the confirmation).
                self.setDeadline(.otaOutcome, after: .seconds(2))
            }
        }
    }

    /// Carries out what the flow control asks (other than its PUBLISHes, which `announce()` sends).
    mutating func carryOut(_ actions: [TelemetryFlowControl.Action]) {
        for action in actions {
            switch action {
            case .send: break
            case .info(let text): self.logger.info("\(text)")
            case .warning(let text): self.logger.warning("\(text)")
            case .countRateLimited: self.rateLimited &+= 1
            case .holdReconnect(let until): self.reconnectHold = max(self.reconnectHold ?? until, until)
            }
        }
    }

    /// Both send cursors back to what the server has acknowledged (a session ended: what it did not acknowledge
    /// is sent again on the next one).
    mutating func resetCursors() {
        self.acknowledgeSpooled()  // what was acknowledged is not sent again
        self.sentReplay = self.spool.acknowledgedThrough
        self.sentLive = self.spool.acknowledgedThrough
        self.deadlines[.sessionLimits] = nil
        self.deadlines[.pump] = nil
    }

    mutating func saveClockFloor() {
        guard let keeper = self.ports.clockFloor, self.stamper.sanity.floor > self.stamper.sanity.buildTime,
            self.savedClockFloor.map({ $0 != self.stamper.sanity.floor }) ?? true
        else { return }
        do {
            try keeper.save(self.stamper.sanity.floor)
            self.savedClockFloor = self.stamper.sanity.floor
        } catch {
            self.storageProblem(error)
        }
    }

    /// One ticker task sleeps until the earliest deadline; it is replaced only when that deadline moves earlier.
    mutating func armTicker() {
        guard let earliest = self.deadlines.values.min() else { return }
        if let target = self.tickerTarget, target <= earliest, self.slots.isRunning(.ticker) { return }
        self.tickerTarget = earliest
        let clock = self.clock
        let queue = self.queue
        self.slots.start(.ticker) {
            do {
                try await clock.sleep(until: earliest)
            } catch {
                return  // replaced or stopping
            }
            queue.append(.tick)
        }
    }

    /// A full sync a little more often than the sync interval: the spool's own check when a reading is appended
    /// then never finds one due, so a reading (a door that just opened) does not wait for fsyncs before it is
    /// published. Readings still reach flash within the interval.
    var spoolSyncInterval: Duration { max(self.spool.settings.syncInterval * 9 / 10, .milliseconds(200)) }

    mutating func startBackgroundWork() {
        if self.ports.notifier.watchdogInterval != nil { self.deadlines[.watchdog] = self.now }
        self.setDeadline(.spoolSync, after: self.spoolSyncInterval)
        self.setDeadline(.figures, after: self.runtime.options.figuresInterval)
        self.setDeadline(.saveClockFloor, after: self.runtime.options.clockFloorSaveInterval)
        let queue = self.queue
        self.slots.start(.signals) {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { queue.append(.reload) }
        }
    }

    // MARK: carrying out the machine's actions

    mutating func perform(_ actions: [Machine.Action]) {
        for action in actions {
            switch action {
            case .provision:
                self.startProvisioning()
            case .connect(let choice):
                let credentials: DeviceCredentials?
                switch choice {
                case .stored: credentials = self.ports.store.load()
                case .candidate:
                    // After a restart the candidate is the pending generation on flash.
                    if self.candidate == nil { self.candidate = self.ports.store.loadPending() }
                    credentials = self.candidate
                }
                guard let credentials else {
                    self.logger.error("no credentials to connect with; provisioning")
                    self.perform(self.machine.connectFailed(.transient("no credentials"), now: self.now))
                    continue
                }
                self.connect(with: credentials)
            case .storeProvisionedCredentials:
                break  // stored when the result arrived, before the machine was told
            case .storeCandidate:
                if let candidate = self.candidate {
                    do {
                        try self.ports.store.savePending(candidate)
                        self.logger.notice("re-provisioned: the new credentials are stored (pending until they connect)", metadata: ["credentials": "\(candidate)"])
                    } catch {
                        self.storageProblem(error)  // tried from memory all the same: the server has no others
                    }
                }
            case .commitCandidate:
                if let candidate = self.candidate {
                    do {
                        try self.ports.store.commitPending(candidate)
                        self.logger.notice("the new credentials replace the old ones", metadata: ["credentials": "\(candidate)"])
                    } catch {
                        self.storageProblem(error)
                    }
                }
                self.candidate = nil
            case .discardCandidate:
                self.candidate = nil
                do { try self.ports.store.discardPending() } catch { self.storageProblem(error) }
            case .disconnect:
                self.retireLink()
            case .announce:
                self.announce()
                self.pump()
            case .startTimer(let timer, let delay):
                self.setDeadline(.machine(timer), after: delay)
                if timer == .retry, let hold = self.reconnectHold {
                    // A limit the agent was not told closed the connection: no reconnect before the back-off.
                    if hold > self.now { self.deadlines[.machine(timer)] = max(self.now + delay, hold) }
                    self.reconnectHold = nil
                }
            case .cancelTimer(let timer):
                self.deadlines[.machine(timer)] = nil
            case .setLED(let state):
                self.machineLED = state
                self.showLED(always: true)
            case .log(let level, let text):
                switch level {
                case .info: self.logger.info("\(text)")
                case .warning: self.logger.warning("\(text)")
                case .error: self.logger.error("\(text)")
                }
            case .flushSpool:
                self.acknowledgeSpooled()
                self.spoolReadings()
                do { try self.spool.sync() } catch { self.storageProblem(error) }
            }
        }
    }

    /// Ends the current session (events of the old session are ignored from now on).
    mutating func retireLink() {
        self.session += 1
        self.slots.cancel(.connect)
        self.slots.cancel(.announce)
        self.linkUp = false
        self.closedEarly = nil
        self.inFlight = 0
        self.flow.retired()
        self.resetCursors()
        self.otaDisconnected()
        guard let link = self.link else { return }
        self.link = nil
        self.slots.chain(.retire) { await link.disconnect() }
    }

    mutating func startProvisioning() {
        guard !self.slots.isRunning(.provision) else { return }
        let provisioner = self.ports.provisioner
        let queue = self.queue
        self.slots.start(.provision) {
            let result = await provisioner.provision()
            queue.append(.provisioned(result))
        }
    }

    mutating func connect(with credentials: DeviceCredentials) {
        self.retireLink()
        let session = self.session
        let link: any DeviceLink
        do {
            // The agent's window, lowered to the server's `maxInflightMessages` as last known.
            link = try self.ports.links.link(
                for: credentials, deviceName: self.runtime.deviceName, inFlight: self.flow.inFlightWindow)
        } catch {
            self.lastError = error.message
            self.logger.error("\(error.message)")
            let failure: Machine.ConnectFailure =
                error.code == .credentialsRejected ? .credentialsRejected : .transient(error.message)
            self.perform(self.machine.connectFailed(failure, now: self.now))
            return
        }
        self.link = link
        self.linkWindow = self.flow.inFlightWindow
        let queue = self.queue
        let runtime = self.runtime
        self.slots.start(.connect) {
            let outcome = await link.connect { event in
                switch event {
                case .message(let topic, let payload):
                    // A bounded inbox: a server flooding RPCs cannot queue more than this much work, or memory.
                    let cost = AgentRuntime.inboxCost(topic, payload)
                    if queue.append(.link(session: session, event), limited: true, cost: cost) == .full {
                        runtime.droppedMessages.add(1, ordering: .relaxed)
                    }
                    return
                case .oversized:
                    runtime.droppedMessages.add(1, ordering: .relaxed)
                case .closed:
                    break
                }
                queue.append(.link(session: session, event))
            }
            queue.append(.connectFinished(session: session, outcome))
        }
    }

    // MARK: on connect

    mutating func announce() {
        guard let link = self.link else { return }
        // What was spooled before the session came up is the backlog; from here on, readings are live.
        self.replayBoundary = self.spool.lastSequence
        self.resetCursors()
        // Ask for the session's limits (the CONNECT cost a message token); telemetry follows them once known.
        let now = self.now
        let limitsRequests: [(topic: String, payload: [UInt8])] = self.flow.connected(now: now).compactMap { action in
            if case .send(let topic, let payload) = action { return (topic, payload) }
            return nil
        }
        self.deadlines[.sessionLimits] = self.flow.deadline
        let session = self.session
        let queue = self.queue
        let sensorNames = self.configuration.sensors.map(\.name)
        var attributes: [(String, JSONValue)] = self.runtime.options.clientAttributes
        attributes.append(("sensors", .array(sensorNames.map { .string($0) })))
        let attributesPayload = JSONValue.object(attributes).serializedBytes
        let otaKeys = self.downloads.keys.sorted { $0.rawValue < $1.rawValue }.flatMap { $0.topics.sharedKeys }
        let request: JSONValue = ["sharedKeys": .string((RemoteControl.IntervalOverrides.keys(sensors: sensorNames) + otaKeys).joined(separator: ","))]
        // The two SUBSCRIBEs of charged topics cost a message token each; the client attributes and the attribute
        // request go through the limits once subscribed (`sendAnnouncements`).
        for _ in 0..<2 { self.flow.sentOther(dataPoints: 0, now: now) }
        self.announcements = [
            (TelemetryEncoder.attributesTopic, attributesPayload, TelemetryCost.dataPoints(attributesPayload) ?? attributes.count),
            (RemoteControl.attributesRequestPrefix + "1", request.serializedBytes, 0),
        ]
        self.announcementsReady = false
        let logger = self.logger
        let otaFilters = self.downloads.isEmpty ? [] : OTAKind.allCases.map(\.topics.responseFilter) + [OTATopics.errorTopic]
        for kind in OTAKind.allCases {
            if let actions = self.downloads[kind]?.connected(now: now) { self.carryOutOTA(actions, kind) }
        }
        if self.trial != nil { self.setDeadline(.otaConfirm, after: self.configuration.ota.confirmAfter) }
        self.slots.start(.announce) {
            do throws(AgentError) {
                // ThingsBoard keeps no session: subscribe again on every connect.
                let filters = [
                    RemoteControl.attributesTopic, RemoteControl.rpcRequestFilter, RemoteControl.attributesResponseFilter,
                    SessionLimitsProtocol.responseFilter,
                ] + otaFilters
                let granted = try await link.subscribe(filters)
                for (filter, ok) in zip(filters, granted) where !ok {
                    logger.warning("the server refused the subscription", metadata: ["mqtt.filter": "\(filter)"])
                }
                // The limits first: backlogged telemetry waits for them (bounded by the time box).
                for request in limitsRequests { try link.publish(request.topic, payload: request.payload, done: nil) }
            } catch {
                if !Task.isCancelled { logger.warning("could not subscribe or announce on connect", metadata: ["error": "\(error)"]) }
            }
            queue.append(.announced(session: session))
        }
    }

    // MARK: server messages

    mutating func received(topic: String, payload: [UInt8]) {
        if topic.hasPrefix(SessionLimitsProtocol.responsePrefix), let actions = self.flow.received(topic: topic, payload: payload, now: self.now) {
            // The session's limits (or why the configured ones stay in force): telemetry follows them from now on.
            self.carryOut(actions)
            self.deadlines[.sessionLimits] = self.flow.deadline
            self.pump()
            return
        }
        for kind in OTAKind.allCases where topic.hasPrefix(kind.topics.responsePrefix) {
            let now = self.now
            if let actions = self.downloads[kind]?.chunk(topic: topic, payload: payload, now: now) { self.carryOutOTA(actions, kind) }
            return
        }
        if topic == OTATopics.errorTopic {
            // Both kinds' errors come here: it answers the download waiting for a chunk (firmware first).
            let kind = OTAKind.allCases.first { self.downloads[$0]?.deadline != nil } ?? .firmware
            if let actions = self.downloads[kind]?.serverError(payload) { self.carryOutOTA(actions, kind) }
            return
        }
        if topic == RemoteControl.attributesTopic || topic.hasPrefix(RemoteControl.attributesResponsePrefix) {
            guard let update = try? JSONValue.parse(payload, lenient: true) else {
                self.logger.warning("ignored a shared-attribute message that is not JSON", metadata: ["mqtt.topic": "\(topic)"])
                return
            }
            let now = self.now
            for kind in OTAKind.allCases {
                if let actions = self.downloads[kind]?.attributes(update, now: now) { self.carryOutOTA(actions, kind) }
            }
            let problems = self.overrides.apply(update, sensors: Set(self.configuration.sensors.map(\.name)))
            if !problems.isEmpty { self.logLimited(.attributes, problems) }
            self.configureSampling()
            return
        }
        guard let rpc = RemoteControl.parseRPC(topic: topic, payload: payload) else { return }
        let reply: JSONValue
        switch rpc.result {
        case .failure(let error):
            self.logLimited(.badRPC, ["answered a bad RPC (id \(String(rpc.id.prefix(40)))) with an error: \(error.message)"])
            reply = error.reply
        case .success(.getStatus):
            reply = self.statusDocument()
        case .success(.sampleNow):
            // One read at a time: a burst of requests is merged into one pending read.
            if let request = self.sampling.requestAll() { self.startSample(request) }
            reply = ["sampling": .integer(Int64(self.configuration.sensors.count))]
        case .success(.identify(let duration)):
            // One identify timer: a new request replaces the end of the one under way.
            self.perform(self.machine.identify(true))
            self.setDeadline(.identifyOver, after: duration)
            reply = ["identify": .string(DurationText.format(duration))]
        case .success(.reprovision):
            let (answer, actions) = self.machine.requestReprovision(.remote, now: self.now)
            self.perform(actions)
            reply = answer.reply
        }
        self.reply(rpc, reply)
    }

    /// Hands an RPC's reply to the link, unless `pendingRepliesLimit` replies are still under way: then it is
    /// dropped and counted (the server's RPC times out), so that a server that never takes its replies cannot grow
    /// the agent's memory.
    mutating func reply(_ rpc: RemoteControl.RPC, _ reply: JSONValue) {
        guard let link = self.link else { return }
        let runtime = self.runtime
        guard runtime.pendingReplies.load(ordering: .relaxed) < runtime.options.pendingRepliesLimit else {
            runtime.droppedReplies.add(1, ordering: .relaxed)
            self.logLimited(.replies, ["did not answer RPC \(String(rpc.id.prefix(40))): \(runtime.options.pendingRepliesLimit) replies are still waiting for the server to take them; further ones are only counted (agent_dropped_replies)"])
            return
        }
        // The server's message limit: a reply that would go over it is dropped and counted like one the server does
        // not take (replies are already bounded; waiting for tokens would only hold the RPC past its timeout).
        let payload = reply.serializedBytes
        let bytes = TelemetryCost.remainingLength(topic: rpc.responseTopic, payloadBytes: payload.count)
        guard case .now = self.flow.decision(forOther: 0, bytes: bytes, now: self.now) else {
            runtime.droppedReplies.add(1, ordering: .relaxed)
            self.logLimited(.replies, ["did not answer RPC \(String(rpc.id.prefix(40))): the server's message rate limit (or packet limit) would be exceeded; further ones are only counted (agent_dropped_replies)"])
            return
        }
        self.flow.sentOther(dataPoints: 0, now: self.now)
        runtime.pendingReplies.add(1, ordering: .relaxed)
        do {
            try link.publish(rpc.responseTopic, payload: payload) { _ in
                runtime.pendingReplies.subtract(1, ordering: .relaxed)
            }
        } catch {
            runtime.pendingReplies.subtract(1, ordering: .relaxed)
        }
    }

    // MARK: claiming

    /// Three short presses: publishes the claim request (at most one per claim window), and the LED shows
    /// `claiming` for the window. ThingsBoard answers only with the PUBACK, so the log says what a person does next
    /// rather than whether the claim will work. The secret is never logged.
    mutating func claimRequested() {
        let logger = self.logger
        guard let claiming = self.configuration.claiming else {
            logger.warning("three short presses ask ThingsBoard to let a person claim this device, but the configuration has no [claiming] table: add it with secret_file = \"/etc/tb-agent/claim-secret\" (or secret = \"…\"); nothing was sent")
            return
        }
        let now = self.now
        if let until = self.claimLockedUntil, now < until {
            logger.notice("three short presses: a claim request was sent with the button less than \(DurationText.format(claiming.duration)) ago and ThingsBoard keeps the first one for its window; nothing was sent (the next press counts in \(DurationText.format(Self.wholeSeconds(until - now))); `tb-agent claim` sends one anyway)")
            return
        }
        guard let link = self.link, self.linkUp else {
            logger.warning("three short presses: not connected to the server, so no claim request was sent; press again once the LED is steady on, or run `tb-agent claim`")
            return
        }
        let request = ClaimRequest(claiming)
        let payload = request.payload
        let bytes = TelemetryCost.remainingLength(topic: ClaimRequest.topic, payloadBytes: payload.count)
        guard case .now = self.flow.decision(forOther: 0, bytes: bytes, now: now) else {
            logger.warning("three short presses: the server's message rate limit would be exceeded, so no claim request was sent; press again in a minute")
            return
        }
        self.flow.sentOther(dataPoints: 0, now: now)
        let instructions = request.instructions(deviceName: self.runtime.deviceName)
        do {
            try link.publish(ClaimRequest.topic, payload: payload) { acknowledged in
                if acknowledged {
                    logger.notice("claim request sent with the button. \(instructions)")
                } else {
                    logger.warning("the claim request sent with the button was not acknowledged (the connection ended first); press again once online, or run `tb-agent claim`")
                }
            }
        } catch {
            logger.warning("three short presses: the claim request could not be sent (\(error.message)); press again once online, or run `tb-agent claim`")
            return
        }
        self.claimLockedUntil = now + request.duration
        self.perform(self.machine.claimWindow(true))
        self.setDeadline(.claimWindowOver, after: request.duration)
    }

    /// A wait rounded up to whole seconds, for people.
    static func wholeSeconds(_ duration: Duration) -> Duration {
        let (seconds, attoseconds) = duration.components
        return .seconds(attoseconds > 0 ? seconds + 1 : seconds)
    }

    // MARK: telemetry

    /// Starts a read on the board's thread; its values come back as `.sampled`.
    func startSample(_ request: SamplingSchedule.Request) {
        let queue = self.queue
        let clock = self.clock
        guard let board = self.ports.board else {
            queue.append(.sampled([], at: clock.now()))
            return
        }
        board.sample(request.names) { values in queue.append(.sampled(values, at: clock.now())) }
    }

    /// One reading (a digital input's change): stamped and encoded without the groups and lists around it when the
    /// clock is plausible and nothing is held, as `record(_:at:)` otherwise.
    mutating func record(_ key: String, _ value: JSONValue, at taken: Duration) {
        guard let ts = self.stamper.stampNow(taken: taken, now: self.now, wall: self.clock.wallMilliseconds()) else {
            self.record([(key, value)], at: taken)
            return
        }
        if let payload = TelemetryEncoder.payload(key: key, value: value, timestamp: ts) {
            self.unspooled.append(payload)
        } else {
            self.unspooled += TelemetryEncoder.payloads([Reading(key: key, value: value, timestamp: ts)]).payloads
        }
    }

    /// Stamps values with the time they were taken (`ReadingStamper`) and encodes them; `spoolReadings()` spools
    /// and publishes them once the loop has caught up with its events.
    mutating func record(_ values: [(String, JSONValue)], at taken: Duration) {
        let clock = self.clock
        let (groups, notices) = self.stamper.stamp(
            values, taken: taken, now: self.now, wall: clock.wallMilliseconds(), synchronized: { clock.isSynchronized() })
        for notice in notices {
            switch notice {
            case .floorCorrected:
                self.logger.warning("the system clock is synchronised but reads earlier than the newest stored reading: that one was stamped by a clock set into the future; the synchronised clock is trusted from now on")
            case .holding(let floor):
                self.logger.warning("the system clock is not set (it reads before this agent was built or before the newest stored reading, \(UTCTimestamp(secondsSinceEpoch: floor / 1000))); holding readings in memory until it is (at most \(self.stamper.limit), then the oldest are dropped and counted)")
            }
        }
        for group in groups { self.unspooled += TelemetryEncoder.payloads(group).payloads }
    }

    /// Writes the readings handled since the last call to the spool, in one go, and sends what the window allows.
    mutating func spoolReadings() {
        guard !self.unspooled.isEmpty else { return }
        do { try self.spool.append(contentsOf: self.unspooled) } catch { self.storageProblem(error) }
        self.unspooled.removeAll(keepingCapacity: true)
        if self.spool.problem != nil {
            self.spoolFailing = true
        } else if self.spoolFailing {
            self.spoolFailing = false
            self.storageLogged = [:]
            self.logger.notice("the spool works again: readings are written to flash again")
        }
        self.pump()
    }

    /// Sends spooled records as the server's limits allow (`TelemetryFlowControl`): the backlog (records spooled
    /// before the session came up) and live readings each oldest first, sharing the rate budget; batches sized to
    /// the limits; tokens waited for (a deadline pumps again). Each PUBLISH is handed to the link here, on the loop,
    /// so each source's batches leave in spool order; the link sends them as its window allows, and each PUBACK
    /// comes back as a callback. At most twice the link's window is handed over (the link holds the second half
    /// and sends it as PUBACKs make room), or the server's window if it is smaller than the link's.
    mutating func pump() {
        guard self.machine.state == .online, self.linkUp, let link = self.link else { return }
        self.windowFull = false
        self.deadlines[.pump] = nil
        guard self.sendAnnouncements(link) else { return }
        self.sendChunkRequest(link)
        let limit = self.runtime.options.recordsPerPublish
        while true {
            let window = self.flow.inFlightWindow
            let handOver = window < self.linkWindow ? window : 2 * self.linkWindow
            guard self.inFlight < handOver else {
                self.windowFull = true
                return
            }
            let replay: [SpoolRecord]
            let live: [SpoolRecord]
            do {
                if self.sentReplay < self.replayBoundary {
                    let boundary = self.replayBoundary
                    let records = try self.spool.pending(after: self.sentReplay, limit: limit)
                    replay = records.last.map { $0.sequence <= boundary } ?? true ? records : Array(records.prefix { $0.sequence <= boundary })
                } else {
                    replay = []
                }
                // Without a rate limit the backlog goes first (`TelemetryFlowControl.next`): no need to read on.
                let liveWaits = self.flow.sharesBudget || replay.isEmpty
                live = liveWaits ? try self.spool.pending(after: max(self.sentLive, self.replayBoundary), limit: limit) : []
            } catch {
                self.storageProblem(error)
                return
            }
            let now = self.now
            // The window is checked above (twice the link's, when the server's is not lower): the flow control is told
            // what is in flight only while it awaits the limits (it then lets one PUBLISH out at a time).
            let inFlight = self.flow.exchange.awaitingAnswer ? self.inFlight : 0
            switch self.flow.next(live: live, replay: replay, inFlight: inFlight, now: now) {
            case .idle:
                return
            case .blocked:
                return
            case .wait(let until):
                self.deadlines[.pump] = until
                return
            case .unsendable(let sequence, let source, let reason, let dropped):
                // Never sendable: acknowledged so that the spool moves on, counted and logged once.
                self.acknowledged.append(sequence)
                self.advance(source, through: sequence)
                self.readingsTooLarge &+= UInt64(max(1, dropped.count))
                self.logTooLarge(reason)
            case .publish(let publish, let source):
                if !publish.dropped.isEmpty {
                    self.readingsTooLarge &+= UInt64(publish.dropped.count)
                    self.logTooLarge("\(publish.dropped.count) reading(s) of a spooled record are larger than any message the server accepts")
                }
                let token = self.flow.sent(publish, source, now: now)
                let session = self.session
                let queue = self.queue
                let sequences = publish.acknowledges
                do {
                    try link.publish(TelemetryEncoder.topic, payload: publish.payload) { ok in
                        // A PUBACK wakes the loop only with others (`acknowledgementsPerWakeUp`); a failure at once.
                        queue.append(.published(session: session, sequences: sequences, token: token, ok: ok), urgent: !ok)
                    }
                } catch {
                    // Not handed over (the session is ending): its close event follows; the records stay spooled.
                    self.flow.withdrawn(token)
                    return
                }
                if let through = publish.sentThrough { self.advance(source, through: through) }
                self.inFlight += 1
            }
        }
    }

    /// Sends the announcement's messages as the limits allow (before telemetry: they are few and small); false
    /// while some wait (for the subscriptions, the limits' answer or tokens: a deadline pumps again).
    mutating func sendAnnouncements(_ link: any DeviceLink) -> Bool {
        guard !self.announcements.isEmpty else { return true }
        guard self.announcementsReady else { return false }
        // With limits known, the answer first (it may change them); with none known, at once, as live readings.
        guard !self.flow.exchange.awaitingAnswer || self.flow.limits == .none else { return false }
        let now = self.now
        while let next = self.announcements.first {
            if next.dataPoints > 1, let cap = self.flow.budget.maxDataPoints, next.dataPoints > cap,
                let members = (try? JSONValue.parse(next.payload))?.objectMembers, members.count > 1
            {
                // ThingsBoard counts every key as a data point: more than the smallest window holds never passes.
                let chunks = stride(from: 0, to: members.count, by: cap).map { Array(members[$0..<min($0 + cap, members.count)]) }
                self.announcements.replaceSubrange(
                    0..<1, with: chunks.map { (next.topic, JSONValue.object($0).serializedBytes, $0.count) })
                continue
            }
            let bytes = TelemetryCost.remainingLength(topic: next.topic, payloadBytes: next.payload.count)
            switch self.flow.decision(forOther: next.dataPoints, bytes: bytes, now: now) {
            case .now:
                do {
                    try link.publish(next.topic, payload: next.payload, done: nil)
                } catch {
                    return false  // the session is ending: its close event follows
                }
                self.flow.sentOther(dataPoints: next.dataPoints, now: now)
                self.announcements.removeFirst()
            case .wait(let delay):
                self.deadlines[.pump] = now + delay
                return false
            case .never(let why):
                self.logger.warning("did not send \(next.topic): \(why)")
                self.announcements.removeFirst()
            }
        }
        return true
    }

    mutating func advance(_ source: LiveReplayShare.Source, through sequence: UInt64) {
        switch source {
        case .replay: self.sentReplay = max(self.sentReplay, sequence)
        case .live: self.sentLive = max(self.sentLive, sequence)
        }
    }

    mutating func logTooLarge(_ reason: String) {
        guard !self.tooLargeLogged else { return }
        self.tooLargeLogged = true
        self.logger.warning("dropped readings that no message within the server's limits can carry (\(reason)); further ones are only counted (agent_readings_too_large)")
    }

    /// How many PUBACKs may wait in the queue before they wake the loop (any other event wakes it at once, and it
    /// then handles them too, in order). While records wait to be handed over: half the window, so that one
    /// wake-up hands over half a window (the link holds up to a window more than it has in flight, so the wire
    /// never waits for the loop) instead of one wake-up, a thread hop and the dearest part of a PUBACK, per
    /// PUBLISH. Otherwise: every PUBLISH handed over, since nothing waits for them but the spool's trimming and the
    /// figures (the spool-sync tick, at least once a second, wakes the loop for them too).
    var acknowledgementsPerWakeUp: Int {
        guard self.inFlight > 1 else { return 1 }
        guard self.windowFull else { return self.inFlight }
        return max(1, min(self.inFlight, self.runtime.options.inFlightWindow / 2))
    }

    /// Sensors that share an interval are read together and go out as one entry (one timestamp), so a board with
    /// five sensors sends one message per round, not five.
    mutating func configureSampling() {
        guard self.ports.board != nil else { return }
        var wanted: [Duration: [String]] = [:]
        for sensor in self.configuration.sensors {
            let interval = self.overrides.interval(for: sensor.name, configured: sensor.interval ?? self.configuration.telemetry.interval)
            wanted[interval, default: []].append(sensor.name)
        }
        guard self.sampling.configure(wanted, now: self.now) else { return }
        self.deadlines[.sampling] = self.sampling.nextDeadline
    }

    mutating func reloadConfiguration() {
        guard let reload = self.runtime.reload else { return }
        self.ports.notifier.reloading()
        defer { self.ports.notifier.status("\(self.machine.led.rawValue) as \(self.runtime.deviceName)") }
        switch reload() {
        case .failure(let error):
            self.logger.error("the new configuration is invalid and was not applied; the running one stays in force", metadata: ["error": "\(error)"])
        case .success(let new):
            if new.server != self.configuration.server || new.provisioning != self.configuration.provisioning || new.device != self.configuration.device {
                self.logger.warning("changes to [server], [provisioning] and [device] take effect after a restart (systemctl restart tb-agent)")
            }
            var applied = self.configuration
            applied.sensors = new.sensors
            applied.telemetry = new.telemetry
            self.configuration = applied
            self.configureSampling()
            self.logger.notice("configuration reloaded: sensors and intervals updated")
        }
        self.ports.notifier.ready()
    }

    // MARK: status

    func statusDocument() -> JSONValue {
        let spool = self.spool.status
        let state: String
        switch self.machine.state {
        case .idle: state = "starting"
        case .provisioning: state = "provisioning"
        case .connecting: state = "connecting"
        case .online: state = "online"
        case .offline: state = "offline"
        case .needsPerson: state = "needs-attention"
        case .stopped: state = "stopping"
        }
        var members: [(String, JSONValue)] = [
            ("state", .string(state)),
            ("led", .string((self.shownLED ?? self.machine.led).rawValue)),
            ("device", .string(self.runtime.deviceName)),
            ("server", .string("\(self.configuration.server.host):\(self.configuration.server.port)")),
            ("uptimeSeconds", .integer(self.now.components.seconds)),
            ("spoolDepth", .integer(Int64(spool.depth))),
            ("spoolBytes", .integer(Int64(spool.bytes))),
            ("dropped", .integer(Int64(clamping: spool.dropped))),
            ("published", .integer(Int64(self.published))),
            ("reconnects", .integer(Int64(max(0, self.reconnects - 1)))),
            ("clockSet", .bool(!self.stamper.isHolding)),
            ("droppedMessages", .integer(Int64(clamping: self.runtime.droppedMessages.load(ordering: .relaxed)))),
            ("droppedReplies", .integer(Int64(clamping: self.runtime.droppedReplies.load(ordering: .relaxed)))),
            ("rateLimited", .integer(Int64(clamping: self.rateLimited))),
            ("readingsTooLarge", .integer(Int64(clamping: self.readingsTooLarge))),
            ("sessionLimits", .string(SessionLimitsExchange.describe(self.flow.limits))),
            ("sessionLimitsSource", .string(self.flow.exchange.source == .server ? "server" : "configured")),
        ]
        if self.stamper.isHolding || self.stamper.dropped > 0 {
            members.append(("heldReadings", .integer(Int64(self.stamper.held.count))))
            members.append(("heldDropped", .integer(Int64(clamping: self.stamper.dropped))))
        }
        if case .needsPerson(let message) = self.machine.state { members.append(("problem", .string(message))) }
        if let reprovisioning = self.machine.reprovisioning { members.append(("reprovisioning", .string(reprovisioning.rawValue))) }
        if let lastError = self.lastError { members.append(("lastError", .string(lastError))) }
        if let problem = self.spool.problem {
            members.append(("storage", .string("\(problem.message); readings are kept in memory and still sent (\(spool.inMemory) now)")))
        }
        if let ota = self.ota { members.append(("ota", Self.otaStatus(ota))) }
        if let software = self.downloads[.software] { members.append(("software", Self.otaStatus(software))) }
        members.append(("sensors", self.ports.board?.health() ?? .object([])))
        return .object(members)
    }

    /// The agent's own figures and the sensors' health, as telemetry keys.
    func figures() -> [(String, JSONValue)] {
        let spool = self.spool.status
        var out: [(String, JSONValue)] = [
            ("agent_spool_depth", .integer(Int64(spool.depth))),
            ("agent_dropped", .integer(Int64(clamping: spool.dropped))),
            ("agent_reconnects", .integer(Int64(max(0, self.reconnects - 1)))),
            ("agent_uptime_s", .integer(self.now.components.seconds)),
            ("agent_dropped_messages", .integer(Int64(clamping: self.runtime.droppedMessages.load(ordering: .relaxed)))),
            ("agent_samples_coalesced", .integer(Int64(clamping: self.sampling.coalesced))),
            ("agent_rate_limited", .integer(Int64(clamping: self.rateLimited))),
        ]
        if self.readingsTooLarge > 0 { out.append(("agent_readings_too_large", .integer(Int64(clamping: self.readingsTooLarge)))) }
        if self.stamper.dropped > 0 { out.append(("agent_held_dropped", .integer(Int64(clamping: self.stamper.dropped)))) }
        let droppedReplies = self.runtime.droppedReplies.load(ordering: .relaxed)
        if droppedReplies > 0 { out.append(("agent_dropped_replies", .integer(Int64(clamping: droppedReplies)))) }
        if let health = self.ports.board?.health() { out.append(("sensor_health", health)) }
        return out
    }

    func publishStatus() {
        let document = self.statusDocument()
        self.runtime.statusSnapshot.withLock { $0 = document }
    }

    func startStatusSocket() {
        guard let path = self.runtime.options.statusSocketPath else { return }
        let runtime = self.runtime
        do {
            let server = try StatusSocketServer(path: path) { runtime.statusSnapshot.withLock { $0 } }
            runtime.statusServer.withLock { $0 = server }
        } catch {
            self.logger.warning("the status socket is not available; tb-agent status will show the stored state only", metadata: ["error": "\(error)"])
        }
    }

    /// Logs what a server can repeat at will at most once a minute per kind, saying how many were left out.
    mutating func logLimited(_ kind: LimitedLog, _ lines: [String]) {
        let now = self.now
        if let last = self.limitedLogged[kind], now - last.at < .seconds(60) {
            self.limitedLogged[kind]?.suppressed += lines.count
            return
        }
        let suppressed = self.limitedLogged[kind]?.suppressed ?? 0
        self.limitedLogged[kind] = (now, 0)
        for line in lines { self.logger.warning("\(line)") }
        if suppressed > 0 { self.logger.warning("(\(suppressed) more such problem(s) in the last minute were not logged)") }
    }

    mutating func storageProblem(_ error: AgentError) {
        self.lastError = error.message
        let now = self.now
        if let logged = self.storageLogged[error.message], now - logged < .seconds(600) { return }
        self.storageLogged[error.message] = now
        self.logger.error("\(error.description)")
    }

    // MARK: firmware updates

    /// Carries out the download's actions in order; a file that cannot be written ends the download (FAILED, the
    /// partial file removed) and the actions after it are dropped.
    mutating func carryOutOTA(_ actions: [OTADownload.Action], _ kind: OTAKind = .firmware) {
        guard self.downloads[kind] != nil, let file = self.otaFiles[kind] else { return }
        var todo = actions[...]
        while let action = todo.popFirst() {
            do throws(AgentError) {
                switch action {
                case .report(let values):
                    self.record(values.objectMembers ?? [], at: self.now)
                case .begin(let package):
                    // A new package: what was decided about another one no longer holds.
                    if kind == .firmware, let files = self.updateFiles { files.remove([files.outcomePath, files.readyPath]) }
                    try file.begin(package)
                case .request(let topic, let payload):
                    self.pendingChunks[kind] = (topic, payload)
                    if self.linkUp, let link = self.link { self.sendChunkRequest(link) }
                case .append(let bytes):
                    try file.append(bytes)
                case .sync(let durable):
                    try file.sync(durable: durable)
                case .markVerified:
                    try file.markVerified()
                case .discard:
                    file.discard()
                case .inspect(let package):
                    let queue = self.queue
                    let path = file.directory + "/package.part"
                    let ota = self.configuration.ota
                    self.slots.start(.otaInspect(kind)) {
                        // The child is killed when the loop stops (the slot's task is cancelled): a shutdown never
                        // waits for an install command. The next start checks or installs again.
                        let stopping = Atomic<Bool>(false)
                        let problem = await withTaskCancellationHandler {
                            await OffPool.run {
                                let cancelled = { stopping.load(ordering: .relaxed) }
                                guard kind == .software else {
                                    return FirmwareInspector.problem(package: package, path: path, isCancelled: cancelled)
                                }
                                return SoftwareInstaller.problem(
                                    package: package, path: path, command: ota.softwareCommand ?? [], timeout: ota.softwareTimeout,
                                    isCancelled: cancelled)
                            }
                        } onCancel: {
                            stopping.store(true, ordering: .relaxed)
                        }
                        if !Task.isCancelled { queue.append(.otaInspected(kind, problem: problem)) }
                    }
                case .handOver(let ticket):
                    try self.updateFiles?.writeReady(ticket)
                    self.setDeadline(.otaOutcome, after: .seconds(2))
                case .forgetOutcome:
                    if let files = self.updateFiles { files.remove([files.outcomePath]) }
                case .installed(let package):
                    try file.recordInstalled(package)
                    file.discard()
                case .log(.info, let text):
                    self.logger.info("\(text)")
                case .log(.warning, let text):
                    self.logger.warning("\(text)")
                }
            } catch {
                self.pendingChunks[kind] = nil
                todo = (self.downloads[kind]?.storageFailed(error.message) ?? [])[...]
            }
        }
        self.deadlines[.ota(kind)] = self.downloads[kind]?.deadline
        self.showLED()
    }

    /// Hands the pending chunk requests to the link as the server's limits allow (messages like any other).
    mutating func sendChunkRequest(_ link: any DeviceLink) {
        for kind in OTAKind.allCases {
            guard let request = self.pendingChunks[kind], self.machine.state == .online, self.linkUp else { continue }
            let now = self.now
            let bytes = TelemetryCost.remainingLength(topic: request.topic, payloadBytes: request.payload.count)
            switch self.flow.decision(forOther: 0, bytes: bytes, now: now) {
            case .now:
                do {
                    try link.publish(request.topic, payload: request.payload, done: nil)
                } catch {
                    return  // the session is ending: the next one asks again
                }
                self.flow.sentOther(dataPoints: 0, now: now)
                self.pendingChunks[kind] = nil
                self.downloads[kind]?.requestSent(now: now)
                self.deadlines[.ota(kind)] = self.downloads[kind]?.deadline
            case .wait(let delay):
                self.deadlines[.pump] = min(self.deadlines[.pump] ?? (now + delay), now + delay)
            case .never(let why):
                self.pendingChunks[kind] = nil
                self.logger.warning("could not request a \(kind == .firmware ? "firmware" : "software") chunk: \(why)")
            }
        }
    }

    mutating func otaDisconnected() {
        self.pendingChunks = [:]
        for kind in OTAKind.allCases {
            self.downloads[kind]?.disconnected()
            self.deadlines[.ota(kind)] = nil
        }
        self.deadlines[.otaConfirm] = nil
    }

    /// The machine's LED state, shown as `updating` while a firmware download runs online.
    /// `always`: the machine asked (shown even when unchanged, as before OTA); otherwise only a change is shown.
    mutating func showLED(always: Bool = false) {
        var state = self.machineLED
        if state == .online, self.linkUp {
            for download in self.downloads.values {
                switch download.phase {
                case .downloading, .verified, .updating: state = .updating
                default: break
                }
            }
        }
        guard always || state != self.shownLED else { return }
        self.shownLED = state
        self.ports.board?.show(state)
        self.ports.notifier.status("\(state.rawValue) as \(self.runtime.deviceName)")
    }

    static func otaStatus(_ ota: OTADownload) -> JSONValue {
        var members: [(String, JSONValue)] = [("current", .string("\(ota.current.title) \(ota.current.version)"))]
        switch ota.phase {
        case .idle:
            members.append(("state", .string("idle")))
        case .downloading(let package, let bytes):
            members += [
                ("state", .string("downloading")), ("package", .string("\(package.title) \(package.version)")),
                ("bytes", .integer(Int64(bytes))), ("size", .integer(Int64(package.size))),
                ("progress", .integer(Int64(bytes * 100 / max(1, package.size)))),
            ]
        case .verified(let package):
            members += [("state", .string("verified")), ("package", .string("\(package.title) \(package.version)"))]
        case .updating(let package):
            members += [("state", .string("updating")), ("package", .string("\(package.title) \(package.version)"))]
        case .failed(let package, let reason):
            members.append(("state", .string("failed")))
            if let package { members.append(("package", .string("\(package.title) \(package.version)"))) }
            members.append(("error", .string(reason)))
        }
        return .object(members)
    }

    // MARK: shutdown

    mutating func shutdown() async {
        self.ports.notifier.stopping()
        // What the loop handled last (it caught up before it stopped: nothing, as a rule).
        self.acknowledgeSpooled()
        self.spoolReadings()
        let actions = self.machine.shutdown()
        for action in actions {
            switch action {
            case .flushSpool:
                self.spoolReadings()
                do { try self.spool.sync() } catch { self.storageProblem(error) }
            default:
                break
            }
        }
        self.retireLink()
        self.saveClockFloor()
        // Every task the loop started ends here: the DISCONNECT of the last session is awaited, the rest cancelled.
        await self.slots.stopAll(except: [.retire])
        self.ports.board?.stop()
        self.runtime.statusServer.withLock { $0?.stop(); $0 = nil }
        self.logger.info("stopped")
    }
}
