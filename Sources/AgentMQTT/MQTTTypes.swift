import AgentCore

/// MQTT quality of service. ThingsBoard supports 0 and 1 (it answers a QoS 2 PUBLISH with a PUBACK).
public enum MQTTQoS: Int, Sendable, Hashable, CustomStringConvertible {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public var description: String { "QoS \(self.rawValue)" }
}

/// A PUBLISH received from the server. The payload is a copy (libmosquitto frees its own on return).
public struct MQTTMessage: Sendable, Equatable {
    public let topic: String
    public let payload: [UInt8]
    public let qos: MQTTQoS
    public let retain: Bool

    public init(topic: String, payload: [UInt8], qos: MQTTQoS, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// The MQTT 3.1.1 CONNACK return code.
public struct ConnackCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let accepted = Self(rawValue: 0)
    public static let unacceptableProtocolVersion = Self(rawValue: 1)
    /// ThingsBoard: an unknown client id with no user name (MQTT_BASIC).
    public static let identifierRejected = Self(rawValue: 2)
    /// ThingsBoard: backend error or rate limit when the session opens.
    public static let serverUnavailable = Self(rawValue: 3)
    /// Never sent by ThingsBoard.
    public static let badUsernameOrPassword = Self(rawValue: 4)
    /// ThingsBoard: unknown or revoked credentials.
    public static let notAuthorized = Self(rawValue: 5)

    public var description: String {
        switch self.rawValue {
        case 0: return "CONNACK 0 (accepted)"
        case 1: return "CONNACK 1 (unacceptable protocol version)"
        case 2: return "CONNACK 2 (identifier rejected)"
        case 3: return "CONNACK 3 (server unavailable)"
        case 4: return "CONNACK 4 (bad user name or password)"
        case 5: return "CONNACK 5 (not authorized)"
        default: return "CONNACK \(self.rawValue)"
        }
    }
}

/// Why a session ended.
public enum MQTTDisconnectReason: Sendable, Equatable, CustomStringConvertible {
    /// `disconnect()` was called.
    case requested
    /// `closeNow()` was called (or a timeout did it): closed without DISCONNECT.
    case aborted
    /// The server answered the CONNECT with a non-zero CONNACK.
    case refused(ConnackCode)
    /// The TCP connection could not be opened (refused, unreachable, TLS handshake failed).
    case connectFailed(MosquittoError)
    /// The server closed the connection before any CONNACK (a silent close).
    case closedBeforeConnack(MosquittoError?)
    /// An established session ended without us asking.
    case connectionLost(MosquittoError)

    public var description: String {
        switch self {
        case .requested: return "disconnected on request"
        case .aborted: return "connection closed by this client"
        case .refused(let code): return "connection refused: \(code)"
        case .connectFailed(let error): return "could not connect: \(error)"
        case .closedBeforeConnack(let error):
            return "the server closed the connection before the CONNACK" + (error.map { " (\($0))" } ?? "")
        case .connectionLost(let error): return "connection lost: \(error)"
        }
    }
}

/// What a `MosquittoClient` reports, in order. The stream finishes after `.disconnected`.
public enum MQTTEvent: Sendable, Equatable {
    /// A CONNACK arrived; a non-zero code is followed by `.disconnected(.refused)`.
    case connected(returnCode: ConnackCode)
    case disconnected(reason: MQTTDisconnectReason)
    case message(MQTTMessage)
    /// A message above `MQTTConnectOptions.maxIncomingPayload` arrived; it was dropped in libmosquitto's callback,
    /// unread and uncopied.
    case oversized(topic: String, bytes: Int)
}

/// TLS settings for a connection. The server's certificate is verified by default.
public struct MQTTTLSOptions: Sendable, Equatable {
    /// PEM bundle of trusted CAs; nil uses the system's trust store (`/etc/ssl/certs`).
    public var caFile: String?
    /// Client certificate and key (PEM, key not encrypted), for X509_CERTIFICATE credentials.
    public var certificateFile: String?
    public var keyFile: String?
    /// Skip the host name check against the server's certificate (the chain is still verified). Only by explicit
    /// option (`[server.tls] verify_hostname = false`): it allows a man in the middle with any trusted certificate.
    public var insecureSkipHostnameCheck: Bool

