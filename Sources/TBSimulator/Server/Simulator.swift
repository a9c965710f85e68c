import Foundation
import NIOCore
import NIOPosix
import TBJSON

/// What happens to provision requests: answered at once, later, never, or with a failure.
public enum ProvisioningMode: Sendable, Hashable {
    /// Answer at once (PUBACK, then the response).
    case normal
    /// Decide at once (the device is created) but send PUBACK and response only after this long, as a slow
    /// ThingsBoard core would.
    case delay(Duration)
    /// Never answer: no PUBACK, no response, the connection stays open.
    case withhold
    /// Close the connection as soon as the request arrives: no PUBACK, no response.
    case close
    /// ThingsBoard's backend-failure path: PUBACK (0x83 in MQTT 5) and close, no response.
    case backendError

    public var json: JSONValue {
        switch self {
        case .normal: return .object([("mode", .string("normal"))])
        case .delay(let d): return .object([("mode", .string("delay")), ("seconds", .double(d.seconds))])
        case .withhold: return .object([("mode", .string("withhold"))])
        case .close: return .object([("mode", .string("close"))])
        case .backendError: return .object([("mode", .string("error"))])
        }
    }
}

/// Device CONNECTs to refuse, as a network blip would (the control interface's `POST /refuse-connects`).
public struct ConnectRefusal: Sendable, Hashable {
    /// How many more device CONNECTs to refuse (provision sessions are never refused).
    public var remaining: Int
    /// False until the next successful provisioning: "the first connects after re-provisioning are dropped".
    public var armed: Bool
    /// The CONNACK to answer before closing (3: server unavailable); nil closes the TCP connection without one.
    public var returnCode: UInt8?
    /// Once armed by a provisioning: only CONNECTs that authenticate as the device it provisioned are refused.
    public var device: String? = nil

    public var json: JSONValue {
        .object([
            ("remaining", .integer(Int64(self.remaining))), ("armed", .bool(self.armed)),
            ("returnCode", self.returnCode.map { .integer(Int64($0)) } ?? .null),
            ("device", self.device.map(JSONValue.string) ?? .null),
        ])
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18
    }

    var timeAmount: TimeAmount { .nanoseconds(Int64(self.seconds * 1e9)) }
}

/// How a server-side RPC ended.
public enum ServerRPCOutcome: Sendable, Hashable {
    /// The device answered on `rpc/response/{id}` with this payload.
    case reply([UInt8])
    /// A one-way RPC reached the device (PUBACK at QoS 1, written at QoS 0).
    case delivered
    /// No answer in time (or, at QoS 1, no PUBACK within the delivery timeout).
    case timeout(String)
}

/// A server-side RPC on its way to a device.
final class ServerRPC {
    let id: Int
    let device: String
    let method: String
    let params: JSONValue
    let oneway: Bool
    let promise: EventLoopPromise<ServerRPCOutcome>
    var timeoutTask: Scheduled<Void>?
    var sent = false
    var delivered = false

    init(id: Int, device: String, method: String, params: JSONValue, oneway: Bool, promise: EventLoopPromise<ServerRPCOutcome>) {
        self.id = id
        self.device = device
        self.method = method
        self.params = params
        self.oneway = oneway
        self.promise = promise
    }

    var body: JSONValue { .object([("method", .string(self.method)), ("params", self.params)]) }
}

/// A client-side RPC waiting for an answer.
struct PendingClientRPC {
    let session: Int
    let requestID: Int
    let method: String
    let params: JSONValue
    let timeoutTask: Scheduled<Void>
}

/// The ThingsBoard device-API simulator: an MQTT listener with provisioning and device sessions, a registry of
/// profiles and devices, an event log and a loopback control interface.
///
/// All mutable state lives on one event loop (the simulator runs a single-threaded group), so handlers, timers and
/// control requests never race; public methods hop onto that loop.
public final class Simulator: @unchecked Sendable {
    public let configuration: SimulatorConfiguration
    let group: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    let eventLog: EventLog
    let ownsGroup: Bool
    /// Finished once the simulator has stopped (or its listener closed by itself).
    private let stopped = AsyncStream<Void>.makeStream()

