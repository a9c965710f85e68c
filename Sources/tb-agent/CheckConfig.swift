import AgentConfig
import AgentCore
import ArgumentParser

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check the configuration file and list every problem.",
        discussion: """
            Exits 0 and prints one line when the file is valid; otherwise exits 78 (EX_CONFIG) with one line per \
            problem on standard error: FILE:LINE:COLUMN: key.path: what is wrong and the expected form.
            """)

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let config: AgentConfiguration
        do {
            config = try ConfigurationLoader.load(path: self.global.config)
        } catch {
            CommandOutput.error(error.description)
            throw ExitCode(ExitStatus.config)
        }
        var summary = "\(config.server.host):\(config.server.port)"
        if config.server.tls != nil { summary += " (TLS)" }
        summary += ", \(config.sensors.count) sensor\(config.sensors.count == 1 ? "" : "s")"
        if let board = config.boardProfile { summary += ", board \(board.name)" }
        print("\(self.global.config): OK (\(summary))")
    }
}
