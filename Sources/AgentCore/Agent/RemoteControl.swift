import TBJSON

/// What the server can ask of the agent: server-side RPCs on `v1/devices/me/rpc/request/{id}` and shared
/// attribute updates on `v1/devices/me/attributes`. Parsing only; the runtime carries the commands out.
public enum RemoteControl {
    public static let rpcRequestFilter = "v1/devices/me/rpc/request/+"
    public static let rpcRequestPrefix = "v1/devices/me/rpc/request/"
    public static let rpcResponsePrefix = "v1/devices/me/rpc/response/"
    public static let attributesTopic = "v1/devices/me/attributes"
    public static let attributesRequestPrefix = "v1/devices/me/attributes/request/"
    public static let attributesResponseFilter = "v1/devices/me/attributes/response/+"
    public static let attributesResponsePrefix = "v1/devices/me/attributes/response/"

    public enum Command: Sendable, Equatable {
        /// A JSON object with the state, uptime, spool depth and sensor health.
        case getStatus
        /// Sample and publish every sensor now.
        case sampleNow
        /// Show the identify pattern for this long.
        case identify(Duration)
        /// Provision again (two-phase: the old credentials stay in force until new ones connect).
        case reprovision
    }

    public static let methods = ["getStatus", "sampleNow", "identify", "reprovision"]

    /// A server RPC: its id (from the topic) and the command, or the error reply to send instead.
    public struct RPC: Sendable, Equatable {
        public var id: String
        public var result: Result<Command, RPCError>
        public var responseTopic: String { RemoteControl.rpcResponsePrefix + self.id }
    }

    public struct RPCError: Error, Sendable, Equatable {
        public var message: String
        public var reply: JSONValue { ["error": .string(self.message)] }
    }

    /// Parses an RPC request; nil when the topic is not an RPC request at all.
    public static func parseRPC(topic: String, payload: [UInt8]) -> RPC? {
        // Topic levels are bytes: compared as Characters, an id starting with a combining mark would merge with
        // the prefix's last "/" and the request would go unanswered.
        guard topic.utf8.starts(with: self.rpcRequestPrefix.utf8) else { return nil }
        let id = String(decoding: topic.utf8.dropFirst(self.rpcRequestPrefix.utf8.count), as: UTF8.self)
        guard !id.isEmpty, !id.utf8.contains(UInt8(ascii: "/")) else { return nil }
        func fail(_ message: String) -> RPC { RPC(id: id, result: .failure(RPCError(message: message))) }
        guard let body = try? JSONValue.parse(payload, lenient: true), body.objectMembers != nil else {
            return fail("the request is not a JSON object with \"method\" and \"params\"")
        }
        guard let method = body["method"]?.stringValue else { return fail("the request has no \"method\"") }
        let params = body["params"] ?? .null
        switch method {
        case "getStatus": return RPC(id: id, result: .success(.getStatus))
        case "sampleNow": return RPC(id: id, result: .success(.sampleNow))
        case "reprovision": return RPC(id: id, result: .success(.reprovision))
        case "identify":
            // params: a number of seconds, a duration string, or {"seconds": n} / {"duration": "30s"}; default 30 s.
            let value = params["seconds"] ?? params["duration"] ?? params
            let duration: Duration?
            switch value {
            case .null: duration = .seconds(30)
            case .string(let s): duration = DurationText.parse(s) ?? Double(s).flatMap(Self.duration(seconds:))
            default: duration = value.doubleValue.flatMap(Self.duration(seconds:))
            }
            guard let duration, duration > .zero, duration <= .seconds(3600) else {
                return fail("identify takes a duration between 0 and 1 hour, e.g. {\"seconds\": 30}")
            }
            return RPC(id: id, result: .success(.identify(duration)))
        default:
            return fail("unknown method \"\(method)\"; this agent knows \(self.methods.joined(separator: ", "))")
        }
    }

    /// A number of seconds from the server as a duration (to the millisecond); nil when it is not finite or so large
    /// that no duration can hold it (`1e300`, `nan`: converting those to an integer would trap).
    static func duration(seconds: Double) -> Duration? {
        guard seconds.isFinite, abs(seconds) < 1e12 else { return nil }
        return .milliseconds(Int64(seconds * 1000))
    }

    /// Telemetry intervals set on the server as shared attributes: `interval` for every sensor and
    /// `interval_<sensor name>` for one, as a duration string (`"30s"`) or a number of seconds.
    public struct IntervalOverrides: Sendable, Equatable {
        public var all: Duration?
        public var perSensor: [String: Duration]

        public init(all: Duration? = nil, perSensor: [String: Duration] = [:]) {
            self.all = all
            self.perSensor = perSensor
        }

        /// The interval that applies to `sensor`, given its configured interval.
        public func interval(for sensor: String, configured: Duration) -> Duration {
            self.perSensor[sensor] ?? self.all ?? configured
        }

        public static let minimum: Duration = .milliseconds(100)
        public static let maximum: Duration = .seconds(86400)

        /// Applies a shared-attribute update (`{"k":v}`, `{"deleted":["k"]}`, or an attributes response's
        /// `{"shared":{…}}`), returning the problems with values it ignored. Only `interval` and the
        /// `interval_NAME` of a configured sensor are kept: the server cannot grow the agent's memory with keys for
        /// sensors that do not exist (those are counted in one problem line).
        public mutating func apply(_ update: JSONValue, sensors: Set<String>) -> [String] {
            var problems: [String] = []
            var unknown = 0
            var firstUnknown: String? = nil
            let members = update["shared"]?.objectMembers ?? update.objectMembers ?? []
            for (key, value) in members {
                if key == "deleted" {
                    for deleted in value.arrayValue ?? [] {
                        guard let k = deleted.stringValue else { continue }
                        if k == "interval" { self.all = nil }
                        if k.hasPrefix("interval_") { self.perSensor[String(k.dropFirst(9))] = nil }
                    }
                    continue
                }
                guard key == "interval" || key.hasPrefix("interval_") else { continue }
                if key != "interval" && !sensors.contains(String(key.dropFirst(9))) {
                    unknown += 1
                    if firstUnknown == nil { firstUnknown = key }
                    continue
                }
                let duration: Duration?
                switch value {
                case .string(let s): duration = DurationText.parse(s) ?? Double(s).flatMap(RemoteControl.duration(seconds:))
                default: duration = value.doubleValue.flatMap(RemoteControl.duration(seconds:))
                }
                guard let duration, duration >= Self.minimum, duration <= Self.maximum else {
                    // At most 8 lines per update, however many bad values a server sends; the others still apply.
                    if problems.count < 8 {
                        problems.append("shared attribute \(String(key.prefix(80))) = \(String(value.serialized.prefix(80))) ignored: use a duration from 100ms to 24h, like \"30s\" or 30")
                    }
                    continue
                }
                if key == "interval" { self.all = duration } else { self.perSensor[String(key.dropFirst(9))] = duration }
            }
            if let firstUnknown {
                problems.append("ignored \(unknown) shared attribute(s) for sensors this agent does not have (e.g. \(String(firstUnknown.prefix(80)))): interval_NAME applies to a sensor configured under [[sensors]]")
            }
            return problems
        }

        /// The shared keys to request on connect, for the configured sensors.
        public static func keys(sensors: [String]) -> [String] { ["interval"] + sensors.map { "interval_\($0)" } }
    }
}
