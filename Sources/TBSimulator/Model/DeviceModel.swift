import Foundation
import TBJSON

/// How a device profile treats provisioning requests (ThingsBoard's `DeviceProfileProvisionType`).
public enum ProvisionStrategy: String, Sendable, Hashable, CaseIterable {
    case allowCreateNewDevices = "ALLOW_CREATE_NEW_DEVICES"
    case checkPreProvisionedDevices = "CHECK_PRE_PROVISIONED_DEVICES"
    case disabled = "DISABLED"
    /// No provision request: the device connects over TLS with a certificate chain whose CA the profile holds, and is
    /// created (or found) from the leaf's common name.
    case x509CertificateChain = "X509_CERTIFICATE_CHAIN"
}

/// ThingsBoard's `X509CertificateChainProvisionConfiguration`: the CA certificate (ThingsBoard keeps its PEM as the
/// profile's provision secret and its SHA3 as the provision key), the regular expression whose group 1 of the leaf's
/// CN is the device name, and whether an unknown name creates a device.
public struct X509ChainSettings: Sendable, Hashable {
    /// The CA certificate in PEM form (a root or an intermediate of the devices' chains).
    public var caCertificate: String
    /// `certificateRegExPattern`: Java's `find()`, group 1 is the device name.
    public var cnRegex: String
    /// `allowCreateNewDevicesByX509Certificate`.
    public var allowCreate: Bool

    public init(caCertificate: String, cnRegex: String, allowCreate: Bool) {
        self.caCertificate = caCertificate
        self.cnRegex = cnRegex
        self.allowCreate = allowCreate
    }

    /// As the registry file and the control interface write it.
    public var json: JSONValue {
        .object([
            ("caCertificate", .string(self.caCertificate)), ("cnRegex", .string(self.cnRegex)),
            ("allowCreate", .bool(self.allowCreate)),
        ])
    }

    /// From ``json``; the CA must be a PEM certificate and the regular expression must compile with a group 1.
    public init(json: JSONValue) throws(SimulatorError) {
        guard let ca = json["caCertificate"]?.stringValue, !ca.isEmpty else {
            throw SimulatorError("x509 needs \"caCertificate\": the PEM of the CA that signs the devices' chains")
        }
        guard let regex = json["cnRegex"]?.stringValue, !regex.isEmpty else {
            throw SimulatorError("x509 needs \"cnRegex\": a regular expression whose group 1 of the certificate's CN is the device name, such as \"(.*)\"")
        }
        self.init(caCertificate: ca, cnRegex: regex, allowCreate: json["allowCreate"]?.boolValue ?? false)
        try self.validate()
    }

    /// Checks that the CA parses and the expression compiles with a capturing group.
    public func validate() throws(SimulatorError) {
        _ = try X509Certificate.parseAll(pem: self.caCertificate, what: "the profile's CA certificate")
        _ = try self.compiledRegex()
    }

    func compiledRegex() throws(SimulatorError) -> Regex<AnyRegexOutput> {
        let regex: Regex<AnyRegexOutput>
        do {
            regex = try Regex(self.cnRegex)
        } catch {
            throw SimulatorError("cn_regex \"\(self.cnRegex)\" is not a regular expression (\(error)); ThingsBoard's default is \"(.*)\"")
        }
        guard self.cnRegex.contains("(") else {
            throw SimulatorError("cn_regex \"\(self.cnRegex)\" has no group: the device name is group 1, for example \"(.*)@example.com\"")
        }
        return regex
    }

    /// Group 1 of the first match in `commonName` (Java's `matcher.find()` then `group(1)`), nil when none.
    func deviceName(fromCommonName commonName: String) -> String? {
        guard let regex = try? self.compiledRegex(), let match = commonName.firstMatch(of: regex), match.output.count > 1,
              let group = match.output[1].substring else { return nil }
        return String(group)
    }
}

/// A device profile: its name is the device type of the devices provisioned through it.
public struct DeviceProfile: Sendable, Hashable {
    public var name: String
    public var provisionKey: String?
    public var provisionSecret: String?
    public var strategy: ProvisionStrategy
    /// The rate limits of this profile's devices; `nil` uses the simulator's (the tenant profile's) limits.
    public var rateLimits: RateLimits?
    /// The ThingsBoard version this profile's devices see; `nil` is the current one. Before 3.8, `getSessionLimits`
    /// is an ordinary client-side RPC.
    public var thingsboardVersion: ThingsBoardVersion?
    /// The chain settings of an `X509_CERTIFICATE_CHAIN` profile.
    public var x509: X509ChainSettings?

    public init(name: String, provisionKey: String? = nil, provisionSecret: String? = nil,
                strategy: ProvisionStrategy = .allowCreateNewDevices, rateLimits: RateLimits? = nil,
                thingsboardVersion: ThingsBoardVersion? = nil, x509: X509ChainSettings? = nil) {
        self.x509 = x509
        self.name = name
        self.provisionKey = provisionKey
        self.provisionSecret = provisionSecret
        self.strategy = strategy
        self.rateLimits = rateLimits
        self.thingsboardVersion = thingsboardVersion
    }

