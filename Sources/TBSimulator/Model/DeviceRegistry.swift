import TBJSON

/// The simulator's tenant: device profiles and devices, with ThingsBoard's provisioning and authentication rules.
/// A plain value with no I/O; ``Simulator`` keeps one and persists it.
public struct DeviceRegistry: Sendable {
    public private(set) var profiles: [DeviceProfile] = []
    private var devicesByName: [String: SimDevice] = [:]

    public init(profiles: [DeviceProfile] = [], devices: [SimDevice] = []) {
        self.profiles = profiles
        for device in devices { self.devicesByName[device.name] = device }
    }

    /// Devices ordered by creation time, then name.
    public var devices: [SimDevice] {
        self.devicesByName.values.sorted { ($0.createdTime, $0.name) < ($1.createdTime, $1.name) }
    }

    public func device(named name: String) -> SimDevice? { self.devicesByName[name] }

    public func profile(named name: String) -> DeviceProfile? { self.profiles.first { $0.name == name } }

    /// The device holding credentials with this id, if any.
    public func device(credentialsID: String) -> SimDevice? {
        self.devicesByName.values.first { $0.credentials?.credentialsID == credentialsID }
    }

    /// Adds or replaces a profile (matched by name).
    public mutating func upsertProfile(_ profile: DeviceProfile) throws(SimulatorError) {
        if let key = profile.provisionKey,
           self.profiles.contains(where: { $0.name != profile.name && $0.provisionKey == key }) {
            throw SimulatorError("provision key of profile \"\(profile.name)\" is already used by another profile")
        }
        if let index = self.profiles.firstIndex(where: { $0.name == profile.name }) {
            self.profiles[index] = profile
        } else {
            self.profiles.append(profile)
        }
    }

    /// Adds a device; its name and credentials must be unique and its profile must exist.
    public mutating func addDevice(_ device: SimDevice) throws(SimulatorError) {
        guard !device.name.trimmingWhitespace().isEmpty else { throw SimulatorError("a device needs a non-blank name") }
        guard self.devicesByName[device.name] == nil else {
            throw SimulatorError("a device named \"\(device.name)\" exists already")
        }
        guard self.profile(named: device.profile) != nil else {
            throw SimulatorError("device \"\(device.name)\" names profile \"\(device.profile)\", which does not exist")
        }
        if let credentials = device.credentials {
            try self.checkCredentialsAvailable(credentials, for: nil)
        }
        self.devicesByName[device.name] = device
    }

    /// Adds a device whose name and credentials were checked by the caller.
    mutating func insert(_ device: SimDevice) {
        self.devicesByName[device.name] = device
    }

    /// Replaces a device's credentials (`nil` revokes them).
    public mutating func setCredentials(_ credentials: DeviceCredentials?, forDevice name: String) throws(SimulatorError) {
        guard self.devicesByName[name] != nil else { throw SimulatorError("no device named \"\(name)\"") }
        if let credentials { try self.checkCredentialsAvailable(credentials, for: name) }
        self.devicesByName[name]?.credentials = credentials
    }

    /// Removes a device; returns it.
    @discardableResult
    public mutating func removeDevice(named name: String) -> SimDevice? {
        self.devicesByName.removeValue(forKey: name)
    }

    /// Changes a device in place.
    public mutating func update(deviceNamed name: String, _ body: (inout SimDevice) -> Void) {
        guard var device = self.devicesByName[name] else { return }
        body(&device)
        self.devicesByName[name] = device
    }

    func checkCredentialsAvailable(_ credentials: DeviceCredentials, for name: String?) throws(SimulatorError) {
        if case .mqttBasic(let basic) = credentials, let problem = basic.validationProblem {
            throw SimulatorError("MQTT_BASIC credentials: \(problem)")
        }
        if let holder = self.device(credentialsID: credentials.credentialsID), holder.name != name {
            throw SimulatorError("these credentials are already assigned to device \"\(holder.name)\"")
        }
    }

    // MARK: Provisioning

