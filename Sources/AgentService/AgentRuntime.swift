import AgentCore
import AgentMQTT
import AgentPlatform
import Logging
import ServiceLifecycle
import Synchronization
import TBJSON
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `tb-agent run`: the service. One task owns every piece of mutable state and handles one event at a time;
/// the decisions are `AgentStateMachine`'s, this type only carries its actions out (MQTT sessions, the spool,
/// the LED, timers, systemd notifications).
public final class AgentRuntime: Service, CustomStringConvertible {
    public struct Options: Sendable {
        /// At most this many telemetry PUBLISHes awaiting their PUBACK.
        public var inFlightWindow: Int = 16
        /// How many spooled records go into one PUBLISH at most (each record is one sampling round).
        public var recordsPerPublish: Int = 64
        public var machine: AgentStateMachine<SystemRandomNumberGenerator>.Settings = .init()
        /// Milliseconds since the epoch before which the wall clock is certainly wrong (the build time).
        public var clockFloor: Int64 = AgentBuild.timestampMilliseconds
        public var statusSocketPath: String? = nil
        /// Client attributes published on every connect (agent version, board, network…).
        public var clientAttributes: [(String, JSONValue)] = []
        /// How often the agent's own figures and the sensors' health go out as telemetry.
        public var figuresInterval: Duration = .seconds(60)
        public init() {}
    }

    public let description = "tb-agent"
    let configuration: AgentConfiguration
    let deviceName: String
    let store: any CredentialKeeping
    let provisioner: any Provisioning
    let board: (any BoardIO)?
    let spoolDirectory: String
    let spoolSettings: SpoolSettings
    let notifier: SystemdNotifier
    let logger: Logger
    let options: Options
    let reload: (@Sendable () -> Result<AgentConfiguration, AgentError>)?
    /// The latest `getStatus` document, for the status socket's thread.
    let statusSnapshot = Mutex<JSONValue>(.null)
    let statusServer = Mutex<StatusSocketServer?>(nil)

    public init(
        configuration: AgentConfiguration, deviceName: String, store: any CredentialKeeping, provisioner: any Provisioning,
        board: (any BoardIO)?, spoolDirectory: String, spoolSettings: SpoolSettings = .init(), notifier: SystemdNotifier, logger: Logger, options: Options = .init(),
        reload: (@Sendable () -> Result<AgentConfiguration, AgentError>)? = nil
    ) {
        self.configuration = configuration
        self.deviceName = deviceName
        self.store = store
        self.provisioner = provisioner
        self.board = board
        self.spoolDirectory = spoolDirectory
        self.spoolSettings = spoolSettings
        self.notifier = notifier
        self.logger = logger
        self.options = options
        self.reload = reload
    }

    public func run() async throws {
        var loop = try Loop(runtime: self)
        try await loop.run()
    }
}

/// The build time, so that a clock reading earlier than it is known to be wrong.
public enum AgentBuild {
    /// 2026-11-27 00:00:00 UTC; bump on release (a later value only makes the check stricter).
    public static let timestampMilliseconds: Int64 = 1_795_737_600_000
}

enum RuntimeEvent: Sendable {
    case connectFinished(session: Int, Result<Void, MQTTError>)
    case mqtt(session: Int, MQTTEvent)
    case published(session: Int, sequences: [UInt64], ok: Bool)
    case subscribed(session: Int)
    case provisioned(Result<DeviceCredentials, AgentError>)
    case timer(AgentStateMachine<SystemRandomNumberGenerator>.Timer, generation: Int)
    /// Readings and the (monotonic) time they were taken, captured where they were taken: the loop may get to
    /// them later.
    case sampled([(String, JSONValue)], at: ContinuousClock.Instant)
    case board(BoardEvent, at: ContinuousClock.Instant)
    case identifyOver(generation: Int)
    case watchdog
    case reload
    case spoolSync
    case figures
}

