import NIOCore
import TBJSON

/// Topics of ThingsBoard's device API (reference sections 3-5).
enum Topics {
    static let provisionRequest = "/provision/request"
    static let provisionResponse = "/provision/response"
    static let telemetry: Set<String> = ["v1/devices/me/telemetry", "v2/t", "v2/t/j"]
    static let attributes: Set<String> = ["v1/devices/me/attributes", "v2/a", "v2/a/j"]
    static let attributesTopic = "v1/devices/me/attributes"
    static let attributeRequestPrefix = "v1/devices/me/attributes/request/"
    static let attributeResponsePrefix = "v1/devices/me/attributes/response/"
    static let rpcRequestPrefix = "v1/devices/me/rpc/request/"
    static let rpcResponsePrefix = "v1/devices/me/rpc/response/"
    static let rpcRequestFilter = "v1/devices/me/rpc/request/+"
    static let claim = "v1/devices/me/claim"

    /// The exact filters a device session may subscribe to; anything else (wildcards included) is refused.
    static let allowedFilters: Set<String> = [
        "v1/devices/me/attributes", "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/request/+", "v1/devices/me/rpc/response/+",
        "v2/a", "v2/a/j", "v2/a/p", "v2/a/res/+", "v2/a/j/res/+", "v2/a/p/res/+",
        "v2/r/req/+", "v2/r/j/req/+", "v2/r/p/req/+", "v2/r/res/+", "v2/r/j/res/+", "v2/r/p/res/+",
        "v2/fw/response/+/chunk/+", "v2/fw/error", "v2/sw/response/+/chunk/+", "v2/sw/error",
        "v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc",
    ]

    /// The filters whose SUBSCRIBE (and UNSUBSCRIBE) reaches the device actor and so is charged to the messages
    /// limit (`processAttributesSubscribe`, `processRpcSubscribe`); the response filters are only registered locally.
    static let chargedFilters: Set<String> = [
        "v1/devices/me/attributes", "v2/a", "v2/a/j", "v2/a/p",
        "v1/devices/me/rpc/request/+", "v2/r/req/+", "v2/r/j/req/+", "v2/r/p/req/+",
    ]

    /// MQTT filter matching (`+` one level, `#` the rest).
    static func matches(filter: String, topic: String) -> Bool {
        let f = filter.split(separator: "/", omittingEmptySubsequences: false)
        let t = topic.split(separator: "/", omittingEmptySubsequences: false)
        for (i, part) in f.enumerated() {
            if part == "#" { return true }
            guard i < t.count else { return false }
            if part != "+" && part != t[i] { return false }
        }
        return f.count == t.count
    }

    /// The integer id at the end of a request topic (`Integer.parseInt`).
    static func requestID(_ topic: String, prefix: String) -> Int? {
        Int32(topic.dropFirst(prefix.count)).map(Int.init)
    }
}

/// One MQTT connection: CONNECT, then a provision-only or a device session, with ThingsBoard's rules.
/// Lives on the simulator's single event loop.
final class MQTTSessionHandler: ChannelInboundHandler {
    typealias InboundIn = MQTTClientPacket
    typealias OutboundOut = MQTTOutbound

    enum Phase {
        case awaitingConnect
        case provisioning
        case device(String)
        case closed
    }

    let simulator: Simulator
    private(set) var id = 0
    private var context: ChannelHandlerContext?
    private var phase = Phase.awaitingConnect
    private var version = MQTTProtocolVersion.v3_1_1
    private var subscriptions: [String: UInt8] = [:]
    private var nextPacketID: UInt16 = 1
    private var lastActivity = NIODeadline.now()
    private var inactivityTask: Scheduled<Void>?
    private var provisionCloseTask: Scheduled<Void>?
    private var rpcAwaitingAck: [UInt16: ServerRPC] = [:]
    private var topicAliases: [UInt16: String] = [:]
    private var closeReason: String?
    private var remote = "?"
    /// Whether the device session was opened (CONNACK 0): its close is then charged to the messages limit.
    private var opened = false
    /// ThingsBoard's per-session OTA caches, keyed by the request id's text (shared by firmware and software): the
    /// chunk size last given, and the package the first request resolved to. Bounded here (ThingsBoard's are not).
    private var otaChunkSizes: [String: Int32] = [:]
    private var otaPackageByRequest: [String: String] = [:]
    static let otaRequestsKept = 1024
    /// On the TLS listener: the client's certificate, learnt from the handshake before the CONNECT arrives.
    private var tlsIdentity: TLSClientIdentity?

    init(simulator: Simulator) {
        self.simulator = simulator
    }

    var deviceName: String? {
        if case .device(let name) = self.phase { return name }
        return nil
    }

    var isSubscribedToRPC: Bool { self.subscriptions[Topics.rpcRequestFilter] != nil }

    var kind: String {
        switch self.phase {
        case .awaitingConnect: return "connecting"
        case .provisioning: return "provision"
        case .device: return "device"
        case .closed: return "closed"
        }
    }