    public init(
        caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
        insecureSkipHostnameCheck: Bool = false
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.insecureSkipHostnameCheck = insecureSkipHostnameCheck
    }
}

/// Everything one connection needs. User name and password are `Secret`s (with ACCESS_TOKEN credentials the
/// user name is the token): they never reach a log or an error.
public struct MQTTConnectOptions: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var clientID: String
    public var username: Secret?
    public var password: Secret?
    public var keepalive: Duration
    public var cleanSession: Bool
    public var tls: MQTTTLSOptions?
    /// How long to wait for the CONNACK after the TCP connect started.
    public var connectTimeout: Duration
    /// Incoming messages with a larger payload are dropped in libmosquitto's callback (which holds the packet
    /// already: MQTT 3.1.1 has no way to refuse it earlier) and reported as `.oversized`, never copied.
    public var maxIncomingPayload: Int
    /// At most this many QoS 1 PUBLISHes await their PUBACK at once (1...65535); libmosquitto keeps later ones,
    /// in order, and sends each as a PUBACK makes room, on its own thread (20 is libmosquitto's default).
    public var maxInFlight: Int

    public init(
        host: String, port: Int, clientID: String, username: Secret? = nil, password: Secret? = nil,
        keepalive: Duration = .seconds(60), cleanSession: Bool = true, tls: MQTTTLSOptions? = nil,
        connectTimeout: Duration = .seconds(30), maxIncomingPayload: Int = 64 * 1024, maxInFlight: Int = 20
    ) {
        self.maxIncomingPayload = maxIncomingPayload
        self.maxInFlight = maxInFlight
        self.host = host
        self.port = port
        self.clientID = clientID
        self.username = username
        self.password = password
        self.keepalive = keepalive
        self.cleanSession = cleanSession
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    public var endpoint: ServerEndpoint { ServerEndpoint(host: self.host, port: self.port) }

    public var description: String {
        "\(self.endpoint) client id \"\(self.clientID)\" user name \(self.username.map { "\($0)" } ?? "(none)"), "
            + "password \(self.password.map { "\($0)" } ?? "(none)"), keepalive \(DurationText.format(self.keepalive)), "
            + "clean session \(self.cleanSession), TLS \(self.tls == nil ? "off" : "on")"
    }
}

/// Why an MQTT operation failed. `agentError` gives the message a person acts on (naming host:port and the fix).
public enum MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A libmosquitto call failed (`operation` names the C function).
    case library(operation: String, MosquittoError)
    /// The host name could not be resolved.
    case unresolvable(ServerEndpoint, MosquittoError)
    /// The TCP connection could not be opened.
    case unreachable(ServerEndpoint, MosquittoError)
    /// The TLS handshake or TLS setup failed.
    /// `detail`: why, when a second handshake could tell (expired, wrong CA, wrong host name).
    case tlsFailed(ServerEndpoint, MosquittoError, detail: String? = nil)
    /// The server answered CONNACK with a non-zero code.
    case refused(ServerEndpoint, ConnackCode)
    /// The server closed the connection before the CONNACK.
    case closedBeforeConnack(ServerEndpoint, MosquittoError?)
    /// No CONNACK within the connect timeout.
    case connectTimeout(ServerEndpoint, Duration)
    /// The operation needs a connected session.
    case notConnected
    /// The session ended while the operation waited for its acknowledgement.
    case connectionLost(MosquittoError?)
    /// `connect()` was called on a client that was already used (one client = one session).
    case alreadyUsed
    /// libmosquitto cannot send these credentials (`what`: client id, user name, password): a control character,
    /// a noncharacter, a NUL, too long. They fail on every attempt: a rejection, not a network error.
    case credentialsUnusable(what: String, MosquittoError)

    public var description: String { self.agentError.description }

