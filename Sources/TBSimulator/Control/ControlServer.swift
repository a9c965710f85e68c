import NIOCore
import NIOHTTP1
import NIOPosix
import TBJSON

/// The loopback control interface: HTTP/1.1 with JSON bodies. Each response closes the connection.
enum ControlServer {
    static func bind(simulator: Simulator, host: String, port: Int) async throws -> any Channel {
        try await ServerBootstrap(group: simulator.group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ControlHandler(simulator: simulator))
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// A control response: status and JSON body.
struct ControlResponse {
    var status: HTTPResponseStatus
    var body: JSONValue

    static func ok(_ body: JSONValue) -> ControlResponse { ControlResponse(status: .ok, body: body) }
    static func error(_ status: HTTPResponseStatus, _ message: String) -> ControlResponse {
        ControlResponse(status: status, body: .object([("error", .string(message))]))
    }
}

/// Reads one request, routes it to the simulator, answers and closes.
final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBody = 1 << 20

    let simulator: Simulator
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var tooLarge = false
    private var bodyLimit = ControlHandler.maxBody

    /// OTA uploads may be as large as a package (base64 in JSON takes a third more); everything else 1 MiB.
    static func bodyLimit(uri: String, simulator: Simulator) -> Int {
        guard ControlRouter.split(uri).0.hasPrefix("/otaPackages") else { return Self.maxBody }
        return max(Self.maxBody, simulator.configuration.otaLimits.maxPackageSize / 3 * 4 + Self.maxBody)
    }

    init(simulator: Simulator) {
        self.simulator = simulator
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
            self.tooLarge = false
            self.bodyLimit = Self.bodyLimit(uri: head.uri, simulator: self.simulator)
        case .body(var chunk):
            if self.body.readableBytes + chunk.readableBytes > self.bodyLimit {
                self.tooLarge = true
            } else {
                self.body.writeBuffer(&chunk)
            }
        case .end:
            guard let head = self.head else { return }
            self.head = nil
            if self.tooLarge {
                self.respond(context: context, .error(.payloadTooLarge, "request body over \(self.bodyLimit) bytes"))
                return
            }
            let bytes = self.body.readBytes(length: self.body.readableBytes) ?? []
            switch ControlRouter(simulator: self.simulator).route(head: head, body: bytes) {
            case .now(let response):
                self.respond(context: context, response)
            case .later(let future):
                future.assumeIsolated().whenComplete { [self] result in
                    switch result {
                    case .success(let response): self.respond(context: context, response)
                    case .failure(let error): self.respond(context: context, .error(.internalServerError, "\(error)"))
                    }
                }
            }
        }
    }

    private func respond(context: ChannelHandlerContext, _ response: ControlResponse) {
        guard context.channel.isActive else { return }
        var text = response.body.serialized
        text += "\n"
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(buffer.readableBytes))
        headers.add(name: "Connection", value: "close")
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// The control interface's routes.
struct ControlRouter {
    enum Outcome {
        case now(ControlResponse)
        case later(EventLoopFuture<ControlResponse>)
    }

    let simulator: Simulator

    func route(head: HTTPRequestHead, body: [UInt8]) -> Outcome {
        let (path, query) = Self.split(head.uri)
        let parts = path.split(separator: "/").map { Self.percentDecode(String($0)) }
        if head.method == .POST, parts.count == 3, parts[0] == "otaPackages", parts[2] == "data" {
            // The package's binary as the raw body, as ThingsBoard's upload takes a file.
            do {
                let package = try self.simulator.uploadOtaData(
                    packageID: parts[1], data: body, algorithm: query["checksumAlgorithm"], checksum: query["checksum"],
                    acceptWrongChecksum: query["acceptWrongChecksum"] == "true")
                return .now(.ok(package.json))
            } catch {
                return .now(.error(Self.status(of: error), error.description))
            }
        }
        let json: JSONValue
        if body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            json = .object([])
        } else {
            do {
                json = try JSONValue.parse(body)
            } catch {
                return .now(.error(.badRequest, "request body is not JSON: \(error)"))
            }
        }
        do {
            return try self.dispatch(method: head.method, parts: parts, query: query, json: json)
        } catch {
            return .now(.error(Self.status(of: error), error.description))
        }
    }

    /// 404 for an unknown device, profile, package or pending RPC; 400 for anything else.
    static func status(of error: SimulatorError) -> HTTPResponseStatus {
        let notFound = ["no device", "no pending", "no OTA package", "no profile"]
        return notFound.contains { error.description.hasPrefix($0) } ? .notFound : .badRequest
    }