/// The event loop's state. A struct owned by the one task that runs `run()`: no locks needed.
struct Loop {
    typealias Machine = AgentStateMachine<SystemRandomNumberGenerator>

    let runtime: AgentRuntime
    var configuration: AgentConfiguration
    var machine: Machine
    let events: AsyncStream<RuntimeEvent>
    let emit: AsyncStream<RuntimeEvent>.Continuation
    var logger: Logger { self.runtime.logger }

    // MQTT
    var session = 0
    var client: MosquittoClient? = nil
    var candidate: DeviceCredentials? = nil
    var reprovisionTask: Task<Void, Never>? = nil
    // Telemetry
    var sentThrough: UInt64 = 0
    var inFlight = 0
    var clock: ClockSanity
    var heldReadings: [(taken: Duration, key: String, value: JSONValue)] = []
    var overrides = RemoteControl.IntervalOverrides()
    var samplers: [Duration: Task<Void, Never>] = [:]
    var samplerGroups: [Duration: [String]] = [:]
    // Timers
    var timerGenerations: [Machine.Timer: Int] = [:]
    var timerTasks: [Machine.Timer: Task<Void, Never>] = [:]
    var identifyGeneration = 0
    var background: [Task<Void, Never>] = []
    // Figures
    let started = ContinuousClock.now
    var reconnects = 0
    var published = 0
    var lastError: String? = nil
    /// Storage problems logged and when: a full or read-only file system fails every write, and each problem is
    /// logged once (again every 10 minutes), not once per reading.
    var storageLogged: [String: Duration] = [:]
    var spoolFailing = false

    let spool: Spool

    init(runtime: AgentRuntime) throws(AgentError) {
        self.runtime = runtime
        self.spool = try Spool(directory: runtime.spoolDirectory, settings: runtime.spoolSettings)
        self.configuration = runtime.configuration
        self.machine = Machine(settings: runtime.options.machine, random: SystemRandomNumberGenerator())
        (self.events, self.emit) = AsyncStream.makeStream(of: RuntimeEvent.self, bufferingPolicy: .unbounded)
        self.clock = ClockSanity(buildTime: runtime.options.clockFloor)
    }

    var now: Duration { ContinuousClock.now - self.started }

    static func wallClockMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: the loop

    mutating func run() async throws {
        let emit = self.emit
        if let board = self.runtime.board {
            do {
                try board.start(emit: { emit.yield(.board($0, at: ContinuousClock.now)) })
            } catch {
                self.logger.error("the board could not be set up; sensors that need it will report failures", metadata: ["error": "\(error)"])
                self.lastError = error.description
            }
        }
        self.startStatusSocket()
        for note in self.spool.recoveryNotes { self.logger.warning("\(note)") }
        self.startBackgroundTicks()
        self.restartSamplers()
        self.perform(self.machine.start(self.runtime.store.inventory()))
        self.runtime.notifier.ready(status: "starting as \(self.runtime.deviceName)")
        self.publishStatus()

        // Graceful shutdown finishes the stream: the loop handles what is already queued, then stops. (Not
        // `cancelOnGracefulShutdown()`: its merge with the shutdown signal cost more per event than the event itself,
        // a third of the CPU when publishing fast.)
        await withGracefulShutdownHandler {
            for await event in self.events {
                await self.handle(event)
                self.publishStatus()
            }
        } onGracefulShutdown: {
            emit.finish()
        }
        await self.shutdown()
    }

