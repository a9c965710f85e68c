import AgentCore
import AgentMQTT

/// The MQTT CONNECT for a device session with these credentials, as ThingsBoard expects it
/// (thingsboard-device-api.md §2): ACCESS_TOKEN as the user name; MQTT_BASIC's client id, user name and
/// password; X509_CERTIFICATE as the TLS client certificate.
public enum SessionOptions {
    public static func make(server: ServerSettings, credentials: DeviceCredentials, deviceName: String) -> MQTTConnectOptions {
        var tls = server.tls.map {
            MQTTTLSOptions(caFile: $0.caFile, certificateFile: $0.certFile, keyFile: $0.keyFile,
                           insecureSkipHostnameCheck: !$0.verifyHostname)
        }
        var clientID = "tb-agent-" + Self.clientSuffix(deviceName)
        var username: String? = nil
        var password: Secret? = nil
        switch credentials {
        case .accessToken(let token):
            username = token.revealed
        case .mqttBasic(let id, let user, let pass):
            if let id { clientID = id }
            username = user
            password = pass
        case .x509Certificate(_, let certificateFile, let keyFile):
            var options = tls ?? MQTTTLSOptions()
            options.certificateFile = certificateFile ?? options.certificateFile
            options.keyFile = keyFile ?? options.keyFile
            tls = options
        }
        return MQTTConnectOptions(
            host: server.host, port: server.port, clientID: clientID, username: username.map(Secret.init), password: password,
            keepalive: server.keepalive, cleanSession: true, tls: tls)
    }

    /// A stable client id from the device name (ThingsBoard ignores it for tokens; brokers log it).
    static func clientSuffix(_ name: String) -> String {
        let allowed = name.lowercased().unicodeScalars.filter { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }
        return String(String.UnicodeScalarView(allowed.prefix(40)))
    }
}
