import Foundation

/// A throw-away PKI for X.509 chain provisioning, made by `scripts/lib/chain-pki.sh` (which lists the files) in a
/// temporary folder: root → intermediate → leaf, `chain.pem`, `full-chain.pem`, another device's chain, a stranger
/// CA's chain, an expired leaf, a wrong key and tb-sim's TLS server certificate for 127.0.0.1.
public struct ChainPKI: Sendable {
    public let directory: URL

    public func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    /// `strangerCN` defaults to `leafCN`: a board of the right name whose chain comes from a CA no profile holds.
    public init(leafCN: String, otherCN: String = "other-device", strangerCN: String? = nil) throws {
        self.directory = try TestSupport.makeTemporaryDirectory("chain-pki")
        let script = TestSupport.packageRoot.appendingPathComponent("scripts/lib/chain-pki.sh").path
        let result = try TestSupport.run(
            URL(fileURLWithPath: "/bin/sh"), [script, self.directory.path, leafCN, otherCN, strangerCN ?? leafCN])
        guard result.status == 0 else { throw TestSupportError("openssl failed: \(result.stderr)") }
    }

    /// tb-sim's flags for its TLS listener on a free port with `server.crt`.
    public var simArguments: [String] {
        ["--mqtts-port", "0", "--tls-cert-file", self.path("server.crt"), "--tls-key-file", self.path("server.key")]
    }

    /// A tb-sim `[[profiles]]` of type X509_CERTIFICATE_CHAIN whose CA is `ca` (`intermediate.crt` or `root.crt`).
    public func profile(name: String = "chain-boards", ca: String = "intermediate.crt", cnRegex: String, allowCreate: Bool = true) -> String {
        """
        [[profiles]]
        name = "\(name)"
        strategy = "X509_CERTIFICATE_CHAIN"
        x509_ca_file = "\(self.path(ca))"
        x509_cn_regex = '\(cnRegex)'
        allow_create = \(allowCreate)
        """
    }
}