    /// Whether the transport answers `getSessionLimits` itself (ThingsBoard 3.8 and later).
    public var answersSessionLimits: Bool { self.thingsboardVersion?.answersSessionLimits ?? true }
}

/// The kind of device credentials, with ThingsBoard's spelling.
public enum CredentialsType: String, Sendable, Hashable, CaseIterable {
    case accessToken = "ACCESS_TOKEN"
    case mqttBasic = "MQTT_BASIC"
    case x509Certificate = "X509_CERTIFICATE"
    case lwm2m = "LWM2M_CREDENTIALS"
}

/// MQTT_BASIC credentials (ThingsBoard's `BasicMqttCredentials`); `nil` means absent.
public struct MQTTBasicCredentials: Sendable, Hashable {
    public var clientID: String?
    public var userName: String?
    public var password: String?

    public init(clientID: String?, userName: String?, password: String?) {
        self.clientID = Self.nonEmpty(clientID)
        self.userName = Self.nonEmpty(userName)
        self.password = Self.nonEmpty(password)
    }

    static func nonEmpty(_ s: String?) -> String? {
        guard let s, !s.isEmpty else { return nil }
        return s
    }

    /// Why ThingsBoard's `DeviceCredentialsServiceImpl` would refuse these credentials, or `nil` if valid.
    public var validationProblem: String? {
        if self.clientID == nil && self.userName == nil { return "both the MQTT client id and the user name are empty" }
        if self.clientID != nil && self.password != nil && self.userName == nil {
            return "a password cannot go with a client id alone: add a user name"
        }
        return nil
    }

    /// `{"clientId":..,"userName":..,"password":..}` with `null` for absent members, as the provision response has it.
    public var json: JSONValue {
        .object([
            ("clientId", self.clientID.map(JSONValue.string) ?? .null),
            ("userName", self.userName.map(JSONValue.string) ?? .null),
            ("password", self.password.map(JSONValue.string) ?? .null),
        ])
    }
}

/// A device's credentials.
public enum DeviceCredentials: Sendable, Hashable {
    case accessToken(String)
    case mqttBasic(MQTTBasicCredentials)
    case x509Certificate(String)

    public var type: CredentialsType {
        switch self {
        case .accessToken: return .accessToken
        case .mqttBasic: return .mqttBasic
        case .x509Certificate: return .x509Certificate
        }
    }

    /// The unique lookup key ThingsBoard derives (`credentialsId`). ThingsBoard hashes the MQTT_BASIC and X.509
    /// forms with SHA3-256; the simulator keeps them readable in their own namespace, which has the same effect on
    /// uniqueness. A user-name-only MQTT_BASIC id is the user name itself, so it collides with an equal access token,
    /// as in ThingsBoard.
    public var credentialsID: String {
        switch self {
        case .accessToken(let token): return token
        case .mqttBasic(let basic):
            switch (basic.clientID, basic.userName) {
            case (nil, let user?): return user
            case (let client?, nil): return "mqtt-basic:" + client
            case (let client?, let user?): return "mqtt-basic:" + client + "|" + user
            case (nil, nil): return "mqtt-basic:"
            }
        case .x509Certificate(let certificate): return "x509:" + Self.normalizedCertificate(certificate)
        }
    }

    /// The certificate body without PEM armour or whitespace (ThingsBoard's `formatCertData`).
    static func normalizedCertificate(_ certificate: String) -> String {
        certificate
            .replacingOccurrences(of: "-----BEGIN CERTIFICATE-----", with: "")
            .replacingOccurrences(of: "-----END CERTIFICATE-----", with: "")
            .filter { !$0.isWhitespace }
    }

    /// The `credentialsValue` member of a provision response: a string, or an object for MQTT_BASIC.
    public var responseValue: JSONValue {
        switch self {
        case .accessToken(let token): return .string(token)
        case .mqttBasic(let basic): return basic.json
        case .x509Certificate(let certificate): return .string(certificate)
        }
    }

    /// Full credentials as JSON for the registry file and the control interface.
    public var json: JSONValue {
        switch self {
        case .accessToken(let token):
            return .object([("type", .string(CredentialsType.accessToken.rawValue)), ("token", .string(token))])
        case .mqttBasic(let basic):
            return .object([
                ("type", .string(CredentialsType.mqttBasic.rawValue)),
                ("clientId", basic.clientID.map(JSONValue.string) ?? .null),
                ("userName", basic.userName.map(JSONValue.string) ?? .null),
                ("password", basic.password.map(JSONValue.string) ?? .null),
            ])
        case .x509Certificate(let certificate):
            return .object([("type", .string(CredentialsType.x509Certificate.rawValue)), ("certificate", .string(certificate))])
        }
    }

