import TBJSON

/// A decoded reply from `/provision/response` (thingsboard-device-api.md §1, "Response JSON").
public enum ProvisionResponse: Sendable, Equatable {
    case success(DeviceCredentials)
    /// `NOT_FOUND`, with the server's `errorMsg` (always "Provision data was not found!").
    case notFound(errorMessage: String?)
    /// `FAILURE`, with the server's `errorMsg` (always "Failed to provision device!").
    case failure(errorMessage: String?)

    /// Decodes every shape ThingsBoard sends, and the older `provisionDeviceStatus`/`accessToken` one still shown
    /// in some guides.
    ///
    /// - Parameters:
    ///   - payload: the PUBLISH payload.
    ///   - certificateFile, keyFile: for X509_CERTIFICATE, the local files the TLS layer will load.
    /// - Throws: `.unparseableReply`, `.unknownStatus`, `.successWithoutCredentials`, `.unsupportedCredentialsType`.
    public static func decode(
        _ payload: [UInt8], certificateFile: String? = nil, keyFile: String? = nil
    ) throws(ProvisioningError) -> ProvisionResponse {
        let value: JSONValue
        do {
            value = try JSONValue.parse(payload)
        } catch {
            throw .unparseableReply(reason: error.description, byteCount: payload.count)
        }
        guard case .object = value else {
            throw .unparseableReply(reason: "a JSON value but not an object", byteCount: payload.count)
        }
        let status = value["status"]?.stringValue ?? value["provisionDeviceStatus"]?.stringValue
        let errorMessage = value["errorMsg"]?.stringValue
        switch status {
        case "SUCCESS":
            return .success(
                try Self.credentials(in: value, certificateFile: certificateFile, keyFile: keyFile))
        case "NOT_FOUND":
            return .notFound(errorMessage: errorMessage)
        case "FAILURE":
            return .failure(errorMessage: errorMessage)
        default:
            throw .unknownStatus(status ?? value["status"].map { $0.serialized })
        }
    }

    /// Decodes and turns NOT_FOUND and FAILURE into their errors: the credentials, or why there are none.
    public static func credentials(
        from payload: [UInt8], deviceName: String, server: ServerEndpoint, certificateFile: String? = nil,
        keyFile: String? = nil
    ) throws(ProvisioningError) -> DeviceCredentials {
        switch try Self.decode(payload, certificateFile: certificateFile, keyFile: keyFile) {
        case .success(let credentials): return credentials
        case .notFound: throw .notFound(server: server)
        case .failure: throw .failure(deviceName: deviceName, server: server)
        }
    }

    private static func credentials(
        in value: JSONValue, certificateFile: String?, keyFile: String?
    ) throws(ProvisioningError) -> DeviceCredentials {
        let declaredType = value["credentialsType"]?.stringValue
        var credentialsValue = value["credentialsValue"]
        if credentialsValue == nil || credentialsValue?.isNull == true, let legacy = value["accessToken"] {
            credentialsValue = legacy
        }
        guard let credentialsValue, !credentialsValue.isNull else {
            throw .successWithoutCredentials(detail: "no credentialsValue")
        }
        let type: String
        if let declaredType {
            type = declaredType
        } else if case .object = credentialsValue {
            type = CredentialsType.mqttBasic.rawValue
        } else {
            type = CredentialsType.accessToken.rawValue
        }
        switch type {
        case CredentialsType.accessToken.rawValue:
            guard let token = credentialsValue.stringValue else {
                throw .successWithoutCredentials(detail: "the ACCESS_TOKEN credentialsValue is not a string")
            }
            guard !token.isEmpty else { throw .successWithoutCredentials(detail: "the access token is empty") }
            return try Self.usable(.accessToken(Secret(token)))
        case CredentialsType.mqttBasic.rawValue:
            var object = credentialsValue
            // Tolerate the object sent as a JSON string.
            if let text = credentialsValue.stringValue, let parsed = try? JSONValue.parse(text), case .object = parsed {
                object = parsed
            }
            guard case .object = object else {
                throw .successWithoutCredentials(detail: "the MQTT_BASIC credentialsValue is not an object")
            }
            func field(_ names: String...) -> String? {
                for name in names {
                    if let text = object[name]?.stringValue, !text.isEmpty { return text }
                }
                return nil
            }
            let clientId = field("clientId")
            let username = field("userName", "username")
            let password = field("password")
            guard clientId != nil || username != nil else {
                throw .successWithoutCredentials(detail: "MQTT_BASIC credentials without clientId and userName")
            }
            return try Self.usable(
                .mqttBasic(clientId: clientId, username: username, password: password.map(Secret.init)))
        case CredentialsType.x509Certificate.rawValue:
            guard let certificate = credentialsValue.stringValue, !certificate.isEmpty else {
                throw .successWithoutCredentials(detail: "the X509_CERTIFICATE credentialsValue is empty or not a string")
            }
            return .x509Certificate(certificate: certificate, certificateFile: certificateFile, keyFile: keyFile)
        default:
            throw .unsupportedCredentialsType(type)
        }
    }

    /// Credentials that cannot go into a CONNECT are no credentials: refusing them here keeps them off flash, and
    /// the refusal says that a person must act (the server has created the device with them already).
    private static func usable(_ credentials: DeviceCredentials) throws(ProvisioningError) -> DeviceCredentials {
        if let problem = credentials.problem { throw .unusableCredentials(detail: problem) }
        return credentials
    }
}