    mutating func handle(_ event: RuntimeEvent) async {
        switch event {
        case .connectFinished(let session, let result):
            guard session == self.session else { return }
            switch result {
            case .success:
                if self.machine.reprovisioning == nil && self.candidate == nil { self.reconnects += 1 }
                self.perform(self.machine.connected(now: self.now))
            case .failure(let error):
                self.client = nil
                let agentError = error.agentError
                self.lastError = agentError.message
                let failure: Machine.ConnectFailure =
                    agentError.code == .credentialsRejected ? .credentialsRejected : .transient(agentError.message)
                self.perform(self.machine.connectFailed(failure, now: self.now))
            }
        case .mqtt(let session, let mqttEvent):
            guard session == self.session else { return }
            switch mqttEvent {
            case .connected: break  // handled by connectFinished
            case .disconnected(let reason):
                self.client = nil
                self.inFlight = 0
                self.sentThrough = self.spool.acknowledgedThrough
                self.lastError = "\(reason)"
                self.perform(self.machine.disconnected(reason: "\(reason)", now: self.now))
            case .message(let message):
                await self.received(message)
            }
        case .published(let session, let sequences, let ok):
            guard session == self.session else { return }
            self.inFlight = max(0, self.inFlight - 1)
            if ok {
                self.published += sequences.count
                do { try self.spool.acknowledge(sequences) } catch { self.storageProblem(error) }
                self.pump()
            }
        case .subscribed:
            break
        case .provisioned(let result):
            self.reprovisionTask = nil
            switch result {
            case .success(let credentials):
                if self.machine.reprovisioning != nil {
                    self.candidate = credentials
                } else {
                    // First provisioning: persist before anything else (ThingsBoard never returns them again).
                    do {
                        try self.runtime.store.save(credentials)
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
        case .timer(let timer, let generation):
            guard self.timerGenerations[timer] == generation else { return }
            self.timerTasks[timer] = nil
            self.perform(self.machine.timerFired(timer, now: self.now))
        case .sampled(let values, let takenAt):
            self.record(values, at: takenAt)
        case .board(let boardEvent, let takenAt):
            switch boardEvent {
            case .reading(let key, let value):
                self.record([(key, value)], at: takenAt)
            case .reprovisionRequested:
                self.logger.notice("long press: re-provisioning requested with the button")
                self.perform(self.machine.reprovisionRequested(.button, now: self.now))
            case .releaseNow(let held):
                self.perform(self.machine.buttonHeldPastThreshold(held))
            case .notice(let text):
                self.logger.warning("\(text)")
            }
        case .identifyOver(let generation):
            if generation == self.identifyGeneration { self.perform(self.machine.identify(false)) }
        case .watchdog:
            // Fed from the loop itself: a hung loop stops feeding and systemd restarts the agent.
            self.runtime.notifier.watchdog()
        case .reload:
            self.reloadConfiguration()
        case .spoolSync:
            do { try self.spool.sync() } catch { self.storageProblem(error) }
        case .figures:
            self.record(self.figures(), at: ContinuousClock.now)
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
                case .stored: credentials = self.runtime.store.load()
                case .candidate:
                    // After a restart the candidate is the pending generation on flash.
                    if self.candidate == nil { self.candidate = self.runtime.store.loadPending() }
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
                        try self.runtime.store.savePending(candidate)
                        self.logger.notice("re-provisioned: the new credentials are stored (pending until they connect)", metadata: ["credentials": "\(candidate)"])
                    } catch {
                        self.storageProblem(error)  // tried from memory all the same: the server has no others
                    }
                }
            case .commitCandidate:
                if let candidate = self.candidate {
                    do {
                        try self.runtime.store.commitPending(candidate)
                        self.logger.notice("the new credentials replace the old ones", metadata: ["credentials": "\(candidate)"])
                    } catch {
                        self.storageProblem(error)
                    }
                }
                self.candidate = nil
            case .discardCandidate:
                self.candidate = nil
                do { try self.runtime.store.discardPending() } catch { self.storageProblem(error) }
            case .disconnect:
                if let client = self.client {
                    self.session += 1  // events of the old session are ignored from now on
                    self.client = nil
                    self.inFlight = 0
                    self.sentThrough = self.spool.acknowledgedThrough
                    Task { await client.disconnect() }
                }
            case .announce:
                self.announce()
                self.pump()
            case .startTimer(let timer, let delay):
                self.startTimer(timer, after: delay)
            case .cancelTimer(let timer):
                self.timerGenerations[timer, default: 0] += 1
                self.timerTasks.removeValue(forKey: timer)?.cancel()
            case .setLED(let state):
                self.runtime.board?.show(state)
                self.runtime.notifier.status("\(state.rawValue) as \(self.runtime.deviceName)")
            case .log(let level, let text):
                switch level {
                case .info: self.logger.info("\(text)")
                case .warning: self.logger.warning("\(text)")
                case .error: self.logger.error("\(text)")
                }
            case .flushSpool:
                do { try self.spool.sync() } catch { self.storageProblem(error) }
            }
        }
    }

