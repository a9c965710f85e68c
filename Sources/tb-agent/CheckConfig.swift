import AgentCommandLine
import AgentConfig
import AgentCore
import AgentPlatform

struct CheckConfig: AsyncCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the configuration file and list every problem.",
        discussion: """
            Exits 0 and prints one line when the file is valid; otherwise exits 78 (EX_CONFIG) with one line per \
            problem on standard error: FILE:LINE:COLUMN: key.path: what is wrong and the expected form. A valid file \
            that gives secrets away still exits 0, with a "warning:" line on standard error for each: plain MQTT to a \
            host that is not this machine, and a file holding a secret (the configuration itself with an inline \
            secret, the provision secret file, the client key) that other users may read or change. Under systemd \
            it is the unit's ExecCondition: exit 78 skips the start without spending the start limit.
            """)

    static var arguments: [ArgumentSpec] { GlobalOptions.arguments }

    var global: GlobalOptions

    init(_ values: ParsedValues) throws {
        self.global = try GlobalOptions(values)
    }

    func run() async throws {
        let config: AgentConfiguration
        do {
            config = try ConfigurationLoader.load(path: self.global.config)
        } catch {
            CommandOutput.error(error.description)
            throw ExitCode(ExitStatus.config)
        }
        for warning in ConfigurationAudit.warnings(config, file: self.global.config) {
            CommandOutput.error("warning: \(warning)")
        }
        if let chain = config.provisioning.x509Chain {
            // The chain's own problems (order, key, validity) and its CN against the board's name, when the name can
            // be derived here (a machine checking a board's file may not have its hardware).
            let name = try? HardwareIdentity.derive(config.device).name
            switch ChainProvisioning.check(chain, deviceName: name) {
            case .success(let checked):
                print(ChainProvisioning.describe(checked, chain) + (name == nil ? " (the device name could not be derived here: not compared)" : ", device name \(name ?? "")"))
            case .failure(let error):
                CommandOutput.error("\(self.global.config): [provisioning]: \(error.message)")
                throw ExitCode(ExitStatus.config)
            }
        }
        var summary = "\(config.server.host):\(config.server.port)"
        if config.server.tls != nil { summary += " (TLS)" }
        summary += ", \(config.sensors.count) sensor\(config.sensors.count == 1 ? "" : "s")"
        if let board = config.boardProfile { summary += ", board \(board.name)" }
        print("\(self.global.config): OK (\(summary))")
    }
}