    var summary: JSONValue {
        .object([
            ("session", .integer(Int64(self.id))),
            ("kind", .string(self.kind)),
            ("device", self.deviceName.map(JSONValue.string) ?? .null),
            ("protocol", .string(self.version.description)),
            ("remote", .string(self.remote)),
            ("subscriptions", .object(self.subscriptions.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) })),
        ])
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.id = self.simulator.register(self)
        self.remote = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
    }

    func channelActive(context: ChannelHandlerContext) {
        if self.simulator.inOutage {
            self.closeReason = "refused during a simulated outage"
            context.close(promise: nil)
            return
        }
        self.scheduleInactivityCheck(after: self.simulator.configuration.timings.inactivityTimeout.timeAmount)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let device = self.deviceName
        if let device, self.opened {
            // ThingsBoard's doDisconnect sends SESSION_EVENT CLOSED, which checkLimits charges (silently).
            _ = self.simulator.admit(device: device, .message, countDrop: false)
        }
        self.inactivityTask?.cancel()
        self.provisionCloseTask?.cancel()
        self.simulator.unregister(self)
        self.phase = .closed
        self.simulator.eventLog.record("disconnect", [
            ("session", .integer(Int64(self.id))), ("device", device.map(JSONValue.string) ?? .null),
            ("reason", .string(self.closeReason ?? "connection closed by the client")),
        ])
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let decodeError = error as? MQTTDecodeError {
            self.simulator.eventLog.record("decode_error", [("session", .integer(Int64(self.id))),
                                                            ("message", .string(decodeError.message))])
            // ThingsBoard's closeCtx(MALFORMED_PACKET): an MQTT 5 session (past its CONNECT) gets DISCONNECT 0x81.
            if case .awaitingConnect = self.phase {
                self.closeBare(reason: "undecodable packet: \(decodeError.message)")
            } else {
                self.close(reason: "undecodable packet: \(decodeError.message)", v5Reason: MQTTReasonCode.malformedPacket)
            }
        } else {
            self.closeBare(reason: "connection error: \(error)")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? TLSClientIdentity {
            self.tlsIdentity = identity
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = self.unwrapInboundIn(data)
        self.lastActivity = .now()
        switch self.phase {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                self.closeBare(reason: "the first packet is not CONNECT")
                return
            }
            self.handleConnect(connect)
        case .provisioning:
            self.handleProvisionSession(packet)
        case .device(let name):
            self.handleDeviceSession(packet, device: name)
        case .closed:
            return
        }
    }

    // MARK: Sending and closing

    private func send(_ packet: MQTTServerPacket) {
        guard let context = self.context, context.channel.isActive else { return }
        context.writeAndFlush(self.wrapOutboundOut(MQTTOutbound(version: self.version, packet: packet)), promise: nil)
    }

    private func puback(_ publish: MQTTPublish, _ reason: UInt8 = MQTTReasonCode.success) {
        guard publish.qos > 0, let packetID = publish.packetID else { return }
        self.send(.puback(packetID: packetID, reasonCode: reason))
    }

    /// Publishes to the device: QoS from the matching subscription, else 1; retain 0.
    @discardableResult
    func publish(topic: String, payload: [UInt8]) -> (qos: UInt8, packetID: UInt16?) {
        let qos = self.subscriptions.first(where: { Topics.matches(filter: $0.key, topic: topic) })?.value ?? 1
        var packetID: UInt16? = nil
        if qos > 0 {
            packetID = self.nextPacketID
            self.nextPacketID = self.nextPacketID == UInt16.max ? 1 : self.nextPacketID + 1
        }
        self.send(.publish(MQTTPublish(topic: topic, payload: payload, qos: qos, packetID: packetID)))
        return (qos, packetID)
    }

    /// Closes the connection: in MQTT 5 with a DISCONNECT carrying `v5Reason` first; in MQTT 3 a bare TCP close.
    func close(reason: String, v5Reason: UInt8) {
        guard let context = self.context, self.closeReason == nil else { return }
        self.closeReason = reason
        if self.version.isV5 && context.channel.isActive {
            let frame = MQTTOutbound(version: self.version, packet: .disconnect(reasonCode: v5Reason))
            context.writeAndFlush(self.wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }

    /// Closes the TCP connection with nothing sent first.
    func closeBare(reason: String) {
        guard let context = self.context, self.closeReason == nil else { return }
        self.closeReason = reason
        context.close(promise: nil)
    }

    /// ThingsBoard's `sendResponseForAdaptorErrorOrCloseContext`: MQTT 5 with QoS ≥ 1 gets PUBACK 0x99 and stays;
    /// everything else is closed with no PUBACK.
    private func adaptorError(_ publish: MQTTPublish, _ message: String) {
        self.simulator.eventLog.record("publish_rejected", [
            ("session", .integer(Int64(self.id))), ("device", self.deviceName.map(JSONValue.string) ?? .null),
            ("topic", .string(publish.topic)), ("reason", .string(message)),
        ])
        if self.version.isV5 && publish.qos > 0 {
            self.puback(publish, MQTTReasonCode.payloadFormatInvalid)
        } else {
            self.closeBare(reason: "invalid payload on \(publish.topic): \(message)")
        }
    }

    /// ThingsBoard's `RuntimeException` path: PUBACK (0x83 in MQTT 5), then close.
    private func runtimeError(_ publish: MQTTPublish, _ message: String) {
        self.simulator.eventLog.record("publish_rejected", [
            ("session", .integer(Int64(self.id))), ("device", self.deviceName.map(JSONValue.string) ?? .null),
            ("topic", .string(publish.topic)), ("reason", .string(message)),
        ])
        self.puback(publish, MQTTReasonCode.implementationSpecificError)
        self.close(reason: "failed to process publish on \(publish.topic): \(message)", v5Reason: MQTTReasonCode.implementationSpecificError)
    }

    /// Applies the optional rate limits: on violation the message is dropped without PUBACK and the session closed
    /// (v5 DISCONNECT 0x83), as ThingsBoard's `getPubAckCallback.onError(TbRateLimitsException)` does.
    private func rateLimited(_ publish: MQTTPublish, device: String, charge: RateCharge = .message) -> Bool {
        guard let exceeded = self.simulator.admit(device: device, charge) else { return false }
        var fields: [(String, JSONValue)] = [
            ("session", .integer(Int64(self.id))), ("device", .string(device)), ("topic", .string(publish.topic)),
            ("limit", .string(exceeded.rawValue)),
            ("configured", .string(self.simulator.rateLimits(device: device).text(exceeded))),
        ]
        if case .dataPoints(let points) = charge { fields.append(("dataPoints", .integer(Int64(points)))) }
        self.simulator.eventLog.record("rate_limited", fields)
        self.close(reason: "rate limit \(exceeded.rawValue) exceeded", v5Reason: MQTTReasonCode.implementationSpecificError)
        return true
    }

    private func payloadError(_ publish: MQTTPublish, _ error: PayloadError) {
        switch error {
        case .adaptor(let message): self.adaptorError(publish, message)
        case .runtime(let message): self.runtimeError(publish, message)
        }
    }

    private func scheduleInactivityCheck(after delay: TimeAmount) {
        guard let context = self.context else { return }
        self.inactivityTask = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            let timeout = self.simulator.configuration.timings.inactivityTimeout.timeAmount
            let idle = NIODeadline.now() - self.lastActivity
            if idle >= timeout {
                self.close(reason: "inactivity timeout", v5Reason: MQTTReasonCode.implementationSpecificError)
            } else {
                self.scheduleInactivityCheck(after: timeout - idle)
            }
        }
    }

    // MARK: CONNECT

    private func handleConnect(_ connect: MQTTConnect) {
        self.version = connect.version
        let sessionPresent = !connect.cleanSession
        var fields: [(String, JSONValue)] = [
            ("session", .integer(Int64(self.id))), ("remote", .string(self.remote)),
            ("protocol", .string(connect.version.description)), ("clientId", .string(connect.clientID)),
            ("username", connect.username.map { $0 == "provision" ? .string($0) : .string(mask($0)) } ?? .null),
            ("hasPassword", .bool(connect.password != nil)), ("cleanSession", .bool(connect.cleanSession)),
            ("keepAlive", .integer(Int64(connect.keepAlive))),
        ]
        if connect.username == "provision" || connect.clientID == "provision" {
            self.phase = .provisioning
            self.send(.connack(sessionPresent: sessionPresent, returnCode: 0))
            fields.append(contentsOf: [("kind", .string("provision")), ("returnCode", .integer(0))])
            self.simulator.eventLog.record("connect", fields)
            return
        }
        let password = connect.passwordText
        let authenticated: SimDevice?
        if let leaf = self.tlsIdentity?.leafPEM {
            // ThingsBoard's processX509CertConnect: a client certificate takes priority over user name and password;
            // an expired (or not yet valid) one gets NOT_AUTHORIZED; otherwise its credentials are looked up.
            if self.tlsIdentity?.leafOutsideValidity == true {
                let returnCode = connect.version.isV5 ? MQTTReasonCode.notAuthorized : Self.v3ReturnCode(MQTTReasonCode.notAuthorized)
                fields.append(contentsOf: [("kind", .string("refused")), ("clientCertificate", .bool(true)),
                                           ("reason", .string("the client certificate is expired or not yet valid")),
                                           ("returnCode", .integer(Int64(returnCode)))])
                self.simulator.eventLog.record("connect", fields)
                self.send(.connack(sessionPresent: sessionPresent, returnCode: returnCode))
                self.closeBare(reason: "CONNACK \(returnCode): the client certificate is expired or not yet valid")
                return
            }
            fields.append(("clientCertificate", .bool(true)))
            authenticated = self.simulator.registry.device(credentialsID: DeviceCredentials.x509Certificate(leaf).credentialsID)
        } else {
            authenticated = self.simulator.registry.authenticate(
                clientID: connect.clientID, username: connect.username, password: password)
        }
        if let refusal = self.simulator.takeConnectRefusal(device: authenticated?.credentials == nil ? nil : authenticated?.name) {
            // A blip set up through the control interface (refuse-connects).
            fields.append(contentsOf: [
                ("kind", .string("dropped")), ("device", authenticated.map { .string($0.name) } ?? .null),
                ("returnCode", refusal.returnCode.map { .integer(Int64($0)) } ?? .null),
            ])
            self.simulator.eventLog.record("connect", fields)
            if let code = refusal.returnCode { self.send(.connack(sessionPresent: sessionPresent, returnCode: code)) }
            self.closeBare(reason: "CONNECT refused through the control interface (refuse-connects)")
            return
        }
        if let device = authenticated, let credentials = device.credentials {
            // The session-open event is charged to the messages limit; refused, the older session stays.
            if let exceeded = self.simulator.admit(device: device.name, .message) {
                let code = connect.version.isV5 ? MQTTReasonCode.connectionRateExceeded : 3
                fields.append(contentsOf: [("kind", .string("rate_limited")), ("device", .string(device.name)),
                                           ("limit", .string(exceeded.rawValue)), ("returnCode", .integer(Int64(code)))])
                self.simulator.eventLog.record("connect", fields)
                self.simulator.eventLog.record("rate_limited", [
                    ("session", .integer(Int64(self.id))), ("device", .string(device.name)), ("packet", .string("CONNECT")),
                    ("limit", .string(exceeded.rawValue)),
                    ("configured", .string(self.simulator.rateLimits(device: device.name).text(exceeded))),
                ])
                self.send(.connack(sessionPresent: sessionPresent, returnCode: code))
                // ThingsBoard's closeCtx: in MQTT 5 a DISCONNECT (0x96, message rate too high) follows.
                self.close(reason: "CONNACK \(code): rate limit \(exceeded.rawValue) exceeded", v5Reason: MQTTReasonCode.messageRateTooHigh)
                return
            }
            self.phase = .device(device.name)
            self.opened = true
            self.simulator.attach(self, device: device.name)
            self.send(.connack(sessionPresent: sessionPresent, returnCode: 0))
            fields.append(contentsOf: [("kind", .string("device")), ("device", .string(device.name)),
                                       ("credentialsType", .string(credentials.type.rawValue)), ("returnCode", .integer(0))])
            self.simulator.eventLog.record("connect", fields)
            return
        }
        let code = Self.refusalCode(clientID: connect.clientID, username: connect.username, password: password)
        let returnCode = connect.version.isV5 ? code : Self.v3ReturnCode(code)
        fields.append(contentsOf: [("kind", .string("refused")), ("returnCode", .integer(Int64(returnCode)))])
        self.simulator.eventLog.record("connect", fields)
        self.send(.connack(sessionPresent: sessionPresent, returnCode: returnCode))
        self.closeBare(reason: "CONNACK \(returnCode): unknown or revoked credentials")
    }

    /// ThingsBoard's choice of refusal (`onValidateDeviceResponse`): 0x86 when user name, password and client id are
    /// all given or exactly one of user name and password is; else 0x85 with a client id; else 0x87.
    static func refusalCode(clientID: String, username: String?, password: String?) -> UInt8 {
        let hasUser = !(username ?? "").isEmpty
        let hasPassword = !(password ?? "").isEmpty
        let hasClientID = !clientID.trimmingWhitespace().isEmpty
        if (hasUser && hasPassword && hasClientID) || (hasUser != hasPassword) { return MQTTReasonCode.badUserNameOrPassword }
        if hasClientID { return MQTTReasonCode.clientIdentifierNotValid }
        return MQTTReasonCode.notAuthorized
    }

    /// `ReturnCodeResolver` for MQTT 3: 0x85 → 2, 0x86/0x87 → 5, server errors → 3. Never 4.
    static func v3ReturnCode(_ code: UInt8) -> UInt8 {
        switch code {
        case MQTTReasonCode.clientIdentifierNotValid: return 2
        case MQTTReasonCode.badUserNameOrPassword, MQTTReasonCode.notAuthorized: return 5
        default: return 3
        }
    }

    // MARK: Provision session

    private func handleProvisionSession(_ packet: MQTTClientPacket) {
        switch packet {
        case .publish(let publish):
            guard let topic = self.resolveTopic(publish) else { return }
            if topic == Topics.provisionRequest {
                self.handleProvisionRequest(publish)
            } else {
                self.simulator.eventLog.record("publish_rejected", [
                    ("session", .integer(Int64(self.id))), ("topic", .string(topic)),
                    ("reason", .string("a provision session may only publish to /provision/request")),
                ])
                self.puback(publish, MQTTReasonCode.topicNameInvalid)
                self.close(reason: "publish to \(topic) in a provision session", v5Reason: MQTTReasonCode.topicNameInvalid)
            }
        case .subscribe(let packetID, let subscriptions):
            var codes: [UInt8] = []
            for subscription in subscriptions {
                if subscription.filter == Topics.provisionResponse {
                    let granted = min(subscription.qos, 1)
                    self.subscriptions[subscription.filter] = granted
                    codes.append(granted)
                } else {
                    codes.append(self.version.isV5 ? MQTTReasonCode.topicFilterInvalid : MQTTReasonCode.unspecifiedError)
                }
            }
            self.logSubscribe(subscriptions, codes)
            self.send(.suback(packetID: packetID, returnCodes: codes))
        case .unsubscribe(let packetID, let filters):
            self.handleUnsubscribe(packetID: packetID, filters: filters)
        case .pingreq:
            self.send(.pingresp)
        case .disconnect:
            self.closeBare(reason: "client sent DISCONNECT")
        case .puback, .qos2Flow:
            return
        case .connect:
            self.close(reason: "second CONNECT on one connection", v5Reason: MQTTReasonCode.protocolError)
        case .auth:
            self.close(reason: "AUTH is not supported", v5Reason: MQTTReasonCode.implementationSpecificError)
        }
    }

    private func handleProvisionRequest(_ publish: MQTTPublish) {
        let request: ProvisionRequest
        do {
            request = try ProvisionRequest.parse(publish.payload)
        } catch {
            self.simulator.eventLog.record("provision_request", [
                ("session", .integer(Int64(self.id))), ("valid", .bool(false)), ("reason", .string(error.description)),
            ])
            self.payloadError(publish, error)
            return
        }
        let mode = self.simulator.provisioningMode(forDeviceName: request.deviceName)
        self.simulator.eventLog.record("provision_request", [
            ("session", .integer(Int64(self.id))), ("valid", .bool(true)), ("request", request.maskedJSON),
            ("mode", mode.json),
        ])
        switch mode {
        case .withhold:
            return
        case .close:
            self.closeBare(reason: "provision request dropped (mode close)")
            return
        case .backendError:
            self.puback(publish, MQTTReasonCode.implementationSpecificError)
            self.close(reason: "provision backend error (mode error)", v5Reason: MQTTReasonCode.implementationSpecificError)
            return
        case .normal, .delay:
            break
        }
        let result = self.simulator.provision(request)
        self.simulator.eventLog.record("provision_decision", [
            ("session", .integer(Int64(self.id))), ("status", .string(result.status.rawValue)),
            ("device", result.deviceName.map(JSONValue.string) ?? request.deviceName.map(JSONValue.string) ?? .null),
            ("credentials", result.credentials?.maskedJSON ?? .null), ("reason", .string(result.reason)),
        ])
        let respond = { [self] in
            guard self.closeReason == nil, self.context != nil else { return }
            self.puback(publish)
            let body = result.responseBody
            self.publish(topic: Topics.provisionResponse, payload: body.serializedBytes)
            self.simulator.eventLog.record("provision_response", [
                ("session", .integer(Int64(self.id))), ("status", .string(result.status.rawValue)),
                ("device", result.deviceName.map(JSONValue.string) ?? .null),
                ("credentialsType", result.credentials.map { .string($0.type.rawValue) } ?? .null),
            ])
            if result.status == .success { self.simulator.provisioningSucceeded(device: result.deviceName) }
            self.provisionCloseTask?.cancel()
            if let context = self.context {
                let delay = self.simulator.configuration.timings.provisionCloseDelay.timeAmount
                self.provisionCloseTask = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
                    self.closeBare(reason: "provision session closed by the server after the response")
                }
            }
        }
        if case .delay(let duration) = mode, let context = self.context {
            context.eventLoop.assumeIsolated().scheduleTask(in: duration.timeAmount) { respond() }
        } else {
            respond()
        }
    }

    // MARK: Device session

    private func handleDeviceSession(_ packet: MQTTClientPacket, device: String) {
        switch packet {
        case .publish(let publish):
            guard let topic = self.resolveTopic(publish) else { return }
            self.handleDevicePublish(publish, topic: topic, device: device)
        case .subscribe(let packetID, let subscriptions):
            var codes: [UInt8] = []
            for subscription in subscriptions {
                if Topics.allowedFilters.contains(subscription.filter) {
                    let granted = min(subscription.qos, 1)
                    // A rate-limited subscription is still granted in the SUBACK but silently not registered.
                    if Topics.chargedFilters.contains(subscription.filter),
                       let exceeded = self.simulator.admit(device: device, .message) {
                        self.simulator.eventLog.record("rate_limited", [
                            ("session", .integer(Int64(self.id))), ("device", .string(device)), ("packet", .string("SUBSCRIBE")),
                            ("filter", .string(subscription.filter)), ("limit", .string(exceeded.rawValue)),
                            ("configured", .string(self.simulator.rateLimits(device: device).text(exceeded))),
                        ])
                    } else {
                        self.subscriptions[subscription.filter] = granted
                    }
                    codes.append(granted)
                } else {
                    codes.append(self.version.isV5 ? MQTTReasonCode.topicFilterInvalid : MQTTReasonCode.unspecifiedError)
                }
            }
            self.logSubscribe(subscriptions, codes)
            self.send(.suback(packetID: packetID, returnCodes: codes))
            if subscriptions.contains(where: { $0.filter == Topics.rpcRequestFilter }) && self.isSubscribedToRPC {
                self.simulator.flushRPCs(to: self, device: device)
            }
        case .unsubscribe(let packetID, let filters):
            self.handleUnsubscribe(packetID: packetID, filters: filters, device: device)
        case .pingreq:
            self.send(.pingresp)
        case .puback(let packetID, _):
            if let rpc = self.rpcAwaitingAck.removeValue(forKey: packetID) {
                self.simulator.rpcDelivered(rpc)
            }
        case .qos2Flow:
            return
        case .disconnect:
            self.closeBare(reason: "client sent DISCONNECT")
        case .connect:
            self.close(reason: "second CONNECT on one connection", v5Reason: MQTTReasonCode.protocolError)
        case .auth:
            self.close(reason: "AUTH is not supported", v5Reason: MQTTReasonCode.implementationSpecificError)
        }
    }

    private func handleDevicePublish(_ publish: MQTTPublish, topic: String, device: String) {
        let sessionField: (String, JSONValue) = ("session", .integer(Int64(self.id)))
        let deviceField: (String, JSONValue) = ("device", .string(device))
        if Topics.telemetry.contains(topic) {
            do {
                let entries = try PayloadConverter.telemetry(publish.payload, serverTime: self.simulator.nowMillis)
                let points = entries.reduce(0) { $0 + $1.values.count }
                if self.rateLimited(publish, device: device, charge: .post(dataPoints: points)) { return }
                self.simulator.recordTelemetry(device: device, entries: entries)
                self.simulator.eventLog.record("telemetry", [
                    sessionField, deviceField, ("topic", .string(topic)), ("qos", .integer(Int64(publish.qos))),
                    ("entries", .array(entries.map(\.json))),
                ])
                self.puback(publish)
            } catch {
                self.payloadError(publish, error)
            }
        } else if Topics.attributes.contains(topic) {
            do {
                let values = try PayloadConverter.attributes(publish.payload)
                if self.rateLimited(publish, device: device, charge: .post(dataPoints: values.count)) { return }
                self.simulator.recordClientAttributes(device: device, values: values)
                self.simulator.eventLog.record("attributes", [
                    sessionField, deviceField, ("topic", .string(topic)), ("qos", .integer(Int64(publish.qos))),
                    ("values", .object(values)),
                ])
                self.puback(publish)
            } catch {
                self.payloadError(publish, error)
            }
        } else if topic.hasPrefix(Topics.attributeRequestPrefix) {
            self.handleAttributeRequest(publish, topic: topic, device: device)
        } else if topic.hasPrefix(Topics.rpcResponsePrefix) {
            guard let requestID = Topics.requestID(topic, prefix: Topics.rpcResponsePrefix) else {
                self.adaptorError(publish, "RPC response id is not an integer")
                return
            }
            if self.rateLimited(publish, device: device) { return }
            self.puback(publish)
            self.simulator.rpcReply(device: device, id: requestID, payload: publish.payload)
        } else if topic.hasPrefix(Topics.rpcRequestPrefix) {
            self.handleClientRPC(publish, topic: topic, device: device)
        } else if topic == Topics.claim {
            self.handleClaim(publish, device: device)
        } else if let request = OtaChunkRequest(topic: topic) {
            self.handleOtaRequest(publish, request, device: device)
        } else {
            self.simulator.eventLog.record("publish_dropped", [sessionField, deviceField, ("topic", .string(topic)),
                                                               ("reason", .string("unknown topic"))])
            self.puback(publish, MQTTReasonCode.topicNameInvalid)
        }
    }

    /// `MqttTransportHandler.getOtaPackageCallback`: the chunk size from the payload (empty or below 1: the size
    /// remembered for this request id, else 0 for the whole package), PAYLOAD_TOO_LARGE over the payload limit, the
    /// package from the session's cache or else from the core (charged; NOT_FOUND or FAILURE refused), then PUBACK
    /// and the chunk, empty past the end. Refusals go to `v2/fw/error` without a PUBACK, and the session is closed.
    private func handleOtaRequest(_ publish: MQTTPublish, _ request: OtaChunkRequest, device: String) {
        let payloadText = String(decoding: publish.payload, as: UTF8.self)
        var chunkSize: Int32 = 0
        if !payloadText.isEmpty {
            guard let parsed = Int32(payloadText) else {
                self.runtimeError(publish, "chunk size \"\(payloadText.prefix(40))\" is not an int (Integer.parseInt)")
                return
            }
            chunkSize = parsed
        }
        guard let chunk = Int32(request.chunkDigits) else {
            self.runtimeError(publish, "chunk index \(request.chunkDigits.prefix(40)) is not an int (Integer.parseInt)")
            return
        }
        if chunkSize > 0 {
            if self.otaChunkSizes.count >= Self.otaRequestsKept && self.otaChunkSizes[request.requestID] == nil {
                self.otaChunkSizes.removeAll()
            }
            self.otaChunkSizes[request.requestID] = chunkSize
        } else {
            chunkSize = self.otaChunkSizes[request.requestID] ?? 0
        }
        var fields: [(String, JSONValue)] = [
            ("session", .integer(Int64(self.id))), ("device", .string(device)), ("type", .string(request.type.rawValue)),
            ("requestId", .string(request.requestID)), ("chunk", .integer(Int64(chunk))), ("chunkSize", .integer(Int64(chunkSize))),
        ]
        if Int(chunkSize) > self.simulator.configuration.maxPacketSize {
            self.otaError(.payloadTooLarge, fields)
            return
        }
        let packageID: String
        if let cached = self.otaPackageByRequest[request.requestID] {
            packageID = cached
        } else {
            // Only a request id the session has not seen reaches the core, which charges the messages limit.
            if self.rateLimited(publish, device: device) { return }
            switch self.simulator.otaPackageForRequest(device: device, type: request.type) {
            case .failure(let error):
                self.otaError(error, fields)
                return
            case .success(let package):
                if self.otaPackageByRequest.count >= Self.otaRequestsKept { self.otaPackageByRequest.removeAll() }
                self.otaPackageByRequest[request.requestID] = package.id
                packageID = package.id
            }
        }
        self.puback(publish)
        fields.append(("package", .string(packageID)))
        guard let data = self.simulator.ota.package(id: packageID)?.data else { return }
        guard let bytes = OtaPackage.chunk(of: data, size: chunkSize, index: chunk) else {
            // Java's int product overflowed: ThingsBoard's arraycopy throws, it logs and sends nothing.
            self.simulator.eventLog.record("ota_chunk", fields + [("bytes", .null), ("answer", .string("nothing: chunkSize × chunk overflows an int"))])
            return
        }
        self.publish(topic: request.responseTopic(chunk: chunk), payload: bytes)
        self.simulator.eventLog.record("ota_chunk", fields + [("bytes", .integer(Int64(bytes.count)))])
    }

    /// `sendOtaPackageError`: the status on `v2/fw/error`, then the session closed (MQTT 5: DISCONNECT 0x83).
    private func otaError(_ error: OtaRequestError, _ fields: [(String, JSONValue)]) {
        self.publish(topic: OtaChunkRequest.errorTopic, payload: Array(error.rawValue.utf8))
        self.simulator.eventLog.record("ota_error", fields + [("answer", .string(error.rawValue))])
        self.close(reason: "OTA request answered \(error.rawValue)", v5Reason: MQTTReasonCode.implementationSpecificError)
    }

    /// `JsonConverter.convertToClaimDeviceProto`: an empty payload or a non-object claims with an empty secret and
    /// the default window; `secretKey` and `durationMs` are read with Gson's coercions. The device gets its PUBACK
    /// whatever the claim service decides.
    private func handleClaim(_ publish: MQTTPublish, device: String) {
        var secretKey = ""
        var durationMs: Int64 = 0
        if !publish.payload.isEmpty {
            do throws(PayloadError) {
                let json = try Gson.parse(publish.payload)
                if case .object = json {
                    if let value = json["secretKey"] { secretKey = try Gson.asString(value, field: "secretKey") }
                    if let value = json["durationMs"] { durationMs = try Gson.asLong(value, field: "durationMs") }
                }
            } catch {
                // Bad JSON is an AdaptorException; a durationMs that is no number is a NumberFormatException.
                self.payloadError(publish, error)
                return
            }
        }
        if self.rateLimited(publish, device: device) { return }
        self.puback(publish)
        self.simulator.registerClaim(device: device, secretKey: secretKey, durationMs: durationMs, session: self.id)
    }

    private func handleAttributeRequest(_ publish: MQTTPublish, topic: String, device: String) {
        guard let requestID = Topics.requestID(topic, prefix: Topics.attributeRequestPrefix) else {
            self.adaptorError(publish, "attribute request id is not an integer")
            return
        }
        var clientKeys: [String]? = nil
        var sharedKeys: [String]? = nil
        do throws(PayloadError) {
            let json = try Gson.parse(publish.payload)
            guard case .object = json else { throw PayloadError.adaptor("attribute request is not a JSON object") }
            func keys(_ field: String) throws(PayloadError) -> [String]? {
                guard let value = json[field] else { return nil }
                return try Gson.asString(value, field: field).split(separator: ",")
                    .map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
            }
            clientKeys = try keys("clientKeys")
            sharedKeys = try keys("sharedKeys")
        } catch {
            // ThingsBoard's adaptor wraps every failure here in an AdaptorException.
            self.adaptorError(publish, error.description)
            return
        }
        if self.rateLimited(publish, device: device) { return }
        self.puback(publish)
        let response = self.simulator.attributeResponse(device: device, clientKeys: clientKeys, sharedKeys: sharedKeys)
        self.publish(topic: Topics.attributeResponsePrefix + String(requestID), payload: response.serializedBytes)
        self.simulator.eventLog.record("attribute_request", [
            ("session", .integer(Int64(self.id))), ("device", .string(device)), ("id", .integer(Int64(requestID))),
            ("clientKeys", clientKeys.map { .array($0.map(JSONValue.string)) } ?? .null),
            ("sharedKeys", sharedKeys.map { .array($0.map(JSONValue.string)) } ?? .null),
            ("response", response),
        ])
    }

    private func handleClientRPC(_ publish: MQTTPublish, topic: String, device: String) {
        guard let requestID = Topics.requestID(topic, prefix: Topics.rpcRequestPrefix) else {
            self.adaptorError(publish, "RPC request id is not an integer")
            return
        }
        let method: String
        let params: JSONValue
        do throws(PayloadError) {
            let json = try Gson.parse(publish.payload)
            guard case .object = json, let m = json["method"] else {
                throw PayloadError.adaptor("client-side RPC needs a \"method\"")
            }
            method = try Gson.asString(m, field: "method")
            params = json["params"] ?? .null
        } catch {
            self.adaptorError(publish, error.description)
            return
        }
        // From ThingsBoard 3.8 the transport answers getSessionLimits itself, uncharged; before, and for every other
        // method, the request goes to the rule engine through checkLimits.
        let builtIn = method == "getSessionLimits" && (self.simulator.profile(ofDevice: device)?.answersSessionLimits ?? true)
        if !builtIn && self.rateLimited(publish, device: device) { return }
        self.puback(publish)
        self.simulator.eventLog.record("client_rpc_request", [
            ("session", .integer(Int64(self.id))), ("device", .string(device)), ("id", .integer(Int64(requestID))),
            ("method", .string(method)), ("params", params),
        ])
        if builtIn {
            self.sendClientRPCResponse(requestID: requestID, body: self.simulator.sessionLimits(device: device))
        } else if let canned = self.simulator.clientRPCReplies[method] {
            self.sendClientRPCResponse(requestID: requestID, body: canned)
        } else if let context = self.context {
            let timeout = self.simulator.configuration.timings.clientRPCTimeout.timeAmount
            let sessionID = self.id
            let simulator = self.simulator
            let task = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
                guard var list = simulator.pendingClientRPC[device],
                      let index = list.firstIndex(where: { $0.requestID == requestID && $0.session == sessionID })
                else { return }
                list.remove(at: index)
                simulator.pendingClientRPC[device] = list.isEmpty ? nil : list
                simulator.sessions[sessionID]?.sendClientRPCResponse(requestID: requestID, body: .object([("error", .string("timeout"))]))
            }
            self.simulator.pendingClientRPC[device, default: []].append(
                PendingClientRPC(session: self.id, requestID: requestID, method: method, params: params, timeoutTask: task))
        }
    }

    func sendClientRPCResponse(requestID: Int, body: JSONValue) {
        self.publish(topic: Topics.rpcResponsePrefix + String(requestID), payload: body.serializedBytes)
        self.simulator.eventLog.record("client_rpc_response", [
            ("session", .integer(Int64(self.id))), ("device", self.deviceName.map(JSONValue.string) ?? .null),
            ("id", .integer(Int64(requestID))), ("response", body),
        ])
    }

    // MARK: Server-initiated traffic

    /// Pushes a shared-attribute update if the device subscribed to `v1/devices/me/attributes`.
    func pushSharedAttributes(_ body: JSONValue) -> Bool {
        guard self.subscriptions[Topics.attributesTopic] != nil else { return false }
        self.publish(topic: Topics.attributesTopic, payload: body.serializedBytes)
        return true
    }

    /// Sends a server-side RPC: `{"method":..,"params":..}` on `rpc/request/{id}`.
    func deliver(_ rpc: ServerRPC) {
        let (qos, packetID) = self.publish(topic: Topics.rpcRequestPrefix + String(rpc.id), payload: rpc.body.serializedBytes)
        self.simulator.rpcWritten(rpc)
        self.simulator.eventLog.record("rpc_sent", [("session", .integer(Int64(self.id))), ("device", .string(rpc.device)),
                                                    ("id", .integer(Int64(rpc.id))), ("qos", .integer(Int64(qos)))])
        if qos == 0 {
            self.simulator.rpcDelivered(rpc)
        } else if let packetID, let context = self.context {
            self.rpcAwaitingAck[packetID] = rpc
            let timeout = self.simulator.configuration.timings.rpcDeliveryTimeout.timeAmount
            context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                guard self.rpcAwaitingAck[packetID] === rpc else { return }
                self.rpcAwaitingAck.removeValue(forKey: packetID)
                self.simulator.finishRPC(rpc, .timeout("no PUBACK for the RPC request"))
            }
        }
    }

    /// RPCs written but not acknowledged, handed back when the connection ends.
    func takeUnacknowledgedRPCs() -> [ServerRPC] {
        let list = self.rpcAwaitingAck.sorted { $0.key < $1.key }.map(\.value)
        self.rpcAwaitingAck.removeAll()
        return list
    }

    // MARK: Helpers

    private func handleUnsubscribe(packetID: UInt16, filters: [String], device: String? = nil) {
        var codes: [UInt8] = []
        for filter in filters {
            guard self.subscriptions[filter] != nil else {
                codes.append(MQTTReasonCode.noSubscriptionExisted)
                continue
            }
            // An attribute or RPC unsubscription is charged like the subscription; refused, the device actor never
            // hears of it and keeps pushing.
            if let device, Topics.chargedFilters.contains(filter), let exceeded = self.simulator.admit(device: device, .message) {
                self.simulator.eventLog.record("rate_limited", [
                    ("session", .integer(Int64(self.id))), ("device", .string(device)), ("packet", .string("UNSUBSCRIBE")),
                    ("filter", .string(filter)), ("limit", .string(exceeded.rawValue)),
                    ("configured", .string(self.simulator.rateLimits(device: device).text(exceeded))),
                ])
            } else {
                self.subscriptions.removeValue(forKey: filter)
            }
            codes.append(MQTTReasonCode.success)
        }
        self.simulator.eventLog.record("unsubscribe", [("session", .integer(Int64(self.id))),
                                                       ("filters", .array(filters.map(JSONValue.string)))])
        self.send(.unsuback(packetID: packetID, reasonCodes: codes))
    }

    private func logSubscribe(_ subscriptions: [MQTTSubscription], _ codes: [UInt8]) {
        self.simulator.eventLog.record("subscribe", [
            ("session", .integer(Int64(self.id))), ("device", self.deviceName.map(JSONValue.string) ?? .null),
            ("filters", .array(zip(subscriptions, codes).map { s, code in
                .object([("filter", .string(s.filter)), ("requestedQos", .integer(Int64(s.qos))),
                         ("returnCode", .integer(Int64(code)))])
            })),
        ])
    }

    /// The PUBLISH topic, resolving an MQTT 5 topic alias; `nil` (and the connection closed) for an unknown alias.
    private func resolveTopic(_ publish: MQTTPublish) -> String? {
        guard self.version.isV5 else { return publish.topic }
        var alias: UInt16? = nil
        for case .twoByte(let id, let value) in publish.properties where id == MQTTProperty.topicAliasID { alias = value }
        guard let alias else { return publish.topic }
        if !publish.topic.isEmpty {
            self.topicAliases[alias] = publish.topic
            return publish.topic
        }
        guard let topic = self.topicAliases[alias] else {
            self.close(reason: "unknown topic alias \(alias)", v5Reason: MQTTReasonCode.protocolError)
            return nil
        }
        return topic
    }
}
