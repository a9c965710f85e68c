import AgentCommandLine
import AgentCore
import AgentMQTT
import AgentPlatform

/// `tb-agent claim`: asks ThingsBoard to let a person claim this device, the install-time path without RPC.
struct Claim: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim",
        abstract: "Ask ThingsBoard to let a person claim this device with its name and the [claiming] secret.",
        discussion: """
            Connects with the stored credentials, publishes the claim request (the [claiming] secret and the \
            window) on v1/devices/me/claim and waits for its acknowledgement. ThingsBoard answers nothing else: \
            it keeps the first request of a window (a repeat changes nothing) and refuses silently when the \
            device already has a customer, so this says what to do next, not whether the claim will work. The \
            secret is read from [claiming] secret or secret_file only, never from the command line. Exit \
            statuses: 0 acknowledged, 3 not provisioned for this server, 69 unreachable or refused, 75 timeout, \
            77 credentials rejected, 78 configuration (no [claiming]).
            """)

    static let duration = Option<String>(
        "duration", help: "The window to claim in, like 30m (10s to 30d; default: [claiming] duration, else 1h).")

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments + [Self.duration.spec] }

    var global: GlobalOptions
    var duration: Duration?

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
        if let text = values[Self.duration] {
            let value = try BoardCommand.parseDuration(text, option: "--duration")
            guard ClaimingSettings.durationRange.contains(value) else {
                throw ValidationError(
                    "--duration: '\(text)' is out of range; expected a duration from "
                        + "\(DurationText.format(ClaimingSettings.durationRange.lowerBound)) to "
                        + "\(DurationText.format(ClaimingSettings.durationRange.upperBound))")
            }
            self.duration = value
        }
    }

    func run() async throws {
        let logger = LinkCommand.logger(self.global)
        let config = try LinkCommand.loadConfiguration(self.global)
        guard let claiming = config.claiming else {
            CommandOutput.error(
                "tb-agent claim: \(self.global.config) has no [claiming] table; add it with secret_file = "
                    + "\"/etc/tb-agent/claim-secret\" (a file holding the secret a person types to claim the device, "
                    + "mode 0600) or secret = \"…\", and optionally duration = \"1h\"")
            throw ExitCode(ExitStatus.config)
        }
        let store = CredentialStore(directory: config.device.stateDir)
        let endpoint = ServerEndpoint(config.server)
        let lookup = try LinkCommand.run { () throws(AgentError) in try store.load(for: endpoint) }
        LinkCommand.warn(lookup.warnings)
        guard case .found(let stored, _, _) = lookup else {
            if case .none(let reason, _) = lookup {
                CommandOutput.error("tb-agent claim: not provisioned: \(reason); run `tb-agent provision` first")
            }
            throw ExitCode(LinkCommand.notProvisioned)
        }
        let agentRunning = StatusSocketServer.query(path: Run.statusSocketPath(config)) != nil
        if agentRunning {
            LinkCommand.warn([
                "the agent is running: ThingsBoard keeps one session per device, so this connection replaces the "
                    + "agent's for a moment and the agent reconnects; three short presses of the button send the "
                    + "request over the agent's own connection",
            ])
        }
        let request = ClaimRequest(claiming, duration: self.duration)
        // Beside a running agent the two sessions take turns: the agent, replaced, reconnects and may replace this
        // one before the PUBACK (ThingsBoard keeps one session per device). A connection lost that way is tried
        // again, twice at most, a second apart; the agent's back-off grows with each turn.
        var attempt = 1
        while true {
            do {
                try await DeviceConnection.sendClaimRequest(
                    request, stored: stored, server: config.server, connectTimeout: config.provisioning.timeout, logger: logger)
                break
            } catch where agentRunning && attempt < 3 && error.code == .brokerUnavailable {
                LinkCommand.warn(["the connection closed before the server acknowledged the claim request (the running agent took its session back); trying again"])
                attempt += 1
                try? await Task.sleep(for: .seconds(1))
            } catch {
                throw LinkCommand.fail(error)
            }
        }
        print(request.instructions(deviceName: stored.deviceName))
    }
}
