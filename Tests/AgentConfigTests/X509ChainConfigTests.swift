import AgentConfig
import AgentCore
import AgentTestSupport
import Foundation
import Testing

/// `[provisioning] method = "x509-chain"` in the loader: its keys, the key file's mode and owner, and what may not
/// go with it. (The certificates themselves are checked by tb-agent with OpenSSL: Tests/EndToEndTests/X509ChainTests.)
@Suite struct X509ChainConfigTests {
    /// A folder with `chain.pem` and `device.key` (mode `keyMode`) and a configuration using them.
    func configuration(keyMode: mode_t = 0o600, provisioning: String? = nil, tls: String? = "ca_file = \"chain.pem\"")
        throws -> (text: String, path: String, directory: URL)
    {
        let directory = try TestSupport.makeTemporaryDirectory("x509-config")
        try "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".write(
            to: directory.appendingPathComponent("chain.pem"), atomically: true, encoding: .utf8)
        let key = directory.appendingPathComponent("device.key")
        try "not parsed by the loader\n".write(to: key, atomically: true, encoding: .utf8)
        chmod(key.path, keyMode)
        let text = """
            [server]
            host = "tb.example.com"
            port = 8883
            \(tls.map { "[server.tls]\n" + $0 } ?? "")

            [provisioning]
            \(provisioning ?? "method = \"x509-chain\"\nchain_file = \"chain.pem\"\nkey_file = \"device.key\"\ncn_regex = '(.*)\\.example\\.com'")
            """
        return (text, directory.appendingPathComponent("config.toml").path, directory)
    }

    func problems(_ c: (text: String, path: String, directory: URL)) -> [String] {
        do {
            _ = try ConfigurationLoader.parse(c.text, path: c.path)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func validChainSettingsFillTheModel() throws {
        let c = try self.configuration()
        let config = try ConfigurationLoader.parse(c.text, path: c.path)
        let chain = try #require(config.provisioning.x509Chain)
        #expect(config.provisioning.method == .x509Chain)
        #expect(chain.chainFile == c.directory.appendingPathComponent("chain.pem").path)
        #expect(chain.keyFile == c.directory.appendingPathComponent("device.key").path)
        #expect(chain.cnPattern.deviceName(in: "pi-7.example.com") == "pi-7")
    }

    @Test func aKeyOthersMayReadIsRefusedWithTheFix() throws {
        let c = try self.configuration(keyMode: 0o644)
        let found = self.problems(c)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.contains("provisioning.key_file") == true)
        #expect(found.first?.contains("chmod 600 \(c.directory.appendingPathComponent("device.key").path)") == true)
    }

    @Test func missingFilesAndKeysAreNamed() throws {
        let missing = self.problems(try self.configuration(provisioning: "method = \"x509-chain\"\nchain_file = \"nothing.pem\""))
        #expect(missing.contains { $0.contains("provisioning.chain_file") && $0.contains("cannot read") }, "\(missing)")
        #expect(missing.contains { $0.contains("provisioning.key_file") && $0.contains("missing") }, "\(missing)")
    }

    @Test func requestKeysDoNotGoWithTheChainMethodNorChainKeysWithoutIt() throws {
        let mixed = self.problems(try self.configuration(provisioning: """
            method = "x509-chain"
            chain_file = "chain.pem"
            key_file = "device.key"
            device_key = "KEY"
            """))
        #expect(mixed.count == 1 && mixed[0].contains("provisioning.device_key") && mixed[0].contains("sends no provision request"), "\(mixed)")
        let stray = self.problems(try self.configuration(provisioning: "device_key = \"K\"\ndevice_secret = \"S\"\nchain_file = \"chain.pem\""))
        #expect(stray.count == 1 && stray[0].contains("applies only to method = \"x509-chain\""), "\(stray)")
        let unknown = self.problems(try self.configuration(provisioning: "method = \"x509\""))
        #expect(unknown.count == 1 && unknown[0].contains("\"x509-chain\""), "\(unknown)")
    }

    @Test func theChainNeedsTLSAndNoOtherClientCertificate() throws {
        let plain = self.problems(try self.configuration(tls: nil))
        #expect(plain.count == 1 && plain[0].contains("server.tls") && plain[0].contains("connects over TLS"), "\(plain)")
        let both = self.problems(try self.configuration(tls: "cert_file = \"chain.pem\"\nkey_file = \"device.key\""))
        #expect(both.contains { $0.contains("conflict with method = \"x509-chain\"") }, "\(both)")
    }

    @Test func anUnsupportedRegexIsAConfigurationProblem() throws {
        let found = self.problems(try self.configuration(provisioning: """
            method = "x509-chain"
            chain_file = "chain.pem"
            key_file = "device.key"
            cn_regex = "a|b"
            """))
        #expect(found.count == 1 && found[0].contains("provisioning.cn_regex") && found[0].contains("alternatives"), "\(found)")
    }
}
