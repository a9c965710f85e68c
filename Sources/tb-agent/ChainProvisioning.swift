import AgentCore
import AgentTLS

/// `[provisioning] method = "x509-chain"`: no provision request. The board's credentials are its certificate chain
/// and key, which it presents over TLS; ThingsBoard creates the device from the certificate's CN. Before any
/// connection the chain is checked with OpenSSL (order, key, validity) and the CN against the board's device name,
/// so that a mismatch is said here instead of showing up as a device with another name on the server.
enum ChainProvisioning {
    /// The checked chain: what the CN yields and the credentials that connect with the files.
    struct Checked {
        let summary: ClientChainSummary
        let credentials: DeviceCredentials
    }

    /// - Parameter deviceName: the board's name (`[device] name_template`); nil skips the name comparison (when the
    ///   hardware identity cannot be read, as on a machine that only checks the file).
    static func check(_ settings: X509ChainSettings, deviceName: String?) -> Result<Checked, AgentError> {
        let summary: ClientChainSummary
        switch ClientChain.inspect(chainFile: settings.chainFile, keyFile: settings.keyFile) {
        case .success(let s): summary = s
        case .failure(let problem): return .failure(AgentError(.invalidConfiguration, problem.description))
        }
        let pattern = settings.cnPattern.source
        guard let derived = settings.cnPattern.deviceName(in: summary.commonName), !derived.isEmpty else {
            return .failure(AgentError(
                .invalidConfiguration,
                "the certificate's CN \"\(summary.commonName)\" (\(settings.chainFile)) does not match [provisioning] cn_regex \"\(pattern)\", so ThingsBoard would refuse it: set cn_regex to the device profile's \"CN regular expression\", or issue the certificate with a CN that matches it"))
        }
        if let deviceName, derived != deviceName {
            return .failure(AgentError(
                .invalidConfiguration,
                "the certificate's CN \"\(summary.commonName)\" gives the device name \"\(derived)\" (cn_regex \"\(pattern)\"), but this board's name is \"\(deviceName)\" ([device] name_template): ThingsBoard would create \"\(derived)\". Issue the certificate with the CN for \"\(deviceName)\", or set [device] name_template so that it gives \"\(derived)\""))
        }
        return .success(Checked(
            summary: summary,
            credentials: .x509Certificate(certificate: summary.leafPEM, certificateFile: settings.chainFile, keyFile: settings.keyFile)))
    }

    /// One line for `check-config` and `doctor`.
    static func describe(_ checked: Checked, _ settings: X509ChainSettings) -> String {
        "certificate chain \(settings.chainFile): CN \"\(checked.summary.commonName)\" (\(checked.summary.certificateCount) certificate\(checked.summary.certificateCount == 1 ? "" : "s"), valid until \(checked.summary.notAfter)), key \(settings.keyFile) matches"
    }
}

/// The run loop's provisioning port for `method = "x509-chain"`: the checked chain is the credentials, no request.
struct ChainProvisioner: Provisioning {
    let settings: X509ChainSettings
    let deviceName: String

    func provision() async -> Result<DeviceCredentials, AgentError> {
        ChainProvisioning.check(self.settings, deviceName: self.deviceName).map(\.credentials)
    }
}