    // Loop-confined state.
    var registry: DeviceRegistry
    var sessions: [Int: MQTTSessionHandler] = [:]
    var sessionByDevice: [String: Int] = [:]
    var nextSessionID = 1
    var outageUntil: NIODeadline?
    var connectRefusal: ConnectRefusal?
    var provisioningGlobal: ProvisioningMode = .normal
    var provisioningByName: [String: ProvisioningMode] = [:]
    var telemetryByDevice: [String: [TelemetryEntry]] = [:]
    var telemetryCount: [String: Int] = [:]
    var queuedRPC: [String: [ServerRPC]] = [:]
    var awaitingReply: [String: [Int: ServerRPC]] = [:]
    var rpcSequence: [String: Int] = [:]
    var clientRPCReplies: [String: JSONValue] = [:]
    var rateState: [String: DeviceRateState] = [:]
    /// Per device: the packets dropped (or, for a SUBSCRIBE, left inactive) because a limit was exceeded.
    var rateLimitDrops: [String: [RateLimitName: Int]] = [:]
    var pendingClientRPC: [String: [PendingClientRPC]] = [:]
    var claims: ClaimBook
    var ota: OtaBook
    var mqttChannel: (any Channel)?
    var mqttsChannel: (any Channel)?
    var stopping = false
    var controlChannel: (any Channel)?

    /// The bound MQTT port.
    public private(set) var mqttPort: Int = 0
    /// The bound MQTT-over-TLS port, or `nil` when the TLS listener is off.
    public private(set) var mqttsPort: Int?
    /// The bound control-interface port, or `nil` when disabled.
    public private(set) var controlPort: Int?

    /// Telemetry entries kept per device for the control interface (older ones are dropped).
    static let telemetryKeptPerDevice = 100_000

    init(configuration: SimulatorConfiguration, registry: DeviceRegistry, eventLog: EventLog) {
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.loop = self.group.next()
        self.eventLog = eventLog
        self.registry = registry
        self.claims = ClaimBook(settings: configuration.claiming)
        self.ota = OtaBook(limits: configuration.otaLimits)
        self.ownsGroup = true
    }

    /// Starts the listeners.
    ///
    /// - Throws: ``SimulatorError`` for a bad configuration or registry file; NIO's errors when a port cannot be bound.
    public static func start(_ configuration: SimulatorConfiguration) async throws -> Simulator {
        let registry = try RegistryFile.load(configuration: configuration)
        let eventLog = try configuration.eventLogPath.map { path throws(SimulatorError) in try EventLog.open(path: path) } ?? .disabled
        let simulator = Simulator(configuration: configuration, registry: registry, eventLog: eventLog)
        do {
            try await simulator.bind()
        } catch {
            try? await simulator.group.shutdownGracefully()
            throw error
        }
        // A registry file that cannot be written is a configuration error: say so now rather than lose devices later.
        if let path = configuration.registryPath {
            do {
                try RegistryFile.save(registry, to: path)
            } catch {
                await simulator.stop()
                throw error
            }
        }
        if !configuration.otaPackages.isEmpty {
            do {
                try await simulator.onLoop { try simulator.seedOtaPackages(configuration.otaPackages) }
            } catch {
                await simulator.stop()
                throw error
            }
        }
        simulator.eventLog.record("started", [
            ("host", .string(configuration.host)), ("mqttPort", .integer(Int64(simulator.mqttPort))),
            ("controlPort", simulator.controlPort.map { .integer(Int64($0)) } ?? .null),
            ("mqttsPort", simulator.mqttsPort.map { .integer(Int64($0)) } ?? .null),
            ("profiles", .integer(Int64(registry.profiles.count))), ("devices", .integer(Int64(registry.devices.count))),
        ])
        return simulator
    }