    mutating func startProvisioning() {
        guard self.reprovisionTask == nil else { return }
        let provisioner = self.runtime.provisioner
        let emit = self.emit
        self.reprovisionTask = Task {
            let result = await provisioner.provision()
            emit.yield(.provisioned(result))
        }
    }

    mutating func connect(with credentials: DeviceCredentials) {
        self.session += 1
        let session = self.session
        let options: MQTTConnectOptions
        do {
            options = try DeviceConnection.connectOptions(
                for: credentials, deviceName: self.runtime.deviceName, server: self.configuration.server)
        } catch {
            self.lastError = error.message
            self.logger.error("\(error.message)")
            self.perform(self.machine.connectFailed(.transient(error.message), now: self.now))
            return
        }
        let client: MosquittoClient
        do {
            client = try MosquittoClient(options, logger: self.logger)
        } catch {
            self.emit.yield(.connectFinished(session: session, .failure(error)))
            return
        }
        self.client = client
        self.inFlight = 0
        self.sentThrough = self.spool.acknowledgedThrough
        let emit = self.emit
        Task {
            do throws(MQTTError) {
                try await client.connect()
            } catch {
                emit.yield(.connectFinished(session: session, .failure(error)))
                return
            }
            emit.yield(.connectFinished(session: session, .success(())))
            for await event in client.events { emit.yield(.mqtt(session: session, event)) }
        }
    }

    func startTimerTask(_ event: RuntimeEvent, after delay: Duration) -> Task<Void, Never> {
        let emit = self.emit
        return Task {
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            emit.yield(event)
        }
    }

    mutating func startTimer(_ timer: Machine.Timer, after delay: Duration) {
        self.timerGenerations[timer, default: 0] += 1
        self.timerTasks.removeValue(forKey: timer)?.cancel()
        self.timerTasks[timer] = self.startTimerTask(.timer(timer, generation: self.timerGenerations[timer] ?? 0), after: delay)
    }

    // MARK: on connect

