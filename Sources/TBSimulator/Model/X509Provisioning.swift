/// What ThingsBoard's `validateOrCreateDeviceX509Certificate` concluded about a presented chain.
public struct X509ChainOutcome: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A certificate of the chain is a device's X509_CERTIFICATE credentials.
        case existing
        /// A profile's CA signed the chain and the device named by the CN was created.
        case created
        /// A profile's CA signed the chain and the device named by the CN, in that profile, now has the leaf as its
        /// credentials.
        case updated
        /// Nothing matched or the profile refused: the CONNECT that follows finds no credentials.
        case refused
    }

    public var kind: Kind
    public var device: String?
    public var profile: String?
    public var reason: String
}

extension DeviceRegistry {
    /// ThingsBoard's `DefaultTransportApiService.validateOrCreateDeviceX509Certificate` with
    /// `DeviceProvisionServiceImpl.provisionDeviceViaX509Chain`: for each certificate of the chain, leaf first, its
    /// X509_CERTIFICATE credentials, then a profile of type X509_CERTIFICATE_CHAIN holding it as its CA (ThingsBoard
    /// looks the profile up by the CA's hash). With such a profile, the device name is group 1 of the profile's
    /// regular expression found in the leaf's CN: a device of that name in the profile gets the leaf as its
    /// credentials, an unknown name is created when the profile allows it, anything else is refused.
    ///
    /// ThingsBoard's trust manager has already checked that each certificate signs the one before; the simulator
    /// also checks with OpenSSL that the chain leads to the profile's CA.
    mutating func validateOrCreate(chain: [X509Certificate], now: Int64) -> X509ChainOutcome {
        guard let leaf = chain.first else {
            return X509ChainOutcome(kind: .refused, reason: "the client presented no certificate")
        }
        let leafPEM = leaf.pem
        for (index, certificate) in chain.enumerated() {
            let pem = index == 0 ? leafPEM : certificate.pem
            let credentials = DeviceCredentials.x509Certificate(pem)
            if let device = self.device(credentialsID: credentials.credentialsID) {
                return X509ChainOutcome(kind: .existing, device: device.name, profile: device.profile,
                                        reason: "certificate \(index) of the chain is the credentials of device \"\(device.name)\"")
            }
            let normalized = DeviceCredentials.normalizedCertificate(pem)
            guard let profile = self.profiles.first(where: {
                $0.x509.map { DeviceCredentials.normalizedCertificate($0.caCertificate) == normalized } ?? false
            }), let settings = profile.x509 else { continue }
            guard profile.strategy == .x509CertificateChain else {
                // ThingsBoard logs "Device Profile provision configuration mismatched" and goes on.
                continue
            }
            guard leaf.verifies(to: certificate, intermediates: index > 1 ? Array(chain[1..<index]) : []) else {
                return X509ChainOutcome(kind: .refused, profile: profile.name,
                                        reason: "the chain does not verify to the CA of profile \"\(profile.name)\"")
            }
            guard let commonName = leaf.commonName else {
                return X509ChainOutcome(kind: .refused, profile: profile.name, reason: "the leaf certificate has no CN")
            }
            guard let name = settings.deviceName(fromCommonName: commonName), !name.trimmingWhitespace().isEmpty else {
                return X509ChainOutcome(kind: .refused, profile: profile.name,
                                        reason: "CN \"\(commonName)\" does not match cn_regex \"\(settings.cnRegex)\" of profile \"\(profile.name)\" (group 1 is the device name)")
            }
            let leafCredentials = DeviceCredentials.x509Certificate(leafPEM)
            if let device = self.device(named: name) {
                guard device.profile == profile.name else {
                    return X509ChainOutcome(kind: .refused, device: name, profile: profile.name,
                                            reason: "device \"\(name)\" exists in profile \"\(device.profile)\", not \"\(profile.name)\"")
                }
                if case .x509Certificate? = device.credentials {
                    self.update(deviceNamed: name) { $0.credentials = leafCredentials }
                }
                return X509ChainOutcome(kind: .updated, device: name, profile: profile.name,
                                        reason: "device \"\(name)\" found in profile \"\(profile.name)\"")
            }
            guard settings.allowCreate else {
                return X509ChainOutcome(kind: .refused, device: name, profile: profile.name,
                                        reason: "device \"\(name)\" does not exist and profile \"\(profile.name)\" does not allow creating devices by X.509 certificate")
            }
            self.insert(SimDevice(name: name, profile: profile.name, credentials: leafCredentials, provisionState: "provisioned",
                               createdTime: now))
            return X509ChainOutcome(kind: .created, device: name, profile: profile.name,
                                    reason: "device \"\(name)\" created in profile \"\(profile.name)\" from CN \"\(commonName)\"")
        }
        return X509ChainOutcome(kind: .refused, reason: "no certificate of the chain is a device's credentials or a profile's CA")
    }
}
