import AgentBoard
import AgentCommandLine
import AgentConfig
import AgentCore
import AgentGPIO
import AgentHost
import AgentMQTT
import AgentPlatform
import AgentService
import Logging
import ServiceLifecycle
import AgentTLS
import TBJSON
import UnixSignals

struct Run: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: provision when needed, then publish telemetry (the systemd service).",
        discussion: """
            SIGTERM or SIGINT flushes the spool, disconnects and exits 0; SIGHUP re-reads the configuration \
            (sensors and intervals; an invalid file is rejected and the running one stays in force). Under systemd \
            (Type=notify) it sends READY, STATUS and WATCHDOG notifications.
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    func run() async throws {
        ProcessHardening.boundHeap()
        let logger = LinkCommand.logger(self.global)
        let config = try LinkCommand.loadConfiguration(self.global)
        let identity: DerivedIdentity
        do {
            identity = try HardwareIdentity.derive(config.device)
        } catch {
            throw LinkCommand.fail(error)
        }
        let warnings = try LinkCommand.run { () throws(AgentError) in try StateDirectory.ensure(config.device.stateDir) }
        for warning in warnings { logger.warning("\(warning)") }
        // One agent per state directory, held until the run ends: a second one stops here, having changed nothing.
        let stateLock = try LinkCommand.run { () throws(AgentError) in
            try StateDirectoryLock.acquire(config.device.stateDir, holder: "tb-agent run")
        }
        defer { stateLock.release() }
        if let tls = config.server.tls, !tls.verifyHostname {
            logger.warning("[server.tls] verify_hostname = false: the server's host name is NOT checked against its certificate; anyone with a certificate from the same CA can impersonate it")
        }

        let endpoint = ServerEndpoint(config.server)
        let store = StoredCredentialsAdapter(
            store: CredentialStore(directory: config.device.stateDir), server: endpoint, deviceName: identity.name, logger: logger)
        let provisioner = try Self.provisioner(config, deviceName: identity.name, logger: logger)
        let board = try LinkCommand.run { () throws(AgentError) in
            try Self.board(config, configurationFile: self.global.config, logger: logger)
        }

        var options = AgentRuntime.Options()
        options.statusSocketPath = Self.statusSocketPath(config)
        options.whenStarted = { ProcessHardening.releaseStartupPages() }
        options.machine.backoffCap = config.server.maxBackoff
        options.clientAttributes = Self.clientAttributes(identity: identity, config: config)
        options.otaStateDirectory = config.device.stateDir
        options.agentVersion = AgentVersion.string
        let configPath = self.global.config
        let ports = AgentRuntime.Ports(
            links: MosquittoLinks(server: config.server, logger: logger), store: store, provisioner: provisioner,
            board: board, notifier: SystemdNotifier(environment: HostProcess.environment()),
            clockFloor: ClockFloorFile(stateDirectory: config.device.stateDir))
        let runtime = AgentRuntime(
            configuration: config, deviceName: identity.name, ports: ports,
            spoolDirectory: config.device.stateDir + "/spool", spoolSettings: config.spool, logger: logger,
            options: options,
            reload: {
                do throws(ConfigurationFileError) {
                    return .success(try ConfigurationLoader.load(path: configPath))
                } catch {
                    return .failure(AgentError(.invalidConfiguration, error.description))
                }
            })
        logger.info("starting", metadata: ["device": "\(identity.name)", "server": "\(endpoint)", "version": "\(AgentVersion.string)"])

        var group = ServiceGroupConfiguration(services: [runtime], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = Swift.Duration.seconds(8)  // systemd's TimeoutStopSec is 15 s
        do {
            try await ServiceGroup(configuration: group).run()
        } catch let error as AgentError {
            throw LinkCommand.fail(error)
        }
    }

    /// The provisioning session `run` uses: the configured key, secret, credentials type and, for X.509, the
    /// certificate read now (a missing file is a configuration error at start, not a failure later).
    static func provisioner(_ config: AgentConfiguration, deviceName: String, logger: Logger) throws -> any Provisioning {
        if let chain = config.provisioning.x509Chain {
            // Checked now: a chain that cannot connect, or whose CN names another device, stops the start here.
            let checked = try LinkCommand.run { () throws(AgentError) in try ChainProvisioning.check(chain, deviceName: deviceName).get() }
            logger.info("X.509 chain provisioning: no provision request; ThingsBoard creates the device from the certificate's CN",
                        metadata: ["chain": "\(chain.chainFile)", "cn": "\(checked.summary.commonName)", "validUntil": "\(checked.summary.notAfter)"])
            return ChainProvisioner(settings: chain, deviceName: deviceName)
        }
        let certificateFile = config.provisioning.certFile ?? config.server.tls?.certFile
        var certificatePEM: String? = nil
        if config.provisioning.credentialsType == .x509Certificate, let certificateFile {
            switch POSIXFile.read(certificateFile) {
            case .success(let bytes): certificatePEM = String(decoding: bytes, as: UTF8.self)
            case .failure(let error):
                CommandOutput.error("tb-agent run: cannot read the certificate \(certificateFile) ([provisioning] cert_file): \(error)")
                throw ExitCode(ExitStatus.config)
            }
        }
        let request = ProvisionRequest(deviceName: deviceName, settings: config.provisioning, certificatePEM: certificatePEM)
        try LinkCommand.run { () throws(AgentError) in try request.validate() }
        return ConfiguredProvisioner(
            client: ProvisioningClient(server: config.server, timeout: config.provisioning.timeout, logger: logger),
            request: request, certificateFile: certificateFile, keyFile: config.server.tls?.keyFile)
    }

    static func statusSocketPath(_ config: AgentConfiguration) -> String { config.device.stateDir + "/agent.sock" }

    static func clientAttributes(identity: DerivedIdentity, config: AgentConfiguration) -> [(String, JSONValue)] {
        var out: [(String, JSONValue)] = [
            ("agentVersion", .string(AgentVersion.string)),
            ("deviceName", .string(identity.name)),
            ("kernel", .string(HostFacts.kernel)),
            ("libmosquittoVersion", .string(MosquittoClient.libraryVersion)),
            ("ipAddresses", .array(HostFacts.ipAddresses.map { .string($0) })),
        ]
        if let model = identity.facts.model { out.append(("boardModel", .string(model))) }
        if let board = config.device.board { out.append(("boardProfile", .string(board))) }
        if let serial = identity.facts.serial { out.append(("serial", .string(serial))) }
        if let mac = identity.facts.mac { out.append(("mac", .string(mac))) }
        out.append(("libgpiodVersion", .string(LibgpiodBackend.libraryVersion)))
        return out
    }

    /// The board `run` drives, or nil when the configuration has no sensor, button or LED.
    static func board(_ config: AgentConfiguration, configurationFile: String, logger: Logger) throws(AgentError)
        -> (any BoardIO)?
    {
        if config.sensors.isEmpty && config.button == nil && config.led == nil { return nil }
        let resolved = BoardSetup.resolvingPaths(config, configurationFile: configurationFile)
        return try BoardRuntime(resolved, gpio: GPIOBackends.make(resolved.gpio), logger: logger)
    }
}