    /// ``agentError`` for a connection with `credentials`: a refused CONNECT with an X.509 certificate (chain) says
    /// what ThingsBoard looked for, since its codes (2 or 5) name no certificate.
    public func agentError(connectingWith credentials: DeviceCredentials) -> AgentError {
        guard case .x509Certificate(_, let certificateFile, _) = credentials, case .refused(let endpoint, let code) = self,
              code == .notAuthorized || code == .badUsernameOrPassword || code == .identifierRejected
        else { return self.agentError }
        return AgentError(
            .credentialsRejected,
            "the server at \(endpoint) did not accept the certificate\(certificateFile.map { " in \($0)" } ?? "") (\(code)): ThingsBoard found no device with this certificate and no device profile of type \"X.509 certificate chain\" whose CA certificate is in the chain (the chain file must include that CA certificate itself), or the profile's CN regular expression does not match, or it does not allow creating new devices, or the certificate has expired; check the profile's provisioning settings on the server")
    }

    public var agentError: AgentError {
        switch self {
        case .library(let operation, let error):
            return AgentError(.brokerUnavailable, "\(operation) failed: \(error)")
        case .unresolvable(let endpoint, let error):
            return AgentError(
                .brokerUnavailable,
                "cannot resolve the MQTT server's host name \"\(endpoint.host)\" (\(error)): check [server] host and the board's DNS settings")
        case .unreachable(let endpoint, let error):
            return AgentError(
                .brokerUnavailable,
                "cannot connect to the MQTT server at \(endpoint) (\(error)): check [server] host and port, that the server is running, and that this board can reach it")
        case .tlsFailed(let endpoint, let error, let detail?):
            return AgentError(.brokerUnavailable, "the TLS connection to \(endpoint) failed (\(error)): \(detail)")
        case .tlsFailed(let endpoint, let error, nil):
            return AgentError(
                .brokerUnavailable,
                "the TLS connection to \(endpoint) failed (\(error)): check [server.tls] ca_file (it must sign the server's certificate), cert_file and key_file, and that the port speaks TLS")
        case .refused(let endpoint, let code):
            switch code {
            case .notAuthorized, .badUsernameOrPassword:
                return AgentError(
                    .credentialsRejected,
                    "the server at \(endpoint) rejected the credentials (\(code)): the device was deleted or its credentials were revoked or changed on the server; provision again with `tb-agent provision --force`, or restore the device's credentials on the server")
            case .identifierRejected:
                return AgentError(
                    .credentialsRejected,
                    "the server at \(endpoint) rejected the client id (\(code)): ThingsBoard answers this for an MQTT_BASIC client id it does not know when no user name is sent; check the device's MQTT_BASIC credentials on the server")
            case .serverUnavailable:
                return AgentError(
                    .brokerUnavailable,
                    "the server at \(endpoint) is unavailable (\(code)): ThingsBoard answers this when its core is down or a rate limit applies; try again later")
            case .unacceptableProtocolVersion:
                return AgentError(
                    .protocolViolation,
                    "the server at \(endpoint) does not accept MQTT 3.1.1 (\(code)): is this ThingsBoard's MQTT port?")
            default:
                return AgentError(.brokerUnavailable, "the server at \(endpoint) refused the connection (\(code))")
            }
        case .closedBeforeConnack(let endpoint, let error):
            return AgentError(
                .brokerUnavailable,
                "the server at \(endpoint) closed the connection without answering the CONNECT\(error.map { " (\($0))" } ?? ""): check that this port speaks MQTT (a TLS port needs [server.tls]) and that no IP block or proxy is in the way")
        case .connectTimeout(let endpoint, let timeout):
            return AgentError(
                .timeout,
                "no answer from the MQTT server at \(endpoint) within \(DurationText.format(timeout)): check [server] host and port and the network path (a firewall that drops packets looks like this)")
        case .notConnected:
            return AgentError(.brokerUnavailable, "not connected to the MQTT server")
        case .connectionLost(let error):
            return AgentError(
                .brokerUnavailable,
                "the connection to the MQTT server was lost\(error.map { " (\($0))" } ?? "") before the server acknowledged")
        case .alreadyUsed:
            return AgentError(.usage, "this MQTT client was already connected once; create a new one for a new session")
        case .credentialsUnusable(let what, let error):
            return AgentError(
                .credentialsRejected,
                "libmosquitto refused the \(what) of these credentials (\(error)): it contains a character MQTT cannot carry, so they can never connect; provision again (`tb-agent provision --force`, after deleting the device on the server)")
        }
    }
}
