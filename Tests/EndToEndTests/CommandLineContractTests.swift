import AgentTestSupport
import Foundation
import Testing

/// The command line is a contract with people's scripts and the systemd unit: every command's help (names,
/// options, defaults, texts) stays as `Tests/Fixtures/help` records it, and errors keep their words and exit
/// statuses. The fixtures are what the ArgumentParser-based binary printed before tb-agent got its own parser.
@Suite struct CommandLineContractTests {
    static let commands: [[String]] = [
        [], ["run"], ["doctor"], ["identity"], ["check-config"], ["setup"], ["provision"], ["status"], ["claim"], ["apply-update"], ["reset"],
        ["connect-test"], ["gpio"], ["gpio", "read"], ["gpio", "watch"], ["gpio", "set"], ["gpio", "list"], ["sensors"],
        ["led"], ["button"], ["bench-publish"], ["toml-decode"],
    ]

    /// Help is laid out for 80 columns whatever the terminal (COLUMNS decides, as it did with ArgumentParser).
    static let environment = ["COLUMNS": "80"]

    static func fixture(_ command: [String]) throws -> String {
        let name = (["tb-agent"] + command).joined(separator: "_")
        let url = TestSupport.packageRoot.appendingPathComponent("Tests/Fixtures/help/\(name).txt")
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test("every command's --help is unchanged", arguments: Self.commands)
    func helpIsUnchanged(_ command: [String]) throws {
        let result = try TestSupport.tbAgent(command + ["--help"], environment: Self.environment)
        #expect(result.status == 0)
        #expect(result.stdout == (try Self.fixture(command)))
        #expect(result.stderr.isEmpty)
    }

    @Test func helpSubcommandAndShortHelpPrintTheSameHelp() throws {
        let expected = try Self.fixture(["gpio", "read"])
        #expect(try TestSupport.tbAgent(["help", "gpio", "read"], environment: Self.environment).stdout == expected)
        #expect(try TestSupport.tbAgent(["gpio", "read", "-h"], environment: Self.environment).stdout == expected)
        let root = try TestSupport.tbAgent([], environment: Self.environment)
        #expect(root.status == 0)
        #expect(root.stdout == (try Self.fixture([])))
    }

    @Test func hiddenCommandsAreNotListedButRun() throws {
        let root = try Self.fixture([])
        #expect(!root.contains("bench-publish") && !root.contains("toml-decode"))
        let decoded = try TestSupport.tbAgent(["toml-decode"], stdin: "a = 1\n")
        #expect(decoded.status == 0)
        #expect(decoded.stdout.contains("\"a\""))
    }

    @Test func versionPrintsTheVersionThenTheGPIOLibrary() throws {
        let result = try TestSupport.tbAgent(["--version"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.split(separator: ".").count == 3)
        #expect(lines.last?.hasPrefix("libgpiod ") == true)
    }

    @Test func usageErrorsExit64WithTheMessageAndTheUsage() throws {
        let unknown = try TestSupport.tbAgent(["run", "--confg", "x"])
        #expect(unknown.status == 64)
        #expect(
            unknown.stderr == """
                Error: Unknown option '--confg'. Did you mean '--config'?
                Usage: tb-agent run [--config <config>] [--log-level <log-level>]
                  See 'tb-agent run --help' for more information.

                """)
        let missing = try TestSupport.tbAgent(["run", "--config"])
        #expect(missing.status == 64)
        #expect(missing.stderr.hasPrefix("Error: Missing value for '--config <config>'\nHelp:  --config <config>  The configuration file.\n"))
        let invalid = try TestSupport.tbAgent(["bench-publish", "--readings", "abc"])
        #expect(invalid.status == 64)
        #expect(invalid.stderr.hasPrefix("Error: The value 'abc' is invalid for '--readings <readings>'\n"))
        let level = try TestSupport.tbAgent(["run", "--log-level", "loud"])
        #expect(level.status == 64)
        #expect(level.stderr.contains("Please provide one of the following:\n  - trace\n"))
        let argument = try TestSupport.tbAgent(["gpio", "set", "GPIO1"])
        #expect(argument.status == 64)
        #expect(argument.stderr.hasPrefix("Error: Missing expected argument '<value>'\nHelp:  <value>  0 or 1.\n"))
        let subcommand = try TestSupport.tbAgent(["gpio", "raed"])
        #expect(subcommand.status == 64)
        #expect(subcommand.stderr.hasPrefix("Error: Unexpected argument 'raed'. Did you mean 'read'?\nUsage: tb-agent gpio <subcommand>\n"))
        let validation = try TestSupport.tbAgent(["gpio", "read", "--backend", "simulated", "GPIO1"])
        #expect(validation.status == 64)
        #expect(validation.stderr.hasPrefix("Error: --backend simulated needs --simulated-dir DIR\nUsage: tb-agent gpio read "))
    }

    @Test func theSystemdUnitsCommandLinesParse() throws {
        // ExecCondition and ExecStart of board/tb-agent.service, with a configuration that does not exist: 78
        // (EX_CONFIG) from the command, not 64 from the parser.
        let config = "/nonexistent/tb-agent/config.toml"
        for command in [["check-config", "--config", config], ["run", "--config", config], ["run", "--config=\(config)", "--log-level", "DEBUG"]] {
            let result = try TestSupport.tbAgent(command)
            #expect(result.status == 78, "\(command): \(result.stderr)")
        }
    }
}
