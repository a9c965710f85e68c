import AgentCommandLine
import AgentConfig
import AgentCore
import AgentHost
import AgentMQTT
import AgentPlatform
import Logging

struct Provision: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Turn the provision key and secret into device credentials, once, and store them.",
        discussion: """
            Derives the device name from the hardware, asks the ThingsBoard server in [server] for credentials \
            (MQTT user name "provision", topics /provision/request and /provision/response), and stores them in \
            [device] state_dir/credentials.json (mode 0600). When credentials for this server are stored already, \
            says so and exits 0 without asking the server again; --force asks again and replaces them only if the \
            server answers SUCCESS. Exit statuses: 0 done, 69 refused or unreachable, 74 storage, 75 timeout, \
            77 credentials rejected (--verify), 78 configuration.
            """)

    static let force = Flag("force", help: "Ask the server again even if credentials are stored; they are replaced only on SUCCESS.")
    static let verify = Flag("verify", help: "After storing, connect once with the new credentials and report the result.")

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments + [Self.force.spec, Self.verify.spec] }

    var global: GlobalOptions
    var force: Bool
    var verify: Bool

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        self.force = values.isSet(Self.force)
        self.verify = values.isSet(Self.verify)
    }

    func run() async throws {
        let logger = LinkCommand.logger(self.global)
        let config = try LinkCommand.loadConfiguration(self.global)
        let name = try LinkCommand.deviceName(config)
        let store = CredentialStore(directory: config.device.stateDir)
        let endpoint = ServerEndpoint(config.server)

        let lookup = try LinkCommand.run { () throws(AgentError) in try store.load(for: endpoint) }
        LinkCommand.warn(lookup.warnings)
        switch lookup {
        case .found(let stored, _, _) where !self.force:
            print("already provisioned as \(stored)")
            if stored.deviceName != name {
                CommandOutput.error(
                    "note: the hardware now gives the name \(name); run `tb-agent provision --force` to provision that name")
            }
            return
        case .found(let stored, _, _):
            logger.notice("Provisioning again (--force); the stored credentials are replaced only on SUCCESS", metadata: ["stored": "\(stored)"])
        case .none(let reason, _):
            logger.info("Not provisioned yet", metadata: ["reason": "\(reason)"])
        }

        // Before the server creates anything: a state directory that cannot be used, or a running agent on it,
        // stops here (the server never hands the same credentials out again).
        let stateLock = try LinkCommand.run { () throws(AgentError) in
            try StateDirectory.ensure(config.device.stateDir)
            return try StateDirectoryLock.acquire(config.device.stateDir, holder: "tb-agent provision")
        }
        defer { stateLock.release() }

        let credentials: DeviceCredentials
        if let chain = config.provisioning.x509Chain {
            // No provision request: the chain is the credentials; ThingsBoard creates the device when it connects.
            let checked = try LinkCommand.run { () throws(AgentError) in try ChainProvisioning.check(chain, deviceName: name).get() }
            print(ChainProvisioning.describe(checked, chain))
            credentials = checked.credentials
        } else {
            credentials = try await self.request(config, name: name, logger: logger)
        }
        let record = StoredCredentials(
            server: endpoint, deviceName: name, credentials: credentials,
            issuedAt: UTCTimestamp(secondsSinceEpoch: SystemClock().wallMilliseconds() / 1000))
        do {
            try store.save(record)
        } catch {
            if config.provisioning.x509Chain != nil { throw LinkCommand.fail(error) }
            // ThingsBoard never hands these credentials out again: say what that means.
            throw LinkCommand.fail(
                AgentError(
                    error.code,
                    "\(error.message). The server has created device \(name) and issued credentials that could not be kept: after fixing the storage, delete the device on the server (or reset its credentials there) and run `tb-agent provision` again",
                    cause: error.cause))
        }
        print("provisioned as \(record); stored in \(store.currentPath)")

        if self.verify {
            do {
                try await DeviceConnection.connectWithStoredCredentials(
                    record, server: config.server, connectTimeout: config.provisioning.timeout, logger: logger)
                print("connected to \(endpoint) with the new credentials")
            } catch {
                throw LinkCommand.fail(error)
            }
        }
    }

    /// A provision request with the device profile's key and secret; the server's credentials.
    func request(_ config: AgentConfiguration, name: String, logger: Logger) async throws -> DeviceCredentials {
        var certificatePEM: String? = nil
        let certificateFile = config.provisioning.certFile ?? config.server.tls?.certFile
        if config.provisioning.credentialsType == .x509Certificate, let certificateFile {
            do {
                certificatePEM = String(decoding: try POSIXFile.read(certificateFile).get(), as: UTF8.self)
            } catch {
                CommandOutput.error(
                    "tb-agent provision: cannot read the certificate \(certificateFile) ([provisioning] cert_file): \(error)")
                throw ExitCode(ExitStatus.config)
            }
        }
        let request = ProvisionRequest(deviceName: name, settings: config.provisioning, certificatePEM: certificatePEM)
        try LinkCommand.run { () throws(AgentError) in try request.validate() }

        let client = ProvisioningClient(server: config.server, timeout: config.provisioning.timeout, logger: logger)
        do {
            return try await client.provision(
                request, certificateFile: certificateFile, keyFile: config.server.tls?.keyFile)
        } catch {
            throw LinkCommand.fail(error.agentError)
        }
    }
}