    /// Credentials from JSON written by ``json`` (also what the control interface accepts): `type` plus `token`,
    /// `clientId`/`userName` (or `username`)/`password`, or `certificate`.
    public init(json: JSONValue) throws(SimulatorError) {
        guard case .object = json else { throw SimulatorError("credentials must be a JSON object") }
        let typeName = json["type"]?.stringValue ?? CredentialsType.accessToken.rawValue
        switch CredentialsType(rawValue: typeName) {
        case .accessToken:
            guard let token = json["token"]?.stringValue, !token.isEmpty else {
                throw SimulatorError("ACCESS_TOKEN credentials need a non-empty \"token\"")
            }
            self = .accessToken(token)
        case .mqttBasic:
            let basic = MQTTBasicCredentials(clientID: json["clientId"]?.stringValue,
                                             userName: json["userName"]?.stringValue ?? json["username"]?.stringValue,
                                             password: json["password"]?.stringValue)
            if let problem = basic.validationProblem { throw SimulatorError("MQTT_BASIC credentials: \(problem)") }
            self = .mqttBasic(basic)
        case .x509Certificate:
            guard let certificate = json["certificate"]?.stringValue, !certificate.isEmpty else {
                throw SimulatorError("X509_CERTIFICATE credentials need a non-empty \"certificate\"")
            }
            self = .x509Certificate(certificate)
        default:
            throw SimulatorError("unknown credentials type \"\(typeName)\": use ACCESS_TOKEN, MQTT_BASIC or X509_CERTIFICATE")
        }
    }

    /// The credentials with secrets shortened for logs: the first 4 characters and an ellipsis.
    public var maskedJSON: JSONValue {
        switch self {
        case .accessToken(let token):
            return .object([("type", .string(CredentialsType.accessToken.rawValue)), ("token", .string(mask(token)))])
        case .mqttBasic(let basic):
            return .object([
                ("type", .string(CredentialsType.mqttBasic.rawValue)),
                ("clientId", basic.clientID.map(JSONValue.string) ?? .null),
                ("userName", basic.userName.map(JSONValue.string) ?? .null),
                ("password", basic.password.map { JSONValue.string(mask($0)) } ?? .null),
            ])
        case .x509Certificate(let certificate):
            return .object([("type", .string(CredentialsType.x509Certificate.rawValue)),
                            ("certificate", .string(mask(Self.normalizedCertificate(certificate), keep: 12)))])
        }
    }
}

/// The first `keep` characters of a secret and an ellipsis; short secrets are hidden entirely.
public func mask(_ secret: String, keep: Int = 4) -> String {
    guard secret.count > keep * 2 else { return "…" }
    return String(secret.prefix(keep)) + "…"
}

/// A device known to the simulator.
public struct SimDevice: Sendable, Hashable {
    public var name: String
    public var profile: String
    /// `nil` once revoked: a CONNECT with the old credentials then gets CONNACK 5.
    public var credentials: DeviceCredentials?
    /// ThingsBoard's server attribute `provisionState`; `"provisioned"` after a successful provision request.
    public var provisionState: String?
    public var gateway: Bool
    /// Client-side attributes the device published, in first-seen key order.
    public var clientAttributes: [(String, JSONValue)]
    /// Shared attributes set through the control interface.
    public var sharedAttributes: [(String, JSONValue)]
    /// Creation time, milliseconds since the epoch.
    public var createdTime: Int64

    public init(name: String, profile: String, credentials: DeviceCredentials?, provisionState: String? = nil,
                gateway: Bool = false, clientAttributes: [(String, JSONValue)] = [],
                sharedAttributes: [(String, JSONValue)] = [], createdTime: Int64) {
        self.name = name
        self.profile = profile
        self.credentials = credentials
        self.provisionState = provisionState
        self.gateway = gateway
        self.clientAttributes = clientAttributes
        self.sharedAttributes = sharedAttributes
        self.createdTime = createdTime
    }

    public static func == (lhs: SimDevice, rhs: SimDevice) -> Bool {
        lhs.name == rhs.name && lhs.profile == rhs.profile && lhs.credentials == rhs.credentials
            && lhs.provisionState == rhs.provisionState && lhs.gateway == rhs.gateway
            && JSONValue.object(lhs.clientAttributes) == JSONValue.object(rhs.clientAttributes)
            && JSONValue.object(lhs.sharedAttributes) == JSONValue.object(rhs.sharedAttributes)
            && lhs.createdTime == rhs.createdTime
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.name)
        hasher.combine(self.profile)
    }
}

/// Sets `key` in an ordered attribute list, keeping the key's first position.
func upsert(_ list: inout [(String, JSONValue)], _ key: String, _ value: JSONValue) {
    if let index = list.firstIndex(where: { $0.0 == key }) {
        list[index].1 = value
    } else {
        list.append((key, value))
    }
}

/// A problem a person can act on: a bad configuration, a bad control request, a registry file that cannot be used.
public struct SimulatorError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