    func dispatch(method: HTTPMethod, parts: [String], query: [String: String], json: JSONValue) throws(SimulatorError) -> Outcome {
        let sim = self.simulator
        switch (method, parts.count > 0 ? parts[0] : "") {
        case (.GET, "health"):
            return .now(.ok(.object([("ok", .bool(true)), ("mqttPort", .integer(Int64(sim.mqttPort))),
                                     ("sessions", .integer(Int64(sim.sessions.count)))])))
        case (.GET, "sessions"):
            return .now(.ok(.array(sim.sessions.keys.sorted().compactMap { sim.sessions[$0]?.summary })))
        case (.GET, "profiles") where parts.count == 1:
            return .now(.ok(.array(sim.registry.profiles.map(Self.profileJSON))))
        case (.POST, "profiles") where parts.count == 1:
            let profile = try Self.profile(from: json)
            try sim.upsertProfile(profile)
            return .now(ControlResponse(status: .created, body: Self.profileJSON(profile)))
        case (.GET, "otaPackages") where parts.count == 1:
            return .now(.ok(.array(sim.ota.packages.map(\.json))))
        case (.POST, "otaPackages") where parts.count == 1:
            let package = try sim.uploadOtaPackage(try OtaUpload(json: json))
            return .now(ControlResponse(status: .created, body: package.json))
        case (.GET, "otaPackages") where parts.count == 2:
            guard let package = sim.ota.package(id: parts[1]) else { throw SimulatorError("no OTA package \"\(parts[1])\"") }
            return .now(.ok(package.json))
        case (_, "profiles") where parts.count == 3:
            guard let type = Self.otaType(route: parts[2]), method == .POST || method == .DELETE else {
                return .now(.error(.notFound, "no route \(method) /\(parts.joined(separator: "/")); see the README's tb-sim section"))
            }
            try sim.assignOtaPackage(try Self.packageID(method: method, json: json), type: type, profile: parts[1])
            return .now(.ok(.object([("profile", .string(parts[1])), ("type", .string(type.rawValue)),
                                     ("package", sim.ota.profileAssignments[parts[1]]?[type].map(JSONValue.string) ?? .null)])))
        case (.POST, "drop"):
            let count = sim.dropConnections(device: json["device"]?.stringValue)
            return .now(.ok(.object([("closed", .integer(Int64(count)))])))
        case (.POST, "outage"):
            guard let seconds = json["seconds"]?.doubleValue, seconds >= 0 else {
                throw SimulatorError("outage needs {\"seconds\": N}")
            }
            sim.startOutage(.milliseconds(Int64(seconds * 1000)))
            return .now(.ok(.object([("outageSeconds", .double(seconds))])))
        case (.POST, "refuse-connects"):
            guard let count = json["count"]?.int64Value, count > 0, count <= 1000 else {
                throw SimulatorError("refuse-connects needs {\"count\": N} (1 to 1000), optionally \"afterProvisioning\": true and \"returnCode\": 3")
            }
            var returnCode: UInt8? = nil
            if let code = json["returnCode"], !code.isNull {
                guard let value = code.int64Value, (1...255).contains(value) else {
                    throw SimulatorError("refuse-connects: returnCode must be a CONNACK code from 1 to 255")
                }
                returnCode = UInt8(value)
            }
            let refusal = ConnectRefusal(
                remaining: Int(count), armed: !(json["afterProvisioning"]?.boolValue ?? false), returnCode: returnCode)
            sim.connectRefusal = refusal
            sim.eventLog.record("connect_refusal", [("refusal", refusal.json)])
            return .now(.ok(refusal.json))
        case (.DELETE, "refuse-connects"):
            sim.connectRefusal = nil
            return .now(.ok(.object([("remaining", .integer(0))])))
        case (.GET, "provisioning"):
            return .now(.ok(self.provisioningJSON()))
        case (.POST, "provisioning"):
            let mode = try Self.provisioningMode(from: json)
            if let device = json["device"]?.stringValue {
                sim.provisioningByName[device] = mode == .normal ? nil : mode
            } else {
                sim.provisioningGlobal = mode
            }
            sim.eventLog.record("provisioning_mode", [("device", json["device"] ?? .null), ("mode", mode.json)])
            return .now(.ok(self.provisioningJSON()))
        case (.DELETE, "provisioning"):
            sim.provisioningGlobal = .normal
            sim.provisioningByName.removeAll()
            return .now(.ok(self.provisioningJSON()))
        case (.POST, "client-rpc-replies"):
            guard let rpcMethod = json["method"]?.stringValue, let response = json["response"] else {
                throw SimulatorError("client-rpc-replies needs {\"method\": NAME, \"response\": JSON}")
            }
            sim.clientRPCReplies[rpcMethod] = response
            return .now(.ok(.object(sim.clientRPCReplies.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })))
        case (.GET, "devices") where parts.count == 1:
            return .now(.ok(.array(sim.registry.devices.map { self.deviceJSON($0) })))
        case (.POST, "devices") where parts.count == 1:
            let device = try self.device(from: json)
            try sim.addDevice(device)
            return .now(ControlResponse(status: .created, body: self.deviceJSON(device)))
        case (.POST, "customer") where parts.count == 4 && parts[1] == "device" && parts[3] == "claim":
            // ThingsBoard's POST /api/customer/device/{deviceName}/claim: 200 with the device, else 400 with the
            // reason as a JSON string ("FAILURE" or "CLAIMED").
            let secretKey = json["secretKey"]?.stringValue ?? ""
            let customer = json["customer"]?.stringValue ?? "Customer A"
            let response = try sim.claimDevice(parts[2], secretKey: secretKey, customer: customer)
            guard response == .success, let device = sim.registry.device(named: parts[2]) else {
                return .now(ControlResponse(status: .badRequest, body: .string(response.rawValue)))
            }
            return .now(.ok(.object([("device", self.deviceJSON(device)), ("response", .string(response.rawValue))])))
        case (_, "devices") where parts.count >= 2:
            return try self.deviceRoute(method: method, name: parts[1], rest: Array(parts.dropFirst(2)), query: query, json: json)
        default:
            return .now(.error(.notFound, "no route \(method) /\(parts.joined(separator: "/")); see the README's tb-sim section"))
        }
    }

    func deviceRoute(method: HTTPMethod, name: String, rest: [String], query: [String: String],
                     json: JSONValue) throws(SimulatorError) -> Outcome {
        let sim = self.simulator
        guard let device = sim.registry.device(named: name) else { throw SimulatorError("no device named \"\(name)\"") }
        switch (method, rest.first ?? "") {
        case (.GET, ""):
            return .now(.ok(self.deviceJSON(device)))
        case (.DELETE, ""):
            try sim.deleteDevice(name)
            return .now(.ok(.object([("deleted", .string(name))])))
        case (.POST, "revoke"):
            try sim.revoke(device: name)
            return .now(.ok(self.deviceJSON(sim.registry.device(named: name) ?? device)))
        case (.PUT, "credentials"), (.POST, "credentials"):
            try sim.setCredentials(device: name, credentials: try DeviceCredentials(json: json))
            return .now(.ok(self.deviceJSON(sim.registry.device(named: name) ?? device)))
        case (.GET, "telemetry"):
            let entries = sim.telemetryByDevice[name] ?? []
            var selected = entries
            if let key = query["key"] {
                selected = entries.compactMap { entry in
                    entry.values.contains(where: { $0.0 == key })
                        ? TelemetryEntry(ts: entry.ts, values: entry.values.filter { $0.0 == key }, deviceTimestamp: entry.deviceTimestamp)
                        : nil
                }
            }
            if let limit = query["limit"].flatMap(Int.init), limit >= 0, selected.count > limit {
                selected = Array(selected.suffix(limit))
            }
            return .now(.ok(.object([("device", .string(name)), ("received", .integer(Int64(sim.telemetryCount[name] ?? 0))),
                                     ("entries", .array(selected.map(\.json)))])))
        case (.GET, "attributes"):
            return .now(.ok(.object([("client", .object(device.clientAttributes)), ("shared", .object(device.sharedAttributes))])))
        case (.POST, "attributes") where rest.count == 1:
            guard case .object(let values) = json, !values.isEmpty else {
                throw SimulatorError("shared attributes must be a non-empty JSON object, e.g. {\"interval\": 5}")
            }
            try sim.setSharedAttributes(device: name, values: values)
            return .now(.ok(.object([("shared", .object(sim.registry.device(named: name)?.sharedAttributes ?? []))])))
        case (.DELETE, "attributes"), (.POST, "attributes"):
            var keys: [String] = (query["keys"] ?? "").split(separator: ",").map(String.init)
            if let list = json["keys"]?.arrayValue { keys += list.compactMap(\.stringValue) }
            guard !keys.isEmpty else { throw SimulatorError("say which shared attributes to delete: ?keys=a,b or {\"keys\":[..]}") }
            try sim.deleteSharedAttributes(device: name, keys: keys)
            return .now(.ok(.object([("shared", .object(sim.registry.device(named: name)?.sharedAttributes ?? []))])))
        case (.POST, "rpc"):
            guard let rpcMethod = json["method"]?.stringValue else {
                throw SimulatorError("an RPC needs {\"method\": NAME, \"params\": JSON}")
            }
            let seconds = json["timeout"]?.doubleValue ?? sim.configuration.timings.serverRPCTimeout.seconds
            let oneway = json["oneway"]?.boolValue ?? false
            let future = try sim.sendServerRPC(device: name, method: rpcMethod, params: json["params"] ?? .object([]),
                                               oneway: oneway, timeout: .milliseconds(Int64(seconds * 1000)))
            return .later(future.map { outcome in
                switch outcome {
                case .reply(let payload):
                    let text = String(decoding: payload, as: UTF8.self)
                    let parsed = (try? JSONValue.parse(payload, lenient: true)) ?? .string(text)
                    return .ok(.object([("device", .string(name)), ("response", parsed), ("raw", .string(text))]))
                case .delivered:
                    return .ok(.object([("device", .string(name)), ("delivered", .bool(true))]))
                case .timeout(let why):
                    return ControlResponse(status: .gatewayTimeout, body: .object([("error", .string("timeout")), ("reason", .string(why))]))
                }
            })
        case (.GET, "claim"):
            return .now(.ok(sim.claims.json(device: name, now: sim.nowMillis)))
        case (let verb, let route) where (verb == .POST || verb == .DELETE) && rest.count == 1 && Self.otaType(route: route) != nil:
            guard let type = Self.otaType(route: route) else { return .now(.error(.notFound, "no route")) }
            try sim.assignOtaPackage(try Self.packageID(method: method, json: json), type: type, device: name)
            return .now(.ok(sim.ota.json(device: name, profile: device.profile)))
        case (.GET, "fwStates"):
            return .now(.ok(sim.ota.json(device: name, profile: device.profile)))
        case (.POST, "claiming-allowed"):
            guard let allowed = json["allowed"]?.boolValue else {
                throw SimulatorError("claiming-allowed needs {\"allowed\": true or false} (the server attribute claimingAllowed)")
            }
            sim.claims.setClaimingAllowed(allowed, device: name)
            return .now(.ok(sim.claims.json(device: name, now: sim.nowMillis)))
        case (.DELETE, "customer"):
            let customer = sim.claims.reclaim(device: name)
            sim.eventLog.record("device_reclaimed", [("device", .string(name)), ("customer", customer.map(JSONValue.string) ?? .null)])
            return .now(.ok(sim.claims.json(device: name, now: sim.nowMillis)))
        case (.GET, "client-rpc"):
            let pending = sim.pendingClientRPC[name] ?? []
            return .now(.ok(.array(pending.map { p in
                .object([("id", .integer(Int64(p.requestID))), ("method", .string(p.method)), ("params", p.params),
                         ("session", .integer(Int64(p.session)))])
            })))
        case (.POST, "client-rpc") where rest.count == 2:
            guard let id = Int(rest[1]) else { throw SimulatorError("client-rpc id must be an integer") }
            try sim.answerClientRPC(device: name, requestID: id, response: json)
            return .now(.ok(.object([("answered", .integer(Int64(id)))])))
        default:
            return .now(.error(.notFound, "no route \(method) /devices/\(name)/\(rest.joined(separator: "/"))"))
        }
    }

    static func otaType(route: String) -> OtaPackageType? {
        switch route {
        case "firmware": return .firmware
        case "software": return .software
        default: return nil
        }
    }

    /// `{"packageId":"ota-1"}` assigns, `{"packageId":null}` or DELETE unassigns.
    static func packageID(method: HTTPMethod, json: JSONValue) throws(SimulatorError) -> String? {
        if method == .DELETE { return nil }
        guard let value = json["packageId"] else {
            throw SimulatorError("say which package: {\"packageId\": \"ota-1\"}, or {\"packageId\": null} to unassign")
        }
        if value.isNull { return nil }
        guard let id = value.stringValue else { throw SimulatorError("\"packageId\" must be a string such as \"ota-1\"") }
        return id
    }

    func provisioningJSON() -> JSONValue {
        .object([
            ("global", self.simulator.provisioningGlobal.json),
            ("devices", .object(self.simulator.provisioningByName.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })),
        ])
    }

    func deviceJSON(_ device: SimDevice) -> JSONValue {
        let session = self.simulator.session(forDevice: device.name)
        return .object([
            ("name", .string(device.name)),
            ("profile", .string(device.profile)),
            ("credentialsType", device.credentials.map { .string($0.type.rawValue) } ?? .null),
            ("credentials", device.credentials?.json ?? .null),
            ("provisionState", device.provisionState.map(JSONValue.string) ?? .null),
            ("gateway", .bool(device.gateway)),
            ("connected", .bool(session != nil)),
            ("session", session.map { .integer(Int64($0.id)) } ?? .null),
            ("telemetryReceived", .integer(Int64(self.simulator.telemetryCount[device.name] ?? 0))),
            ("rateLimits", self.simulator.rateLimits(device: device.name).json),
            ("droppedForRateLimits", self.simulator.rateLimitDropsJSON(device: device.name)),
            ("claim", self.simulator.claims.json(device: device.name, now: self.simulator.nowMillis)),
        ])
    }

    func device(from json: JSONValue) throws(SimulatorError) -> SimDevice {
        guard let name = json["name"]?.stringValue else { throw SimulatorError("a device needs a \"name\"") }
        guard let profile = json["profile"]?.stringValue ?? self.simulator.registry.profiles.first?.name else {
            throw SimulatorError("a device needs a \"profile\" (no profile exists yet)")
        }
        var credentials: DeviceCredentials? = nil
        if let c = json["credentials"], !c.isNull { credentials = try DeviceCredentials(json: c) }
        return SimDevice(name: name, profile: profile, credentials: credentials,
                         provisionState: json["provisionState"]?.stringValue, gateway: json["gateway"]?.boolValue ?? false,
                         createdTime: self.simulator.nowMillis)
    }

    static func profile(from json: JSONValue) throws(SimulatorError) -> DeviceProfile {
        guard let name = json["name"]?.stringValue, !name.isEmpty else { throw SimulatorError("a profile needs a \"name\"") }
        let strategyName = json["strategy"]?.stringValue ?? ProvisionStrategy.allowCreateNewDevices.rawValue
        guard let strategy = ProvisionStrategy(rawValue: strategyName) else {
            throw SimulatorError("unknown strategy \"\(strategyName)\": use \(ProvisionStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var rateLimits: RateLimits? = nil
        if let limits = json["rateLimits"], !limits.isNull { rateLimits = try RateLimits(json: limits) }
        var version: ThingsBoardVersion? = nil
        if let text = json["thingsboardVersion"], !text.isNull {
            guard let string = text.stringValue else { throw SimulatorError("thingsboardVersion must be a string such as \"3.7\"") }
            version = try ThingsBoardVersion(string)
        }
        var x509: X509ChainSettings? = nil
        if let settings = json["x509"], !settings.isNull { x509 = try X509ChainSettings(json: settings) }
        if strategy == .x509CertificateChain && x509 == nil {
            throw SimulatorError("strategy X509_CERTIFICATE_CHAIN needs \"x509\": {\"caCertificate\": PEM, \"cnRegex\": \"(.*)\", \"allowCreate\": true}")
        }
        return DeviceProfile(name: name, provisionKey: json["provisionKey"]?.stringValue,
                             provisionSecret: json["provisionSecret"]?.stringValue, strategy: strategy,
                             rateLimits: rateLimits, thingsboardVersion: version, x509: x509)
    }

    static func profileJSON(_ p: DeviceProfile) -> JSONValue {
        .object([
            ("name", .string(p.name)),
            ("provisionKey", p.provisionKey.map(JSONValue.string) ?? .null),
            ("provisionSecret", p.provisionSecret.map { .string(mask($0)) } ?? .null),
            ("strategy", .string(p.strategy.rawValue)),
            ("rateLimits", p.rateLimits?.json ?? .null),
            ("thingsboardVersion", p.thingsboardVersion.map { .string($0.description) } ?? .null),
            ("x509", p.x509?.json ?? .null),
        ])
    }

    static func provisioningMode(from json: JSONValue) throws(SimulatorError) -> ProvisioningMode {
        switch json["mode"]?.stringValue ?? "" {
        case "normal": return .normal
        case "delay":
            guard let seconds = json["seconds"]?.doubleValue, seconds >= 0 else {
                throw SimulatorError("mode delay needs \"seconds\"")
            }
            return .delay(.milliseconds(Int64(seconds * 1000)))
        case "withhold": return .withhold
        case "close": return .close
        case "error": return .backendError
        case let other:
            throw SimulatorError("unknown provisioning mode \"\(other)\": use normal, delay, withhold, close or error")
        }
    }

    static func split(_ uri: String) -> (String, [String: String]) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: q)...].split(separator: "&") {
            // Keeping empty parts: "=" is an empty key with an empty value, not an empty array to index.
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecode(String(kv[0]))
            query[key] = kv.count > 1 ? percentDecode(String(kv[1])) : ""
        }
        return (String(uri[..<q]), query)
    }

    static func percentDecode(_ s: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(s.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: "%"), utf8.count >= 2,
               let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else if c == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
