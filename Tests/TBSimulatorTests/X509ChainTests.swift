import AgentTestSupport
import Foundation
import TBJSON
@testable import TBSimulator
import Testing

/// tb-sim's copy of ThingsBoard's `validateOrCreateDeviceX509Certificate`, on real certificates (ChainPKI), and chain
/// profiles through the control interface. The TLS listener itself is exercised end to end (EndToEndTests, and the
/// conformance tests with ThingsBoard's Python SDK).
@Suite struct X509ChainRegistryTests {
    static let pki = Result { try ChainPKI(leafCN: "board-7.devices.example.com", otherCN: "board-8.devices.example.com") }

    func chain(_ file: String) throws -> [X509Certificate] {
        let pki = try Self.pki.get()
        return try X509Certificate.parseAll(pem: try String(contentsOfFile: pki.path(file), encoding: .utf8), what: file)
    }

    func registry(ca: String = "intermediate.crt", allowCreate: Bool = true, devices: [SimDevice] = []) throws -> DeviceRegistry {
        let pki = try Self.pki.get()
        let settings = X509ChainSettings(caCertificate: try String(contentsOfFile: pki.path(ca), encoding: .utf8),
                                         cnRegex: #"(.*)\.devices\.example\.com"#, allowCreate: allowCreate)
        return DeviceRegistry(profiles: [DeviceProfile(name: "chain", strategy: .x509CertificateChain, x509: settings),
                                         DeviceProfile(name: "other", strategy: .disabled)], devices: devices)
    }

    @Test func theIntermediateAsCACreatesTheDeviceFromTheCNThenFindsIt() throws {
        var registry = try self.registry()
        let created = registry.validateOrCreate(chain: try self.chain("chain.pem"), now: 1)
        #expect(created.kind == .created && created.device == "board-7" && created.profile == "chain")
        let device = try #require(registry.device(named: "board-7"))
        #expect(device.credentials == .x509Certificate(try String(contentsOfFile: try Self.pki.get().path("leaf.crt"), encoding: .utf8)))
        #expect(device.provisionState == "provisioned")
        #expect(registry.validateOrCreate(chain: try self.chain("chain.pem"), now: 2).kind == .existing)
        #expect(registry.validateOrCreate(chain: try self.chain("other-chain.pem"), now: 3).device == "board-8")
        #expect(registry.devices.count == 2)
    }

    @Test func theRootAsCAMustBeInThePresentedChain() throws {
        var registry = try self.registry(ca: "root.crt")
        #expect(registry.validateOrCreate(chain: try self.chain("chain.pem"), now: 1).kind == .refused)
        #expect(registry.validateOrCreate(chain: try self.chain("full-chain.pem"), now: 1).kind == .created)
    }

    @Test func refusals() throws {
        var registry = try self.registry()
        let stranger = registry.validateOrCreate(chain: try self.chain("stranger-chain.pem"), now: 1)
        #expect(stranger.kind == .refused && stranger.reason.contains("no certificate of the chain"))
        // A stranger's leaf followed by the profile's CA: the CA is found, but the leaf does not verify to it.
        let forged = try self.chain("stranger.crt") + self.chain("intermediate.crt")
        #expect(registry.validateOrCreate(chain: forged, now: 1).reason.contains("does not verify"))
        var closed = try self.registry(allowCreate: false)
        #expect(closed.validateOrCreate(chain: try self.chain("chain.pem"), now: 1).reason.contains("does not allow creating"))
        var taken = try self.registry(devices: [SimDevice(name: "board-7", profile: "other", credentials: nil, createdTime: 0)])
        #expect(taken.validateOrCreate(chain: try self.chain("chain.pem"), now: 1).reason.contains("exists in profile \"other\""))
        #expect(registry.devices.isEmpty && closed.devices.isEmpty)
    }

    @Test func aRenewedCertificateReplacesTheDevicesCredentialsWithoutCreateRights() throws {
        let old = try String(contentsOfFile: try Self.pki.get().path("expired-leaf.crt"), encoding: .utf8)
        var registry = try self.registry(allowCreate: false, devices: [
            SimDevice(name: "board-7", profile: "chain", credentials: .x509Certificate(old), createdTime: 0),
        ])
        let outcome = registry.validateOrCreate(chain: try self.chain("chain.pem"), now: 1)
        #expect(outcome.kind == .updated)
        #expect(registry.device(named: "board-7")?.credentials != .x509Certificate(old))
    }

    @Test func chainProfilesThroughTheControlInterface() async throws {
        let ca = try String(contentsOfFile: try Self.pki.get().path("intermediate.crt"), encoding: .utf8)
        try await Harness.with { sim in
            let missing = try Harness.control(sim, "POST", "/profiles", #"{"name":"c","strategy":"X509_CERTIFICATE_CHAIN"}"#)
            #expect(missing.0 == 400 && (missing.1["error"]?.stringValue ?? "").contains("caCertificate"))
            let body = JSONValue.object([
                ("name", .string("c")), ("strategy", .string("X509_CERTIFICATE_CHAIN")),
                ("x509", .object([("caCertificate", .string(ca)), ("cnRegex", .string("(.*)")), ("allowCreate", .bool(true))])),
            ]).serialized
            let (status, saved) = try Harness.control(sim, "POST", "/profiles", body)
            #expect(status == 201)
            #expect(saved["x509"]?["caCertificate"] == .string(ca) && saved["x509"]?["allowCreate"] == .bool(true))
            let badRegex = try Harness.control(sim, "POST", "/profiles",
                #"{"name":"d","strategy":"X509_CERTIFICATE_CHAIN","x509":{"caCertificate":"x","cnRegex":"(.*)"}}"#)
            #expect(badRegex.0 == 400 && (badRegex.1["error"]?.stringValue ?? "").contains("no PEM certificate"))
        }
    }
}
