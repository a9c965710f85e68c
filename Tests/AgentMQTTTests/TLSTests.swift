import AgentCore
import AgentMQTT
import AgentTestSupport
import Foundation
import Testing

/// TLS against mosquitto with a throw-away CA made by openssl: the server is verified by default, the host name
/// check is skipped only when asked, and a client certificate is presented when configured.
@Suite(.serialized) struct TLSTests {
    struct PKI {
        let directory: URL
        func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }
    }

    /// A CA, a server certificate for `serverName` (an IP or DNS subject alternative name) and a client certificate.
    static func makePKI(serverName: String) throws -> PKI {
        let directory = try TestSupport.makeTemporaryDirectory("pki")
        let san = serverName.allSatisfy { $0.isNumber || $0 == "." } ? "IP:\(serverName)" : "DNS:\(serverName)"
        let script = """
            set -e
            cd "\(directory.path)"
            key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
            key ca.key
            openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=tb-agent-test-ca
            key server.key
            openssl req -new -key server.key -out server.csr -subj /CN=\(serverName)
            printf 'subjectAltName=\(san)\\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext 2>/dev/null
            key client.key
            openssl req -new -key client.key -out client.csr -subj /CN=device-1
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 2>/dev/null
            key other.key
            openssl req -x509 -new -key other.key -out other-ca.crt -days 2 -subj /CN=some-other-ca
            # A server certificate that expired in 2020, signed by the same CA (openssl ca sets the dates).
            printf '[ca]\ndefault_ca=d\n[d]\ndir=.\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n' > ca.cnf
            touch index.txt; echo 1000 > serial
            openssl req -new -key server.key -out expired.csr -subj /CN=\(serverName) -addext subjectAltName=\(san)
            openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt \
                -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
            chmod 644 *.key
            """
        let result = try TestSupport.run(URL(fileURLWithPath: "/bin/sh"), ["-c", script])
        guard result.status == 0 else { throw TestSupportError("openssl failed: \(result.stderr)") }
        return PKI(directory: directory)
    }

    static func broker(_ pki: PKI, requireCertificate: Bool = false, certificate: String = "server.crt") throws -> MosquittoBroker {
        try MosquittoBroker(extraConfig: """
            cafile \(pki.path("ca.crt"))
            certfile \(pki.path(certificate))
            keyfile \(pki.path("server.key"))
            require_certificate \(requireCertificate)
            """)
    }

    static func connect(port: Int, tls: MQTTTLSOptions) async -> Result<Void, MQTTError> {
        do {
            let client = try MosquittoClient(
                MQTTConnectOptions(host: "127.0.0.1", port: port, clientID: "tls-test", tls: tls, connectTimeout: .seconds(5)))
            do {
                try await client.connect()
            } catch {
                await client.disconnect()
                return .failure(error)
            }
            await client.disconnect()
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    @Test func verifiesTheServerByDefault() async throws {
        let pki = try Self.makePKI(serverName: "127.0.0.1")
        let broker = try Self.broker(pki)
        defer { broker.stop() }
        // Signed by the configured CA: accepted.
        #expect(try await Self.connect(port: broker.port, tls: MQTTTLSOptions(caFile: pki.path("ca.crt"))).get() == ())
        // Not signed by the configured CA, or only the system store: refused, with the TLS fix in the message.
        for caFile in [pki.path("other-ca.crt"), nil] {
            let result = await Self.connect(port: broker.port, tls: MQTTTLSOptions(caFile: caFile))
            guard case .failure(let error) = result, case .tlsFailed = error else {
                Issue.record("expected a TLS failure with CA \(caFile ?? "system"), got \(result)")
                continue
            }
            #expect(error.description.contains("[server.tls] ca_file"))
        }
    }

    @Test func hostNameCheckSkippedOnlyWhenAsked() async throws {
        let pki = try Self.makePKI(serverName: "mqtt.example.invalid")
        let broker = try Self.broker(pki)
        defer { broker.stop() }
        let strict = await Self.connect(port: broker.port, tls: MQTTTLSOptions(caFile: pki.path("ca.crt")))
        guard case .failure(.tlsFailed) = strict else {
            Issue.record("a certificate for another host name was accepted: \(strict)")
            return
        }
        let relaxed = await Self.connect(
            port: broker.port, tls: MQTTTLSOptions(caFile: pki.path("ca.crt"), insecureSkipHostnameCheck: true))
        #expect(throws: Never.self) { try relaxed.get() }
    }

    /// Each TLS failure says why, from a second handshake: libmosquitto alone only says "certificate verify failed".
    @Test func eachTLSFailureNamesItsCauseAndFix() async throws {
        let pki = try Self.makePKI(serverName: "127.0.0.1")
        let good = try Self.broker(pki)
        defer { good.stop() }
        let expired = try Self.broker(pki, certificate: "expired.crt")
        defer { expired.stop() }
        let plain = try MosquittoBroker()
        defer { plain.stop() }
        let other = try Self.makePKI(serverName: "mqtt.example.invalid")
        let wrongName = try Self.broker(other)
        defer { wrongName.stop() }
        let cases: [(String, Int, MQTTTLSOptions, String)] = [
            ("wrong CA", good.port, MQTTTLSOptions(caFile: pki.path("other-ca.crt")), "not signed by a trusted CA"),
            ("expired", expired.port, MQTTTLSOptions(caFile: pki.path("ca.crt")), "has expired"),
            ("wrong host name", wrongName.port, MQTTTLSOptions(caFile: other.path("ca.crt")), "is not for 127.0.0.1"),
            ("plain MQTT port", plain.port, MQTTTLSOptions(caFile: pki.path("ca.crt")), "probably speaks plain MQTT"),
        ]
        for (name, port, tls, expected) in cases {
            let result = await Self.connect(port: port, tls: tls)
            guard case .failure(let error) = result else {
                Issue.record("\(name): connected")
                continue
            }
            #expect(error.description.contains(expected), "\(name): \(error)")
        }
    }

    @Test func presentsTheClientCertificate() async throws {
        let pki = try Self.makePKI(serverName: "127.0.0.1")
        let broker = try Self.broker(pki, requireCertificate: true)
        defer { broker.stop() }
        let without = await Self.connect(port: broker.port, tls: MQTTTLSOptions(caFile: pki.path("ca.crt")))
        guard case .failure = without else {
            Issue.record("connected without the required client certificate")
            return
        }
        let with = await Self.connect(
            port: broker.port,
            tls: MQTTTLSOptions(caFile: pki.path("ca.crt"), certificateFile: pki.path("client.crt"), keyFile: pki.path("client.key")))
        #expect(throws: Never.self) { try with.get() }
    }

    @Test func missingFilesAreReportedBeforeConnecting() {
        #expect {
            _ = try MosquittoClient(
                MQTTConnectOptions(host: "127.0.0.1", port: 1, clientID: "x", tls: MQTTTLSOptions(caFile: "/nonexistent/ca.crt")))
        } throws: { error in
            guard let error = error as? MQTTError, case .library(let operation, _) = error else { return false }
            return operation.contains("ca_file")
        }
    }

    @Test func x509CredentialsConnectWithTheCertificate() async throws {
        let pki = try Self.makePKI(serverName: "127.0.0.1")
        let broker = try Self.broker(pki, requireCertificate: true)
        defer { broker.stop() }
        let server = ServerSettings(
            host: "127.0.0.1", port: broker.port,
            tls: TLSSettings(caFile: pki.path("ca.crt"), certFile: pki.path("client.crt"), keyFile: pki.path("client.key")))
        let stored = StoredCredentials(
            server: ServerEndpoint(server), deviceName: "device-1",
            credentials: .x509Certificate(certificate: "PEM", certificateFile: nil, keyFile: nil),
            issuedAt: UTCTimestamp(secondsSinceEpoch: 0))
        try await DeviceConnection.connectWithStoredCredentials(stored, server: server, connectTimeout: .seconds(5))

        // Without [server.tls], X509 credentials cannot be used: a configuration error, not a hang.
        let plain = ServerSettings(host: "127.0.0.1", port: broker.port)
        var plainStored = stored
        plainStored.server = ServerEndpoint(plain)
        await #expect {
            try await DeviceConnection.connectWithStoredCredentials(plainStored, server: plain)
        } throws: { error in
            (error as? AgentError)?.code == .invalidConfiguration
        }
    }
}

