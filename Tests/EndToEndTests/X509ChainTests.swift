import AgentTestSupport
import Foundation
import TBJSON
import Testing

/// Issue 12, X.509 certificate chain provisioning: tb-agent with `[provisioning] method = "x509-chain"` against
/// tb-sim's TLS listener, which creates the device from the chain as ThingsBoard does.
@Suite("End to end: X.509 chain provisioning")
struct X509ChainTests {
    static let cnRegex = #"(.*)\.devices\.example\.com"#
    static let leafCN = simulatedDeviceName + ".devices.example.com"

    static func pki() throws -> ChainPKI { try ChainPKI(leafCN: Self.leafCN, otherCN: "other-device.devices.example.com") }

    static func sim(_ pki: ChainPKI, ca: String = "intermediate.crt", allowCreate: Bool = true) async throws -> E2ESim {
        try await E2ESim.start(config: pki.profile(ca: ca, cnRegex: Self.cnRegex, allowCreate: allowCreate), arguments: pki.simArguments)
    }

    /// A board whose `[provisioning]` presents `chain` with `key` to the sim's TLS port.
    static func board(_ pki: ChainPKI, port: Int, chain: String = "chain.pem", key: String? = nil,
                      cnRegex: String = X509ChainTests.cnRegex) throws -> BoardCopy {
        let board = try BoardCopy()
        try board.writeConfig(
            port: port, interval: "1s", sensors: BoardCopy.sensors(["cpu_temperature"]),
            provisioning: """
                method = "x509-chain"
                chain_file = "\(pki.path(chain))"
                key_file = "\(key ?? pki.path("leaf.key"))"
                cn_regex = '\(cnRegex)'
                """,
            serverTLS: "ca_file = \"\(pki.path("root.crt"))\"")
        return board
    }

    func tbAgent(_ arguments: [String]) async throws -> CommandResult {
        try await offPool { try TestSupport.tbAgent(arguments, timeout: .seconds(30)) }
    }