struct ConnectTest: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect-test",
        abstract: "Connect once with the stored credentials and report whether the server accepts them.",
        discussion: """
            Exit statuses: 0 accepted, 3 not provisioned for this server, 69 unreachable or refused, 75 timeout, \
            77 credentials rejected (CONNACK 5: revoked or unknown; CONNACK 2: unknown client id), 78 configuration.
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    func run() async throws {
        let logger = LinkCommand.logger(self.global)
        let config = try LinkCommand.loadConfiguration(self.global)
        let store = CredentialStore(directory: config.device.stateDir)
        let endpoint = ServerEndpoint(config.server)
        let lookup = try LinkCommand.run { () throws(AgentError) in try store.load(for: endpoint) }
        LinkCommand.warn(lookup.warnings)
        guard case .found(let stored, _, _) = lookup else {
            if case .none(let reason, _) = lookup { CommandOutput.error("tb-agent connect-test: not provisioned: \(reason)") }
            throw ExitCode(LinkCommand.notProvisioned)
        }
        do {
            try await DeviceConnection.connectWithStoredCredentials(
                stored, server: config.server, connectTimeout: config.provisioning.timeout, logger: logger)
        } catch {
            throw LinkCommand.fail(error)
        }
        print("connected to \(endpoint) as \(stored.deviceName) (\(stored.credentials.type.rawValue))")
    }
}

/// What the provisioning and credential commands share.
enum LinkCommand {
    /// `status` and `connect-test` exit 3 when nothing is stored for the configured server.
    static let notProvisioned: Int32 = 3

    /// Logs go to standard error at `--log-level`; results go to standard output.
    static func logger(_ global: GlobalOptions) -> Logger {
        var logger = Logger(label: "tb-agent", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = global.logLevel
        return logger
    }

    static func loadConfiguration(_ global: GlobalOptions) throws -> AgentConfiguration {
        do {
            return try ConfigurationLoader.load(path: global.config)
        } catch {
            CommandOutput.error(error.description)
            throw ExitCode(ExitStatus.config)
        }
    }

    static func deviceName(_ config: AgentConfiguration) throws -> String {
        do {
            return try HardwareIdentity.derive(config.device).name
        } catch {
            throw Self.fail(error)
        }
    }

    static func warn(_ warnings: [String]) {
        for warning in warnings { CommandOutput.error("warning: \(warning)") }
    }

    /// Runs `body`, turning an `AgentError` into its message on standard error and an exit status.
    static func run<T>(_ body: () throws(AgentError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw Self.fail(error)
        }
    }

    /// Prints the error (it never contains a secret) and returns the exit to throw.
    static func fail(_ error: AgentError) -> ExitCode {
        CommandOutput.error("tb-agent: \(error.description)")
        return ExitCode(Self.exitStatus(error.code))
    }

    static func exitStatus(_ code: AgentError.Code) -> Int32 {
        switch code {
        case .invalidConfiguration, .identityUnavailable: return ExitStatus.config
        case .storageFailure: return ExitStatus.ioError
        case .timeout: return ExitStatus.tempFail
        case .credentialsRejected: return ExitStatus.noPermission
        case .usage: return ExitStatus.usage
        default: return ExitStatus.unavailable
        }
    }
}