    func bind() async throws {
        let mqtt = try await self.bindMQTT(port: self.configuration.mqttPort, tls: nil)
        self.mqttChannel = mqtt
        let continuation = self.stopped.continuation
        mqtt.closeFuture.whenComplete { _ in
            // A close that stop() did not ask for (stop() finishes the stream itself, after its last event).
            if !self.stopping { continuation.finish() }
        }
        self.mqttPort = mqtt.localAddress?.port ?? self.configuration.mqttPort
        if let port = self.configuration.mqttsPort {
            // The MQTT-over-TLS listener: the same pipeline behind a TLSServerHandler, whose handshake runs
            // ThingsBoard's X.509 chain logic.
            guard let certificateFile = self.configuration.tlsCertificateFile, let keyFile = self.configuration.tlsKeyFile else {
                throw SimulatorError("the TLS listener (mqtts_port) needs tls_cert_file and tls_key_file in [server] (--tls-cert-file, --tls-key-file)")
            }
            let channel = try await self.bindMQTT(port: port, tls: try TLSServerContext(certificateFile: certificateFile, keyFile: keyFile))
            self.mqttsChannel = channel
            self.mqttsPort = channel.localAddress?.port ?? port
        }
        if let port = self.configuration.controlPort {
            let control = try await ControlServer.bind(simulator: self, host: self.configuration.host, port: port)
            self.controlChannel = control
            self.controlPort = control.localAddress?.port ?? port
        }
    }