    @Test("the agent connects with its chain: tb-sim creates the device named by the CN and records its telemetry; a second connect finds it")
    func agentEndToEnd() async throws {
        let pki = try Self.pki()
        let sim = try await Self.sim(pki)
        var agent: AgentProcess?
        try await withProcesses({ agent.map { [$0] } ?? [] }, sim) {
            let port = try #require(sim.mqttsPort)
            let board = try Self.board(pki, port: port)
            let check = try await self.tbAgent(["check-config", "--config", board.configURL.path])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout.contains("CN \"\(Self.leafCN)\""))

            agent = try await AgentProcess.start(board)
            let arrived = await eventually(.seconds(20)) { !sim.readings(of: "cpu_temperature").isEmpty }
            #expect(arrived, "no telemetry for \(simulatedDeviceName): \(agent?.log ?? "")")
            let device = try #require(try sim.device())
            #expect(device["profile"]?.stringValue == "chain-boards")
            #expect(device["credentialsType"]?.stringValue == "X509_CERTIFICATE")
            #expect(sim.events("provision_request").isEmpty, "x509-chain sends no provision request")
            let created = sim.events("x509_chain").filter { $0["outcome"]?.stringValue == "created" }
            #expect(created.count == 1)
            #expect(created.first?["device"]?.stringValue == simulatedDeviceName)
            _ = await agent?.terminate()

            // Stored credentials name the chain; a second connection finds the device the first one created.
            let again = try await self.tbAgent(["connect-test", "--config", board.configURL.path])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(sim.events("x509_chain").last?["outcome"]?.stringValue == "existing")
            let devices = try await sim.control("GET", "/devices").body.arrayValue ?? []
            #expect(devices.count == 1)
        }
    }

    @Test("a profile whose CA is the root: ThingsBoard finds the profile only by a certificate the board presents, so the chain must include the root; then provision --verify connects")
    func rootCAProfile() async throws {
        let pki = try Self.pki()
        let sim = try await Self.sim(pki, ca: "root.crt")
        try await withProcesses({ [] }, sim) {
            let short = try Self.board(pki, port: try #require(sim.mqttsPort))
            let refused = try await self.tbAgent(["provision", "--verify", "--config", short.configURL.path])
            #expect(refused.status == 77, "\(refused.stderr)")
            #expect(sim.events("x509_chain").last?["outcome"]?.stringValue == "refused")

            let board = try Self.board(pki, port: try #require(sim.mqttsPort), chain: "full-chain.pem")
            let result = try await self.tbAgent(["provision", "--verify", "--config", board.configURL.path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("connected to"))
            #expect(try sim.device()?["profile"]?.stringValue == "chain-boards")
        }
    }

    @Test("a chain from a CA no profile holds, or a profile that may not create devices: the CONNECT is refused and no device is created")
    func refusals() async throws {
        let pki = try Self.pki()
        let sim = try await Self.sim(pki)
        try await withProcesses({ [] }, sim) {
            let port = try #require(sim.mqttsPort)
            let stranger = try Self.board(pki, port: port, chain: "stranger-chain.pem", key: pki.path("stranger.key"))
            let result = try await self.tbAgent(["provision", "--verify", "--config", stranger.configURL.path])
            #expect(result.status == 77, "\(result.stdout) \(result.stderr)")
            #expect(result.stderr.contains("did not accept the certificate"), "\(result.stderr)")
            #expect(sim.events("x509_chain").last?["outcome"]?.stringValue == "refused")
            #expect(try await sim.control("GET", "/devices").body.arrayValue?.count == 0)
        }
        let closed = try await Self.sim(pki, allowCreate: false)
        try await withProcesses({ [] }, closed) {
            let board = try Self.board(pki, port: try #require(closed.mqttsPort))
            let result = try await self.tbAgent(["provision", "--verify", "--config", board.configURL.path])
            #expect(result.status == 77, "\(result.stdout) \(result.stderr)")
            let refused = try #require(closed.events("x509_chain").last)
            #expect(refused["outcome"]?.stringValue == "refused")
            #expect(refused["reason"]?.stringValue?.contains("does not allow creating devices") == true)
            #expect(try await closed.control("GET", "/devices").body.arrayValue?.count == 0)
        }
    }

    @Test("check-config, before any connection: a key others may read, a key of another certificate, a CN that names another device, an expired certificate, a missing file")
    func configurationErrors() async throws {
        let pki = try Self.pki()
        func check(_ board: BoardCopy) async throws -> CommandResult {
            try await self.tbAgent(["check-config", "--config", board.configURL.path])
        }
        // Mode 0644.
        let open = try Self.board(pki, port: 8883, key: "open.key")
        try FileManager.default.copyItem(atPath: pki.path("leaf.key"), toPath: open.url("open.key").path)
        chmod(open.url("open.key").path, 0o644)
        let openResult = try await check(open)
        #expect(openResult.status == 78)
        #expect(openResult.stderr.contains("chmod 600 \(open.url("open.key").path)"), "\(openResult.stderr)")

        let wrongKey = try await check(try Self.board(pki, port: 8883, key: pki.path("wrong.key")))
        #expect(wrongKey.status == 78)
        #expect(wrongKey.stderr.contains("is not the private key of the device's certificate"), "\(wrongKey.stderr)")
        #expect(!wrongKey.stderr.contains("PRIVATE KEY"), "the key's contents are never printed")

        let other = try await check(try Self.board(pki, port: 8883, chain: "other-chain.pem", key: pki.path("other-leaf.key")))
        #expect(other.status == 78)
        #expect(other.stderr.contains("gives the device name \"other-device\""), "\(other.stderr)")
        #expect(other.stderr.contains("this board's name is \"\(simulatedDeviceName)\""))

        let unmatched = try await check(try Self.board(pki, port: 8883, cnRegex: #"(.*)\.factory\.example\.com"#))
        #expect(unmatched.status == 78)
        #expect(unmatched.stderr.contains("does not match [provisioning] cn_regex"), "\(unmatched.stderr)")

        let expired = try await check(try Self.board(pki, port: 8883, chain: "expired-chain.pem"))
        #expect(expired.status == 78)
        #expect(expired.stderr.contains("expired on"), "\(expired.stderr)")

        let missing = try await check(try Self.board(pki, port: 8883, chain: "no-such-chain.pem"))
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("chain_file"), "\(missing.stderr)")
    }
}
