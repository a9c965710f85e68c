import TBJSON

/// A provision request as ThingsBoard's `JsonConverter.buildProvisionRequestMsg` reads it.
public struct ProvisionRequest: Sendable, Hashable {
    public var deviceName: String?
    public var provisionDeviceKey: String
    public var provisionDeviceSecret: String
    public var credentialsType: CredentialsType
    public var token: String?
    public var clientID: String?
    public var username: String?
    public var password: String?
    /// The certificate body for X509_CERTIFICATE (ThingsBoard calls the field `hash`).
    public var hash: String?
    public var gateway: Bool

    public init(deviceName: String?, provisionDeviceKey: String, provisionDeviceSecret: String,
                credentialsType: CredentialsType = .accessToken, token: String? = nil, clientID: String? = nil,
                username: String? = nil, password: String? = nil, hash: String? = nil, gateway: Bool = false) {
        self.deviceName = deviceName
        self.provisionDeviceKey = provisionDeviceKey
        self.provisionDeviceSecret = provisionDeviceSecret
        self.credentialsType = credentialsType
        self.token = token
        self.clientID = clientID
        self.username = username
        self.password = password
        self.hash = hash
        self.gateway = gateway
    }

    /// Parses a request payload.
    ///
    /// - Throws: ``PayloadError/adaptor(_:)`` when the payload is not a JSON object (ThingsBoard would then try
    ///   protobuf, which the simulator does not speak, and fail the same way); ``PayloadError/runtime(_:)`` for a
    ///   missing key or secret, a JSON `null` in any field, or an unknown credentials type.
    public static func parse(_ payload: [UInt8]) throws(PayloadError) -> ProvisionRequest {
        let json = try Gson.parse(payload)
        guard case .object = json else { throw .adaptor("provision request is not a JSON object") }
        func required(_ field: String) throws(PayloadError) -> String {
            guard let value = json[field] else {
                throw .runtime("Failed to find the field \(field) in JSON body")
            }
            return try Gson.asString(value, field: field)
        }
        func optional(_ field: String) throws(PayloadError) -> String? {
            guard let value = json[field] else { return nil }
            return try Gson.asString(value, field: field)
        }
        let key = try required("provisionDeviceKey")
        let secret = try required("provisionDeviceSecret")
        let name = try optional("deviceName")
        var type = CredentialsType.accessToken
        if let typeName = try optional("credentialsType") {
            guard let parsed = CredentialsType(rawValue: typeName) else {
                throw .runtime("No enum constant CredentialsType.\(typeName)")
            }
            type = parsed
        }
        var gateway = false
        if let value = json["gateway"] { gateway = try Gson.asBoolean(value, field: "gateway") }
        return ProvisionRequest(deviceName: name, provisionDeviceKey: key, provisionDeviceSecret: secret,
                                credentialsType: type, token: try optional("token"), clientID: try optional("clientId"),
                                username: try optional("username"), password: try optional("password"),
                                hash: try optional("hash"), gateway: gateway)
    }

    /// The request with secrets masked, for the event log.
    public var maskedJSON: JSONValue {
        var members: [(String, JSONValue)] = []
        if let deviceName { members.append(("deviceName", .string(deviceName))) }
        members.append(("provisionDeviceKey", .string(self.provisionDeviceKey)))
        members.append(("provisionDeviceSecret", .string(mask(self.provisionDeviceSecret))))
        members.append(("credentialsType", .string(self.credentialsType.rawValue)))
        if let token { members.append(("token", .string(mask(token)))) }
        if let clientID { members.append(("clientId", .string(clientID))) }
        if let username { members.append(("username", .string(username))) }
        if let password { members.append(("password", .string(mask(password)))) }
        if let hash { members.append(("hash", .string(mask(hash, keep: 12)))) }
        if self.gateway { members.append(("gateway", .bool(true))) }
        return .object(members)
    }
}

/// ThingsBoard's provision response statuses that reach devices.
public enum ProvisionStatus: String, Sendable, Hashable {
    case success = "SUCCESS"
    case notFound = "NOT_FOUND"
    case failure = "FAILURE"
}

/// The outcome of a provision request.
public struct ProvisionResult: Sendable, Hashable {
    public var status: ProvisionStatus
    /// The issued credentials on success.
    public var credentials: DeviceCredentials?
    /// The device the request created or claimed, on success.
    public var deviceName: String?
    /// Why, for the event log (devices only ever see the two fixed error messages).
    public var reason: String

    public static func notFound(_ reason: String) -> ProvisionResult {
        ProvisionResult(status: .notFound, credentials: nil, deviceName: nil, reason: reason)
    }
    public static func failure(_ reason: String) -> ProvisionResult {
        ProvisionResult(status: .failure, credentials: nil, deviceName: nil, reason: reason)
    }

    /// The response body, byte for byte as ThingsBoard's `JsonConverter.toJson(ProvisionDeviceResponseMsg)`.
    public var responseBody: JSONValue {
        switch self.status {
        case .success:
            let credentials = self.credentials ?? .accessToken("")
            return .object([
                ("credentialsValue", credentials.responseValue),
                ("credentialsType", .string(credentials.type.rawValue)),
                ("status", .string("SUCCESS")),
            ])
        case .notFound:
            return .object([("errorMsg", .string("Provision data was not found!")), ("status", .string("NOT_FOUND"))])
        case .failure:
            return .object([("errorMsg", .string("Failed to provision device!")), ("status", .string("FAILURE"))])
        }
    }
}

/// Random strings as ThingsBoard makes them (`RandomStringUtils.randomAlphanumeric`), from the system's secure source.
public enum RandomText {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    public static func alphanumeric(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }
}
