/// What a device presents to ThingsBoard once provisioned (thingsboard-device-api.md §2).
public enum DeviceCredentials: Sendable, Equatable, CustomStringConvertible {
    /// CONNECT with user name = token; password and client id are ignored by the server.
    case accessToken(Secret)
    /// CONNECT with these fields; a nil field is left out of the CONNECT. The response calls the user name `userName`.
    case mqttBasic(clientId: String?, username: String?, password: Secret?)
    /// A TLS client certificate. `certificate` is the PEM the server returned; the files are what the TLS layer
    /// loads (the key never leaves the board and is never stored here, only its path).
    case x509Certificate(certificate: String, certificateFile: String?, keyFile: String?)

    public var type: CredentialsType {
        switch self {
        case .accessToken: return .accessToken
        case .mqttBasic: return .mqttBasic
        case .x509Certificate: return .x509Certificate
        }
    }

    /// A one-line summary with every secret masked: safe for logs, errors and `tb-agent status`.
    public var description: String {
        switch self {
        case .accessToken(let token):
            return "ACCESS_TOKEN token \(token)"
        case .mqttBasic(let clientId, let username, let password):
            let id = clientId.map { "client id \"\($0)\"" } ?? "no client id"
            let user = username.map { "user name \"\($0)\"" } ?? "no user name"
            let pass = password.map { "password \($0)" } ?? "no password"
            return "MQTT_BASIC \(id), \(user), \(pass)"
        case .x509Certificate(let certificate, let certificateFile, let keyFile):
            let cert = certificateFile.map { "certificate \($0)" } ?? "certificate (\(certificate.utf8.count) bytes)"
            return "X509_CERTIFICATE \(cert), key \(keyFile ?? "(not set)")"
        }
    }
}

/// The MQTT server a set of credentials belongs to. Credentials issued by one server mean nothing to another.
public struct ServerEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(_ settings: ServerSettings) {
        self.init(host: settings.host, port: settings.port)
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var description: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

// MARK: - What an MQTT CONNECT can carry

extension DeviceCredentials {
    /// The most bytes a token, client id, user name or password may have. ThingsBoard issues 20-character tokens and
    /// its UI accepts 32; a longer value is almost certainly not credentials (the fault suite once stored a 2 MiB one).
    public static let maxFieldBytes = 256

    /// Why `text` cannot be the `what` of an MQTT CONNECT, or nil when it can.
    ///
    /// Refused, as libmosquitto's `mosquitto_validate_utf8` refuses them (which makes `mosquitto_new` and
    /// `mosquitto_username_pw_set` fail on every connect): NUL, the C0 controls (below U+0020), DEL and the C1
    /// controls (U+007F to U+009F), and the Unicode noncharacters (U+FDD0 to U+FDEF, and U+xxFFFE/U+xxFFFF); and
    /// the empty or over-long value. The message names the field and the kind of character, never the value.
    public static func problem(in text: String, _ what: String) -> String? {
        if text.isEmpty { return "\(what) is empty" }
        let count = text.utf8.count
        if count > self.maxFieldBytes {
            return "\(what) is \(count) bytes long, more than the \(self.maxFieldBytes) this agent accepts"
        }
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value == 0 { return "\(what) contains a NUL character" }
            if value < 0x20 || (0x7F...0x9F).contains(value) {
                return "\(what) contains a control character (a line break, tab, DEL or similar)"
            }
            if (0xFDD0...0xFDEF).contains(value) || value & 0xFFFE == 0xFFFE {
                return "\(what) contains a Unicode noncharacter (such as U+FFFF)"
            }
        }
        return nil
    }

    /// Why these credentials cannot be used for an MQTT CONNECT, or nil when they can. X.509 certificates are PEM
    /// text (with line breaks) that goes to the TLS layer, not into the CONNECT: only their presence is checked.
    public var problem: String? {
        switch self {
        case .accessToken(let token):
            return Self.problem(in: token.revealed, "the access token")
        case .mqttBasic(let clientId, let username, let password):
            if clientId == nil && username == nil { return "MQTT_BASIC credentials without client id and user name" }
            if let clientId, let problem = Self.problem(in: clientId, "the MQTT_BASIC client id") { return problem }
            if let username, let problem = Self.problem(in: username, "the MQTT_BASIC user name") { return problem }
            if let password, let problem = Self.problem(in: password.revealed, "the MQTT_BASIC password") { return problem }
            return nil
        case .x509Certificate(let certificate, _, _):
            return certificate.isEmpty ? "the X509_CERTIFICATE certificate is empty" : nil
        }
    }
}