    /// Decides a provision request as ThingsBoard's `DeviceProvisionServiceImpl.provisionDevice` does, creating or
    /// claiming the device on success.
    public mutating func provision(_ request: ProvisionRequest, now: Int64) -> ProvisionResult {
        var name = request.deviceName
        if let given = name {
            if !given.isEmpty && given.trimmingWhitespace().isEmpty {
                return .failure("device name is blank")
            }
            name = given.trimmingWhitespace()
            if name == "" { name = nil }
        }
        guard !request.provisionDeviceKey.isEmpty, !request.provisionDeviceSecret.isEmpty else {
            return .notFound("provision key or secret is empty")
        }
        guard let profile = self.profiles.first(where: { $0.provisionKey == request.provisionDeviceKey }),
              profile.strategy != .disabled, let secret = profile.provisionSecret
        else {
            return .notFound("no profile with this provision key, or its provisioning is disabled")
        }
        guard secret == request.provisionDeviceSecret else {
            return .notFound("wrong provision secret for profile \"\(profile.name)\"")
        }
        switch profile.strategy {
        case .allowCreateNewDevices:
            let deviceName = name ?? RandomText.alphanumeric(20)
            if self.devicesByName[deviceName] != nil {
                return .failure("device \"\(deviceName)\" exists already")
            }
            let credentials: DeviceCredentials
            switch Self.credentials(for: request) {
            case .success(let c): credentials = c
            case .failure(let problem): return .failure(problem.description)
            }
            if let holder = self.device(credentialsID: credentials.credentialsID) {
                return .failure("the requested credentials are already assigned to device \"\(holder.name)\"")
            }
            self.devicesByName[deviceName] = SimDevice(
                name: deviceName, profile: profile.name, credentials: credentials, provisionState: "provisioned",
                gateway: request.gateway, createdTime: now)
            return ProvisionResult(status: .success, credentials: credentials, deviceName: deviceName,
                                   reason: "device created in profile \"\(profile.name)\"")
        case .checkPreProvisionedDevices:
            guard let deviceName = name, let device = self.devicesByName[deviceName] else {
                return .failure("no pre-provisioned device \"\(name ?? "")\"")
            }
            guard device.profile == profile.name else {
                return .failure("device \"\(deviceName)\" belongs to profile \"\(device.profile)\", not \"\(profile.name)\"")
            }
            guard device.provisionState == nil else {
                return .failure("device \"\(deviceName)\" was provisioned already")
            }
            guard let credentials = device.credentials else {
                return .failure("device \"\(deviceName)\" has no credentials")
            }
            self.devicesByName[deviceName]?.provisionState = "provisioned"
            return ProvisionResult(status: .success, credentials: credentials, deviceName: deviceName,
                                   reason: "pre-provisioned device claimed")
        case .disabled:
            return .notFound("provisioning is disabled")
        case .x509CertificateChain:
            // ThingsBoard: "Invalid provision strategy type!" (such a profile is provisioned by the TLS handshake).
            return .notFound("profile \"\(profile.name)\" provisions by X.509 certificate chain, not by request")
        }
    }

    /// The credentials a new device gets: the requested ones, or a generated access token when none were given.
    static func credentials(for request: ProvisionRequest) -> Result<DeviceCredentials, SimulatorError> {
        let given = [request.token, request.hash, request.username, request.password, request.clientID]
        if given.allSatisfy({ ($0 ?? "").isEmpty }) {
            return .success(.accessToken(RandomText.alphanumeric(20)))
        }
        switch request.credentialsType {
        case .accessToken:
            if let token = request.token, !token.isEmpty { return .success(.accessToken(token)) }
            return .success(.accessToken(RandomText.alphanumeric(20)))
        case .mqttBasic:
            let basic = MQTTBasicCredentials(clientID: request.clientID, userName: request.username, password: request.password)
            if let problem = basic.validationProblem { return .failure(SimulatorError(problem)) }
            return .success(.mqttBasic(basic))
        case .x509Certificate:
            guard let certificate = request.hash, !certificate.isEmpty else {
                return .failure(SimulatorError("X509_CERTIFICATE request without a certificate in \"hash\""))
            }
            return .success(.x509Certificate(certificate))
        case .lwm2m:
            return .failure(SimulatorError("LWM2M credentials cannot be provisioned over MQTT"))
        }
    }

    // MARK: Authentication

    /// The device a CONNECT's credentials belong to, following ThingsBoard's lookup order (reference section 2):
    /// MQTT_BASIC by client id when there is no user name, else by client id + user name, then the user name as an
    /// access token (password and client id ignored) or as user-name-only MQTT_BASIC credentials.
    public func authenticate(clientID: String, username: String?, password: String?) -> SimDevice? {
        let user = username ?? ""
        if user.isEmpty {
            guard !clientID.isEmpty else { return nil }
            return self.matchBasic(id: "mqtt-basic:" + clientID, clientID: clientID, username: user, password: password)
        }
        if !clientID.isEmpty,
           let device = self.matchBasic(id: "mqtt-basic:" + clientID + "|" + user, clientID: clientID, username: user, password: password) {
            return device
        }
        guard let device = self.device(credentialsID: user), let credentials = device.credentials else { return nil }
        switch credentials {
        case .accessToken: return device
        case .mqttBasic: return self.matchBasic(id: user, clientID: clientID, username: user, password: password)
        case .x509Certificate: return nil
        }
    }

    func matchBasic(id: String, clientID: String, username: String, password: String?) -> SimDevice? {
        guard let device = self.device(credentialsID: id), case .mqttBasic(let basic)? = device.credentials else { return nil }
        if let stored = basic.clientID, stored != clientID { return nil }
        if let stored = basic.userName, stored != username { return nil }
        if let stored = basic.password, stored != (password ?? "") { return nil }
        return device
    }
}

extension String {
    /// Java's `String.trim()`: strips characters up to U+0020 at both ends.
    func trimmingWhitespace() -> String {
        let scalars = self.unicodeScalars
        guard let start = scalars.firstIndex(where: { $0.value > 0x20 }),
              let end = scalars.lastIndex(where: { $0.value > 0x20 })
        else { return "" }
        return String(scalars[start...end])
    }
}
