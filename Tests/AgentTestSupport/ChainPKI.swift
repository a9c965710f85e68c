import Foundation

/// A throw-away PKI for X.509 chain provisioning, made by openssl in a temporary folder:
/// - `root.crt` → `intermediate.crt` → `leaf.crt` (CN `leafCN`, key `leaf.key` mode 0600), and `chain.pem` = leaf +
///   intermediate, what a board presents; `full-chain.pem` = leaf + intermediate + root;
/// - `other-leaf.crt`/`other-leaf.key`, `other-chain.pem`: a second device (CN `otherCN`) of the same intermediate;
/// - `stranger-ca.crt` → `stranger.crt` (CN `leafCN`), `stranger-chain.pem`: a CA no profile knows;
/// - `expired-leaf.crt`, `expired-chain.pem`: the leaf's key, CN `leafCN`, expired in 2020;
/// - `wrong.key`: a key of no certificate here;
/// - `server.crt`/`server.key`: tb-sim's TLS listener certificate for 127.0.0.1, signed by `root.crt`.
public struct ChainPKI: Sendable {
    public let directory: URL

    public func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }

    public init(leafCN: String, otherCN: String = "other-device") throws {
        self.directory = try TestSupport.makeTemporaryDirectory("chain-pki")
        let script = """
            set -e
            cd "\(self.directory.path)"
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
            printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > ca.ext
            key root.key
            openssl req -x509 -new -key root.key -out root.crt -days 2 -subj "/CN=tb-agent test root" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
            key intermediate.key
            openssl req -new -key intermediate.key -out intermediate.csr -subj "/CN=tb-agent test intermediate"
            openssl x509 -req -in intermediate.csr -CA root.crt -CAkey root.key -CAcreateserial -out intermediate.crt \
                -days 2 -extfile ca.ext 2>/dev/null
            leaf() {  # name CN issuer
                key "$1.key"
                openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
                openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" -days 2 2>/dev/null
            }
            leaf leaf "\(leafCN)" intermediate
            cat leaf.crt intermediate.crt > chain.pem
            cat leaf.crt intermediate.crt root.crt > full-chain.pem
            leaf other-leaf "\(otherCN)" intermediate
            cat other-leaf.crt intermediate.crt > other-chain.pem
            key stranger-ca.key
            openssl req -x509 -new -key stranger-ca.key -out stranger-ca.crt -days 2 -subj "/CN=unknown CA" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
            leaf stranger "\(leafCN)" stranger-ca
            cat stranger.crt stranger-ca.crt > stranger-chain.pem
            # The leaf's key, expired in 2020 (openssl ca sets the dates).
            printf '[ca]\\ndefault_ca=d\\n[d]\\ndir=.\\ndatabase=index.txt\\nnew_certs_dir=.\\nserial=serial\\ndefault_md=sha256\\npolicy=p\\n[p]\\ncommonName=supplied\\n' > ca.cnf
            touch index.txt; echo 1000 > serial
            openssl req -new -key leaf.key -out expired.csr -subj "/CN=\(leafCN)"
            openssl ca -batch -config ca.cnf -cert intermediate.crt -keyfile intermediate.key -in expired.csr \
                -out expired-leaf.crt -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
            cat expired-leaf.crt intermediate.crt > expired-chain.pem
            key wrong.key
            key server.key
            openssl req -new -key server.key -out server.csr -subj /CN=127.0.0.1
            printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext
            openssl x509 -req -in server.csr -CA root.crt -CAkey root.key -CAcreateserial -out server.crt -days 2 \
                -extfile server.ext 2>/dev/null
            chmod 600 *.key
            """
        let result = try TestSupport.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script])
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
