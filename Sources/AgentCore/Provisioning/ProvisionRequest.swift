import TBJSON

/// The JSON a device publishes on `/provision/request` (thingsboard-device-api.md §1).
///
/// A field with no value is left out: ThingsBoard reads every optional field with `getAsString()`, so a JSON `null`
/// makes it throw, close the connection and send no answer at all.
public struct ProvisionRequest: Sendable, Equatable {
    public static let requestTopic = "/provision/request"
    public static let responseTopic = "/provision/response"

    public var deviceName: String
    public var provisionDeviceKey: String
    public var provisionDeviceSecret: Secret
    /// Sent only when configured; nil lets the server choose (an access token).
    public var credentialsType: CredentialsType?
    /// ACCESS_TOKEN: a token to ask for.
    public var token: Secret?
    /// MQTT_BASIC
    public var clientId: String?
    public var username: String?
    public var password: Secret?
    /// X509_CERTIFICATE: the PEM certificate body, sent as `hash` (the server computes the hash itself).
    public var certificatePEM: String?

    public init(
        deviceName: String, provisionDeviceKey: String, provisionDeviceSecret: Secret,
        credentialsType: CredentialsType? = nil, token: Secret? = nil, clientId: String? = nil,
        username: String? = nil, password: Secret? = nil, certificatePEM: String? = nil
    ) {
        self.deviceName = deviceName
        self.provisionDeviceKey = provisionDeviceKey
        self.provisionDeviceSecret = provisionDeviceSecret
        self.credentialsType = credentialsType
        self.token = token
        self.clientId = clientId
        self.username = username
        self.password = password
        self.certificatePEM = certificatePEM
    }

    /// The request for `deviceName` from `[provisioning]`. `certificatePEM` is the content of `cert_file`, read by
    /// the caller (the core reads no files).
    public init(deviceName: String, settings: ProvisioningSettings, certificatePEM: String? = nil) {
        self.init(
            deviceName: deviceName, provisionDeviceKey: settings.deviceKey, provisionDeviceSecret: settings.deviceSecret,
            credentialsType: settings.credentialsType, token: settings.token, clientId: settings.clientId,
            username: settings.username, password: settings.password, certificatePEM: certificatePEM
        )
    }

    /// Checks what the server would refuse without saying why.
    ///
    /// - Throws: `AgentError.invalidConfiguration` naming the `[provisioning]` key to fix.
    public func validate() throws(AgentError) {
        if self.deviceName.allSatisfy(\.isWhitespace) {
            throw AgentError(
                .invalidConfiguration,
                "the device name is empty: ThingsBoard answers FAILURE for a blank name; check [device] name_template")
        }
        if self.provisionDeviceKey.isEmpty {
            throw AgentError(
                .invalidConfiguration,
                "[provisioning] device_key is empty: copy the provision device key from the device profile")
        }
        if self.provisionDeviceSecret.isEmpty {
            throw AgentError(
                .invalidConfiguration,
                "[provisioning] device_secret is empty: copy the provision device secret from the device profile")
        }
        // Credentials the device asks for are what the server stores and issues: refuse what MQTT cannot carry
        // before the server creates a device with it.
        let requested: [(String?, String)] = [
            (self.token?.revealed, "token"), (self.clientId, "client_id"), (self.username, "username"),
            (self.password?.revealed, "password"),
        ]
        for case (let value?, let key) in requested where !value.isEmpty {
            if let problem = DeviceCredentials.problem(in: value, "[provisioning] \(key)") {
                throw AgentError(
                    .invalidConfiguration, "\(problem): MQTT cannot carry it; correct [provisioning] \(key)")
            }
        }
        switch self.credentialsType {
        case .mqttBasic:
            let hasClientId = !(self.clientId ?? "").isEmpty
            let hasUsername = !(self.username ?? "").isEmpty
            let hasPassword = !(self.password?.isEmpty ?? true)
            if hasPassword && !hasUsername {
                throw AgentError(
                    .invalidConfiguration,
                    "[provisioning] password is set without username: ThingsBoard refuses MQTT_BASIC credentials with a password but no user name; set username")
            }
            if !hasClientId && !hasUsername {
                throw AgentError(
                    .invalidConfiguration,
                    "[provisioning] credentials_type = \"MQTT_BASIC\" needs client_id or username (or both)")
            }
        case .x509Certificate:
            if (self.certificatePEM ?? "").isEmpty {
                throw AgentError(
                    .invalidConfiguration,
                    "[provisioning] credentials_type = \"X509_CERTIFICATE\" needs cert_file: the PEM certificate the device will present")
            }
        case .accessToken, nil:
            break
        }
    }

    /// The JSON object, members in a fixed order, with no `null` anywhere.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("deviceName", .string(self.deviceName)),
            ("provisionDeviceKey", .string(self.provisionDeviceKey)),
            ("provisionDeviceSecret", .string(self.provisionDeviceSecret.revealed)),
        ]
        func add(_ key: String, _ value: String?) {
            guard let value, !value.isEmpty else { return }
            members.append((key, .string(value)))
        }
        if let type = self.credentialsType {
            members.append(("credentialsType", .string(type.rawValue)))
            switch type {
            case .accessToken:
                add("token", self.token?.revealed)
            case .mqttBasic:
                add("clientId", self.clientId)
                add("username", self.username)
                add("password", self.password?.revealed)
            case .x509Certificate:
                add("hash", self.certificatePEM)
            }
        }
        return .object(members)
    }

    /// The UTF-8 payload to publish.
    public var payload: [UInt8] { self.json.serializedBytes }
}
