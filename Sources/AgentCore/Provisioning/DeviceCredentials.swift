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