    func announce() {
        guard let client = self.client else { return }
        let session = self.session
        let emit = self.emit
        let sensorNames = self.configuration.sensors.map(\.name)
        var attributes: [(String, JSONValue)] = self.runtime.options.clientAttributes
        attributes.append(("sensors", .array(sensorNames.map { .string($0) })))
        let attributesPayload = JSONValue.object(attributes).serializedBytes
        let request: JSONValue = ["sharedKeys": .string(RemoteControl.IntervalOverrides.keys(sensors: sensorNames).joined(separator: ","))]
        let logger = self.logger
        Task {
            do {
                // ThingsBoard keeps no session: subscribe again on every connect.
                for filter in [RemoteControl.attributesTopic, RemoteControl.rpcRequestFilter, RemoteControl.attributesResponseFilter] {
                    let grant = try await client.subscribe(filter, qos: .atLeastOnce)
                    if grant.rawValue == 0x80 { logger.warning("the server refused the subscription", metadata: ["mqtt.filter": "\(filter)"]) }
                }
                try await client.publish(TelemetryEncoder.attributesTopic, payload: attributesPayload, qos: .atLeastOnce)
                try await client.publish(RemoteControl.attributesRequestPrefix + "1", payload: request.serializedBytes, qos: .atLeastOnce)
                emit.yield(.subscribed(session: session))
            } catch {
                logger.warning("could not subscribe or announce on connect", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: server messages

    mutating func received(_ message: MQTTMessage) async {
        if message.topic == RemoteControl.attributesTopic || message.topic.hasPrefix(RemoteControl.attributesResponsePrefix) {
            guard let update = try? JSONValue.parse(message.payload, lenient: true) else {
                self.logger.warning("ignored a shared-attribute message that is not JSON", metadata: ["mqtt.topic": "\(message.topic)"])
                return
            }
            for problem in self.overrides.apply(update) { self.logger.warning("\(problem)") }
            self.restartSamplers()
            return
        }
        guard let rpc = RemoteControl.parseRPC(topic: message.topic, payload: message.payload) else { return }
        let reply: JSONValue
        switch rpc.result {
        case .failure(let error):
            self.logger.warning("answered a bad RPC with an error", metadata: ["rpc.id": "\(rpc.id)", "error": "\(error.message)"])
            reply = error.reply
        case .success(.getStatus):
            reply = self.statusDocument()
        case .success(.sampleNow):
            self.sampleInBackground(nil)
            reply = ["sampling": .integer(Int64(self.configuration.sensors.count))]
        case .success(.identify(let duration)):
            self.identifyGeneration += 1
            self.perform(self.machine.identify(true))
            self.background.append(self.startTimerTask(.identifyOver(generation: self.identifyGeneration), after: duration))
            reply = ["identify": .string(DurationText.format(duration))]
        case .success(.reprovision):
            let (answer, actions) = self.machine.requestReprovision(.remote, now: self.now)
            self.perform(actions)
            reply = answer.reply
        }
        if let client = self.client {
            let payload = reply.serializedBytes
            let topic = rpc.responseTopic
            Task { try? await client.publish(topic, payload: payload, qos: .atLeastOnce) }
        }
    }

    // MARK: telemetry

    /// Reads sensors off the loop (a DHT retry can take a second) and hands the values back as an event.
    func sampleInBackground(_ names: [String]?) {
        guard let board = self.runtime.board else { return }
        let emit = self.emit
        Task {
            let values = await board.sample(names)
            emit.yield(.sampled(values, at: ContinuousClock.now))
        }
    }

    /// Stamps values with the time they were taken, spools them, and publishes when online.
    ///
    /// The stamp is the wall clock now less the readings' age on the monotonic clock: a loop that gets to readings
    /// late (busy for half a second, say) must not give five rounds of a 100 ms sensor one timestamp, since
    /// ThingsBoard keeps one value per key and timestamp; and a wall clock set between taking and recording
    /// (NTP's first answer) is not trusted before it is.
    mutating func record(_ values: [(String, JSONValue)], at instant: ContinuousClock.Instant) {
        guard !values.isEmpty else { return }
        let wall = Self.wallClockMilliseconds()
        let now = self.now
        let taken = min(instant - self.started, now)
        guard self.clock.isPlausible(wall) else {
            // No trustworthy time yet (no RTC, no NTP): hold the readings with their monotonic time.
            if self.heldReadings.isEmpty {
                self.logger.warning("the system clock is not set (it reads before this agent was built); holding readings until it is")
            }
            self.heldReadings += values.map { (taken, $0.0, $0.1) }
            if self.heldReadings.count > 10_000 { self.heldReadings.removeFirst(self.heldReadings.count - 10_000) }
            return
        }
        if !self.heldReadings.isEmpty {
            // The clock is set now: give held readings the wall time they were taken at.
            let held = self.heldReadings
            self.heldReadings = []
            for group in Dictionary(grouping: held, by: { $0.taken }).sorted(by: { $0.key < $1.key }) {
                let ts = ClockSanity.rebase(monotonicTaken: group.key, monotonicNow: now, wallNow: wall)
                self.append(group.value.map { Reading(key: $0.key, value: $0.value, timestamp: ts) })
            }
        }
        let ts = ClockSanity.rebase(monotonicTaken: taken, monotonicNow: now, wallNow: wall)
        self.append(values.map { Reading(key: $0.0, value: $0.1, timestamp: ts) })
        self.clock.observeStored(ts)
        self.pump()
    }

    mutating func append(_ readings: [Reading]) {
        for payload in TelemetryEncoder.payloads(readings).payloads {
            do { try self.spool.append(payload) } catch { self.storageProblem(error) }
        }
        if self.spool.problem != nil {
            self.spoolFailing = true
        } else if self.spoolFailing {
            self.spoolFailing = false
            self.storageLogged = [:]
            self.logger.notice("the spool works again: readings are written to flash again")
        }
    }

    /// Sends spooled records, oldest first, while the in-flight window has room.
    mutating func pump() {
        guard self.machine.state == .online, let client = self.client else { return }
        while self.inFlight < self.runtime.options.inFlightWindow {
            let records: [SpoolRecord]
            do {
                records = try self.spool.pending(after: self.sentThrough, limit: self.runtime.options.recordsPerPublish)
            } catch {
                self.storageProblem(error)
                return
            }
            guard !records.isEmpty else { return }
            // Records are JSON arrays of entries: concatenate as many as fit into one ThingsBoard-sized payload.
            var batch: [SpoolRecord] = []
            var size = 2
            for record in records {
                let cost = record.payload.count - 2 + (batch.isEmpty ? 0 : 1)
                if !batch.isEmpty && size + cost > TelemetryEncoder.defaultMaxPayloadBytes { break }
                batch.append(record)
                size += cost
            }
            var payload: [UInt8] = [UInt8(ascii: "[")]
            for (i, record) in batch.enumerated() {
                if i > 0 { payload.append(UInt8(ascii: ",")) }
                payload += record.payload.count >= 2 ? record.payload[1..<(record.payload.count - 1)] : []
            }
            payload.append(UInt8(ascii: "]"))
            let sequences = batch.map(\.sequence)
            self.sentThrough = sequences.last ?? self.sentThrough
            self.inFlight += 1
            let session = self.session
            let emit = self.emit
            // Submitted here, on the loop, so batches leave in spool order; only the wait for the PUBACK is a task.
            let receipt: PublishReceipt
            do {
                receipt = try client.submit(TelemetryEncoder.topic, payload: payload, qos: .atLeastOnce)
            } catch {
                emit.yield(.published(session: session, sequences: sequences, ok: false))
                return
            }
            Task {
                do {
                    try await receipt.acknowledged()
                    emit.yield(.published(session: session, sequences: sequences, ok: true))
                } catch {
                    emit.yield(.published(session: session, sequences: sequences, ok: false))
                }
            }
        }
    }

    /// One sampling task per distinct interval: sensors that share an interval are read together and go out as
    /// one entry (one timestamp), so a board with five sensors sends one message per round, not five.
    mutating func restartSamplers() {
        let emit = self.emit
        guard let board = self.runtime.board else { return }
        var wanted: [Duration: [String]] = [:]
        for sensor in self.configuration.sensors {
            let interval = self.overrides.interval(for: sensor.name, configured: sensor.interval ?? self.configuration.telemetry.interval)
            wanted[interval, default: []].append(sensor.name)
        }
        guard wanted != self.samplerGroups else { return }
        for task in self.samplers.values { task.cancel() }
        self.samplers = [:]
        for (interval, names) in wanted {
            self.samplers[interval] = Task {
                let clock = ContinuousClock()
                var next = clock.now
                while !Task.isCancelled {
                    let values = await board.sample(names)
                    emit.yield(.sampled(values, at: ContinuousClock.now))
                    // On a fixed grid, so readings keep their rhythm whatever a read costs.
                    next = next.advanced(by: interval)
                    if next < clock.now { next = clock.now.advanced(by: interval) }
                    try? await Task.sleep(until: next, clock: clock)
                }
            }
        }
        self.samplerGroups = wanted
    }

    mutating func startBackgroundTicks() {
        let emit = self.emit
        if let interval = self.runtime.notifier.watchdogInterval {
            self.background.append(Task {
                while !Task.isCancelled {
                    emit.yield(.watchdog)
                    try? await Task.sleep(for: interval)
                }
            })
        }
        // A full sync a little more often than the sync interval: the spool's own check when a reading is appended
        // then never finds one due, so a reading (a door that just opened) does not wait for fsyncs before it is
        // published. Readings still reach flash within the interval.
        let syncInterval = max(self.spool.settings.syncInterval * 9 / 10, .milliseconds(200))
        self.background.append(Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: syncInterval)
                emit.yield(.spoolSync)
            }
        })
        let figuresInterval = self.runtime.options.figuresInterval
        self.background.append(Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: figuresInterval)
                emit.yield(.figures)
            }
        })
        self.background.append(Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) { emit.yield(.reload) }
        })
    }

    mutating func reloadConfiguration() {
        guard let reload = self.runtime.reload else { return }
        self.runtime.notifier.reloading()
        defer { self.runtime.notifier.status("\(self.machine.led.rawValue) as \(self.runtime.deviceName)") }
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
            self.restartSamplers()
            self.logger.notice("configuration reloaded: sensors and intervals updated")
        }
        self.runtime.notifier.ready()
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
            ("led", .string(self.machine.led.rawValue)),
            ("device", .string(self.runtime.deviceName)),
            ("server", .string("\(self.configuration.server.host):\(self.configuration.server.port)")),
            ("uptimeSeconds", .integer(self.now.components.seconds)),
            ("spoolDepth", .integer(Int64(spool.depth))),
            ("spoolBytes", .integer(Int64(spool.bytes))),
            ("dropped", .integer(Int64(clamping: spool.dropped))),
            ("published", .integer(Int64(self.published))),
            ("reconnects", .integer(Int64(max(0, self.reconnects - 1)))),
            ("clockSet", .bool(self.heldReadings.isEmpty)),
        ]
        if case .needsPerson(let message) = self.machine.state { members.append(("problem", .string(message))) }
        if let reprovisioning = self.machine.reprovisioning { members.append(("reprovisioning", .string(reprovisioning.rawValue))) }
        if let lastError = self.lastError { members.append(("lastError", .string(lastError))) }
        if let problem = self.spool.problem {
            members.append(("storage", .string("\(problem.message); readings are kept in memory and still sent (\(spool.inMemory) now)")))
        }
        members.append(("sensors", self.runtime.board?.health() ?? .object([])))
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
        ]
        if let health = self.runtime.board?.health() { out.append(("sensor_health", health)) }
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

    mutating func storageProblem(_ error: AgentError) {
        self.lastError = error.message
        let now = self.now
        if let logged = self.storageLogged[error.message], now - logged < .seconds(600) { return }
        self.storageLogged[error.message] = now
        self.logger.error("\(error.description)")
    }

    // MARK: shutdown

    mutating func shutdown() async {
        self.runtime.notifier.stopping()
        for task in self.samplers.values { task.cancel() }
        for task in self.background { task.cancel() }
        for task in self.timerTasks.values { task.cancel() }
        self.reprovisionTask?.cancel()
        let actions = self.machine.shutdown()
        for action in actions {
            switch action {
            case .flushSpool:
                do { try self.spool.sync() } catch { self.storageProblem(error) }
            case .disconnect:
                if let client = self.client { await client.disconnect() }
                self.client = nil
            case .setLED:
                break
            default:
                break
            }
        }
        self.runtime.board?.stop()
        self.runtime.statusServer.withLock { $0?.stop(); $0 = nil }
        self.logger.info("stopped")
    }
}
