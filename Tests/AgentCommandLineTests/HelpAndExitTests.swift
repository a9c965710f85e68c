import AgentCommandLine
import Testing

@Suite struct HelpFormatterTests {
    @Test func helpListsArgumentsOptionsDefaultsAndValues() {
        let watch = Sample.gpio.configuration.subcommands[0]
        let help = HelpFormatter.help(for: [Sample.root, Sample.gpio, watch], version: "1", width: 80)
        // Twelve usage entries (an inversion counts twice) are still listed in full.
        #expect(
            help.hasPrefix(
                "OVERVIEW: The watch command.\n\nUSAGE: tool gpio watch [--config <config>] [--count <count>] [--ratio <ratio>] "
                    + "[--level <level>] [--tag <tag> ...] [--verbose] [--kernel] [--no-kernel] [--tls] [--no-tls] <line> [<value>]\n\n"))
        #expect(help.contains("ARGUMENTS:\n  <line>                  The line.\n"))
        #expect(help.contains("  -c, --config <config>   The configuration file. (default: /etc/x.toml)\n"))
        #expect(help.contains("  --level <level>         How loud. (values: low, medium, high; default: medium)\n"))
        #expect(help.contains("  --kernel/--no-kernel    Let the kernel do it. (default: --kernel)\n"))
        #expect(help.contains("  --tls/--no-tls          Use TLS.\n"))
        #expect(help.contains("  --version               Show the version.\n  -h, --help              Show help information.\n"))
    }

    @Test func helpOfAGroupListsVisibleSubcommandsOnly() {
        let root = HelpFormatter.help(for: [Sample.root], version: "1", width: 80)
        #expect(root.contains("SUBCOMMANDS:\n  run                     The run command.\n  gpio                    Work with lines.\n\n"))
        #expect(!root.contains("secret-thing"))
        #expect(root.hasSuffix("  See 'tool help <subcommand>' for detailed help."))
        let gpio = HelpFormatter.help(for: [Sample.root, Sample.gpio], version: nil, width: 80)
        #expect(gpio.hasPrefix("OVERVIEW: Work with lines.\n\nLines are named as the kernel names them.\n\nUSAGE: tool gpio <subcommand>\n"))
        #expect(gpio.hasSuffix("  See 'tool help gpio <subcommand>' for detailed help."))
        #expect(!gpio.contains("--version"))
    }

    @Test func longTextWrapsUnderItsColumnAndLongLabelsGetTheirOwnLine() {
        let long = Option<String>("a-rather-long-option-name", help: String(repeating: "word ", count: 20) + "end.")
        let node = Sample.node("long", [long.spec])
        let help = HelpFormatter.help(for: [node], version: nil, width: 60)
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.contains("  --a-rather-long-option-name <a-rather-long-option-name>"))
        // The usage line is never wrapped (as with ArgumentParser); the sections are.
        #expect(lines.filter { !$0.hasPrefix("USAGE:") }.allSatisfy { $0.count <= 60 })
        #expect(lines.contains { $0.hasPrefix(String(repeating: " ", count: 26) + "word word") })
    }

    @Test func usageShortensPastTwelveEntries() {
        let many = (1...13).map { Flag("flag\($0)", help: "Flag \($0).").spec } + [Sample.line.spec]
        #expect(HelpFormatter.usage(for: [Sample.node("many", many)]) == "many [<options>] <line>")
        let optional = (1...13).map { Flag("flag\($0)", help: "Flag \($0).").spec }
        #expect(HelpFormatter.usage(for: [Sample.node("many", optional)]) == "many <options>")
        #expect(HelpFormatter.usage(for: [Sample.node("none", [])]) == "none")
    }
}

@Suite struct CommandLineProgramTests {
    struct Boom: Error, CustomStringConvertible { var description: String { "it broke" } }

    static func root(_ action: @escaping CommandNode.Action) -> CommandNode {
        CommandNode(
            CommandConfiguration(
                commandName: "tool", version: "9.9",
                subcommands: [CommandNode(CommandConfiguration(commandName: "go", abstract: "Go."), arguments: [Sample.count.spec], action: action)]))
    }

    @Test func aCommandLineErrorPrintsTheErrorTheHelpLineAndTheUsageAndExits64() async {
        let outcome = await CommandLineProgram.execute(Self.root { _ in }, arguments: ["go", "--count", "x"])
        #expect(outcome.status == 64)
        #expect(outcome.standardOutput.isEmpty)
        #expect(
            outcome.standardError == """
                Error: The value 'x' is invalid for '--count <count>'
                Help:  --count <count>  How many.
                Usage: tool go [--count <count>]
                  See 'tool go --help' for more information.

                """)
    }

    @Test func aValidationErrorExits64WithTheUsage() async {
        let outcome = await CommandLineProgram.execute(Self.root { _ in throw ValidationError("give a pattern") }, arguments: ["go"])
        #expect(outcome.status == 64)
        #expect(outcome.standardError == "Error: give a pattern\nUsage: tool go [--count <count>]\n  See 'tool go --help' for more information.\n")
    }

    @Test func anExitCodeExitsSilently() async {
        let outcome = await CommandLineProgram.execute(Self.root { _ in throw ExitCode(78) }, arguments: ["go"])
        #expect(outcome == CommandLineProgram.Outcome(status: 78))
    }

    @Test func anyOtherErrorIsPrintedAndExits1() async {
        let outcome = await CommandLineProgram.execute(Self.root { _ in throw Boom() }, arguments: ["go"])
        #expect(outcome.status == 1)
        #expect(outcome.standardError == "Error: it broke\n")
    }

    @Test func theCommandRunsWithItsValues() async {
        let outcome = await CommandLineProgram.execute(
            Self.root { values in if values[Sample.count] != 5 { throw ExitCode(2) } }, arguments: ["go", "--count=5"])
        #expect(outcome == CommandLineProgram.Outcome())
    }

    @Test func helpAndVersionGoToStandardOutputAndExit0() async {
        let version = await CommandLineProgram.execute(Self.root { _ in }, arguments: ["--version"])
        #expect(version == CommandLineProgram.Outcome(standardOutput: "9.9\n"))
        let help = await CommandLineProgram.execute(Self.root { _ in throw ExitCode(3) }, arguments: ["go", "--help"])
        #expect(help.status == 0)
        #expect(help.standardOutput.hasPrefix("OVERVIEW: Go.\n\nUSAGE: tool go [--count <count>]\n"))
        let helpOfHelp = await CommandLineProgram.execute(Self.root { _ in }, arguments: ["help", "help"])
        #expect(helpOfHelp.standardOutput == """
            OVERVIEW: Show subcommand help information.

            USAGE: tool help [<subcommands> ...]

            ARGUMENTS:
              <subcommands>

            OPTIONS:
              --version               Show the version.


            """)
    }
}
