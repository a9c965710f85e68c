import NIOCore

/// The MQTT protocol level a client announced in its CONNECT.
public enum MQTTProtocolVersion: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// MQTT 3.1 (protocol name `MQIsdp`).
    case v3_1 = 3
    /// MQTT 3.1.1 (protocol name `MQTT`).
    case v3_1_1 = 4
    /// MQTT 5.0 (protocol name `MQTT`).
    case v5 = 5

    public var description: String {
        switch self {
        case .v3_1: return "3.1"
        case .v3_1_1: return "3.1.1"
        case .v5: return "5"
        }
    }

    /// Whether this level has reason codes and properties.
    public var isV5: Bool { self == .v5 }
}

/// One MQTT 5 property, kept as read (ids and value kinds from the MQTT 5 specification, section 2.2.2.2).
public enum MQTTProperty: Sendable, Hashable {
    case byte(id: UInt8, value: UInt8)
    case twoByte(id: UInt8, value: UInt16)
    case fourByte(id: UInt8, value: UInt32)
    case variableInteger(id: UInt8, value: UInt32)
    case string(id: UInt8, value: String)
    case binary(id: UInt8, value: [UInt8])
    case stringPair(id: UInt8, key: String, value: String)

    public var id: UInt8 {
        switch self {
        case .byte(let id, _), .twoByte(let id, _), .fourByte(let id, _), .variableInteger(let id, _),
            .string(let id, _), .binary(let id, _), .stringPair(let id, _, _):
            return id
        }
    }

    /// Topic Alias (0x23).
    public static let topicAliasID: UInt8 = 0x23
}

/// The fields of a CONNECT packet the simulator uses.
public struct MQTTConnect: Sendable, Hashable {
    public var version: MQTTProtocolVersion
    public var clientID: String
    public var cleanSession: Bool
    public var keepAlive: UInt16
    public var username: String?
    /// Kept as bytes: a password is not necessarily text.
    public var password: [UInt8]?
    public var hasWill: Bool
    public var properties: [MQTTProperty]

    public init(version: MQTTProtocolVersion, clientID: String, cleanSession: Bool = true, keepAlive: UInt16 = 60,
                username: String? = nil, password: [UInt8]? = nil, hasWill: Bool = false, properties: [MQTTProperty] = []) {
        self.version = version
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.hasWill = hasWill
        self.properties = properties
    }

    /// The password as UTF-8 text (invalid sequences replaced), as Netty's `passwordInBytes` → `String` does.
    public var passwordText: String? { self.password.map { String(decoding: $0, as: UTF8.self) } }
}

/// A PUBLISH packet.
public struct MQTTPublish: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    /// 0, 1 or 2 as received; the server sends 0 or 1.
    public var qos: UInt8
    public var retain: Bool
    public var dup: Bool
    /// Present when qos > 0.
    public var packetID: UInt16?
    public var properties: [MQTTProperty]

    public init(topic: String, payload: [UInt8], qos: UInt8, retain: Bool = false, dup: Bool = false,
                packetID: UInt16? = nil, properties: [MQTTProperty] = []) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
        self.properties = properties
    }
}

/// One topic filter of a SUBSCRIBE with its requested QoS.
public struct MQTTSubscription: Sendable, Hashable {
    public var filter: String
    public var qos: UInt8
    public init(filter: String, qos: UInt8) {
        self.filter = filter
        self.qos = qos
    }
}

/// A packet a client sends to the server, decoded.
public enum MQTTClientPacket: Sendable, Hashable {
    case connect(MQTTConnect)
    case publish(MQTTPublish)
    case puback(packetID: UInt16, reasonCode: UInt8)
    /// PUBREC, PUBREL, PUBCOMP: accepted and ignored (the server supports QoS 1 at most).
    case qos2Flow(type: UInt8, packetID: UInt16)
    case subscribe(packetID: UInt16, subscriptions: [MQTTSubscription])
    case unsubscribe(packetID: UInt16, filters: [String])
    case pingreq
    case disconnect(reasonCode: UInt8)
    case auth
}

/// A packet the server sends, with what it needs to be encoded for the session's protocol level.
public enum MQTTServerPacket: Sendable, Hashable {
    case connack(sessionPresent: Bool, returnCode: UInt8)
    case publish(MQTTPublish)
    case puback(packetID: UInt16, reasonCode: UInt8)
    case suback(packetID: UInt16, returnCodes: [UInt8])
    case unsuback(packetID: UInt16, reasonCodes: [UInt8])
    case pingresp
    /// MQTT 5 only; MQTT 3 has no server DISCONNECT.
    case disconnect(reasonCode: UInt8)
}

/// A server packet framed for one protocol level: what the session handler writes to the channel.
public struct MQTTOutbound: Sendable, Hashable {
    public var version: MQTTProtocolVersion
    public var packet: MQTTServerPacket
    public init(version: MQTTProtocolVersion, packet: MQTTServerPacket) {
        self.version = version
        self.packet = packet
    }
}

/// MQTT 5 reason codes used by ThingsBoard's transport (MQTT 5 specification, section 2.4).
public enum MQTTReasonCode {
    public static let success: UInt8 = 0x00
    public static let noSubscriptionExisted: UInt8 = 0x11
    public static let unspecifiedError: UInt8 = 0x80
    public static let malformedPacket: UInt8 = 0x81
    public static let protocolError: UInt8 = 0x82
    public static let implementationSpecificError: UInt8 = 0x83
    public static let clientIdentifierNotValid: UInt8 = 0x85
    public static let badUserNameOrPassword: UInt8 = 0x86
    public static let notAuthorized: UInt8 = 0x87
    public static let serverUnavailable: UInt8 = 0x88
    public static let sessionTakenOver: UInt8 = 0x8E
    public static let topicFilterInvalid: UInt8 = 0x8F
    public static let topicNameInvalid: UInt8 = 0x90
    public static let messageRateTooHigh: UInt8 = 0x96
    public static let quotaExceeded: UInt8 = 0x97
    public static let administrativeAction: UInt8 = 0x98
    public static let payloadFormatInvalid: UInt8 = 0x99
    public static let connectionRateExceeded: UInt8 = 0x9F
}

/// Why bytes could not be decoded as MQTT. ThingsBoard (Netty's MqttDecoder) closes the connection: bare before the
/// CONNECT and in MQTT 3, after DISCONNECT 0x81 in an MQTT 5 session.
public struct MQTTDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case malformed
        case unsupportedProtocolLevel
        case tooLarge
        case identifierRejected
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { self.message }
}