    /// An MQTT listener: decoder, encoder and session handler, behind a TLS handler when `tls` is given.
    func bindMQTT(port: Int, tls: TLSServerContext?) async throws -> any Channel {
        let maxPacketSize = self.configuration.maxPacketSize
        return try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        let remote = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                        try sync.addHandler(TLSServerHandler(context: tls) { chain in self.tlsHandshakeDone(chain: chain, remote: remote) })
                    }
                    try sync.addHandler(ByteToMessageHandler(MQTTDecoder(maxPacketSize: maxPacketSize)))
                    try sync.addHandler(MessageToByteHandler(MQTTEncoder()))
                    try sync.addHandler(MQTTSessionHandler(simulator: self))
                }
            }
            .bind(host: self.configuration.host, port: port).get()
    }

    /// After a TLS handshake (on the loop): ThingsBoard's trust manager refuses a chain in which a certificate does
    /// not sign the one before it (the handshake fails: false closes the connection); otherwise the chain goes to
    /// `validateOrCreateDeviceX509Certificate`, whose failures are only logged (the CONNECT that follows is refused).
    func tlsHandshakeDone(chain: [X509Certificate], remote: String) -> Bool {
        var fields: [(String, JSONValue)] = [("remote", .string(remote)), ("chainLength", .integer(Int64(chain.count))),
                                             ("commonName", chain.first?.commonName.map(JSONValue.string) ?? .null)]
        for index in chain.indices.dropFirst() where !chain[index - 1].isSigned(by: chain[index]) {
            fields.append(contentsOf: [("outcome", .string("bad_chain")),
                                       ("reason", .string("certificate \(index - 1) of the chain is not signed by certificate \(index)"))])
            self.eventLog.record("x509_chain", fields)
            return false
        }
        guard !chain.isEmpty else {
            fields.append(contentsOf: [("outcome", .string("no_certificate"))])
            self.eventLog.record("x509_chain", fields)
            return true
        }
        let outcome = self.registry.validateOrCreate(chain: chain, now: self.nowMillis)
        if outcome.kind == .created || outcome.kind == .updated { self.saveRegistry() }
        fields.append(contentsOf: [("outcome", .string(outcome.kind.rawValue)), ("device", outcome.device.map(JSONValue.string) ?? .null),
                                   ("profile", outcome.profile.map(JSONValue.string) ?? .null), ("reason", .string(outcome.reason))])
        self.eventLog.record("x509_chain", fields)
        return true
    }

    /// Closes the listeners and every connection, then stops the event loop.
    public func stop() async {
        _ = try? await self.onLoop {
            self.stopping = true
            for session in Array(self.sessions.values) { session.closeBare(reason: "simulator stopping") }
        }
        try? await self.mqttChannel?.close()
        try? await self.mqttsChannel?.close()
        try? await self.controlChannel?.close()
        self.eventLog.record("stopped", [])
        try? await self.group.shutdownGracefully()
        self.stopped.continuation.finish()
    }

    /// Waits until the simulator has stopped (``stop()`` finished, or the MQTT listener closed by itself).
    public func waitUntilClosed() async {
        for await _ in self.stopped.stream {}
    }

    /// Runs `body` on the simulator's loop.
    public func onLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await self.loop.submit(body).get()
    }

    var nowMillis: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    // MARK: Sessions

    func register(_ session: MQTTSessionHandler) -> Int {
        let id = self.nextSessionID
        self.nextSessionID += 1
        self.sessions[id] = session
        return id
    }

    func unregister(_ session: MQTTSessionHandler) {
        self.sessions.removeValue(forKey: session.id)
        if let device = session.deviceName, self.sessionByDevice[device] == session.id {
            self.sessionByDevice.removeValue(forKey: device)
        }
        // Client-side RPCs of this session can no longer be answered.
        for (device, list) in self.pendingClientRPC {
            let kept = list.filter { pending in
                if pending.session == session.id { pending.timeoutTask.cancel() }
                return pending.session != session.id
            }
            self.pendingClientRPC[device] = kept.isEmpty ? nil : kept
        }
        // RPCs written but not acknowledged go back to the queue, to be sent again on the next subscription.
        if let device = session.deviceName {
            let unacknowledged = session.takeUnacknowledgedRPCs()
            for rpc in unacknowledged.reversed() where !rpc.delivered {
                rpc.sent = false
                self.awaitingReply[device]?.removeValue(forKey: rpc.id)
                self.queuedRPC[device, default: []].insert(rpc, at: 0)
            }
        }
    }

    /// Whether new connections are refused because of a simulated outage.
    var inOutage: Bool {
        guard let until = self.outageUntil else { return false }
        if NIODeadline.now() < until { return true }
        self.outageUntil = nil
        return false
    }

    /// Attaches an authenticated session to its device; an older session of the device is closed (0x8E).
    func attach(_ session: MQTTSessionHandler, device: String) {
        if let oldID = self.sessionByDevice[device], oldID != session.id, let old = self.sessions[oldID] {
            self.eventLog.record("session_taken_over", [("device", .string(device)), ("oldSession", .integer(Int64(oldID))),
                                                        ("newSession", .integer(Int64(session.id)))])
            old.close(reason: "session taken over by session \(session.id)", v5Reason: MQTTReasonCode.sessionTakenOver)
        }
        self.sessionByDevice[device] = session.id
    }

    func session(forDevice name: String) -> MQTTSessionHandler? {
        self.sessionByDevice[name].flatMap { self.sessions[$0] }
    }

    // MARK: Provisioning

    func provisioningMode(forDeviceName name: String?) -> ProvisioningMode {
        if let name, let mode = self.provisioningByName[name] { return mode }
        return self.provisioningGlobal
    }

    func provision(_ request: ProvisionRequest) -> ProvisionResult {
        let result = self.registry.provision(request, now: self.nowMillis)
        if result.status == .success { self.saveRegistry() }
        return result
    }

    // MARK: Registry persistence

    func saveRegistry() {
        guard let path = self.configuration.registryPath else { return }
        do {
            try RegistryFile.save(self.registry, to: path)
        } catch {
            self.eventLog.record("registry_error", [("path", .string(path)), ("message", .string(error.description))])
        }
    }

    // MARK: Rate limits

    /// The limits that apply to a device: its profile's, else the simulator's (the tenant profile's).
    func rateLimits(device: String) -> RateLimits {
        if let profileName = self.registry.device(named: device)?.profile,
           let limits = self.registry.profile(named: profileName)?.rateLimits {
            return limits
        }
        return self.configuration.rateLimits
    }

    /// The profile of a device, if both exist.
    func profile(ofDevice device: String) -> DeviceProfile? {
        self.registry.device(named: device).flatMap { self.registry.profile(named: $0.profile) }
    }

    /// Charges one message of a device against its limits; returns the exceeded limit, if any. A refused message
    /// is counted as dropped (for the control interface) unless `countDrop` is false (the silent charge of a
    /// session's close, which is no packet of the client's).
    func admit(device: String, _ charge: RateCharge, countDrop: Bool = true) -> RateLimitName? {
        // A deleted device's last session closing after the deletion must not bring its state back.
        guard self.registry.device(named: device) != nil else { return nil }
        let limits = self.rateLimits(device: device)
        if limits.isUnlimited && self.rateState[device] == nil { return nil }
        // Monotonic seconds: a wall-clock step must not refill or drain the buckets.
        let now = Double(NIODeadline.now().uptimeNanoseconds) / 1e9
        var state = self.rateState[device] ?? DeviceRateState()
        let exceeded = state.admit(charge, limits: limits, now: now)
        self.rateState[device] = limits.isUnlimited ? nil : state
        if let exceeded, countDrop { self.rateLimitDrops[device, default: [:]][exceeded, default: 0] += 1 }
        return exceeded
    }

    /// The control interface's view of a device's drops: the total and the count per limit.
    func rateLimitDropsJSON(device: String) -> JSONValue {
        let drops = self.rateLimitDrops[device] ?? [:]
        var members: [(String, JSONValue)] = [("total", .integer(Int64(drops.values.reduce(0, +))))]
        for name in RateLimitName.allCases { members.append((name.rawValue, .integer(Int64(drops[name] ?? 0)))) }
        return .object(members)
    }

    // MARK: Device data

    func recordTelemetry(device: String, entries: [TelemetryEntry], source: OtaStateRecord.Source = .device) {
        self.recordOtaHistory(device: device, entries: entries, source: source)
        var list = self.telemetryByDevice[device, default: []]
        list.append(contentsOf: entries)
        if list.count > Self.telemetryKeptPerDevice { list.removeFirst(list.count - Self.telemetryKeptPerDevice) }
        self.telemetryByDevice[device] = list
        if source == .device { self.telemetryCount[device, default: 0] += entries.count }
    }

    func recordClientAttributes(device: String, values: [(String, JSONValue)]) {
        self.registry.update(deviceNamed: device) { d in
            for (key, value) in values { upsert(&d.clientAttributes, key, value) }
        }
        self.saveRegistry()
    }

    /// `{"client":{..},"shared":{..}}` for an attribute request, empty sections omitted.
    func attributeResponse(device: String, clientKeys: [String]?, sharedKeys: [String]?) -> JSONValue {
        guard let d = self.registry.device(named: device) else { return .object([]) }
        let all = clientKeys == nil && sharedKeys == nil
        func pick(_ list: [(String, JSONValue)], _ keys: [String]?) -> [(String, JSONValue)] {
            if all { return list }
            guard let keys else { return [] }
            return keys.compactMap { key in list.first(where: { $0.0 == key }) }
        }
        var members: [(String, JSONValue)] = []
        let client = pick(d.clientAttributes, clientKeys)
        let shared = pick(d.sharedAttributes, sharedKeys)
        if !client.isEmpty { members.append(("client", .object(client))) }
        if !shared.isEmpty { members.append(("shared", .object(shared))) }
        return .object(members)
    }

    /// Sets shared attributes and pushes `{"k":v,..}` to a subscribed session.
    func setSharedAttributes(device: String, values: [(String, JSONValue)]) throws(SimulatorError) {
        guard self.registry.device(named: device) != nil else { throw SimulatorError("no device named \"\(device)\"") }
        self.registry.update(deviceNamed: device) { d in
            for (key, value) in values { upsert(&d.sharedAttributes, key, value) }
        }
        self.saveRegistry()
        let pushed = self.session(forDevice: device)?.pushSharedAttributes(.object(values)) ?? false
        self.eventLog.record("shared_attributes", [("device", .string(device)), ("values", .object(values)),
                                                    ("pushed", .bool(pushed))])
    }

    /// Deletes shared attributes and pushes `{"deleted":[..]}` to a subscribed session.
    func deleteSharedAttributes(device: String, keys: [String]) throws(SimulatorError) {
        guard self.registry.device(named: device) != nil else { throw SimulatorError("no device named \"\(device)\"") }
        self.registry.update(deviceNamed: device) { d in
            d.sharedAttributes.removeAll { keys.contains($0.0) }
        }
        self.saveRegistry()
        let body = JSONValue.object([("deleted", .array(keys.map(JSONValue.string)))])
        let pushed = self.session(forDevice: device)?.pushSharedAttributes(body) ?? false
        self.eventLog.record("shared_attributes_deleted", [("device", .string(device)),
                                                            ("keys", .array(keys.map(JSONValue.string))), ("pushed", .bool(pushed))])
    }

    // MARK: Server-side RPC

    /// Sends an RPC to a device now if it is subscribed to `rpc/request/+`, else queues it until it subscribes.
    func sendServerRPC(device: String, method: String, params: JSONValue, oneway: Bool,
                       timeout: Duration) throws(SimulatorError) -> EventLoopFuture<ServerRPCOutcome> {
        guard self.registry.device(named: device) != nil else { throw SimulatorError("no device named \"\(device)\"") }
        let id = self.rpcSequence[device, default: 0]
        self.rpcSequence[device] = id + 1
        let rpc = ServerRPC(id: id, device: device, method: method, params: params, oneway: oneway,
                            promise: self.loop.makePromise())
        rpc.timeoutTask = self.loop.assumeIsolated().scheduleTask(in: timeout.timeAmount) {
            self.finishRPC(rpc, .timeout(rpc.sent ? "no reply from the device" : "the device did not subscribe to RPC in time"))
        }
        self.eventLog.record("rpc_request", [("device", .string(device)), ("id", .integer(Int64(id))),
                                             ("method", .string(method)), ("params", params), ("oneway", .bool(oneway))])
        if let session = self.session(forDevice: device), session.isSubscribedToRPC {
            session.deliver(rpc)
        } else {
            self.queuedRPC[device, default: []].append(rpc)
        }
        return rpc.promise.futureResult
    }

    /// Delivers the RPCs queued for a device to its session (called when it subscribes to `rpc/request/+`).
    func flushRPCs(to session: MQTTSessionHandler, device: String) {
        let queued = self.queuedRPC.removeValue(forKey: device) ?? []
        for rpc in queued { session.deliver(rpc) }
    }

    func rpcWritten(_ rpc: ServerRPC) {
        rpc.sent = true
        if !rpc.oneway { self.awaitingReply[rpc.device, default: [:]][rpc.id] = rpc }
    }

    func rpcDelivered(_ rpc: ServerRPC) {
        rpc.delivered = true
        self.eventLog.record("rpc_delivered", [("device", .string(rpc.device)), ("id", .integer(Int64(rpc.id)))])
        if rpc.oneway { self.finishRPC(rpc, .delivered) }
    }

    func rpcReply(device: String, id: Int, payload: [UInt8]) {
        self.eventLog.record("rpc_reply", [("device", .string(device)), ("id", .integer(Int64(id))),
                                           ("payload", .string(String(decoding: payload, as: UTF8.self)))])
        guard let rpc = self.awaitingReply[device]?[id] else { return }
        self.finishRPC(rpc, .reply(payload))
    }

    func finishRPC(_ rpc: ServerRPC, _ outcome: ServerRPCOutcome) {
        rpc.timeoutTask?.cancel()
        self.awaitingReply[rpc.device]?.removeValue(forKey: rpc.id)
        self.queuedRPC[rpc.device]?.removeAll { $0 === rpc }
        if case .timeout(let why) = outcome {
            self.eventLog.record("rpc_timeout", [("device", .string(rpc.device)), ("id", .integer(Int64(rpc.id))),
                                                 ("reason", .string(why))])
        }
        rpc.promise.succeed(outcome)
    }

    // MARK: Client-side RPC

    /// ThingsBoard's `transport.mqtt.msg_queue_size_per_device_limit`, reported as `maxInflightMessages`.
    static let maxInflightMessages = 100

    /// The built-in `getSessionLimits` answer (`MqttTransportHandler.onGetSessionLimitsRpc`): the transport's payload
    /// limit, its queue size and the device's limits as configured, `null` for a limit not set.
    ///
    /// A gateway gets ThingsBoard's `GatewaySessionLimits` shape, with `gatewayRateLimits` after `rateLimits`. The
    /// simulator has no separate gateway limits: `rateLimits` are the limits it applies to the gateway's own
    /// messages (its profile's or the simulator's), and `gatewayRateLimits` are all `null`.
    func sessionLimits(device: String) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("maxPayloadSize", .integer(Int64(self.configuration.maxPacketSize))),
            ("maxInflightMessages", .integer(Int64(Self.maxInflightMessages))),
            ("rateLimits", self.rateLimits(device: device).json),
        ]
        if self.registry.device(named: device)?.gateway == true {
            members.append(("gatewayRateLimits", RateLimits().json))
        }
        return .object(members)
    }

    func answerClientRPC(device: String, requestID: Int, response: JSONValue) throws(SimulatorError) {
        guard var list = self.pendingClientRPC[device], let index = list.firstIndex(where: { $0.requestID == requestID }) else {
            throw SimulatorError("no pending client-side RPC \(requestID) from device \"\(device)\"")
        }
        let pending = list.remove(at: index)
        self.pendingClientRPC[device] = list.isEmpty ? nil : list
        pending.timeoutTask.cancel()
        self.sessions[pending.session]?.sendClientRPCResponse(requestID: requestID, body: response)
    }

    // MARK: Claiming

    /// A device's claim request on `v1/devices/me/claim`: registered or refused, never answered.
    func registerClaim(device: String, secretKey: String, durationMs: Int64, session: Int) {
        let outcome = self.claims.register(device: device, secretKey: secretKey, durationMs: durationMs, now: self.nowMillis)
        var fields: [(String, JSONValue)] = [("session", .integer(Int64(session))), ("device", .string(device)),
                                             ("secretKey", .string(mask(secretKey))), ("durationMs", .integer(durationMs))]
        switch outcome {
        case .stored(let record):
            fields += [("outcome", .string("stored")), ("expiresAt", .integer(record.expiresAt))]
        case .kept(let record):
            fields += [("outcome", .string("kept: a claim is already registered, put-if-absent")),
                       ("expiresAt", .integer(record.expiresAt))]
        case .refused(let reason):
            fields += [("outcome", .string("refused")), ("reason", .string(reason))]
        }
        self.eventLog.record("claim", fields)
    }

    /// A person's claim through `POST /api/customer/device/{deviceName}/claim`.
    func claimDevice(_ device: String, secretKey: String, customer: String) throws(SimulatorError) -> ClaimResponse {
        guard self.registry.device(named: device) != nil else { throw SimulatorError("no device named \"\(device)\"") }
        let response = self.claims.claim(device: device, secretKey: secretKey, customer: customer, now: self.nowMillis)
        self.eventLog.record("device_claim", [("device", .string(device)), ("customer", .string(customer)),
                                              ("response", .string(response.rawValue))])
        return response
    }

    // MARK: Administration

    /// Closes a device's session because of an administrative action (v5 DISCONNECT 0x98).
    func closeSessionAdministratively(device: String, reason: String) {
        self.session(forDevice: device)?.close(reason: reason, v5Reason: MQTTReasonCode.administrativeAction)
    }

    func revoke(device: String) throws(SimulatorError) {
        try self.registry.setCredentials(nil, forDevice: device)
        self.saveRegistry()
        self.eventLog.record("credentials_revoked", [("device", .string(device))])
        self.closeSessionAdministratively(device: device, reason: "credentials revoked")
    }

    func setCredentials(device: String, credentials: DeviceCredentials) throws(SimulatorError) {
        try self.registry.setCredentials(credentials, forDevice: device)
        self.saveRegistry()
        self.eventLog.record("credentials_changed", [("device", .string(device)), ("credentials", credentials.maskedJSON)])
        self.closeSessionAdministratively(device: device, reason: "credentials changed")
    }

    func deleteDevice(_ name: String) throws(SimulatorError) {
        guard self.registry.removeDevice(named: name) != nil else { throw SimulatorError("no device named \"\(name)\"") }
        self.saveRegistry()
        self.telemetryByDevice.removeValue(forKey: name)
        self.telemetryCount.removeValue(forKey: name)
        self.rateState.removeValue(forKey: name)
        self.rateLimitDrops.removeValue(forKey: name)
        self.claims.forget(device: name)
        self.ota.forget(device: name)
        self.eventLog.record("device_deleted", [("device", .string(name))])
        self.closeSessionAdministratively(device: name, reason: "device deleted")
        for rpc in self.queuedRPC.removeValue(forKey: name) ?? [] { self.finishRPC(rpc, .timeout("device deleted")) }
    }

    func addDevice(_ device: SimDevice) throws(SimulatorError) {
        try self.registry.addDevice(device)
        self.saveRegistry()
        self.eventLog.record("device_created", [("device", .string(device.name)), ("profile", .string(device.profile)),
                                                ("credentials", device.credentials?.maskedJSON ?? .null)])
    }

    func upsertProfile(_ profile: DeviceProfile) throws(SimulatorError) {
        try self.registry.upsertProfile(profile)
        self.saveRegistry()
        self.eventLog.record("profile_saved", [("profile", .string(profile.name)), ("strategy", .string(profile.strategy.rawValue))])
    }

    /// Closes the connections of one device, or all of them, with a bare TCP close (a network drop).
    @discardableResult
    func dropConnections(device: String?) -> Int {
        let targets = self.sessions.values.filter { device == nil || $0.deviceName == device }
        for session in targets { session.closeBare(reason: "dropped through the control interface") }
        self.eventLog.record("drop", [("device", device.map(JSONValue.string) ?? .null), ("sessions", .integer(Int64(targets.count)))])
        return targets.count
    }

    /// Whether a device CONNECT (authenticating as `device`, nil when the credentials are unknown) is to be refused
    /// now, and counts it; the CONNACK to send, if any, in `returnCode`.
    func takeConnectRefusal(device: String?) -> ConnectRefusal? {
        guard var refusal = self.connectRefusal, refusal.armed, refusal.remaining > 0 else { return nil }
        if let target = refusal.device, target != device { return nil }
        refusal.remaining -= 1
        self.connectRefusal = refusal.remaining > 0 ? refusal : nil
        return refusal
    }

    /// A provisioning of `device` succeeded: arms a refusal that waited for it, for that device's CONNECTs.
    func provisioningSucceeded(device: String?) {
        guard var refusal = self.connectRefusal, !refusal.armed else { return }
        refusal.armed = true
        refusal.device = device
        self.connectRefusal = refusal
        self.eventLog.record("connect_refusal_armed", [("refusal", refusal.json)])
    }

    /// Closes every connection and refuses new ones for `duration`.
    func startOutage(_ duration: Duration) {
        self.outageUntil = NIODeadline.now() + duration.timeAmount
        let count = self.sessions.count
        for session in Array(self.sessions.values) { session.closeBare(reason: "simulated outage") }
        self.eventLog.record("outage_started", [("seconds", .double(duration.seconds)), ("closedSessions", .integer(Int64(count)))])
        self.loop.scheduleTask(in: duration.timeAmount) {
            if !self.inOutage { self.eventLog.record("outage_ended", []) }
        }
    }
}
